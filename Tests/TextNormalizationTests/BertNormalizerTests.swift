import Foundation
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
    }

    /// The Unicode version the shim reports is the one of the ICU this process runs with: the
    /// libicuuc.so.N mapped into the process, asked directly through its versioned C name
    /// (u_getUnicodeVersion_N), and it agrees with that library's character data and with the
    /// installed development package.
    func testICUUnicodeVersionIsTheLinkedLibrarys() throws {
        // procfs files report size 0: read to the end rather than by size.
        let maps = String(decoding: try XCTUnwrap(FileHandle(forReadingAtPath: "/proc/self/maps")).readDataToEndOfFile(), as: UTF8.self)
        let path = try XCTUnwrap(maps.split(separator: "\n").compactMap { line -> String? in
            guard let p = line.split(separator: " ", omittingEmptySubsequences: true).last, p.contains("/libicuuc.so.") else { return nil }
            return String(p)
        }.first, "no libicuuc.so.N mapped into the test process")
        let suffix = path[path.range(of: "/libicuuc.so.")!.upperBound...]
        let major = try XCTUnwrap(Int(suffix.prefix { $0.isNumber }), path)
        XCTAssertGreaterThanOrEqual(major, 60, "\(path): an ICU older than 60 (2017)")
        let handle = try XCTUnwrap(dlopen(path, RTLD_NOW | RTLD_NOLOAD), "\(path) is mapped but dlopen refuses it")
        defer { dlclose(handle) }
        typealias GetVersion = @convention(c) (UnsafeMutablePointer<UInt8>) -> Void
        func call(_ name: String) throws -> [UInt8] {
            let symbol = try XCTUnwrap(dlsym(handle, "\(name)_\(major)"), "\(path) has no \(name)_\(major)")
            var v = [UInt8](repeating: 0, count: 4)  // UVersionInfo
            unsafeBitCast(symbol, to: GetVersion.self)(&v)
            return v
        }
        let icu = try call("u_getVersion"), unicode = try call("u_getUnicodeVersion")
        XCTAssertEqual(Int(icu[0]), major, "\(path) reports ICU \(icu)")
        XCTAssertEqual(ICU.unicodeVersion, "\(unicode[0]).\(unicode[1])", "the shim against \(path)")
        XCTAssertGreaterThanOrEqual(Int(unicode[0]), 10, "ICU 60 implements Unicode 10")
        // Every Unicode version assigns new characters: the newest age in the data is the version.
        var newest = 0
        for cp: UInt32 in 0...0x10FFFF { newest = max(newest, ICU.age(cp)) }
        XCTAssertEqual(newest, Int(unicode[0]) * 100 + Int(unicode[1]), "the newest character age in ICU's data")
        // The headers the shim was compiled against (the -dev package) are those of the same ICU major.
        let pkgConfig = ["/usr/bin/pkg-config", "/usr/local/bin/pkg-config"].first { FileManager.default.isExecutableFile(atPath: $0) }
        if let pkgConfig {
            let p = Process()
            p.executableURL = URL(fileURLWithPath: pkgConfig)
            p.arguments = ["--modversion", "icu-uc"]
            let pipe = Pipe()
            p.standardOutput = pipe
            p.standardError = FileHandle.nullDevice
            try p.run()
            let out = String(decoding: pipe.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
            p.waitUntilExit()
            if p.terminationStatus == 0 {
                let parts = out.trimmingCharacters(in: .whitespacesAndNewlines).split(separator: ".").compactMap { Int($0) }
                XCTAssertEqual(parts.first, major, "pkg-config icu-uc says \(out), the process runs \(path)")
                XCTAssertEqual(Array(parts.prefix(2)), icu.prefix(2).map { Int($0) }, "pkg-config icu-uc \(out) vs u_getVersion \(icu)")
            }
        }
    }
}
