import Kernels
import TestSupport
import XCTest

final class LayerNormTests: XCTestCase {
    func testNaiveBackwardMatchesFiniteDifferences() {
        let (n, c) = (5, 7)
        var rng = SeededRandom(seed: 11)
        var x = Numerics.uniform(n * c, scale: 2, &rng), w = Numerics.uniform(c, &rng), b = Numerics.uniform(c, &rng)
        let r = Numerics.uniform(n * c, &rng)
        let eps = 1e-5
        func loss(_ x: [Double], _ w: [Double], _ b: [Double]) -> Double {
            Numerics.dot(r, Naive.layerNormForward(inp: x, weight: w, bias: b, n: n, c: c, eps: eps).out)
        }
        let f = Naive.layerNormForward(inp: x, weight: w, bias: b, n: n, c: c, eps: eps)
        var dx = [Double](repeating: 0, count: n * c), dw = [Double](repeating: 0, count: c), db = dw
        Naive.layerNormBackward(dinp: &dx, dweight: &dw, dbias: &db, dout: r, inp: x, weight: w, mean: f.mean, rstd: f.rstd, n: n, c: c)
        let (x0, w0, b0) = (x, w, b)
        XCTAssertLessThan(Numerics.maxError(dx, Numerics.gradient(of: { loss($0, w0, b0) }, at: &x)), fdTolerance)
        XCTAssertLessThan(Numerics.maxError(dw, Numerics.gradient(of: { loss(x0, $0, b0) }, at: &w)), fdTolerance)
        XCTAssertLessThan(Numerics.maxError(db, Numerics.gradient(of: { loss(x0, w0, $0) }, at: &b)), fdTolerance)
    }

    func testFastMatchesNaive() {
        var rng = SeededRandom(seed: 12)
        for (n, c) in [(5, 7), (37, 53), (3, 128), (300, 130)] {
            let x = Numerics.uniform(n * c, scale: 3, &rng).map { $0 + 0.5 }, w = Numerics.uniform(c, &rng), b = Numerics.uniform(c, &rng)
            let dy = Numerics.uniform(n * c, &rng)
            let dx0 = Numerics.uniform(n * c, &rng), dw0 = Numerics.uniform(c, &rng), db0 = Numerics.uniform(c, &rng)
            let xf = x.float.double // the Float inputs, exactly, for the reference
            let ref = Naive.layerNormForward(inp: xf, weight: w.float.double, bias: b.float.double, n: n, c: c, eps: 1e-12)
            var rdx = dx0.float.double, rdw = dw0.float.double, rdb = db0.float.double
            Naive.layerNormBackward(dinp: &rdx, dweight: &rdw, dbias: &rdb, dout: dy.float.double, inp: xf, weight: w.float.double,
                                    mean: ref.mean, rstd: ref.rstd, n: n, c: c)
            var y = [Float](repeating: .nan, count: n * c), mean = [Float](repeating: .nan, count: n), rstd = mean
            layerNormForward(out: &y, mean: &mean, rstd: &rstd, inp: x.float, weight: w.float, bias: b.float, n: n, c: c, eps: 1e-12, threads: 2)
            var dx = dx0.float, dw = dw0.float, db = db0.float
            layerNormBackward(dinp: &dx, dweight: &dw, dbias: &db, dout: dy.float, inp: x.float, weight: w.float, mean: mean, rstd: rstd,
                              n: n, c: c, threads: 2)
            let shape = "n \(n) c \(c)"
            XCTAssertLessThan(Numerics.maxError(y, ref.out), fastTolerance, shape)
            XCTAssertLessThan(Numerics.maxError(mean, ref.mean), fastTolerance, shape)
            XCTAssertLessThan(Numerics.maxError(rstd, ref.rstd), fastTolerance, shape)
            XCTAssertLessThan(Numerics.maxError(dx, rdx), fastTolerance, shape)
            XCTAssertLessThan(Numerics.maxError(dw, rdw), fastTolerance, shape)
            XCTAssertLessThan(Numerics.maxError(db, rdb), fastTolerance, shape)
        }
    }

    func testThreadCountDoesNotChangeResults() {
        let (n, c) = (301, 131)
        var rng = SeededRandom(seed: 13)
        let x = Numerics.uniform(n * c, &rng).float, w = Numerics.uniform(c, &rng).float, b = Numerics.uniform(c, &rng).float
        let dy = Numerics.uniform(n * c, &rng).float
        func run(_ threads: Int) -> [[Float]] {
            var y = [Float](repeating: 0, count: n * c), mean = [Float](repeating: 0, count: n), rstd = mean
            var dx = [Float](repeating: 0, count: n * c), dw = [Float](repeating: 0, count: c), db = dw
            layerNormForward(out: &y, mean: &mean, rstd: &rstd, inp: x, weight: w, bias: b, n: n, c: c, eps: 1e-12, threads: threads)
            layerNormBackward(dinp: &dx, dweight: &dw, dbias: &db, dout: dy, inp: x, weight: w, mean: mean, rstd: rstd, n: n, c: c,
                              threads: threads)
            return [y, mean, rstd, dx, dw, db]
        }
        let one = run(1), three = run(3)
        for (k, (a, b)) in zip(one, three).enumerated() { XCTAssertTrue(Numerics.bitIdentical(a, b), "output \(k)") }
    }
}
