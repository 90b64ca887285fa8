import ArgumentParser
import Foundation
import ClassificationData
import PretrainingData
import Support
import Training
import Inference

/// `bert predict`: labels and probabilities for every row of a file.
struct PredictCommand: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "predict", abstract: "Predict labels with a fine-tuned classifier.")

    @Option(help: "A directory written by bert finetune.") var checkpoint: String
    @Option(help: ArgumentHelp("The texts: TSV/CSV/JSONL with a header and a text column (labels not needed), or plain text, one text per line (.txt, and - for standard input); any of them zstd-compressed.",
                               discussion: "In plain text every line is a row: a blank line gets an empty prediction (empty fields; null in JSONL), so output rows stay aligned with input lines."))
    var input: String
    @Option(help: "The input's format: tsv, csv, jsonl or txt (default: from the extension; txt for -).")
    var inputFormat: ClassificationReader.Format?
    @Option(help: "Write here instead of stdout (.jsonl gives JSON lines, else TSV).") var output: String?
    @Option(help: "tsv or jsonl (default: from --output's extension, else tsv).") var format: String?
    @Option var batchSize = 32
    @OptionGroup var compute: ComputeOptions
    @OptionGroup var file: ClassificationFileOptions

    func validate() throws {
        if batchSize < 1 { throw ValidationError("--batch-size must be at least 1") }
        if let f = format, f != "tsv" && f != "jsonl" { throw ValidationError("--format must be tsv or jsonl") }
    }

    func run() throws {
        let threads = compute.threads
        let precision = try compute.precision.resolve()
        let classifier = try LoadedClassifier(directory: checkpoint, vocabulary: file.vocab, maxSeqLength: file.maxSeqLength, cased: file.cased,
                                              maxBatch: batchSize, threads: threads, precision: precision)
        log("bert predict: \(classifier.inputs.summary)")
        if precision != .fp32 || compute.precision == .bf16 { log("bert predict: precision \(compute.precision.summary(precision))") }
        let temp = FileManager.default.temporaryDirectory.appendingPathComponent("bert-predict-\(getpid()).examples").path
        defer { unlink(temp) }
        let store = try ClassificationDataset.unlabelled(path: input, columns: file.columns(requireLabel: false), format: inputFormat,
                                                         tokenizer: classifier.tokenizer, maxLength: classifier.inputs.maxSeqLength,
                                                         storePath: temp)
        let chosen = format ?? ((output ?? "").hasSuffix(".jsonl") ? "jsonl" : "tsv")
        try classifier.model.writePredictions(labels: classifier.labels, store: store, batchSize: batchSize,
                                              format: chosen == "jsonl" ? .jsonl : .tsv, output: output)
    }
}

extension ClassificationReader.Format: ExpressibleByArgument {}
