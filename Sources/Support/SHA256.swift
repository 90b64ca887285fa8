import CSHA256
import Foundation

/// SHA-256 (FIPS 180-4), streaming: `update` any number of times, then `finalize` once.
///
/// Used for the vocabulary fingerprint and the shard checksums in `index.json`; the output is the
/// standard digest (`sha256sum` prints the same hex). Blocks are compressed with the CPU's SHA
/// extensions when it has them (about 6× faster; a shim in CSHA256), else by the portable code here.
public struct SHA256: Sendable {
    /// Whether this CPU has the SHA extensions (decided once).
    public static let hardwareAvailable = bertkit_sha256_hardware_available() != 0

    /// (64,) round constants: the first 32 bits of the fractional parts of the cube roots of the
    /// first 64 primes (FIPS 180-4 §4.2.2); one table, in the CSHA256 shim, for both paths.
    nonisolated(unsafe) static let k = UnsafeBufferPointer(start: bertkit_sha256_round_constants(), count: 64)

    /// (8,) chaining value; starts at the initial hash value of FIPS 180-4 §5.3.3.
    var state: [UInt32] = [
        0x6a09_e667, 0xbb67_ae85, 0x3c6e_f372, 0xa54f_f53a, 0x510e_527f, 0x9b05_688c, 0x1f83_d9ab, 0x5be0_cd19,
    ]
    /// (64,) bytes of the current partial block; the first `pending` are valid.
    var block = [UInt8](repeating: 0, count: 64)
    var pending = 0
    /// Message length so far, in bytes.
    var length: UInt64 = 0
    /// Compress with the SHA extensions.
    let hardware: Bool

    /// A fresh hash.
    public init() { hardware = Self.hardwareAvailable }

    /// A fresh hash that uses the SHA extensions only if `hardware` is true and the CPU has them
    /// (false: the portable code, for comparisons).
    public init(hardware: Bool) { self.hardware = hardware && Self.hardwareAvailable }

    /// Whether this hash uses the SHA extensions.
    public var usesHardware: Bool { hardware }

    /// Adds bytes to the message.
    public mutating func update(_ bytes: UnsafeRawBufferPointer) {
        guard var p = bytes.baseAddress, bytes.count > 0 else { return }
        var n = bytes.count
        length &+= UInt64(n)
        if pending > 0 {
            let take = min(64 - pending, n)
            block.withUnsafeMutableBytes { $0.baseAddress!.advanced(by: pending).copyMemory(from: p, byteCount: take) }
            pending += take
            p += take
            n -= take
            if pending < 64 { return }
            block.withUnsafeBytes { compressBlocks($0.baseAddress!, 1) }
            pending = 0
        }
        if n >= 64 {
            compressBlocks(p, n / 64)
            p += n / 64 * 64
            n %= 64
        }
        if n > 0 {
            block.withUnsafeMutableBytes { $0.baseAddress!.copyMemory(from: p, byteCount: n) }
            pending = n
        }
    }

    /// Adds bytes to the message.
    public mutating func update(_ bytes: [UInt8]) {
        bytes.withUnsafeBytes { update($0) }
    }

    /// Adds bytes to the message.
    public mutating func update(_ bytes: ArraySlice<UInt8>) {
        bytes.withUnsafeBytes { update($0) }
    }

    /// Pads the message and returns the 32-byte digest. The hash must not be updated afterwards.
    public mutating func finalize() -> [UInt8] {
        let bitLength = length &* 8
        var padding: [UInt8] = [0x80]
        let afterOne = (pending + 1) % 64
        padding += [UInt8](repeating: 0, count: afterOne <= 56 ? 56 - afterOne : 120 - afterOne)
        for i in (0..<8).reversed() { padding.append(UInt8(truncatingIfNeeded: bitLength >> (8 * UInt64(i)))) }
        let saved = length
        update(padding)
        length = saved
        var digest: [UInt8] = []
        digest.reserveCapacity(32)
        for word in state {
            digest += [UInt8(word >> 24), UInt8(truncatingIfNeeded: word >> 16), UInt8(truncatingIfNeeded: word >> 8), UInt8(truncatingIfNeeded: word)]
        }
        return digest
    }

    /// The digest of `bytes`.
    public static func hash(_ bytes: [UInt8]) -> [UInt8] {
        var h = SHA256()
        h.update(bytes)
        return h.finalize()
    }

    /// The digest of a file's bytes, read in 1 MiB pieces.
    public static func hash(file path: String) throws(InputError) -> [UInt8] {
        let source = try FileDescriptorSource(path: path)
        var h = SHA256()
        var buffer = [UInt8](repeating: 0, count: 1 << 20)
        while true {
            let n = try readAppending(source, into: &buffer, at: 0)
            if n == 0 { return h.finalize() }
            h.update(buffer[0..<n])
        }
    }

    /// Lowercase hex, as `sha256sum` prints it.
    public static func hex(_ digest: [UInt8]) -> String {
        let digits = Array("0123456789abcdef".utf8)
        var out: [UInt8] = []
        out.reserveCapacity(digest.count * 2)
        for b in digest {
            out.append(digits[Int(b >> 4)])
            out.append(digits[Int(b & 0xF)])
        }
        return String(decoding: out, as: UTF8.self)
    }

    /// `count` 64-byte blocks into the chaining value.
    mutating func compressBlocks(_ blocks: UnsafeRawPointer, _ count: Int) {
        if hardware {
            state.withUnsafeMutableBufferPointer { bertkit_sha256_blocks($0.baseAddress!, blocks.assumingMemoryBound(to: UInt8.self), count) }
        } else {
            for i in 0..<count { Self.compress(&state, blocks + 64 * i) }
        }
    }

    /// One 64-byte block into the chaining value (FIPS 180-4 §6.2.2).
    static func compress(_ h: inout [UInt32], _ block: UnsafeRawPointer) {
        withUnsafeTemporaryAllocation(of: UInt32.self, capacity: 64) { w in  // (64,) message schedule
            for t in 0..<16 {
                let b = block + 4 * t
                w[t] = UInt32(b.load(fromByteOffset: 0, as: UInt8.self)) << 24
                    | UInt32(b.load(fromByteOffset: 1, as: UInt8.self)) << 16
                    | UInt32(b.load(fromByteOffset: 2, as: UInt8.self)) << 8
                    | UInt32(b.load(fromByteOffset: 3, as: UInt8.self))
            }
            for t in 16..<64 {
                let x = w[t - 15], y = w[t - 2]
                let s0 = x.rotatedRight(7) ^ x.rotatedRight(18) ^ (x >> 3)
                let s1 = y.rotatedRight(17) ^ y.rotatedRight(19) ^ (y >> 10)
                w[t] = w[t - 16] &+ s0 &+ w[t - 7] &+ s1
            }
            var a = h[0], b = h[1], c = h[2], d = h[3], e = h[4], f = h[5], g = h[6], hh = h[7]
            for t in 0..<64 {
                let s1 = e.rotatedRight(6) ^ e.rotatedRight(11) ^ e.rotatedRight(25)
                let ch = (e & f) ^ (~e & g)
                let t1 = hh &+ s1 &+ ch &+ k[t] &+ w[t]
                let s0 = a.rotatedRight(2) ^ a.rotatedRight(13) ^ a.rotatedRight(22)
                let maj = (a & b) ^ (a & c) ^ (b & c)
                let t2 = s0 &+ maj
                hh = g; g = f; f = e; e = d &+ t1
                d = c; c = b; b = a; a = t1 &+ t2
            }
            h[0] &+= a; h[1] &+= b; h[2] &+= c; h[3] &+= d
            h[4] &+= e; h[5] &+= f; h[6] &+= g; h[7] &+= hh
        }
    }
}

extension UInt32 {
    @inline(__always) fileprivate func rotatedRight(_ n: UInt32) -> UInt32 { (self >> n) | (self << (32 - n)) }
}
