import Foundation

/// Layer normalisation over the last dimension C, as `torch.nn.LayerNorm` (biased variance, eps
/// inside the square root): out = (x − mean)·rstd·weight + bias, rstd = 1/√(var + eps).
/// Shapes: out, inp (N,C); mean, rstd (N,) cached for the backward pass; weight, bias (C,).
/// Rows are split over `threads`; each row's result does not depend on the split.
public func layerNormForward(out: UnsafeMutablePointer<Float>, mean: UnsafeMutablePointer<Float>,
                             rstd: UnsafeMutablePointer<Float>, inp: UnsafePointer<Float>, weight: UnsafePointer<Float>,
                             bias: UnsafePointer<Float>, n: Int, c: Int, eps: Float, threads: Int) {
    let t = n * c < 16_384 ? 1 : threads
    Parallel.forEach(n, threads: t) { i in
        let x = inp + i * c, y = out + i * c
        let m = rowSum(x, c) / Float(c)
        let mv = F16(repeating: m)
        var acc = F16(repeating: 0)
        var j = 0
        while j + 16 <= c { let d = load16(x + j) - mv; acc += d * d; j += 16 }
        var v = acc.sum()
        while j < c { let d = x[j] - m; v += d * d; j += 1 }
        let s = 1 / (v / Float(c) + eps).squareRoot()
        mean[i] = m
        rstd[i] = s
        let sv = F16(repeating: s)
        j = 0
        while j + 16 <= c {
            store16((load16(x + j) - mv) * sv * load16(weight + j) + load16(bias + j), y + j)
            j += 16
        }
        while j < c { y[j] = (x[j] - m) * s * weight[j] + bias[j]; j += 1 }
    }
}

/// Backward of `layerNormForward` from the cached mean and rstd. ACCUMULATES into dinp (N,C),
/// dweight (C,) and dbias (C,). Input gradients are split over rows, parameter gradients over
/// blocks of columns (rows added in order), so the result does not depend on `threads`.
public func layerNormBackward(dinp: UnsafeMutablePointer<Float>, dweight: UnsafeMutablePointer<Float>,
                              dbias: UnsafeMutablePointer<Float>, dout: UnsafePointer<Float>, inp: UnsafePointer<Float>,
                              weight: UnsafePointer<Float>, mean: UnsafePointer<Float>, rstd: UnsafePointer<Float>,
                              n: Int, c: Int, threads: Int) {
    let t = n * c < 16_384 ? 1 : threads
    // dx = rstd·(g − mean(g) − x̂·mean(g·x̂)) with g = dout·weight and x̂ = (x − mean)·rstd.
    Parallel.forEach(n, threads: t) { i in
        let x = inp + i * c, dy = dout + i * c, dx = dinp + i * c
        let m = mean[i], s = rstd[i]
        let mv = F16(repeating: m), sv = F16(repeating: s)
        var sg = F16(repeating: 0), sgx = F16(repeating: 0)
        var j = 0
        while j + 16 <= c {
            let g = load16(dy + j) * load16(weight + j)
            sg += g
            sgx += g * ((load16(x + j) - mv) * sv)
            j += 16
        }
        var meanG = sg.sum(), meanGX = sgx.sum()
        while j < c {
            let g = dy[j] * weight[j]
            meanG += g
            meanGX += g * ((x[j] - m) * s)
            j += 1
        }
        meanG /= Float(c)
        meanGX /= Float(c)
        let a = F16(repeating: meanG), b = F16(repeating: meanGX)
        j = 0
        while j + 16 <= c {
            let g = load16(dy + j) * load16(weight + j)
            let xh = (load16(x + j) - mv) * sv
            store16(load16(dx + j) + sv * (g - a - xh * b), dx + j)
            j += 16
        }
        while j < c {
            let g = dy[j] * weight[j]
            let xh = (x[j] - m) * s
            dx[j] += s * (g - meanG - xh * meanGX)
            j += 1
        }
    }
    let blocks = (c + 15) / 16
    let nb = min(t, blocks)
    Parallel.forEach(nb, threads: nb) { b in
        let c0 = b * blocks / nb * 16, c1 = min(c, (b + 1) * blocks / nb * 16)
        for i in 0..<n {
            let mv = F16(repeating: mean[i]), sv = F16(repeating: rstd[i])
            let dy = dout + i * c, x = inp + i * c
            var j = c0
            while j + 16 <= c1 {
                let g = load16(dy + j)
                store16(load16(dweight + j) + g * ((load16(x + j) - mv) * sv), dweight + j)
                store16(load16(dbias + j) + g, dbias + j)
                j += 16
            }
            while j < c1 {
                dweight[j] += dy[j] * ((x[j] - mean[i]) * rstd[i])
                dbias[j] += dy[j]
                j += 1
            }
        }
    }
}

/// Σ x[0..<c] with 16 running lanes, then the lanes, then the tail (a fixed order).
@inline(__always) @usableFromInline
func rowSum(_ x: UnsafePointer<Float>, _ c: Int) -> Float {
    var acc = F16(repeating: 0)
    var j = 0
    while j + 16 <= c { acc += load16(x + j); j += 16 }
    var s = acc.sum()
    while j < c { s += x[j]; j += 1 }
    return s
}

extension Naive {
    /// Reference for `layerNormForward`; returns (out (N,C), mean (N,), rstd (N,)).
    public static func layerNormForward<T: BinaryFloatingPoint>(inp: [T], weight: [T], bias: [T], n: Int, c: Int,
                                                                  eps: T) -> (out: [T], mean: [T], rstd: [T]) {
        var out = [T](repeating: 0, count: n * c), mean = [T](repeating: 0, count: n), rstd = mean
        for i in 0..<n {
            var m: T = 0
            for j in 0..<c { m += inp[i * c + j] }
            m /= T(c)
            var v: T = 0
            for j in 0..<c { v += (inp[i * c + j] - m) * (inp[i * c + j] - m) }
            v /= T(c)
            let s = 1 / (v + eps).squareRoot()
            mean[i] = m
            rstd[i] = s
            for j in 0..<c { out[i * c + j] = (inp[i * c + j] - m) * s * weight[j] + bias[j] }
        }
        return (out, mean, rstd)
    }

    /// Reference for `layerNormBackward`; accumulates into dinp, dweight, dbias.
    public static func layerNormBackward<T: BinaryFloatingPoint>(dinp: inout [T], dweight: inout [T], dbias: inout [T],
                                                                   dout: [T], inp: [T], weight: [T], mean: [T],
                                                                   rstd: [T], n: Int, c: Int) {
        for i in 0..<n {
            var meanG: T = 0, meanGX: T = 0
            for j in 0..<c {
                let xh = (inp[i * c + j] - mean[i]) * rstd[i]
                let g = dout[i * c + j] * weight[j]
                meanG += g
                meanGX += g * xh
                dweight[j] += dout[i * c + j] * xh
                dbias[j] += dout[i * c + j]
            }
            meanG /= T(c)
            meanGX /= T(c)
            for j in 0..<c {
                let xh = (inp[i * c + j] - mean[i]) * rstd[i]
                let g = dout[i * c + j] * weight[j]
                dinp[i * c + j] += rstd[i] * (g - meanG - xh * meanGX)
            }
        }
    }
}
