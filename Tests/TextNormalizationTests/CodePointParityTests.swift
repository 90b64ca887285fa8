import Foundation
import TestSupport
import XCTest

@testable import TextNormalization

/// Every code point against Hugging Face tokenizers' BertNormalizer and BertPreTokenizer, from the
/// table Tests/Scripts/fixtures/make_codepoint_table.py wrote with tokenizers==0.23.3.
final class CodePointParityTests: XCTestCase {
    struct Row { var first: UInt32; var last: UInt32; var lower: String; var cased: String; var pre: Character }

    func loadTable() throws -> [Row] {
        let text = try String(contentsOfFile: Fixtures.path("tokenizer/hf_codepoints.txt"), encoding: .utf8)
        var rows: [Row] = []
        for line in text.split(separator: "\n") where !line.hasPrefix("#") {
            let f = line.split(separator: " ")
            XCTAssertEqual(f.count, 5, "bad line \(line)")
            rows.append(Row(first: UInt32(f[0], radix: 16)!, last: UInt32(f[1], radix: 16)!,
                            lower: String(f[2]), cased: String(f[3]), pre: f[4].first!))
        }
        return rows
    }

    /// The expected output code points for one code point under a table code.
    func expected(_ code: String, _ cp: UInt32) -> [UInt32] {
        switch code {
        case "=": return [cp]
        case "x": return []
        case "_": return [0x20]
        case "c": return [0x20, cp, 0x20]
        default:
            if code.hasPrefix("D") { return [UInt32(Int(cp) + Int(code.dropFirst())!)] }
            precondition(code.hasPrefix("S:"), "unknown code \(code)")
            return code.dropFirst(2).split(separator: ",").map { UInt32($0, radix: 16)! }
        }
    }

    /// What our normalizer makes of one code point, through the precomputed table when it covers it.
    func ours(_ n: BertNormalizer, _ cp: UInt32) -> [UInt32] {
        let kind: CharEntry.Kind, chinese: Bool, mapping: [UInt32]
        if let e = n.entry(cp) {
            kind = e.kind; chinese = e.isChinese
            mapping = e.kind == .mapped ? n.withMapping(e) { Array($0) } : [cp]
        } else {
            let c = BertNormalizer.classify(cp, options: n.options)
            kind = c.kind; chinese = c.isChinese; mapping = c.kind == .mapped ? c.mapping : [cp]
        }
        switch kind {
        case .removed: return []
        case .whitespace: return [0x20]
        case .identity, .mapped: return chinese ? [0x20] + mapping + [0x20] : mapping
        }
    }

    func testEveryCodePointMatchesHuggingFace() throws {
        let rows = try loadTable()
        XCTAssertGreaterThan(rows.count, 1000)
        let lower = BertNormalizer(options: BertNormalizerOptions(lowercase: true))
        let cased = BertNormalizer(options: BertNormalizerOptions(lowercase: false))
        var mismatches: [String] = []
        var covered = 0
        for r in rows {
            for cp in r.first...r.last {
                covered += 1
                let l = ours(lower, cp), el = expected(r.lower, cp)
                if l != el { mismatches.append(String(format: "U+%04X lowercase: ours %@ HF %@", cp, "\(l)", "\(el)")) }
                let c = ours(cased, cp), ec = expected(r.cased, cp)
                if c != ec { mismatches.append(String(format: "U+%04X cased: ours %@ HF %@", cp, "\(c)", "\(ec)")) }
                let isWS = BertNormalizer.isBertWhitespace(cp)
                let isP = lower.isPunctuation(cp)
                let pre: Character = isWS ? "w" : (isP ? "p" : ".")
                if pre != r.pre { mismatches.append(String(format: "U+%04X pre-tokenizer: ours %@ HF %@", cp, "\(pre)", "\(r.pre)")) }
            }
        }
        XCTAssertEqual(covered, 0x110000 - 0x800, "the table covers every code point but the surrogates")
        XCTAssertEqual(mismatches.count, 0, "first mismatches:\n" + mismatches.prefix(100).joined(separator: "\n"))
    }
}
