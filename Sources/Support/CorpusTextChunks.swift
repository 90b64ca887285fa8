import Foundation

/// The kind of a corpus file, from its name (`.zst` stripped first).
public enum CorpusFormat: Sendable, Equatable {
    /// Plain text: one sentence per line or free text; blank lines separate documents.
    case text
    /// JSON Lines with a `"text"` field, one document per object.
    case jsonl

    public init(path: String) {
        var p = path.lowercased()
        if p.hasSuffix(".zst") { p.removeLast(4) }
        self = p.hasSuffix(".jsonl") || p.hasSuffix(".ndjson") ? .jsonl : .text
    }
}

/// Extra errors for corpus files.
public enum CorpusError: Error, Equatable, CustomStringConvertible {
    case badJSONLine(path: String, line: Int, reason: String)

    public var description: String {
        switch self {
        case let .badJSONLine(path, line, reason):
            return "\(path):\(line): \(reason); each line must be a JSON object with a string \"text\" field"
        }
    }
}

/// Something that hands out a corpus's text chunk by chunk.
public protocol TextChunkSource: AnyObject {
    /// The next chunk, or nil at the end.
    func next() throws -> TextChunk?
}

/// Opens a corpus file of a format the caller knows (e.g. a classification file's train rows); nil for
/// a file it does not take, which is then read as plain text or JSONL.
public typealias CorpusOpener = (_ path: String) throws -> TextChunkSource?

/// Streams the text of corpus files as chunks of whole lines, for parallel processing.
/// JSONL objects become their `"text"` (newlines inside it kept) followed by a blank line. Files that
/// `opener` takes are read through the source it returns.
public final class CorpusTextChunks: TextChunkSource {
    let paths: [String]
    let chunkSize: Int
    let opener: CorpusOpener?
    var index = 0
    var chunker: LineChunker?
    var other: TextChunkSource?
    var format: CorpusFormat = .text
    var current = ""

    public init(paths: [String], chunkSize: Int = 1 << 20, opener: CorpusOpener? = nil) {
        self.paths = paths
        self.chunkSize = chunkSize
        self.opener = opener
    }

    /// Bytes read so far from the current file (for progress).
    public private(set) var filesDone = 0

    /// The next chunk of text, or nil when every file is read.
    public func next() throws -> TextChunk? {
        while true {
            if let source = other {
                if let c = try source.next() { return c }
                other = nil
                filesDone += 1
                continue
            }
            if chunker == nil {
                guard index < paths.count else { return nil }
                current = paths[index]
                index += 1
                if let source = try opener?(current) {
                    other = source
                    continue
                }
                format = CorpusFormat(path: current)
                chunker = LineChunker(source: try openInput(current), chunkSize: chunkSize, wholeLines: format == .jsonl)
            }
            if let c = try chunker!.next() {
                return format == .jsonl ? try Self.jsonlToText(c, path: current) : c
            }
            chunker = nil
            filesDone += 1
        }
    }

    static func jsonlToText(_ c: TextChunk, path: String) throws -> TextChunk {
        var out: [UInt8] = []
        out.reserveCapacity(c.bytes.count)
        var lineNo = c.firstLine
        for line in c.bytes.split(separator: UInt8(ascii: "\n"), omittingEmptySubsequences: false) {
            defer { lineNo += 1 }
            if line.allSatisfy({ $0 == 0x20 || $0 == 0x09 || $0 == 0x0D }) { continue }
            let obj: Any
            do { obj = try JSONSerialization.jsonObject(with: Data(line), options: [.fragmentsAllowed]) } catch {
                throw CorpusError.badJSONLine(path: path, line: lineNo, reason: "not valid JSON")
            }
            guard let dict = obj as? [String: Any] else { throw CorpusError.badJSONLine(path: path, line: lineNo, reason: "not a JSON object") }
            guard let text = dict["text"] as? String else { throw CorpusError.badJSONLine(path: path, line: lineNo, reason: "no string \"text\" field") }
            out.append(contentsOf: text.utf8)
            out.append(contentsOf: [0x0A, 0x0A])
        }
        return TextChunk(bytes: out, startsMidLine: false, endsMidLine: false, firstLine: c.firstLine, fromJSONL: true)
    }
}
