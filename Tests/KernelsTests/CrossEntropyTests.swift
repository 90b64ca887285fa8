import Kernels
import TestSupport
import XCTest

final class CrossEntropyTests: XCTestCase {
    func testNaiveBackwardMatchesFiniteDifferences() {
        let (n, v) = (5, 11)
        var rng = SeededRandom(seed: 51)
        var logits = Numerics.uniform(n * v, scale: 3, &rng)
        let targets: [Int32] = [0, 10, 3, 3, 7]
        let d = Naive.crossEntropyBackward(logits: logits, targets: targets, n: n, v: v, scale: 0.7)
        let fd = Numerics.gradient(of: { 0.7 * Naive.crossEntropyForward(logits: $0, targets: targets, n: n, v: v).meanLoss }, at: &logits)
        XCTAssertLessThan(Numerics.maxError(d, fd), fdTolerance)
    }

    func testFastMatchesNaive() {
        var rng = SeededRandom(seed: 52)
        for (n, v) in [(5, 11), (7, 1003), (1, 16)] {
            let logits = Numerics.uniform(n * v, scale: 8, &rng).float.double
            let targets = (0..<n).map { _ in Int32.random(in: 0..<Int32(v), using: &rng) }
            let ref = Naive.crossEntropyForward(logits: logits, targets: targets, n: n, v: v)
            let rd = Naive.crossEntropyBackward(logits: logits, targets: targets, n: n, v: v, scale: 2)
            var losses = [Float](repeating: .nan, count: n), lse = losses, pred = [Int32](repeating: -1, count: n)
            var lg = logits.float
            let (mean, correct) = crossEntropyForward(losses: &losses, logsumexp: &lse, predictions: &pred, logits: lg, targets: targets,
                                                      n: n, v: v, threads: 2)
            // In place: dlogits overwrites the logits.
            lg.withUnsafeMutableBufferPointer { p in
                crossEntropyBackward(dlogits: p.baseAddress!, logits: p.baseAddress!, logsumexp: lse, targets: targets, n: n, v: v,
                                     scale: 2, threads: 2)
            }
            XCTAssertLessThan(Numerics.maxError([mean], [ref.meanLoss]), fastTolerance)
            XCTAssertLessThan(Numerics.maxError(losses, ref.losses), fastTolerance)
            XCTAssertEqual(correct, ref.correct)
            XCTAssertLessThan(Numerics.maxError(lg, rd), fastTolerance)
        }
    }

    func testLossValuesAndAccuracy() {
        // Uniform logits: loss ln V exactly; ties predict the first index.
        let v = 7
        var logits = [Float](repeating: 0.5, count: 3 * v)
        logits[v + 4] = 3 // row 1 predicts 4
        logits[2 * v + 6] = 3 // row 2 predicts 6
        let targets: [Int32] = [0, 4, 2]
        var losses = [Float](repeating: 0, count: 3), lse = losses, pred = [Int32](repeating: 0, count: 3)
        let (_, correct) = crossEntropyForward(losses: &losses, logsumexp: &lse, predictions: &pred, logits: logits, targets: targets,
                                               n: 3, v: v, threads: 1)
        XCTAssertEqual(pred, [0, 4, 6])
        XCTAssertEqual(correct, 2)
        XCTAssertEqual(Double(losses[0]), log(7.0), accuracy: 1e-6)
        XCTAssertEqual(Double(losses[1]), log(6 + exp(2.5)) - 2.5, accuracy: 1e-6)
    }

    func testPredictionIsTheFirstMaximum() {
        // Ties across lanes, within a lane, and between the vector part and the tail.
        let v = 40
        let cases: [([Int], Int32)] = [([33, 5], 5), ([36, 20], 20), ([39, 7, 23], 7), ([38, 39], 38), ([0], 0), ([17], 17)]
        for (hot, expected) in cases {
            var logits = [Float](repeating: -1, count: v)
            for k in hot { logits[k] = 2 }
            var loss: [Float] = [0], lse: [Float] = [0], pred: [Int32] = [-1]
            crossEntropyForward(losses: &loss, logsumexp: &lse, predictions: &pred, logits: logits, targets: [0], n: 1, v: v, threads: 1)
            XCTAssertEqual(pred[0], expected, "\(hot)")
        }
    }

    func testThreadCountDoesNotChangeResults() {
        let (n, v) = (9, 3001)
        var rng = SeededRandom(seed: 53)
        let logits = Numerics.uniform(n * v, scale: 4, &rng).float
        let targets = (0..<n).map { _ in Int32.random(in: 0..<Int32(v), using: &rng) }
        func run(_ threads: Int) -> [[Float]] {
            var losses = [Float](repeating: 0, count: n), lse = losses, pred = [Int32](repeating: 0, count: n)
            var d = [Float](repeating: 0, count: n * v)
            let (mean, _) = crossEntropyForward(losses: &losses, logsumexp: &lse, predictions: &pred, logits: logits, targets: targets,
                                                n: n, v: v, threads: threads)
            crossEntropyBackward(dlogits: &d, logits: logits, logsumexp: lse, targets: targets, n: n, v: v, threads: threads)
            return [[Float(mean)], losses, lse, d]
        }
        let one = run(1), three = run(3)
        for (k, (a, b)) in zip(one, three).enumerated() { XCTAssertTrue(Numerics.bitIdentical(a, b), "output \(k)") }
    }
}
