import Kernels
import TestSupport
import XCTest

final class ElementwiseTests: XCTestCase {
    func testResidualAccumulateGatherScatter() {
        var rng = SeededRandom(seed: 71)
        let a = Numerics.uniform(1003, &rng).float, b = Numerics.uniform(1003, &rng).float
        var out = [Float](repeating: 0, count: 1003)
        residualForward(out: &out, a: a, b: b, count: 1003, threads: 2)
        XCTAssertEqual(out, zip(a, b).map { $0 + $1 })
        var acc = a
        accumulate(&acc, b, count: 1003, threads: 2)
        XCTAssertEqual(acc, out)
        // gather rows 4, 0, 4 of a (5,3) matrix; scatter back adds row 4 twice.
        let x: [Float] = (0..<15).map(Float.init)
        var g = [Float](repeating: 0, count: 9)
        gatherRows(out: &g, inp: x, index: [4, 0, 4], m: 3, c: 3)
        XCTAssertEqual(g, [12, 13, 14, 0, 1, 2, 12, 13, 14])
        var d = [Float](repeating: 1, count: 15)
        scatterAddRows(dinp: &d, dout: g, index: [4, 0, 4], m: 3, c: 3)
        XCTAssertEqual(d, [1, 2, 3, 1, 1, 1, 1, 1, 1, 1, 1, 1, 25, 27, 29])
        var z = a
        zero(&z, count: 1003, threads: 2)
        XCTAssertEqual(z, [Float](repeating: 0, count: 1003))
    }
}
