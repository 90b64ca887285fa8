import Kernels

/// The one seam through which every matrix product of the models passes: the linear layers (encoder,
/// pooler and heads, the tied MLM decoder included) and attention's two batched products. Today every
/// product is fp32 through `Kernels` (OpenBLAS sgemm on shape-fixed blocks). A second precision (bf16
/// inputs with fp32 accumulation) or another GEMM library is added here, by `precision`, without
/// touching the layers; the layers keep fp32 activations, LayerNorm, softmax and losses.
struct MatrixProducts {
    /// The arithmetic of the products.
    enum Precision: String, Sendable {
        /// fp32 inputs, fp32 accumulation (OpenBLAS sgemm).
        case fp32
    }

    let precision: Precision

    init(precision: Precision = .fp32) { self.precision = precision }

    /// out (N,Out) = inp (N,In) · weightᵀ (Out,In) + bias; see `Kernels.linearForward`.
    @inline(__always)
    func linearForward(out: UnsafeMutablePointer<Float>, inp: UnsafePointer<Float>, weight: UnsafePointer<Float>,
                       bias: UnsafePointer<Float>?, n: Int, inFeatures: Int, outFeatures: Int, threads: Int) {
        switch precision {
        case .fp32:
            Kernels.linearForward(out: out, inp: inp, weight: weight, bias: bias, n: n, inFeatures: inFeatures,
                                  outFeatures: outFeatures, threads: threads)
        }
    }

    /// dinp = dout · weight, dweight += doutᵀ · inp, dbias += Σ dout; see `Kernels.linearBackward`.
    @inline(__always)
    func linearBackward(dinp: UnsafeMutablePointer<Float>?, dweight: UnsafeMutablePointer<Float>,
                        dbias: UnsafeMutablePointer<Float>?, dout: UnsafePointer<Float>, inp: UnsafePointer<Float>,
                        weight: UnsafePointer<Float>, n: Int, inFeatures: Int, outFeatures: Int, threads: Int) {
        switch precision {
        case .fp32:
            Kernels.linearBackward(dinp: dinp, dweight: dweight, dbias: dbias, dout: dout, inp: inp, weight: weight, n: n,
                                   inFeatures: inFeatures, outFeatures: outFeatures, threads: threads)
        }
    }

    /// Self-attention over every row; see `Kernels.attentionForward`.
    @inline(__always)
    func attentionForward(out: UnsafeMutablePointer<Float>, probs: UnsafeMutablePointer<Float>, dropMask: UnsafeMutablePointer<UInt8>?,
                          qkv: UnsafePointer<Float>, keyMask: UnsafePointer<Int32>, b: Int, t: Int, nh: Int, hs: Int, p: Float,
                          seed: UInt64, scratch: UnsafeMutablePointer<Float>, threads: Int) {
        switch precision {
        case .fp32:
            Kernels.attentionForward(out: out, probs: probs, dropMask: dropMask, qkv: qkv, keyMask: keyMask, b: b, t: t, nh: nh,
                                     hs: hs, p: p, seed: seed, scratch: scratch, threads: threads)
        }
    }

    /// The backward of `attentionForward`; see `Kernels.attentionBackward`.
    @inline(__always)
    func attentionBackward(dqkv: UnsafeMutablePointer<Float>, dout: UnsafePointer<Float>, qkv: UnsafePointer<Float>,
                           probs: UnsafePointer<Float>, dropMask: UnsafePointer<UInt8>?, b: Int, t: Int, nh: Int, hs: Int, p: Float,
                           scratch: UnsafeMutablePointer<Float>, threads: Int) {
        switch precision {
        case .fp32:
            Kernels.attentionBackward(dqkv: dqkv, dout: dout, qkv: qkv, probs: probs, dropMask: dropMask, b: b, t: t, nh: nh,
                                      hs: hs, p: p, scratch: scratch, threads: threads)
        }
    }

    /// Self-attention at the kept query rows only; see `Kernels.attentionForwardRows`.
    @inline(__always)
    func attentionForwardRows(out: UnsafeMutablePointer<Float>, probs: UnsafeMutablePointer<Float>, dropMask: UnsafeMutablePointer<UInt8>?,
                              q: UnsafePointer<Float>, qkv: UnsafePointer<Float>, keyMask: UnsafePointer<Int32>,
                              rowStart: UnsafePointer<Int32>, positions: UnsafePointer<Int32>, b: Int, t: Int, nh: Int, hs: Int,
                              p: Float, seed: UInt64, scratch: UnsafeMutablePointer<Float>, threads: Int) {
        switch precision {
        case .fp32:
            Kernels.attentionForwardRows(out: out, probs: probs, dropMask: dropMask, q: q, qkv: qkv, keyMask: keyMask,
                                         rowStart: rowStart, positions: positions, b: b, t: t, nh: nh, hs: hs, p: p, seed: seed,
                                         scratch: scratch, threads: threads)
        }
    }

    /// The backward of `attentionForwardRows`; see `Kernels.attentionBackwardRows`.
    @inline(__always)
    func attentionBackwardRows(dq: UnsafeMutablePointer<Float>, dqkv: UnsafeMutablePointer<Float>, dout: UnsafePointer<Float>,
                               q: UnsafePointer<Float>, qkv: UnsafePointer<Float>, probs: UnsafePointer<Float>,
                               dropMask: UnsafePointer<UInt8>?, rowStart: UnsafePointer<Int32>, b: Int, t: Int, nh: Int, hs: Int,
                               p: Float, scratch: UnsafeMutablePointer<Float>, threads: Int) {
        switch precision {
        case .fp32:
            Kernels.attentionBackwardRows(dq: dq, dqkv: dqkv, dout: dout, q: q, qkv: qkv, probs: probs, dropMask: dropMask,
                                          rowStart: rowStart, b: b, t: t, nh: nh, hs: hs, p: p, scratch: scratch, threads: threads)
        }
    }
}
