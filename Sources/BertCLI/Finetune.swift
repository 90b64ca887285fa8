import Support
import ArgumentParser
import BertModel
import Foundation
import PretrainingData
import TextNormalization
import Training
import WordPiece

/// Column names and the tokenizer's casing, shared by finetune, predict and evaluate.
struct ClassificationFileOptions: ParsableArguments {
    @Option(help: "Column with the text.") var textColumn = "text"
    @Option(help: "Column with the second text of a pair (used when present).") var textBColumn = "text_b"
    @Option(help: "Column with the label.") var labelColumn = "label"
    @Option(help: "Column with the split (train/dev/test), used when present.") var splitColumn = "split"
    @Option(help: "Tokens per example, [CLS]/[SEP] included (longer pairs are truncated longest-first).") var maxSeqLength = 128
    @Flag(help: "Keep case (for a cased vocabulary).") var cased = false
    @Option(help: "vocab.txt (default: the checkpoint's).") var vocab: String?

    func columns(requireLabel: Bool = true) -> ClassificationColumns {
        ClassificationColumns(text: textColumn, textB: textBColumn, label: labelColumn, split: splitColumn, requireLabel: requireLabel)
    }

    func tokenizer(_ vocabularyPath: String) throws -> BertTokenizer {
        var options = BertNormalizerOptions()
        options.lowercase = !cased
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
    @Option(help: "With --from-scratch: a model preset (tiny, mini, small, medium, base) or a config.json.") var config: String?
    @Option(help: "Training file (rows with split train, or all rows when there is no split column).") var data: String
    @Option(help: "Evaluation file that chooses the best epoch (default: the data's dev split, else --eval-fraction of its train rows; a test split is never used here).") var eval: String?
    @Option(help: "Output directory: the best model, epoch-N copies, metrics.jsonl, TensorBoard events.") var output: String
    @Option var epochs = 3
    @Option var batchSize = 32
    @Option var learningRate = 5e-5
    @Option(help: "Share of updates for the linear warm-up.") var warmupFraction = 0.1
    @Flag(help: "Batch examples of similar length together (less padding, faster; transformers' group_by_length).")
    var groupByLength = false
    @Option var weightDecay = 0.01
    @Option(help: "Dropout on hidden states and attention probabilities while fine-tuning (default: the checkpoint config's; a checkpoint pre-trained without dropout has 0 there).")
    var dropout: Double?
    @Option(help: "Share of the train rows held out as the dev set when there is neither an eval file nor a dev split.") var evalFraction = 0.1
    @Option var seed: UInt64 = 42
    @Option(help: "Compute threads (default: all cores).") var threads: Int?
    @OptionGroup var file: ClassificationFileOptions

    func validate() throws {
        if epochs < 1 { throw ValidationError("--epochs must be at least 1") }
        if batchSize < 1 { throw ValidationError("--batch-size must be at least 1") }
        if !(learningRate > 0) { throw ValidationError("--learning-rate must be positive") }
        if !(0..<1).contains(evalFraction) { throw ValidationError("--eval-fraction must be in [0, 1)") }
        if let d = dropout, !(0..<1).contains(d) { throw ValidationError("--dropout must be in [0, 1)") }
        if file.maxSeqLength < 3 { throw ValidationError("--max-seq-length must be at least 3") }
        if fromScratch {
            if checkpoint == nil && (config == nil || file.vocab == nil) {
                throw ValidationError("--from-scratch needs --checkpoint (for its config and vocabulary) or --config and --vocab")
            }
            if checkpoint != nil && config != nil { throw ValidationError("--from-scratch takes --checkpoint or --config, not both") }
        } else {
            if checkpoint == nil { throw ValidationError("give --checkpoint (or --from-scratch for a randomly initialised encoder)") }
            if config != nil { throw ValidationError("--config is for --from-scratch; a checkpoint brings its own config.json") }
        }
    }

    /// The encoder to start from: a checkpoint's weights, or (--from-scratch) a random one of its shape.
    func source() throws -> PretrainedSource {
        if !fromScratch { return try PretrainedSource(directory: checkpoint!, vocabulary: file.vocab) }
        if let checkpoint {
            let loaded = try PretrainedSource(directory: checkpoint, vocabulary: file.vocab)
            return try PretrainedSource(randomlyInitialized: loaded.config, vocabulary: loaded.vocabularyPath,
                                        description: "random init shaped as \(checkpoint)")
        }
        let vocabPath = file.vocab!
        let vocabulary = try Vocabulary.load(path: vocabPath)
        let name = config!
        let cfg: BertConfig
        if FileManager.default.fileExists(atPath: name) {
            cfg = try BertConfig.load(path: name)
        } else {
            cfg = try BertConfig.preset(name, vocabSize: vocabulary.count)
        }
        try cfg.validate(path: name)
        return try PretrainedSource(randomlyInitialized: cfg, vocabulary: vocabPath, description: "random init (\(name))")
    }

    func run() throws {
        let started = Date()
        var source = try source()
        if let d = dropout { source.config.hiddenDropoutProb = d; source.config.attentionProbsDropoutProb = d }
        let origin = source.directory
        guard file.maxSeqLength <= source.config.maxPositionEmbeddings else {
            throw UsageError("--max-seq-length \(file.maxSeqLength) is more than the model's max_position_embeddings \(source.config.maxPositionEmbeddings)")
        }
        let tokenizer = try file.tokenizer(source.vocabularyPath)
        guard tokenizer.vocabulary.count == source.config.vocabSize else {
            throw UsageError("\(source.vocabularyPath): \(tokenizer.vocabulary.count) tokens, but the config of \(origin) has vocab_size \(source.config.vocabSize)")
        }
        // Which rows train and which evaluate.
        let columns = file.columns()
        var hasSplit = false, hasDev = false, trainRows = 0
        var labelSet = Set<String>()
        let scan = try ClassificationReader(path: data, columns: columns)
        while let e = try scan.nextExample() {
            if let s = e.split { hasSplit = true; if s == "dev" { hasDev = true } }
            if isTrain(e, hasSplit: e.split != nil, hasDev: true) { labelSet.insert(e.label); trainRows += 1 }
        }
        // A file whose first rows had no split but later ones did is treated as split throughout.
        // Labels come from every train row (held-out dev rows included).
        if hasSplit {
            labelSet = []
            trainRows = 0
            let again = try ClassificationReader(path: data, columns: columns)
            while let e = try again.nextExample() {
                if e.split == "train" { labelSet.insert(e.label); trainRows += 1 }
            }
        }
        // With train/test splits but no dev split, the test split is never used to choose the epoch:
        // --eval-fraction of the train rows is held out as the dev set instead.
        let holdsOutDev = hasSplit && !hasDev && eval == nil && evalFraction > 0
        let labels = labelSet.sorted()
        guard trainRows > 0 else { throw UsageError("\(data): no training rows (split \"train\", or rows without a split)") }
        guard labels.count >= 2 else {
            throw UsageError("\(data): the \(columns.label) column has one class only (\(labels.first ?? "")); a classifier needs at least 2")
        }
        let ids = Dictionary(uniqueKeysWithValues: labels.enumerated().map { ($0.element, Int32($0.offset)) })
        let cache = (output as NSString).appendingPathComponent(".cache")
        try FileManager.default.createDirectory(atPath: cache, withIntermediateDirectories: true)
        let train = try ExampleStore.build(
            path: cache + "/train.examples", reader: try ClassificationReader(path: data, columns: columns), tokenizer: tokenizer,
            maxLength: file.maxSeqLength, include: { isTrain($0, hasSplit: hasSplit, hasDev: hasDev) },
            label: { ids[$0.label]! })
        let evalPath = eval ?? data
        let evalSplit: String? = eval != nil ? nil : hasSplit ? (hasDev ? "dev" : nil) : nil
        var evalStore: ExampleStore? = nil
        if eval != nil || hasDev || evalFraction > 0 {
            let store = try ExampleStore.build(
                path: cache + "/eval.examples", reader: try ClassificationReader(path: evalPath, columns: columns), tokenizer: tokenizer,
                maxLength: file.maxSeqLength,
                include: { e in
                    if eval != nil { return true }
                    if hasSplit && hasDev { return e.split == "dev" }
                    if hasSplit { return e.split == "train" && !isTrain(e, hasSplit: true, hasDev: false) }
                    return !isTrain(e, hasSplit: false, hasDev: false)
                },
                label: { e in
                    guard let id = ids[e.label] else {
                        throw UsageError("\(evalPath): line \(e.line): label \"\(e.label)\" never occurs in the training rows (\(labels.joined(separator: ", ")))")
                    }
                    return id
                })
            evalStore = store.count > 0 ? store : nil
        }
        var options = FineTuneOptions(outputDirectory: output)
        options.epochs = epochs
        options.batchSize = batchSize
        options.learningRate = learningRate
        options.warmupFraction = warmupFraction
        options.groupByLength = groupByLength
        options.adam.weightDecay = weightDecay
        options.maxSeqLength = file.maxSeqLength
        options.seed = seed
        options.threads = threads ?? ProcessInfo.processInfo.activeProcessorCount
        let tuner = try FineTuner(options: options, source: source, labels: labels, train: train, eval: evalStore)
        let evalSource: String
        if let evalSplit { evalSource = " (split \(evalSplit))" } else if let eval { evalSource = " (\(eval))" } else if holdsOutDev {
            evalSource = " (\(evalFraction) of the train split held out as dev; the test split is not used)"
        } else { evalSource = " (held out \(evalFraction))" }
        log("bert finetune: \(origin) → \(output): \(train.count) training examples, \(evalStore?.count ?? 0) for evaluation" + evalSource
            + ", labels \(labels.joined(separator: ", ")), \(epochs) epochs, \(options.threads) threads")
        let progress = ProgressReporter(label: "finetune")
        tuner.onProgress = { p in
            progress.update(done: p.step, total: p.totalSteps, detail: String(format: "epoch %d loss %.4f acc %.3f %.0f tok/s",
                                                                              p.epoch + 1, p.loss, p.mlmAccuracy, p.tokensPerSecond))
        }
        tuner.onEpoch = { epoch, m in
            progress.finish()
            log(String(format: "bert finetune: epoch %d: accuracy %.4f, macro-F1 %.4f on %d examples", epoch, m.accuracy, m.macroF1, m.total))
        }
        let best = try tuner.run()
        progress.finish()
        var summary: [String: Any] = ["output": output, "source": origin, "from_scratch": fromScratch, "best_epoch": best.epoch, "labels": labels, "train_examples": train.count,
                                      "seconds": Date().timeIntervalSince(started)]
        if let m = best.metrics { summary["eval"] = m.jsonObject() }
        let json = try JSONSerialization.data(withJSONObject: summary, options: [.sortedKeys, .prettyPrinted])
        try writeFileAtomically(json + Data([0x0A]), to: (output as NSString).appendingPathComponent("finetune_summary.json"))
        if let m = best.metrics { log("best epoch \(best.epoch):\n" + m.table()) }
        print(output)
    }

    /// A row trains unless it is held out: by its split, or by a seeded hash of its line (rows
    /// without a split, or train rows of a file with no dev split, so that a test split never
    /// chooses the epoch).
    func isTrain(_ e: ClassificationExample, hasSplit: Bool, hasDev: Bool) -> Bool {
        if hasSplit {
            guard e.split == "train" else { return false }
            if hasDev { return true }
        }
        if eval != nil || evalFraction == 0 { return true }
        var g = SeededGenerator(seed: seed, stream: [0x484F4C44, UInt64(e.line)])  // "HOLD"
        return g.nextDouble() >= evalFraction
    }
}

/// Loads a fine-tuned classifier directory (config.json with id2label, model.safetensors, vocab.txt).
func loadClassifier(_ directory: String, maxBatch: Int, maxSeqLength: Int, threads: Int) throws -> (BertForSequenceClassification, [String]) {
    let source = try PretrainedSource(directory: directory)
    guard let id2label = source.config.id2label, !id2label.isEmpty else {
        throw UsageError("\(directory)/config.json: no id2label; give a directory written by bert finetune (or a transformers classifier)")
    }
    let labels = (0..<id2label.count).map { id2label[String($0)] ?? "LABEL_\($0)" }
    let model = try BertForSequenceClassification(config: source.config, numLabels: labels.count, maxBatch: maxBatch,
                                                  maxSeqLength: min(maxSeqLength, source.config.maxPositionEmbeddings), threads: threads)
    try Checkpoint.loadParameters(from: source.weights!, layout: model.layout, into: model.parameters)  // a directory always has weights
    return (model, labels)
}

/// `bert predict`: labels and probabilities for every row of a file.
struct PredictCommand: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "predict", abstract: "Predict labels with a fine-tuned classifier.")

    @Option(help: "A directory written by bert finetune.") var checkpoint: String
    @Option(help: "TSV/CSV/JSONL with a header and a text column (labels not needed).") var input: String
    @Option(help: "Write here instead of stdout (.jsonl gives JSON lines, else TSV).") var output: String?
    @Option(help: "tsv or jsonl (default: from --output's extension, else tsv).") var format: String?
    @Option var batchSize = 32
    @Option var threads: Int?
    @OptionGroup var file: ClassificationFileOptions

    func run() throws {
        let threads = self.threads ?? ProcessInfo.processInfo.activeProcessorCount
        let (model, labels) = try loadClassifier(checkpoint, maxBatch: batchSize, maxSeqLength: file.maxSeqLength, threads: threads)
        let tokenizer = try file.tokenizer(file.vocab ?? (checkpoint as NSString).appendingPathComponent("vocab.txt"))
        let temp = FileManager.default.temporaryDirectory.appendingPathComponent("bert-predict-\(getpid()).examples").path
        defer { unlink(temp) }
        let store = try ExampleStore.build(path: temp, reader: try ClassificationReader(path: input, columns: file.columns(requireLabel: false)),
                                           tokenizer: tokenizer, maxLength: model.maxSeqLength, include: { _ in true }, label: { _ in -1 })
        let jsonl = (format ?? ((output ?? "").hasSuffix(".jsonl") ? "jsonl" : "tsv")) == "jsonl"
        var text = jsonl ? "" : (["label"] + labels.map { "p_" + $0 }).joined(separator: "\t") + "\n"
        try FineTuner.predict(model: model, store: store, batchSize: batchSize) { _, p in
            let best = p.indices.max { p[$0] < p[$1] }!
            if jsonl {
                let obj: [String: Any] = ["label": labels[best], "probabilities": Dictionary(uniqueKeysWithValues: zip(labels, p))]
                text += String(decoding: try JSONSerialization.data(withJSONObject: obj, options: [.sortedKeys]), as: UTF8.self) + "\n"
            } else {
                text += ([labels[best]] + p.map { String(format: "%.6f", $0) }).joined(separator: "\t") + "\n"
            }
        }
        if let output { try writeFileAtomically(Data(text.utf8), to: output) } else { print(text, terminator: "") }
    }
}

/// `bert evaluate`: classification metrics on a labelled file, or MLM/NSP metrics on shards.
struct EvaluateCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "evaluate",
        abstract: "Evaluate a classifier on a labelled file, or a pre-trained model's MLM and NSP on shards.")

    @Option(help: "A checkpoint directory.") var checkpoint: String
    @Option(help: "Labelled TSV/CSV/JSONL: accuracy, macro-F1, per-class P/R/F1, confusion matrix.") var data: String?
    @Option(help: "Which split of --data (default: test when the file has splits, else every row).") var split: String?
    @Option(help: "Shard directory: MLM loss and accuracy, NSP loss and accuracy (one JSON object).") var shards: String?
    @Option(help: "Evaluate at most this many instances of the shards.") var limit: Int?
    @Flag(help: "One JSON object instead of a table.") var json = false
    @Option(help: "Also write the result to this file (JSON).") var output: String?
    @Option var batchSize = 32
    @Option var threads: Int?
    @OptionGroup var file: ClassificationFileOptions

    func validate() throws {
        if (data == nil) == (shards == nil) { throw ValidationError("give exactly one of --data FILE and --shards DIR") }
    }

    func run() throws {
        let threads = self.threads ?? ProcessInfo.processInfo.activeProcessorCount
        if let shards {
            let source = try PretrainedSource(directory: checkpoint)
            let set = try ShardSet(directory: shards)
            let vocabData = try Data(contentsOf: URL(fileURLWithPath: source.vocabularyPath))
            let sha = SHA256.hex(SHA256.hash(Array(vocabData)))
            guard sha == set.index.vocabSHA256 else {
                throw ShardError.vocabularyMismatch(path: shards + "/index.json", expected: sha, found: set.index.vocabSHA256)
            }
            let p = set.index.parameters
            let vocabulary = try Vocabulary.parse(vocabData, source: source.vocabularyPath)
            let masker = p.dynamicMasking ? Masker(
                maskId: UInt32(vocabulary.maskId), clsId: UInt32(vocabulary.clsId), sepId: UInt32(vocabulary.sepId),
                isContinuation: vocabulary.tokens.map { $0.hasPrefix("##") }, maskedLMProb: p.maskedLMProb,
                maxPredictions: p.maxPredictionsPerSeq, wholeWord: p.wholeWordMask) : nil
            let loader = try ShardLoader(set: set, options: .init(batchSize: batchSize, seed: 0), masker: masker)
            let model = try BertForPreTraining(config: source.config, maxBatch: batchSize, maxSeqLength: p.maxSeqLength,
                                               maxMaskedPositions: batchSize * p.maxPredictionsPerSeq, threads: threads)
            try Checkpoint.loadParameters(from: source.weights!, layout: model.layout, into: model.parameters)  // a directory always has weights
            let r = try PretrainingEvaluation.run(model: model, loader: loader, limit: limit)
            let e = JSONEncoder()
            e.outputFormatting = [.sortedKeys]
            let text = String(decoding: try e.encode(r), as: UTF8.self)
            print(text)
            if let output { try writeFileAtomically(Data((text + "\n").utf8), to: output) }
            return
        }
        let (model, labels) = try loadClassifier(checkpoint, maxBatch: batchSize, maxSeqLength: file.maxSeqLength, threads: threads)
        let tokenizer = try file.tokenizer(file.vocab ?? (checkpoint as NSString).appendingPathComponent("vocab.txt"))
        let ids = Dictionary(uniqueKeysWithValues: labels.enumerated().map { ($0.element, Int32($0.offset)) })
        let path = data!
        var hasSplit = false
        let scan = try ClassificationReader(path: path, columns: file.columns())
        while let e = try scan.nextExample() {
            if e.split != nil { hasSplit = true; break }
        }
        let wanted = split ?? (hasSplit ? "test" : nil)
        let temp = FileManager.default.temporaryDirectory.appendingPathComponent("bert-evaluate-\(getpid()).examples").path
        defer { unlink(temp) }
        let store = try ExampleStore.build(
            path: temp, reader: try ClassificationReader(path: path, columns: file.columns()), tokenizer: tokenizer, maxLength: model.maxSeqLength,
            include: { wanted == nil || $0.split == wanted },
            label: { e in
                guard let id = ids[e.label] else {
                    throw UsageError("\(path): line \(e.line): label \"\(e.label)\" is not one of the model's (\(labels.joined(separator: ", ")))")
                }
                return id
            })
        guard store.count > 0 else { throw UsageError("\(path): no rows\(wanted.map { " with split \($0)" } ?? "")") }
        let m = try FineTuner.evaluate(model: model, store: store, labels: labels, batchSize: batchSize)
        let jsonData = try JSONSerialization.data(withJSONObject: m.jsonObject(), options: [.sortedKeys])
        if let output { try writeFileAtomically(jsonData + Data([0x0A]), to: output) }
        if json {
            print(String(decoding: try JSONSerialization.data(withJSONObject: m.jsonObject(), options: [.sortedKeys]), as: UTF8.self))
        } else {
            print(m.table(), terminator: "")
        }
    }
}
