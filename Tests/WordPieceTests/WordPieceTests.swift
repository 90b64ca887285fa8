import Foundation
import TestSupport
import TextNormalization
import XCTest

@testable import WordPiece

final class WordPieceTests: XCTestCase {
    /// google-research/bert tokenization_test.py's hand-made vocabulary.
    func tinyVocab() throws -> Vocabulary {
        try Vocabulary(tokens: ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "want", "##want", "##ed", "wa", "un",
                                "runn", "##ing", ","])
    }

    func testGoogleReferenceExample() throws {
        let t = BertTokenizer(vocabulary: try tinyVocab())
        XCTAssertEqual(t.tokens(t.encode("UNwant\u{00E9}d,running")), ["un", "##want", "##ed", ",", "runn", "##ing"])
        XCTAssertEqual(t.tokens(t.encode("unwantedX running")), ["[UNK]", "runn", "##ing"])
        XCTAssertEqual(t.encode(""), [])
    }

    func testOverlongWordIsUnknown() throws {
        let v = try Vocabulary(tokens: Vocabulary.specialTokens + ["a", "##a"])
        let t = BertTokenizer(vocabulary: v)
        XCTAssertEqual(t.encode(String(repeating: "a", count: 100)).count, 100)
        XCTAssertEqual(t.encode(String(repeating: "a", count: 101)), [v.unkId])
        // Characters are Unicode scalars, not bytes or grapheme clusters.
        let w = WordPieceTokenizer(vocabulary: v)
        XCTAssertEqual(w.maxInputCharsPerWord, 100)
    }

    func testSpecialTokensInRawText() throws {
        let v = try Vocabulary.load(path: Fixtures.uncasedVocab)
        let t = BertTokenizer(vocabulary: v)
        XCTAssertEqual(t.tokens(t.encode("a[MASK]b")), ["a", "[MASK]", "b"])
        XCTAssertEqual(t.tokens(t.encode("[mask]")), ["[", "mask", "]"])
    }

    func testPairTemplateAndTruncation() throws {
        let v = try Vocabulary.load(path: Fixtures.uncasedVocab)
        let t = BertTokenizer(vocabulary: v)
        let e = t.encode("hello world", pair: "good morning to you", maxLength: 8)
        XCTAssertEqual(e.ids.count, 8)
        XCTAssertEqual(e.typeIds, [0, 0, 0, 0, 1, 1, 1, 1])
        XCTAssertEqual(t.tokens(e.ids), ["[CLS]", "hello", "world", "[SEP]", "good", "morning", "to", "[SEP]"])
    }

    /// The trie's longest match equals the literal longest-first loop, on real words and random
    /// strings drawn from the vocabulary's own pieces.
    func testTrieEqualsNaiveReference() throws {
        let v = try Vocabulary.load(path: Fixtures.uncasedVocab)
        let w = WordPieceTokenizer(vocabulary: v)
        var rng = SeededRandom(seed: 7)
        // Words never contain punctuation such as '#' (the pre-tokenizer splits it off).
        let pieces = v.tokens.filter { !$0.hasPrefix("[") }.map { $0.hasPrefix("##") ? String($0.dropFirst(2)) : $0 }
            .filter { !$0.isEmpty && !$0.contains("#") }
        let alphabet = Array("abcdefghijklmnopqrstuvwxyzéß中文ひらがな한국")
        for i in 0..<5000 {
            var word = ""
            if i % 2 == 0 {
                for _ in 0..<Int.random(in: 1...4, using: &rng) { word += pieces.randomElement(using: &rng)! }
            } else {
                for _ in 0..<Int.random(in: 1...12, using: &rng) { word.append(alphabet.randomElement(using: &rng)!) }
            }
            XCTAssertEqual(w.tokenize(word), w.tokenizeNaive(word), "word \(word)")
        }
    }

    /// Ids from Hugging Face tokenizers (see Tests/Fixtures/tokenizer/README.md for how they were made).
    func testEdgeCasesMatchHuggingFace() throws {
        let file = try TokenizerFixtures.load()
        XCTAssertGreaterThan(file.cases.count, 100)
        let v = try Vocabulary.load(path: Fixtures.uncasedVocab)
        let uncased = BertTokenizer(vocabulary: v, options: BertNormalizerOptions(lowercase: true))
        let cased = BertTokenizer(vocabulary: v, options: BertNormalizerOptions(lowercase: false))
        for c in file.cases {
            let t = c.lowercase ? uncased : cased
            var ids: [Int32]
            var types: [Int32]
            if let raw = c.rawBytes {
                ids = []
                raw.withUnsafeBufferPointer { t.encode(utf8: $0, into: &ids, scratch: .init()) }
                types = [Int32](repeating: 0, count: ids.count)
                if c.add_special_tokens { let e = t.assemble(ids, nil); ids = e.ids; types = e.typeIds }
            } else if c.add_special_tokens {
                let e = t.encode(c.text, pair: c.text_b)
                ids = e.ids
                types = e.typeIds
            } else {
                ids = t.encode(c.text)
                types = [Int32](repeating: 0, count: ids.count)
            }
            XCTAssertEqual(ids, c.ids, "\(c.name) (lowercase \(c.lowercase)): ours \(t.tokens(ids)) HF \(c.tokens)")
            XCTAssertEqual(types, c.type_ids, c.name)
        }
    }
}

/// Tests/Fixtures/tokenizer/edge_cases.json, written by Tests/Scripts/fixtures/make_tokenizer_fixtures.py.
struct TokenizerFixtures: Decodable {
    struct Case: Decodable {
        var name: String
        var text: String
        var text_b: String?
        var utf8_hex: String?
        var lowercase: Bool
        var add_special_tokens: Bool
        var tokens: [String]
        var ids: [Int32]
        var type_ids: [Int32]
        var cli: Bool

        /// The raw input bytes when the case is not valid UTF-8.
        var rawBytes: [UInt8]? {
            guard let hex = utf8_hex else { return nil }
            let chars = Array(hex.utf8)
            return stride(from: 0, to: chars.count, by: 2).map { UInt8(String(decoding: chars[$0..<($0 + 2)], as: UTF8.self), radix: 16)! }
        }
    }
    var cases: [Case]

    static func load() throws -> TokenizerFixtures {
        let data = try Data(contentsOf: URL(fileURLWithPath: Fixtures.path("tokenizer/edge_cases.json")))
        return try JSONDecoder().decode(TokenizerFixtures.self, from: data)
    }
}

final class VocabularyTests: XCTestCase {
    func parse(_ s: String) throws -> Vocabulary { try Vocabulary.parse(Data(s.utf8), source: "v.txt") }

    func testReadsIdsByLine() throws {
        let v = try Vocabulary.load(path: Fixtures.uncasedVocab)
        XCTAssertEqual(v.count, 30522)
        XCTAssertEqual([v.padId, v.unkId, v.clsId, v.sepId, v.maskId], [0, 100, 101, 102, 103])
        XCTAssertEqual(try Vocabulary.parse(v.fileContents, source: "x"), v)
    }

    func testBadVocabularies() {
        XCTAssertThrowsError(try parse("")) { XCTAssertEqual($0 as? VocabularyError, .empty(path: "v.txt")) }
        XCTAssertThrowsError(try parse("[PAD]\n[UNK]\n[CLS]\n[SEP]\n[MASK]\na\nb\na\n")) {
            XCTAssertEqual($0 as? VocabularyError, .duplicate(path: "v.txt", token: "a", line: 8, firstLine: 6))
            XCTAssertTrue("\($0)".contains("v.txt:8"))
        }
        XCTAssertThrowsError(try parse("[PAD]\n[CLS]\n[SEP]\n[MASK]\na\n")) {
            XCTAssertEqual($0 as? VocabularyError, .missingSpecialToken(path: "v.txt", token: "[UNK]"))
        }
        XCTAssertThrowsError(try Vocabulary.parse(Data([0x5B, 0x55, 0x4E, 0x4B, 0x5D, 0x0A, 0xFF, 0x0A]), source: "v.txt")) {
            XCTAssertEqual($0 as? VocabularyError, .invalidUTF8(path: "v.txt", line: 2))
        }
        XCTAssertThrowsError(try Vocabulary.load(path: "/nonexistent/vocab.txt")) {
            XCTAssertTrue("\($0)".contains("/nonexistent/vocab.txt"))
        }
    }

    func testCRLFLinesAreTrimmed() throws {
        let v = try parse("[PAD]\r\n[UNK]\r\n[CLS]\r\n[SEP]\r\n[MASK]\r\nab\r\n")
        XCTAssertEqual(v["ab"], 5)
    }
}

final class VocabularyTrainerTests: XCTestCase {
    static let basic = BasicTokenizer(normalizer: BertNormalizer(options: BertNormalizerOptions(lowercase: true)))

    func count(_ text: String) -> WordCounter {
        let basic = Self.basic
        var counter = WordCounter()
        var t = text
        t.withUTF8 { p in basic.scan(p, scratch: .init(), onWord: { w, c in counter.add(w, chars: c) }, onSpecial: { _ in }) }
        return counter
    }

    func testSpecialTokensFirstThenAlphabetThenMerges() {
        let counter = count("low low low low lower lower newest newest newest widest")
        var trainer = VocabularyTrainer(size: 30)
        trainer.minFrequency = 1
        let tokens = trainer.train(counter)
        XCTAssertEqual(Array(tokens.prefix(5)), Vocabulary.specialTokens)
        // Alphabet in code point order.
        XCTAssertEqual(Array(tokens[5..<15]), ["d", "e", "i", "l", "n", "o", "r", "s", "t", "w"])
        // The most frequent pair is "##e"+"##s" (newest×3, widest×1 = 4) vs "l"+"##o" (6): "lo" first.
        let merges = Array(tokens.drop { !$0.hasPrefix("##") }.drop { $0.hasPrefix("##") && $0.count == 3 })
        XCTAssertEqual(merges.first, "lo")
        XCTAssertTrue(tokens.contains("low"))
        XCTAssertEqual(Set(tokens).count, tokens.count)
        XCTAssertEqual(tokens.count, 30)
    }

    func testMinFrequencyStopsEarly() {
        var trainer = VocabularyTrainer(size: 1000)
        trainer.minFrequency = 3
        let tokens = trainer.train(count("abc abc abd xyz"))
        XCTAssertFalse(tokens.contains("abc"), "abc occurs twice: below min frequency 3")
        XCTAssertTrue(tokens.contains("ab"), "ab occurs three times")
    }

    func testDeterministicAndOrderIndependent() {
        let a = VocabularyTrainer(size: 60).train(count("the cat sat on the mat. the dog ate the cat's food!"))
        var merged = count("the cat sat on the mat.")
        merged.merge(count(" the dog ate the cat's food!"))
        let b = VocabularyTrainer(size: 60).train(merged)
        XCTAssertEqual(a, b)
    }

    func testTrainedVocabularyTokenizesItsCorpus() throws {
        let text = "Tokenization of tokenized tokens; TOKENIZERS tokenize."
        var trainer = VocabularyTrainer(size: 80)
        trainer.minFrequency = 1
        let v = try Vocabulary(tokens: trainer.train(count(text)))
        let t = BertTokenizer(vocabulary: v)
        XCTAssertFalse(t.encode(text).contains(v.unkId))
    }
}
