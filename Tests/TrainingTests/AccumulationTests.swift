import Support
import BertModel
import Foundation
import ModelTestSupport
import PretrainingData
import TestSupport
import XCTest

@testable import Training

/// `--accumulate N` (N micro-batches of B instances per update) against one batch of N·B instances:
/// with dropout off, the same seed (the data order does not depend on the batch size), the same
/// schedule and no clipping (so the gradient's scale shows), the two runs must compute the same
/// gradients and make the same updates, up to float rounding.
///
/// The tolerances, derived. The only differences allowed are the float32 summation order (one GEMM
/// over 2B rows against two over B rows added, the 1/count factors): ~1e-6 of a gradient's size, so
/// the first update's gradients (from the same parameters) must agree to 1e-5 of the largest entry.
/// For the parameters: AdamW turns a relative perturbation δ of g into at most ~3.2·δ in the update
/// u = m/(√v + ε) (|u| ≤ (1 − β1)/√(1 − β2) ≈ 3.2 in the first updates), and an absolute one Δg
/// (~1e-9 where terms cancel) into at most (1 − β1)·Δg/ε = 1e-4; so a parameter may drift by ~1e-4·lr
/// per update, and we allow ten times that, 1e-3·Σ lr. The losses logged must agree to 1e-5
/// (relative). A real difference in how the micro-batches are weighted changes gradient entries by
/// several percent and u by O(0.1–1): far beyond these (the runs are required to move parameters by
/// more than 100 times the tolerance, so that a difference could show).
final class AccumulationTests: XCTestCase {
    static let vocabularySize = 37
    static let maxSeqLength = 12
    static let maxPredictions = 3
    static let config = microConfig(vocabSize: vocabularySize, maxPositions: maxSeqLength)

    static var vocabulary: Data {
        let special = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
        let tokens = (0..<vocabularySize).map { $0 < special.count ? special[$0] : "w\($0)" }
        return Data((tokens.joined(separator: "\n") + "\n").utf8)
    }

    /// A shard directory of `count` random [CLS] A [SEP] B [SEP] instances, instance i with
    /// `masked(i)` masked positions (statically masked: [MASK] in the tokens, the original as label).
    static func makeShards(count: Int, masked: (Int) -> Int) throws -> ShardSet {
        let dir = Fixtures.temporaryDirectory().appendingPathComponent("shards").path
        let vocab = vocabulary
        let params = ShardGenerationParameters(maxSeqLength: maxSeqLength, maskedLMProb: 0.15, maxPredictionsPerSeq: maxPredictions,
                                               dupeFactor: 1, seed: 3)
        let writer = try ShardWriter(directory: dir, vocabularySize: vocabularySize, vocabSHA256: SHA256.hex(SHA256.hash(Array(vocab))),
                                     parameters: params, expectedInstances: count, targetShardBytes: 200)
        var rng = SeededRandom(seed: 19)
        for i in 0..<count {
            let n = Int.random(in: 7...maxSeqLength, using: &rng)
            let a = Int.random(in: 1...(n - 4), using: &rng)  // A's length; B gets n − 3 − a ≥ 1
            var tokens: [UInt32] = (0..<n).map { _ in UInt32.random(in: 5..<UInt32(vocabularySize), using: &rng) }
            tokens[0] = 2
            tokens[a + 1] = 3
            tokens[n - 1] = 3
            let candidates = (1..<(n - 1)).filter { $0 != a + 1 }
            let positions = Array(candidates.shuffled(using: &rng).prefix(masked(i))).sorted()
            let labels = positions.map { tokens[$0] }
            for p in positions { tokens[p] = 4 }
            try writer.add(TrainingInstance(tokens: tokens, segmentALength: a + 2, isRandomNext: Bool.random(using: &rng),
                                            maskedPositions: positions, maskedLabels: labels), key: UInt64(i))
        }
        try writer.finish()
        return try ShardSet(directory: dir)
    }

    struct Run {
        var initial: [Float]
        var final: [Float]
        /// The last update's gradient (as the optimizer got it).
        var gradient: [Float]
        var losses: [Double]
        var rates: [Double]
    }

    /// `updates` updates with micro-batches of `batch` instances, `accumulate` per update.
    func train(_ shards: ShardSet, batch: Int, accumulate: Int, updates: Int, window: Int = 0) throws -> Run {
        var o = PretrainOptions(runDirectory: Fixtures.temporaryDirectory().appendingPathComponent("run").path)
        o.batchSize = batch
        o.accumulate = accumulate
        o.learningRate = 1e-2
        o.warmupSteps = 0
        o.maxSteps = updates
        o.seed = 5
        o.threads = 1
        o.logEverySteps = 1
        o.maxGradNorm = 1e9  // no clipping: the gradient's scale is compared too
        o.groupWindowBatches = window
        let trainer = try Pretrainer(options: o, config: Self.config, shards: shards, vocabulary: Self.vocabulary, maskerForDynamic: nil)
        XCTAssertEqual(trainer.totalSteps, updates)
        let initial = Array(trainer.model.parameters)
        try trainer.run()
        XCTAssertEqual(trainer.step, updates)
        var losses: [Double] = []
        for line in try String(contentsOfFile: o.runDirectory + "/metrics.jsonl", encoding: .utf8).split(separator: "\n") {
            let row = try XCTUnwrap(JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any])
            losses.append(try XCTUnwrap(row["loss"] as? Double))
        }
        return Run(initial: initial, final: Array(trainer.model.parameters), gradient: Array(trainer.model.gradients), losses: losses,
                   rates: (0..<updates).map { trainer.schedule.rate(at: $0) })
    }

    /// Masked positions per micro-batch of `batch` instances, in training order (epoch 0, seed 5).
    func maskedPerBatch(_ shards: ShardSet, batch: Int) throws -> [Int] {
        let loader = try ShardLoader(set: shards, options: .init(batchSize: batch, seed: 5), masker: nil)
        let batches = try loader.batches(epoch: 0)
        var out: [Int] = []
        while let b = try batches.next() { out.append(b.maskedPositions.count) }
        return out
    }

    func expectSameUpdates(_ shards: ShardSet, window: Int = 0, file: StaticString = #filePath, line: UInt = #line) throws {
        let b = 2, updates = 3
        let micro = try maskedPerBatch(shards, batch: b)
        // The first update's gradient, from the same parameters: equal but for the float summation
        // order (~1e-6 of the gradient's size; allowed 1e-5).
        let big1 = try train(shards, batch: 2 * b, accumulate: 1, updates: 1, window: window)
        let accumulated1 = try train(shards, batch: b, accumulate: 2, updates: 1, window: window)
        let scale = Double(big1.gradient.map { abs($0) }.max()!)
        XCTAssertGreaterThan(scale, 0, file: file, line: line)
        var gradientError = 0.0, at = 0
        for i in big1.gradient.indices {
            let d = Double(abs(big1.gradient[i] - accumulated1.gradient[i]))
            if d > gradientError { (gradientError, at) = (d, i) }
        }
        XCTAssertLessThanOrEqual(gradientError, 1e-5 * scale,
                                 "gradient entry \(at) of the first update: batch \(2 * b) gives \(big1.gradient[at]), \(b) × accumulate 2 gives \(accumulated1.gradient[at]) (largest entry \(scale)); masked positions per micro-batch \(micro)",
                                 file: file, line: line)

        let big = try train(shards, batch: 2 * b, accumulate: 1, updates: updates, window: window)
        let accumulated = try train(shards, batch: b, accumulate: 2, updates: updates, window: window)
        XCTAssertEqual(big.initial, accumulated.initial, "the same initialisation", file: file, line: line)
        let tolerance = 1e-3 * big.rates.reduce(0, +)
        var moved = 0.0, worst = 0.0, worstIndex = 0
        for i in big.final.indices {
            moved = max(moved, Double(abs(big.final[i] - big.initial[i])))
            let d = Double(abs(big.final[i] - accumulated.final[i]))
            if d > worst { (worst, worstIndex) = (d, i) }
        }
        XCTAssertGreaterThan(moved, 100 * tolerance, "the updates move the parameters far more than the tolerance", file: file, line: line)
        XCTAssertLessThanOrEqual(worst, tolerance,
                                 "parameter \(worstIndex): batch \(2 * b) gives \(big.final[worstIndex]), \(b) × accumulate 2 gives \(accumulated.final[worstIndex]) (moved up to \(moved)); masked positions per micro-batch \(micro)",
                                 file: file, line: line)
        XCTAssertEqual(big.losses.count, updates, file: file, line: line)
        XCTAssertEqual(accumulated.losses.count, updates, file: file, line: line)
        for (k, (x, y)) in zip(big.losses, accumulated.losses).enumerated() {
            XCTAssertEqual(y, x, accuracy: 1e-5 * abs(x), "loss of update \(k + 1); masked positions per micro-batch \(micro)", file: file, line: line)
        }
    }

    /// Every instance has 2 masked positions: each micro-batch has the same number, so a mean over a
    /// micro-batch's positions weighted 1/2 is the big batch's mean whichever way it is normalised.
    func testAccumulateEqualsOneBigBatchWithEqualMaskedCounts() throws {
        let shards = try Self.makeShards(count: 12) { _ in 2 }
        try expectSameUpdates(shards)
    }

    /// 1 to 3 masked positions per instance, so micro-batches of one update hold different numbers of
    /// masked positions: the big batch's MLM loss is the mean over all of them, which accumulation
    /// must reproduce (google-research/bert: Σ weights·loss / Σ weights over the whole batch).
    func testAccumulateEqualsOneBigBatchWithUnequalMaskedCounts() throws {
        let shards = try Self.makeShards(count: 12) { i in 1 + (i * 7) % 3 }
        let micro = try maskedPerBatch(shards, batch: 2)
        let pairs = stride(from: 0, to: micro.count - 1, by: 2).map { (micro[$0], micro[$0 + 1]) }
        XCTAssertTrue(pairs.contains { $0.0 != $0.1 }, "some update's micro-batches hold different numbers of masked positions: \(micro)")
        try expectSameUpdates(shards)
    }

    /// Length grouping on (windows of 2 update batches, each batch padded to its longest instance): the
    /// window, the sort and the shuffle are of whole update batches, then cut into micro-batches, so
    /// batch 2 × accumulate 2 trains on the same instances in the same order as batch 4 (before, each
    /// micro-batch was grouped on its own and the updates held other instances).
    func testAccumulateEqualsOneBigBatchWithLengthGrouping() throws {
        let shards = try Self.makeShards(count: 12) { i in 1 + (i * 5) % 3 }
        try expectSameUpdates(shards, window: 2)
    }
}
