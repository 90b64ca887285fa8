import XCTest

@testable import TextNormalization

final class BertNormalizerTests: XCTestCase {
    let uncased = BertNormalizer(options: BertNormalizerOptions(lowercase: true))
    let cased = BertNormalizer(options: BertNormalizerOptions(lowercase: false))

    /// google-research/bert's tokenization_test.py example, normalisation half.
    func testAccentsAndCase() {
        XCTAssertEqual(uncased.normalize("UNwant\u{00E9}d,running"), "unwanted,running")
        XCTAssertEqual(uncased.normalize("H\u{00E4}LLo"), "hallo")
        XCTAssertEqual(cased.normalize("H\u{00E4}LLo"), "H\u{00E4}LLo")
        // Decomposed input: the combining mark (Mn) goes.
        XCTAssertEqual(uncased.normalize("e\u{0301}"), "e")
    }

    func testCleaningAndWhitespace() {
        XCTAssertEqual(uncased.normalize("a\u{0000}b\u{FFFD}c\u{0001}d"), "abcd")
        XCTAssertEqual(uncased.normalize("a\tb\nc\u{00A0}d\u{3000}e\u{2028}f"), "a b c d e f")
        // U+000B and U+000C are Cc: dropped before the whitespace rule applies (HF order).
        XCTAssertEqual(uncased.normalize("a\u{000B}b"), "ab")
        // Format characters (Cf) such as ZWJ and soft hyphen are dropped.
        XCTAssertEqual(uncased.normalize("a\u{200D}b\u{00AD}c"), "abc")
    }

    func testChineseCharactersAreIsolated() {
        XCTAssertEqual(uncased.normalize("ah博推zz"), "ah 博  推 zz")
        // Hangul and kana are not in the CJK ranges.
        XCTAssertEqual(cased.normalize("한국カナ"), "한국カナ")
        // The range where HF and google-research/bert differ: U+2B820 is CJK in Google's, not HF's.
        XCTAssertFalse(BertNormalizer.isChineseChar(0x2B820))
        XCTAssertTrue(BertNormalizer.isChineseChar(0x2B920))
    }

    func testPunctuationClasses() {
        for c in "$+<=>^`|~!\"#%&'()*,-./:;?@[\\]_{}" { XCTAssertTrue(uncased.isPunctuation(c.unicodeScalars.first!.value), "\(c)") }
        for c in "aZ09 é" { XCTAssertFalse(uncased.isPunctuation(c.unicodeScalars.first!.value), "\(c)") }
        XCTAssertTrue(uncased.isPunctuation(0x00BF))  // ¿
        XCTAssertTrue(uncased.isPunctuation(0x2026))  // …
    }

    func testTableAgreesWithSlowPath() {
        XCTAssertNil(uncased.entry(0x10000), "supplementary planes go through classify")
        for cp: UInt32 in [0x41, 0xC9, 0x130, 0x1E9E, 0xF900, 0xAC00, 0x4E00, 0xFFFD, 0xFFFF] {
            let e = uncased.entry(cp)!
            let c = BertNormalizer.classify(cp, options: uncased.options)
            XCTAssertEqual(e.kind, c.kind)
            XCTAssertEqual(e.isChinese, c.isChinese)
            if e.kind == .mapped { XCTAssertEqual(uncased.withMapping(e) { Array($0) }, c.mapping) }
        }
    }

    func testOptionalNFKC() {
        var o = BertNormalizerOptions(lowercase: true)
        o.nfkc = true
        XCTAssertEqual(BertNormalizer(options: o).normalize("ＡＢＣ１２３ ﬁ"), "abc123 fi")
        XCTAssertEqual(uncased.normalize("ＡＢＣ"), "ａｂｃ")
    }

    func testICUShim() {
        XCTAssertEqual(ICU.category(0x41), .uppercaseLetter)
        XCTAssertEqual(ICU.category(0x0301), .nonSpacingMark)
        XCTAssertEqual(ICU.lowercase(0x130), [0x69, 0x307])
        XCTAssertEqual(ICU.nfd(0xE9), [0x65, 0x301])
        XCTAssertEqual(ICU.age(0x1F970), 1100)
        XCTAssertTrue(ICU.unicodeVersion.hasPrefix("15") || ICU.unicodeVersion.hasPrefix("1"))
    }
}
