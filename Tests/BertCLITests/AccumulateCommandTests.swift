import Foundation
import TestSupport
import XCTest

/// `--accumulate N` trains as the N-times larger batch (issue 28): the update's instances (examples) are
/// chosen, length-grouped and shuffled whole, then cut into micro-batches, each weighted by its share
/// of the update. `--batch-size 16`, `8 --accumulate 2` and `4 --accumulate 4` must log the same losses.
///
/// fp32 throughout: the micro-batches' gradients are summed in another order than one batch's (and a
/// micro-batch is padded to its own longest instance), and in bf16 (auto on a CPU with bf16 units) those
/// last-bit differences flip roundings of the bf16 weights, which the updates amplify; the contract is
/// about which instances make an update and how they are weighted. No dropout: a batch of 16 and two of 8
/// draw their dropout masks per micro-batch, so with dropout they cannot be the same training.
final class AccumulateCommandTests: XCTestCase {
    /// Dynamic-masking shards of the committed sample (masks drawn at load time from the seed, the epoch
    /// and the instance, so the same whatever the batch) and a tiny config, made once.
    static let base: String = {
        let dir = Fixtures.temporaryDirectory().path
        let r = try? runBert(["shards", "--input", Fixtures.path("text/en_sample.txt.zst"), "--vocab", Fixtures.uncasedVocab,
                              "--output", dir + "/shards", "--dupe-factor", "1", "--max-seq-length", "64", "--dynamic-masking"])
        precondition(r?.status == 0, "bert shards failed: \(r?.stderr ?? "no binary")")
        let config = #"{"vocab_size": 30522, "hidden_size": 24, "num_hidden_layers": 2, "num_attention_heads": 3, "intermediate_size": 37, "max_position_embeddings": 64}"#
        try? Data(config.utf8).write(to: URL(fileURLWithPath: dir + "/tiny.json"))
        return dir
    }()

    /// The rows of two runs have the same steps; `relative` keys agree to `tolerance`, `exact` keys exactly.
    /// Returns the largest relative difference.
    @discardableResult
    func expectSameRows(_ a: String, _ b: String, relative: [String], exact: [String], tolerance: Double,
                        file: StaticString = #filePath, line: UInt = #line) throws -> Double {
        let (x, y) = (try metricsRows(a), try metricsRows(b))
        XCTAssertEqual(Set(x.keys), Set(y.keys), "the same logged steps", file: file, line: line)
        XCTAssertGreaterThan(x.count, 1, file: file, line: line)
        var worst = (0.0, "")
        for (step, row) in x.sorted(by: { $0.key < $1.key }) {
            for key in relative {
                let (p, q) = (try XCTUnwrap(row[key], "\(key) at step \(step)"), try XCTUnwrap(y[step]?[key], "\(key) at step \(step)"))
                let e = abs(p - q) / max(abs(q), 1e-12)
                if e > worst.0 { worst = (e, "\(key) at step \(step): \(p) in \(a), \(q) in \(b)") }
            }
            for key in exact { XCTAssertEqual(row[key], y[step]?[key], "\(key) at step \(step)", file: file, line: line) }
        }
        XCTAssertLessThanOrEqual(worst.0, tolerance, worst.1, file: file, line: line)
        return worst.0
    }

    /// Pre-training with the default recipe (length grouping in windows of 64 update batches, no dropout)
    /// on dynamic-masking shards: 16, 8 × 2 and 4 × 4 log the same losses, gradient norms and accuracies
    /// at every one of 30 updates, relative 1e-5; 8 without accumulation trains on other instances.
    func testPretrainAccumulationEqualsTheLargerBatch() throws {
        let dir = Fixtures.temporaryDirectory().path
        defer { try? FileManager.default.removeItem(atPath: dir) }
        func run(_ name: String, batch: Int, accumulate: Int) throws {
            let r = try runBert(["pretrain", "--shards", Self.base + "/shards", "--output", dir + "/" + name, "--config", Self.base + "/tiny.json",
                                 "--batch-size", "\(batch)", "--accumulate", "\(accumulate)", "--max-steps", "30", "--learning-rate", "1e-3",
                                 "--log-every-steps", "1", "--precision", "fp32", "--threads", "2"])
            XCTAssertEqual(r.status, 0, r.stderr)
        }
        try run("b16", batch: 16, accumulate: 1)
        try run("b8x2", batch: 8, accumulate: 2)
        try run("b4x4", batch: 4, accumulate: 4)
        try run("b8", batch: 8, accumulate: 1)
        let state = try XCTUnwrap(JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: dir + "/b8x2/latest/training_state.json"))) as? [String: Any])
        XCTAssertEqual(state["group_window_batches"] as? Int, 64, "the default recipe groups by length")
        let keys = ["loss", "mlm_loss", "nsp_loss", "gradient_norm"]
        for other in ["b8x2", "b4x4"] {
            let worst = try expectSameRows(dir + "/" + other, dir + "/b16", relative: keys, exact: ["mlm_accuracy", "nsp_accuracy"], tolerance: 1e-5)
            print("pretrain \(other) against b16: largest relative difference \(worst)")
        }
        // The comparison can fail: half the batch without accumulation is other training.
        let (half, whole) = (try metricsRows(dir + "/b8"), try metricsRows(dir + "/b16"))
        XCTAssertGreaterThan(abs(try XCTUnwrap(half[30]?["loss"]) - (try XCTUnwrap(whole[30]?["loss"]))), 1e-3)
    }

    /// Fine-tuning with --group-by-length and no dropout: 16, 8 × 2 and 4 × 4 log the same losses and
    /// gradient norms at every update, relative 1e-5, the same training accuracies, and choose and score
    /// the same epochs; 8 without accumulation does not.
    func testFinetuneAccumulationEqualsTheLargerBatch() throws {
        let dir = Fixtures.temporaryDirectory().path
        defer { try? FileManager.default.removeItem(atPath: dir) }
        // Rows of uneven length (1 to 12 words), so that length grouping reorders them.
        let words = ["happy", "sad", "good", "bad", "great", "awful", "joy", "hate", "bright", "dark", "sunny", "cold"]
        var rng = SeededRandom(seed: 7)
        var tsv = "text\tlabel\n"
        for i in 0..<150 {
            let n = 1 + Int(rng.next() % 12)
            tsv += (0..<n).map { _ in words.randomElement(using: &rng)! }.joined(separator: " ") + "\t\(i % 3 == 0 ? "a" : "b")\n"
        }
        try Data(tsv.utf8).write(to: URL(fileURLWithPath: dir + "/d.tsv"))
        func run(_ name: String, batch: Int, accumulate: Int) throws {
            let r = try runBert(["finetune", "--checkpoint", FinetuneCommandTests.checkpoint, "--data", dir + "/d.tsv", "--output", dir + "/" + name,
                                 "--epochs", "2", "--batch-size", "\(batch)", "--accumulate", "\(accumulate)", "--group-by-length", "--dropout", "0",
                                 "--max-seq-length", "32", "--learning-rate", "1e-2", "--eval-fraction", "0.2", "--log-every-steps", "1",
                                 "--precision", "fp32", "--threads", "2"])
            XCTAssertEqual(r.status, 0, r.stderr)
            if accumulate > 1 { XCTAssertTrue(r.stderr.contains("batch \(batch) × accumulate \(accumulate)"), r.stderr) }
        }
        try run("b16", batch: 16, accumulate: 1)
        try run("b8x2", batch: 8, accumulate: 2)
        try run("b4x4", batch: 4, accumulate: 4)
        try run("b8", batch: 8, accumulate: 1)
        let summary = try XCTUnwrap(JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: dir + "/b16/finetune_summary.json"))) as? [String: Any])
        let trainCount = try XCTUnwrap(summary["train_examples"] as? Int)
        XCTAssertEqual(try metricsRows(dir + "/b16").keys.max(), 2 * ((trainCount + 15) / 16), "2 epochs of ⌈\(trainCount) / 16⌉ updates")
        for other in ["b8x2", "b4x4"] {
            let worst = try expectSameRows(dir + "/" + other, dir + "/b16", relative: ["loss", "gradient_norm"],
                                           exact: ["accuracy", "eval_accuracy", "eval_macro_f1"], tolerance: 1e-5)
            print("finetune \(other) against b16: largest relative difference \(worst)")
            XCTAssertEqual(try String(contentsOfFile: dir + "/" + other + "/best_epoch.txt", encoding: .utf8),
                           try String(contentsOfFile: dir + "/b16/best_epoch.txt", encoding: .utf8))
        }
        XCTAssertEqual(try metricsRows(dir + "/b8").keys.max(), 2 * ((trainCount + 7) / 8), "without accumulation, twice the updates")
        XCTAssertNotEqual(try metricsRows(dir + "/b8")[1]?["loss"], try metricsRows(dir + "/b16")[1]?["loss"], "other examples in the first update")
    }
}
