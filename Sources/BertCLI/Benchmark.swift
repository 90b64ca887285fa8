import Support
import ArgumentParser
import BertModel
import Foundation
import Kernels
import PretrainingData
import Training

/// `bert benchmark-train` (hidden, for `make bench`): training steps (forward, backward, clipping,
/// AdamW) on synthetic batches; prints one JSON object with tokens/s, useful GFLOP/s and the sgemm
/// peak measured in the same process.
struct BenchmarkTrainCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "benchmark-train", abstract: "Measure training throughput on synthetic batches (for make bench).",
        shouldDisplay: false)

    @Option(help: "Model preset.") var model = "mini"
    @Option var batchSize = 32
    @Option var seqLength = 128
    @Option(help: "Masked positions per sequence.") var masked = 20
    @Option var vocabSize = 30522
    @Option var warmup = 2
    @Option var steps = 10
    @OptionGroup var threading: ThreadOptions
    @Option(help: "fp32, bf16 (exit 2 without bf16 units) or auto.") var precision: PrecisionChoice = .fp32
    @Option(help: "mlm-nsp or electra (a generator at 1/4 of the width).") var objective: PretrainObjective = .mlmNsp

    func run() throws {
        let threads = threading.count
        let out = try TrainingBenchmark.run(model: model, batchSize: batchSize, seqLength: seqLength, masked: masked,
                                            vocabSize: vocabSize, warmup: warmup, steps: steps, threads: threads,
                                            precision: try precision.resolve(), objective: objective)
        print(String(decoding: try JSONSerialization.data(withJSONObject: out, options: [.sortedKeys]), as: UTF8.self))
    }
}
