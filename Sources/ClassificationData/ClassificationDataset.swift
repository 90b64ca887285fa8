import Foundation
import Support
import WordPiece

/// A classification file made ready for fine-tuning: its label map, and which rows train and which choose
/// the epoch, as tokenized example stores. The policy:
/// - an `--eval` file, when given, evaluates (every row);
/// - else a dev split evaluates;
/// - else `evalFraction` of the train rows (or of all rows, in a file without splits) is held out by a
///   seeded hash of the line number, so a test split never chooses the epoch.
/// Labels come from every train row (held-out rows included), sorted; the label id is its rank.
/// With `trainFraction` below 1, only that share of the training rows (after the hold-out) trains, chosen by
/// another seeded hash of the line: a low-resource setting, or a learning curve over the labels.
public struct ClassificationDataset {
    /// Where the evaluation rows came from.
    public enum EvalSource: Equatable, Sendable {
        /// A separate file.
        case file(String)
        /// The data's own split of this name.
        case split(String)
        /// `fraction` of the train split held out, because the file has train/test splits and no dev split.
        case trainSplitHeldOut(fraction: Double)
        /// `fraction` of the rows held out (the file has no split column).
        case heldOut(fraction: Double)
    }

    /// Sorted label names; a label's id is its index.
    public let labels: [String]
    /// Training examples.
    public let train: ExampleStore
    /// Evaluation examples, nil when there are none.
    public let eval: ExampleStore?
    /// Where `eval` came from.
    public let evalSource: EvalSource

    /// Reads `data` (and `evalFile`) twice or three times, streaming, and writes the example stores under
    /// `cacheDirectory` (created if needed).
    /// Under a data-parallel `group`, process 0 prepares first and the others wait for it, then read the
    /// same cache (so the example stores are written once, by one process).
    public static func prepare(data: String, columns: ClassificationColumns, tokenizer: BertTokenizer, maxLength: Int,
                               evalFile: String?, evalFraction: Double, trainFraction: Double = 1, seed: UInt64,
                               cacheDirectory: String, group: ProcessGroup = SingleProcess()) throws -> ClassificationDataset {
        func here() throws -> ClassificationDataset {
            try prepareHere(data: data, columns: columns, tokenizer: tokenizer, maxLength: maxLength, evalFile: evalFile,
                            evalFraction: evalFraction, trainFraction: trainFraction, seed: seed, cacheDirectory: cacheDirectory)
        }
        guard group.size > 1 else { return try here() }
        let first = group.isRoot ? try here() : nil
        try group.barrier()
        return try first ?? here()
    }

    static func prepareHere(data: String, columns: ClassificationColumns, tokenizer: BertTokenizer, maxLength: Int,
                            evalFile: String?, evalFraction: Double, trainFraction: Double, seed: UInt64,
                            cacheDirectory: String) throws -> ClassificationDataset {
        precondition(trainFraction > 0 && trainFraction <= 1, "trainFraction must be in (0, 1]")
        let holdOut = HeldOutRows(active: evalFile == nil && evalFraction > 0, fraction: evalFraction, seed: seed)
        let subset = TrainSubset(fraction: trainFraction, seed: seed)
        // Which rows train and which evaluate.
        var hasSplit = false, hasDev = false, trainRows = 0
        var labelSet = Set<String>()
        let scan = try ClassificationReader(path: data, columns: columns)
        while let e = try scan.nextExample() {
            if let s = e.split { hasSplit = true; if s == "dev" { hasDev = true } }
            if holdOut.isTrain(e, hasSplit: e.split != nil, hasDev: true) { labelSet.insert(e.label); trainRows += 1 }
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
        let labels = labelSet.sorted()
        guard trainRows > 0 else { throw ClassificationFileError.noTrainingRows(path: data) }
        guard labels.count >= 2 else {
            throw ClassificationFileError.singleClass(path: data, column: columns.label, label: labels.first ?? "")
        }
        let ids = labelIds(labels)
        try FileManager.default.createDirectory(atPath: cacheDirectory, withIntermediateDirectories: true)
        let train = try ExampleStore.build(
            path: cacheDirectory + "/train.examples", reader: try ClassificationReader(path: data, columns: columns), tokenizer: tokenizer,
            maxLength: maxLength, include: { holdOut.isTrain($0, hasSplit: hasSplit, hasDev: hasDev) && subset.keeps($0) },
            label: { ids[$0.label]! })
        guard train.count > 0 else { throw ClassificationFileError.emptyTrainSubset(path: data, fraction: trainFraction) }
        let evalPath = evalFile ?? data
        var evalStore: ExampleStore? = nil
        if evalFile != nil || hasDev || evalFraction > 0 {
            let store = try ExampleStore.build(
                path: cacheDirectory + "/eval.examples", reader: try ClassificationReader(path: evalPath, columns: columns),
                tokenizer: tokenizer, maxLength: maxLength,
                include: { e in
                    if evalFile != nil { return true }
                    if hasSplit && hasDev { return e.split == "dev" }
                    if hasSplit { return e.split == "train" && !holdOut.isTrain(e, hasSplit: true, hasDev: false) }
                    return !holdOut.isTrain(e, hasSplit: false, hasDev: false)
                },
                label: { e in
                    guard let id = ids[e.label] else {
                        throw ClassificationFileError.unknownLabel(path: evalPath, line: e.line, label: e.label, known: labels, ofModel: false)
                    }
                    return id
                })
            evalStore = store.count > 0 ? store : nil
        }
        let source: EvalSource
        if let evalFile { source = .file(evalFile) } else if hasSplit && hasDev { source = .split("dev") } else if hasSplit && evalFraction > 0 {
            source = .trainSplitHeldOut(fraction: evalFraction)
        } else { source = .heldOut(fraction: evalFraction) }
        return ClassificationDataset(labels: labels, train: train, eval: evalStore, evalSource: source)
    }

    /// The rows of `path` in `split` (default: test when the file has splits, else every row), labelled
    /// with a model's `labels`, tokenized into a store at `storePath`. Throws when a label is not the
    /// model's or no row is selected.
    public static func labelled(path: String, columns: ClassificationColumns, split: String?, labels: [String],
                                tokenizer: BertTokenizer, maxLength: Int, storePath: String) throws -> ExampleStore {
        let ids = labelIds(labels)
        var hasSplit = false
        let scan = try ClassificationReader(path: path, columns: columns)
        while let e = try scan.nextExample() {
            if e.split != nil { hasSplit = true; break }
        }
        let wanted = split ?? (hasSplit ? "test" : nil)
        let store = try ExampleStore.build(
            path: storePath, reader: try ClassificationReader(path: path, columns: columns), tokenizer: tokenizer, maxLength: maxLength,
            include: { wanted == nil || $0.split == wanted },
            label: { e in
                guard let id = ids[e.label] else {
                    throw ClassificationFileError.unknownLabel(path: path, line: e.line, label: e.label, known: labels, ofModel: true)
                }
                return id
            })
        guard store.count > 0 else { throw ClassificationFileError.noRowsInSplit(path: path, split: wanted) }
        return store
    }

    /// Every row of `path` (`-`: standard input, read once), unlabelled (label id −1), for prediction;
    /// `format` overrides the one the name implies (plain text for `-`).
    public static func unlabelled(path: String, columns: ClassificationColumns, format: ClassificationReader.Format? = nil,
                                  tokenizer: BertTokenizer, maxLength: Int, storePath: String) throws -> ExampleStore {
        try ExampleStore.build(path: storePath, reader: try ClassificationReader(path: path, columns: columns, format: format),
                               tokenizer: tokenizer, maxLength: maxLength, include: { _ in true }, label: { _ in -1 })
    }

    static func labelIds(_ labels: [String]) -> [String: Int32] {
        Dictionary(uniqueKeysWithValues: labels.enumerated().map { ($0.element, Int32($0.offset)) })
    }
}

/// The seeded hold-out: a row trains unless it is held out, by its split, or by a seeded hash of its
/// line (rows without a split, or train rows of a file with no dev split).
struct HeldOutRows {
    /// Whether any row is held out by hash (no eval file, and a positive fraction).
    let active: Bool
    let fraction: Double
    let seed: UInt64

    func isTrain(_ e: ClassificationExample, hasSplit: Bool, hasDev: Bool) -> Bool {
        if hasSplit {
            guard e.split == "train" else { return false }
            if hasDev { return true }
        }
        if !active { return true }
        var g = SeededGenerator(seed: seed, stream: [0x484F4C44, UInt64(e.line)])  // "HOLD"
        return g.nextDouble() >= fraction
    }
}

/// The share of the training rows that trains (`bert finetune --train-fraction`): a row is kept by a seeded
/// hash of its line, independent of the dev hold-out's hash, so the dev rows are the same at every fraction.
struct TrainSubset {
    let fraction: Double
    let seed: UInt64

    func keeps(_ e: ClassificationExample) -> Bool {
        if fraction >= 1 { return true }
        var g = SeededGenerator(seed: seed, stream: [0x53554253, UInt64(e.line)])  // "SUBS"
        return g.nextDouble() < fraction
    }
}
