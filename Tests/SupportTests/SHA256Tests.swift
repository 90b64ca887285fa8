import Foundation
import TestSupport
import XCTest

@testable import Support

final class SHA256Tests: XCTestCase {
    func hex(_ bytes: [UInt8]) -> String { SHA256.hex(SHA256.hash(bytes)) }

    /// FIPS 180-2 appendix B / NIST CSRC example vectors.
    func testNISTVectors() {
        XCTAssertEqual(hex([]), "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855")
        XCTAssertEqual(hex(Array("abc".utf8)), "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad")
        XCTAssertEqual(hex(Array("abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq".utf8)),
                       "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1")
        var h = SHA256()
        let thousand = [UInt8](repeating: UInt8(ascii: "a"), count: 1000)
        for _ in 0..<1000 { h.update(thousand) }
        XCTAssertEqual(SHA256.hex(h.finalize()), "cdc76e5c9914fb9281a1c7e284d73e67f1809a48a497200e046d39ccc7112cd0")
    }

    /// Lengths around the padding boundaries (values from Python's hashlib), whole and in pieces.
    func testPaddingBoundariesAndPieces() {
        let expected = [
            55: "9f4390f8d30c2dd92ec9f095b65e2b9ae9b0a925a5258e241c9f1e910f734318",
            56: "b35439a4ac6f0948b6d6f9e3c6af0f5f590ce20f1bde7090ef7970686ec6738a",
            63: "7d3e74a05d7db15bce4ad9ec0658ea98e3f06eeecf16b4c6fff2da457ddc2f34",
            64: "ffe054fe7ae0cb6dc65c3af9b61d5209f439851db43d0ba5997337df154668eb",
            119: "31eba51c313a5c08226adf18d4a359cfdfd8d2e816b13f4af952f7ea6584dcfb",
            120: "2f3d335432c70b580af0e8e1b3674a7c020d683aa5f73aaaedfdc55af904c21c",
        ]
        for (n, digest) in expected {
            let a = [UInt8](repeating: UInt8(ascii: "a"), count: n)
            XCTAssertEqual(hex(a), digest, "\(n)")
            for cut in [1, 7, 63, 64, 65] where cut < n {
                var h = SHA256()
                h.update(a[0..<cut])
                h.update(a[cut...])
                XCTAssertEqual(SHA256.hex(h.finalize()), digest, "\(n) cut at \(cut)")
            }
        }
    }

    func testFileHash() throws {
        let dir = Fixtures.temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: dir) }
        let url = dir.appendingPathComponent("abc")
        try Data("abc".utf8).write(to: url)
        XCTAssertEqual(SHA256.hex(try SHA256.hash(file: url.path)), "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad")
    }

    /// Random data of many lengths, fed in uneven pieces, against coreutils' `sha256sum` (an
    /// independent implementation) of the same bytes; and a copy of a hash goes on on its own.
    func testPiecesMatchSha256sumAndCopiesAreIndependent() throws {
        let dir = Fixtures.temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: dir) }
        var rng = SeededRandom(seed: 11)
        for n in [0, 1, 55, 56, 63, 64, 65, 127, 128, 129, 1000, 4096, 100_003] {
            let data = (0..<n).map { _ in UInt8.random(in: 0...255, using: &rng) }
            var h = SHA256()
            var i = 0
            while i < n {
                let step = min(n - i, Int.random(in: 1...300, using: &rng))
                h.update(data[i..<(i + step)])
                i += step
            }
            let url = dir.appendingPathComponent("d\(n)")
            try Data(data).write(to: url)
            let r = try runProgram("/usr/bin/env", ["sha256sum", url.path], environment: ProcessInfo.processInfo.environment)
            XCTAssertEqual(SHA256.hex(h.finalize()), String(r.stdoutText.prefix(64)), "length \(n)")
        }
        var a = SHA256()
        a.update(Array("ab".utf8))
        var b = a  // a copy: each goes on with its own bytes
        a.update(Array("c".utf8))
        b.update(Array("d".utf8))
        XCTAssertEqual(SHA256.hex(a.finalize()), "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad")
        XCTAssertEqual(SHA256.hex(b.finalize()), hex(Array("abd".utf8)))
        XCTAssertNotEqual(hex(Array("abd".utf8)), hex(Array("abc".utf8)))
    }
}
