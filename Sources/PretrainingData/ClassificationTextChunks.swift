import Foundation
import ClassificationData
import Support

/// A classification file's text as pre-training text (task-adaptive pre-training, Gururangan et al.
/// 2020): the rows of its train split only, each a document (its text, then its text_b as the next
/// sentence), sentences found with ICU. A test split is never read past its rows' split field, and a
/// dev split is left out too: a model adapted on held-out rows would have seen them. A file without a
/// split column gives every row. TSV and CSV (optionally zstd-compressed) are read this way by `bert
/// shards` and `bert vocab` (`opener`); plain text and JSONL stay corpora.
public final class ClassificationTextChunks: TextChunkSource {
    /// The split read.
    public static let split = "train"
    let reader: ClassificationReader
    let chunkSize: Int
    /// Rows read into chunks so far (for the index).
    public private(set) var rows = 0

    public init(path: String, columns: ClassificationColumns, chunkSize: Int = 1 << 20) throws {
        var columns = columns
        columns.requireLabel = false
        reader = try ClassificationReader(path: path, columns: columns)
        self.chunkSize = chunkSize
    }

    public func next() throws -> TextChunk? {
        var bytes: [UInt8] = []
        var first = 0
        while bytes.count < chunkSize, let e = try reader.nextExample() {
            guard (e.split ?? Self.split) == Self.split else { continue }
            if first == 0 { first = e.line }
            for text in [e.text, e.textB].compactMap({ $0 }) {
                // One line per text: its own newlines would split it as lines do elsewhere; ICU finds sentences.
                bytes.append(contentsOf: text.utf8.map { $0 == 0x0A || $0 == 0x0D ? 0x20 : $0 })
                bytes.append(0x0A)
            }
            bytes.append(0x0A)  // a blank line ends the row's document
            rows += 1
        }
        return bytes.isEmpty ? nil : TextChunk(bytes: bytes, startsMidLine: false, endsMidLine: false, firstLine: max(1, first), fromJSONL: true)
    }

    /// Whether `bert shards` and `bert vocab` read `path` as a classification file: .tsv or .csv (before
    /// any .zst).
    public static func isClassificationFile(_ path: String) -> Bool {
        let format = ClassificationReader.Format.implied(by: path)
        var name = (path as NSString).lastPathComponent.lowercased()
        if name.hasSuffix(".zst") { name = String(name.dropLast(4)) }
        return (format == .tsv && name.hasSuffix(".tsv")) || format == .csv
    }

    /// The opener for `CorpusTextChunks`: classification files through this reader, other files as before.
    public static func opener(columns: ClassificationColumns) -> CorpusOpener {
        { path in isClassificationFile(path) ? try ClassificationTextChunks(path: path, columns: columns) : nil }
    }
}
