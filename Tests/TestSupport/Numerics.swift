import Foundation

/// Helpers for numerical tests: seeded random tensors, finite differences, tolerance comparisons.
public enum Numerics {
    /// `count` values uniform in [-scale, scale) from `rng`.
    public static func uniform(_ count: Int, scale: Double = 1, _ rng: inout SeededRandom) -> [Double] {
        (0..<count).map { _ in Double.random(in: -scale..<scale, using: &rng) }
    }

    /// Central finite differences of `loss` with respect to every entry of `x` (restored afterwards).
    public static func gradient(of loss: ([Double]) -> Double, at x: inout [Double], h: Double = 1e-5) -> [Double] {
        var g = [Double](repeating: 0, count: x.count)
        for i in x.indices {
            let saved = x[i]
            x[i] = saved + h
            let lp = loss(x)
            x[i] = saved - h
            let lm = loss(x)
            x[i] = saved
            g[i] = (lp - lm) / (2 * h)
        }
        return g
    }

    /// f′(0) by the fourth-order central difference (−f(2ε) + 8f(ε) − 8f(−ε) + f(−2ε))/(12ε): truncation
    /// error O(ε⁴), so a large ε can keep the rounding noise of a Float `f` small.
    public static func derivative(step eps: Float, _ f: (Float) throws -> Double) rethrows -> Double {
        (-(try f(2 * eps)) + 8 * (try f(eps)) - 8 * (try f(-eps)) + (try f(-2 * eps))) / (12 * Double(eps))
    }

    /// The largest |a − b| / (1 + |b|) over the entries (a mixed absolute/relative error).
    public static func maxError<A: BinaryFloatingPoint, B: BinaryFloatingPoint>(_ a: [A], _ b: [B]) -> Double {
        precondition(a.count == b.count, "maxError: \(a.count) vs \(b.count) entries")
        var e = 0.0
        for i in a.indices {
            let d = abs(Double(a[i]) - Double(b[i])) / (1 + abs(Double(b[i])))
            if !(d <= e) { e = d.isNaN ? .infinity : d }
        }
        return e
    }

    /// Σ r_i·y_i in Double: the scalar whose gradient with respect to y is r.
    public static func dot<A: BinaryFloatingPoint>(_ r: [Double], _ y: [A]) -> Double {
        var s = 0.0
        for i in r.indices { s += r[i] * Double(y[i]) }
        return s
    }

    /// Whether two Float arrays are equal bit for bit.
    public static func bitIdentical(_ a: [Float], _ b: [Float]) -> Bool {
        a.count == b.count && zip(a, b).allSatisfy { $0.bitPattern == $1.bitPattern }
    }

    /// max |ours − reference| / max(max |reference|, floor): the error relative to the tensor's scale, as
    /// the parity tests against transformers state it.
    public static func relativeError(_ ours: [Float], _ reference: [Double], floor: Double = 1e-3) -> Double {
        precondition(ours.count == reference.count)
        let scale = max(floor, reference.map(abs).max() ?? 0)
        var worst = 0.0
        for (a, b) in zip(ours, reference) { worst = max(worst, abs(Double(a) - b)) }
        return worst / scale
    }
}

extension Array where Element == Double {
    /// The same values rounded to Float.
    public var float: [Float] { map { Float($0) } }
}

extension Array where Element == Float {
    /// The same values widened to Double.
    public var double: [Double] { map { Double($0) } }
}
