import COpenSSL
import Foundation

/// SHA-256 (FIPS 180-4), streaming: `update` any number of times, then `finalize` once.
///
/// Used for the vocabulary fingerprint and the shard checksums in `index.json`; the output is the
/// standard digest (`sha256sum` prints the same hex). The hashing is OpenSSL's libcrypto (EVP), which
/// uses the CPU's SHA extensions where it has them: measured 1.0–1.2 GB/s against 0.7–0.8 GB/s for the
/// SHA-extension code BertKit carried before (docs/results).
public struct SHA256: @unchecked Sendable {
    /// The digest context, copied on write so that a copy of a hash goes on independently.
    final class Context {
        let ctx: OpaquePointer

        init() {
            guard let c = EVP_MD_CTX_new(), EVP_DigestInit_ex(c, EVP_sha256(), nil) == 1 else {
                fatalError("OpenSSL: cannot start a SHA-256 digest")
            }
            ctx = c
        }

        init(copying other: Context) {
            guard let c = EVP_MD_CTX_new(), EVP_MD_CTX_copy_ex(c, other.ctx) == 1 else { fatalError("OpenSSL: cannot copy a digest") }
            ctx = c
        }

        deinit { EVP_MD_CTX_free(ctx) }
    }

    var context = Context()
    var finished = false

    /// A fresh hash.
    public init() {}

    /// Adds bytes to the message.
    public mutating func update(_ bytes: UnsafeRawBufferPointer) {
        precondition(!finished, "SHA256.update after finalize")
        guard bytes.count > 0 else { return }
        if !isKnownUniquelyReferenced(&context) { context = Context(copying: context) }
        guard EVP_DigestUpdate(context.ctx, bytes.baseAddress, bytes.count) == 1 else { fatalError("OpenSSL: SHA-256 update failed") }
    }

    /// Adds bytes to the message.
    public mutating func update(_ bytes: [UInt8]) {
        bytes.withUnsafeBytes { update($0) }
    }

    /// Adds bytes to the message.
    public mutating func update(_ bytes: ArraySlice<UInt8>) {
        bytes.withUnsafeBytes { update($0) }
    }

    /// The 32-byte digest; the hash takes no more bytes afterwards.
    public mutating func finalize() -> [UInt8] {
        precondition(!finished, "SHA256.finalize called twice")
        if !isKnownUniquelyReferenced(&context) { context = Context(copying: context) }
        finished = true
        var digest = [UInt8](repeating: 0, count: 32)
        var length: UInt32 = 0
        guard EVP_DigestFinal_ex(context.ctx, &digest, &length) == 1, length == 32 else { fatalError("OpenSSL: SHA-256 final failed") }
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
}
