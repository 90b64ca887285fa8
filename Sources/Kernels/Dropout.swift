import Support

/// Draws for dropout with probability p: element `index` of the stream is kept when its 32 random
/// bits (the low or high half of word index/2) are ≥ p·2³², so P(keep) = 1 − p to within 2⁻³².
public struct DropoutSampler: Sendable {
    /// The stream's seed.
    public let seed: UInt64
    /// ⌊p·2³²⌉; elements whose 32 bits fall below are dropped.
    public let threshold: UInt64
    /// 1/(1 − p), the scale of kept elements.
    public let scale: Float

    /// A sampler for drop probability `p` in [0, 1).
    public init(p: Float, seed: UInt64) {
        self.seed = seed
        threshold = UInt64((Double(p) * 4_294_967_296).rounded())
        scale = Float(1 / (1 - Double(p)))
    }

    /// Whether element `index` is kept.
    @inline(__always) @inlinable
    public func keep(_ index: Int) -> Bool {
        let w = randomBits(seed: seed, counter: UInt64(index) >> 1)
        let bits = index & 1 == 0 ? w & 0xFFFF_FFFF : w >> 32
        return bits >= threshold
    }
}

/// Inverted dropout: out = inp · mask/(1 − p) where mask[i] = 1 with probability 1 − p, drawn from
/// `seed` by element index (see `DropoutSampler`). Shapes: out, inp (count,); mask (count,) UInt8
/// (1 kept, 0 dropped), saved for the backward pass. `out` may be `inp`. p = 0 is an exact no-op
/// (out = inp bit for bit) and leaves `mask` unwritten.
public func dropoutForward(out: UnsafeMutablePointer<Float>, mask: UnsafeMutablePointer<UInt8>, inp: UnsafePointer<Float>,
                           count: Int, p: Float, seed: UInt64, threads: Int) {
    if p == 0 {
        if UnsafePointer(out) != inp { out.update(from: inp, count: count) }
        return
    }
    let sampler = DropoutSampler(p: p, seed: seed)
    Parallel.forRanges(count, threads: threads) { r in
        for i in r {
            let k = sampler.keep(i)
            mask[i] = k ? 1 : 0
            out[i] = k ? inp[i] * sampler.scale : 0
        }
    }
}

/// `dropoutForward` on selected rows of an (N,C) tensor stored compactly: out, inp, mask (M,C) hold
/// rows index[0..<M] of the full tensor, and element (k, j) draws what element index[k]·C + j of
/// the full tensor draws, so the kept elements are those `dropoutForward` would keep. Backward:
/// `dropoutBackward` on the compact (M,C) tensors.
public func dropoutForwardRows(out: UnsafeMutablePointer<Float>, mask: UnsafeMutablePointer<UInt8>, inp: UnsafePointer<Float>,
                               index: UnsafePointer<Int32>, m: Int, c: Int, p: Float, seed: UInt64, threads: Int) {
    if p == 0 {
        if UnsafePointer(out) != inp { out.update(from: inp, count: m * c) }
        return
    }
    let sampler = DropoutSampler(p: p, seed: seed)
    Parallel.forEach(m, threads: m * c < 16_384 ? 1 : threads) { k in
        let base = Int(index[k]) * c
        for j in 0..<c {
            let keep = sampler.keep(base + j)
            mask[k * c + j] = keep ? 1 : 0
            out[k * c + j] = keep ? inp[k * c + j] * sampler.scale : 0
        }
    }
}

/// Backward of `dropoutForward` with the saved mask: dinp += dout · mask/(1 − p) (ACCUMULATES).
/// With p = 0, dinp += dout and `mask` is not read.
public func dropoutBackward(dinp: UnsafeMutablePointer<Float>, dout: UnsafePointer<Float>, mask: UnsafePointer<UInt8>,
                            count: Int, p: Float, threads: Int) {
    if p == 0 {
        accumulate(dinp, dout, count: count, threads: threads)
        return
    }
    let scale = Float(1 / (1 - Double(p)))
    Parallel.forRanges(count, threads: threads) { r in
        for i in r where mask[i] != 0 { dinp[i] += dout[i] * scale }
    }
}

extension Naive {
    /// Reference for `dropoutForward`: the same draws, element by element; returns (out, mask).
    public static func dropoutForward<T: BinaryFloatingPoint>(inp: [T], p: Float, seed: UInt64) -> (out: [T], mask: [UInt8]) {
        if p == 0 { return (inp, [UInt8](repeating: 1, count: inp.count)) }
        let s = DropoutSampler(p: p, seed: seed)
        var out = inp, mask = [UInt8](repeating: 0, count: inp.count)
        for i in inp.indices {
            mask[i] = s.keep(i) ? 1 : 0
            out[i] = mask[i] == 1 ? inp[i] * T(s.scale) : 0
        }
        return (out, mask)
    }

    /// Reference for `dropoutBackward`; accumulates.
    public static func dropoutBackward<T: BinaryFloatingPoint>(dinp: inout [T], dout: [T], mask: [UInt8], p: Float) {
        let scale = T(Float(1 / (1 - Double(p))))
        for i in dout.indices where p == 0 || mask[i] != 0 { dinp[i] += p == 0 ? dout[i] : dout[i] * scale }
    }
}
