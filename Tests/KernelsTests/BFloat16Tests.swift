import CDNNLShim
import Support
import TestSupport
import XCTest

@testable import Kernels

/// bf16 rounding against an independent rounding in Double, and bf16 matrix products against fp32
/// within a tolerance derived from bf16's 8 significant bits; oneDNN's native products against the
/// reference where the CPU has bf16 units (skipped with the reason elsewhere).
final class BFloat16Tests: XCTestCase {
    /// Round to nearest, ties to even, to 8 significant bits, computed in Double from the value (not
    /// from the bit pattern): the reference for `BFloat16.round`.
    static func referenceRound(_ x: Float) -> Float {
        if x.isNaN || x.isInfinite || x == 0 { return x }
        let d = Double(x)
        // bf16 has fp32's exponent range: the spacing of bf16 numbers near d (subnormals: 2^-133).
        let e = max(Int(floor(log2(abs(d)))), -126)
        let ulp = pow(2.0, Double(e - 7))
        let r = (d / ulp).rounded(.toNearestOrEven) * ulp
        if abs(r) >= 0x1.0p128 { return d > 0 ? .infinity : -.infinity }
        return Float(r)
    }

    func testRoundingIsNearestEvenWithNaNAndInfinity() {
        var rng = SeededRandom(seed: 5)
        var values: [Float] = [0, -0, 1, -1, .infinity, -.infinity, .greatestFiniteMagnitude, -.greatestFiniteMagnitude,
                               .leastNonzeroMagnitude, .leastNormalMagnitude, 1 + 0x1p-8, 1 + 0x3p-8, 1 + 0x1p-8 + 0x1p-20,
                               3.0e38, 0x1.FEp127, 0x1.FFp127, 1e-40, -2.5e-39]
        for _ in 0..<20_000 { values.append(Float(bitPattern: UInt32.random(in: 0...UInt32.max, using: &rng))) }
        for _ in 0..<20_000 { values.append(Float.random(in: -4...4, using: &rng)) }
        for x in values {
            let b = BFloat16.round(x)
            if x.isNaN {
                XCTAssertTrue(BFloat16.float(b).isNaN, "NaN \(x.bitPattern) stays NaN")
                continue
            }
            let expected = Self.referenceRound(x)
            XCTAssertEqual(BFloat16.float(b).bitPattern, expected.bitPattern, "\(x) (\(String(x.bitPattern, radix: 16)))")
        }
        XCTAssertEqual(BFloat16.round(1 + 0x1p-8), BFloat16.round(1), "a tie goes to the even neighbour (1)")
        XCTAssertEqual(BFloat16.float(BFloat16.round(1 + 0x3p-8)), 1 + 0x1p-6, "a tie goes to the even neighbour (1 + 2^-6)")
        XCTAssertEqual(BFloat16.float(BFloat16.round(0x1.FFp127)), .infinity, "beyond the largest bf16: infinity")
        // The vector path equals the scalar one, at lengths around the 16-wide blocks.
        for count in [0, 1, 15, 16, 17, 100, 1000] {
            let src = values.prefix(count).map { $0 }
            var dst = [UInt16](repeating: 0, count: count)
            BFloat16.round(src, into: &dst, count: count)
            for i in 0..<count where !src[i].isNaN { XCTAssertEqual(dst[i], BFloat16.round(src[i]), "element \(i) of \(count)") }
            for i in 0..<count where src[i].isNaN { XCTAssertTrue(BFloat16.float(dst[i]).isNaN) }
            // Rounded and kept as fp32 (the reference products' packing): the same values.
            var wide = [Float](repeating: 0, count: count)
            BFloat16.roundedFloats(src, into: &wide, count: count)
            for i in 0..<count where !src[i].isNaN {
                XCTAssertEqual(wide[i].bitPattern, BFloat16.float(BFloat16.round(src[i])).bitPattern, "element \(i) of \(count)")
            }
            for i in 0..<count where src[i].isNaN { XCTAssertTrue(wide[i].isNaN) }
        }
    }

    /// The tolerance: bf16 keeps 8 significant bits, so rounding an input to nearest changes it by at
    /// most u = 2⁻⁸ relatively (half a unit in the last place), each product a·b by at most
    /// 2u + u² = 2⁻⁷ + 2⁻¹⁶, and a sum of K products by at most (2⁻⁷ + 2⁻¹⁶)·Σ|a||b|; plus fp32's own
    /// rounding of both results (a few units of 2⁻²⁴ of |C| and of Σ|a||b|: 2⁻²⁰·(|C| + Σ|a||b|) is
    /// ample). The worst case seen here is about half the bound: the errors are not all of one sign.
    func testReferenceProductIsWithinTheBF16BoundOfFP32() {
        var rng = SeededRandom(seed: 9)
        for (m, n, k) in [(17, 33, 65), (300, 190, 250), (3, 4000, 7)] {
            for (transA, transB) in [(false, false), (false, true), (true, false), (true, true)] {
                let a = (0..<(m * k)).map { _ in Float.random(in: -2...2, using: &rng) }
                let b = (0..<(k * n)).map { _ in Float.random(in: -2...2, using: &rng) }
                let (lda, ldb) = (transA ? m : k, transB ? k : n)
                var cf = [Float](repeating: 0.25, count: m * n), cb = cf
                gemm(transA: transA, transB: transB, m: m, n: n, k: k, alpha: 1, a: a, lda: lda, b: b, ldb: ldb, beta: 1,
                     c: &cf, ldc: n, threads: 2)
                var ab = [UInt16](repeating: 0, count: a.count), bb = [UInt16](repeating: 0, count: b.count)
                BFloat16.round(a, into: &ab, count: a.count)
                BFloat16.round(b, into: &bb, count: b.count)
                gemmBF16(transA: transA, transB: transB, m: m, n: n, k: k, alpha: 1, a: ab, lda: lda, b: bb, ldb: ldb, beta: 1,
                         c: &cb, ldc: n, threads: 2, backend: .reference)
                var worst = 0.0, differs = 0
                for i in 0..<m {
                    for j in 0..<n {
                        var mass = 0.0
                        for p in 0..<k {
                            let av = transA ? a[p * lda + i] : a[i * lda + p], bv = transB ? b[j * ldb + p] : b[p * ldb + j]
                            mass += abs(Double(av) * Double(bv))
                        }
                        let err = abs(Double(cb[i * n + j]) - Double(cf[i * n + j]))
                        worst = max(worst, err / ((0x1p-7 + 0x1p-16) * mass + 0x1p-20 * (abs(Double(cf[i * n + j])) + mass)))
                        if cb[i * n + j] != cf[i * n + j] { differs += 1 }
                    }
                }
                XCTAssertLessThanOrEqual(worst, 1, "(\(m), \(n), \(k)) \(transA) \(transB): error / bound")
                XCTAssertGreaterThan(worst, 0.05, "the bound is not vacuous")
                XCTAssertGreaterThan(differs, m * n / 2, "bf16 inputs do change the result (the check can fail)")
            }
        }
    }

    /// The oneDNN shim's plumbing on every CPU: its fp32 twin (the same descriptors, strides, transposes,
    /// output scale, sum post-op and shape cache as the bf16 product; only the data type differs) against
    /// OpenBLAS, on odd shapes with row strides wider than the rows; then the cache: a repeated shape
    /// adds no entry, and past the cache's limit products are still right (primitives made per call).
    func testOneDNNShimPlumbingMatchesOpenBLASInFP32() {
        var rng = SeededRandom(seed: 17)
        func check(_ m: Int, _ n: Int, _ k: Int, _ transA: Bool, _ transB: Bool, alpha: Float, beta: Float, pad: Int,
                   file: StaticString = #filePath, line: UInt = #line) {
            let (ar, ac) = transA ? (k, m) : (m, k), (br, bc) = transB ? (n, k) : (k, n)
            let lda = ac + pad, ldb = bc + pad, ldc = n + pad
            let a = (0..<(ar * lda)).map { _ in Float.random(in: -1...1, using: &rng) }
            let b = (0..<(br * ldb)).map { _ in Float.random(in: -1...1, using: &rng) }
            let c0 = (0..<(m * ldc)).map { _ in Float.random(in: -1...1, using: &rng) }
            var dnnl = c0, blas = c0
            let status = bertkit_dnnl_gemm_f32(transA ? 1 : 0, transB ? 1 : 0, Int64(m), Int64(n), Int64(k), alpha, a, Int64(lda), b,
                                               Int64(ldb), beta, &dnnl, Int64(ldc))
            XCTAssertEqual(status, 0, "oneDNN status", file: file, line: line)
            gemm(transA: transA, transB: transB, m: m, n: n, k: k, alpha: alpha, a: a, lda: lda, b: b, ldb: ldb, beta: beta, c: &blas,
                 ldc: ldc, threads: 1)
            // Both fp32: they differ in the order of the sums only (K·2⁻²⁴ of Σ|ab| ≤ K), and the padding
            // between rows of C is left alone.
            XCTAssertLessThan(Numerics.maxError(dnnl, blas.double), Double(k) * 0x1p-22 + 1e-6,
                              "(\(m), \(n), \(k)) \(transA) \(transB) alpha \(alpha) beta \(beta)", file: file, line: line)
            for i in 0..<m { for j in n..<ldc { XCTAssertEqual(dnnl[i * ldc + j], c0[i * ldc + j], file: file, line: line) } }
        }
        for (m, n, k) in [(17, 33, 65), (1, 40, 7), (64, 64, 64), (37, 16, 128)] {
            for (transA, transB) in [(false, false), (false, true), (true, false), (true, true)] {
                for (alpha, beta) in [(Float(1), Float(0)), (0.125, 1), (0.5, 0.25)] {
                    check(m, n, k, transA, transB, alpha: alpha, beta: beta, pad: 3)
                }
            }
        }
        let before = Int(bertkit_dnnl_cached_shapes()), limit = Int(bertkit_dnnl_cache_limit())
        XCTAssertGreaterThan(before, 0, "the shapes above are cached")
        check(17, 33, 65, false, true, alpha: 1, beta: 0, pad: 3)
        XCTAssertEqual(Int(bertkit_dnnl_cached_shapes()), before, "a repeated shape makes no new entry")
        // Fill the cache with distinct shapes, then go past it.
        var n = 1
        while Int(bertkit_dnnl_cached_shapes()) < limit {
            check(2, n, 3, false, false, alpha: 1, beta: 0, pad: 0)
            n += 1
        }
        for extra in 0..<4 { check(3, n + extra, 5, true, true, alpha: 0.5, beta: 1, pad: 1) }
        XCTAssertEqual(Int(bertkit_dnnl_cached_shapes()), limit, "the cache stops at its limit")
    }

    /// oneDNN never stands in for missing bf16 units: it is native exactly where the CPU flags say so.
    /// Where it is native, its products equal the reference up to the order of the fp32 sums.
    func testNativeProductsMatchTheReferenceWhereTheCPUHasBF16() throws {
        if BF16Support.cpuFlags.isEmpty {
            XCTAssertFalse(BF16Support.isNative, "no bf16 units, so no bf16 path (oneDNN \(BF16Support.oneDNNVersion))")
            XCTAssertNotNil(BF16Support.unavailableReason)
        }
        guard BF16Support.isNative else {
            throw XCTSkip("bf16 products not checked on this machine: \(BF16Support.unavailableReason ?? "")")
        }
        var rng = SeededRandom(seed: 13)
        for (m, n, k) in [(17, 33, 65), (1000, 700, 300), (45, 9, 2000)] {
            for (transA, transB) in [(false, false), (false, true), (true, false), (true, true)] {
                let (ar, ac) = transA ? (k, m) : (m, k), (br, bc) = transB ? (n, k) : (k, n)
                let lda = ac + 3, ldb = bc + 3, ldc = n + 3
                let a = (0..<(ar * lda)).map { _ in BFloat16.round(Float.random(in: -1...1, using: &rng)) }
                let b = (0..<(br * ldb)).map { _ in BFloat16.round(Float.random(in: -1...1, using: &rng)) }
                let c0 = (0..<(m * ldc)).map { _ in Float.random(in: -1...1, using: &rng) }
                var native = c0, reference = c0
                gemmBF16(transA: transA, transB: transB, m: m, n: n, k: k, alpha: 0.5, a: a, lda: lda, b: b, ldb: ldb, beta: 1,
                         c: &native, ldc: ldc, threads: 3, backend: .oneDNN)
                gemmBF16(transA: transA, transB: transB, m: m, n: n, k: k, alpha: 0.5, a: a, lda: lda, b: b, ldb: ldb, beta: 1,
                         c: &reference, ldc: ldc, threads: 3, backend: .reference)
                // Both sum exact products in fp32: they differ by fp32 rounding only (K·2⁻²⁴ relative to Σ|ab|).
                XCTAssertLessThan(Numerics.maxError(native, reference), Double(k) * 0x1p-24 * Double(k) * 0.5 + 1e-6,
                                  "(\(m), \(n), \(k)) \(transA) \(transB)")
                var again = c0
                gemmBF16(transA: transA, transB: transB, m: m, n: n, k: k, alpha: 0.5, a: a, lda: lda, b: b, ldb: ldb, beta: 1,
                         c: &again, ldc: ldc, threads: 1, backend: .oneDNN)
                XCTAssertTrue(Numerics.bitIdentical(native, again), "thread count")
            }
        }
    }
}
