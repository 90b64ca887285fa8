import Kernels

/// The arithmetic of a model's matrix products.
public enum ModelPrecision: Equatable, Sendable, CustomStringConvertible {
    /// fp32 inputs, fp32 accumulation (OpenBLAS sgemm).
    case fp32
    /// Mixed precision: every matrix product (the linear layers, the tied MLM decoder, and attention's
    /// Q·Kᵀ and P·V with their backward products) takes bf16 inputs and accumulates and writes fp32;
    /// weights are rounded to bf16 once after each change (see `BertShellModel.parametersDidChange`). Master weights, gradients, LayerNorm, softmax, GELU,
    /// dropout, the losses and every reduction stay fp32. `backend` says where the products run:
    /// `.oneDNN` on the CPU's bf16 units, `.reference` (the same arithmetic widened to fp32) for checks.
    case bf16(BF16Backend)

    public var description: String {
        switch self {
        case .fp32: "fp32"
        case .bf16(.oneDNN): "bf16"
        case .bf16(.reference): "bf16 (reference products, for checks)"
        }
    }
}

/// The one seam through which every matrix product of the models passes: the linear layers (encoder,
/// pooler and heads, the tied MLM decoder included) and attention's two batched products. fp32 runs
/// every product through `Kernels` (OpenBLAS sgemm on shape-fixed blocks); bf16 runs the linear layers
/// through `gemmBF16` on a bf16 copy of the weights, and attention's per-head products on operands
/// rounded to bf16 as they are packed. The layers keep fp32 activations, LayerNorm, softmax and losses.
final class MatrixProducts {
    /// The arithmetic of the products.
    var precision: ModelPrecision = .fp32 {
        didSet { if precision != oldValue { castGeneration = -1 } }
    }
    /// The model's parameters, which the bf16 copy mirrors (set once by `ModelShell`). (count,)
    var parameters = UnsafeMutableBufferPointer<Float>(start: nil, count: 0)
    /// bf16 copies of the parameters, made on the first bf16 pass; nil before. (count,)
    private var weights16: UnsafeMutableBufferPointer<UInt16>?
    /// Bumped by `parametersDidChange`; the copy is current when it equals `castGeneration`.
    private var generation = 0, castGeneration = -1
    /// Rounded activations for one product's two operands, grown on demand.
    private var scratch: [UnsafeMutableBufferPointer<UInt16>] = [.init(start: nil, count: 0), .init(start: nil, count: 0)]

    init() {}

    deinit {
        weights16?.deallocate()
        for s in scratch where s.baseAddress != nil { s.deallocate() }
    }

    /// The parameters changed (an update, a load): the bf16 copy is made again before the next product.
    func parametersDidChange() { generation &+= 1 }

    /// Before a pass: in bf16, rounds the weights if they changed since the last rounding, and checks a
    /// sample of them, so that a change nobody announced stops the process instead of training on stale
    /// weights.
    func prepare(threads: Int) {
        guard case .bf16 = precision else { return }
        let n = parameters.count
        if weights16 == nil { weights16 = .allocate(capacity: n) }
        let w = weights16!
        if castGeneration != generation {
            BFloat16.round(parameters.baseAddress!, into: w.baseAddress!, count: n, threads: threads)
            castGeneration = generation
            return
        }
        let step = max(1, n / 61)
        for i in stride(from: 0, to: n, by: step) where w[i] != BFloat16.round(parameters[i]) && !parameters[i].isNaN {
            preconditionFailure("parameter \(i) changed without parametersDidChange(): the bf16 weights would be stale")
        }
    }

    /// The bf16 copy of the weight at `weight` (a pointer into `parameters`).
    private func weight16(_ weight: UnsafePointer<Float>) -> UnsafePointer<UInt16> {
        let offset = weight - UnsafePointer(parameters.baseAddress!)
        precondition(offset >= 0 && offset < parameters.count, "a bf16 product's weight must lie in the model's parameters")
        precondition(castGeneration == generation, "bf16 weights used before prepare()")
        return UnsafePointer(weights16!.baseAddress! + offset)
    }

    /// The backend of bf16 products; nil in fp32.
    private var bf16Backend: BF16Backend? {
        if case .bf16(let backend) = precision { return backend }
        return nil
    }

    /// Scratch buffer k (0 or 1) of at least `count` elements.
    private func scratch(_ k: Int, _ count: Int) -> UnsafeMutablePointer<UInt16> {
        if scratch[k].count < count {
            if scratch[k].baseAddress != nil { scratch[k].deallocate() }
            scratch[k] = .allocate(capacity: count)
        }
        return scratch[k].baseAddress!
    }

    /// out (N,Out) = inp (N,In) · weightᵀ (Out,In) + bias; see `Kernels.linearForward`.
    @inline(__always)
    func linearForward(out: UnsafeMutablePointer<Float>, inp: UnsafePointer<Float>, weight: UnsafePointer<Float>,
                       bias: UnsafePointer<Float>?, n: Int, inFeatures: Int, outFeatures: Int, threads: Int) {
        switch precision {
        case .fp32:
            Kernels.linearForward(out: out, inp: inp, weight: weight, bias: bias, n: n, inFeatures: inFeatures,
                                  outFeatures: outFeatures, threads: threads)
        case .bf16(let backend):
            Kernels.linearForwardBF16(out: out, inp: inp, weight16: weight16(weight), bias: bias, n: n, inFeatures: inFeatures,
                                      outFeatures: outFeatures, scratch: scratch(0, n * inFeatures), threads: threads, backend: backend)
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
        case .bf16(let backend):
            Kernels.linearBackwardBF16(dinp: dinp, dweight: dweight, dbias: dbias, dout: dout, inp: inp, weight16: weight16(weight),
                                       n: n, inFeatures: inFeatures, outFeatures: outFeatures,
                                       scratchOut: scratch(0, n * outFeatures), scratchIn: scratch(1, n * inFeatures),
                                       threads: threads, backend: backend)
        }
    }

    /// Self-attention over every row; see `Kernels.attentionForward`.
    @inline(__always)
    func attentionForward(out: UnsafeMutablePointer<Float>, probs: UnsafeMutablePointer<Float>, dropMask: UnsafeMutablePointer<UInt8>?,
                          qkv: UnsafePointer<Float>, keyMask: UnsafePointer<Int32>, b: Int, t: Int, nh: Int, hs: Int, p: Float,
                          seed: UInt64, scratch: UnsafeMutablePointer<Float>, threads: Int) {
        Kernels.attentionForward(out: out, probs: probs, dropMask: dropMask, qkv: qkv, keyMask: keyMask, b: b, t: t, nh: nh,
                                 hs: hs, p: p, seed: seed, scratch: scratch, threads: threads, bf16: bf16Backend)
    }

    /// The backward of `attentionForward`; see `Kernels.attentionBackward`.
    @inline(__always)
    func attentionBackward(dqkv: UnsafeMutablePointer<Float>, dout: UnsafePointer<Float>, qkv: UnsafePointer<Float>,
                           probs: UnsafePointer<Float>, dropMask: UnsafePointer<UInt8>?, b: Int, t: Int, nh: Int, hs: Int, p: Float,
                           scratch: UnsafeMutablePointer<Float>, threads: Int) {
        Kernels.attentionBackward(dqkv: dqkv, dout: dout, qkv: qkv, probs: probs, dropMask: dropMask, b: b, t: t, nh: nh,
                                  hs: hs, p: p, scratch: scratch, threads: threads, bf16: bf16Backend)
    }

    /// Self-attention at the kept query rows only; see `Kernels.attentionForwardRows`.
    @inline(__always)
    func attentionForwardRows(out: UnsafeMutablePointer<Float>, probs: UnsafeMutablePointer<Float>, dropMask: UnsafeMutablePointer<UInt8>?,
                              q: UnsafePointer<Float>, qkv: UnsafePointer<Float>, keyMask: UnsafePointer<Int32>,
                              rowStart: UnsafePointer<Int32>, positions: UnsafePointer<Int32>, b: Int, t: Int, nh: Int, hs: Int,
                              p: Float, seed: UInt64, scratch: UnsafeMutablePointer<Float>, threads: Int) {
        Kernels.attentionForwardRows(out: out, probs: probs, dropMask: dropMask, q: q, qkv: qkv, keyMask: keyMask,
                                     rowStart: rowStart, positions: positions, b: b, t: t, nh: nh, hs: hs, p: p, seed: seed,
                                     scratch: scratch, threads: threads, bf16: bf16Backend)
    }

    /// The backward of `attentionForwardRows`; see `Kernels.attentionBackwardRows`.
    @inline(__always)
    func attentionBackwardRows(dq: UnsafeMutablePointer<Float>, dqkv: UnsafeMutablePointer<Float>, dout: UnsafePointer<Float>,
                               q: UnsafePointer<Float>, qkv: UnsafePointer<Float>, probs: UnsafePointer<Float>,
                               dropMask: UnsafePointer<UInt8>?, rowStart: UnsafePointer<Int32>, b: Int, t: Int, nh: Int, hs: Int,
                               p: Float, scratch: UnsafeMutablePointer<Float>, threads: Int) {
        Kernels.attentionBackwardRows(dq: dq, dqkv: dqkv, dout: dout, q: q, qkv: qkv, probs: probs, dropMask: dropMask,
                                      rowStart: rowStart, b: b, t: t, nh: nh, hs: hs, p: p, scratch: scratch, threads: threads,
                                      bf16: bf16Backend)
    }
}
