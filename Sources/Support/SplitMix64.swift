/// SplitMix64 (Steele, Lea, Flood 2014): a small seeded generator whose sequence is fixed by this
/// code, not by the standard library, so seeded shuffles give the same bytes on every Swift version.
/// The one definition of SplitMix64 in the package: `SeededGenerator` is seeded through it, and the
/// counter-based `randomBits` (dropout, initialisation) is its output function at a given position.
public struct SplitMix64: RandomNumberGenerator, Sendable {
    /// The golden-ratio increment γ of the state.
    @inlinable public static var gamma: UInt64 { 0x9E37_79B9_7F4A_7C15 }

    public var state: UInt64

    @inlinable public init(seed: UInt64) { state = seed }

    @inlinable public mutating func next() -> UInt64 {
        state &+= Self.gamma
        return Self.mix(state)
    }

    /// The SplitMix64 output function: a bijective 64-bit mix.
    @inline(__always) @inlinable
    public static func mix(_ x: UInt64) -> UInt64 {
        var z = x
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }

    /// A number in 0..<bound (bound > 0) by multiply-high; fixed here rather than
    /// `Int.random(in:using:)`, whose algorithm the standard library may change.
    @inlinable public mutating func next(below bound: Int) -> Int {
        Int(truncatingIfNeeded: next().multipliedFullWidth(by: UInt64(bound)).high)
    }

    /// Fisher–Yates shuffle from the back with `next(below:)`.
    @inlinable public mutating func shuffle<T>(_ a: inout [T]) {
        var i = a.count - 1
        while i > 0 {
            a.swapAt(i, next(below: i + 1))
            i -= 1
        }
    }
}

/// Counter-based random bits: SplitMix64's output at position `counter` of the stream that starts at
/// `seed` (state = seed + (counter + 1)·γ). Any element's draw is a pure function of (seed, index), so
/// dropout masks and initial weights do not depend on how the work is split over threads.
@inline(__always) @inlinable
public func randomBits(seed: UInt64, counter: UInt64) -> UInt64 {
    SplitMix64.mix(seed &+ (counter &+ 1) &* SplitMix64.gamma)
}

/// A seed for sub-stream `stream` of `seed` (one per dropout site and step, one per weight tensor).
@inlinable
public func deriveSeed(_ seed: UInt64, _ stream: UInt64) -> UInt64 {
    randomBits(seed: randomBits(seed: seed, counter: stream), counter: 0x5EED)
}
