import BertModel
import Dispatch
import Foundation
import Kernels
import Support

/// Training throughput on synthetic batches (the library behind `bert benchmark-train`, for `make
/// bench`): full training steps (forward, backward, clipping, AdamW) of a preset, timed after warm-up,
/// with useful and executed GFLOP/s against the sgemm peak measured in the same process.
public enum TrainingBenchmark {
    /// Runs the benchmark and returns its JSON object (sorted keys when serialised by the caller).
    /// `objective` .electra times ELECTRA's step (a generator at `generatorSize` of the width, λ 50) on
    /// the same batches; its FLOPs count both models.
    public static func run(model: String, batchSize: Int, seqLength: Int, masked: Int, vocabSize: Int, warmup: Int, steps: Int,
                           threads: Int, precision: ModelPrecision = .fp32, objective: PretrainObjective = .mlmNsp,
                           generatorSize: Double = 0.25) throws -> [String: Any] {
        var config = try BertConfig.preset(model, vocabSize: vocabSize)
        config.maxPositionEmbeddings = max(512, seqLength)
        let generator = try ElectraForPreTraining.generatorConfig(discriminator: config, size: generatorSize)
        let m: any PretrainingModel = objective == .electra
            ? try ElectraForPreTraining(config: config, generator: generator, maxBatch: batchSize, maxSeqLength: seqLength,
                                        maxMaskedPositions: batchSize * masked, threads: threads)
            : try BertForPreTraining(config: config, maxBatch: batchSize, maxSeqLength: seqLength,
                                     maxMaskedPositions: batchSize * masked, threads: threads)
        m.initialize(seed: 1)
        m.precision = precision
        var rng = SeededGenerator(seed: 7)
        let n = batchSize * seqLength
        var positions: [Int32] = []
        for b in 0..<batchSize {
            let picks = Array((1..<(seqLength - 1)).shuffled(using: &rng).prefix(masked)).sorted()
            positions += picks.map { Int32(b * seqLength + $0) }
        }
        let batch = PretrainingBatch(
            batchSize: batchSize, seqLength: seqLength, inputIds: (0..<n).map { _ in Int32.random(in: 5..<Int32(vocabSize), using: &rng) },
            tokenTypeIds: (0..<n).map { Int32(($0 % seqLength) < seqLength / 2 ? 0 : 1) }, attentionMask: [Int32](repeating: 1, count: n),
            maskedPositions: positions, maskedLabels: positions.map { _ in Int32.random(in: 5..<Int32(vocabSize), using: &rng) },
            nextSentenceLabels: (0..<batchSize).map { Int32($0 % 2) })
        let ranges = m.layout.entries.filter(\.decay).map(\.range).sorted { $0.lowerBound < $1.lowerBound }
        let adam = AdamW(count: m.layout.count, decayRanges: ranges, threads: threads)
        var times: [Double] = []
        for i in 0..<(warmup + steps) {
            let t0 = DispatchTime.now().uptimeNanoseconds
            m.zeroGradients()
            _ = try m.forward(batch, dropoutSeed: UInt64(i), sampleSeed: UInt64(i))
            m.backward(mlmScale: 1, otherScale: objective == .mlm ? 0 : 1)
            _ = try applyUpdate(parameters: m.parameters, gradients: m.gradients, reducer: LocalGradients(), optimizer: adam,
                                maxGradNorm: 1, lr: 1e-4)
            m.parametersDidChange()
            let t = Double(DispatchTime.now().uptimeNanoseconds - t0) / 1e9
            if i >= warmup { times.append(t) }
        }
        times.sort()
        let median = times[times.count / 2]
        let h = Double(config.hiddenSize), inter = Double(config.intermediateSize), t = Double(seqLength)
        let l = Double(config.numHiddenLayers), v = Double(vocabSize)
        // Forward FLOPs of the matrix products: per token and layer QKV 6H², output 2H², FFN 4HI,
        // scores and P·V 4TH; per masked position the MLM transform 2H² and decoder 2HV; per sequence
        // the pooler 2H². Training = 3 × forward (backward = 2 × forward).
        // ELECTRA: the discriminator's layers and its head (2H² + 2H per token), the generator's layers at
        // width G, its projection (2HG per token) and its head at the masked positions (2GH + 2HV).
        let g = Double(generator.hiddenSize), gi = Double(generator.intermediateSize)
        let forward = objective == .electra
            ? Double(n) * l * (8 * h * h + 4 * h * inter + 4 * t * h) + Double(n) * (2 * h * h + 2 * h)
                + Double(n) * l * (8 * g * g + 4 * g * gi + 4 * t * g) + Double(n) * 2 * h * g
                + Double(positions.count) * (2 * g * h + 2 * h * v)
            : Double(n) * l * (8 * h * h + 4 * h * inter + 4 * t * h)
                + Double(positions.count) * (2 * h * h + 2 * h * v) + Double(batchSize) * 2 * h * h
        let flops = 3 * forward
        // What the kernels actually multiply: the last layer (the generator's, for ELECTRA) runs only
        // for the rows the heads read ([CLS] and the masked positions; keys and values still for every token).
        let kept = Double(batchSize) + Double(positions.count)
        let (lh, li) = objective == .electra ? (g, gi) : (h, inter)
        let lastLayerSaved = (Double(n) - kept) * (2 * lh * lh + 2 * lh * lh + 4 * lh * li + 4 * t * lh)
        let executed = 3 * (forward - lastLayerSaved)
        let peak = sgemmPeakGFLOPS(threads: threads)
        return [
            "model": model, "threads": threads, "batch_size": batchSize, "seq_length": seqLength, "masked_per_sequence": masked,
            "parameters": m.layout.count, "seconds_per_step": median, "tokens_per_second": Double(n) / median,
            "useful_gflops": flops / median / 1e9, "sgemm_peak_gflops": peak, "fraction_of_peak": flops / median / 1e9 / peak,
            "executed_gflops": executed / median / 1e9, "executed_fraction_of_peak": executed / median / 1e9 / peak,
            "all_seconds": times, "precision": precision.stateName ?? "fp32", "objective": objective.rawValue,
        ]
    }
}
