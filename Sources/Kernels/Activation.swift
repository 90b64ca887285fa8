import Foundation

/// The element-wise nonlinearities of a BERT layer, by Hugging Face `hidden_act` name.
public enum Activation: String, Sendable, CaseIterable {
    /// "gelu": 0.5·x·(1 + erf(x/√2)), Hugging Face's and google-research/bert's default.
    case gelu
    /// "gelu_new" / "gelu_pytorch_tanh": 0.5·x·(1 + tanh(√(2/π)·(x + 0.044715·x³))).
    case geluTanh
    /// "relu": max(x, 0).
    case relu

    /// The activation for a config.json `hidden_act`, or nil when it is not one of these.
    public init?(huggingFaceName name: String) {
        switch name {
        case "gelu": self = .gelu
        case "gelu_new", "gelu_pytorch_tanh": self = .geluTanh
        case "relu": self = .relu
        default: return nil
        }
    }
}

@usableFromInline let invSqrt2: Float = 0.707_106_781_186_547_5
@usableFromInline let invSqrt2Pi: Float = 0.398_942_280_401_432_7
@usableFromInline let sqrt2OverPi: Float = 0.797_884_560_802_865_4

/// out = act(inp). Shapes: out, inp (count,). `out` may be `inp` (in place).
public func activationForward(_ kind: Activation, out: UnsafeMutablePointer<Float>, inp: UnsafePointer<Float>,
                              count: Int, threads: Int) {
    switch kind {
    case .gelu: elementwise(count, threads, out, inp) { x in
        x * F16(repeating: 0.5) * (F16(repeating: 1) + erf16(x * F16(repeating: invSqrt2)))
    }
    case .geluTanh: elementwise(count, threads, out, inp) { x in
        let th = tanh16(F16(repeating: sqrt2OverPi) * (x + F16(repeating: 0.044_715) * x * x * x))
        return x * F16(repeating: 0.5) * (F16(repeating: 1) + th)
    }
    case .relu: elementwise(count, threads, out, inp) { x in x.replacing(with: 0, where: x .< 0) }
    }
}

/// dinp += dout · act'(inp), where `inp` is the forward input (cached). Shapes: (count,) each.
/// Accumulates into `dinp`.
public func activationBackward(_ kind: Activation, dinp: UnsafeMutablePointer<Float>, dout: UnsafePointer<Float>,
                               inp: UnsafePointer<Float>, count: Int, threads: Int) {
    switch kind {
    case .gelu: elementwiseBackward(count, threads, dinp, dout, inp) { x in
        let cdf = F16(repeating: 0.5) * (F16(repeating: 1) + erf16(x * F16(repeating: invSqrt2)))
        let pdf = exp16(F16(repeating: -0.5) * x * x) * F16(repeating: invSqrt2Pi)
        return cdf + x * pdf
    }
    case .geluTanh: elementwiseBackward(count, threads, dinp, dout, inp) { x in
        let x2 = x * x
        let th = tanh16(F16(repeating: sqrt2OverPi) * (x + F16(repeating: 0.044_715) * x2 * x))
        let dz = F16(repeating: sqrt2OverPi) * (F16(repeating: 1) + F16(repeating: 3 * 0.044_715) * x2)
        return F16(repeating: 0.5) * (F16(repeating: 1) + th) + F16(repeating: 0.5) * x * (F16(repeating: 1) - th * th) * dz
    }
    case .relu: elementwiseBackward(count, threads, dinp, dout, inp) { x in
        F16(repeating: 0).replacing(with: 1, where: x .> 0)
    }
    }
}

/// out = tanh(inp) (the pooler's activation). Shapes: (count,). `out` may be `inp`.
public func tanhForward(out: UnsafeMutablePointer<Float>, inp: UnsafePointer<Float>, count: Int) {
    for i in 0..<count { out[i] = Foundation.tanh(inp[i]) }
}

/// dinp += dout · (1 − out²), from the forward OUTPUT `out`. Shapes: (count,). Accumulates into `dinp`.
public func tanhBackward(dinp: UnsafeMutablePointer<Float>, dout: UnsafePointer<Float>, out: UnsafePointer<Float>,
                         count: Int) {
    for i in 0..<count { dinp[i] += dout[i] * (1 - out[i] * out[i]) }
}

/// tanh on 16 lanes as 1 − 2/(e^{2z} + 1); absolute error about 1e-7.
@inline(__always) @usableFromInline
func tanh16(_ z: F16) -> F16 {
    F16(repeating: 1) - F16(repeating: 2) / (exp16(z + z) + F16(repeating: 1))
}

/// out[i] = f(inp[i]) over 16-lane blocks (the tail through a padded vector, same arithmetic).
@inline(__always) @usableFromInline
func elementwise(_ count: Int, _ threads: Int, _ out: UnsafeMutablePointer<Float>, _ inp: UnsafePointer<Float>,
                 _ f: (F16) -> F16) {
    Parallel.forRanges(count, threads: threads) { r in
        var i = r.lowerBound
        while i + 16 <= r.upperBound {
            store16(f(load16(inp + i)), out + i)
            i += 16
        }
        if i < r.upperBound {
            let n = r.upperBound - i
            storePartial(f(loadPartial(inp + i, n)), out + i, n)
        }
    }
}

/// dinp[i] += dout[i] · g(inp[i]) over 16-lane blocks.
@inline(__always) @usableFromInline
func elementwiseBackward(_ count: Int, _ threads: Int, _ dinp: UnsafeMutablePointer<Float>, _ dout: UnsafePointer<Float>,
                         _ inp: UnsafePointer<Float>, _ g: (F16) -> F16) {
    Parallel.forRanges(count, threads: threads) { r in
        var i = r.lowerBound
        while i + 16 <= r.upperBound {
            store16(load16(dinp + i) + load16(dout + i) * g(load16(inp + i)), dinp + i)
            i += 16
        }
        if i < r.upperBound {
            let n = r.upperBound - i
            let v = loadPartial(dinp + i, n) + loadPartial(dout + i, n) * g(loadPartial(inp + i, n))
            storePartial(v, dinp + i, n)
        }
    }
}

extension Naive {
    /// Reference for `activationForward`, computed through Double.
    public static func activationForward<T: BinaryFloatingPoint>(_ kind: Activation, inp: [T]) -> [T] {
        inp.map { v in
            let x = Double(v)
            switch kind {
            case .gelu: return T(0.5 * x * (1 + Foundation.erf(x / 2.0.squareRoot())))
            case .geluTanh: return T(0.5 * x * (1 + Foundation.tanh((2 / Double.pi).squareRoot() * (x + 0.044715 * x * x * x))))
            case .relu: return x > 0 ? v : 0
            }
        }
    }

    /// Reference for `activationBackward`: dinp += dout · act'(inp).
    public static func activationBackward<T: BinaryFloatingPoint>(_ kind: Activation, dinp: inout [T], dout: [T], inp: [T]) {
        for i in inp.indices {
            let x = Double(inp[i])
            let g: Double
            switch kind {
            case .gelu:
                g = 0.5 * (1 + Foundation.erf(x / 2.0.squareRoot())) + x * Foundation.exp(-0.5 * x * x) / (2 * Double.pi).squareRoot()
            case .geluTanh:
                let k = (2 / Double.pi).squareRoot()
                let th = Foundation.tanh(k * (x + 0.044715 * x * x * x))
                g = 0.5 * (1 + th) + 0.5 * x * (1 - th * th) * k * (1 + 3 * 0.044715 * x * x)
            case .relu: g = x > 0 ? 1 : 0
            }
            dinp[i] += dout[i] * T(g)
        }
    }

    /// Reference for `tanhForward`.
    public static func tanhForward<T: BinaryFloatingPoint>(inp: [T]) -> [T] {
        inp.map { T(Foundation.tanh(Double($0))) }
    }

    /// Reference for `tanhBackward`: dinp += dout · (1 − out²).
    public static func tanhBackward<T: BinaryFloatingPoint>(dinp: inout [T], dout: [T], out: [T]) {
        for i in out.indices { dinp[i] += dout[i] * (1 - out[i] * out[i]) }
    }
}
