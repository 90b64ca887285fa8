import Support
import Foundation
import TestSupport
import WordPiece
import XCTest

@testable import ClassificationData

final class ClassificationFileTests: XCTestCase {
    func write(_ name: String, _ text: String) throws -> String {
        let url = Fixtures.temporaryDirectory().appendingPathComponent(name)
        try Data(text.utf8).write(to: url)
        return url.path
    }

    func all(_ path: String, _ columns: ClassificationColumns = .init()) throws -> [ClassificationExample] {
        let r = try ClassificationReader(path: path, columns: columns)
        var out: [ClassificationExample] = []
        while let e = try r.nextExample() { out.append(e) }
        return out
    }

    func testTSVHasNoQuotingAndColumnsInAnyOrder() throws {
        let p = try write("a.tsv", "label\tsplit\ttext\ngreat\ttrain\t\"Good stuff\". Really.\nother\tTest\tmeh\r\n\n")
        let rows = try all(p)
        XCTAssertEqual(rows, [ClassificationExample(text: "\"Good stuff\". Really.", label: "great", split: "train", line: 2),
                              ClassificationExample(text: "meh", label: "other", split: "test", line: 3)])
    }

    func testCSVQuotesDoubledQuotesAndNewlines() throws {
        let p = try write("a.csv", "text,text_b,label\n\"a, b\",\"say \"\"hi\"\"\",pos\n\"two\nlines\",x,neg\nplain,y,neg\n")
        let rows = try all(p)
        XCTAssertEqual(rows.map(\.text), ["a, b", "two\nlines", "plain"])
        XCTAssertEqual(rows.map(\.textB), ["say \"hi\"", "x", "y"])
        XCTAssertEqual(rows.map(\.line), [2, 3, 5], "a row is named by the line it starts on")
    }

    func testJSONLAndOtherColumnNames() throws {
        let p = try write("a.jsonl", "{\"sentence\": \"hello\", \"y\": 1}\n\n{\"sentence\": \"bye\", \"y\": 0, \"split\": \"validation\"}\n")
        let rows = try all(p, ClassificationColumns(text: "sentence", label: "y"))
        XCTAssertEqual(rows, [ClassificationExample(text: "hello", label: "1", line: 1),
                              ClassificationExample(text: "bye", label: "0", split: "dev", line: 3)])
    }

    /// Plain text (.txt, before any .zst; `-` too) is one row per line, no header: a blank line is a row
    /// with empty text (kept, so rows stay aligned with lines), CR before LF is dropped, a last line
    /// without a newline counts, and nothing more follows a final newline. It has no labels.
    func testPlainTextIsOneRowPerLineBlankLinesIncluded() throws {
        XCTAssertEqual(ClassificationReader.Format.implied(by: "a.txt"), .text)
        XCTAssertEqual(ClassificationReader.Format.implied(by: "dir/A.TXT.zst"), .text)
        XCTAssertEqual(ClassificationReader.Format.implied(by: "-"), .text)
        XCTAssertEqual(ClassificationReader.Format.implied(by: "a.tsv.zst"), .tsv)
        XCTAssertEqual(ClassificationReader.Format.implied(by: "a.dat"), .tsv)
        let p = try write("a.txt", "first text\r\n\n  \nlabel\ttab kept\nlast")
        let rows = try all(p, ClassificationColumns(requireLabel: false))
        XCTAssertEqual(rows.map(\.text), ["first text", "", "  ", "label\ttab kept", "last"])
        XCTAssertEqual(rows.map(\.line), [1, 2, 3, 4, 5])
        XCTAssertEqual(rows.map(\.textB), [nil, nil, nil, nil, nil])
        XCTAssertEqual(try all(try write("b.txt", "one\ntwo\n"), ClassificationColumns(requireLabel: false)).map(\.text), ["one", "two"])
        XCTAssertEqual(try all(try write("c.txt", ""), ClassificationColumns(requireLabel: false)), [])
        // A TSV read as plain text with --input-format: its header is a row like any other.
        let tsv = try write("d.tsv", "text\nhello\n")
        let r = try ClassificationReader(path: tsv, columns: ClassificationColumns(requireLabel: false), format: .text)
        XCTAssertEqual(try r.nextExample()?.text, "text")
        // Where labels are needed, plain text is refused, naming the file.
        XCTAssertThrowsError(try ClassificationReader(path: p)) { e in
            XCTAssertEqual(e as? ClassificationFileError, .plainTextHasNoLabels(path: p))
            XCTAssertTrue("\(e)".contains(p) && "\(e)".contains("label column"), "\(e)")
        }
    }

    func testErrorsNameTheFileAndLine() throws {
        func expect(_ name: String, _ text: String, _ check: (ClassificationFileError) -> Bool) throws {
            let p = try write(name, text)
            XCTAssertThrowsError(try all(p)) { e in
                guard let e = e as? ClassificationFileError else { return XCTFail("\(e)") }
                XCTAssertTrue(check(e), "\(e)")
                XCTAssertTrue("\(e)".contains(p), "\(e)")
            }
        }
        try expect("nolabel.tsv", "text\tcategory\nhi\tx\n") { $0 == .missingColumn(path: $0.path, column: "label", header: ["text", "category"]) }
        try expect("fields.tsv", "text\tlabel\nhi\tx\nthere\ty\textra\n") { "\($0)".contains("line 3") && "\($0)".contains("3 fields") }
        try expect("empty.tsv", "text\tlabel\n \tx\n") { "\($0)".contains("line 2") && "\($0)".contains("empty text") }
        try expect("nolabelvalue.csv", "text,label\nhi,\n") { "\($0)".contains("line 2") && "\($0)".contains("label") }
        try expect("quote.csv", "text,label\n\"open,x\n") { "\($0)".contains("line 2") && "\($0)".contains("not closed") }
        try expect("json.jsonl", "{\"text\": \"a\", \"label\": \"b\"}\n[1]\n") { "\($0)".contains("line 2") }
        try expect("split.tsv", "text\tlabel\tsplit\nhi\tx\tholdout\n") { "\($0)".contains("holdout") }
        try expect("nothing.tsv", "") { "\($0)".contains("no header") }
    }

    /// A real file (../shared's sentiment file, else the embedded fortunes one) reads row for row as a
    /// naive split of its lines on tabs says it should: TSV has no quoting.
    func testRealFileReadsEveryRow() throws {
        let path = try Fixtures.classificationFile()
        let rows = try all(path)
        var bytes: [UInt8] = []
        let source = try openInput(path)
        var buffer = [UInt8](repeating: 0, count: 1 << 16)
        while true {
            let n = try buffer.withUnsafeMutableBytes { try source.read(into: $0) }
            if n == 0 { break }
            bytes += buffer[0..<n]
        }
        let lines = String(decoding: bytes, as: UTF8.self).split(separator: "\n", omittingEmptySubsequences: false)
        XCTAssertEqual(lines.first, "split\tlabel\ttext")
        let naive = lines.dropFirst().filter { !$0.isEmpty }.map { $0.split(separator: "\t", omittingEmptySubsequences: false) }
        XCTAssertTrue(naive.allSatisfy { $0.count == 3 }, "three fields on every line")
        XCTAssertEqual(rows.count, naive.count)
        for (row, fields) in zip(rows, naive) where row.split != fields[0].lowercased() || row.label != fields[1] || row.text != fields[2] {
            XCTFail("line \(row.line): \(row) is not \(fields)")
            break
        }
        XCTAssertGreaterThan(Set(rows.map(\.label)).count, 1)
        XCTAssertEqual(Set(rows.map(\.split)), ["train", "test"])
        if path.hasSuffix("classification_en.tsv.zst") {
            // What DATA.md documents for the shared file.
            XCTAssertEqual(rows.filter { $0.split == "train" }.count, 4000)
            XCTAssertEqual(rows.filter { $0.split == "test" }.count, 1000)
            XCTAssertEqual(Set(rows.map(\.label)), ["great", "other"])
            let great = rows.filter { $0.split == "test" && $0.label == "great" }.count
            XCTAssertEqual(Double(great) / 1000, 0.658, accuracy: 0.0005)
            XCTAssertTrue(rows.contains { $0.text.hasPrefix("\"Good stuff\"") }, "a text that starts with a quote is kept as it is")
        }
    }
}

extension ClassificationFileError {
    var path: String {
        switch self {
        case let .unreadable(p, _), let .empty(p), let .missingColumn(p, _, _), let .wrongFieldCount(p, _, _, _), let .badQuoting(p, _, _),
             let .badJSON(p, _, _), let .emptyText(p, _, _), let .emptyLabel(p, _), let .badSplit(p, _, _), let .noTrainingRows(p), let .emptyTrainSubset(p, _),
             let .singleClass(p, _, _), let .unknownLabel(p, _, _, _, _), let .noRowsInSplit(p, _), let .plainTextHasNoLabels(p): return p
        }
    }
}

final class ExampleStoreTests: XCTestCase {
    /// A blank line of plain text is stored as a row without tokens (length 0), in its place; other rows
    /// hold the tokenizer's encoding. Only plain text can make such a row (TSV refuses an empty text).
    func testBlankPlainTextLinesAreRowsWithoutTokens() throws {
        let dir = Fixtures.temporaryDirectory()
        let txt = dir.appendingPathComponent("t.txt").path
        try Data("Hello world!\n\n \t\nsecond text\n".utf8).write(to: URL(fileURLWithPath: txt))
        let tokenizer = BertTokenizer(vocabulary: try Vocabulary.load(path: Fixtures.uncasedVocab))
        let store = try ExampleStore.build(path: dir.appendingPathComponent("p.examples").path,
                                           reader: try ClassificationReader(path: txt, columns: ClassificationColumns(requireLabel: false)),
                                           tokenizer: tokenizer, maxLength: 16, include: { _ in true }, label: { _ in -1 })
        XCTAssertEqual(store.count, 4)
        XCTAssertEqual(Array(store.example(0).ids), tokenizer.encode("Hello world!", maxLength: 16).ids)
        XCTAssertEqual(store.example(1).ids.count, 0)
        XCTAssertEqual(store.example(2).ids.count, 0)
        XCTAssertEqual(Array(store.example(3).ids), tokenizer.encode("second text", maxLength: 16).ids)
    }

    func testStoreHoldsTheTokenizerEncodingAndPads() throws {
        let dir = Fixtures.temporaryDirectory()
        let tsv = dir.appendingPathComponent("d.tsv").path
        // Five rows; `include` leaves out the two labelled "skip" (one first, one between kept rows).
        try Data(("text\ttext_b\tlabel\nleft out first\tz\tskip\nHello world!\tA second text.\tyes\nleft out too\tz\tskip\n"
                  + "Unwanted running, much longer text here\tshort\tno\nthird\tx\tyes\n").utf8)
            .write(to: URL(fileURLWithPath: tsv))
        let tokenizer = BertTokenizer(vocabulary: try Vocabulary.load(path: Fixtures.uncasedVocab))
        var offered: [String] = []
        let store = try ExampleStore.build(path: dir.appendingPathComponent("train.examples").path,
                                           reader: try ClassificationReader(path: tsv), tokenizer: tokenizer, maxLength: 8,
                                           include: { offered.append($0.text); return $0.label != "skip" },
                                           label: { $0.label == "yes" ? 1 : 0 })
        XCTAssertEqual(offered.count, 5, "every row is offered to include")
        XCTAssertEqual(store.count, 3)
        let reopened = try ExampleStore(path: store.path)
        XCTAssertEqual(reopened.count, 3)
        // The kept rows, in order, and nothing of the skipped ones.
        let kept = [("Hello world!", "A second text."), ("Unwanted running, much longer text here", "short"), ("third", "x")]
        for (i, (a, b)) in kept.enumerated() {
            XCTAssertEqual(Array(reopened.example(i).ids), tokenizer.encode(a, pair: b, maxLength: 8).ids, "example \(i) is \(a)")
        }
        let leftOut = tokenizer.encode("left out", maxLength: 8).ids.dropFirst().dropLast()  // without [CLS] … [SEP]
        for i in 0..<reopened.count { XCTAssertFalse(Array(reopened.example(i).ids).contains(Int32(leftOut.first!)), "example \(i)") }
        let expected = tokenizer.encode("Unwanted running, much longer text here", pair: "short", maxLength: 8)
        let e = reopened.example(1)
        XCTAssertEqual(Array(e.ids), expected.ids)
        XCTAssertEqual(e.segmentA, expected.typeIds.firstIndex(of: 1))
        XCTAssertEqual(e.label, 0)
        let b = reopened.batch([0, 2])
        XCTAssertEqual(b.seqLength, reopened.example(0).ids.count)
        XCTAssertEqual(b.labels, [1, 1])
        XCTAssertEqual(b.mask.filter { $0 == 1 }.count, reopened.example(0).ids.count + reopened.example(2).ids.count)
        XCTAssertEqual(Array(b.types[0..<b.seqLength]), tokenizer.encode("Hello world!", pair: "A second text.", maxLength: 8).typeIds)
    }
}
