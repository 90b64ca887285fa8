import Support
import CZstd
import Foundation
import TestSupport
import TextNormalization
import WordPiece
import XCTest

@testable import PretrainingData

/// A source over bytes in memory, read in small uneven pieces to exercise buffering.
final class MemorySource: ByteSource {
    let data: [UInt8]
    var pos = 0
    let step: Int
    let name = "<memory>"
    init(_ data: [UInt8], step: Int = 7) { self.data = data; self.step = step }
    func read(into buffer: UnsafeMutableRawBufferPointer) throws(InputError) -> Int {
        let n = min(step, buffer.count, data.count - pos)
        buffer.copyBytes(from: data[pos..<(pos + n)])
        pos += n
        return n
    }
}

func zstdCompress(_ bytes: [UInt8]) -> [UInt8] {
    var out = [UInt8](repeating: 0, count: ZSTD_compressBound(bytes.count))
    let n = out.withUnsafeMutableBytes { o in bytes.withUnsafeBytes { i in
        ZSTD_compress(o.baseAddress, o.count, i.baseAddress, i.count, 3) } }
    return Array(out[0..<n])
}

final class InputTests: XCTestCase {
    static let tokenizer: BertTokenizer = {
        let v = try! Vocabulary.load(path: Fixtures.uncasedVocab)
        return BertTokenizer(vocabulary: v)
    }()

    func readAll(_ s: ByteSource) throws -> [UInt8] {
        var out: [UInt8] = []
        var buf = [UInt8](repeating: 0, count: 1000)
        while true {
            let n = try readAppending(s, into: &buf, at: 0)
            if n == 0 { return out }
            out += buf[0..<n]
        }
    }

    func testZstdRoundTripAndTruncation() throws {
        let text = Array(String(repeating: "Some text to compress.\n", count: 5000).utf8)
        let z = zstdCompress(text)
        XCTAssertEqual(try readAll(ZstdSource(MemorySource(z, step: 333))), text)
        // Two concatenated frames decompress to both contents.
        XCTAssertEqual(try readAll(ZstdSource(MemorySource(z + z, step: 1000))), text + text)
        // A truncated frame is an error naming the source, never silent short data.
        XCTAssertThrowsError(try readAll(ZstdSource(MemorySource(Array(z.prefix(z.count / 2)))))) {
            guard case InputError.corruptCompressed(let path, _, _) = $0 else { return XCTFail("\($0)") }
            XCTAssertEqual(path, "<memory>")
        }
        // A damaged frame header is an error (shards add their own checksums for the payload).
        var bad = z
        bad[4] ^= 0xFF
        XCTAssertThrowsError(try readAll(ZstdSource(MemorySource(bad))))
    }

    func testOpenInputDetectsZstdByMagic() throws {
        let dir = Fixtures.temporaryDirectory()
        let text = Array("hello\nworld\n".utf8)
        let plain = dir.appendingPathComponent("a.txt"), packed = dir.appendingPathComponent("b.bin")
        try Data(text).write(to: plain)
        try Data(zstdCompress(text)).write(to: packed)
        XCTAssertEqual(try readAll(openInput(plain.path)), text)
        XCTAssertEqual(try readAll(openInput(packed.path)), text)
        XCTAssertThrowsError(try openInput(dir.appendingPathComponent("missing.txt").path)) {
            XCTAssertTrue("\($0)".contains("missing.txt"))
        }
    }

    func testChunkerCutsLongLinesAtWhitespaceAndKeepsBoundedChunks() throws {
        let long = String(repeating: "word ", count: 200) + "end\nshort\n"
        let chunker = LineChunker(source: MemorySource(Array(long.utf8)), chunkSize: 64)
        var chunks: [TextChunk] = []
        while let c = try chunker.next() { chunks.append(c) }
        XCTAssertGreaterThan(chunks.count, 10)
        XCTAssertTrue(chunks.allSatisfy { $0.bytes.count <= 64 })
        XCTAssertEqual(chunks.flatMap(\.bytes), Array(long.utf8))
        for c in chunks.dropLast() where c.endsMidLine { XCTAssertEqual(c.bytes.last, 0x20, "cut after a space") }
        XCTAssertFalse(chunks.first!.startsMidLine)
    }

    /// Lines far longer than a chunk and with no space in them: the chunker neither crashes (it once
    /// read one byte past its buffer here) nor holds the line, and the tokens equal the tokenizer's
    /// encoding of the whole line, for every chunk size and thread count.
    func testLinesWithoutSpacesLongerThanAChunk() throws {
        let n = 40_000
        let cases: [(String, [UInt8])] = [
            ("one ASCII word", [UInt8](repeating: UInt8(ascii: "a"), count: n) + Array("\nnext line\n".utf8)),
            ("one word, no newline at the end", Array("Ab9".utf8) + [UInt8](repeating: UInt8(ascii: "z"), count: n)),
            ("words joined by punctuation", Array(String(repeating: "ab.cd,", count: n / 6).utf8) + Array("\nx\n".utf8)),
            ("a long word then punctuation and text", [UInt8](repeating: UInt8(ascii: "q"), count: n) + Array("!hello [MASK] there\n".utf8)),
            ("Chinese with no punctuation", Array(String(repeating: "你好世界", count: n / 12).utf8)),
        ]
        for (name, bytes) in cases {
            for chunk in [2048, 4096, 5000] {
                let chunker = LineChunker(source: MemorySource(bytes, step: 1000), chunkSize: chunk)
                var total = 0
                while let c = try chunker.next() {
                    XCTAssertLessThanOrEqual(c.bytes.count, chunk, "\(name): chunk bounded")
                    total += c.bytes.count
                }
                XCTAssertEqual(total + chunker.skippedBytes, bytes.count, "\(name): every byte handed out or skipped")
            }
            // The tokens: each output line equals the tokenizer's encoding of the whole input line.
            let expected = String(decoding: bytes, as: UTF8.self).split(separator: "\n", omittingEmptySubsequences: true)
                .map { Self.tokenizer.encode(String($0), pair: nil).ids.map(String.init).joined(separator: " ") }
            for (chunk, threads) in [(2048, 1), (4096, 2), (1 << 20, 2)] {
                let lt = LineTokenizer(tokenizer: Self.tokenizer, format: .init(ids: true), threads: threads, chunkSize: chunk)
                let out = Fixtures.temporaryDirectory().appendingPathComponent("out")
                FileManager.default.createFile(atPath: out.path, contents: nil)
                let h = try FileHandle(forWritingTo: out)
                _ = try lt.run(input: MemorySource(bytes, step: 4096), output: FileDescriptorWriter(fd: h.fileDescriptor))
                try h.close()
                let lines = try String(contentsOf: out, encoding: .utf8).split(separator: "\n").map(String.init)
                XCTAssertEqual(lines, expected, "\(name), chunk \(chunk), \(threads) threads")
            }
        }
    }

    func testChunkerRefusesBinary() {
        var bytes = [UInt8](repeating: 0, count: 4000)
        for i in stride(from: 0, to: bytes.count, by: 3) { bytes[i] = UInt8(i % 251) }
        XCTAssertThrowsError(try LineChunker(source: MemorySource(bytes)).next()) {
            guard case InputError.notText = $0 else { return XCTFail("\($0)") }
        }
        // A few NULs in text are fine: cleaning drops them.
        let text = Array("hello\u{0}world\n".utf8) + Array(repeating: UInt8(ascii: "a"), count: 200)
        XCTAssertNoThrow(try LineChunker(source: MemorySource(text)).next())
    }

    /// The output does not depend on how the input is cut into chunks or on the thread count.
    func testLineTokenizerOutputIndependentOfChunkingAndThreads() throws {
        var rng = SeededRandom(seed: 3)
        let words = ["The", "quick", "brown", "fox,", "jumps!", "naïve", "café", "你好", "[MASK]", "\t", "ＡＢＣ", "\u{1}", "x"]
        var text = ""
        for _ in 0..<400 {
            let n = Int.random(in: 0...30, using: &rng)
            text += (0..<n).map { _ in words.randomElement(using: &rng)! }.joined(separator: " ") + "\n"
        }
        text += "a\u{0}b " + String(repeating: "longline ", count: 300)  // a NUL; no final newline
        let bytes = Array(text.utf8)
        func run(chunk: Int, threads: Int, ids: Bool) throws -> [UInt8] {
            let lt = LineTokenizer(tokenizer: Self.tokenizer, format: .init(ids: ids), threads: threads, chunkSize: chunk)
            let dir = Fixtures.temporaryDirectory()
            let out = dir.appendingPathComponent("out")
            FileManager.default.createFile(atPath: out.path, contents: nil)
            let h = try FileHandle(forWritingTo: out)
            let stats = try lt.run(input: MemorySource(bytes, step: 4096), output: FileDescriptorWriter(fd: h.fileDescriptor))
            try h.close()
            XCTAssertEqual(stats.lines, 401)
            return Array(try Data(contentsOf: out))
        }
        let reference = try run(chunk: 1 << 20, threads: 1, ids: true)
        let lines = String(decoding: reference, as: UTF8.self).split(separator: "\n", omittingEmptySubsequences: false)
        XCTAssertEqual(lines.count, 402)  // 401 lines and the final newline
        // Each line equals the tokenizer's own encoding of that input line.
        let inputLines = text.split(separator: "\n", omittingEmptySubsequences: false)
        for (i, line) in inputLines.enumerated() {
            let e = Self.tokenizer.encode(String(line), pair: nil)
            XCTAssertEqual(String(lines[i]), e.ids.map(String.init).joined(separator: " "), "line \(i + 1)")
        }
        for (chunk, threads) in [(64, 1), (100, 2), (1000, 2), (4096, 3)] {
            XCTAssertEqual(try run(chunk: chunk, threads: threads, ids: true), reference, "chunk \(chunk) threads \(threads)")
        }
        let tokens = try run(chunk: 128, threads: 2, ids: false)
        XCTAssertEqual(tokens, try run(chunk: 1 << 20, threads: 1, ids: false))
    }

    func testJSONLInputAndErrors() throws {
        let dir = Fixtures.temporaryDirectory()
        let good = dir.appendingPathComponent("c.jsonl")
        try Data("{\"text\": \"Hello there.\\nSecond line.\"}\n\n{\"text\": \"Another doc\", \"id\": 3}\n".utf8).write(to: good)
        let chunks = CorpusTextChunks(paths: [good.path])
        var text: [UInt8] = []
        while let c = try chunks.next() { text += c.bytes }
        XCTAssertEqual(String(decoding: text, as: UTF8.self), "Hello there.\nSecond line.\n\nAnother doc\n\n")
        let bad = dir.appendingPathComponent("bad.jsonl")
        try Data("{\"text\": \"ok\"}\n{\"body\": \"no text\"}\n".utf8).write(to: bad)
        XCTAssertThrowsError(try { let c = CorpusTextChunks(paths: [bad.path]); while try c.next() != nil {} }()) {
            XCTAssertEqual($0 as? CorpusError, .badJSONLine(path: bad.path, line: 2, reason: "no string \"text\" field"))
        }
    }

    func testExpandInputs() throws {
        let dir = Fixtures.temporaryDirectory()
        for n in ["b.txt", "a.txt", ".hidden.txt", "sub/c.txt.zst"] {
            let u = dir.appendingPathComponent(n)
            try FileManager.default.createDirectory(at: u.deletingLastPathComponent(), withIntermediateDirectories: true)
            try Data("x\n".utf8).write(to: u)
        }
        XCTAssertEqual(try expandInputs([dir.path]).map { String($0.dropFirst(dir.path.count + 1)) }, ["a.txt", "b.txt", "sub/c.txt.zst"])
        XCTAssertEqual(try expandInputs([dir.path + "/*.txt"]).count, 2)
        XCTAssertThrowsError(try expandInputs([dir.path + "/nothing"]))
    }
}
