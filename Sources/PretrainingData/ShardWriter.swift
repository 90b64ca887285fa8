import CZstd
import Foundation

/// Writes a shard directory: `shard-NNNNN.bin.zst` files and `index.json`.
///
/// Instances are shuffled across the whole output with bounded memory, and the output is
/// byte-identical whatever order (or thread) instances arrive in:
///
/// 1. `add(_:key:)` encodes the record and appends `(key, record)` to the temporary file of bucket
///    `hash(seed, key) mod buckets` under `DIR/.tmp-…/` (through a per-bucket buffer). The number of
///    buckets is ceil(expected instances × record size / target shard size).
/// 2. `finish()` then, bucket by bucket: reads it back, sorts by key, shuffles with SplitMix64 seeded
///    from (seed, bucket), and writes it as one shard — zstd level 3 with frame checksum, to a
///    temporary name, fsync, rename. Empty buckets give no shard; shards are numbered in bucket order.
///    Stale `shard-*.bin.zst` files from an earlier run are removed, then `index.json` is written,
///    atomically and last, and the temporary directory removed.
///
/// Memory: the pending-record buffers (`bufferBytes` in all) while adding, one bucket (about
/// `targetShardBytes`, more if `expectedInstances` was too low) while finishing.
///
/// Crash safety: readers require `index.json`, and it only appears once every shard is in place.
/// An existing `index.json` is kept until `finish()` starts (and only then removed, when `overwrite`
/// allows it), so a crash at any moment leaves either the old complete set, or a directory without
/// an index that readers refuse. A re-run removes stale temporary directories.
///
/// `add` may be called from several threads at once; `finish` once, after every `add` has returned.
/// One writer per directory at a time (a new writer removes the temporary directories it finds).
public final class ShardWriter: @unchecked Sendable {
    /// The output directory.
    public let directory: String
    /// Record layout (from the vocabulary size and the parameters).
    public let layout: ShardLayout
    /// Number of buckets, hence of shards at most.
    public let bucketCount: Int
    let vocabSHA256: String
    let parameters: ShardGenerationParameters
    let overwrite: Bool
    let tempDirectory: String
    /// Bytes per bucket-file entry: the key (UInt64) then the record.
    let entrySize: Int
    /// Flush a bucket's buffer when it reaches this many bytes.
    let flushBytes: Int
    /// The shuffle seed: `parameters.seed` mixed with a tag, so it differs from the generation stream.
    let shuffleSeed: UInt64

    /// Guards everything below.
    let lock = NSLock()
    /// (bucketCount,) pending entries of each bucket, (entries × entrySize,) bytes each.
    var buffers: [[UInt8]]
    /// Entries added so far.
    var added = 0
    /// Set by `finish()` or by a failed write; later calls are refused.
    var closedReason: String?
    /// Test hook: called with the name of each step of `finish()` once it is done; throwing there
    /// stands for a crash at that moment.
    var afterStep: ((String) throws(ShardError) -> Void)?

    /// Prepares to write into `directory` (created if needed).
    ///
    /// - Parameters:
    ///   - vocabularySize: tokens in the vocabulary (chooses UInt16 or UInt32 ids).
    ///   - vocabSHA256: hex sha256 of vocab.txt, recorded in the index.
    ///   - parameters: generation parameters, recorded in the index; they fix the record layout.
    ///   - expectedInstances: how many instances will be added (an upper bound is fine); with
    ///     `targetShardBytes`, fixes the number of shards.
    ///   - targetShardBytes: decompressed bytes per shard to aim for.
    ///   - overwrite: replace a complete shard set already in `directory`; otherwise that is
    ///     `ShardError.outputExists`.
    ///   - bufferBytes: memory for pending records across all buckets.
    public init(
        directory: String, vocabularySize: Int, vocabSHA256: String, parameters: ShardGenerationParameters,
        expectedInstances: Int, targetShardBytes: Int = 64 << 20, overwrite: Bool = false, bufferBytes: Int = 32 << 20
    ) throws(ShardError) {
        layout = try ShardLayout(vocabularySize: vocabularySize, maxSeqLength: parameters.maxSeqLength,
                                 maxPredictionsPerSeq: parameters.maxPredictionsPerSeq, staticMasking: !parameters.dynamicMasking)
        guard isSHA256Hex(vocabSHA256) else { throw .invalidLayout(reason: "vocabulary sha256 \"\(vocabSHA256)\" is not 64 lowercase hex digits") }
        guard expectedInstances >= 0, targetShardBytes > 0, bufferBytes > 0 else {
            throw .invalidLayout(reason: "expected instances, target shard size and buffer size must be positive")
        }
        self.directory = directory
        self.vocabSHA256 = vocabSHA256
        self.parameters = parameters
        self.overwrite = overwrite
        entrySize = 8 + layout.recordSize
        let expectedBytes = Double(expectedInstances) * Double(layout.recordSize)
        bucketCount = Int(min(100_000, max(1, (expectedBytes / Double(targetShardBytes)).rounded(.up))))
        flushBytes = max(1, min(1 << 20, bufferBytes / bucketCount) / entrySize) * entrySize
        buffers = Array(repeating: [], count: bucketCount)
        shuffleSeed = SplitMix64.mix(parameters.seed ^ 0x5348_5546_464C_4531)  // "SHUFFLE1"

        let fm = FileManager.default
        var isDirectory: ObjCBool = false
        if fm.fileExists(atPath: directory, isDirectory: &isDirectory) {
            guard isDirectory.boolValue else { throw .writeFailed(path: directory, reason: "exists and is not a directory") }
        } else {
            do { try fm.createDirectory(atPath: directory, withIntermediateDirectories: true) } catch {
                throw .writeFailed(path: directory, reason: error.localizedDescription)
            }
        }
        if !overwrite && fm.fileExists(atPath: Self.indexPath(directory)) { throw .outputExists(directory: directory) }
        // Leftovers of an interrupted run: temporary directories and index files.
        for name in (try? fm.contentsOfDirectory(atPath: directory)) ?? []
        where name.hasPrefix(".tmp-") || name.hasPrefix(".\(ShardIndex.fileName).tmp-") {
            try? fm.removeItem(atPath: (directory as NSString).appendingPathComponent(name))
        }
        var rng = SystemRandomNumberGenerator()
        tempDirectory = (directory as NSString).appendingPathComponent(".tmp-\(getpid())-\(String(rng.next() as UInt32, radix: 16))")
        do { try fm.createDirectory(atPath: tempDirectory, withIntermediateDirectories: false) } catch {
            throw .writeFailed(path: tempDirectory, reason: error.localizedDescription)
        }
    }

    deinit {
        // Not finished (an error, or the caller gave up): the temporary files are of no use.
        try? FileManager.default.removeItem(atPath: tempDirectory)
    }

    static func indexPath(_ directory: String) -> String { (directory as NSString).appendingPathComponent(ShardIndex.fileName) }

    /// The bucket of a key: multiply-high of a seeded 64-bit mix (uniform, fixed by this code).
    func bucket(for key: UInt64) -> Int {
        let h = SplitMix64.mix(shuffleSeed &+ key &* 0x9E37_79B9_7F4A_7C15)
        return Int(truncatingIfNeeded: h.multipliedFullWidth(by: UInt64(bucketCount)).high)
    }

    func bucketPath(_ b: Int) -> String { (tempDirectory as NSString).appendingPathComponent("bucket-\(b)") }

    /// Adds an instance. `key` identifies it uniquely and deterministically (for example from
    /// (dupe pass, document, index in document)): it decides the bucket and the order within it,
    /// so the output does not depend on the order of calls. Thread-safe.
    public func add(_ instance: TrainingInstance, key: UInt64) throws(ShardError) {
        try layout.validate(instance)
        var entry = [UInt8](repeating: 0, count: entrySize)  // (8 + recordSize,) key, then the record
        entry.withUnsafeMutableBytes { e in
            e.baseAddress!.storeLE(key, at: 0)
            layout.encodeValidated(instance, into: e.baseAddress! + 8)
        }
        let b = bucket(for: key)
        lock.lock()
        defer { lock.unlock() }
        if let reason = closedReason { throw .writerClosed(reason: reason) }
        buffers[b] += entry
        added += 1
        if buffers[b].count >= flushBytes { try flush(b) }
    }

    /// Appends bucket `b`'s buffer to its file. Called with the lock held.
    func flush(_ b: Int) throws(ShardError) {
        let path = bucketPath(b)
        do {
            try appendToFile(path, buffers[b])
        } catch {
            closedReason = "an earlier write failed (\(error))"
            throw error
        }
        buffers[b].removeAll(keepingCapacity: true)
    }

    /// Writes the shards and `index.json`; returns the index. Call once, after every `add`.
    /// `threads` shards are compressed at once (the output is the same for any number).
    @discardableResult
    public func finish(threads: Int = 1, statistics: [String: Int]? = nil) throws(ShardError) -> ShardIndex {
        lock.lock()
        defer { lock.unlock() }
        if let reason = closedReason { throw .writerClosed(reason: reason) }
        closedReason = "finish() was called"
        for b in 0..<bucketCount where !buffers[b].isEmpty { try flush(b) }
        buffers = []
        try afterStep?("buckets flushed")

        // From here until the new index is in place the directory has no index: readers refuse it.
        let indexPath = Self.indexPath(directory)
        if FileManager.default.fileExists(atPath: indexPath) {
            guard overwrite else { throw .outputExists(directory: directory) }
            guard unlink(indexPath) == 0 else { throw .writeFailed(path: indexPath, reason: String(cString: strerror(errno))) }
            syncDirectory(directory)
            try afterStep?("old index removed")
        }

        // Non-empty buckets become shards, numbered in bucket order; `threads` of them are sorted,
        // shuffled, compressed and hashed at once (memory: one bucket per thread).
        let present = (0..<bucketCount).filter { FileManager.default.fileExists(atPath: bucketPath($0)) }
        var written = [ShardEntry?](repeating: nil, count: present.count)
        var failure: ShardError?
        var nextShard = 0
        let workLock = NSLock()
        let workers = max(1, min(threads, present.count))
        withoutActuallyEscaping({ [self] (_: Int) -> Void in
            while true {
                workLock.lock()
                let k = nextShard
                nextShard += 1
                let stop = failure != nil
                workLock.unlock()
                if stop || k >= present.count { return }
                do throws(ShardError) {
                    let b = present[k]
                    let path = bucketPath(b)
                    let entries = try readWholeFile(path)
                    guard entries.count % entrySize == 0 else {
                        throw .writeFailed(path: path, reason: "temporary bucket file has \(entries.count) bytes, not a multiple of \(entrySize)")
                    }
                    let order = try shuffledOrder(entries, bucket: b)
                    let entry = try writeShard(named: shardFileName(k), entries: entries, order: order)
                    unlink(path)
                    workLock.lock()
                    defer { workLock.unlock() }
                    written[k] = entry
                    try afterStep?("renamed \(entry.file)")
                } catch {
                    workLock.lock()
                    if failure == nil { failure = error }
                    workLock.unlock()
                }
            }
        }) { work in
            let shared = UnsafeTransfer(value: work)
            if workers == 1 { shared.value(0) } else { DispatchQueue.concurrentPerform(iterations: workers) { shared.value($0) } }
        }
        if let failure { throw failure }
        let shards = written.map { $0! }

        // Shards of an earlier, larger run would make the directory inconsistent with the index.
        let names = Set(shards.map(\.file))
        for name in (try? FileManager.default.contentsOfDirectory(atPath: directory)) ?? []
        where looksLikeShardFile(name) && !names.contains(name) {
            let path = (directory as NSString).appendingPathComponent(name)
            guard unlink(path) == 0 else { throw .writeFailed(path: path, reason: "cannot remove stale shard: \(String(cString: strerror(errno)))") }
        }
        syncDirectory(directory)
        try afterStep?("stale shards removed")

        let index = ShardIndex(vocabSHA256: vocabSHA256, vocabSize: layout.vocabularySize, parameters: parameters,
                               totalInstances: shards.reduce(0) { $0 + $1.instances }, shards: shards,
                               statistics: statistics)
        try index.write(toDirectory: directory)
        try afterStep?("index written")
        try? FileManager.default.removeItem(atPath: tempDirectory)
        return index
    }

    /// The order in which a bucket's entries are written: by key, then a shuffle seeded from
    /// (seed, bucket). Duplicate keys are an error (their order would depend on arrival).
    func shuffledOrder(_ entries: [UInt8], bucket b: Int) throws(ShardError) -> [Int] {
        let n = entries.count / entrySize
        var keyed = entries.withUnsafeBytes { e in
            (0..<n).map { (key: UnsafeRawPointer(e.baseAddress!).loadLE(UInt64.self, at: $0 * entrySize), entry: $0) }
        }
        keyed.sort { $0.key < $1.key }
        for i in keyed.indices.dropFirst() where keyed[i].key == keyed[i - 1].key { throw .duplicateKey(key: keyed[i].key) }
        var order = keyed.map(\.entry)
        var rng = SplitMix64(seed: SplitMix64.mix(shuffleSeed ^ UInt64(b)))
        rng.shuffle(&order)
        return order
    }

    /// Compresses the header and the entries' records in `order` into `directory/name` (through a
    /// temporary file, fsync, rename).
    func writeShard(named name: String, entries: [UInt8], order: [Int]) throws(ShardError) -> ShardEntry {
        let header = ShardHeader(layout: layout, recordCount: order.count)
        let temporary = (tempDirectory as NSString).appendingPathComponent(name)
        let final = (directory as NSString).appendingPathComponent(name)
        let file = try CompressedFileWriter(path: temporary, pledgedSize: header.rawByteCount, level: 3)
        let chunkBytes = 1 << 20
        var chunk: [UInt8] = header.encoded()  // (≤ chunkBytes + recordSize,) raw bytes for the compressor
        chunk.reserveCapacity(chunkBytes + layout.recordSize)
        let recordSize = layout.recordSize
        try entries.withShardBytes { (e) throws(ShardError) in
            for i in order {
                let start = i * entrySize + 8
                chunk.append(contentsOf: UnsafeRawBufferPointer(rebasing: e[start..<(start + recordSize)]))
                if chunk.count >= chunkBytes {
                    try file.write(chunk, end: false)
                    chunk.removeAll(keepingCapacity: true)
                }
            }
        }
        try file.write(chunk, end: true)
        let (compressedBytes, sha256) = try file.close()
        guard rename(temporary, final) == 0 else { throw .writeFailed(path: final, reason: String(cString: strerror(errno))) }
        return ShardEntry(file: name, instances: order.count, compressedBytes: compressedBytes, rawBytes: header.rawByteCount, sha256: sha256)
    }
}

/// A zstd file being written: one frame with the content size and a checksum, fsynced on close;
/// counts and hashes the compressed bytes as they go out.
final class CompressedFileWriter {
    let path: String
    var fd: Int32
    let context: OpaquePointer
    /// (ZSTD_CStreamOutSize(),) compressed bytes on their way to the file.
    var output: [UInt8]
    var sha = SHA256()
    var compressedBytes = 0

    init(path: String, pledgedSize: Int, level: Int32) throws(ShardError) {
        self.path = path
        context = ZSTD_createCCtx()
        output = [UInt8](repeating: 0, count: ZSTD_CStreamOutSize())
        fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0o644)
        guard fd >= 0 else { throw .writeFailed(path: path, reason: String(cString: strerror(errno))) }
        for r in [ZSTD_CCtx_setParameter(context, ZSTD_c_compressionLevel, level),
                  ZSTD_CCtx_setParameter(context, ZSTD_c_checksumFlag, 1),
                  ZSTD_CCtx_setPledgedSrcSize(context, UInt64(pledgedSize))] where ZSTD_isError(r) != 0 {
            throw .writeFailed(path: path, reason: "zstd: \(String(cString: ZSTD_getErrorName(r)))")
        }
    }

    deinit {
        ZSTD_freeCCtx(context)
        if fd >= 0 { Foundation.close(fd) }
    }

    /// Compresses `bytes`; with `end`, finishes the frame.
    func write(_ bytes: [UInt8], end: Bool) throws(ShardError) {
        let writer = FileDescriptorWriter(fd: fd, name: path)
        try bytes.withShardBytes { (input) throws(ShardError) in
            var inBuffer = ZSTD_inBuffer(src: input.baseAddress, size: input.count, pos: 0)
            while true {
                let (r, produced) = output.withUnsafeMutableBytes { o in
                    var outBuffer = ZSTD_outBuffer(dst: o.baseAddress, size: o.count, pos: 0)
                    let r = ZSTD_compressStream2(context, &outBuffer, &inBuffer, end ? ZSTD_e_end : ZSTD_e_continue)
                    return (r, outBuffer.pos)
                }
                if ZSTD_isError(r) != 0 { throw .writeFailed(path: path, reason: "zstd: \(String(cString: ZSTD_getErrorName(r)))") }
                if produced > 0 {
                    sha.update(output[0..<produced])
                    compressedBytes += produced
                    do { try writer.write(Array(output[0..<produced])) } catch {
                        throw .writeFailed(path: path, reason: "\(error)")
                    }
                }
                if end ? r == 0 : inBuffer.pos == inBuffer.size { return }
            }
        }
    }

    /// fsyncs and closes; returns the compressed size and its sha256 (hex).
    func close() throws(ShardError) -> (bytes: Int, sha256: String) {
        defer { Foundation.close(fd); fd = -1 }
        guard fsync(fd) == 0 else { throw .writeFailed(path: path, reason: String(cString: strerror(errno))) }
        return (compressedBytes, SHA256.hex(sha.finalize()))
    }
}

/// Appends bytes to a file, creating it.
func appendToFile(_ path: String, _ bytes: [UInt8]) throws(ShardError) {
    let fd = open(path, O_WRONLY | O_CREAT | O_APPEND, 0o644)
    guard fd >= 0 else { throw .writeFailed(path: path, reason: String(cString: strerror(errno))) }
    defer { close(fd) }
    do { try FileDescriptorWriter(fd: fd, name: path).write(bytes) } catch {
        throw .writeFailed(path: path, reason: "\(error)")
    }
}

/// The whole content of a file.
func readWholeFile(_ path: String) throws(ShardError) -> [UInt8] {
    do {
        let source = try FileDescriptorSource(path: path)
        var out: [UInt8] = []
        out.reserveCapacity(fileSize(path) ?? 0)
        var buffer = [UInt8](repeating: 0, count: 1 << 20)
        while true {
            let n = try readAppending(source, into: &buffer, at: 0)
            if n == 0 { return out }
            out += buffer[0..<n]
        }
    } catch {
        throw .readFailed(path: path, reason: "\(error)")
    }
}

/// fsyncs a directory so that renames and removals in it are durable (best effort).
func syncDirectory(_ path: String) {
    let fd = open(path, O_RDONLY)
    if fd >= 0 { fsync(fd); close(fd) }
}
