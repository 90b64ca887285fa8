import Support
import Foundation
import WordPiece

/// Tokenized classification examples in one memory-mapped file of fixed-size records, so that
/// fine-tuning can shuffle and batch them every epoch without holding the examples in memory.
///
/// File `NAME.examples` (little-endian): a 16-byte header — magic "BKEXMPL1", max length (UInt32),
/// record count (UInt32) — then per record: length n (UInt16), segment A length (UInt16, [CLS] A [SEP];
/// n when there is no B), label (Int32, −1 when unknown), then maxLength ids (Int32, 0 after n).
/// n = 0 marks a row without text (a blank line of plain-text input): it has no tokens, and
/// `bert predict` gives it an empty prediction. Written to a temporary name and renamed.
public final class ExampleStore: @unchecked Sendable {
    static let magic: [UInt8] = Array("BKEXMPL1".utf8)
    public let path: String
    public let maxLength: Int
    public let count: Int
    let file: MappedFile
    var recordBytes: Int { 8 + 4 * maxLength }

    /// Opens a store file.
    public init(path: String) throws {
        file = try MappedFile(path: path)
        guard file.count >= 16, let p = file.pointer, Array(UnsafeRawBufferPointer(start: p, count: 8)) == Self.magic else {
            throw ExampleStoreError.corrupt(path: path, reason: "not an example store")
        }
        self.path = path
        maxLength = Int(p.loadUnaligned(fromByteOffset: 8, as: UInt32.self))
        count = Int(p.loadUnaligned(fromByteOffset: 12, as: UInt32.self))
        guard file.count == 16 + count * (8 + 4 * maxLength) else {
            throw ExampleStoreError.corrupt(path: path, reason: "\(file.count) bytes for \(count) records of length \(maxLength)")
        }
    }

    /// Record `i`: its ids (length n), segment A length and label.
    public func example(_ i: Int) -> (ids: UnsafeBufferPointer<Int32>, segmentA: Int, label: Int32) {
        let base = file.pointer! + 16 + i * recordBytes
        let n = Int(base.loadUnaligned(as: UInt16.self))
        let a = Int(base.loadUnaligned(fromByteOffset: 2, as: UInt16.self))
        let label = base.loadUnaligned(fromByteOffset: 4, as: Int32.self)
        return (UnsafeBufferPointer(start: (base + 8).assumingMemoryBound(to: Int32.self), count: n), a, label)
    }

    /// Tokenizes the examples `reader` gives (those `include` accepts) into a store at `path`.
    /// `label` maps a label to its id (nil: an unknown label, an error it throws itself).
    @discardableResult
    public static func build(path: String, reader: ClassificationReader, tokenizer: BertTokenizer, maxLength: Int,
                             include: (ClassificationExample) -> Bool, label: (ClassificationExample) throws -> Int32) throws -> ExampleStore {
        let temporary = path + ".tmp-\(getpid())"
        let fd = open(temporary, O_WRONLY | O_CREAT | O_TRUNC, 0o644)
        guard fd >= 0 else { throw OutputError.writeFailed(path: temporary, reason: String(cString: strerror(errno))) }
        let writer = FileDescriptorWriter(fd: fd, name: temporary)
        var ok = false
        defer {
            close(fd)
            if !ok { unlink(temporary) }
        }
        var header = magic
        header += withUnsafeBytes(of: UInt32(maxLength).littleEndian) { Array($0) }
        header += [0, 0, 0, 0]
        try writer.write(header)
        var record = [UInt8](repeating: 0, count: 8 + 4 * maxLength)
        var n = 0
        let scratch = BertTokenizer.Scratch()
        while let e = try reader.nextExample() {
            guard include(e) else { continue }
            let blank = reader.format == .text && e.text.allSatisfy(\.isWhitespace)
            let encoding = blank ? Encoding(ids: [], typeIds: []) : tokenizer.encode(e.text, pair: e.textB, maxLength: maxLength, scratch: scratch)
            let id = try label(e)
            let a = e.textB == nil ? encoding.ids.count : (encoding.typeIds.firstIndex(of: 1) ?? encoding.ids.count)
            record.withUnsafeMutableBytes { r in
                r.initializeMemory(as: UInt8.self, repeating: 0)
                r.storeBytes(of: UInt16(encoding.ids.count).littleEndian, toByteOffset: 0, as: UInt16.self)
                r.storeBytes(of: UInt16(a).littleEndian, toByteOffset: 2, as: UInt16.self)
                r.storeBytes(of: id.littleEndian, toByteOffset: 4, as: Int32.self)
                for (j, t) in encoding.ids.enumerated() { r.storeBytes(of: t.littleEndian, toByteOffset: 8 + 4 * j, as: Int32.self) }
            }
            try writer.write(record)
            n += 1
        }
        guard lseek(fd, 12, SEEK_SET) == 12 else { throw OutputError.writeFailed(path: temporary, reason: "seek failed") }
        try writer.write(withUnsafeBytes(of: UInt32(n).littleEndian) { Array($0) })
        fsync(fd)
        guard rename(temporary, path) == 0 else { throw OutputError.writeFailed(path: path, reason: String(cString: strerror(errno))) }
        ok = true
        return try ExampleStore(path: path)
    }

    /// A padded batch of examples `indices`: ids, token types and attention mask (B, T) with T the
    /// longest example, and the labels (B,).
    public func batch(_ indices: ArraySlice<Int>) -> (seqLength: Int, ids: [Int32], types: [Int32], mask: [Int32], labels: [Int32]) {
        let t = indices.map { example($0).ids.count }.max() ?? 1
        var ids = [Int32](repeating: 0, count: indices.count * t), types = ids, mask = ids
        var labels: [Int32] = []
        for (row, i) in indices.enumerated() {
            let e = example(i)
            for j in 0..<e.ids.count {
                ids[row * t + j] = e.ids[j]
                mask[row * t + j] = 1
                types[row * t + j] = j < e.segmentA ? 0 : 1
            }
            labels.append(e.label)
        }
        return (t, ids, types, mask, labels)
    }
}

/// A damaged example store (a cache under the fine-tuning output): delete it and run again.
public enum ExampleStoreError: Error, CustomStringConvertible {
    case corrupt(path: String, reason: String)

    public var description: String {
        switch self {
        case let .corrupt(path, reason): return "\(path): example store is damaged (\(reason)); delete it and run again"
        }
    }
}
