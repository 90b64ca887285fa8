import ArgumentParser
import Foundation
import PretrainingData
import Support
import Training

/// `bert predict`: labels and probabilities for every row of a file.
struct PredictCommand: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "predict", abstract: "Predict labels with a fine-tuned classifier.")

    @Option(help: "A directory written by bert finetune.") var checkpoint: String
    @Option(help: "TSV/CSV/JSONL with a header and a text column (labels not needed).") var input: String
    @Option(help: "Write here instead of stdout (.jsonl gives JSON lines, else TSV).") var output: String?
    @Option(help: "tsv or jsonl (default: from --output's extension, else tsv).") var format: String?
    @Option var batchSize = 32
    @Option var threads: Int?
    @Option(help: ArgumentHelp("Matrix products in fp32, bf16 (the CPU's bf16 units), or auto: bf16 where the CPU has them (AVX-512 BF16, AMX), else fp32.", discussion: PrecisionChoice.help))
    var precision: PrecisionChoice = .auto
    @OptionGroup var file: ClassificationFileOptions

    func run() throws {
        let threads = self.threads ?? availableCores()
        let precision = try self.precision.resolve()
        if precision != .fp32 || self.precision == .bf16 { log("bert predict: precision \(self.precision.summary(precision))") }
        let classifier = try LoadedClassifier(directory: checkpoint, maxBatch: batchSize, maxSeqLength: file.maxSeqLength, threads: threads,
                                              precision: precision)
        let (model, labels) = (classifier.model, classifier.labels)
        let tokenizer = try file.tokenizer(file.vocab ?? (checkpoint as NSString).appendingPathComponent("vocab.txt"))
        let temp = FileManager.default.temporaryDirectory.appendingPathComponent("bert-predict-\(getpid()).examples").path
        defer { unlink(temp) }
        let store = try ClassificationDataset.unlabelled(path: input, columns: file.columns(requireLabel: false), tokenizer: tokenizer,
                                                         maxLength: model.maxSeqLength, storePath: temp)
        let chosen = format ?? ((output ?? "").hasSuffix(".jsonl") ? "jsonl" : "tsv")
        try FineTuner.writePredictions(model: model, labels: labels, store: store, batchSize: batchSize,
                                       format: chosen == "jsonl" ? .jsonl : .tsv, output: output)
    }
}
