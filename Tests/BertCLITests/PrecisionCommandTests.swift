import Foundation
import Kernels
import Training
import TestSupport
import XCTest

/// `--precision` on pretrain, finetune, predict and evaluate: bf16 refused with exit 2 where the CPU has
/// no bf16 units (never emulated); the bf16 recipe end to end with the reference products
/// (`BERTKIT_BF16_REFERENCE=1`, the same arithmetic on any CPU): recorded in the run's state, close to
/// fp32, and a resume in the other precision allowed and said.
final class PrecisionCommandTests: XCTestCase {
    func testBF16IsRefusedWithoutBF16UnitsAndNeverEmulated() throws {
        guard !BF16Support.isNative else {
            throw XCTSkip("this CPU has bf16 units (\(BF16Support.cpuFlags)): nothing to refuse here")
        }
        let dir = Fixtures.temporaryDirectory().path
        defer { try? FileManager.default.removeItem(atPath: dir) }
        var env = bertEnvironment()
        env["BERTKIT_BF16_REFERENCE"] = nil
        for args in [["pretrain", "--shards", PretrainCommandTests.base + "/shards", "--output", dir + "/run", "--max-steps", "1"],
                     ["evaluate", "--checkpoint", dir, "--shards", PretrainCommandTests.base + "/shards"],
                     ["predict", "--checkpoint", dir, "--input", "/dev/null"],
                     ["finetune", "--checkpoint", dir, "--data", "/dev/null", "--output", dir + "/cls"]] {
            let r = try runBert(args + ["--precision", "bf16"], environment: env)
            XCTAssertEqual(r.status, 2, "\(args[0]): \(r.stderr)")
            XCTAssertTrue(r.stderr.contains("--precision bf16: this CPU has no native bf16 dot products"), r.stderr)
            XCTAssertTrue(r.stderr.contains("bf16 is not emulated"), r.stderr)
        }
        XCTAssertFalse(FileManager.default.fileExists(atPath: dir + "/run"), "nothing written")
        // auto is fp32 here, and says why.
        let auto = try runBert(["pretrain", "--shards", PretrainCommandTests.base + "/shards", "--output", dir + "/auto",
                                "--config", PretrainCommandTests.base + "/tiny.json", "--batch-size", "16", "--max-steps", "2"],
                               environment: env)
        XCTAssertEqual(auto.status, 0, auto.stderr)
        XCTAssertTrue(auto.stderr.contains("fp32 (auto: this CPU has no native bf16"), auto.stderr)
        let state = try String(contentsOfFile: dir + "/auto/latest/training_state.json", encoding: .utf8)
        XCTAssertFalse(state.contains("precision"), "fp32 runs write the state as before")
    }

    /// auto picks bf16 only with AMX tiles: on AVX-512 BF16 alone bf16 measured slower than fp32. The
    /// rule, and what this machine's run says.
    func testAutoPicksBF16OnlyWithAMX() throws {
        XCTAssertTrue(PrecisionChoice.autoPicksBF16(native: true, flags: ["avx512_bf16", "amx_bf16"]))
        XCTAssertFalse(PrecisionChoice.autoPicksBF16(native: true, flags: ["avx512_bf16"]))
        XCTAssertFalse(PrecisionChoice.autoPicksBF16(native: false, flags: ["amx_bf16"]), "oneDNN cannot: fp32")
        let dir = Fixtures.temporaryDirectory().path
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let r = try runBert(["pretrain", "--shards", PretrainCommandTests.base + "/shards", "--output", dir + "/auto",
                             "--config", PretrainCommandTests.base + "/tiny.json", "--batch-size", "16", "--max-steps", "1"])
        XCTAssertEqual(r.status, 0, r.stderr)
        let expected = !BF16Support.isNative ? "fp32 (auto: this CPU has no native bf16"
            : BF16Support.cpuFlags.contains("amx_bf16") ? "bf16 (oneDNN" : "without AMX, where bf16 measured slower than fp32"
        XCTAssertTrue(r.stderr.contains(expected), r.stderr)
    }

    func testBF16RecipeEndToEndWithReferenceProducts() throws {
        let dir = Fixtures.temporaryDirectory().path
        defer { try? FileManager.default.removeItem(atPath: dir) }
        var env = bertEnvironment()
        env["BERTKIT_BF16_REFERENCE"] = "1"
        let expected = BF16Support.isNative ? "bf16 (oneDNN" : "bf16 with reference products"
        func pretrain(_ run: String, _ extra: [String]) throws -> ProcessResult {
            try runBert(["pretrain", "--shards", PretrainCommandTests.base + "/shards", "--output", dir + "/" + run,
                         "--config", PretrainCommandTests.base + "/tiny.json", "--batch-size", "16", "--max-steps", "30",
                         "--save-every-steps", "10", "--learning-rate", "2e-3", "--threads", "2", "--log-every-steps", "10"] + extra,
                        environment: env)
        }
        let bf16 = try pretrain("bf16", ["--precision", "bf16"])
        XCTAssertEqual(bf16.status, 0, bf16.stderr)
        XCTAssertTrue(bf16.stderr.contains(expected), bf16.stderr)
        let fp32 = try pretrain("fp32", ["--precision", "fp32"])
        XCTAssertEqual(fp32.status, 0, fp32.stderr)
        let state = try XCTUnwrap(JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: dir + "/bf16/latest/training_state.json"))) as? [String: Any])
        XCTAssertEqual(state["precision"] as? String, "bf16")
        // The losses follow fp32's closely over 30 updates (within 2% at every logged step), not exactly.
        func losses(_ run: String) throws -> [Double] {
            try String(contentsOfFile: dir + "/" + run + "/metrics.jsonl", encoding: .utf8).split(separator: "\n").map {
                try XCTUnwrap((JSONSerialization.jsonObject(with: Data($0.utf8)) as? [String: Any])?["loss"] as? Double)
            }
        }
        let (a, b) = (try losses("bf16"), try losses("fp32"))
        XCTAssertEqual(a.count, 3)
        XCTAssertNotEqual(a, b, "bf16 is not fp32")
        for (x, y) in zip(a, b) { XCTAssertLessThan(abs(x - y) / y, 0.02, "\(a) vs \(b)") }
        // A bf16 run stopped and resumed in fp32: allowed, and said.
        let stopped = try pretrain("mixed", ["--precision", "bf16", "--stop-after-steps", "10"])
        XCTAssertEqual(stopped.status, 0, stopped.stderr)
        let resumed = try pretrain("mixed", ["--precision", "fp32", "--resume"])
        XCTAssertEqual(resumed.status, 0, resumed.stderr)
        XCTAssertTrue(resumed.stderr.contains("was trained in bf16 and continues in fp32"), resumed.stderr)
        let after = try String(contentsOfFile: dir + "/mixed/latest/training_state.json", encoding: .utf8)
        XCTAssertFalse(after.contains("precision"), "the state says the precision the checkpoint was written in")
        // Evaluate in bf16: the same metrics as fp32 up to bf16 rounding.
        func evaluate(_ precision: String) throws -> [String: Any] {
            let r = try runBert(["evaluate", "--checkpoint", dir + "/fp32/latest", "--shards", PretrainCommandTests.base + "/shards",
                                 "--limit", "64", "--precision", precision], environment: env)
            XCTAssertEqual(r.status, 0, r.stderr)
            return try XCTUnwrap(JSONSerialization.jsonObject(with: Data(r.stdoutText.utf8)) as? [String: Any])
        }
        let (e16, e32) = (try evaluate("bf16"), try evaluate("fp32"))
        let (l16, l32) = (try XCTUnwrap(e16["mlm_loss"] as? Double), try XCTUnwrap(e32["mlm_loss"] as? Double))
        XCTAssertLessThan(abs(l16 - l32) / l32, 0.01, "\(e16) vs \(e32)")
    }
}
