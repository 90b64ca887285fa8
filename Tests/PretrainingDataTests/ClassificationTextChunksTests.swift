import Support
import Foundation
import ClassificationData
import TestSupport
import XCTest

@testable import PretrainingData

/// A classification file as pre-training text (task-adaptive pre-training): its train rows only.
final class ClassificationTextChunksTests: XCTestCase {
    func text(_ path: String, _ columns: ClassificationColumns = ClassificationColumns(requireLabel: false)) throws -> String {
        let source = try ClassificationTextChunks(path: path, columns: columns, chunkSize: 16)  // several chunks
        var out: [UInt8] = []
        while let c = try source.next() {
            XCTAssertTrue(c.fromJSONL, "free text: sentences found with ICU")
            out += c.bytes
        }
        return String(decoding: out, as: UTF8.self)
    }

    func testOnlyTheTrainRowsEachADocument() throws {
        let dir = Fixtures.temporaryDirectory()
        let tsv = dir.appendingPathComponent("d.tsv").path
        try Data(("split\ttext\ttext_b\tlabel\ntrain\tFirst one. Two.\tIts pair.\ta\ntest\tSecret test text.\tNo.\tb\n"
                  + "dev\tDev text.\tx\ta\ntrain\tSecond\tpair two\tb\n").utf8).write(to: URL(fileURLWithPath: tsv))
        XCTAssertEqual(try text(tsv), "First one. Two.\nIts pair.\n\nSecond\npair two\n\n")
        let csv = dir.appendingPathComponent("d.csv").path
        try Data("body,label\n\"multi\nline\",a\nplain,b\n".utf8).write(to: URL(fileURLWithPath: csv))
        XCTAssertEqual(try text(csv, ClassificationColumns(text: "body", requireLabel: false)), "multi line\n\nplain\n\n",
                       "no split column: every row; a text's newlines do not cut it")
        XCTAssertTrue(ClassificationTextChunks.isClassificationFile("a.tsv.zst"))
        XCTAssertTrue(ClassificationTextChunks.isClassificationFile("A.CSV"))
        XCTAssertFalse(ClassificationTextChunks.isClassificationFile("a.txt"))
        XCTAssertFalse(ClassificationTextChunks.isClassificationFile("a.jsonl"))
        XCTAssertFalse(ClassificationTextChunks.isClassificationFile("a.dat"), "only .tsv/.csv names, not TSV by default")
        XCTAssertThrowsError(try text(csv)) { e in XCTAssertTrue("\(e)".contains("no column \"text\""), "\(e)") }
    }
}
