import Foundation
import TestSupport
import XCTest

/// Ordinary mistakes and odd inputs that once ended `bert` on a signal: each now gives a correct
/// result, or exit 2 with a message naming the file and what to do.
final class HardeningTests: XCTestCase {
    /// A 50 MB line with no newline and no space (one word) once crashed `bert tokenize` with an index
    /// out of range in the line chunker. The word is far over WordPiece's 100-character limit, so it is
    /// one `[UNK]`, as Hugging Face gives; `bert vocab` and `bert shards` read the same chunker.
    func testFiftyMegabyteLineWithoutNewline() throws {
        let dir = Fixtures.temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: dir) }
        let word = Data(repeating: UInt8(ascii: "a"), count: 50_000_000)
        let tok = try runBert(["tokenize", "--vocab", Fixtures.uncasedVocab], stdin: word)
        XCTAssertEqual(tok.status, 0, tok.stderr)
        XCTAssertEqual(tok.stdoutText, "[CLS] [UNK] [SEP]\n")
        // The same line after ordinary text, in a file: one line of output each.
        let file = dir.appendingPathComponent("long.txt")
        var text = Data("Hello there.\n".utf8)
        text.append(word)
        text.append(Data("!\nThe end.\n".utf8))
        try text.write(to: file)
        let tok2 = try runBert(["tokenize", "--vocab", Fixtures.uncasedVocab], stdin: text)
        XCTAssertEqual(tok2.status, 0, tok2.stderr)
        XCTAssertEqual(tok2.stdoutText, "[CLS] hello there . [SEP]\n[CLS] [UNK] ! [SEP]\n[CLS] the end . [SEP]\n")

        let vocab = try runBert(["vocab", "--input", file.path, "--size", "200", "--min-frequency", "1",
                                 "--output", dir.appendingPathComponent("v.txt").path])
        XCTAssertEqual(vocab.status, 0, vocab.stderr)
        let tokens = try String(contentsOf: dir.appendingPathComponent("v.txt"), encoding: .utf8).split(separator: "\n")
        XCTAssertTrue(tokens.contains("hello") && tokens.contains("end"), "the ordinary words are in the vocabulary")
        XCTAssertTrue(tokens.allSatisfy { $0.count <= 100 }, "no token made of the long word (over 100 characters, it is [UNK] whole)")

        // Two documents so that pairs can be made; the long line is a sentence of one [UNK].
        var corpus = text
        corpus.append(Data("\nA second document.\nWith two sentences.\n".utf8))
        try corpus.write(to: file)
        let shards = try runBert(["shards", "--input", file.path, "--vocab", Fixtures.uncasedVocab, "--output", dir.appendingPathComponent("s").path,
                                  "--dupe-factor", "2", "--max-seq-length", "32", "--max-predictions", "4"])
        XCTAssertEqual(shards.status, 0, shards.stderr)
        let shown = try runBert(["inspect", dir.appendingPathComponent("s").path, "--json", "--limit", "0"])
        XCTAssertEqual(shown.status, 0, shown.stderr)
        XCTAssertTrue(shown.stdoutText.contains("\"[UNK]\""), "the long word is [UNK] in the instances")
    }
}
