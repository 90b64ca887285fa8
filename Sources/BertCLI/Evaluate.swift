import ArgumentParser
import Foundation
import ClassificationData
import PretrainingData
import Support
import Training
import Inference

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
    @OptionGroup var compute: ComputeOptions
    @OptionGroup var file: ClassificationFileOptions

    func validate() throws {
        if (data == nil) == (shards == nil) { throw ValidationError("give exactly one of --data FILE and --shards DIR") }
    }

    func run() throws {
        let threads = compute.threads
        let precision = try compute.precision.resolve()
        if let shards {
            if precision != .fp32 || compute.precision == .bf16 { log("bert evaluate: precision \(compute.precision.summary(precision))") }
            let r = try PretrainingEvaluation.run(checkpoint: checkpoint, shards: shards, batchSize: batchSize, limit: limit, threads: threads,
                                                  precision: precision)
            let e = JSONEncoder()
            e.outputFormatting = [.sortedKeys]
            let text = String(decoding: try e.encode(r), as: UTF8.self)
            print(text)
            if let output { try writeFileAtomically(Data((text + "\n").utf8), to: output) }
            return
        }
        let classifier = try LoadedClassifier(directory: checkpoint, vocabulary: file.vocab, maxSeqLength: file.maxSeqLength, cased: file.cased,
                                              maxBatch: batchSize, threads: threads, precision: precision)
        log("bert evaluate: \(classifier.inputs.summary)")
        if precision != .fp32 || compute.precision == .bf16 { log("bert evaluate: precision \(compute.precision.summary(precision))") }
        let (model, labels) = (classifier.model, classifier.labels)
        let temp = FileManager.default.temporaryDirectory.appendingPathComponent("bert-evaluate-\(getpid()).examples").path
        defer { unlink(temp) }
        let store = try ClassificationDataset.labelled(path: data!, columns: file.columns(), split: split, labels: labels,
                                                       tokenizer: classifier.tokenizer, maxLength: classifier.inputs.maxSeqLength, storePath: temp)
        let m = try model.evaluate(store: store, labels: labels, batchSize: batchSize)
        let jsonData = try JSONSerialization.data(withJSONObject: m.jsonObject(), options: [.sortedKeys])
        if let output { try writeFileAtomically(jsonData + Data([0x0A]), to: output) }
        if json {
            print(String(decoding: try JSONSerialization.data(withJSONObject: m.jsonObject(), options: [.sortedKeys]), as: UTF8.self))
        } else {
            print(m.table(), terminator: "")
        }
    }
}
