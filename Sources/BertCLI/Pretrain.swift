import Support
import ArgumentParser
import BertModel
import Foundation
import PretrainingData
import Training
import WordPiece

/// `bert pretrain`: trains BertForPreTraining (MLM + NSP) on shards, a checkpoint per epoch.
struct PretrainCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "pretrain",
        abstract: "Pre-train a BERT encoder with masked-LM and next-sentence heads on shards (CPU, multi-threaded).")

    @Option(help: "Shard directory made by bert shards.") var shards: String
    @Option(help: "Run directory (checkpoints/RUN): epoch-NNNN/ checkpoints, metrics.jsonl, TensorBoard events.") var output: String
    @Option(help: "Model preset: tiny, mini, small, medium, base, minilm (default: mini; with --init, the checkpoint's config).") var model: String?
    @Option(help: "A Hugging Face BERT config.json instead of a preset.") var config: String?
    @Option(name: .customLong("init"), help: ArgumentHelp(
        "Continue pre-training from a model directory: a Hugging Face BERT (config.json, vocab.txt, model.safetensors), a BertKit checkpoint or a fine-tuned classifier.",
        discussion: "The run trains DIR's architecture from its weights (BertModel, BertForPreTraining, BertForMaskedLM or BertForSequenceClassification names, F32/F16/BF16); heads it lacks are initialised as transformers does. The shards must be built with DIR's vocab.txt and casing."))
    var initFrom: String?
    @Option(help: ArgumentHelp("mlm-nsp (BERT's masked LM and next-sentence prediction), mlm (masked LM alone, as RoBERTa and DAPT/TAPT; the NSP head and pooler stay as they start) or electra (replaced-token detection).",
        discussion: "electra trains a small generator with masked LM and a discriminator that says, at every token, whether the generator's sample replaced it (Clark et al. 2020); loss = MLM + λ·RTD. The checkpoint is the discriminator as transformers' ElectraForPreTraining (a BERT encoder for finetune, predict, evaluate and --init) with the generator in generator/ as ElectraForMaskedLM."))
    var objective: PretrainObjective = .mlmNsp
    @Option(help: "With --objective electra: the generator's width (hidden size, heads, intermediate size) as a fraction of the discriminator's, in (0, 1].")
    var generatorSize = 0.25
    @Option(help: "With --objective electra: λ, the weight of the discriminator's loss.") var discriminatorWeight = 50.0
    @Option(help: "Train only the MLM and NSP heads for the first N updates, the encoder unchanged (for --init from a checkpoint without an MLM head, whose new head starts random).")
    var freezeEncoderSteps = 0
    @Option(help: "Passes over the shards.") var epochs = 1
    @Option(help: "Instances per micro-batch.") var batchSize = 32
    @Option(help: "Micro-batches per optimizer update.") var accumulate = 1
    @Option(help: ArgumentHelp("Defaults for the options below: small-budget, google or adapt (default: adapt with --init, else small-budget).",
                               discussion: PretrainRecipe.help))
    var recipe: PretrainRecipe?
    @Flag(inversion: .prefixedNo, help: "Batch instances of similar length (windows of 64 batches sorted by length, in a seeded order) and pad each batch to its longest instance: less compute on padding when instances are short. (default: the recipe's)")
    var groupByLength: Bool?
    @Flag(inversion: .prefixedNo, help: "Initialise the position embeddings as sinusoids (scaled to the initializer's std) instead of random values. (default: the recipe's)")
    var sinusoidalPositions: Bool?
    @Option(help: "Peak learning rate. (default: the recipe's)") var learningRate: Double?
    @Option(help: "Warm-up updates (default: 10% of all updates).") var warmupSteps: Int?
    @Option(help: "Weight decay (not on biases and LayerNorm).") var weightDecay = 0.01
    @Flag(inversion: .prefixedNo, help: "Adam bias correction (default: on with --recipe adapt, else off for adamw as google-research/bert, on for lamb as NVIDIA's BERT).")
    var biasCorrection: Bool?
    @Option(help: "adamw (google-research/bert's) or lamb (NVIDIA's BERT: layer-wise trust ratio, for large global batches).")
    var optimizer = OptimizerKind.adamw
    @Option(help: "Global gradient-norm clipping.") var maxGradNorm = 1.0
    @Option(help: "Dropout on hidden states and attention probabilities (default: the recipe's; google keeps the config's).") var dropout: Double?
    @OptionGroup var compute: ComputeOptions
    @Option(help: "Random seed (initialisation, data order, dropout).") var seed: UInt64 = 42
    @Option(help: "Also checkpoint every N updates.") var saveEverySteps: Int?
    @Option(help: "Keep only the newest N step checkpoints (epoch checkpoints and latest are always kept).") var keepLast: Int?
    @Option(help: "A metrics row every N updates.") var logEverySteps = 10
    @Flag(help: "Continue from OUTPUT/latest exactly.") var resume = false
    @Flag(help: "Start again even if OUTPUT holds a run.") var overwrite = false
    @Flag(help: "Resume when OUTPUT holds a checkpoint of the same run, else start again (for pipelines).") var resumeIfPossible = false
    @Option(help: "Stop after this many updates in all (the learning rate decays to zero there).") var maxSteps: Int?
    @Option(help: .hidden) var stopAfterSteps: Int?
    @Option(help: ArgumentHelp(
        "Write every micro-batch as the model saw it to FILE, one JSON object per line (written under a temporary name, renamed when the run stops).",
        discussion: "Keys: step (from 1, as in metrics.jsonl), micro, batch_size, seq_length, input_ids, token_type_ids and attention_mask (batch_size × seq_length, row-major, after masking), masked_positions (flat b·seq_length + t) and masked_labels (the original ids there), and with --objective electra samples (the generator's draw at each masked position). For replaying a run in another implementation with the same batches, masks and samples; about 10 bytes per token. Not with --resume or several processes."))
    var recordBatches: String?
    @Option(help: "Under mpirun: MiB per gradient all-reduce bucket, each started as soon as the backward completes it (0: one sum after the backward).")
    var allreduceBucketMb = 4.0

    func validate() throws {
        if epochs < 1 { throw ValidationError("--epochs must be at least 1") }
        if batchSize < 1 { throw ValidationError("--batch-size must be at least 1") }
        if accumulate < 1 { throw ValidationError("--accumulate must be at least 1") }
        if let lr = learningRate, !(lr > 0) { throw ValidationError("--learning-rate must be positive") }
        if let d = dropout, !(0..<1).contains(d) { throw ValidationError("--dropout must be in [0, 1)") }
        if resume && overwrite { throw ValidationError("--resume and --overwrite exclude each other") }
        if let k = keepLast, k < 1 { throw ValidationError("--keep-last must be at least 1") }
        // 0 would scale every gradient to zero, not turn clipping off.
        if !(maxGradNorm > 0) { throw ValidationError("--max-grad-norm must be positive (a large value effectively turns clipping off)") }
        if !(allreduceBucketMb >= 0) { throw ValidationError("--allreduce-bucket-mb must be 0 or more") }
        if freezeEncoderSteps < 0 { throw ValidationError("--freeze-encoder-steps must be 0 or more") }
        if !(generatorSize > 0 && generatorSize <= 1) { throw ValidationError("--generator-size must be in (0, 1], is \(generatorSize)") }
        if !(discriminatorWeight >= 0 && discriminatorWeight.isFinite) { throw ValidationError("--discriminator-weight must be a finite number ≥ 0") }
        if objective == .electra && initFrom != nil {
            throw ValidationError("--objective electra trains from a random initialisation; continue pre-training a checkpoint with --objective mlm")
        }
        if recordBatches != nil && (resume || resumeIfPossible) {
            throw ValidationError("--record-batches records a whole run: start it without --resume or --resume-if-possible")
        }
        if initFrom != nil && sinusoidalPositions == true { throw ValidationError("--sinusoidal-positions starts positions anew; with --init they come from the checkpoint") }
    }

    func run() throws {
        let precision = try compute.precision.resolve()
        let inputs = try PretrainingInputs(shardDirectory: shards)
        let recipe = self.recipe ?? (initFrom == nil ? .smallBudget : .adapt)
        let initial = try initFrom.map { try InitialWeights(directory: $0) }
        var cfg: BertConfig
        if let initial {
            let requested = model != nil || config != nil ? try inputs.modelConfig(configFile: config, preset: model ?? "mini", dropout: nil) : nil
            try initial.check(shards: inputs.shards, requested: requested, requestedName: config ?? model.map { "--model \($0)" })
            cfg = initial.config
            if let d = dropout ?? recipe.dropout { cfg.hiddenDropoutProb = d; cfg.attentionProbsDropoutProb = d }
        } else {
            cfg = try inputs.modelConfig(configFile: config, preset: model ?? "mini", dropout: dropout ?? recipe.dropout)
        }

        var options = PretrainOptions(runDirectory: output)
        options.epochs = epochs
        options.batchSize = batchSize
        options.accumulate = accumulate
        options.groupWindowBatches = (groupByLength ?? recipe.groupByLength) ? 64 : 0
        options.sinusoidalPositions = initial == nil && (sinusoidalPositions ?? recipe.sinusoidalPositions)
        options.objective = objective
        options.generatorSize = generatorSize
        options.discriminatorWeight = discriminatorWeight
        options.freezeEncoderSteps = freezeEncoderSteps
        options.learningRate = learningRate ?? recipe.learningRate
        options.warmupSteps = warmupSteps
        options.maxGradNorm = maxGradNorm
        options.adam = AdamW.Hyper(weightDecay: weightDecay, biasCorrection: biasCorrection ?? recipe.biasCorrection ?? (optimizer == .lamb))
        options.optimizer = optimizer
        options.seed = seed
        options.precision = precision
        options.threads = compute.threads
        options.saveEverySteps = saveEverySteps
        options.keepLast = keepLast
        options.logEverySteps = logEverySteps
        options.resume = resume
        options.overwrite = overwrite
        options.resumeIfPossible = resumeIfPossible
        options.stopAfterSteps = stopAfterSteps
        options.maxSteps = maxSteps
        options.allReduceBucketElements = Int(allreduceBucketMb * 1_048_576 / 4)
        let trainer = try Pretrainer(options: options, config: cfg, shards: inputs.shards, vocabulary: inputs.vocabularyData,
                                     maskerForDynamic: inputs.masker, processGroup: Processes.group, initialWeights: initial)
        let params = trainer.model.layout.count
        let group = trainer.group
        let processes = group.size > 1 ? "\(group.size) processes (MPI) × " : ""
        if group.isRoot { log(String(format: "bert pretrain: %@ (L%d H%d A%d I%d, %.2fM parameters), %d instances, %d updates (batch %d × %d), recipe %@: %@ lr %g, dropout %g%@%@, %@%d thread%@, %@%@",
                   initFrom.map { "--init " + $0 } ?? config ?? model ?? "mini", cfg.numHiddenLayers, cfg.hiddenSize, cfg.numAttentionHeads, cfg.intermediateSize,
                   Double(params) / 1e6, trainer.loader.instancesPerEpoch, trainer.totalSteps, batchSize, accumulate,
                   recipe.rawValue, optimizer == .lamb ? "LAMB" : "AdamW", options.learningRate, cfg.hiddenDropoutProb,
                   options.groupWindowBatches > 0 ? ", length-grouped" : "", options.sinusoidalPositions ? ", sinusoidal positions" : "",
                   processes, options.threads, options.threads == 1 ? "" : "s", compute.precision.summary(precision), trainer.step > 0 ? ", resuming at update \(trainer.step)" : "")
                   + (objective == .mlm ? ", objective mlm (no NSP)" : "")
                   + (objective == .electra ? String(format: ", objective electra (generator %g of the width, λ %g)", generatorSize, discriminatorWeight) : "")
                   + (freezeEncoderSteps > 0 ? ", heads only for the first \(freezeEncoderSteps) updates" : ""))
            if let report = trainer.initReport, let initFrom { log(report.message(directory: initFrom)) }
        }
        let progress = ProgressReporter(label: "pretrain")
        trainer.onProgress = { p in
            progress.update(done: p.step, total: p.totalSteps, detail: String(
                format: "epoch %d loss %.4f %@ acc %.3f %.0f tok/s", p.epoch, p.loss, objective == .electra ? "generator mlm" : "mlm",
                p.mlmAccuracy, p.tokensPerSecond))
        }
        var recorder: BatchRecorder?
        if let recordBatches {
            guard group.size == 1 else { throw UsageError("--record-batches needs a single process (each process sees only its slice of a batch)") }
            let file = try BatchRecorder(path: recordBatches)
            let electra = trainer.model as? ElectraForPreTraining
            trainer.onMicroBatch = { step, micro, batch, _ in try file.record(step: step, micro: micro, batch: batch, samples: electra?.sampledTokens) }
            recorder = file
        }
        let last = try trainer.run()
        try recorder?.commit()
        progress.finish()
        if let reducer = trainer.gradientReducer as? AllReduceGradients, group.isRoot, reducer.updates > 0 {
            log(String(format: "bert pretrain: all-reduce: %d buckets, %.1f MB per update, %.1f ms per update waiting after the backward",
                       reducer.buckets.count, Double(trainer.model.layout.count * 4) / 1e6, 1000 * reducer.secondsWaiting / Double(reducer.updates)))
        }
        if let last, group.isRoot { print(last) }
    }
}

extension PretrainRecipe: ExpressibleByArgument {}
extension PretrainObjective: ExpressibleByArgument {}
extension OptimizerKind: ExpressibleByArgument {}

/// A progress bar with rate and ETA on a terminal; plain lines otherwise.
final class ProgressReporter {
    let label: String
    let started = Date()
    let terminal = isatty(2) != 0
    var lastPlain = Date.distantPast

    init(label: String) { self.label = label }

    func update(done: Int, total: Int, detail: String) {
        let elapsed = Date().timeIntervalSince(started)
        let rate = Double(done) / max(elapsed, 1e-9)
        let eta = rate > 0 ? Double(total - done) / rate : 0
        let fraction = Double(done) / Double(max(1, total))
        if terminal {
            let width = 24
            let filled = Int(fraction * Double(width))
            let bar = String(repeating: "█", count: filled) + String(repeating: "░", count: width - filled)
            FileHandle.standardError.write(Data(String(format: "\r%@ %@ %d/%d %@ ETA %@   ", label, bar, done, total, detail, clock(eta)).utf8))
        } else if Date().timeIntervalSince(lastPlain) >= 10 || done == total {
            lastPlain = Date()
            log(String(format: "%@: %d/%d (%.1f%%) %@ elapsed %@ ETA %@", label, done, total, 100 * fraction, detail, clock(elapsed), clock(eta)))
        }
    }

    func finish() {
        if terminal { FileHandle.standardError.write(Data("\n".utf8)) }
    }

    func clock(_ s: Double) -> String {
        let t = Int(s.rounded())
        return t >= 3600 ? String(format: "%d:%02d:%02d", t / 3600, t / 60 % 60, t % 60) : String(format: "%d:%02d", t / 60, t % 60)
    }
}

/// `--record-batches`: each micro-batch as one JSON line, into a file that appears whole when the run stops.
final class BatchRecorder {
    let file: AtomicFileWriter
    var line: [UInt8] = []

    init(path: String) throws { file = try AtomicFileWriter(path: path) }

    func record(step: Int, micro: Int, batch: PretrainingBatch, samples: [Int32]?) throws {
        line.removeAll(keepingCapacity: true)
        func key(_ name: String) { line.append(contentsOf: Array(",\"\(name)\":".utf8)) }
        func ints(_ name: String, _ values: [Int32]) {
            key(name)
            line.append(UInt8(ascii: "["))
            for (i, v) in values.enumerated() {
                if i > 0 { line.append(UInt8(ascii: ",")) }
                line.append(contentsOf: Array(String(v).utf8))
            }
            line.append(UInt8(ascii: "]"))
        }
        line.append(contentsOf: Array("{\"step\":\(step),\"micro\":\(micro),\"batch_size\":\(batch.batchSize)".utf8))
        key("seq_length")
        line.append(contentsOf: Array(String(batch.seqLength).utf8))
        ints("input_ids", batch.inputIds)
        ints("token_type_ids", batch.tokenTypeIds)
        ints("attention_mask", batch.attentionMask)
        ints("masked_positions", batch.maskedPositions)
        ints("masked_labels", batch.maskedLabels)
        if let samples { ints("samples", samples) }
        line.append(contentsOf: Array("}\n".utf8))
        try file.write(line)
    }

    func commit() throws { try file.commit() }
}
