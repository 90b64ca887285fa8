/// A seeded pseudo-random generator (xoshiro256**, seeded through SplitMix64). Every random choice in
/// data generation goes through one of these, passed in explicitly, so the same seed gives the same
/// bytes. `derived(_:)` makes independent streams for (seed, pass, document, …) so work can be split
/// across threads without changing the result.
public struct SeededGenerator: RandomNumberGenerator, Sendable, Equatable, Codable {
    var s0, s1, s2, s3: UInt64

    /// A generator from a seed.
    public init(seed: UInt64) {
        var sm = SplitMix64(seed: seed)
        s0 = sm.next(); s1 = sm.next(); s2 = sm.next(); s3 = sm.next()
    }

    /// A generator for a seed and a path of stream ids, e.g. (seed, dupe pass, document).
    public init(seed: UInt64, stream: [UInt64]) {
        var h = seed ^ 0x6A09_E667_F3BC_C908
        for s in stream { h = Self.mix(h ^ Self.mix(s &+ SplitMix64.gamma)) }
        self.init(seed: h)
    }

    @inline(__always) static func mix(_ x: UInt64) -> UInt64 {
        var z = x
        z = (z ^ (z >> 33)) &* 0xFF51_AFD7_ED55_8CCD
        z = (z ^ (z >> 33)) &* 0xC4CE_B9FE_1A85_EC53
        return z ^ (z >> 33)
    }

    @inline(__always) static func rotl(_ x: UInt64, _ k: UInt64) -> UInt64 { (x << k) | (x >> (64 - k)) }

    public mutating func next() -> UInt64 {
        let result = Self.rotl(s1 &* 5, 7) &* 9
        let t = s1 << 17
        s2 ^= s0; s3 ^= s1; s1 ^= s2; s0 ^= s3; s2 ^= t
        s3 = Self.rotl(s3, 45)
        return result
    }

    /// Uniform in [0, 1) with 53 bits.
    @inline(__always) public mutating func nextDouble() -> Double {
        Double(next() >> 11) * (1.0 / 9_007_199_254_740_992.0)
    }

    /// Uniform integer in a closed range (Python's `randint`). The algorithm is fixed here, not
    /// borrowed from `Int.random(in:using:)` (whose algorithm the standard library does not promise):
    /// Lemire's nearly divisionless method (arXiv:1805.10941), one `next()` unless rejected, as the
    /// Swift 6 standard library does it today, so seeded output is what it always was.
    @inline(__always) public mutating func int(in range: ClosedRange<Int>) -> Int {
        let delta = UInt64(bitPattern: Int64(range.upperBound &- range.lowerBound))
        if delta == .max { return Int(truncatingIfNeeded: next()) }
        return range.lowerBound &+ Int(truncatingIfNeeded: below(delta + 1))
    }

    /// Uniform in 0..<bound (bound > 0) by Lemire's method: the high word of a 64×64-bit product,
    /// redrawn while the low word falls in the biased sliver below (2⁶⁴ mod bound).
    @inline(__always) public mutating func below(_ bound: UInt64) -> UInt64 {
        precondition(bound > 0, "below(0)")
        var m = next().multipliedFullWidth(by: bound)
        if m.low < bound {
            let threshold = (0 &- bound) % bound
            while m.low < threshold { m = next().multipliedFullWidth(by: bound) }
        }
        return m.high
    }

    /// Fisher–Yates from the front: position i swaps with i + below(count − i). Fixed here for the same
    /// reason as `int(in:)`; the same draws as `MutableCollection.shuffle(using:)` in Swift 6.
    public mutating func shuffle<T>(_ a: inout [T]) {
        guard a.count > 1 else { return }
        var remaining = a.count, i = 0
        while remaining > 1 {
            let j = i + Int(truncatingIfNeeded: below(UInt64(remaining)))
            remaining -= 1
            a.swapAt(i, j)
            i += 1
        }
    }
}
