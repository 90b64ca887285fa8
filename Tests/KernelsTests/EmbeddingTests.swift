import Kernels
import TestSupport
import XCTest

final class EmbeddingTests: XCTestCase {
    // B=2, T=5, H=4, V=11, P=7, TV=2; id 0 is the padding id and appears twice, id 3 three times.
    let (b, t, h, v, pMax, tv) = (2, 5, 4, 11, 7, 2)
    let ids: [Int32] = [2, 3, 3, 0, 0, 3, 7, 10, 1, 5]
    let types: [Int32] = [0, 0, 1, 1, 1, 0, 0, 0, 1, 1]

    func testNaiveBackwardMatchesFiniteDifferences() {
        var rng = SeededRandom(seed: 31)
        var word = Numerics.uniform(v * h, &rng), pos = Numerics.uniform(pMax * h, &rng), typ = Numerics.uniform(tv * h, &rng)
        let r = Numerics.uniform(b * t * h, &rng)
        func loss(_ w: [Double], _ p: [Double], _ ty: [Double]) -> Double {
            Numerics.dot(r, Naive.embeddingsForward(ids: ids, typeIds: types, word: w, position: p, tokenType: ty, b: b, t: t, h: h))
        }
        var dw = [Double](repeating: 0, count: v * h), dp = [Double](repeating: 0, count: pMax * h), dt = [Double](repeating: 0, count: tv * h)
        Naive.embeddingsBackward(dword: &dw, dposition: &dp, dtokenType: &dt, dout: r, ids: ids, typeIds: types, paddingId: nil, b: b, t: t, h: h)
        let (w0, p0, t0) = (word, pos, typ)
        XCTAssertLessThan(Numerics.maxError(dw, Numerics.gradient(of: { loss($0, p0, t0) }, at: &word)), fdTolerance)
        XCTAssertLessThan(Numerics.maxError(dp, Numerics.gradient(of: { loss(w0, $0, t0) }, at: &pos)), fdTolerance)
        XCTAssertLessThan(Numerics.maxError(dt, Numerics.gradient(of: { loss(w0, p0, $0) }, at: &typ)), fdTolerance)
        // With a padding id, its row gets no gradient and the others are unchanged (nn.Embedding(padding_idx:)).
        var dw2 = [Double](repeating: 0, count: v * h), dp2 = dp.map { _ in 0.0 }, dt2 = dt.map { _ in 0.0 }
        Naive.embeddingsBackward(dword: &dw2, dposition: &dp2, dtokenType: &dt2, dout: r, ids: ids, typeIds: types, paddingId: 0, b: b, t: t, h: h)
        XCTAssertEqual(Array(dw2[0..<h]), [0, 0, 0, 0])
        XCTAssertNotEqual(Array(dw[0..<h]), [0, 0, 0, 0])
        XCTAssertEqual(Array(dw2[h...]), Array(dw[h...]))
    }

    func testFastMatchesNaive() {
        var rng = SeededRandom(seed: 32)
        for (b, t, h) in [(2, 5, 4), (3, 9, 37)] {
            let ids = (0..<(b * t)).map { _ in Int32.random(in: 0..<Int32(v), using: &rng) }
            let types = (0..<(b * t)).map { _ in Int32.random(in: 0..<2, using: &rng) }
            let word = Numerics.uniform(v * h, &rng), pos = Numerics.uniform(t * h, &rng), typ = Numerics.uniform(2 * h, &rng)
            let dy = Numerics.uniform(b * t * h, &rng)
            let ref = Naive.embeddingsForward(ids: ids, typeIds: types, word: word, position: pos, tokenType: typ, b: b, t: t, h: h)
            var rdw = Numerics.uniform(v * h, &rng), rdp = Numerics.uniform(t * h, &rng), rdt = Numerics.uniform(2 * h, &rng)
            var dw = rdw.float, dp = rdp.float, dt = rdt.float
            Naive.embeddingsBackward(dword: &rdw, dposition: &rdp, dtokenType: &rdt, dout: dy, ids: ids, typeIds: types, paddingId: 4,
                                     b: b, t: t, h: h)
            var y = [Float](repeating: .nan, count: b * t * h)
            embeddingsForward(out: &y, ids: ids, typeIds: types, word: word.float, position: pos.float, tokenType: typ.float, b: b, t: t, h: h, threads: 2)
            embeddingsBackward(dword: &dw, dposition: &dp, dtokenType: &dt, dout: dy.float, ids: ids, typeIds: types, paddingId: 4,
                               b: b, t: t, h: h, threads: 2)
            XCTAssertLessThan(Numerics.maxError(y, ref), fastTolerance)
            XCTAssertLessThan(Numerics.maxError(dw, rdw), fastTolerance)
            XCTAssertLessThan(Numerics.maxError(dp, rdp), fastTolerance)
            XCTAssertLessThan(Numerics.maxError(dt, rdt), fastTolerance)
        }
    }

    func testScatterAddIsIndependentOfThreadCount() {
        let (b, t, h, v) = (8, 64, 48, 13) // few ids: many tokens add into the same rows
        var rng = SeededRandom(seed: 33)
        let ids = (0..<(b * t)).map { _ in Int32.random(in: 0..<Int32(v), using: &rng) }
        let types = (0..<(b * t)).map { _ in Int32.random(in: 0..<2, using: &rng) }
        let dy = Numerics.uniform(b * t * h, &rng).float
        func run(_ threads: Int) -> [[Float]] {
            var dw = [Float](repeating: 0, count: v * h), dp = [Float](repeating: 0, count: t * h), dt = [Float](repeating: 0, count: 2 * h)
            embeddingsBackward(dword: &dw, dposition: &dp, dtokenType: &dt, dout: dy, ids: ids, typeIds: types, paddingId: 0,
                               b: b, t: t, h: h, threads: threads)
            return [dw, dp, dt]
        }
        let one = run(1), three = run(3)
        for (k, (a, c)) in zip(one, three).enumerated() { XCTAssertTrue(Numerics.bitIdentical(a, c), "output \(k)") }
    }
}
