import Support
import BertModel
import Foundation
import Kernels
import ClassificationData
import PretrainingData
import WordPiece
import Checkpoints
import Inference

/// What the fine-tuner reports as it goes: training accuracy of the classifier over the last window.
public struct FineTuneProgress: Sendable {
    public var step: Int
    public var totalSteps: Int
    /// Zero-based epoch.
    public var epoch: Int
    public var loss: Double
    /// Classification accuracy on the training batches of the window.
    public var accuracy: Double
    public var tokensPerSecond: Double
    public var elapsed: Double
}

/// Settings of a fine-tuning run (Hugging Face Trainer / run_classifier.py defaults).
public struct FineTuneOptions: Sendable {
    public var outputDirectory: String
    /// The arithmetic of the matrix products; fp32 master weights, gradients and moments either way.
    public var precision: ModelPrecision = .fp32
    public var epochs = 3
    /// Examples per micro-batch (all processes' together under MPI).
    public var batchSize = 32
    /// Micro-batches per update (`--accumulate`). An update's examples (`batchSize × accumulate`) are
    /// chosen, length-grouped and shuffled whole, then cut into micro-batches of `batchSize`, each weighted
    /// by its share of the update's labelled examples: batch B with accumulation A trains on the examples
    /// of batch B·A, in their order, with the same gradient up to the order of the sum (dropout aside).
    public var accumulate = 1
    /// Examples per update: `batchSize × accumulate`.
    public var updateBatchSize: Int { batchSize * accumulate }
    public var learningRate = 5e-5
    /// Fraction of updates for the linear warm-up.
    public var warmupFraction = 0.1

    /// Warm-up updates for `total` updates: ⌈total × warmupFraction⌉, as transformers'
    /// `TrainingArguments.get_warmup_steps` counts them for `warmup_ratio`.
    public func warmupSteps(total: Int) -> Int { Int((Double(total) * warmupFraction).rounded(.up)) }
    public var maxGradNorm = 1.0
    /// torch.optim.AdamW as transformers' Trainer uses it: bias correction on, ε 1e-8.
    public var adam = AdamW.Hyper(epsilon: 1e-8, weightDecay: 0.01, biasCorrection: true)
    public var maxSeqLength = 128
    /// Whether the examples were lowercased (recorded with the model, with `maxSeqLength`).
    public var lowercase = true
    public var seed: UInt64 = 42
    public var threads = 1
    public var logEverySteps = 10
    /// Batches of examples of similar length (transformers' `group_by_length`): after the epoch's
    /// shuffle, each run of 50 batches' worth of examples is sorted by length and cut into batches,
    /// which are handed out in a seeded order (see `groupedByLength`), so batches carry less
    /// padding. Off by default, as in transformers.
    public var groupByLength = false
    public init(outputDirectory: String) { self.outputDirectory = outputDirectory }
}

/// Fine-tunes BertForSequenceClassification: dropout + linear over the pooled [CLS], AdamW with
/// warm-up and linear decay, evaluation after every epoch, the best epoch kept.
public final class FineTuner {
    public let options: FineTuneOptions
    public let model: BertForSequenceClassification
    public let labels: [String]
    public let train: ExampleStore
    public let eval: ExampleStore?
    public let vocabulary: Data
    public var onProgress: ((FineTuneProgress) -> Void)?
    public var onEpoch: ((Int, ClassificationMetrics) -> Void)?
    /// Where complete gradients become global ones before each update: the sum over the processes of a
    /// data-parallel run (`AllReduceGradients`), nothing for one process.
    public var gradientReducer: GradientReducer
    /// The processes of a data-parallel run (`SingleProcess` by default). `options.batchSize` is the
    /// global batch; process k takes the k-th chunk of batchSize/N examples of every batch, weighted by
    /// its share of the batch's labelled examples, so the update is the one-process update up to the
    /// order of the sum (with dropout, each process draws its own masks). Process 0 writes OUTPUT and
    /// evaluates; the others wait for it at the end of each epoch.
    public let group: ProcessGroup

    public init(options: FineTuneOptions, source: PretrainedSource, labels: [String], train: ExampleStore, eval: ExampleStore?,
                processGroup: ProcessGroup = SingleProcess(), allReduceBucketElements: Int = 1 << 20) throws {
        guard options.batchSize % processGroup.size == 0 else {
            throw TrainingError.invalidSetting(
                name: "--batch-size", reason: "the global batch of \(options.batchSize) must be a multiple of the \(processGroup.size) processes")
        }
        guard options.accumulate >= 1 else { throw TrainingError.invalidSetting(name: "--accumulate", reason: "must be at least 1") }
        guard options.logEverySteps >= 1 else { throw TrainingError.invalidSetting(name: "--log-every-steps", reason: "must be at least 1") }
        group = processGroup
        guard labels.count >= 2 else {
            throw TrainingError.invalidSetting(name: "label", reason: "the training data has \(labels.count) class(es) (\(labels.joined(separator: ", "))); a classifier needs at least 2")
        }
        self.options = options
        self.labels = labels
        self.train = train
        self.eval = eval
        guard let v = FileManager.default.contents(atPath: source.vocabularyPath) else {
            throw TrainingError.io(path: source.vocabularyPath, reason: "cannot read")
        }
        vocabulary = v
        var config = source.config
        config.id2label = Dictionary(uniqueKeysWithValues: labels.enumerated().map { (String($0.offset), $0.element) })
        config.label2id = Dictionary(uniqueKeysWithValues: labels.enumerated().map { ($0.element, $0.offset) })
        config.architectures = ["BertForSequenceClassification"]
        model = try BertForSequenceClassification(config: config, numLabels: labels.count, maxBatch: options.batchSize / processGroup.size,
                                                  maxSeqLength: options.maxSeqLength, threads: options.threads)
        model.precision = options.precision
        gradientReducer = processGroup.size == 1 ? LocalGradients()
            : AllReduceGradients(group: processGroup, stages: model.shell.gradientStages, bucketElements: allReduceBucketElements)
        model.initialize(seed: options.seed)
        if let weights = source.weights {
            try FineTuner.loadEncoder(into: model, from: weights)
        } else if source.sinusoidalPositions {
            model.initializePositionsSinusoidally()
            model.parametersDidChange()
        }
    }

    /// Copies the encoder (and pooler, when present) from a checkpoint; the classifier stays newly initialised
    /// unless the checkpoint has one of the same shape. Checks that the config matches the weights.
    static func loadEncoder(into model: BertForSequenceClassification, from weights: SafetensorsFile) throws {
        let classifier: Set<String> = ["classifier.weight", "classifier.bias"]
        var optional: Set<String> = classifier
        if !weights.contains("bert.pooler.dense.weight") && !weights.contains("pooler.dense.weight") {
            optional.formUnion(["bert.pooler.dense.weight", "bert.pooler.dense.bias"])  // as transformers: initialised anew
        }
        try Checkpoint.loadParameters(from: weights, layout: model.layout, into: model.parameters, ignoring: optional)
        for name in classifier where weights.contains(name) {
            if let e = model.layout.entry(named: name), (try? weights.info(name).shape) == e.shape {
                try weights.copyFloats(name, into: UnsafeMutableBufferPointer(rebasing: model.parameters[e.range]))
            }
        }
        model.parametersDidChange()
    }

    /// `order` with each run of 50 × `batchSize` examples sorted by length, longest first (a stable
    /// sort, so ties keep the shuffled order) and cut into batches, as transformers'
    /// LengthGroupedSampler's mega-batches; then, unlike transformers, the batches of each run are
    /// handed out in an order drawn from `rng`. Without that last shuffle a run sweeps from long to
    /// short examples, and where length predicts the label (fortunes: definitions are short,
    /// songs-poems long) consecutive updates see one class after another: on fortunes that cost a
    /// pre-trained encoder 2.6 points of test accuracy against random batches (issue 10's note).
    static func groupedByLength(_ order: [Int], batchSize: Int, rng: inout SeededGenerator, length: (Int) -> Int) -> [Int] {
        let b = max(1, batchSize)
        let mega = 50 * b
        var out: [Int] = []
        out.reserveCapacity(order.count)
        var start = 0
        while start < order.count {
            let run = order[start..<min(order.count, start + mega)]
            let sorted = run.map { ($0, length($0)) }.enumerated()
                .sorted { $0.element.1 != $1.element.1 ? $0.element.1 > $1.element.1 : $0.offset < $1.offset }
                .map(\.element.0)
            var batches = stride(from: 0, to: sorted.count, by: b).map { Array(sorted[$0..<min($0 + b, sorted.count)]) }
            rng.shuffle(&batches)
            out += batches.joined()
            start += mega
        }
        return out
    }

    /// Trains; returns (best epoch, its metrics) and leaves the best model in OUTPUT (with epoch-N copies).
    public func run() throws -> (epoch: Int, metrics: ClassificationMetrics?) {
        let fm = FileManager.default
        let root = group.isRoot
        let metricsPath = (options.outputDirectory as NSString).appendingPathComponent("metrics.jsonl")
        if root {
            try fm.createDirectory(atPath: options.outputDirectory, withIntermediateDirectories: true)
            // Every run starts at update 0: the log and events of an earlier run (or one stopped by a full
            // disk) into the same OUTPUT would otherwise come first in them.
            try MetricsLog.truncate(path: metricsPath, afterStep: 0)
            for name in (try? fm.contentsOfDirectory(atPath: options.outputDirectory)) ?? [] where name.hasPrefix("events.out.tfevents.") {
                try? fm.removeItem(atPath: (options.outputDirectory as NSString).appendingPathComponent(name))
            }
        }
        let metricsLog = root ? try MetricsLog(path: metricsPath) : nil
        let board = root ? try TensorBoardWriter(directory: options.outputDirectory) : nil
        let chunk = options.batchSize / group.size  // this process's part of each micro-batch
        let updateSize = options.updateBatchSize
        let updatesPerEpoch = (train.count + updateSize - 1) / updateSize
        let total = updatesPerEpoch * options.epochs
        let schedule = LinearSchedule(base: options.learningRate, warmupSteps: options.warmupSteps(total: total),
                                      totalSteps: total)
        let ranges = model.layout.entries.filter(\.decay).map(\.range).sorted { $0.lowerBound < $1.lowerBound }
        let adam = AdamW(count: model.layout.count, decayRanges: ranges, hyper: options.adam, threads: options.threads)
        var step = 0
        var best: (epoch: Int, accuracy: Double, metrics: ClassificationMetrics?) = (0, -1, nil)
        let started = Date()
        for epoch in 0..<options.epochs {
            var order = Array(0..<train.count)
            var rng = SeededGenerator(seed: options.seed, stream: [0x4654, UInt64(epoch)])  // "FT"
            rng.shuffle(&order)
            if options.groupByLength {  // grouped at the update's size, as one batch of that size would be
                order = Self.groupedByLength(order, batchSize: updateSize, rng: &rng) { train.example($0).ids.count }
            }
            var window = (loss: 0.0, correct: 0, count: 0, tokens: 0, updates: 0)
            var windowStart = Date()
            var start = 0
            while start < order.count {
                let update = order[start..<min(order.count, start + updateSize)]
                start += updateSize
                // Each micro-batch's loss (a mean over its labelled examples) weighs by its share of the
                // update's labelled examples, so the accumulated gradient is that of one batch holding them all.
                let labelledInUpdate = max(1, update.filter { train.example($0).label >= 0 }.count)
                model.zeroGradients()
                var micro = 0
                var microStart = update.startIndex
                while microStart < update.endIndex {
                    let whole = update[microStart..<min(update.endIndex, microStart + options.batchSize)]
                    microStart += options.batchSize
                    defer { micro += 1 }
                    let first = min(whole.count, group.rank * chunk)
                    let indices = group.size == 1 ? whole : whole[(whole.startIndex + first)..<(whole.startIndex + min(whole.count, first + chunk))]
                    // Dropout streams: (step) for the first micro-batch of process 0, as before accumulation.
                    var stream: [UInt64] = group.rank == 0 ? [0x44524F50, UInt64(step)] : [0x44524F50, UInt64(step), UInt64(group.rank)]
                    if micro > 0 { stream += [UInt64(group.rank), UInt64(micro)] }
                    var seedRNG = SeededGenerator(seed: options.seed, stream: stream)
                    guard !indices.isEmpty else { continue }
                    let b = train.batch(indices)
                    let out = try model.forward(ClassificationBatch(batchSize: indices.count, seqLength: b.seqLength, inputIds: b.ids,
                                                                    tokenTypeIds: b.types, attentionMask: b.mask, labels: b.labels),
                                                dropoutSeed: seedRNG.next())
                    guard out.loss.isFinite else { throw TrainingError.nonFiniteLoss(step: step + 1, lastCheckpoint: nil) }
                    // This micro-batch's (this process's part's) share of the update's labelled examples.
                    let share = group.size == 1 && update.count == whole.count ? 1 : Float(out.count) / Float(labelledInUpdate)
                    if let overlapped = gradientReducer as? AllReduceGradients, microStart >= update.endIndex {  // the update's last backward
                        let gradients = model.gradients
                        model.shell.onGradientStageReady = { k in overlapped.stageReady(k, gradients: gradients) }
                    }
                    model.backward(scale: share)
                    model.shell.onGradientStageReady = nil
                    window.loss += Double(out.loss) * Double(share)
                    window.correct += out.correct
                    window.count += out.count
                    window.tokens += b.mask.reduce(0) { $0 + Int($1) }
                }
                let lr = schedule.rate(at: step)
                let norm = try applyUpdate(parameters: model.parameters, gradients: model.gradients, reducer: gradientReducer,
                                           optimizer: adam, maxGradNorm: options.maxGradNorm, lr: lr)
                model.parametersDidChange()
                step += 1
                window.updates += 1
                if step % options.logEverySteps == 0 || start >= order.count {
                    if group.size > 1 {
                        let v = try group.allReduceSum([window.loss, Double(window.correct), Double(window.count), Double(window.tokens)])
                        (window.loss, window.correct, window.count, window.tokens) = (v[0], Int(v[1]), Int(v[2]), Int(v[3]))
                    }
                    let seconds = Date().timeIntervalSince(windowStart)
                    let row = StepMetrics(step: step, epoch: epoch, loss: window.loss / Double(window.updates),
                                          accuracy: Double(window.correct) / Double(max(1, window.count)), learningRate: lr,
                                          gradientNorm: norm, tokensPerSecond: Double(window.tokens) / max(1e-9, seconds),
                                          seconds: Date().timeIntervalSince(started))
                    try metricsLog?.append(row)
                    try board?.add(step: step, scalars: row.scalars)
                    if root {
                        onProgress?(FineTuneProgress(step: step, totalSteps: total, epoch: epoch, loss: row.loss, accuracy: row.accuracy ?? 0,
                                                     tokensPerSecond: row.tokensPerSecond ?? 0, elapsed: row.seconds ?? 0))
                    }
                    window = (0, 0, 0, 0, 0)
                    windowStart = Date()
                }
            }
            let name = String(format: "epoch-%04d", epoch + 1)
            guard root else {  // process 0 saves and evaluates the model all processes hold
                try group.barrier()
                continue
            }
            try save(to: (options.outputDirectory as NSString).appendingPathComponent(name))
            var metrics: ClassificationMetrics?
            if let eval {
                // The dev rows' predictions beside the model, as `bert predict` writes them for the same rows.
                let predictions = try PredictionWriter(labels: labels, format: .tsv,
                                                       output: (options.outputDirectory as NSString).appendingPathComponent(name + "/" + Self.evalPredictionsFile))
                let m = try evaluate(eval, predictions: predictions)
                try predictions.commit()
                metrics = m
                onEpoch?(epoch + 1, m)
                try metricsLog?.append(EvalRow(step: step, epoch: epoch + 1, evalAccuracy: m.accuracy, evalMacroF1: m.macroF1))
                try board?.add(step: step, scalars: [("eval/accuracy", m.accuracy), ("eval/macro_f1", m.macroF1)])
            }
            // The best epoch by eval accuracy (the first of equals); without eval data, the last epoch.
            let isBetter = metrics.map { $0.accuracy > best.accuracy } ?? true
            if isBetter {
                let accuracy = metrics?.accuracy ?? best.accuracy
                best = (epoch + 1, accuracy, metrics)
                try markBest(name)  // the best model at the top of OUTPUT
            }
            try group.barrier()
        }
        return (best.epoch, best.metrics)
    }

    struct EvalRow: Codable {
        var step: Int
        var epoch: Int
        var evalAccuracy: Double
        var evalMacroF1: Double
        enum CodingKeys: String, CodingKey { case step, epoch, evalAccuracy = "eval_accuracy", evalMacroF1 = "eval_macro_f1" }
    }

    /// Confusion counts of the model on a store (labels must be known ids); with `predictions`, each
    /// row's prediction is written there too, in store order.
    public func evaluate(_ store: ExampleStore, predictions: PredictionWriter? = nil) throws -> ClassificationMetrics {
        try model.evaluate(store: store, labels: labels, batchSize: model.maxBatch, predictions: predictions)
    }

    /// Each epoch directory's predictions on the evaluation rows (bert predict's TSV, in the rows' order).
    public static let evalPredictionsFile = "eval_predictions.tsv"

    /// The files of a saved model, loadable by `BertForSequenceClassification.from_pretrained` and
    /// `AutoTokenizer.from_pretrained`.
    public static let modelFiles = ["model.safetensors", "config.json", "vocab.txt", TokenizerConfig.fileName]

    /// Writes the model as the directory `directory` (model.safetensors, config.json with the labels,
    /// vocab.txt, tokenizer_config.json with the casing and the fine-tuning length, which `bert predict`
    /// and `bert evaluate` then use, as transformers' pipelines use `model_max_length`), atomically: into a temporary sibling, fsynced, then renamed into place; an older
    /// directory of that name is moved aside first and removed after. A reader finds one whole model
    /// there, or none, never files of two epochs.
    public func save(to directory: String) throws {
        let fm = FileManager.default
        let temporary = directory + ".tmp-\(getpid())"
        try? fm.removeItem(atPath: temporary)
        try fm.createDirectory(atPath: temporary, withIntermediateDirectories: true)
        var renamed = false
        defer { if !renamed { try? fm.removeItem(atPath: temporary) } }  // a failed save (a full disk) leaves nothing
        try SafetensorsWriter.write(Checkpoint.modelTensors(layout: model.layout, parameters: UnsafeBufferPointer(model.parameters), tied: []),
                                    to: temporary + "/model.safetensors")
        try writeCheckpointFile(model.config.encoded(), to: temporary + "/config.json")
        try writeCheckpointFile(vocabulary, to: temporary + "/vocab.txt")
        try writeCheckpointFile(TokenizerConfig(doLowerCase: options.lowercase, modelMaxLength: options.maxSeqLength).encoded(),
                        to: temporary + "/" + TokenizerConfig.fileName)
        syncDirectory(temporary)
        var aside: String? = nil
        if fm.fileExists(atPath: directory) {
            aside = directory + ".old-\(getpid())"
            try? fm.removeItem(atPath: aside!)
            guard rename(directory, aside!) == 0 else { throw TrainingError.io(path: directory, reason: String(cString: strerror(errno))) }
        }
        guard rename(temporary, directory) == 0 else { throw TrainingError.io(path: directory, reason: String(cString: strerror(errno))) }
        renamed = true
        syncDirectory((directory as NSString).deletingLastPathComponent)
        if let aside { try? fm.removeItem(atPath: aside) }
    }

    /// Makes the saved epoch `name` (a directory in OUTPUT) the best model at the top of OUTPUT:
    /// `OUTPUT/best` is a link to it, replaced by one atomic rename, and OUTPUT's model files
    /// (`modelFiles`) are links through `best`, so they always come from one epoch.
    /// `best_epoch.txt` names it too (written after the switch).
    func markBest(_ name: String) throws {
        let out = options.outputDirectory
        func link(_ target: String, as path: String) throws {
            let temporary = path + ".tmp-\(getpid())"
            unlink(temporary)
            guard symlink(target, temporary) == 0, rename(temporary, path) == 0 else {
                throw TrainingError.io(path: path, reason: String(cString: strerror(errno)))
            }
        }
        // The file links first (they resolve once `best` exists), then `best` itself: a reader finds
        // no model at the top of OUTPUT, or one whole epoch's.
        for file in Self.modelFiles {
            let path = (out as NSString).appendingPathComponent(file)
            if (try? FileManager.default.destinationOfSymbolicLink(atPath: path)) != "best/" + file { try link("best/" + file, as: path) }
        }
        try link(name, as: (out as NSString).appendingPathComponent("best"))
        syncDirectory(out)
        try writeFileAtomically(Data(name.utf8), to: (out as NSString).appendingPathComponent("best_epoch.txt"))
    }
}
