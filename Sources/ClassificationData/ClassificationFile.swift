import Support
import Foundation

/// Errors reading a classification file; each names the file and line (or field) and says what to do.
public enum ClassificationFileError: Error, Equatable, CustomStringConvertible {
    case unreadable(path: String, reason: String)
    case empty(path: String)
    case missingColumn(path: String, column: String, header: [String])
    case wrongFieldCount(path: String, line: Int, expected: Int, found: Int)
    case badQuoting(path: String, line: Int, reason: String)
    case badJSON(path: String, line: Int, reason: String)
    case emptyText(path: String, line: Int, column: String)
    case emptyLabel(path: String, line: Int)
    case badSplit(path: String, line: Int, value: String)
    /// The file has no row to train on.
    case noTrainingRows(path: String)
    /// `--train-fraction` kept none of the training rows.
    case emptyTrainSubset(path: String, fraction: Double)
    /// Every training row has the same label.
    case singleClass(path: String, column: String, label: String)
    /// An evaluation row's label is not among `known`: the training rows' labels (`ofModel` false) or a
    /// fine-tuned model's (`ofModel` true).
    case unknownLabel(path: String, line: Int, label: String, known: [String], ofModel: Bool)
    /// No row of the file is in the requested split (nil: the file has no rows).
    case noRowsInSplit(path: String, split: String?)
    /// A plain-text file (one text per line) where labels are needed.
    case plainTextHasNoLabels(path: String)

    public var description: String {
        switch self {
        case let .unreadable(path, reason): return "\(path): cannot read (\(reason))"
        case let .empty(path): return "\(path): no header and no rows; give a TSV, CSV or JSONL file with a header"
        case let .missingColumn(path, column, header):
            return "\(path): line 1: no column \"\(column)\" in the header (\(header.joined(separator: ", "))); "
                + "rename the column or name it with --\(column.replacingOccurrences(of: "_", with: "-"))-column"
        case let .wrongFieldCount(path, line, expected, found):
            return "\(path): line \(line): \(found) fields, the header has \(expected); quote fields that contain the separator"
        case let .badQuoting(path, line, reason): return "\(path): line \(line): \(reason)"
        case let .badJSON(path, line, reason): return "\(path): line \(line): not a JSON object (\(reason))"
        case let .emptyText(path, line, column): return "\(path): line \(line): empty \(column); remove the row or fill it in"
        case let .emptyLabel(path, line): return "\(path): line \(line): empty label; every row needs one"
        case let .badSplit(path, line, value):
            return "\(path): line \(line): split \"\(value)\" is not train, dev, validation or test"
        case let .noTrainingRows(path): return "\(path): no training rows (split \"train\", or rows without a split)"
        case let .emptyTrainSubset(path, fraction):
            return "\(path): a train fraction of \(fraction) keeps none of its training rows; raise --train-fraction"
        case let .singleClass(path, column, label):
            return "\(path): the \(column) column has one class only (\(label)); a classifier needs at least 2"
        case let .unknownLabel(path, line, label, known, ofModel):
            return "\(path): line \(line): label \"\(label)\" "
                + (ofModel ? "is not one of the model's" : "never occurs in the training rows") + " (\(known.joined(separator: ", ")))"
        case let .noRowsInSplit(path, split): return "\(path): no rows\(split.map { " with split \($0)" } ?? "")"
        case let .plainTextHasNoLabels(path):
            return "\(path): plain text (one text per line) has no labels; give a TSV, CSV or JSONL file with a header and a label column"
        }
    }
}

/// One labelled example.
public struct ClassificationExample: Equatable, Sendable {
    public var text: String
    /// The second text of a pair (text_b), if any.
    public var textB: String?
    /// The label as written in the file.
    public var label: String
    /// train, dev or test when the file has a split column.
    public var split: String?
    /// The line the row starts on (1 = header), for messages.
    public var line: Int

    public init(text: String, textB: String? = nil, label: String, split: String? = nil, line: Int) {
        self.text = text
        self.textB = textB
        self.label = label
        self.split = split
        self.line = line
    }
}

/// Column names of a classification file.
public struct ClassificationColumns: Sendable, Equatable {
    public var text = "text"
    public var textB = "text_b"
    public var label = "label"
    public var split = "split"
    /// Whether rows must have a label (false for `bert predict`).
    public var requireLabel = true
    public init(text: String = "text", textB: String = "text_b", label: String = "label", split: String = "split", requireLabel: Bool = true) {
        self.text = text
        self.textB = textB
        self.label = label
        self.split = split
        self.requireLabel = requireLabel
    }
}

/// Streams the rows of a TSV, CSV or JSONL classification file (optionally zstd-compressed) with a
/// header naming the columns, or of plain text (one text per line, no header, no labels: for
/// `bert predict`). The format comes from the extension (.tsv, .csv, .jsonl/.json, .txt, before any
/// .zst; standard input, `-`, is plain text) unless given. In plain text every line is one row, an
/// empty or blank one included (its text is empty: `ExampleStore` keeps it as a row without tokens),
/// so rows stay aligned with the input's lines. TSV fields are split on tabs with no quoting, as google-research/bert's
/// run_classifier.py reads them (csv.reader with quotechar=None): a text may begin with a quote.
/// CSV follows RFC 4180 (quoted fields, doubled quotes, newlines inside quotes).
/// Rows are read one at a time: memory does not grow with the file.
public final class ClassificationReader: Sequence, IteratorProtocol {
    public enum Format: String, Sendable, CaseIterable {
        case tsv, csv, jsonl
        /// One text per line, no header.
        case text = "txt"

        /// The format a file name implies (.csv, .jsonl/.json, .txt, before any .zst; `-` is plain text; else TSV).
        public static func implied(by path: String) -> Format {
            if path == "-" { return .text }
            var name = (path as NSString).lastPathComponent.lowercased()
            if name.hasSuffix(".zst") { name = String(name.dropLast(4)) }
            if name.hasSuffix(".csv") { return .csv }
            if name.hasSuffix(".jsonl") || name.hasSuffix(".json") { return .jsonl }
            if name.hasSuffix(".txt") { return .text }
            return .tsv
        }
    }

    public let path: String
    public let format: Format
    public let columns: ClassificationColumns
    let source: ByteSource
    var buffer: [UInt8] = []
    var bufferStart = 0
    var eof = false
    var lineNumber = 0
    var header: [String] = []
    var index: (text: Int, textB: Int?, label: Int?, split: Int?) = (0, nil, nil, nil)
    /// The first error met while iterating (iteration then stops); check it after the loop.
    public private(set) var error: ClassificationFileError?

    /// Opens a file (`-`: standard input) and reads its header; `format` overrides the one the name implies.
    public init(path: String, columns: ClassificationColumns = ClassificationColumns(), format: Format? = nil) throws(ClassificationFileError) {
        self.path = path
        self.columns = columns
        self.format = format ?? Format.implied(by: path)
        if self.format == .text && columns.requireLabel { throw .plainTextHasNoLabels(path: path) }
        do { source = try openInput(path) } catch { throw .unreadable(path: path, reason: "\(error)") }
        if self.format == .tsv || self.format == .csv {
            guard let fields = try readRecord() else { throw .empty(path: path) }
            header = fields.map { $0.trimmingCharacters(in: .whitespaces) }
            func column(_ name: String) -> Int? { header.firstIndex(of: name) }
            guard let t = column(columns.text) else { throw .missingColumn(path: path, column: columns.text, header: header) }
            let l = column(columns.label)
            if columns.requireLabel && l == nil { throw .missingColumn(path: path, column: columns.label, header: header) }
            index = (t, column(columns.textB), l, column(columns.split))
        }
    }

    /// The next example; nil at the end or after an error (see `error`).
    public func next() -> ClassificationExample? {
        do throws(ClassificationFileError) {
            return try nextExample()
        } catch {
            self.error = error
            return nil
        }
    }

    /// The next example, throwing on bad rows.
    public func nextExample() throws(ClassificationFileError) -> ClassificationExample? {
        if error != nil { return nil }
        while true {
            if format == .text {
                guard let (line, bytes) = try readLine() else { return nil }
                return ClassificationExample(text: String(decoding: bytes, as: UTF8.self), label: "", line: line)
            }
            if format == .jsonl {
                guard let (line, bytes) = try readLine() else { return nil }
                if bytes.allSatisfy({ $0 == 0x20 || $0 == 0x09 || $0 == 0x0D }) { continue }
                return try jsonExample(bytes, line: line)
            }
            let startLine = lineNumber + 1
            guard let fields = try readRecord() else { return nil }
            if fields.count == 1 && fields[0].isEmpty { continue }  // blank line
            guard fields.count == header.count else {
                throw .wrongFieldCount(path: path, line: startLine, expected: header.count, found: fields.count)
            }
            return try example(text: fields[index.text], textB: index.textB.map { fields[$0] },
                               label: index.label.map { fields[$0] }, split: index.split.map { fields[$0] }, line: startLine)
        }
    }

    func example(text: String, textB: String?, label: String?, split: String?, line: Int) throws(ClassificationFileError) -> ClassificationExample {
        guard !text.trimmingCharacters(in: .whitespacesAndNewlines).isEmpty else {
            throw .emptyText(path: path, line: line, column: columns.text)
        }
        if let textB, textB.trimmingCharacters(in: .whitespacesAndNewlines).isEmpty {
            throw .emptyText(path: path, line: line, column: columns.textB)
        }
        let l = label?.trimmingCharacters(in: .whitespaces) ?? ""
        if columns.requireLabel && l.isEmpty { throw .emptyLabel(path: path, line: line) }
        var s = split?.trimmingCharacters(in: .whitespaces).lowercased()
        if let v = s {
            switch v {
            case "train", "test": break
            case "dev", "validation", "valid", "val": s = "dev"
            case "": s = nil
            default: throw .badSplit(path: path, line: line, value: v)
            }
        }
        return ClassificationExample(text: text, textB: textB, label: l, split: s, line: line)
    }

    func jsonExample(_ bytes: [UInt8], line: Int) throws(ClassificationFileError) -> ClassificationExample {
        let object: [String: Any]
        do {
            guard let o = try JSONSerialization.jsonObject(with: Data(bytes)) as? [String: Any] else {
                throw ClassificationFileError.badJSON(path: path, line: line, reason: "not an object")
            }
            object = o
        } catch let e as ClassificationFileError {
            throw e
        } catch {
            throw .badJSON(path: path, line: line, reason: "\(error.localizedDescription)")
        }
        func string(_ key: String) -> String? {
            switch object[key] {
            case let s as String: return s
            case let n as NSNumber: return n.stringValue
            default: return nil
            }
        }
        guard let text = string(columns.text) else {
            throw .missingColumn(path: path, column: columns.text, header: object.keys.sorted())
        }
        let label = string(columns.label)
        if columns.requireLabel && label == nil { throw .missingColumn(path: path, column: columns.label, header: object.keys.sorted()) }
        return try example(text: text, textB: string(columns.textB), label: label, split: string(columns.split), line: line)
    }

    // MARK: - Reading

    /// Ensures at least one byte is buffered past `bufferStart`; false at end of file.
    func fill() throws(ClassificationFileError) -> Bool {
        if bufferStart < buffer.count { return true }
        if eof { return false }
        buffer.removeAll(keepingCapacity: true)
        bufferStart = 0
        buffer = [UInt8](repeating: 0, count: 1 << 16)
        let n: Int
        do { n = try buffer.withUnsafeMutableBytes { try source.read(into: $0) } } catch {
            throw .unreadable(path: path, reason: "\(error)")
        }
        buffer.removeSubrange(n...)
        if n == 0 { eof = true }
        return n > 0
    }

    /// One physical line without its newline (and without a trailing CR).
    func readLine() throws(ClassificationFileError) -> (Int, [UInt8])? {
        var line: [UInt8] = []
        var any = false
        while try fill() {
            any = true
            if let nl = buffer[bufferStart...].firstIndex(of: 0x0A) {
                line += buffer[bufferStart..<nl]
                bufferStart = nl + 1
                lineNumber += 1
                if line.last == 0x0D { line.removeLast() }
                return (lineNumber, line)
            }
            line += buffer[bufferStart...]
            bufferStart = buffer.count
        }
        guard any || !line.isEmpty else { return nil }
        lineNumber += 1
        if line.last == 0x0D { line.removeLast() }
        return (lineNumber, line)
    }

    /// One record: fields split on the separator, with quoted fields that may span lines.
    func readRecord() throws(ClassificationFileError) -> [String]? {
        let separator: UInt8 = format == .csv ? 0x2C : 0x09
        guard let (firstLine, first) = try readLine() else { return nil }
        var fields: [String] = []
        var field: [UInt8] = []
        var line = first
        var i = 0
        var quoted = false
        var fieldStart = true
        while true {
            if i == line.count {
                if quoted {  // newline inside quotes: the record goes on
                    guard let (_, more) = try readLine() else {
                        throw .badQuoting(path: path, line: firstLine, reason: "a quoted field is not closed before the end of the file")
                    }
                    field.append(0x0A)
                    line = more
                    i = 0
                    continue
                }
                fields.append(String(decoding: field, as: UTF8.self))
                return fields
            }
            let c = line[i]
            if quoted {
                if c == 0x22 {
                    if i + 1 < line.count && line[i + 1] == 0x22 {
                        field.append(0x22)
                        i += 2
                        continue
                    }
                    quoted = false
                    i += 1
                    if i < line.count && line[i] != separator {
                        throw .badQuoting(path: path, line: lineNumber, reason: "text after a closing quote; double quotes inside a quoted field")
                    }
                    continue
                }
                field.append(c)
                i += 1
            } else if c == separator {
                fields.append(String(decoding: field, as: UTF8.self))
                field.removeAll(keepingCapacity: true)
                fieldStart = true
                i += 1
            } else if c == 0x22 && fieldStart && format == .csv {
                quoted = true
                fieldStart = false
                i += 1
            } else {
                field.append(c)
                fieldStart = false
                i += 1
            }
        }
    }
}
