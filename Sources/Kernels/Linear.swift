/// Fully connected layer, PyTorch layout: out(N,Out) = inp(N,In) · weightᵀ + bias, with weight
/// stored (Out,In) row-major as in `nn.Linear` and Hugging Face checkpoints. `bias` nil = no bias.
/// One `gemm` (results independent of `threads`).
public func linearForward(out: UnsafeMutablePointer<Float>, inp: UnsafePointer<Float>, weight: UnsafePointer<Float>,
                          bias: UnsafePointer<Float>?, n: Int, inFeatures: Int, outFeatures: Int, threads: Int) {
    guard let beta = startLinearOutput(out, bias: bias, n: n, inFeatures: inFeatures, outFeatures: outFeatures) else { return }
    gemm(transA: false, transB: true, m: n, n: outFeatures, k: inFeatures, alpha: 1, a: inp, lda: inFeatures,
         b: weight, ldb: inFeatures, beta: beta, c: out, ldc: outFeatures, threads: threads)
}

/// The part of a linear layer's forward before its product: out (N,Out) starts as the bias in every
/// row (the product then adds with beta 1), or is left for the product to write (beta 0). Returns the
/// beta, or nil when there is no product to run (empty shapes; out is then the bias, or zero).
@inline(__always)
func startLinearOutput(_ out: UnsafeMutablePointer<Float>, bias: UnsafePointer<Float>?, n: Int, inFeatures: Int,
                       outFeatures: Int) -> Float? {
    guard n > 0, outFeatures > 0 else { return nil }
    var beta: Float = 0
    if let bias {
        for i in 0..<n { (out + i * outFeatures).update(from: bias, count: outFeatures) }
        beta = 1
    }
    guard inFeatures > 0 else {
        if bias == nil { out.update(repeating: 0, count: n * outFeatures) }
        return nil
    }
    return beta
}

/// Backward of `linearForward`. All three ACCUMULATE (+=):
/// dinp(N,In) += dout(N,Out)·weight(Out,In); dweight(Out,In) += doutᵀ·inp; dbias(Out) += Σ_rows dout.
/// `dinp` nil skips the input gradient; `dbias` nil for a layer without bias. The bias sum is split
/// over column blocks and adds rows in order; with `gemm`, nothing depends on `threads`.
public func linearBackward(dinp: UnsafeMutablePointer<Float>?, dweight: UnsafeMutablePointer<Float>,
                           dbias: UnsafeMutablePointer<Float>?, dout: UnsafePointer<Float>, inp: UnsafePointer<Float>,
                           weight: UnsafePointer<Float>, n: Int, inFeatures: Int, outFeatures: Int, threads: Int) {
    guard n > 0, outFeatures > 0 else { return }
    if inFeatures > 0 {
        if let dinp {
            gemm(transA: false, transB: false, m: n, n: inFeatures, k: outFeatures, alpha: 1, a: dout, lda: outFeatures,
                 b: weight, ldb: inFeatures, beta: 1, c: dinp, ldc: inFeatures, threads: threads)
        }
        gemm(transA: true, transB: false, m: outFeatures, n: inFeatures, k: n, alpha: 1, a: dout, lda: outFeatures,
             b: inp, ldb: inFeatures, beta: 1, c: dweight, ldc: inFeatures, threads: threads)
    }
    if let dbias { sumRows(into: dbias, dout, rows: n, columns: outFeatures, threads: threads) }
}

/// acc(C) += Σ_r x[r, :] for x (R,C), rows added in order (so the result does not depend on the
/// split); split over blocks of columns, each thread streaming its block row by row.
public func sumRows(into acc: UnsafeMutablePointer<Float>, _ x: UnsafePointer<Float>, rows: Int, columns: Int,
                    threads: Int) {
    let blocks = (columns + 15) / 16
    let n = rows * columns < 65_536 ? 1 : min(threads, blocks)
    Parallel.forEach(n, threads: n) { t in
        let c0 = t * blocks / n * 16, c1 = min(columns, (t + 1) * blocks / n * 16)
        for r in 0..<rows {
            let row = x + r * columns
            var c = c0
            while c + 16 <= c1 { store16(load16(acc + c) + load16(row + c), acc + c); c += 16 }
            while c < c1 { acc[c] += row[c]; c += 1 }
        }
    }
}

extension Naive {
    /// Reference for `linearForward`: out(N,Out) = inp(N,In)·weightᵀ + bias, weight (Out,In).
    public static func linearForward<T: BinaryFloatingPoint>(inp: [T], weight: [T], bias: [T]?, n: Int,
                                                               inFeatures: Int, outFeatures: Int) -> [T] {
        var out = [T](repeating: 0, count: n * outFeatures)
        for i in 0..<n {
            for o in 0..<outFeatures {
                var s: T = bias?[o] ?? 0
                for k in 0..<inFeatures { s += inp[i * inFeatures + k] * weight[o * inFeatures + k] }
                out[i * outFeatures + o] = s
            }
        }
        return out
    }

    /// Reference for `linearBackward`; accumulates into all three gradients.
    public static func linearBackward<T: BinaryFloatingPoint>(dinp: inout [T], dweight: inout [T], dbias: inout [T]?,
                                                                dout: [T], inp: [T], weight: [T], n: Int,
                                                                inFeatures: Int, outFeatures: Int) {
        for i in 0..<n {
            for o in 0..<outFeatures {
                let g = dout[i * outFeatures + o]
                dbias?[o] += g
                for k in 0..<inFeatures {
                    dinp[i * inFeatures + k] += g * weight[o * inFeatures + k]
                    dweight[o * inFeatures + k] += g * inp[i * inFeatures + k]
                }
            }
        }
    }
}
