import BertModel
import Foundation
import Support
import WordPiece
import Checkpoints

/// Everything besides the weights that a run needs to continue exactly where it stopped.
/// Random draws are not stored as generator states: every random number of a step is drawn from a
/// generator seeded by (seed, step, micro-batch) and the data order from (seed, epoch), so `seed`,
/// `step` and `position` determine them all.
public struct TrainingState: Codable, Equatable, Sendable {
    /// Format of this file.
    public var format = 1
    /// Optimizer updates done.
    public var step: Int
    /// Epochs finished.
    public var completedEpochs: Int
    /// Where the data loader continues.
    public var position: PositionState
    /// The learning-rate schedule (its position is `step`).
    public var schedule: LinearSchedule
    /// The learning rate of the last update.
    public var learningRate: Double
    /// The run's seed.
    public var seed: UInt64
    /// Batch size and accumulation: a resume must use the same.
    public var batchSize: Int
    public var accumulate: Int
    /// Epochs the run was started for.
    public var epochs: Int
    /// sha256 of the shards' index.json: a resume must read the same data.
    public var shardsIndexSHA256: String
    /// AdamW's hyper-parameters.
    public var adam: AdamW.Hyper
    /// The OpenBLAS kernels of the process that wrote the checkpoint (`Parallel.blasCoreName`); nil in
    /// checkpoints from before it was recorded. A resume on other kernels continues correctly, but its
    /// later losses differ from an uninterrupted run's in the last bits.
    public var blasCore: String? = nil
    /// The length-grouping window in batches (0 off; nil in checkpoints from before it existed, = 0).
    public var groupWindowBatches: Int? = nil
    /// The data-parallel processes (ranks) of the run that wrote it; absent (nil) for one process, so a
    /// single process writes the same bytes as before data parallelism existed. `batchSize` is the global
    /// batch either way, so a run resumes with any number of processes.
    public var processes: Int? = nil
    /// The optimizer; absent (nil) for AdamW, so AdamW runs write the same bytes as before LAMB existed.
    public var optimizer: OptimizerKind? = nil
    /// The precision of the matrix products ("bf16"); absent (nil) for fp32, so fp32 runs write the same
    /// bytes as before mixed precision existed. A run may resume in another precision (it is said).
    public var precision: String? = nil
    /// The objective; absent (nil) for MLM + NSP.
    public var objective: PretrainObjective? = nil
    /// Updates at the start that trained the heads only (absent for none).
    public var freezeEncoderSteps: Int? = nil
    /// `--init`'s directory and the sha256 of its model.safetensors; absent for a random start. A resume
    /// must start from the same weights.
    public var initFrom: String? = nil
    public var initSHA256: String? = nil
    /// True when the update's batch was formed whole and cut into `accumulate` micro-batches (written only
    /// when `accumulate` > 1; before, each micro-batch was formed, and length-grouped, on its own, so such a
    /// run cannot be resumed in the same order).
    public var updateBatches: Bool? = nil
    /// ELECTRA's generator size and λ (absent for BERT's objectives).
    public var generatorSize: Double? = nil
    public var discriminatorWeight: Double? = nil
    /// How a random start drew the position embeddings: "sinusoidal" or "normal" (transformers'
    /// normal(0, initializer_range)); absent for a run from `--init` (its positions came from there)
    /// and in checkpoints from before it was recorded. `bert finetune --from-scratch` reads it, so that
    /// the baseline starts as pre-training did.
    public var positionInit: PositionInit? = nil

    /// The loader position (epoch, instances consumed).
    public struct PositionState: Codable, Equatable, Sendable {
        public var epoch: Int
        public var instancesConsumed: Int
        enum CodingKeys: String, CodingKey { case epoch, instancesConsumed = "instances_consumed" }
    }

    enum CodingKeys: String, CodingKey {
        case format, step, schedule, seed, epochs, adam, position, accumulate
        case completedEpochs = "completed_epochs", learningRate = "learning_rate", batchSize = "batch_size"
        case shardsIndexSHA256 = "shards_index_sha256", blasCore = "blas_core", groupWindowBatches = "group_window_batches"
        case processes, optimizer, precision, objective, freezeEncoderSteps = "freeze_encoder_steps"
        case initFrom = "init_from", initSHA256 = "init_sha256", updateBatches = "update_batches"
        case generatorSize = "generator_size", discriminatorWeight = "discriminator_weight", positionInit = "position_init"
    }

    /// How a randomly initialised encoder's position embeddings are drawn.
    public enum PositionInit: String, Codable, Sendable {
        /// Sinusoids of the initializer's standard deviation (`--sinusoidal-positions`).
        case sinusoidal
        /// transformers' normal(0, initializer_range), as every other tensor.
        case normal
    }
}

extension Checkpoint {
    /// Writes a checkpoint directory atomically (temporary directory, fsync, rename) and points
    /// `RUN/latest` at it. On any failure (a full disk, say) the temporary directory is removed and
    /// the previous checkpoint and `latest` are untouched. `afterFile` is a test hook called with
    /// each file name once written; throwing there stands for a failure at that moment.
    public static func write(runDirectory: String, name: String, config: BertConfig, vocabulary: Data,
                             layout: ParameterLayout, parameters: UnsafeBufferPointer<Float>,
                             optimizer: MomentOptimizer, state: TrainingState, tokenizer: TokenizerConfig? = nil,
                             electraGenerator: BertConfig? = nil, afterFile: ((String) throws -> Void)? = nil) throws {
        let fm = FileManager.default
        let final = (runDirectory as NSString).appendingPathComponent(name)
        let temporary = (runDirectory as NSString).appendingPathComponent(".tmp-\(name)-\(getpid())")
        try? fm.removeItem(atPath: temporary)
        // Leftovers of a run that was killed while checkpointing.
        for leftover in (try? fm.contentsOfDirectory(atPath: runDirectory)) ?? [] where leftover.hasPrefix(".tmp-") {
            try? fm.removeItem(atPath: (runDirectory as NSString).appendingPathComponent(leftover))
        }
        try fm.createDirectory(atPath: temporary, withIntermediateDirectories: true)
        var done = false
        defer { if !done { try? fm.removeItem(atPath: temporary) } }
        func path(_ file: String) -> String { (temporary as NSString).appendingPathComponent(file) }
        if let generator = electraGenerator {
            try writeElectraModels(into: temporary, config: config, generator: generator, layout: layout, parameters: parameters,
                                   vocabulary: vocabulary, tokenizer: tokenizer)
        } else {
            try SafetensorsWriter.write(modelTensors(layout: layout, parameters: parameters), to: path(modelFile))
        }
        try afterFile?(modelFile)
        var optimizerTensors: [SafetensorsTensor] = []
        for e in layout.entries {
            optimizerTensors.append(SafetensorsTensor(name: "exp_avg." + e.name, shape: e.shape,
                                                      floats: Array(optimizer.m[e.offset..<(e.offset + e.count)])))
            optimizerTensors.append(SafetensorsTensor(name: "exp_avg_sq." + e.name, shape: e.shape,
                                                      floats: Array(optimizer.v[e.offset..<(e.offset + e.count)])))
        }
        try SafetensorsWriter.write(optimizerTensors, metadata: ["format": "pt", "step": String(optimizer.steps)], to: path(optimizerFile))
        try afterFile?(optimizerFile)
        var cfg = config
        cfg.architectures = cfg.architectures ?? ["BertForPreTraining"]
        try writeCheckpointFile(electraGenerator == nil ? cfg.encoded() : config.electraJSON(architectures: ["ElectraForPreTraining"]),
                                to: path(configFile))
        try writeCheckpointFile(vocabulary, to: path(vocabFile))
        if let tokenizer { try writeCheckpointFile(tokenizer.encoded(), to: path(TokenizerConfig.fileName)) }
        let e = JSONEncoder()
        e.outputFormatting = [.sortedKeys, .prettyPrinted]
        try writeCheckpointFile(try e.encode(state) + Data([0x0A]), to: path(stateFile))
        try afterFile?(stateFile)
        syncDirectory(temporary)
        if fm.fileExists(atPath: final) {  // a re-run of the same step: replace it
            let old = final + ".old-\(getpid())"
            try fm.moveItem(atPath: final, toPath: old)
            try fm.moveItem(atPath: temporary, toPath: final)
            try? fm.removeItem(atPath: old)
        } else {
            try fm.moveItem(atPath: temporary, toPath: final)
        }
        done = true
        syncDirectory(runDirectory)
        // latest → name, replaced atomically with rename(2).
        let link = (runDirectory as NSString).appendingPathComponent(latestLink)
        let tmpLink = link + ".tmp-\(getpid())"
        unlink(tmpLink)
        guard symlink(name, tmpLink) == 0, rename(tmpLink, link) == 0 else {
            throw TrainingError.io(path: link, reason: "cannot update the latest link: \(String(cString: strerror(errno)))")
        }
        syncDirectory(runDirectory)
    }

    /// Removes step checkpoints (`step-NNNNNNNN`) of a run but the newest `keeping` (at least 1), never
    /// an epoch checkpoint nor the one `latest` points to. Call it after a new checkpoint is complete.
    public static func pruneStepCheckpoints(runDirectory: String, keeping: Int) throws {
        let fm = FileManager.default
        let latestTarget = (try? fm.destinationOfSymbolicLink(atPath: (runDirectory as NSString).appendingPathComponent(latestLink)))
            .map { ($0 as NSString).lastPathComponent }
        let steps = ((try? fm.contentsOfDirectory(atPath: runDirectory)) ?? [])
            .filter { $0.hasPrefix("step-") && $0.dropFirst(5).allSatisfy(\.isNumber) }
            .sorted()  // fixed-width step numbers: name order is step order
        for name in steps.dropLast(max(1, keeping)) where name != latestTarget {
            let path = (runDirectory as NSString).appendingPathComponent(name)
            do { try fm.removeItem(atPath: path) } catch { throw TrainingError.io(path: path, reason: "cannot remove an old checkpoint: \(error)") }
        }
    }

    /// Whether `directory` holds a training_state.json (a BertKit pre-training checkpoint).
    public static func holdsTrainingState(_ directory: String) -> Bool {
        FileManager.default.fileExists(atPath: (directory as NSString).appendingPathComponent(stateFile))
    }

    /// Reads training_state.json of a checkpoint directory.
    public static func readState(_ directory: String) throws -> TrainingState {
        let path = (directory as NSString).appendingPathComponent(stateFile)
        guard let data = FileManager.default.contents(atPath: path) else {
            throw TrainingError.badCheckpoint(path: path, reason: "missing")
        }
        do { return try JSONDecoder().decode(TrainingState.self, from: data) } catch {
            throw TrainingError.badCheckpoint(path: path, reason: "not a training state: \(error)")
        }
    }

    /// Restores the optimizer's moments and step count from optimizer.safetensors.
    public static func loadOptimizer(_ optimizer: MomentOptimizer, layout: ParameterLayout, directory: String) throws {
        let path = (directory as NSString).appendingPathComponent(optimizerFile)
        let file: SafetensorsFile
        do { file = try SafetensorsFile(path: path) } catch {
            throw TrainingError.badCheckpoint(path: path, reason: "\(error)")
        }
        for e in layout.entries {
            for (prefix, buffer) in [("exp_avg.", optimizer.m), ("exp_avg_sq.", optimizer.v)] {
                let name = prefix + e.name
                guard file.contains(name), (try? file.info(name).shape) == e.shape else {
                    throw TrainingError.badCheckpoint(path: path, reason: "tensor \(name) is missing or has the wrong shape")
                }
                try file.copyFloats(name, into: UnsafeMutableBufferPointer(rebasing: buffer[e.offset..<(e.offset + e.count)]))
            }
        }
        guard let s = file.metadata["step"], let steps = Int(s) else {
            throw TrainingError.badCheckpoint(path: path, reason: "metadata has no step")
        }
        optimizer.steps = steps
    }
}

/// Writes a file of a checkpoint or classifier directory (inside its temporary directory) and fsyncs it,
/// through Support's file-safety layer; a failure is `TrainingError.io` naming the file.
func writeCheckpointFile(_ data: Data, to path: String) throws(TrainingError) {
    do { try writeSynced(data, to: path) } catch { throw .io(path: path, reason: error.reason) }
}
