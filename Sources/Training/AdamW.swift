import Support
import Foundation
import Kernels

/// AdamW as google-research/bert's `AdamWeightDecayOptimizer` (optimization.py), over one flat
/// parameter buffer:
///
///     m ← β1·m + (1 − β1)·g
///     v ← β2·v + (1 − β2)·g²
///     u ← m / (√v + ε)                      (with `biasCorrection`: m/(1 − β1ᵗ) and v/(1 − β2ᵗ) first)
///     u ← u + λ·p                           where weight decay applies (not biases, not LayerNorm)
///     p ← p − lr·u
///
/// Defaults are BERT's: β 0.9/0.999, ε 1e-6, λ 0.01, no bias correction. The decay is decoupled
/// (added to the update, not to the gradient), as in BERT and Loshchilov & Hutter.
public final class AdamW {
    /// Hyper-parameters.
    public struct Hyper: Codable, Equatable, Sendable {
        public var beta1: Double = 0.9
        public var beta2: Double = 0.999
        public var epsilon: Double = 1e-6
        public var weightDecay: Double = 0.01
        /// Adam's bias correction (off in google-research/bert, on in torch.optim.AdamW).
        public var biasCorrection = false

        /// BERT's defaults.
        public init(beta1: Double = 0.9, beta2: Double = 0.999, epsilon: Double = 1e-6, weightDecay: Double = 0.01,
                    biasCorrection: Bool = false) {
            self.beta1 = beta1
            self.beta2 = beta2
            self.epsilon = epsilon
            self.weightDecay = weightDecay
            self.biasCorrection = biasCorrection
        }

        enum CodingKeys: String, CodingKey {
            case beta1 = "beta1", beta2 = "beta2", epsilon, weightDecay = "weight_decay", biasCorrection = "bias_correction"
        }
    }

    /// Hyper-parameters in use.
    public let hyper: Hyper
    /// Number of parameters.
    public let count: Int
    /// Ranges of the flat buffer that get weight decay.
    public let decayRanges: [Range<Int>]
    let moments: AdamMoments
    /// First moments. // (count,)
    public var m: UnsafeMutableBufferPointer<Float> { moments.m }
    /// Second moments. // (count,)
    public var v: UnsafeMutableBufferPointer<Float> { moments.v }
    /// Updates applied so far (t in the bias correction).
    public var steps = 0
    /// Threads for the update loop.
    public let threads: Int

    /// An optimizer with zero moments for `count` parameters; `decayRanges` are the parts that get
    /// weight decay (sorted, disjoint).
    public init(count: Int, decayRanges: [Range<Int>], hyper: Hyper = Hyper(), threads: Int = 1) {
        self.count = count
        self.decayRanges = decayRanges
        self.hyper = hyper
        self.threads = max(1, threads)
        moments = AdamMoments(count: count)
    }

    /// One update of `parameters` (count,) from `gradients` (count,) with learning rate `lr`.
    public func step(parameters: UnsafeMutablePointer<Float>, gradients: UnsafePointer<Float>, lr: Double) {
        steps += 1
        let b1 = Float(hyper.beta1), b2 = Float(hyper.beta2), eps = Float(hyper.epsilon)
        let c1: Float = hyper.biasCorrection ? Float(1 / (1 - pow(hyper.beta1, Double(steps)))) : 1
        let c2: Float = hyper.biasCorrection ? Float(1 / (1 - pow(hyper.beta2, Double(steps)))) : 1
        let lrF = Float(lr), wd = Float(hyper.weightDecay)
        // Work items: each decay or no-decay range cut into blocks of at most 64k parameters.
        var items: [(Range<Int>, Bool)] = []
        var at = 0
        for r in decayRanges + [count..<count] {
            if at < r.lowerBound { items.append((at..<r.lowerBound, false)) }
            if !r.isEmpty { items.append((r, true)) }
            at = r.upperBound
        }
        var blocks: [(Range<Int>, Bool)] = []
        for (r, d) in items {
            var s = r.lowerBound
            while s < r.upperBound {
                let e = min(r.upperBound, s + 65536)
                blocks.append((s..<e, d))
                s = e
            }
        }
        let m = self.m.baseAddress!, v = self.v.baseAddress!
        let shared = UncheckedSendable((parameters, gradients, m, v))
        Parallel.forEach(blocks.count, threads: threads) { i in
            let (p, g, m, v) = shared.value
            let (range, decay) = blocks[i]
            let lambda: Float = decay ? wd : 0
            for j in range {
                let gj = g[j]
                let mj = b1 * m[j] + (1 - b1) * gj
                let vj = b2 * v[j] + (1 - b2) * gj * gj
                m[j] = mj
                v[j] = vj
                let update = (mj * c1) / ((vj * c2).squareRoot() + eps) + lambda * p[j]
                p[j] -= lrF * update
            }
        }
    }
}

/// Adam's two moment buffers, zero at first, owned for the optimizer's lifetime (AdamW's and LAMB's).
final class AdamMoments {
    /// First moments. // (count,)
    let m: UnsafeMutableBufferPointer<Float>
    /// Second moments. // (count,)
    let v: UnsafeMutableBufferPointer<Float>

    init(count: Int) {
        m = .allocate(capacity: count)
        m.initialize(repeating: 0)
        v = .allocate(capacity: count)
        v.initialize(repeating: 0)
    }

    deinit {
        m.deallocate()
        v.deallocate()
    }
}

/// Linear warm-up from 0 to `base` over `warmupSteps`, then linear decay to 0 at `totalSteps`
/// (Hugging Face's get_linear_schedule_with_warmup; google-research/bert's polynomial decay with
/// power 1 and warm-up). Step k is the index of the update, from 0.
public struct LinearSchedule: Codable, Equatable, Sendable {
    public var base: Double
    public var warmupSteps: Int
    public var totalSteps: Int

    /// A schedule.
    public init(base: Double, warmupSteps: Int, totalSteps: Int) {
        self.base = base
        self.warmupSteps = warmupSteps
        self.totalSteps = totalSteps
    }

    /// The learning rate of update k.
    public func rate(at k: Int) -> Double {
        if k < warmupSteps { return base * Double(k) / Double(max(1, warmupSteps)) }
        return base * max(0, Double(totalSteps - k) / Double(max(1, totalSteps - warmupSteps)))
    }

    enum CodingKeys: String, CodingKey {
        case base = "base_learning_rate", warmupSteps = "warmup_steps", totalSteps = "total_steps"
    }
}

/// Global-norm clipping (tf.clip_by_global_norm): scales `gradients` (count,) by
/// maxNorm / max(‖g‖₂, maxNorm); returns the norm before clipping (summed in Double).
@discardableResult
public func clipGlobalNorm(_ gradients: UnsafeMutablePointer<Float>, count: Int, maxNorm: Double) -> Double {
    var sum = 0.0
    var i = 0
    while i < count {  // blocks of Float sums, added in Double: accurate and vectorisable
        let e = min(count, i + 4096)
        var s: Float = 0
        for j in i..<e { s += gradients[j] * gradients[j] }
        sum += Double(s)
        i = e
    }
    let norm = sum.squareRoot()
    if norm > maxNorm {
        let scale = Float(maxNorm / norm)
        for j in 0..<count { gradients[j] *= scale }
    }
    return norm
}
