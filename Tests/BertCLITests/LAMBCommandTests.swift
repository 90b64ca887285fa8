import Foundation
import TestSupport
import XCTest

/// `bert pretrain --optimizer lamb`: recorded in the run's state, resumed exactly, and a resume with
/// the other optimizer refused.
final class LAMBCommandTests: XCTestCase {
    func testLAMBRunIsRecordedResumesExactlyAndRefusesAnotherOptimizer() throws {
        let dir = Fixtures.temporaryDirectory().path
        defer { try? FileManager.default.removeItem(atPath: dir) }
        func pretrain(_ run: String, _ extra: [String]) throws -> ProcessResult {
            try runBert(["pretrain", "--shards", PretrainCommandTests.base + "/shards", "--output", dir + "/" + run,
                         "--config", PretrainCommandTests.base + "/tiny.json", "--batch-size", "16", "--max-steps", "20",
                         "--save-every-steps", "10", "--learning-rate", "2e-3", "--threads", "2"] + extra)
        }
        let whole = try pretrain("lamb", ["--optimizer", "lamb"])
        XCTAssertEqual(whole.status, 0, whole.stderr)
        XCTAssertTrue(whole.stderr.contains("LAMB lr"), whole.stderr)
        let state = try XCTUnwrap(JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: dir + "/lamb/latest/training_state.json"))) as? [String: Any])
        XCTAssertEqual(state["optimizer"] as? String, "lamb")
        XCTAssertEqual((state["adam"] as? [String: Any])?["bias_correction"] as? Bool, true, "LAMB corrects the bias by default")
        let adam = try pretrain("adam", [])
        XCTAssertEqual(adam.status, 0, adam.stderr)
        let model = { (run: String) in try Data(contentsOf: URL(fileURLWithPath: dir + "/" + run + "/latest/model.safetensors")) }
        XCTAssertNotEqual(try model("lamb"), try model("adam"))

        let stopped = try pretrain("stopped", ["--optimizer", "lamb", "--stop-after-steps", "12"])
        XCTAssertEqual(stopped.status, 0, stopped.stderr)
        let refused = try pretrain("stopped", ["--resume"])
        XCTAssertEqual(refused.status, 2, refused.stderr)
        XCTAssertTrue(refused.stderr.contains("the run used the lamb optimizer, this one adamw"), refused.stderr)
        let resumed = try pretrain("stopped", ["--optimizer", "lamb", "--resume"])
        XCTAssertEqual(resumed.status, 0, resumed.stderr)
        XCTAssertEqual(try model("stopped"), try model("lamb"), "resumed exactly")
        XCTAssertEqual(try Data(contentsOf: URL(fileURLWithPath: dir + "/stopped/latest/optimizer.safetensors")),
                       try Data(contentsOf: URL(fileURLWithPath: dir + "/lamb/latest/optimizer.safetensors")))
    }
}
