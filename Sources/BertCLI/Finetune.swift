import ArgumentParser
import BertModel
import Foundation
import ClassificationData
import PretrainingData
import Support
import TextNormalization
import Training
import WordPiece
import Checkpoints
import Inference

/// Column names and the tokenizer's casing, shared by finetune, predict and evaluate.
struct ClassificationFileOptions: ParsableArguments {
    @Option(help: "Column with the text.") var textColumn = "text"
    @Option(help: "Column with the second text of a pair (used when present).") var textBColumn = "text_b"
    @Option(help: "Column with the label.") var labelColumn = "label"
    @Option(help: "Column with the split (train/dev/test), used when present.") var splitColumn = "split"
    @Option(help: ArgumentHelp("Tokens per example, [CLS]/[SEP] included (longer pairs are truncated longest-first).",
                               discussion: "finetune: default 128, recorded in OUTPUT's tokenizer_config.json; predict and evaluate: default the recorded length."))
    var maxSeqLength: Int?
    @Flag(inversion: .prefixedNo,
          help: "Keep case (a cased vocabulary) or lowercase (default: the checkpoint's tokenizer_config.json do_lower_case, else lowercase).")
    var cased: Bool?
    @Option(help: "vocab.txt (default: the checkpoint's).") var vocab: String?

    func columns(requireLabel: Bool = true) -> ClassificationColumns {
        ClassificationColumns(text: textColumn, textB: textBColumn, label: labelColumn, split: splitColumn, requireLabel: requireLabel)
    }

    /// Fine-tuning's length: --max-seq-length, else 128.
    var finetuneLength: Int { maxSeqLength ?? ClassifierInputs.fallbackLength }

    /// Whether to lowercase: --[no-]cased, else what `recorded` says, else lowercase.
    func lowercase(recorded: TokenizerConfig?) -> Bool { cased.map { !$0 } ?? recorded?.doLowerCase ?? true }

    func tokenizer(_ vocabularyPath: String, lowercase: Bool) throws -> BertTokenizer {
        var options = BertNormalizerOptions()
        options.lowercase = lowercase
        return BertTokenizer(vocabulary: try Vocabulary.load(path: vocabularyPath), options: options)
    }
}

/// `bert finetune`: a classifier on the pooled [CLS] of a BertKit or Hugging Face BERT checkpoint.
struct FinetuneCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "finetune",
        abstract: "Fine-tune a sequence classifier (TSV/CSV/JSONL with a header) from a BertKit or Hugging Face BERT checkpoint.")

    @Option(help: "Checkpoint directory: config.json, model.safetensors [, vocab.txt].") var checkpoint: String?
    @Flag(help: ArgumentHelp("Start from a randomly initialised encoder: the baseline that shows what pre-training bought.",
                             discussion: "Its shape and vocabulary come from --checkpoint (its weights unused), or from --config and --vocab."))
    var fromScratch = false
    @Option(help: "With --from-scratch: a model preset (tiny, mini, small, medium, base, minilm) or a config.json.") var config: String?
    @Flag(inversion: .prefixedNo, help: ArgumentHelp("With --from-scratch: start the position embeddings as sinusoids (or, with --no-, as normal draws).",
                                                      discussion: "Default: as the checkpoint's pre-training started (its training_state.json's position_init), so that the baseline differs from the pre-trained encoder by pre-training alone; normal draws where nothing is recorded (a Hugging Face directory, --config)."))
    var sinusoidalPositions: Bool?
    @Option(help: "Training file (rows with split train, or all rows when there is no split column).") var data: String
    @Option(help: "Evaluation file that chooses the best epoch (default: the data's dev split, else --eval-fraction of its train rows; a test split is never used here).") var eval: String?
    @Option(help: "Output directory: the best model, epoch-N copies, metrics.jsonl, TensorBoard events.") var output: String
    @Option var epochs = 3
    @Option(help: "Examples per micro-batch (under mpirun, all processes' together).") var batchSize = 32
    @Option(help: ArgumentHelp("Micro-batches per optimizer update.",
                               discussion: "An update's batch-size × accumulate examples are chosen, grouped by length and shuffled whole, then cut into micro-batches: the same training as --batch-size × accumulate in one batch, in less memory."))
    var accumulate = 1
    @Option var learningRate = 5e-5
    @Option(help: "Share of updates for the linear warm-up.") var warmupFraction = 0.1
    @Flag(help: "Batch examples of similar length together (less padding, faster; transformers' group_by_length).")
    var groupByLength = false
    @Option var weightDecay = 0.01
    @Option(help: "Dropout on hidden states and attention probabilities while fine-tuning (default: the checkpoint config's; a checkpoint pre-trained without dropout has 0 there).")
    var dropout: Double?
    @Option(help: "Share of the train rows held out as the dev set when there is neither an eval file nor a dev split.") var evalFraction = 0.1
    @Option(help: ArgumentHelp("Share of the training rows to train on (after the dev hold-out), chosen by a hash of the line seeded with --seed.",
                               discussion: "For a low-resource setting or a learning curve over labels; the dev rows do not change with it."))
    var trainFraction = 1.0
    @Option var seed: UInt64 = 42
    @Option(help: "A metrics row every N updates (and at each epoch's end).") var logEverySteps = 10
    @OptionGroup var compute: ComputeOptions
    @Option(help: "Under mpirun: MiB per gradient all-reduce bucket (0: one sum after the backward).") var allreduceBucketMb = 4.0
    @OptionGroup var file: ClassificationFileOptions

    func validate() throws {
        if epochs < 1 { throw ValidationError("--epochs must be at least 1") }
        if batchSize < 1 { throw ValidationError("--batch-size must be at least 1") }
        if accumulate < 1 { throw ValidationError("--accumulate must be at least 1") }
        if logEverySteps < 1 { throw ValidationError("--log-every-steps must be at least 1") }
        if !(learningRate > 0) { throw ValidationError("--learning-rate must be positive") }
        if !(0..<1).contains(evalFraction) { throw ValidationError("--eval-fraction must be in [0, 1)") }
        if !(trainFraction > 0 && trainFraction <= 1) { throw ValidationError("--train-fraction must be in (0, 1]") }
        if !(allreduceBucketMb >= 0) { throw ValidationError("--allreduce-bucket-mb must be 0 or more") }
        if let d = dropout, !(0..<1).contains(d) { throw ValidationError("--dropout must be in [0, 1)") }
        if file.finetuneLength < 3 { throw ValidationError("--max-seq-length must be at least 3") }
        if fromScratch {
            if checkpoint == nil && (config == nil || file.vocab == nil) {
                throw ValidationError("--from-scratch needs --checkpoint (for its config and vocabulary) or --config and --vocab")
            }
            if checkpoint != nil && config != nil { throw ValidationError("--from-scratch takes --checkpoint or --config, not both") }
        } else {
            if sinusoidalPositions != nil { throw ValidationError("--sinusoidal-positions is for --from-scratch; a checkpoint brings its own positions") }
            if checkpoint == nil { throw ValidationError("give --checkpoint (or --from-scratch for a randomly initialised encoder)") }
            if config != nil { throw ValidationError("--config is for --from-scratch; a checkpoint brings its own config.json") }
        }
    }

    /// The encoder to start from: a checkpoint's weights, or (--from-scratch) a random one of its shape,
    /// its positions drawn as the checkpoint's pre-training drew them unless the flag says otherwise.
    func source() throws -> PretrainedSource {
        guard fromScratch else { return try PretrainedSource(directory: checkpoint!, vocabulary: file.vocab) }
        var source = try PretrainedSource(randomlyInitializedLike: checkpoint, config: config, vocabulary: file.vocab)
        if let sinusoidalPositions {
            source.sinusoidalPositions = sinusoidalPositions
        } else if let checkpoint, Checkpoint.holdsTrainingState(checkpoint) {
            let state = try Checkpoint.readState(checkpoint)
            if let recorded = state.positionInit {
                source.sinusoidalPositions = recorded == .sinusoidal
            } else if state.initFrom == nil && Processes.group.isRoot {
                log("bert finetune: note: \(checkpoint)'s training_state.json does not say how its pre-training drew the position "
                    + "embeddings (BertKit records it since 2026-12-07); the baseline draws them from normal. Give --sinusoidal-positions "
                    + "if that run used them (the small-budget recipe does).")
            }
        }
        return source
    }

    func run() throws {
        let started = Date()
        let modelPrecision = try compute.precision.resolve()  // before any reading: a refused precision costs nothing
        var source = try source()
        if let d = dropout { source.config.hiddenDropoutProb = d; source.config.attentionProbsDropoutProb = d }
        let origin = source.directory
        let maxSeqLength = file.finetuneLength
        guard maxSeqLength <= source.config.maxPositionEmbeddings else {
            throw UsageError("--max-seq-length \(maxSeqLength) is more than the model's max_position_embeddings \(source.config.maxPositionEmbeddings)")
        }
        let lowercase = file.lowercase(recorded: source.tokenizerConfig)
        let tokenizer = try file.tokenizer(source.vocabularyPath, lowercase: lowercase)
        guard tokenizer.vocabulary.count == source.config.vocabSize else {
            throw UsageError("\(source.vocabularyPath): \(tokenizer.vocabulary.count) tokens, but the config of \(origin) has vocab_size \(source.config.vocabSize)")
        }
        // Under mpirun, process 0 tokenizes into OUTPUT/.cache first; the others then read the same files.
        let group = Processes.group
        let dataset = try ClassificationDataset.prepare(
            data: data, columns: file.columns(), tokenizer: tokenizer, maxLength: maxSeqLength, evalFile: eval, evalFraction: evalFraction,
            trainFraction: trainFraction, seed: seed, cacheDirectory: (output as NSString).appendingPathComponent(".cache"), group: group)
        let (labels, train, evalStore) = (dataset.labels, dataset.train, dataset.eval)
        var options = FineTuneOptions(outputDirectory: output)
        options.epochs = epochs
        options.batchSize = batchSize
        options.accumulate = accumulate
        options.learningRate = learningRate
        options.warmupFraction = warmupFraction
        options.groupByLength = groupByLength
        options.adam.weightDecay = weightDecay
        options.maxSeqLength = maxSeqLength
        options.lowercase = lowercase
        options.seed = seed
        options.logEverySteps = logEverySteps
        options.threads = compute.threads
        options.precision = modelPrecision
        let tuner = try FineTuner(options: options, source: source, labels: labels, train: train, eval: evalStore, processGroup: group,
                                  allReduceBucketElements: Int(allreduceBucketMb * 1_048_576 / 4))
        let evalSource: String
        switch dataset.evalSource {
        case let .split(name): evalSource = " (split \(name))"
        case let .file(path): evalSource = " (\(path))"
        case let .trainSplitHeldOut(fraction): evalSource = " (\(fraction) of the train split held out as dev; the test split is not used)"
        case let .heldOut(fraction): evalSource = " (held out \(fraction))"
        }
        let subset = trainFraction < 1 ? " (--train-fraction \(trainFraction) of the train rows)" : ""
        let processes = group.size > 1 ? "\(group.size) processes (MPI) × " : ""
        if group.isRoot {
            log("bert finetune: \(origin) → \(output): \(train.count) training examples\(subset), \(evalStore?.count ?? 0) for evaluation" + evalSource
                + ", labels \(labels.joined(separator: ", ")), max_seq_length \(maxSeqLength), \(lowercase ? "uncased" : "cased"), \(epochs) epoch\(epochs == 1 ? "" : "s"), batch \(batchSize)\(accumulate > 1 ? " × accumulate \(accumulate)" : ""), \(processes)\(options.threads) thread\(options.threads == 1 ? "" : "s"), "
                + compute.precision.summary(options.precision))
        }
        let progress = ProgressReporter(label: "finetune")
        tuner.onProgress = { p in
            progress.update(done: p.step, total: p.totalSteps, detail: String(format: "epoch %d loss %.4f acc %.3f %.0f tok/s",
                                                                              p.epoch + 1, p.loss, p.accuracy, p.tokensPerSecond))
        }
        tuner.onEpoch = { epoch, m in
            progress.finish()
            log(String(format: "bert finetune: epoch %d: accuracy %.4f, macro-F1 %.4f on %d examples", epoch, m.accuracy, m.macroF1, m.total))
        }
        let best = try tuner.run()
        progress.finish()
        guard group.isRoot else { return }
        var summary: [String: Any] = ["output": output, "source": origin, "from_scratch": fromScratch, "best_epoch": best.epoch, "labels": labels, "train_examples": train.count, "train_fraction": trainFraction,
                                      "seconds": Date().timeIntervalSince(started)]
        if let m = best.metrics { summary["eval"] = m.jsonObject() }
        if fromScratch { summary["position_init"] = source.sinusoidalPositions ? "sinusoidal" : "normal" }
        let json = try JSONSerialization.data(withJSONObject: summary, options: [.sortedKeys, .prettyPrinted])
        try writeFileAtomically(json + Data([0x0A]), to: (output as NSString).appendingPathComponent("finetune_summary.json"))
        if let m = best.metrics { log("best epoch \(best.epoch):\n" + m.table()) }
        print(output)
    }
}
