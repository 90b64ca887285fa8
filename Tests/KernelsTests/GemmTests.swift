import Support
import TestSupport
import XCTest

@testable import Kernels

/// `gemm`'s grid of blocks: a function of the shape only, a partition of the output, wide enough for
/// 64 workers on large products; and the blocked product against a Double reference and bit-identical
/// for any thread count, with every transpose and row strides wider than the matrices.
final class GemmTests: XCTestCase {
    func testGridPartitionsTheOutputAndGrowsWithTheShape() {
        let shapes = [(1, 1, 1), (7, 3, 100_000), (100, 100, 100), (601, 131, 67), (4096, 768, 256), (4096, 256, 1024),
                      (768, 256, 4096), (256, 30522, 4096), (4096, 3072, 768), (1000, 700, 300), (5, 40_000, 64)]
        for (m, n, k) in shapes {
            let g = GemmGrid(m: m, n: n, k: k)
            let label = "(\(m), \(n), \(k)): \(g.rows)×\(g.columns)"
            XCTAssertTrue(g.rows.nonzeroBitCount == 1 && g.columns.nonzeroBitCount == 1, label)
            XCTAssertLessThanOrEqual(g.count, GemmGrid.maximumBlocks, label)
            var covered = [Int](repeating: 0, count: m * n)
            for i in 0..<g.count {
                let (r, c) = g.block(i)
                XCTAssertFalse(r.isEmpty || c.isEmpty, label)
                for x in r { for y in c { covered[x * n + y] += 1 } }
            }
            XCTAssertTrue(covered.allSatisfy { $0 == 1 }, "every output element in exactly one block: \(label)")
            let flops = 2.0 * Double(m * n) * Double(k)
            if flops < 8_000_000 { XCTAssertEqual(g.count, 1, label) }
            if g.count > 2 { XCTAssertGreaterThanOrEqual(flops / Double(g.count), GemmGrid.minimumBlockFLOPs, label) }
        }
        // BERT-base's products at batch 32 × 128 feed 64 workers; mini's feed at least 32.
        XCTAssertEqual(GemmGrid(m: 4096, n: 3072, k: 768).count, 64, "base FFN")
        XCTAssertEqual(GemmGrid(m: 4096, n: 768, k: 768).count, 64, "base attention output")
        XCTAssertEqual(GemmGrid(m: 768, n: 768, k: 4096).count, 64, "base weight gradient")
        XCTAssertGreaterThanOrEqual(GemmGrid(m: 4096, n: 1024, k: 256).count, 32, "mini FFN")
        XCTAssertEqual(GemmGrid(m: 4096, n: 768, k: 256), GemmGrid(m: 4096, n: 768, k: 256), "the shape alone decides")
    }

    func testBlockedProductMatchesDoubleReferenceAndIsThreadIndependent() {
        var rng = SeededRandom(seed: 29)
        for (m, n, k) in [(1000, 700, 300), (333, 1100, 97), (45, 9, 2000)] {
            for (transA, transB) in [(false, false), (false, true), (true, false), (true, true)] {
                // Row strides 3 wider than the stored rows, so a block must honour lda/ldb/ldc.
                let (ar, ac) = transA ? (k, m) : (m, k), (br, bc) = transB ? (n, k) : (k, n)
                let lda = ac + 3, ldb = bc + 3, ldc = n + 3
                let a = (0..<(ar * lda)).map { _ in Float.random(in: -1...1, using: &rng) }
                let b = (0..<(br * ldb)).map { _ in Float.random(in: -1...1, using: &rng) }
                let c0 = (0..<(m * ldc)).map { _ in Float.random(in: -1...1, using: &rng) }
                func run(_ threads: Int) -> [Float] {
                    var c = c0
                    gemm(transA: transA, transB: transB, m: m, n: n, k: k, alpha: 0.5, a: a, lda: lda, b: b, ldb: ldb,
                         beta: 1, c: &c, ldc: ldc, threads: threads)
                    return c
                }
                let one = run(1)
                for t in [2, 5, 64] {
                    XCTAssertTrue(Numerics.bitIdentical(one, run(t)), "(\(m), \(n), \(k)) \(transA) \(transB): \(t) threads")
                }
                // Spot-check 200 elements (and the padding columns, untouched) against Double. The error of a
                // float32 sum of k terms is measured against the sum of their magnitudes (the scale rounding
                // works on; a cancelling sum can be far smaller) and must stay within sqrt(k) ulps of it, the
                // typical growth of rounding errors. sgemm's kernels give 0.5-1.5 ulps on the CPUs seen; a
                // wrong element or block is off by a good share of the scale. (Against 1 + |sum|, the old
                // measure, the AVX-512 kernels of an AMD EPYC reached 1.3e-5 at k = 2000.)
                var worst = 0.0
                for s in 0..<200 {
                    let i = (s * 7919) % m, j = (s * 104_729) % n
                    var ref = Double(c0[i * ldc + j]), scale = abs(ref)
                    for p in 0..<k {
                        let av = transA ? a[p * lda + i] : a[i * lda + p]
                        let bv = transB ? b[j * ldb + p] : b[p * ldb + j]
                        ref += 0.5 * Double(av) * Double(bv)
                        scale += abs(0.5 * Double(av) * Double(bv))
                    }
                    worst = max(worst, abs(Double(one[i * ldc + j]) - ref) / scale)
                }
                XCTAssertLessThan(worst, Double(k).squareRoot() * Double(Float.ulpOfOne), "(\(m), \(n), \(k)) \(transA) \(transB)")
                for i in 0..<m { for j in n..<ldc { XCTAssertEqual(one[i * ldc + j], c0[i * ldc + j]) } }
            }
        }
    }
}
