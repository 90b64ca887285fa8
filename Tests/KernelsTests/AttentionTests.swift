import Kernels
import TestSupport
import XCTest

final class AttentionTests: XCTestCase {
    /// Runs the fast kernels; returns (out, probs, dropMask, dqkv) with dqkv starting at `dqkv0`.
    func fast(qkv: [Float], mask: [Int32], dout: [Float], dqkv0: [Float], b: Int, t: Int, nh: Int, hs: Int, p: Float, seed: UInt64,
              threads: Int, bf16: BF16Backend? = nil) -> (out: [Float], probs: [Float], dropMask: [UInt8], dqkv: [Float]) {
        var out = [Float](repeating: .nan, count: b * t * nh * hs), probs = [Float](repeating: .nan, count: b * nh * t * t)
        var dropMask = [UInt8](repeating: 1, count: b * nh * t * t)
        var scratch = [Float](repeating: 0, count: attentionScratchCount(t: t, threads: threads))
        var dqkv = dqkv0
        attentionForward(out: &out, probs: &probs, dropMask: &dropMask, qkv: qkv, keyMask: mask, b: b, t: t, nh: nh, hs: hs, p: p,
                         seed: seed, scratch: &scratch, threads: threads, bf16: bf16)
        attentionBackward(dqkv: &dqkv, dout: dout, qkv: qkv, probs: probs, dropMask: dropMask, b: b, t: t, nh: nh, hs: hs, p: p,
                          scratch: &scratch, threads: threads, bf16: bf16)
        return (out, probs, dropMask, dqkv)
    }

    /// bf16 in Double: x rounded to the nearest bf16 (through fp32, which is exact for the kernels'
    /// fp32 operands).
    static func bf16(_ x: Double) -> Double { Double(BFloat16.float(BFloat16.round(Float(x)))) }

    /// With bf16 products, every operand of the six products is rounded to bf16 and nothing else is: the
    /// kernel equals the Double reference that rounds exactly those operands (up to fp32 arithmetic),
    /// and is far from the reference that rounds nothing (so the check can fail). The probabilities, which
    /// the softmax makes in fp32 from the bf16 scores, are compared too.
    func testBF16ProductsRoundEveryOperandAndNothingElse() {
        var rng = SeededRandom(seed: 48)
        for (b, t, nh, hs, p) in [(2, 5, 3, 4, Float(0)), (2, 37, 2, 16, 0.1), (3, 20, 2, 8, 0.25)] {
            var mask = [Int32](repeating: 1, count: b * t)
            for j in (t - t / 3)..<t { mask[(b - 1) * t + j] = 0 }
            let h = nh * hs
            let qkv = Numerics.uniform(b * t * 3 * h, scale: 2, &rng).float.double
            let dout = Numerics.uniform(b * t * h, &rng).float.double, dqkv0 = Numerics.uniform(b * t * 3 * h, &rng).float.double
            let got = fast(qkv: qkv.float, mask: mask, dout: dout.float, dqkv0: dqkv0.float, b: b, t: t, nh: nh, hs: hs, p: p, seed: 5,
                           threads: 2, bf16: .reference)
            let shape = "b \(b) t \(t) nh \(nh) hs \(hs) p \(p)"
            var errors: [(rounded: Double, exact: Double)] = []
            for round in [Self.bf16, { $0 }] as [(Double) -> Double] {
                let ref = Naive.attentionForward(qkv: qkv, keyMask: mask, b: b, t: t, nh: nh, hs: hs, p: p, seed: 5, round: round)
                var rd = dqkv0
                Naive.attentionBackward(dqkv: &rd, dout: dout, qkv: qkv, probs: ref.probs, dropMask: ref.dropMask, b: b, t: t, nh: nh,
                                        hs: hs, p: p, round: round)
                if p > 0 { XCTAssertEqual(got.dropMask, ref.dropMask, shape) }
                let e = [Numerics.maxError(got.out, ref.out), Numerics.maxError(got.probs, ref.probs), Numerics.maxError(got.dqkv, rd)]
                if errors.isEmpty { errors = e.map { ($0, 0) } } else { for i in 0..<3 { errors[i].exact = e[i] } }
            }
            for (name, e) in zip(["out", "probs", "dqkv"], errors) {
                print("bf16 attention \(shape) \(name): error \(e.rounded) against the rounded reference, \(e.exact) against fp32")
                XCTAssertLessThan(e.rounded, 2e-5, "\(name) \(shape): bf16 operands, fp32 arithmetic")
                XCTAssertGreaterThan(e.exact, 20 * e.rounded, "\(name) \(shape): the rounding shows (the check can fail)")
                XCTAssertLessThan(e.exact, 0.05, "\(name) \(shape): within bf16's precision of fp32")
            }
            let again = fast(qkv: qkv.float, mask: mask, dout: dout.float, dqkv0: dqkv0.float, b: b, t: t, nh: nh, hs: hs, p: p, seed: 5,
                             threads: 1, bf16: .reference)
            XCTAssertTrue(Numerics.bitIdentical(got.out, again.out) && Numerics.bitIdentical(got.dqkv, again.dqkv), "threads: \(shape)")
        }
    }

    /// Where the CPU has bf16 units: oneDNN's per-head products equal the reference's up to the order of
    /// fp32 sums.
    func testNativeBF16AttentionMatchesTheReference() throws {
        guard BF16Support.isNative else {
            throw XCTSkip("native bf16 attention not checked on this machine: \(BF16Support.unavailableReason ?? "")")
        }
        var rng = SeededRandom(seed: 49)
        let (b, t, nh, hs, p) = (2, 37, 2, 16, Float(0.1))
        let qkv = Numerics.uniform(b * t * 3 * nh * hs, scale: 2, &rng).float, dout = Numerics.uniform(b * t * nh * hs, &rng).float
        let mask = [Int32](repeating: 1, count: b * t), zero = [Float](repeating: 0, count: qkv.count)
        let native = fast(qkv: qkv, mask: mask, dout: dout, dqkv0: zero, b: b, t: t, nh: nh, hs: hs, p: p, seed: 3, threads: 2, bf16: .oneDNN)
        let reference = fast(qkv: qkv, mask: mask, dout: dout, dqkv0: zero, b: b, t: t, nh: nh, hs: hs, p: p, seed: 3, threads: 2,
                             bf16: .reference)
        XCTAssertLessThan(Numerics.maxError(native.out, reference.out.double), 1e-4)
        XCTAssertLessThan(Numerics.maxError(native.dqkv, reference.dqkv.double), 1e-4)
    }

    func testNaiveBackwardMatchesFiniteDifferences() {
        let (b, t, nh, hs) = (2, 5, 3, 4)
        let mask: [Int32] = [1, 1, 1, 1, 1, 1, 1, 1, 0, 0]
        var rng = SeededRandom(seed: 41)
        var qkv = Numerics.uniform(b * t * 3 * nh * hs, scale: 1.5, &rng)
        let r = Numerics.uniform(b * t * nh * hs, &rng)
        for p: Float in [0, 0.3] {
            let f = Naive.attentionForward(qkv: qkv, keyMask: mask, b: b, t: t, nh: nh, hs: hs, p: p, seed: 7)
            if p > 0 { XCTAssertTrue(f.dropMask.contains(0) && f.dropMask.contains(1)) }
            var d = [Double](repeating: 0, count: qkv.count)
            Naive.attentionBackward(dqkv: &d, dout: r, qkv: qkv, probs: f.probs, dropMask: f.dropMask, b: b, t: t, nh: nh, hs: hs, p: p)
            let fd = Numerics.gradient(of: {
                Numerics.dot(r, Naive.attentionForward(qkv: $0, keyMask: mask, b: b, t: t, nh: nh, hs: hs, p: p, seed: 7).out)
            }, at: &qkv)
            XCTAssertLessThan(Numerics.maxError(d, fd), fdTolerance, "p \(p)")
        }
    }

    func testFastMatchesNaive() {
        var rng = SeededRandom(seed: 42)
        for (b, t, nh, hs, p) in [(2, 5, 3, 4, Float(0)), (2, 5, 3, 4, 0.3), (2, 37, 2, 16, 0.1), (1, 16, 1, 8, 0)] {
            var mask = [Int32](repeating: 1, count: b * t)
            for j in (t - t / 3)..<t { mask[(b - 1) * t + j] = 0 } // the last sequence is padded
            let h = nh * hs
            let qkv = Numerics.uniform(b * t * 3 * h, scale: 2, &rng).float.double
            let dout = Numerics.uniform(b * t * h, &rng).float.double, dqkv0 = Numerics.uniform(b * t * 3 * h, &rng).float.double
            let ref = Naive.attentionForward(qkv: qkv, keyMask: mask, b: b, t: t, nh: nh, hs: hs, p: p, seed: 99)
            var rd = dqkv0
            Naive.attentionBackward(dqkv: &rd, dout: dout, qkv: qkv, probs: ref.probs, dropMask: ref.dropMask, b: b, t: t, nh: nh, hs: hs, p: p)
            let got = fast(qkv: qkv.float, mask: mask, dout: dout.float, dqkv0: dqkv0.float, b: b, t: t, nh: nh, hs: hs, p: p, seed: 99, threads: 2)
            let shape = "b \(b) t \(t) nh \(nh) hs \(hs) p \(p)"
            XCTAssertLessThan(Numerics.maxError(got.out, ref.out), fastTolerance, shape)
            XCTAssertLessThan(Numerics.maxError(got.probs, ref.probs), fastTolerance, shape)
            if p > 0 { XCTAssertEqual(got.dropMask, ref.dropMask, shape) }
            XCTAssertLessThan(Numerics.maxError(got.dqkv, rd), fastTolerance, shape)
        }
    }

    func testMaskedKeysAreIgnored() {
        let (b, t, nh, hs) = (2, 7, 2, 4), h = 8
        let mask: [Int32] = [1, 1, 1, 1, 1, 0, 0, 1, 1, 1, 0, 1, 0, 0] // pads at the end and in the middle
        var rng = SeededRandom(seed: 43)
        let qkv = Numerics.uniform(b * t * 3 * h, scale: 2, &rng).float
        let dout = Numerics.uniform(b * t * h, &rng).float
        let zero = [Float](repeating: 0, count: qkv.count)
        var changed = qkv
        for i in 0..<(b * t) where mask[i] == 0 {
            for c in h..<(3 * h) { changed[i * 3 * h + c] = Float.random(in: -50...50, using: &rng) } // that key's K and V
        }
        for p: Float in [0, 0.2] {
            let a = fast(qkv: qkv, mask: mask, dout: dout, dqkv0: zero, b: b, t: t, nh: nh, hs: hs, p: p, seed: 5, threads: 2)
            let c = fast(qkv: changed, mask: mask, dout: dout, dqkv0: zero, b: b, t: t, nh: nh, hs: hs, p: p, seed: 5, threads: 2)
            XCTAssertTrue(Numerics.bitIdentical(a.out, c.out), "p \(p)")
            XCTAssertTrue(Numerics.bitIdentical(a.probs, c.probs), "p \(p)")
            for bi in 0..<b {
                for hd in 0..<nh {
                    for i in 0..<t {
                        for j in 0..<t where mask[bi * t + j] == 0 { XCTAssertEqual(a.probs[((bi * nh + hd) * t + i) * t + j], 0) }
                    }
                }
            }
            // No gradient flows into a masked key's K or V; the other gradients are unchanged.
            for i in 0..<(b * t) {
                for col in 0..<(3 * h) {
                    let k = i * 3 * h + col
                    if mask[i] == 0 && col >= h { XCTAssertEqual(a.dqkv[k], 0) } else { XCTAssertEqual(a.dqkv[k], c.dqkv[k]) }
                }
            }
        }
        // The other direction: changing a REAL key's value does change the outputs (the test can fail).
        var real = qkv
        real[2 * h] += 1
        let a = fast(qkv: qkv, mask: mask, dout: dout, dqkv0: zero, b: b, t: t, nh: nh, hs: hs, p: 0, seed: 5, threads: 2)
        let c = fast(qkv: real, mask: mask, dout: dout, dqkv0: zero, b: b, t: t, nh: nh, hs: hs, p: 0, seed: 5, threads: 2)
        XCTAssertFalse(Numerics.bitIdentical(a.out, c.out))
    }

    func testSequenceWithoutRealKeysGetsUniformProbabilities() {
        // Hugging Face adds finfo.min to every score: the softmax is uniform over all keys.
        let (b, t, nh, hs) = (1, 5, 1, 4)
        var rng = SeededRandom(seed: 44)
        let qkv = Numerics.uniform(b * t * 3 * nh * hs, &rng)
        let mask = [Int32](repeating: 0, count: t)
        let got = fast(qkv: qkv.float, mask: mask, dout: [Float](repeating: 0, count: t * hs), dqkv0: [Float](repeating: 0, count: qkv.count),
                       b: b, t: t, nh: nh, hs: hs, p: 0, seed: 0, threads: 1)
        XCTAssertEqual(got.probs, [Float](repeating: 0.2, count: t * t))
        let ref = Naive.attentionForward(qkv: qkv, keyMask: mask, b: b, t: t, nh: nh, hs: hs, p: 0, seed: 0)
        XCTAssertLessThan(Numerics.maxError(got.out, ref.out), fastTolerance)
    }

    func testThreadCountDoesNotChangeResults() {
        let (b, t, nh, hs) = (3, 33, 4, 8)
        var rng = SeededRandom(seed: 45)
        var mask = [Int32](repeating: 1, count: b * t)
        mask[t - 1] = 0
        let qkv = Numerics.uniform(b * t * 3 * nh * hs, &rng).float, dout = Numerics.uniform(b * t * nh * hs, &rng).float
        let zero = [Float](repeating: 0, count: qkv.count)
        let a = fast(qkv: qkv, mask: mask, dout: dout, dqkv0: zero, b: b, t: t, nh: nh, hs: hs, p: 0.1, seed: 3, threads: 1)
        let c = fast(qkv: qkv, mask: mask, dout: dout, dqkv0: zero, b: b, t: t, nh: nh, hs: hs, p: 0.1, seed: 3, threads: 3)
        XCTAssertTrue(Numerics.bitIdentical(a.out, c.out))
        XCTAssertTrue(Numerics.bitIdentical(a.probs, c.probs))
        XCTAssertEqual(a.dropMask, c.dropMask)
        XCTAssertTrue(Numerics.bitIdentical(a.dqkv, c.dqkv))
    }
}

final class AttentionRowsTests: XCTestCase {
    /// The selected-rows kernel equals the full kernel at those rows (forward, dropout draws, and the
    /// backward with dout zero at the other rows), with fp32 and with bf16 products.
    func testSelectedRowsMatchTheFullKernel() {
        let (b, t, nh, hs) = (3, 19, 2, 8), h = 16
        var rng = SeededRandom(seed: 46)
        var mask = [Int32](repeating: 1, count: b * t)
        for j in 14..<t { mask[t + j] = 0 }
        let rowsOf: [[Int]] = [[0, 3, 18], [0, 7], [0, 1, 2, 5, 11]] // per sequence, increasing
        var rowStart: [Int32] = [0], positions: [Int32] = []
        for r in rowsOf { positions += r.map(Int32.init); rowStart.append(Int32(positions.count)) }
        let rCount = positions.count
        let qkv = Numerics.uniform(b * t * 3 * h, scale: 2, &rng).float
        let dSel = Numerics.uniform(rCount * h, &rng).float
        for (p, bf16) in [(Float(0), nil), (0.25, nil), (0, .reference), (0.25, .reference)] as [(Float, BF16Backend?)] {
            // Full kernel, dout only at the selected rows.
            var fullOut = [Float](repeating: 0, count: b * t * h), fullProbs = [Float](repeating: 0, count: b * nh * t * t)
            var fullMask = [UInt8](repeating: 0, count: b * nh * t * t), scratch = [Float](repeating: 0, count: attentionScratchCount(t: t, threads: 2))
            attentionForward(out: &fullOut, probs: &fullProbs, dropMask: &fullMask, qkv: qkv, keyMask: mask, b: b, t: t, nh: nh, hs: hs, p: p,
                             seed: 11, scratch: &scratch, threads: 2, bf16: bf16)
            var dout = [Float](repeating: 0, count: b * t * h)
            var q = [Float](repeating: 0, count: rCount * h)
            var k = 0
            for (bi, rows) in rowsOf.enumerated() {
                for r in rows {
                    for c in 0..<h {
                        dout[(bi * t + r) * h + c] = dSel[k * h + c]
                        q[k * h + c] = qkv[(bi * t + r) * 3 * h + c]
                    }
                    k += 1
                }
            }
            var fullD = [Float](repeating: 0, count: qkv.count)
            attentionBackward(dqkv: &fullD, dout: dout, qkv: qkv, probs: fullProbs, dropMask: fullMask, b: b, t: t, nh: nh, hs: hs, p: p,
                              scratch: &scratch, threads: 2, bf16: bf16)
            // Selected rows.
            var out = [Float](repeating: .nan, count: rCount * h), probs = [Float](repeating: .nan, count: rCount * nh * t)
            var dmask = [UInt8](repeating: 9, count: rCount * nh * t)
            attentionForwardRows(out: &out, probs: &probs, dropMask: &dmask, q: q, qkv: qkv, keyMask: mask, rowStart: rowStart,
                                 positions: positions, b: b, t: t, nh: nh, hs: hs, p: p, seed: 11, scratch: &scratch, threads: 2,
                                 bf16: bf16)
            var dq = [Float](repeating: 0, count: rCount * h), dkv = [Float](repeating: 0, count: qkv.count)
            attentionBackwardRows(dq: &dq, dqkv: &dkv, dout: dSel, q: q, qkv: qkv, probs: probs, dropMask: dmask, rowStart: rowStart,
                                  b: b, t: t, nh: nh, hs: hs, p: p, scratch: &scratch, threads: 2, bf16: bf16)
            k = 0
            var expOut: [Float] = [], expDq: [Float] = [], expProbs: [Float] = [], gotProbs: [Float] = []
            for (bi, rows) in rowsOf.enumerated() {
                for r in rows {
                    let row = bi * t + r
                    let o0: Int = row * h, q0: Int = row * 3 * h
                    expOut += fullOut[o0..<(o0 + h)]
                    expDq += fullD[q0..<(q0 + h)]
                }
                for hd in 0..<nh {
                    for (i, r) in rows.enumerated() {
                        let full = ((bi * nh + hd) * t + r) * t
                        expProbs += fullProbs[full..<(full + t)]
                        let sub = (Int(rowStart[bi]) * nh + hd * rows.count + i) * t
                        gotProbs += probs[sub..<(sub + t)]
                        if p > 0 { XCTAssertEqual(Array(dmask[sub..<(sub + t)]), Array(fullMask[full..<(full + t)])) }
                    }
                }
            }
            XCTAssertLessThan(Numerics.maxError(out, expOut.double), 1e-6, "p \(p) bf16 \(String(describing: bf16))")
            XCTAssertLessThan(Numerics.maxError(gotProbs, expProbs.double), 1e-6, "p \(p) bf16 \(String(describing: bf16))")
            XCTAssertLessThan(Numerics.maxError(dq, expDq.double), 1e-6, "p \(p) bf16 \(String(describing: bf16))")
            // K and V gradients everywhere; Q columns untouched.
            for i in 0..<(b * t) {
                for c in 0..<(3 * h) {
                    let got = Double(dkv[i * 3 * h + c]), want = Double(fullD[i * 3 * h + c])
                    if c < h { XCTAssertEqual(got, 0) } else { XCTAssertLessThan(abs(got - want), 1e-6 * (1 + abs(want))) }
                }
            }
        }
    }
}
