import Support
import Foundation

/// A shard directory, checked: `index.json` parses and is consistent, every listed shard exists
/// with its listed size, no unlisted `shard-*.bin.zst` lies beside them, and (if asked) the
/// vocabulary is the expected one. Contents are checked by `verify()` and by each `ShardReader`.
public struct ShardSet: Sendable {
    /// The directory.
    public let directory: String
    /// Its index.
    public let index: ShardIndex
    /// The record layout every shard must have.
    public let layout: ShardLayout

    /// Opens and checks a shard directory. `expectedVocabSHA256`: hex sha256 of the vocab.txt in
    /// use; shards built from another vocabulary are an error.
    public init(directory: String, expectedVocabSHA256: String? = nil) throws(ShardError) {
        let fm = FileManager.default
        var isDirectory: ObjCBool = false
        guard fm.fileExists(atPath: directory, isDirectory: &isDirectory) else { throw .notFound(path: directory) }
        guard isDirectory.boolValue else { throw .badIndex(path: directory, reason: "not a directory; give a shard directory") }
        let indexPath = (directory as NSString).appendingPathComponent(ShardIndex.fileName)
        guard fm.fileExists(atPath: indexPath) else { throw .missingIndex(directory: directory) }
        let index = try ShardIndex.load(path: indexPath)
        if let expected = expectedVocabSHA256, expected.lowercased() != index.vocabSHA256 {
            throw .vocabularyMismatch(path: indexPath, expected: expected.lowercased(), found: index.vocabSHA256)
        }
        self.directory = directory
        self.index = index
        do { layout = try index.layout() } catch { throw .badIndex(path: indexPath, reason: "\(error)") }

        for shard in index.shards {
            let path = (directory as NSString).appendingPathComponent(shard.file)
            guard let size = fileSize(path) else { throw .missingShard(path: path) }
            guard size == shard.compressedBytes else { throw .sizeMismatch(path: path, expected: shard.compressedBytes, actual: size) }
        }
        let listed = Set(index.shards.map(\.file))
        let present: [String]
        do { present = try fm.contentsOfDirectory(atPath: directory) } catch {
            throw .readFailed(path: directory, reason: error.localizedDescription)
        }
        for name in present.sorted() where looksLikeShardFile(name) && !listed.contains(name) {
            throw .unlistedShard(path: (directory as NSString).appendingPathComponent(name))
        }
    }

    /// The path of a listed shard.
    public func path(of shard: ShardEntry) -> String {
        (directory as NSString).appendingPathComponent(shard.file)
    }

    /// Checks the sha256 of every shard file against the index.
    public func verify() throws(ShardError) {
        for shard in index.shards { try checkSHA256(path: path(of: shard), expected: shard.sha256) }
    }

    /// A reader over one listed shard, checked against the index (size, sha256 unless
    /// `verifyChecksum` is false, header layout, record count, raw size).
    public func reader(for shard: ShardEntry, verifyChecksum: Bool = true) throws(ShardError) -> ShardReader {
        try ShardReader(path: path(of: shard), expected: shard, expectedLayout: layout, verifyChecksum: verifyChecksum)
    }
}

/// Streams the instances of one shard file, validating as it goes. Works on a lone shard file too
/// (`bert inspect SHARD`); with an index entry it also checks size and sha256 before decompressing.
public final class ShardReader {
    /// The shard file.
    public let path: String
    /// Its header (layout and record count).
    public let header: ShardHeader
    /// Records decoded so far.
    public private(set) var instancesRead = 0
    let source: ZstdSource
    /// Decompressed bytes consumed so far.
    var offset = 0
    /// (recordSize,) the record being decoded.
    var record: [UInt8]

    /// Checks that a vocabulary of `count` tokens (read from `vocabularyPath`) is the size this shard
    /// was built for, so that every id decodes; the sha256 check against index.json is stronger and
    /// is `ShardSet`'s.
    public func requireVocabulary(count: Int, vocabularyPath: String) throws(ShardError) {
        guard count == header.layout.vocabularySize else {
            throw .vocabularySizeMismatch(path: path, shardVocabularySize: header.layout.vocabularySize,
                                          vocabularyPath: vocabularyPath, vocabularySize: count)
        }
    }

    /// Opens a shard. `expected`: its entry in index.json (size and checksum checked before any
    /// byte is trusted, record count and raw size after the header). `expectedLayout`: the layout
    /// the index implies. `verifyChecksum`: hash the whole file first (with `expected`).
    public init(path: String, expected: ShardEntry? = nil, expectedLayout: ShardLayout? = nil, verifyChecksum: Bool = true) throws(ShardError) {
        self.path = path
        var isDirectory: ObjCBool = false
        if FileManager.default.fileExists(atPath: path, isDirectory: &isDirectory), isDirectory.boolValue {
            throw .readFailed(path: path, reason: "is a directory; open it as a ShardSet")
        }
        guard let size = fileSize(path) else { throw .notFound(path: path) }
        if let expected {
            guard size == expected.compressedBytes else { throw .sizeMismatch(path: path, expected: expected.compressedBytes, actual: size) }
            if verifyChecksum { try checkSHA256(path: path, expected: expected.sha256) }
        }
        do { source = ZstdSource(try FileDescriptorSource(path: path)) } catch { throw .readFailed(path: path, reason: "\(error)") }
        var headerBytes = [UInt8](repeating: 0, count: ShardLayout.headerSize)  // (48,)
        let got = try Self.readFully(source, into: &headerBytes, path: path)
        offset = got
        guard got == ShardLayout.headerSize else { throw .truncated(path: path, offset: got, expected: ShardLayout.headerSize) }
        let header = try headerBytes.withShardBytes { (b) throws(ShardError) in try ShardHeader.decode(b, path: path) }
        if let layout = expectedLayout, layout != header.layout {
            throw .badHeader(path: path, offset: 12, reason: "layout \(header.layout) differs from index.json's \(layout)")
        }
        if let expected {
            guard header.recordCount == expected.instances else {
                throw .badHeader(path: path, offset: 24, reason: "\(header.recordCount) records, index.json lists \(expected.instances)")
            }
            guard header.rawByteCount == expected.rawBytes else {
                throw .badHeader(path: path, offset: 20, reason: "\(header.rawByteCount) raw bytes, index.json lists \(expected.rawBytes)")
            }
        }
        self.header = header
        record = [UInt8](repeating: 0, count: header.layout.recordSize)
    }

    /// The next instance, or nil after the last one (when the data is checked to end there).
    public func next() throws(ShardError) -> TrainingInstance? {
        if instancesRead == header.recordCount {
            var extra = [UInt8](repeating: 0, count: 1)
            if try Self.readFully(source, into: &extra, path: path) > 0 { throw .trailingData(path: path, offset: offset) }
            return nil
        }
        let got = try Self.readFully(source, into: &record, path: path)
        guard got == record.count else { throw .truncated(path: path, offset: offset + got, expected: header.rawByteCount) }
        let at = offset
        let instance = try record.withShardBytes { (r) throws(ShardError) in try header.layout.decode(r, path: path, offset: at) }
        offset += got
        instancesRead += 1
        return instance
    }

    /// Every remaining instance (a shard's worth of memory).
    public func readAll() throws(ShardError) -> [TrainingInstance] {
        var out: [TrainingInstance] = []
        out.reserveCapacity(header.recordCount - instancesRead)
        while let instance = try next() { out.append(instance) }
        return out
    }

    /// Fills `buffer` unless the data ends first; returns the byte count read.
    static func readFully(_ source: ZstdSource, into buffer: inout [UInt8], path: String) throws(ShardError) -> Int {
        var got = 0
        while got < buffer.count {
            let n: Int
            do { n = try readAppending(source, into: &buffer, at: got) } catch {
                if case let .corruptCompressed(_, offset, reason) = error {
                    throw .corruptCompressed(path: path, offset: offset, reason: reason)
                }
                throw .readFailed(path: path, reason: "\(error)")
            }
            if n == 0 { break }
            got += n
        }
        return got
    }
}

/// Compares a file's sha256 with the expected hex digest.
func checkSHA256(path: String, expected: String) throws(ShardError) {
    let actual: String
    do { actual = SHA256.hex(try SHA256.hash(file: path)) } catch { throw .readFailed(path: path, reason: "\(error)") }
    guard actual == expected else { throw .checksumMismatch(path: path, expected: expected, actual: actual) }
}

/// A regular file's size, or nil if there is none.
func fileSize(_ path: String) -> Int? {
    var isDirectory: ObjCBool = false
    guard FileManager.default.fileExists(atPath: path, isDirectory: &isDirectory), !isDirectory.boolValue,
          let attributes = try? FileManager.default.attributesOfItem(atPath: path),
          let size = attributes[.size] as? NSNumber
    else { return nil }
    return size.intValue
}
