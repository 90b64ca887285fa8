import Support
import BertModel
import Foundation
import Kernels
import PretrainingData
import WordPiece
import Checkpoints
import Inference

/// Settings of a pre-training run (google-research/bert's run_pretraining.py flags where they exist).
public struct PretrainOptions: Sendable {
    /// The run directory: checkpoints, metrics.jsonl, TensorBoard events.
    public var runDirectory: String
    public var epochs = 1
    public var batchSize = 32
    /// Micro-batches per optimizer update.
    public var accumulate = 1
    /// Length grouping (`ShardLoader.Options.groupWindowBatches`): 0 for off, else batches are made
    /// from windows of this many batches sorted by length, and padded to their longest instance
    /// rather than to max_seq_length. Saves the compute spent on padding when instances are short.
    public var groupWindowBatches = 0
    /// Start the position embeddings as sinusoids rather than N(0, initializer_range²).
    public var sinusoidalPositions = false
    public var learningRate = 1e-4
    /// Warm-up updates; nil = 10% of all updates.
    public var warmupSteps: Int?
    public var maxGradNorm = 1.0
    /// β1, β2, ε, weight decay and bias correction, of AdamW or LAMB.
    public var adam = AdamW.Hyper()
    /// AdamW (google-research/bert) or LAMB (NVIDIA's BERT, for large batches).
    public var optimizer = OptimizerKind.adamw
    /// The arithmetic of the matrix products; fp32 master weights, gradients and moments either way.
    public var precision: ModelPrecision = .fp32
    public var seed: UInt64 = 42
    /// Compute threads: the kernels' workers (each runs its OpenBLAS blocks single-threaded).
    public var threads = 1
    /// Also checkpoint every N updates (nil: only at the end of each epoch).
    public var saveEverySteps: Int?
    /// Keep only the newest N step checkpoints (transformers' `save_total_limit`); older ones are
    /// removed once a new one is complete. Epoch checkpoints and `latest`'s target are always kept.
    /// nil keeps every one.
    public var keepLast: Int?
    /// Log a metrics row every N updates.
    public var logEverySteps = 10
    /// Continue from RUN/latest.
    public var resume = false
    /// Start again in a directory that holds a run.
    public var overwrite = false
    /// Resume when the run directory has a checkpoint of a run with these settings; otherwise
    /// start again (for pipelines, where re-running a stage should finish it).
    public var resumeIfPossible = false
    /// Stop after this many updates in this process (tests use it to simulate a crash).
    public var stopAfterSteps: Int?
    /// Data parallelism: gradients are summed across the processes in buckets of at least this many
    /// Floats (whole layers), each started as soon as the backward has completed it; 0 sums all of them
    /// after the backward (no overlap). 2^20 (4 MiB) by default: small enough that mini's 22 MB make
    /// several buckets, large enough that each message is cheap to start.
    public var allReduceBucketElements = 1 << 20
    /// Train for at most this many updates in all (the schedule decays to zero there), then
    /// checkpoint as `step-NNNNNNNN`; nil = whole epochs.
    public var maxSteps: Int?
    /// MLM and NSP, MLM alone, or ELECTRA's replaced-token detection.
    public var objective = PretrainObjective.mlmNsp
    /// ELECTRA's generator width as a fraction of the discriminator's (hidden size, heads, intermediate size).
    public var generatorSize = 0.25
    /// ELECTRA's λ: loss = MLM(generator) + λ · RTD(discriminator).
    public var discriminatorWeight = 50.0
    /// Train only the heads (`cls.*`) for the first N updates, the encoder (every `bert.*` tensor, the
    /// word embeddings that the decoder shares included) left exactly as it started: with `--init`, a
    /// head the checkpoint lacks starts random, and its first gradients would otherwise reach the
    /// encoder at the full learning rate. 0: off.
    public var freezeEncoderSteps = 0

    public init(runDirectory: String) { self.runDirectory = runDirectory }
}

/// What the trainer reports as it goes (for the progress line) and at the end.
public struct PretrainProgress: Sendable {
    public var step: Int
    public var totalSteps: Int
    public var epoch: Int
    public var loss: Double
    public var mlmAccuracy: Double
    public var tokensPerSecond: Double
    public var elapsed: Double
}

/// Pre-trains a BertForPreTraining on shards: the loader's threads prefetch batches while the
/// model computes; AdamW with warm-up and linear decay; clipping; accumulation; a checkpoint at the
/// end of every epoch (and every `saveEverySteps`); exact resume.
public final class Pretrainer {
    public let options: PretrainOptions
    public let config: BertConfig
    /// `BertForPreTraining`, or `ElectraForPreTraining` for `--objective electra`.
    public let model: any PretrainingModel
    public let loader: ShardLoader
    /// AdamW or LAMB (`options.optimizer`).
    public let optimizer: MomentOptimizer
    public let schedule: LinearSchedule
    public let vocabulary: Data
    /// Where a continued pre-training run starts (`--init`); nil for random initialisation.
    public let initialWeights: InitialWeights?
    /// What `--init` loaded, initialised and ignored (nil without it, or when resuming).
    public private(set) var initReport: InitialWeights.Report?
    /// How the run's random start drew the position embeddings (recorded in training_state.json); nil
    /// from `--init`, or when resuming a checkpoint from before it was recorded.
    public private(set) var positionInit: TrainingState.PositionInit?
    /// Whether the shards' text was lowercased (recorded in checkpoints' tokenizer_config.json).
    let lowercase: Bool
    let indexSHA256: String
    let decayRanges: [Range<Int>]
    /// Updates done.
    public private(set) var step = 0
    var completedEpochs = 0
    var position = LoaderPosition(epoch: 0, instancesConsumed: 0)
    public private(set) var lastCheckpoint: String?
    /// Called after each update.
    public var onProgress: ((PretrainProgress) -> Void)?
    /// Called after each micro-batch's forward pass, before its backward, with the update's number
    /// (from 1, as in metrics.jsonl), the micro-batch's index within the update, the batch as the model
    /// saw it (after dynamic masking) and its output (`bert pretrain --record-batches`).
    public var onMicroBatch: ((_ step: Int, _ micro: Int, _ batch: PretrainingBatch, _ output: PretrainingOutput) throws -> Void)?
    /// Where complete gradients become global ones before each update: the sum over the processes of a
    /// data-parallel run (`AllReduceGradients`), nothing for one process.
    public var gradientReducer: GradientReducer
    /// The processes of a data-parallel run (`SingleProcess` by default). Each takes its slice of every
    /// batch (`BatchSlice`): `options.batchSize` stays the global batch, so the instances of each update
    /// are those of one process for any number of processes, and N processes with batch B compute what one
    /// process with batch B/N and `accumulate` N computes (the same micro-batches, dropout masks and
    /// weights; the sum is only rounded in another order). Process 0 writes the run directory, the
    /// others wait at each checkpoint.
    public let group: ProcessGroup

    /// Sets up a run: checks the data against the model, creates or resumes the run directory.
    /// `vocabulary`: the bytes of vocab.txt (copied into checkpoints; its sha256 must match the shards).
    /// `initialWeights`: start from a model directory's weights (checked against the shards by the caller
    /// with `InitialWeights.check`) instead of a random initialisation.
    public init(options: PretrainOptions, config: BertConfig, shards: ShardSet, vocabulary: Data, maskerForDynamic: Masker?,
                processGroup: ProcessGroup = SingleProcess(), initialWeights: InitialWeights? = nil) throws {
        guard options.batchSize >= 1 else { throw TrainingError.invalidSetting(name: "--batch-size", reason: "must be at least 1") }
        guard options.batchSize % processGroup.size == 0 else {
            throw TrainingError.invalidSetting(
                name: "--batch-size", reason: "the global batch of \(options.batchSize) must be a multiple of the \(processGroup.size) processes")
        }
        group = processGroup
        guard options.accumulate >= 1 else { throw TrainingError.invalidSetting(name: "--accumulate", reason: "must be at least 1") }
        guard options.epochs >= 1 else { throw TrainingError.invalidSetting(name: "--epochs", reason: "must be at least 1") }
        guard options.learningRate > 0 else { throw TrainingError.invalidSetting(name: "--learning-rate", reason: "must be positive") }
        let p = shards.index.parameters
        guard shards.index.vocabSize == config.vocabSize else {
            throw TrainingError.dataMismatch(reason: "the shards use a vocabulary of \(shards.index.vocabSize) tokens, the model \(config.vocabSize) (vocab_size)")
        }
        guard p.maxSeqLength <= config.maxPositionEmbeddings else {
            throw TrainingError.dataMismatch(reason: "instances of up to \(p.maxSeqLength) tokens, the model has \(config.maxPositionEmbeddings) positions")
        }
        let indexPath = (shards.directory as NSString).appendingPathComponent(ShardIndex.fileName)
        indexSHA256 = SHA256.hex(try SHA256.hash(file: indexPath))
        self.options = options
        self.config = config
        self.vocabulary = vocabulary
        self.initialWeights = initialWeights
        lowercase = p.lowercase
        let localBatch = options.batchSize / processGroup.size  // this process's slice of each batch
        let maxMasked = localBatch * max(1, p.dynamicMasking ? (maskerForDynamic?.maxPredictions ?? p.maxPredictionsPerSeq) : p.maxPredictionsPerSeq)
        if options.objective == .electra {
            guard initialWeights == nil else {
                throw TrainingError.invalidSetting(name: "--init", reason: "--objective electra trains from a random initialisation; "
                    + "continued pre-training from --init uses --objective mlm")
            }
            guard options.freezeEncoderSteps == 0 else {
                throw TrainingError.invalidSetting(name: "--freeze-encoder-steps", reason: "is for --init with a BERT objective, not --objective electra")
            }
            guard options.discriminatorWeight.isFinite, options.discriminatorWeight >= 0 else {
                throw TrainingError.invalidSetting(name: "--discriminator-weight", reason: "must be a finite number ≥ 0, is \(options.discriminatorWeight)")
            }
            let generator: BertConfig
            do { generator = try ElectraForPreTraining.generatorConfig(discriminator: config, size: options.generatorSize) } catch {
                throw TrainingError.invalidSetting(name: "--generator-size", reason: "must be in (0, 1], is \(options.generatorSize)")
            }
            model = try ElectraForPreTraining(config: config, generator: generator, discriminatorWeight: Float(options.discriminatorWeight),
                                              maxBatch: localBatch, maxSeqLength: p.maxSeqLength, maxMaskedPositions: maxMasked,
                                              threads: options.threads)
        } else {
            model = try BertForPreTraining(config: config, maxBatch: localBatch, maxSeqLength: p.maxSeqLength,
                                           maxMaskedPositions: maxMasked, threads: options.threads)
        }
        model.precision = options.precision
        gradientReducer = processGroup.size == 1 ? LocalGradients()
            : AllReduceGradients(group: processGroup, stages: model.gradientStages, bucketElements: options.allReduceBucketElements)
        guard options.groupWindowBatches >= 0 else {
            throw TrainingError.invalidSetting(name: "--group-by-length", reason: "the window must be 0 (off) or positive")
        }
        loader = try ShardLoader(set: shards, options: .init(batchSize: options.batchSize, seed: options.seed,
                                                             padToLongest: options.groupWindowBatches > 0,
                                                             groupWindowBatches: options.groupWindowBatches,
                                                             slice: processGroup.size > 1 ? BatchSlice(index: processGroup.rank, count: processGroup.size) : nil,
                                                             microBatches: options.accumulate),
                                 masker: maskerForDynamic)
        guard options.maxSteps.map({ $0 >= 1 }) ?? true else { throw TrainingError.invalidSetting(name: "--max-steps", reason: "must be at least 1") }
        let updatesPerEpoch = loader.updatesPerEpoch
        let total = min(updatesPerEpoch * options.epochs, options.maxSteps ?? Int.max)
        schedule = LinearSchedule(base: options.learningRate, warmupSteps: options.warmupSteps ?? max(1, total / 10), totalSteps: total)
        // MLM alone leaves the NSP head and the pooler as they started: no gradient reaches them, and
        // without decay AdamW does not move them either.
        let frozen: (ParameterEntry) -> Bool = { e in
            options.objective == .mlm && (e.name.hasPrefix("cls.seq_relationship.") || e.name.hasPrefix("bert.pooler."))
        }
        decayRanges = model.layout.entries.filter { $0.decay && !frozen($0) }.map { $0.offset..<($0.offset + $0.count) }
            .sorted { $0.lowerBound < $1.lowerBound }
        switch options.optimizer {
        case .adamw:
            optimizer = AdamW(count: model.layout.count, decayRanges: decayRanges, hyper: options.adam, threads: options.threads)
        case .lamb:
            optimizer = LAMB(count: model.layout.count, tensors: model.layout.entries.map { LAMB.Tensor(range: $0.range, decay: $0.decay) },
                             hyper: options.adam, threads: options.threads)
        }
        if group.isRoot { try prepareRunDirectory() }
        if group.size > 1 { try joinRunDirectory() }
    }

    /// The other processes of a data-parallel run, once process 0 has prepared the run directory: resume
    /// from the checkpoint it resumed from, or start from the same seeded initialisation. They never
    /// write the directory.
    func joinRunDirectory() throws {
        let resumed = try group.allReduceSum([group.isRoot && lastCheckpoint != nil ? 1 : 0])[0] > 0
        guard !group.isRoot else { return }
        if resumed {
            guard let latest = Checkpoint.latest(runDirectory: options.runDirectory) else {
                throw TrainingError.nothingToResume(directory: options.runDirectory)
            }
            try restore(from: latest)
        } else {
            try initializeWeights()
        }
    }

    /// A new run's weights: transformers' initialisation from the seed, then `--init`'s weights over it
    /// (the heads a checkpoint lacks keep their initialisation), or else sinusoidal positions if asked.
    func initializeWeights() throws {
        model.initialize(seed: options.seed)
        positionInit = initialWeights != nil ? nil : options.sinusoidalPositions ? .sinusoidal : .normal
        if let initialWeights {
            initReport = try initialWeights.load(into: model.layout, parameters: model.parameters)
        } else if options.sinusoidalPositions {
            model.initializePositionsSinusoidally()
        }
        model.parametersDidChange()
    }

    /// Updates per epoch and in all.
    public var totalSteps: Int { schedule.totalSteps }

    func prepareRunDirectory() throws {
        let fm = FileManager.default
        let dir = options.runDirectory
        let holdsRun = Checkpoint.latest(runDirectory: dir) != nil
            || fm.fileExists(atPath: (dir as NSString).appendingPathComponent("metrics.jsonl"))
        if options.resume {
            guard let latest = Checkpoint.latest(runDirectory: dir) else { throw TrainingError.nothingToResume(directory: dir) }
            try restore(from: latest)
            return
        }
        if options.resumeIfPossible, let latest = Checkpoint.latest(runDirectory: dir) {
            // Start again only when the checkpoint belongs to another run (other settings or shards);
            // a damaged checkpoint of this run is an error, as with --resume, never a silent restart.
            let state = try Checkpoint.readState(latest)
            if let difference = settingsDifference(state) {
                FileHandle.standardError.write(Data("bert pretrain: \(latest) is a run with other settings (\(difference)); starting again\n".utf8))
            } else {
                try restore(from: latest)
                return
            }
        }
        if holdsRun {
            guard options.overwrite || options.resumeIfPossible else { throw TrainingError.runExists(directory: dir) }
            for name in (try? fm.contentsOfDirectory(atPath: dir)) ?? [] {
                try fm.removeItem(atPath: (dir as NSString).appendingPathComponent(name))
            }
        }
        try fm.createDirectory(atPath: dir, withIntermediateDirectories: true)
        try initializeWeights()
    }

    /// How the run that wrote `state` differs from this one, or nil when it is the same run.
    func settingsDifference(_ state: TrainingState) -> String? {
        guard state.batchSize == options.batchSize, state.accumulate == options.accumulate, state.seed == options.seed,
              state.epochs == options.epochs, state.schedule == schedule else {
            return "the run used batch size \(state.batchSize), accumulate \(state.accumulate), seed \(state.seed), \(state.epochs) epochs; \(state.schedule.totalSteps) updates"
        }
        guard (state.optimizer ?? .adamw) == options.optimizer else {
            return "the run used the \((state.optimizer ?? .adamw).rawValue) optimizer, this one \(options.optimizer.rawValue)"
        }
        if options.accumulate > 1 && options.groupWindowBatches > 0 && state.updateBatches != true {
            return "the run accumulated micro-batches that were length-grouped one by one (BertKit before update batches); this one forms each update's batch whole, in another order"
        }
        guard (state.groupWindowBatches ?? 0) == options.groupWindowBatches else {
            return "the run used a length-grouping window of \(state.groupWindowBatches ?? 0) batches, this one \(options.groupWindowBatches)"
        }
        guard state.shardsIndexSHA256 == indexSHA256 else { return "it was trained on other shards (index.json differs)" }
        guard (state.freezeEncoderSteps ?? 0) == options.freezeEncoderSteps else {
            return "the run froze the encoder for \(state.freezeEncoderSteps ?? 0) updates, this one for \(options.freezeEncoderSteps)"
        }
        guard (state.objective ?? .mlmNsp) == options.objective else {
            return "the run's objective was \((state.objective ?? .mlmNsp).rawValue), this one \(options.objective.rawValue)"
        }
        if options.objective == .electra, state.generatorSize != options.generatorSize || state.discriminatorWeight != options.discriminatorWeight {
            return "the run used --generator-size \(state.generatorSize ?? 0) and --discriminator-weight \(state.discriminatorWeight ?? 0), "
                + "this one \(options.generatorSize) and \(options.discriminatorWeight)"
        }
        guard state.initSHA256 == initialWeights?.weightsSHA256 else {
            return state.initSHA256 == nil ? "the run started from random weights, this one from --init \(initialWeights!.directory)"
                : "the run started from --init \(state.initFrom ?? "?") (model.safetensors sha256 \(state.initSHA256!.prefix(12))…)"
                    + (initialWeights.map { ", this one from \($0.directory) (\($0.weightsSHA256.prefix(12))…)" } ?? ", this one from random weights; give the same --init")
        }
        return nil
    }

    /// Loads weights, moments and position from a checkpoint directory.
    func restore(from directory: String) throws {
        let state = try Checkpoint.readState(directory)
        if let difference = settingsDifference(state) {
            throw TrainingError.badCheckpoint(path: directory, reason: "\(difference); resume with the same settings and --shards")
        }
        if let core = state.blasCore, core != Parallel.blasCoreName, group.isRoot {
            FileHandle.standardError.write(Data(("bert pretrain: note: \(directory) was written with OpenBLAS's \(core) kernels and this "
                + "process uses \(Parallel.blasCoreName) (OPENBLAS_CORETYPE or another CPU); the run continues correctly, but its "
                + "losses will differ from an uninterrupted run's in the last bits\n").utf8))
        }
        if state.precision != options.precision.stateName, group.isRoot {
            FileHandle.standardError.write(Data(("bert pretrain: note: \(directory) was trained in \(state.precision ?? "fp32") and continues in "
                + "\(options.precision.stateName ?? "fp32") (the weights and moments are fp32 either way)\n").utf8))
        }
        let modelPath = (directory as NSString).appendingPathComponent(Checkpoint.modelFile)
        if model is ElectraForPreTraining {
            try Checkpoint.loadElectraParameters(directory: directory, layout: model.layout, into: model.parameters)
        } else {
            let file: SafetensorsFile
            do { file = try SafetensorsFile(path: modelPath) } catch { throw TrainingError.badCheckpoint(path: modelPath, reason: "\(error)") }
            try Checkpoint.loadParameters(from: file, layout: model.layout, into: model.parameters)
        }
        model.parametersDidChange()
        try Checkpoint.loadOptimizer(optimizer, layout: model.layout, directory: directory)
        step = state.step
        positionInit = state.positionInit  // as the run started, whatever this resume's flags say
        completedEpochs = state.completedEpochs
        position = LoaderPosition(epoch: state.position.epoch, instancesConsumed: state.position.instancesConsumed)
        lastCheckpoint = directory
        guard group.isRoot else { return }
        try MetricsLog.truncate(path: (options.runDirectory as NSString).appendingPathComponent("metrics.jsonl"), afterStep: step)
    }

    /// The dropout seed of micro-batch `micro` of update `step`.
    func dropoutSeed(step: Int, micro: Int) -> UInt64 {
        var g = SeededGenerator(seed: options.seed, stream: [0x44524F50, UInt64(step), UInt64(micro)])  // "DROP"
        return g.next()
    }

    /// The seed of ELECTRA's generator samples in micro-batch `micro` of update `step`.
    func sampleSeed(step: Int, micro: Int) -> UInt64 {
        var g = SeededGenerator(seed: options.seed, stream: [0x53414D50, UInt64(step), UInt64(micro)])  // "SAMP"
        return g.next()
    }

    /// Trains to the end (or to `stopAfterSteps`); returns the last checkpoint directory.
    @discardableResult
    public func run() throws -> String? {
        // Process 0 writes the logs; every process computes the rows' sums (they are all-reduced).
        let metrics = group.isRoot ? try MetricsLog(path: (options.runDirectory as NSString).appendingPathComponent("metrics.jsonl")) : nil
        let board = group.isRoot ? try TensorBoardWriter(directory: options.runDirectory) : nil
        let started = Date()
        var stepsThisProcess = 0
        if step >= totalSteps { return lastCheckpoint }  // a finished run
        // Sums over the logging window; the MLM and NSP losses weighted by masked positions and
        // sequences, so that they are the window's means whatever the micro-batch sizes.
        var window = MetricsWindow()
        var windowStart = Date()
        while position.epoch < options.epochs {
            let batches = try loader.batches(epoch: position.epoch, skipping: position.instancesConsumed)
            while true {
                // One update's micro-batches, taken first: each is weighted by its share of the update's
                // masked positions (MLM) and sequences (NSP), so the accumulated gradient is that of one
                // batch holding them all (google-research/bert's loss: the mean over the batch's masked
                // positions), not the mean of the micro-batches' means.
                var micros: [InstanceBatch] = []
                while micros.count < options.accumulate, let batch = try batches.next() { micros.append(batch) }
                if micros.isEmpty { break }  // end of the epoch
                // With several processes each micro-batch is this process's slice, weighted by its share
                // of the whole update (all processes' slices), and the reducer sums the processes.
                let maskedInUpdate = micros.reduce(0) { $0 + $1.wholeBatchMaskedPositions }
                let sequencesInUpdate = micros.reduce(0) { $0 + $1.wholeBatchSize }
                let tokensInUpdate = micros.reduce(0) { $0 + $1.wholeBatchTokens }
                let whole = micros.count == 1 && group.size == 1
                // The last backward of the update hands the reducer each completed stage (overlap).
                let lastBackward = micros.lastIndex { $0.size > 0 }
                model.zeroGradients()
                var stepLoss = 0.0
                for (micro, batch) in micros.enumerated() where batch.size > 0 {
                    if let overlapped = gradientReducer as? AllReduceGradients, micro == lastBackward {
                        let gradients = model.gradients
                        model.onGradientStageReady = { k in overlapped.stageReady(k, gradients: gradients) }
                    }
                    defer { model.onGradientStageReady = nil }
                    // The seeds of the micro-batch a single process with accumulation would have here.
                    let micro = micro * group.size + group.rank
                    let modelBatch = PretrainingBatch(batch)
                    let out = try model.forward(modelBatch, dropoutSeed: dropoutSeed(step: step, micro: micro),
                                                sampleSeed: sampleSeed(step: step, micro: micro))
                    try onMicroBatch?(step + 1, micro, modelBatch, out)
                    guard out.loss.isFinite else { throw TrainingError.nonFiniteLoss(step: step + 1, lastCheckpoint: lastCheckpoint) }
                    let mlmShare = whole ? 1 : Float(out.mlmCount) / Float(maskedInUpdate)
                    // NSP is a mean over sequences, RTD over real tokens; MLM alone has no second loss.
                    let otherShare: Float = switch options.objective {
                    case .mlm: 0
                    case .mlmNsp: whole ? 1 : Float(out.nspCount) / Float(sequencesInUpdate)
                    case .electra: whole ? 1 : Float(batch.tokenCount) / Float(tokensInUpdate)
                    }
                    model.backward(mlmScale: mlmShare, otherScale: otherShare)
                    let otherLoss = out.replacedToken.map { Double($0.loss) * options.discriminatorWeight } ?? Double(out.nspLoss)
                    stepLoss += Double(mlmShare) * Double(out.mlmLoss) + Double(otherShare) * otherLoss
                    window.add(out, tokens: batch.tokenCount)
                }
                let lr = schedule.rate(at: step)
                // A frozen encoder: its gradients zeroed once complete (after any all-reduce, before clipping), and
                // after the step its weights as they were (decoupled weight decay undone).
                let frozen = step < options.freezeEncoderSteps ? encoderRanges : []
                let kept = frozen.map { Array(model.parameters[$0]) }
                let norm = try applyUpdate(parameters: model.parameters, gradients: model.gradients,
                                           reducer: frozen.isEmpty ? gradientReducer : ZeroingGradients(gradientReducer, ranges: frozen),
                                           optimizer: optimizer, maxGradNorm: options.maxGradNorm, lr: lr)
                for (r, values) in zip(frozen, kept) {
                    values.withUnsafeBufferPointer { model.parameters.baseAddress!.advanced(by: r.lowerBound).update(from: $0.baseAddress!, count: r.count) }
                }
                model.parametersDidChange()
                step += 1
                stepsThisProcess += 1
                position = batches.position
                window.loss += stepLoss
                window.updates += 1
                window.norm += norm
                let elapsed = Date().timeIntervalSince(started)
                if step % options.logEverySteps == 0 || step == totalSteps {
                    if group.size > 1 { try sumOverProcesses(&window) }
                    let seconds = Date().timeIntervalSince(windowStart)
                    let row = window.row(step: step, epoch: position.epoch, learningRate: lr, seconds: seconds, elapsed: elapsed,
                                         electra: options.objective == .electra)
                    try metrics?.append(row)
                    try board?.add(step: step, scalars: row.scalars)
                    if group.isRoot { onProgress?(PretrainProgress(step: step, totalSteps: totalSteps, epoch: position.epoch, loss: row.loss,
                                                 mlmAccuracy: row.mlmAccuracy ?? 0, tokensPerSecond: row.tokensPerSecond ?? 0,
                                                 elapsed: elapsed)) }
                    window = MetricsWindow()
                    windowStart = Date()
                }
                if let every = options.saveEverySteps, step % every == 0 {
                    try checkpoint(name: String(format: "step-%08d", step))
                }
                if let stop = options.stopAfterSteps, stepsThisProcess >= stop { return lastCheckpoint }
                let moreData = batchesLeft(batches) || position.epoch < options.epochs - 1
                if step >= totalSteps && moreData {  // --max-steps reached before the end of the data
                    if let every = options.saveEverySteps, step % every == 0 { return lastCheckpoint }  // just written
                    try checkpoint(name: String(format: "step-%08d", step))
                    return lastCheckpoint
                }
            }
            completedEpochs = position.epoch + 1
            position = LoaderPosition(epoch: position.epoch + 1, instancesConsumed: 0)
            try checkpoint(name: String(format: "epoch-%04d", completedEpochs))
        }
        return lastCheckpoint
    }

    /// The encoder's parameters (every `bert.*` tensor), as ranges of the parameter buffer.
    var encoderRanges: [Range<Int>] { model.layout.entries.filter { $0.name.hasPrefix("bert.") }.map(\.range) }

    /// Whether the epoch has instances left after the iterator's position.
    func batchesLeft(_ batches: EpochBatches) -> Bool { batches.position.instancesConsumed < loader.instancesPerEpoch }

    /// The window's sums over the processes (the losses are already weighted by global shares; the
    /// update count and gradient norm are the same everywhere).
    func sumOverProcesses(_ w: inout MetricsWindow) throws {
        w.sums = try group.allReduceSum(w.sums)
    }

    /// Writes a checkpoint (process 0; the others wait for it). With several processes it first checks
    /// that all hold the same parameters: they take the same steps, so a difference is a bug or a
    /// fault, and is an error rather than a checkpoint of one process's weights.
    func checkpoint(name: String) throws {
        if group.size > 1 {
            var hasher = SHA256()
            hasher.update(UnsafeRawBufferPointer(model.parameters))
            let digest = hasher.finalize()
            let key = digest.prefix(8).reduce(UInt64(0)) { $0 << 8 | UInt64($1) }
            let (low, high) = try group.allReduceMinMax([key])
            guard low == high else {
                throw TrainingError.processesDiverged(step: step, processes: group.size)
            }
        }
        let directory = (options.runDirectory as NSString).appendingPathComponent(name)
        guard group.isRoot else {
            try group.barrier()
            lastCheckpoint = directory
            return
        }
        let state = TrainingState(
            step: step, completedEpochs: completedEpochs,
            position: .init(epoch: position.epoch, instancesConsumed: position.instancesConsumed), schedule: schedule,
            learningRate: schedule.rate(at: max(0, step - 1)), seed: options.seed, batchSize: options.batchSize,
            accumulate: options.accumulate, epochs: options.epochs, shardsIndexSHA256: indexSHA256, adam: options.adam,
            blasCore: Parallel.blasCoreName, groupWindowBatches: options.groupWindowBatches, processes: group.size > 1 ? group.size : nil,
            optimizer: options.optimizer == .adamw ? nil : options.optimizer, precision: options.precision.stateName,
            objective: options.objective == .mlmNsp ? nil : options.objective,
            freezeEncoderSteps: options.freezeEncoderSteps == 0 ? nil : options.freezeEncoderSteps, initFrom: initialWeights?.directory,
            initSHA256: initialWeights?.weightsSHA256, updateBatches: options.accumulate > 1 ? true : nil,
            generatorSize: options.objective == .electra ? options.generatorSize : nil,
            discriminatorWeight: options.objective == .electra ? options.discriminatorWeight : nil, positionInit: positionInit)
        try Checkpoint.write(runDirectory: options.runDirectory, name: name, config: config, vocabulary: vocabulary,
                             layout: model.layout, parameters: UnsafeBufferPointer(model.parameters), optimizer: optimizer, state: state,
                             tokenizer: TokenizerConfig(doLowerCase: lowercase, modelMaxLength: nil),
                             electraGenerator: (model as? ElectraForPreTraining)?.generatorConfig)
        lastCheckpoint = directory
        if let keep = options.keepLast { try Checkpoint.pruneStepCheckpoints(runDirectory: options.runDirectory, keeping: keep) }
        try group.barrier()
    }
}

/// A reducer that reduces as `inner` does, then zeroes `ranges` of the complete gradients (a frozen part).
final class ZeroingGradients: GradientReducer {
    let inner: GradientReducer
    let ranges: [Range<Int>]
    init(_ inner: GradientReducer, ranges: [Range<Int>]) { (self.inner, self.ranges) = (inner, ranges) }
    func reduce(_ gradients: UnsafeMutableBufferPointer<Float>) throws {
        try inner.reduce(gradients)
        for r in ranges { gradients.baseAddress!.advanced(by: r.lowerBound).update(repeating: 0, count: r.count) }
    }
}

/// Sums over a logging window: losses weighted by their counts (masked positions, sequences, real
/// tokens) so that they are the window's means whatever the micro-batch sizes. `sums` is the vector
/// that data-parallel processes add up.
struct MetricsWindow {
    var loss = 0.0, mlmLossSum = 0.0, nspLossSum = 0.0, rtdLossSum = 0.0
    var mlmCorrect = 0, mlmCount = 0, nspCorrect = 0, nspCount = 0, tokens = 0
    var rtdCorrect = 0, rtdCount = 0, replaced = 0, detected = 0, sampledOriginal = 0
    var updates = 0, norm = 0.0

    /// Adds one micro-batch's forward pass (`tokens`: its real tokens).
    mutating func add(_ out: PretrainingOutput, tokens: Int) {
        mlmLossSum += Double(out.mlmLoss) * Double(out.mlmCount)
        nspLossSum += Double(out.nspLoss) * Double(out.nspCount)
        mlmCorrect += out.mlmCorrect
        mlmCount += out.mlmCount
        nspCorrect += out.nspCorrect
        nspCount += out.nspCount
        self.tokens += tokens
        if let r = out.replacedToken {
            rtdLossSum += Double(r.loss) * Double(r.count)
            rtdCorrect += r.correct
            rtdCount += r.count
            replaced += r.replaced
            detected += r.detected
            sampledOriginal += r.sampledOriginal
        }
    }

    /// The fields every process adds up (not the update count and norm, the same everywhere).
    var sums: [Double] {
        get {
            [loss, mlmLossSum, nspLossSum, rtdLossSum, Double(mlmCorrect), Double(mlmCount), Double(nspCorrect), Double(nspCount), Double(tokens),
             Double(rtdCorrect), Double(rtdCount), Double(replaced), Double(detected), Double(sampledOriginal)]
        }
        set {
            (loss, mlmLossSum, nspLossSum, rtdLossSum) = (newValue[0], newValue[1], newValue[2], newValue[3])
            (mlmCorrect, mlmCount, nspCorrect, nspCount, tokens) = (Int(newValue[4]), Int(newValue[5]), Int(newValue[6]), Int(newValue[7]), Int(newValue[8]))
            (rtdCorrect, rtdCount, replaced, detected, sampledOriginal) = (Int(newValue[9]), Int(newValue[10]), Int(newValue[11]), Int(newValue[12]),
                                                                           Int(newValue[13]))
        }
    }

    /// The metrics row of the window: for ELECTRA the MLM fields are the generator's, with the
    /// discriminator's loss, accuracy and recall on replaced tokens, and the share of masked positions
    /// where the generator sampled the original token, in place of NSP.
    func row(step: Int, epoch: Int, learningRate: Double, seconds: Double, elapsed: Double, electra: Bool) -> StepMetrics {
        func ratio(_ a: Int, _ b: Int) -> Double { Double(a) / Double(max(1, b)) }
        var row = StepMetrics(
            step: step, epoch: epoch, loss: loss / Double(max(1, updates)), mlmLoss: mlmLossSum / Double(max(1, mlmCount)),
            nspLoss: electra ? nil : nspLossSum / Double(max(1, nspCount)), mlmAccuracy: ratio(mlmCorrect, mlmCount),
            nspAccuracy: electra ? nil : ratio(nspCorrect, nspCount), learningRate: learningRate,
            gradientNorm: norm / Double(max(1, updates)), tokensPerSecond: Double(tokens) / max(1e-9, seconds), seconds: elapsed)
        if electra {
            row.rtdLoss = rtdLossSum / Double(max(1, rtdCount))
            row.rtdAccuracy = ratio(rtdCorrect, rtdCount)
            row.rtdRecall = ratio(detected, replaced)
            row.sampledOriginal = ratio(sampledOriginal, mlmCount)
        }
        return row
    }
}
