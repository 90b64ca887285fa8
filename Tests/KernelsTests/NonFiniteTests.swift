import Kernels
import XCTest

/// Non-finite inputs give non-finite outputs (for the trainer to catch), never a crash.
final class NonFiniteTests: XCTestCase {
    func testCrossEntropyOnNaNRowsDoesNotCrash() {
        for v in [5, 40] {  // the scalar tail and the 16-wide path
            var logits = [Float](repeating: .nan, count: 3 * v)
            logits[v + 2] = 1  // a row mixing NaN and numbers
            var losses = [Float](repeating: 0, count: 3), lse = losses
            var predictions = [Int32](repeating: -1, count: 3)
            let targets: [Int32] = [0, 2, Int32(v - 1)]
            let r = crossEntropyForward(losses: &losses, logsumexp: &lse, predictions: &predictions, logits: logits,
                                        targets: targets, n: 3, v: v, threads: 1)
            XCTAssertFalse(r.meanLoss.isFinite)
            XCTAssertTrue(predictions.allSatisfy { (0..<Int32(v)).contains($0) })
        }
    }
}
