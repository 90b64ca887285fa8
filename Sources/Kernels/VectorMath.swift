/// SIMD helpers for the kernels: unaligned loads and stores, and vectorised exp and erf.
/// Sixteen lanes = one AVX-512 register or two AVX2 registers.
@usableFromInline typealias F16 = SIMD16<Float>

@inline(__always) @usableFromInline
func load16(_ p: UnsafePointer<Float>) -> F16 {
    UnsafeRawPointer(p).loadUnaligned(as: F16.self)
}

@inline(__always) @usableFromInline
func store16(_ v: F16, _ p: UnsafeMutablePointer<Float>) {
    UnsafeMutableRawPointer(p).storeBytes(of: v, as: F16.self)
}

/// Lane-wise max and min through compare-and-select. (The standard library's `pointwiseMax`,
/// `pointwiseMin` and `clamped` handle NaN generically and compile to scalar code, ~70x slower.)
@inline(__always) @usableFromInline
func vmax(_ a: F16, _ b: F16) -> F16 { a.replacing(with: b, where: a .< b) }

@inline(__always) @usableFromInline
func vmin(_ a: F16, _ b: F16) -> F16 { a.replacing(with: b, where: b .< a) }

/// e^x on 16 lanes: Cephes' expf (range reduction by ln 2 in two parts, degree-6 polynomial, then
/// scaling by 2^n through the exponent bits). Relative error about 2 ulp on [-87.3, 88.7]; returns
/// exactly 0 below -87.33 (where e^x is subnormal or zero in Float).
@inline(__always) @usableFromInline
func exp16(_ x: F16) -> F16 {
    let lo = F16(repeating: -87.33654), hi = F16(repeating: 88.72283)
    let under = x .< lo
    let xc = vmin(vmax(x, lo), hi)
    // n = round(x / ln 2) with the 1.5·2^23 trick: the low mantissa bits of `shifted` hold n.
    let magic = F16(repeating: 12_582_912)
    let shifted = xc * F16(repeating: 1.442_695_04) + magic
    let n = shifted - magic
    var r = xc - n * F16(repeating: 0.693_359_375)
    r = r - n * F16(repeating: -2.121_944_4e-4)
    let r2 = r * r
    var p = F16(repeating: 1.987_569_15e-4)
    p = p * r + F16(repeating: 1.398_199_95e-3)
    p = p * r + F16(repeating: 8.333_451_9e-3)
    p = p * r + F16(repeating: 4.166_579_59e-2)
    p = p * r + F16(repeating: 1.666_666_55e-1)
    p = p * r + F16(repeating: 5.000_000_12e-1)
    p = p * r2 + r + F16(repeating: 1)
    let nBits = unsafeBitCast(shifted, to: SIMD16<Int32>.self) &- unsafeBitCast(magic, to: SIMD16<Int32>.self)
    let scale = unsafeBitCast((nBits &+ 127) &<< 23, to: F16.self)
    var y = p * scale
    y.replace(with: F16(repeating: 0), where: under)
    return y
}

/// e^x for one Float, with the same algorithm as `exp16` (so a row's lanes and tail agree).
@inline(__always) @usableFromInline
func exp1(_ x: Float) -> Float {
    exp16(F16(repeating: x))[0]
}

/// erf(x) on 16 lanes: Abramowitz & Stegun 7.1.26 (absolute error ≤ 1.5e-7), the formula PyTorch's
/// vectorised CPU `erf` uses (aten/src/ATen/cpu/vec: Vectorized<float>::erf).
@inline(__always) @usableFromInline
func erf16(_ x: F16) -> F16 {
    let ax = unsafeBitCast(unsafeBitCast(x, to: SIMD16<UInt32>.self) & 0x7FFF_FFFF, to: F16.self)
    let t = F16(repeating: 1) / (F16(repeating: 1) + F16(repeating: 0.327_591_1) * ax)
    var p = F16(repeating: 1.061_405_429)
    p = p * t + F16(repeating: -1.453_152_027)
    p = p * t + F16(repeating: 1.421_413_741)
    p = p * t + F16(repeating: -0.284_496_736)
    p = p * t + F16(repeating: 0.254_829_592)
    p = p * t
    let y = F16(repeating: 1) - p * exp16(F16(repeating: 0) - ax * ax)
    var r = y
    r.replace(with: F16(repeating: 0) - y, where: x .< 0)
    return r
}

/// Loads `n` < 16 floats into the first lanes of a vector (the others are `fill`).
@inline(__always) @usableFromInline
func loadPartial(_ p: UnsafePointer<Float>, _ n: Int, fill: Float = 0) -> F16 {
    var v = F16(repeating: fill)
    for i in 0..<n { v[i] = p[i] }
    return v
}

/// Stores the first `n` < 16 lanes of a vector.
@inline(__always) @usableFromInline
func storePartial(_ v: F16, _ p: UnsafeMutablePointer<Float>, _ n: Int) {
    for i in 0..<n { p[i] = v[i] }
}

extension Parallel {
    /// Splits 0..<count into `threads` contiguous ranges whose bounds are multiples of 16 (except the
    /// end) and runs `body(range)` on each; small counts run on the calling thread.
    @inlinable
    public static func forRanges(_ count: Int, threads: Int, grain: Int = 16_384, _ body: (Range<Int>) -> Void) {
        let blocks = (count + 15) / 16
        let n = min(max(1, threads), max(1, count / grain), max(1, blocks))
        if n <= 1 {
            body(0..<count)
            return
        }
        forEach(n, threads: n) { t in
            let lo = min(count, t * blocks / n * 16), hi = min(count, (t + 1) * blocks / n * 16)
            if lo < hi { body(lo..<hi) }
        }
    }
}
