import CBLAS
import CDNNLShim

/// bfloat16 numbers, stored as `UInt16`: the upper half of an IEEE-754 binary32 (sign, 8-bit exponent,
/// 7 stored mantissa bits, 8 significant). fp32's range at 2⁻⁸ relative precision: products of two
/// bf16 numbers are exact in fp32, which is what the CPU's bf16 dot products (AVX-512 BF16, AMX)
/// accumulate into.
public enum BFloat16 {
    /// `x` rounded to the nearest bf16, ties to even (as PyTorch and oneDNN convert); NaN stays a
    /// (quiet) NaN, ±∞ stays, and finite values beyond bf16's largest round to ±∞.
    @inlinable
    public static func round(_ x: Float) -> UInt16 {
        let bits = x.bitPattern
        if x.isNaN { return UInt16(truncatingIfNeeded: bits >> 16) | 0x0040 }
        return UInt16(truncatingIfNeeded: (bits &+ 0x7FFF &+ ((bits >> 16) & 1)) >> 16)
    }

    /// The fp32 value of a bf16 number (exact).
    @inlinable
    public static func float(_ b: UInt16) -> Float { Float(bitPattern: UInt32(b) << 16) }

    /// dst[i] = round(src[i]) for i in 0..<count, 16 at a time. // src (count,), dst (count,)
    public static func round(_ src: UnsafePointer<Float>, into dst: UnsafeMutablePointer<UInt16>, count: Int) {
        var i = 0
        while i + 16 <= count {
            let out = SIMD16<UInt16>(truncatingIfNeeded: round16(UnsafeRawPointer(src + i).loadUnaligned(as: SIMD16<UInt32>.self)))
            UnsafeMutableRawPointer(dst + i).storeBytes(of: out, as: SIMD16<UInt16>.self)
            i += 16
        }
        while i < count { dst[i] = round(src[i]); i += 1 }
    }

    /// `round` on 16 fp32 bit patterns at once: the bf16 bits in the low half of each lane.
    @inline(__always)
    static func round16(_ raw: SIMD16<UInt32>) -> SIMD16<UInt32> {
        let rounded = (raw &+ 0x7FFF &+ ((raw &>> 16) & 1)) &>> 16
        // NaN: exponent all ones and a nonzero mantissa; keep it a quiet NaN.
        let nan = (raw & 0x7FFF_FFFF) .> 0x7F80_0000
        return rounded.replacing(with: (raw &>> 16) | 0x0040, where: nan)
    }

    /// dst[i] = float(round(src[i])): each value rounded to bf16 and kept as fp32, for the reference
    /// products. // src (count,), dst (count,)
    public static func roundedFloats(_ src: UnsafePointer<Float>, into dst: UnsafeMutablePointer<Float>, count: Int) {
        var i = 0
        while i + 16 <= count {
            let bits = round16(UnsafeRawPointer(src + i).loadUnaligned(as: SIMD16<UInt32>.self)) &<< 16
            UnsafeMutableRawPointer(dst + i).storeBytes(of: bits, as: SIMD16<UInt32>.self)
            i += 16
        }
        while i < count { dst[i] = float(round(src[i])); i += 1 }
    }

    /// dst[i] = float(src[i]) for i in 0..<count. // src (count,), dst (count,)
    public static func widen(_ src: UnsafePointer<UInt16>, into dst: UnsafeMutablePointer<Float>, count: Int) {
        for i in 0..<count { dst[i] = Float(bitPattern: UInt32(src[i]) << 16) }
    }
}

/// Where bf16 matrix products run.
public enum BF16Backend: String, Sendable {
    /// oneDNN's bf16 matmul on the CPU's bf16 units (AVX-512 BF16 or AMX). Only where
    /// `BF16Support.isNative`: oneDNN does not emulate bf16, nor does BertKit.
    case oneDNN
    /// The same arithmetic on any CPU, for checking: the bf16 inputs widened to fp32 (exactly) and
    /// multiplied by `gemm` (fp32 products and sums). Products of bf16 numbers are exact in fp32, so it
    /// differs from the native path only in the order of the fp32 sums. Never a fallback for users.
    case reference
}

/// Whether this CPU multiplies bf16 natively, decided once per process.
public enum BF16Support {
    /// The CPU flags that mean native bf16 dot products.
    public static let nativeFlags = ["avx512_bf16", "amx_bf16"]

    /// The flags of `nativeFlags` this CPU has.
    public static let cpuFlags: [String] = { let f = Kernels.cpuFlags(); return nativeFlags.filter(f.contains) }()

    /// True when the CPU has bf16 dot products and oneDNN makes a bf16 matmul on them.
    public static let isNative: Bool = !cpuFlags.isEmpty && bertkit_dnnl_bf16_matmul_available() != 0

    /// Why bf16 is not available here (nil when it is), for messages.
    public static var unavailableReason: String? {
        if isNative { return nil }
        if cpuFlags.isEmpty {
            return "this CPU has no native bf16 dot products (none of the CPU flags \(nativeFlags.joined(separator: ", ")))"
        }
        return "oneDNN \(oneDNNVersion) cannot make a bf16 matmul on this CPU (flags: \(cpuFlags.joined(separator: ", ")))"
    }

    /// oneDNN's version.
    public static var oneDNNVersion: String { String(cString: bertkit_dnnl_version()) }
}

/// C(M,N) = alpha·op(A)·op(B) + beta·C with A and B in bf16 and C in fp32 (products and sums in fp32);
/// the layout is `gemm`'s: row-major, A stored (M,K) or (K,M) when `transA`, B stored (K,N) or (N,K)
/// when `transB`. The output is cut into the same shape-fixed `GemmGrid` as `gemm`, each block one
/// single-threaded product, so the result does not depend on `threads`.
///
/// With `.oneDNN` the caller must have checked `BF16Support.isNative`; a oneDNN failure after that is
/// a broken installation and stops the process with oneDNN's status.
public func gemmBF16(transA: Bool, transB: Bool, m: Int, n: Int, k: Int, alpha: Float, a: UnsafePointer<UInt16>, lda: Int,
                     b: UnsafePointer<UInt16>, ldb: Int, beta: Float, c: UnsafeMutablePointer<Float>, ldc: Int, threads: Int,
                     backend: BF16Backend) {
    guard m > 0, n > 0 else { return }
    switch backend {
    case .reference:
        let (ar, br) = (transA ? k : m, transB ? n : k)
        let wa = UnsafeMutablePointer<Float>.allocate(capacity: ar * lda)  // (rows of A, lda)
        let wb = UnsafeMutablePointer<Float>.allocate(capacity: br * ldb)  // (rows of B, ldb)
        defer { wa.deallocate(); wb.deallocate() }
        BFloat16.widen(a, into: wa, count: ar * lda)
        BFloat16.widen(b, into: wb, count: br * ldb)
        gemm(transA: transA, transB: transB, m: m, n: n, k: k, alpha: alpha, a: wa, lda: lda, b: wb, ldb: ldb, beta: beta,
             c: c, ldc: ldc, threads: threads)
    case .oneDNN:
        let grid = GemmGrid(m: m, n: n, k: k)
        Parallel.forEach(grid.count, threads: min(threads, grid.count)) { blk in
            let (rows, columns) = grid.block(blk)
            let ap = transA ? a + rows.lowerBound : a + rows.lowerBound * lda
            let bp = transB ? b + columns.lowerBound * ldb : b + columns.lowerBound
            let status = bertkit_dnnl_gemm_bf16(transA ? 1 : 0, transB ? 1 : 0, Int64(rows.count), Int64(columns.count), Int64(k), alpha,
                                                ap, Int64(lda), bp, Int64(ldb), beta, c + rows.lowerBound * ldc + columns.lowerBound, Int64(ldc))
            checkOneDNN(status)
        }
    }
}

/// Stops the process on a oneDNN failure after `BF16Support.isNative` was checked: a broken
/// installation, not bad input.
@inline(__always)
func checkOneDNN(_ status: Int32) {
    if status != 0 { fatalError("oneDNN \(BF16Support.oneDNNVersion) bf16 matmul failed with status \(status)") }
}

extension BFloat16 {
    /// `round(_:into:count:)` split over `threads` workers in fixed chunks (elementwise, so the result
    /// never depends on the split).
    public static func round(_ src: UnsafePointer<Float>, into dst: UnsafeMutablePointer<UInt16>, count: Int, threads: Int) {
        let chunk = 1 << 16
        let chunks = (count + chunk - 1) / chunk
        Parallel.forEach(chunks, threads: min(threads, chunks)) { c in
            let lo = c * chunk
            round(src + lo, into: dst + lo, count: min(chunk, count - lo))
        }
    }
}

/// `linearForward` with bf16 inputs and fp32 accumulation: out(N,Out) = bf16(inp)·weight16ᵀ + bias.
/// `weight16` is the weight already rounded to bf16, (Out,In); `scratch` (N·In,) receives the rounded
/// input. The bias is added in fp32.
public func linearForwardBF16(out: UnsafeMutablePointer<Float>, inp: UnsafePointer<Float>, weight16: UnsafePointer<UInt16>,
                              bias: UnsafePointer<Float>?, n: Int, inFeatures: Int, outFeatures: Int,
                              scratch: UnsafeMutablePointer<UInt16>, threads: Int, backend: BF16Backend) {
    guard let beta = startLinearOutput(out, bias: bias, n: n, inFeatures: inFeatures, outFeatures: outFeatures) else { return }
    BFloat16.round(inp, into: scratch, count: n * inFeatures, threads: threads)
    gemmBF16(transA: false, transB: true, m: n, n: outFeatures, k: inFeatures, alpha: 1, a: scratch, lda: inFeatures,
             b: weight16, ldb: inFeatures, beta: beta, c: out, ldc: outFeatures, threads: threads, backend: backend)
}

/// The backward of `linearForwardBF16`, accumulating as `linearBackward` does, with both products on
/// bf16 inputs: dinp(N,In) += bf16(dout)·weight16; dweight(Out,In) += bf16(dout)ᵀ·bf16(inp); dbias (fp32)
/// += Σ_rows dout. `scratchOut` (N·Out,) and `scratchIn` (N·In,) receive the rounded dout and inp.
public func linearBackwardBF16(dinp: UnsafeMutablePointer<Float>?, dweight: UnsafeMutablePointer<Float>,
                               dbias: UnsafeMutablePointer<Float>?, dout: UnsafePointer<Float>, inp: UnsafePointer<Float>,
                               weight16: UnsafePointer<UInt16>, n: Int, inFeatures: Int, outFeatures: Int,
                               scratchOut: UnsafeMutablePointer<UInt16>, scratchIn: UnsafeMutablePointer<UInt16>,
                               threads: Int, backend: BF16Backend) {
    guard n > 0, outFeatures > 0 else { return }
    if inFeatures > 0 {
        BFloat16.round(dout, into: scratchOut, count: n * outFeatures, threads: threads)
        BFloat16.round(inp, into: scratchIn, count: n * inFeatures, threads: threads)
        if let dinp {
            gemmBF16(transA: false, transB: false, m: n, n: inFeatures, k: outFeatures, alpha: 1, a: scratchOut, lda: outFeatures,
                     b: weight16, ldb: inFeatures, beta: 1, c: dinp, ldc: inFeatures, threads: threads, backend: backend)
        }
        gemmBF16(transA: true, transB: false, m: outFeatures, n: inFeatures, k: n, alpha: 1, a: scratchOut, lda: outFeatures,
                 b: scratchIn, ldb: inFeatures, beta: 1, c: dweight, ldc: inFeatures, threads: threads, backend: backend)
    }
    if let dbias { sumRows(into: dbias, dout, rows: n, columns: outFeatures, threads: threads) }
}
