import Kernels
import TestSupport
import XCTest

/// Tolerances used by the kernel tests (errors are |a − b|/(1 + |b|), see `Numerics.maxError`):
/// naive Double backward vs central differences (h = 1e-5): 1e-8 (observed ≤ 1e-10);
/// fast Float kernel vs naive Double: 1e-5 (observed ≤ 4e-6: Float sums of a few hundred terms).
let fdTolerance = 1e-8
let fastTolerance = 1e-5

final class LinearTests: XCTestCase {
    func testNaiveBackwardMatchesFiniteDifferences() {
        let (n, fin, fout) = (5, 7, 3)
        var rng = SeededRandom(seed: 1)
        for withBias in [true, false] {
            var x = Numerics.uniform(n * fin, &rng), w = Numerics.uniform(fout * fin, &rng)
            var bias: [Double] = Numerics.uniform(fout, &rng)
            let r = Numerics.uniform(n * fout, &rng)
            func loss(_ x: [Double], _ w: [Double], _ b: [Double]) -> Double {
                Numerics.dot(r, Naive.linearForward(inp: x, weight: w, bias: withBias ? b : nil, n: n, inFeatures: fin, outFeatures: fout))
            }
            var dx = [Double](repeating: 0, count: x.count), dw = [Double](repeating: 0, count: w.count)
            var db: [Double]? = withBias ? [Double](repeating: 0, count: fout) : nil
            Naive.linearBackward(dinp: &dx, dweight: &dw, dbias: &db, dout: r, inp: x, weight: w, n: n, inFeatures: fin, outFeatures: fout)
            let (x0, w0, b0) = (x, w, bias)
            XCTAssertLessThan(Numerics.maxError(dx, Numerics.gradient(of: { loss($0, w0, b0) }, at: &x)), fdTolerance)
            XCTAssertLessThan(Numerics.maxError(dw, Numerics.gradient(of: { loss(x0, $0, b0) }, at: &w)), fdTolerance)
            if withBias {
                XCTAssertLessThan(Numerics.maxError(db!, Numerics.gradient(of: { loss(x0, w0, $0) }, at: &bias)), fdTolerance)
            }
        }
    }

    func testFastMatchesNaive() {
        var rng = SeededRandom(seed: 2)
        for (n, fin, fout) in [(5, 7, 3), (33, 19, 21), (2, 1, 5)] {
            for withBias in [true, false] {
                let x = Numerics.uniform(n * fin, &rng), w = Numerics.uniform(fout * fin, &rng), b = Numerics.uniform(fout, &rng)
                let dy = Numerics.uniform(n * fout, &rng)
                // Gradients start non-zero to check that backward accumulates.
                let dx0 = Numerics.uniform(n * fin, &rng), dw0 = Numerics.uniform(fout * fin, &rng), db0 = Numerics.uniform(fout, &rng)
                let ref = Naive.linearForward(inp: x, weight: w, bias: withBias ? b : nil, n: n, inFeatures: fin, outFeatures: fout)
                var rdx = dx0, rdw = dw0
                var rdb: [Double]? = withBias ? db0 : nil
                Naive.linearBackward(dinp: &rdx, dweight: &rdw, dbias: &rdb, dout: dy, inp: x, weight: w, n: n, inFeatures: fin, outFeatures: fout)

                let (xf, wf, bf, dyf) = (x.float, w.float, b.float, dy.float)
                var y = [Float](repeating: .nan, count: n * fout)
                var dx = dx0.float, dw = dw0.float, db = db0.float
                bf.withUnsafeBufferPointer { bp in
                    linearForward(out: &y, inp: xf, weight: wf, bias: withBias ? bp.baseAddress : nil, n: n, inFeatures: fin,
                                  outFeatures: fout, threads: 2)
                }
                db.withUnsafeMutableBufferPointer { dbp in
                    linearBackward(dinp: &dx, dweight: &dw, dbias: withBias ? dbp.baseAddress : nil, dout: dyf, inp: xf, weight: wf,
                                   n: n, inFeatures: fin, outFeatures: fout, threads: 2)
                }
                let shape = "n \(n) in \(fin) out \(fout) bias \(withBias)"
                XCTAssertLessThan(Numerics.maxError(y, ref), fastTolerance, shape)
                XCTAssertLessThan(Numerics.maxError(dx, rdx), fastTolerance, shape)
                XCTAssertLessThan(Numerics.maxError(dw, rdw), fastTolerance, shape)
                XCTAssertLessThan(Numerics.maxError(db, rdb ?? db0), fastTolerance, shape)
            }
        }
    }

    /// Independent of the thread count, bit for bit: the bias sum by construction, and the products
    /// because `gemm` cuts each into blocks fixed by the shape alone and runs every block as one
    /// single-threaded sgemm (OpenBLAS's own threading is not bit-identical; see Gemm.swift).
    func testThreadCountDoesNotChangeResults() {
        let (n, fin, fout) = (601, 67, 131)
        var rng = SeededRandom(seed: 3)
        let x = Numerics.uniform(n * fin, &rng).float, w = Numerics.uniform(fout * fin, &rng).float
        let b = Numerics.uniform(fout, &rng).float, dy = Numerics.uniform(n * fout, &rng).float
        func run(_ threads: Int) -> [[Float]] {
            var y = [Float](repeating: 0, count: n * fout)
            var dx = [Float](repeating: 0, count: n * fin), dw = [Float](repeating: 0, count: fout * fin)
            var db = [Float](repeating: 0, count: fout)
            linearForward(out: &y, inp: x, weight: w, bias: b, n: n, inFeatures: fin, outFeatures: fout, threads: threads)
            linearBackward(dinp: &dx, dweight: &dw, dbias: &db, dout: dy, inp: x, weight: w, n: n, inFeatures: fin,
                           outFeatures: fout, threads: threads)
            return [y, dx, dw, db]
        }
        let one = run(1), three = run(3)
        for (k, (a, b)) in zip(one, three).enumerated() { XCTAssertTrue(Numerics.bitIdentical(a, b), "output \(k): max error \(Numerics.maxError(a, b))") }
    }

    func testFiniteDifferenceCheckerCatchesAWrongGradient() {
        // The checker itself must fail on a slightly wrong gradient (here: dW scaled by 1.01).
        var rng = SeededRandom(seed: 4)
        var w = Numerics.uniform(21, &rng)
        let x = Numerics.uniform(35, &rng), r = Numerics.uniform(15, &rng)
        var dx = [Double](repeating: 0, count: 35), dw = [Double](repeating: 0, count: 21)
        var db: [Double]? = nil
        Naive.linearBackward(dinp: &dx, dweight: &dw, dbias: &db, dout: r, inp: x, weight: w, n: 5, inFeatures: 7, outFeatures: 3)
        let fd = Numerics.gradient(of: { Numerics.dot(r, Naive.linearForward(inp: x, weight: $0, bias: nil, n: 5, inFeatures: 7, outFeatures: 3)) }, at: &w)
        XCTAssertLessThan(Numerics.maxError(dw, fd), fdTolerance)
        XCTAssertGreaterThan(Numerics.maxError(dw.map { $0 * 1.01 }, fd), fdTolerance)
    }
}

/// Exact resume rests on the same inputs giving the same bits in a fresh and in a resumed process,
/// whose buffers may lie at other addresses. OpenBLAS packs its operands, so `gemm`'s result must not
/// depend on where they are: here the same matrices at offsets of 0–3 floats from 64-byte alignment
/// (run under the environment's OPENBLAS_CORETYPE; CI runs the suite with Haswell's kernels forced too).
final class GemmAlignmentTests: XCTestCase {
    func testResultDoesNotDependOnBufferAlignment() {
        var rng = SeededRandom(seed: 17)
        for (m, n, k) in [(37, 53, 61), (128, 384, 96), (512, 96, 384)] {
            for (transA, transB) in [(false, false), (false, true), (true, false), (true, true)] {
                let a = (0..<(m * k)).map { _ in Float.random(in: -1...1, using: &rng) }
                let b = (0..<(k * n)).map { _ in Float.random(in: -1...1, using: &rng) }
                var results: [[Float]] = []
                for offset in 0..<4 {
                    let pa = UnsafeMutableRawPointer.allocate(byteCount: (a.count + 16) * 4, alignment: 64)
                    let pb = UnsafeMutableRawPointer.allocate(byteCount: (b.count + 16) * 4, alignment: 64)
                    let pc = UnsafeMutableRawPointer.allocate(byteCount: (m * n + 16) * 4, alignment: 64)
                    defer { pa.deallocate(); pb.deallocate(); pc.deallocate() }
                    let fa = pa.bindMemory(to: Float.self, capacity: a.count + 16) + offset
                    let fb = pb.bindMemory(to: Float.self, capacity: b.count + 16) + (3 - offset)
                    let fc = pc.bindMemory(to: Float.self, capacity: m * n + 16) + offset
                    fa.update(from: a, count: a.count)
                    fb.update(from: b, count: b.count)
                    fc.update(repeating: 0, count: m * n)
                    gemm(transA: transA, transB: transB, m: m, n: n, k: k, alpha: 1, a: fa, lda: transA ? m : k,
                         b: fb, ldb: transB ? k : n, beta: 0, c: fc, ldc: n, threads: 2)
                    results.append(Array(UnsafeBufferPointer(start: fc, count: m * n)))
                }
                for r in results.dropFirst() {
                    XCTAssertTrue(r.elementsEqual(results[0]) { $0.bitPattern == $1.bitPattern }, "m \(m) n \(n) k \(k) \(transA) \(transB)")
                }
            }
        }
    }
}
