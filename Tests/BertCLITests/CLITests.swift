import Foundation
import TestSupport
import XCTest

/// Runs the built `bert` binary, as a user would.
final class TokenizeCommandTests: XCTestCase {
    struct Case: Decodable {
        var name: String; var text: String; var text_b: String?; var utf8_hex: String?
        var lowercase: Bool; var add_special_tokens: Bool; var ids: [Int32]; var cli: Bool
    }
    struct File: Decodable { var cases: [Case] }

    /// Every fixture case that fits on one line, through `bert tokenize --ids` in one process per
    /// mode, compared with Hugging Face's ids.
    func testFixturesThroughTheCommandLine() throws {
        let data = try Data(contentsOf: URL(fileURLWithPath: Fixtures.path("tokenizer/edge_cases.json")))
        let cases = try JSONDecoder().decode(File.self, from: data).cases.filter { $0.cli }
        XCTAssertGreaterThan(cases.count, 100)
        for lowercase in [true, false] {
            for (pair, special) in [(false, true), (false, false), (true, true)] {
                let group = cases.filter { $0.lowercase == lowercase && ($0.text_b != nil) == pair && $0.add_special_tokens == special }
                if group.isEmpty { continue }
                var input = Data()
                for c in group {
                    if let hex = c.utf8_hex {
                        let chars = Array(hex.utf8)
                        input.append(contentsOf: stride(from: 0, to: chars.count, by: 2).map {
                            UInt8(String(decoding: chars[$0..<($0 + 2)], as: UTF8.self), radix: 16)! })
                    } else {
                        input.append(contentsOf: Array(c.text.utf8))
                    }
                    if let b = c.text_b { input.append(0x09); input.append(contentsOf: Array(b.utf8)) }
                    input.append(0x0A)
                }
                var args = ["tokenize", "--vocab", Fixtures.uncasedVocab, "--ids"]
                if !lowercase { args.append("--cased") }
                if pair { args.append("--pair") }
                if !special { args.append("--no-special-tokens") }
                let r = try runBert(args, stdin: input)
                XCTAssertEqual(r.status, 0, r.stderr)
                let lines = r.stdoutText.split(separator: "\n", omittingEmptySubsequences: false).dropLast()
                XCTAssertEqual(lines.count, group.count, args.joined(separator: " "))
                for (c, line) in zip(group, lines) {
                    XCTAssertEqual(String(line), c.ids.map(String.init).joined(separator: " "), "\(c.name) \(args)")
                }
            }
        }
    }

    func testOneLineOutPerLineInAndInvalidUTF8Counted() throws {
        let input = Data("first\n\n\u{0}hello\nbad ".utf8) + Data([0xFF]) + Data("word".utf8) + Data([0xFF, 0xFE, 0x0A])
        let r = try runBert(["tokenize", "--vocab", Fixtures.uncasedVocab], stdin: input)
        XCTAssertEqual(r.status, 0)
        XCTAssertEqual(r.stdoutText, "[CLS] first [SEP]\n[CLS] [SEP]\n[CLS] hello [SEP]\n[CLS] bad word [SEP]\n")
        XCTAssertTrue(r.stderr.contains("3 invalid UTF-8"), r.stderr)
        let empty = try runBert(["tokenize", "--vocab", Fixtures.uncasedVocab], stdin: Data())
        XCTAssertEqual(empty.status, 0)
        XCTAssertEqual(empty.stdout.count, 0, "no lines in, no lines out")
    }

    func testBadVocabularyFiles() throws {
        let dir = Fixtures.temporaryDirectory()
        func vocab(_ name: String, _ text: String) throws -> String {
            let p = dir.appendingPathComponent(name).path
            try Data(text.utf8).write(to: URL(fileURLWithPath: p))
            return p
        }
        let cases: [(String, String)] = [
            (try vocab("empty.txt", ""), "empty"),
            (try vocab("dup.txt", "[PAD]\n[UNK]\n[CLS]\n[SEP]\n[MASK]\nhello\nhello\n"), "dup.txt:7"),
            (try vocab("nounk.txt", "[PAD]\n[CLS]\n[SEP]\n[MASK]\nhello\n"), "[UNK]"),
            (dir.appendingPathComponent("missing.txt").path, "missing.txt"),
        ]
        for (path, expected) in cases {
            let r = try runBert(["tokenize", "--vocab", path], stdin: Data("hello\n".utf8))
            XCTAssertEqual(r.status, 2, "\(path): \(r.stderr)")
            XCTAssertTrue(r.stderr.contains(expected), "\(path): \(r.stderr)")
            XCTAssertTrue(r.stderr.contains(URL(fileURLWithPath: path).lastPathComponent), r.stderr)
            XCTAssertEqual(r.stdout.count, 0)
        }
    }

    func testBinaryInputAndBadUsage() throws {
        var binary = Data(count: 5000)
        for i in stride(from: 0, to: 5000, by: 2) { binary[i] = UInt8(i % 256) }
        let r = try runBert(["tokenize", "--vocab", Fixtures.uncasedVocab], stdin: binary)
        XCTAssertEqual(r.status, 2)
        XCTAssertTrue(r.stderr.contains("<stdin>") && r.stderr.contains("binary"), r.stderr)
        let usage = try runBert(["tokenize", "--vocab", Fixtures.uncasedVocab, "--threads", "0"])
        XCTAssertEqual(usage.status, 2, usage.stderr)
        XCTAssertTrue(usage.stderr.contains("--threads"))
        let unknown = try runBert(["tokenise"])
        XCTAssertEqual(unknown.status, 2)
    }
}

final class VocabCommandTests: XCTestCase {
    static let corpus: String = {
        var rng = SeededRandom(seed: 11)
        let words = ["the", "The", "running", "runner", "runs", "ran", "Unwanted", "wanted", "want", "café", "naïve",
                     "tokenization", "tokens", "token", "北京", "東京", "hello,", "world!", "don't", "it's", "42", "3.14"]
        var s = ""
        for d in 0..<40 {
            for _ in 0..<10 { s += (0..<12).map { _ in words.randomElement(using: &rng)! }.joined(separator: " ") + "\n" }
            if d < 39 { s += "\n" }
        }
        return s
    }()

    func write(_ dir: URL, _ name: String, _ data: Data) throws -> String {
        let u = dir.appendingPathComponent(name)
        try data.write(to: u)
        return u.path
    }

    func testDeterministicAcrossThreadsAndFormats() throws {
        let dir = Fixtures.temporaryDirectory()
        let txt = try write(dir, "c.txt", Data(Self.corpus.utf8))
        var outputs: [Data] = []
        for (input, threads) in [(txt, "1"), (txt, "2")] {
            let out = dir.appendingPathComponent("v\(outputs.count).txt").path
            let r = try runBert(["vocab", "--input", input, "--size", "90", "--min-frequency", "1", "--output", out, "--threads", threads])
            XCTAssertEqual(r.status, 0, r.stderr)
            outputs.append(try Data(contentsOf: URL(fileURLWithPath: out)))
        }
        XCTAssertEqual(outputs[0], outputs[1], "same bytes with 1 and 2 threads")
        let lines = String(decoding: outputs[0], as: UTF8.self).split(separator: "\n").map(String.init)
        XCTAssertEqual(Array(lines.prefix(5)), ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"])
        XCTAssertEqual(lines.count, 90)
        XCTAssertEqual(Set(lines).count, lines.count)

        // JSONL with the same text, one document per object, gives the same vocabulary.
        let docs = Self.corpus.components(separatedBy: "\n\n")
        let jsonl = docs.map { d -> String in
            let obj = try! JSONSerialization.data(withJSONObject: ["text": d], options: [])
            return String(decoding: obj, as: UTF8.self)
        }.joined(separator: "\n") + "\n"
        let jpath = try write(dir, "c.jsonl", Data(jsonl.utf8))
        let jout = dir.appendingPathComponent("vj.txt").path
        let r = try runBert(["vocab", "--input", jpath, "--size", "90", "--min-frequency", "1", "--output", jout])
        XCTAssertEqual(r.status, 0, r.stderr)
        XCTAssertEqual(try Data(contentsOf: URL(fileURLWithPath: jout)), outputs[0])
    }

    func testBadInputsLeaveNoOutput() throws {
        let dir = Fixtures.temporaryDirectory()
        let out = dir.appendingPathComponent("vocab.txt").path
        var binary = Data(count: 3000)
        for i in stride(from: 0, to: 3000, by: 2) { binary[i] = UInt8(i % 200) }
        let cases: [([String], String)] = [
            ([dir.appendingPathComponent("missing.txt").path], "missing.txt"),
            ([try write(dir, "empty.txt", Data())], "no words"),
            ([try write(dir, "binary.bin", binary)], "binary.bin"),
            ([try write(dir, "bad.jsonl", Data("{\"text\": \"ok\"}\nnot json\n".utf8))], "bad.jsonl:2"),
        ]
        for (inputs, expected) in cases {
            let r = try runBert(["vocab", "--input"] + inputs + ["--size", "100", "--output", out])
            XCTAssertEqual(r.status, 2, "\(inputs): \(r.stderr)")
            XCTAssertTrue(r.stderr.contains(expected), "\(inputs): \(r.stderr)")
            XCTAssertFalse(FileManager.default.fileExists(atPath: out), "no partial vocab.txt")
        }
        let tooSmall = try runBert(["vocab", "--input", try write(dir, "c.txt", Data("a b\n".utf8)), "--size", "3", "--output", out])
        XCTAssertEqual(tooSmall.status, 2)
    }
}
