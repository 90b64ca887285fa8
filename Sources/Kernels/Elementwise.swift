/// Residual connection: out = a + b. Shapes: (count,) each; `out` may be `a` or `b`.
/// Its backward is `accumulate(da, dout)` and `accumulate(db, dout)`.
public func residualForward(out: UnsafeMutablePointer<Float>, a: UnsafePointer<Float>, b: UnsafePointer<Float>,
                            count: Int, threads: Int) {
    Parallel.forRanges(count, threads: threads) { r in
        var i = r.lowerBound
        while i + 16 <= r.upperBound { store16(load16(a + i) + load16(b + i), out + i); i += 16 }
        while i < r.upperBound { out[i] = a[i] + b[i]; i += 1 }
    }
}

/// dst += src. Shapes: (count,) each.
public func accumulate(_ dst: UnsafeMutablePointer<Float>, _ src: UnsafePointer<Float>, count: Int, threads: Int) {
    Parallel.forRanges(count, threads: threads) { r in
        var i = r.lowerBound
        while i + 16 <= r.upperBound { store16(load16(dst + i) + load16(src + i), dst + i); i += 16 }
        while i < r.upperBound { dst[i] += src[i]; i += 1 }
    }
}

/// Copies rows: out[k,:] = inp[index[k],:]. Shapes: out (M,C); inp (N,C); index (M,) in 0..<N.
public func gatherRows(out: UnsafeMutablePointer<Float>, inp: UnsafePointer<Float>, index: UnsafePointer<Int32>,
                       m: Int, c: Int) {
    for k in 0..<m { (out + k * c).update(from: inp + Int(index[k]) * c, count: c) }
}

/// Backward of `gatherRows`: dinp[index[k],:] += dout[k,:], in order of k (ACCUMULATES).
/// Shapes: dinp (N,C); dout (M,C); index (M,).
public func scatterAddRows(dinp: UnsafeMutablePointer<Float>, dout: UnsafePointer<Float>, index: UnsafePointer<Int32>,
                           m: Int, c: Int) {
    for k in 0..<m { accumulate(dinp + Int(index[k]) * c, dout + k * c, count: c, threads: 1) }
}

/// Sets `count` floats to zero, split over threads.
public func zero(_ p: UnsafeMutablePointer<Float>, count: Int, threads: Int) {
    Parallel.forRanges(count, threads: threads, grain: 262_144) { r in (p + r.lowerBound).update(repeating: 0, count: r.count) }
}

/// p[i] *= factor for `count` floats, split over threads (each element independently, so the result
/// does not depend on the thread count).
public func scale(_ p: UnsafeMutablePointer<Float>, count: Int, by factor: Float, threads: Int) {
    Parallel.forRanges(count, threads: threads, grain: 262_144) { r in
        for i in r { p[i] *= factor }
    }
}
