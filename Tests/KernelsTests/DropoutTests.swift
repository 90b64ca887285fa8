import Support
import Kernels
import TestSupport
import XCTest

final class DropoutTests: XCTestCase {
    func testZeroProbabilityIsAnExactNoOp() {
        var rng = SeededRandom(seed: 61)
        let x = Numerics.uniform(1001, &rng).float, dy = Numerics.uniform(1001, &rng).float
        var y = [Float](repeating: .nan, count: x.count), mask = [UInt8](repeating: 7, count: x.count)
        dropoutForward(out: &y, mask: &mask, inp: x, count: x.count, p: 0, seed: 1, threads: 2)
        XCTAssertTrue(Numerics.bitIdentical(y, x))
        XCTAssertEqual(mask, [UInt8](repeating: 7, count: x.count)) // not written
        var dx = [Float](repeating: 0, count: x.count)
        dropoutBackward(dinp: &dx, dout: dy, mask: mask, count: x.count, p: 0, threads: 2)
        XCTAssertTrue(Numerics.bitIdentical(dx, dy))
    }

    func testNaiveBackwardMatchesFiniteDifferences() {
        var rng = SeededRandom(seed: 62)
        var x = Numerics.uniform(23, &rng)
        let r = Numerics.uniform(23, &rng)
        let (_, mask) = Naive.dropoutForward(inp: x, p: 0.4, seed: 9)
        var dx = [Double](repeating: 0, count: 23)
        Naive.dropoutBackward(dinp: &dx, dout: r, mask: mask, p: 0.4)
        XCTAssertLessThan(Numerics.maxError(dx, Numerics.gradient(of: { Numerics.dot(r, Naive.dropoutForward(inp: $0, p: 0.4, seed: 9).out) }, at: &x)),
                          fdTolerance)
    }

    func testMaskStatisticsScaleAndBackward() {
        let count = 200_001, p: Float = 0.3
        var rng = SeededRandom(seed: 63)
        let x = Numerics.uniform(count, &rng).float.map { $0 == 0 ? 1 : $0 }, dy = Numerics.uniform(count, &rng).float
        var y = [Float](repeating: .nan, count: count), mask = [UInt8](repeating: 9, count: count)
        dropoutForward(out: &y, mask: &mask, inp: x, count: count, p: p, seed: 42, threads: 2)
        let kept = mask.reduce(0) { $0 + Int($1) }
        XCTAssertEqual(Double(kept) / Double(count), 0.7, accuracy: 0.005) // σ ≈ 0.001
        let scale = Float(1 / (1 - 0.3))
        for i in 0..<count {
            XCTAssertTrue(mask[i] <= 1)
            XCTAssertEqual(y[i], mask[i] == 1 ? x[i] * scale : 0)
        }
        var dx = [Float](repeating: 0, count: count)
        dropoutBackward(dinp: &dx, dout: dy, mask: mask, count: count, p: p, threads: 2)
        for i in 0..<count { XCTAssertEqual(dx[i], mask[i] == 1 ? dy[i] * scale : 0) }
        // Neighbouring draws are not correlated (the two halves of one 64-bit word).
        var both = 0
        for i in stride(from: 0, to: count - 1, by: 2) where mask[i] == 1 && mask[i + 1] == 1 { both += 1 }
        XCTAssertEqual(Double(both) / Double(count / 2), 0.49, accuracy: 0.01)
    }

    func testSeedsThreadsAndNaiveAgree() {
        var rng = SeededRandom(seed: 64)
        let x = Numerics.uniform(50_003, &rng).float
        func run(seed: UInt64, threads: Int) -> ([Float], [UInt8]) {
            var y = [Float](repeating: 0, count: x.count), mask = [UInt8](repeating: 0, count: x.count)
            dropoutForward(out: &y, mask: &mask, inp: x, count: x.count, p: 0.1, seed: seed, threads: threads)
            return (y, mask)
        }
        let a = run(seed: 1, threads: 1), b = run(seed: 1, threads: 3), c = run(seed: 2, threads: 1)
        XCTAssertTrue(Numerics.bitIdentical(a.0, b.0))
        XCTAssertEqual(a.1, b.1)
        XCTAssertNotEqual(a.1, c.1)
        let ref = Naive.dropoutForward(inp: x, p: 0.1, seed: 1)
        XCTAssertEqual(ref.mask, a.1)
        XCTAssertTrue(Numerics.bitIdentical(ref.out, a.0))
        XCTAssertNotEqual(deriveSeed(1, 0), deriveSeed(1, 1))
        XCTAssertNotEqual(deriveSeed(1, 0), deriveSeed(2, 0))
    }

    func testSelectedRowsDrawLikeTheFullTensor() {
        let (n, c) = (9, 21)
        var rng = SeededRandom(seed: 65)
        let x = Numerics.uniform(n * c, &rng).float
        var full = [Float](repeating: 0, count: n * c), fullMask = [UInt8](repeating: 0, count: n * c)
        dropoutForward(out: &full, mask: &fullMask, inp: x, count: n * c, p: 0.4, seed: 8, threads: 1)
        let index: [Int32] = [0, 4, 5, 8]
        var sel = [Float](), selMask = [UInt8](repeating: 0, count: index.count * c)
        for i in index { sel += x[(Int(i) * c)..<(Int(i) * c + c)] }
        sel.withUnsafeMutableBufferPointer { s in
            dropoutForwardRows(out: s.baseAddress!, mask: &selMask, inp: s.baseAddress!, index: index, m: index.count, c: c, p: 0.4, seed: 8,
                               threads: 2)
        }
        for (k, i) in index.enumerated() {
            XCTAssertEqual(Array(selMask[(k * c)..<(k * c + c)]), Array(fullMask[(Int(i) * c)..<(Int(i) * c + c)]))
            XCTAssertEqual(Array(sel[(k * c)..<(k * c + c)]), Array(full[(Int(i) * c)..<(Int(i) * c + c)]))
        }
    }
}
