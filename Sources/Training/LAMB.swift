import Foundation
import Kernels
import Support

/// An optimizer over one flat parameter buffer that keeps Adam's two moments: what checkpoints save
/// (optimizer.safetensors: exp_avg, exp_avg_sq, step) and what `applyUpdate` steps.
public protocol MomentOptimizer: AnyObject {
    /// First moments. // (count,)
    var m: UnsafeMutableBufferPointer<Float> { get }
    /// Second moments. // (count,)
    var v: UnsafeMutableBufferPointer<Float> { get }
    /// Updates applied so far (t in the bias correction).
    var steps: Int { get set }
    /// One update of `parameters` (count,) from `gradients` (count,) with learning rate `lr`.
    func step(parameters: UnsafeMutablePointer<Float>, gradients: UnsafePointer<Float>, lr: Double)
}

extension AdamW: MomentOptimizer {}

/// Which optimizer a run uses.
public enum OptimizerKind: String, Codable, Sendable, CaseIterable {
    /// `AdamW` (google-research/bert's AdamWeightDecayOptimizer).
    case adamw
    /// `LAMB` (You et al. 2019, as NVIDIA's BERT runs it), for large global batches.
    case lamb
}

/// LAMB (You et al. 2019, "Large Batch Optimization for Deep Learning: Training BERT in 76 minutes"),
/// as NVIDIA's BERT pre-training runs it (apex's FusedLAMB, `use_nvlamb=False`, the optimizer of
/// NVIDIA/DeepLearningExamples' run_pretraining.py), over one flat buffer of named tensors:
///
///     m ← β1·m + (1 − β1)·g,   v ← β2·v + (1 − β2)·g²
///     u ← m̂ / (√v̂ + ε) + λ·p          m̂ = m/(1 − β1ᵗ), v̂ = v/(1 − β2ᵗ) (with `biasCorrection`, the default here)
///     p ← p − lr·r·u,   r = ‖p‖ / ‖u‖ over the tensor (1 when either norm is 0)
///
/// for the tensors with weight decay; the others (biases, LayerNorm: NVIDIA's no-decay group, λ = 0)
/// take r = 1, an Adam step. Gradient clipping to the global norm happens before (`applyUpdate`), as
/// FusedLAMB's `max_grad_norm`. The norms are summed in Double over fixed blocks in a fixed order, so
/// the result does not depend on the thread count.
public final class LAMB: MomentOptimizer {
    /// One tensor of the buffer: its range, and whether it gets weight decay and the trust ratio.
    public struct Tensor: Sendable {
        public var range: Range<Int>
        public var decay: Bool
        public init(range: Range<Int>, decay: Bool) {
            self.range = range
            self.decay = decay
        }
    }

    /// β1, β2, ε, λ and the bias correction (AdamW's hyper-parameters).
    public let hyper: AdamW.Hyper
    /// The tensors, in buffer order.
    public let tensors: [Tensor]
    public let count: Int
    let moments: AdamMoments
    public var m: UnsafeMutableBufferPointer<Float> { moments.m }
    public var v: UnsafeMutableBufferPointer<Float> { moments.v }
    public var steps = 0
    /// Threads for the update loops.
    public let threads: Int
    /// The last update's trust ratio of each tensor (1 for the no-decay ones), for logs and tests.
    public private(set) var lastTrustRatios: [Double] = []

    /// An optimizer with zero moments over `tensors` (disjoint ranges of a buffer of `count`).
    public init(count: Int, tensors: [Tensor], hyper: AdamW.Hyper = AdamW.Hyper(biasCorrection: true), threads: Int = 1) {
        self.count = count
        self.tensors = tensors
        self.hyper = hyper
        self.threads = max(1, threads)
        moments = AdamMoments(count: count)
    }

    public func step(parameters: UnsafeMutablePointer<Float>, gradients: UnsafePointer<Float>, lr: Double) {
        steps += 1
        // 1 − β in Double, then rounded: Float(1) − Float(0.999) is 4.7e-5 off in relative terms.
        let b1 = Float(hyper.beta1), b2 = Float(hyper.beta2), eps = Float(hyper.epsilon), wd = Float(hyper.weightDecay)
        let a1 = Float(1 - hyper.beta1), a2 = Float(1 - hyper.beta2)
        let c1: Float = hyper.biasCorrection ? Float(1 / (1 - pow(hyper.beta1, Double(steps)))) : 1
        let c2: Float = hyper.biasCorrection ? Float(1 / (1 - pow(hyper.beta2, Double(steps)))) : 1
        // Blocks of at most 64k parameters, each inside one tensor; the norms are summed per block.
        var blocks: [(range: Range<Int>, tensor: Int)] = []
        for (t, tensor) in tensors.enumerated() {
            var s = tensor.range.lowerBound
            while s < tensor.range.upperBound {
                let e = min(tensor.range.upperBound, s + 65536)
                blocks.append((s..<e, t))
                s = e
            }
        }
        let sums = UnsafeMutableBufferPointer<(p: Double, u: Double)>.allocate(capacity: blocks.count)
        sums.initialize(repeating: (0, 0))
        defer { sums.deallocate() }
        let tensors = self.tensors
        let shared = UncheckedSendable((parameters, gradients, m.baseAddress!, v.baseAddress!, sums))
        // Pass 1: the moments, and ‖p‖², ‖u‖² of each block.
        Parallel.forEach(blocks.count, threads: threads) { i in
            let (p, g, m, v, sums) = shared.value
            let (range, t) = blocks[i]
            let lambda: Float = tensors[t].decay ? wd : 0
            var pp: Float = 0, uu: Float = 0
            for j in range {
                let gj = g[j]
                let mj = b1 * m[j] + a1 * gj
                let vj = b2 * v[j] + a2 * gj * gj
                m[j] = mj
                v[j] = vj
                let u = (mj * c1) / ((vj * c2).squareRoot() + eps) + lambda * p[j]
                pp += p[j] * p[j]
                uu += u * u
            }
            sums[i] = (Double(pp), Double(uu))
        }
        // The trust ratio of each tensor, from its blocks' sums in order.
        var norms = [(p: Double, u: Double)](repeating: (0, 0), count: tensors.count)
        for (i, b) in blocks.enumerated() {
            norms[b.tensor].p += sums[i].p
            norms[b.tensor].u += sums[i].u
        }
        let ratios = tensors.indices.map { t -> Double in
            let (p, u) = (norms[t].p.squareRoot(), norms[t].u.squareRoot())
            return tensors[t].decay && p > 0 && u > 0 ? p / u : 1
        }
        lastTrustRatios = ratios
        // Pass 2: the update, recomputed from the moments (cheaper than storing it).
        Parallel.forEach(blocks.count, threads: threads) { i in
            let (p, _, m, v, _) = shared.value
            let (range, t) = blocks[i]
            let lambda: Float = tensors[t].decay ? wd : 0
            let rate = Float(lr * ratios[t])
            for j in range {
                let u = (m[j] * c1) / ((v[j] * c2).squareRoot() + eps) + lambda * p[j]
                p[j] -= rate * u
            }
        }
    }
}
