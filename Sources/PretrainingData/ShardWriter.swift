import Support
import CZstd
import Foundation

/// Writes a shard directory: `shard-NNNNN.bin.zst` files and `index.json`.
///
/// Instances are shuffled across the whole output with bounded memory, and the output is
/// byte-identical whatever order (or thread) instances arrive in:
///
/// 1. `add(_:key:)` (or an `Appender`, one per thread, which needs no lock) encodes the record and
///    appends `(key, record)` to a temporary file of bucket `hash(seed, key) mod buckets` under
///    `DIR/.tmp-…/` (through per-bucket buffers). The number of buckets is
///    ceil(expected instances × record size / target shard size).
/// 2. `finish()` then, bucket by bucket: reads it back, sorts by key, shuffles with SplitMix64 seeded
///    from (seed, bucket), and writes it as one shard — zstd (level `compressionLevel`) with frame
///    checksum, to a temporary name, fsync, rename. Empty buckets give no shard; shards are numbered
///    in bucket order.
///    Stale `shard-*.bin.zst` files from an earlier run are removed, then `index.json` is written,
///    atomically and last, and the temporary directory removed.
///
/// Memory: the pending-record buffers (`bufferBytes` per appender) while adding, one bucket (about
/// `targetShardBytes`, more if `expectedInstances` was too low) per thread while finishing.
///
/// Crash safety: readers require `index.json`, and it only appears once every shard is in place.
/// An existing `index.json` is kept until `finish()` starts (and only then removed, when `overwrite`
/// allows it), so a crash at any moment leaves either the old complete set, or a directory without
/// an index that readers refuse. A re-run removes stale temporary directories.
///
/// `add` may be called from several threads at once, and each `Appender` from one thread at a time;
/// `finish` once, after every `add` has returned.
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
    /// zstd level of the shards (it changes their size and speed, not their content).
    public let compressionLevel: Int32

    /// Guards everything below.
    let lock = NSLock()
    /// Every appender handed out (the first serves `add`); `finish` flushes them.
    var appenders: [Appender] = []
    /// The appender behind `add(_:key:)`, used under `lock`.
    var shared: Appender?
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
    ///   - bufferBytes: memory for pending records across all buckets, per appender.
    ///   - compressionLevel: zstd level, 1…19 (1 is fastest; 3 gives about 12% smaller shards at
    ///     half the speed on token data).
    public init(
        directory: String, vocabularySize: Int, vocabSHA256: String, parameters: ShardGenerationParameters,
        expectedInstances: Int, targetShardBytes: Int = 64 << 20, overwrite: Bool = false, bufferBytes: Int = 32 << 20,
        compressionLevel: Int = 1
    ) throws(ShardError) {
        layout = try ShardLayout(vocabularySize: vocabularySize, maxSeqLength: parameters.maxSeqLength,
                                 maxPredictionsPerSeq: parameters.maxPredictionsPerSeq, staticMasking: !parameters.dynamicMasking)
        guard isSHA256Hex(vocabSHA256) else { throw .invalidLayout(reason: "vocabulary sha256 \"\(vocabSHA256)\" is not 64 lowercase hex digits") }
        guard expectedInstances >= 0, targetShardBytes > 0, bufferBytes > 0 else {
            throw .invalidLayout(reason: "expected instances, target shard size and buffer size must be positive")
        }
        guard (1...19).contains(compressionLevel) else {
            throw .invalidLayout(reason: "zstd level \(compressionLevel) is not in 1...19")
        }
        self.compressionLevel = Int32(compressionLevel)
        self.directory = directory
        self.vocabSHA256 = vocabSHA256
        self.parameters = parameters
        self.overwrite = overwrite
        entrySize = 8 + layout.recordSize
        let expectedBytes = Double(expectedInstances) * Double(layout.recordSize)
        bucketCount = Int(min(100_000, max(1, (expectedBytes / Double(targetShardBytes)).rounded(.up))))
        flushBytes = max(1, min(1 << 20, bufferBytes / bucketCount) / entrySize) * entrySize
        shuffleSeed = SplitMix64.mix(parameters.seed ^ 0x5348_5546_464C_4531)  // "SHUFFLE1"

        let fm = FileManager.default
        var isDirectory: ObjCBool = false
        if fm.fileExists(atPath: directory, isDirectory: &isDirectory) {
            guard isDirectory.boolValue else { throw .outputNotADirectory(path: directory) }
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
    func bucket(for key: UInt64) -> Int { Self.bucket(for: key, seed: shuffleSeed, count: bucketCount) }

    @inline(__always) static func bucket(for key: UInt64, seed: UInt64, count: Int) -> Int {
        let h = SplitMix64.mix(seed &+ key &* 0x9E37_79B9_7F4A_7C15)
        return Int(truncatingIfNeeded: h.multipliedFullWidth(by: UInt64(count)).high)
    }

    /// The temporary file of bucket `b` written by appender `a`.
    func bucketPath(_ b: Int, appender a: Int) -> String { Self.bucketPath(b, appender: a, in: tempDirectory) }

    static func bucketPath(_ b: Int, appender a: Int, in directory: String) -> String {
        (directory as NSString).appendingPathComponent("bucket-\(b)-\(a)")
    }

    /// Adds an instance. `key` identifies it uniquely and deterministically (for example from
    /// (dupe pass, document, index in document)): it decides the bucket and the order within it,
    /// so the output does not depend on the order of calls. Thread-safe; for many threads, an
    /// `Appender` each is faster.
    public func add(_ instance: TrainingInstance, key: UInt64) throws(ShardError) {
        lock.lock()
        defer { lock.unlock() }
        if let reason = closedReason { throw .writerClosed(reason: reason) }
        if shared == nil { shared = newAppenderLocked() }
        try shared!.add(instance, key: key)
    }

    /// A new appender, for one thread: it buffers and writes its own bucket files, so adding takes
    /// no lock. Every appender's records end up in the shards; `finish` flushes them.
    public func makeAppender() throws(ShardError) -> Appender {
        lock.lock()
        defer { lock.unlock() }
        if let reason = closedReason { throw .writerClosed(reason: reason) }
        return newAppenderLocked()
    }

    func newAppenderLocked() -> Appender {
        let a = Appender(writer: self, id: appenders.count)
        appenders.append(a)
        return a
    }

    /// Marks the writer failed (later calls are refused). Thread-safe.
    func fail(_ reason: String) {
        lock.lock()
        if closedReason == nil { closedReason = reason }
        lock.unlock()
    }

    /// One thread's way into a `ShardWriter`: records are encoded straight into per-bucket buffers
    /// and appended to this appender's own bucket files when a buffer fills. Not thread-safe: one
    /// thread at a time. Output is the same whichever appender an instance goes through.
    public final class Appender: @unchecked Sendable {
        /// The writer's fixed values, copied: reading them through a reference per record costs.
        let layout: ShardLayout
        let entrySize: Int
        let flushBytes: Int
        let bucketCount: Int
        let shuffleSeed: UInt64
        let tempDirectory: String
        /// Told when a write fails (weak: the writer owns its appenders until `finish`).
        weak var writer: ShardWriter?
        let id: Int
        /// (bucketCount,) pending entries of each bucket, (entries × entrySize,) bytes each:
        /// the key (UInt64 LE), then the record.
        var buffers: [[UInt8]]
        /// Set when a write failed; later adds are refused.
        var failed: String?

        init(writer: ShardWriter, id: Int) {
            self.writer = writer
            self.id = id
            layout = writer.layout
            entrySize = writer.entrySize
            flushBytes = writer.flushBytes
            bucketCount = writer.bucketCount
            shuffleSeed = writer.shuffleSeed
            tempDirectory = writer.tempDirectory
            buffers = Array(repeating: [], count: writer.bucketCount)
        }

        /// Adds an instance; see `ShardWriter.add(_:key:)`.
        public func add(_ instance: TrainingInstance, key: UInt64) throws(ShardError) {
            if let failed { throw .writerClosed(reason: failed) }
            try layout.validate(instance)
            let b = ShardWriter.bucket(for: key, seed: shuffleSeed, count: bucketCount)
            let start = buffers[b].count
            buffers[b].append(contentsOf: repeatElement(0, count: entrySize))
            buffers[b].withUnsafeMutableBytes { e in
                let p = e.baseAddress! + start
                p.storeLE(key, at: 0)
                layout.encodeValidated(instance, into: p + 8)
            }
            if buffers[b].count >= flushBytes { try flush(b) }
        }

        /// Appends bucket `b`'s buffer to this appender's file of that bucket.
        func flush(_ b: Int) throws(ShardError) {
            let bucket = ShardWriter.bucketPath(b, appender: id, in: tempDirectory)
            do { try appendToFile(bucket, buffers[b]) } catch {
                let error = ShardError.writeFailed(path: bucket, reason: error.reason)
                failed = "an earlier write failed (\(error))"
                writer?.fail(failed!)
                throw error
            }
            buffers[b].removeAll(keepingCapacity: true)
        }

        /// Writes out everything pending and frees the buffers; later adds are refused.
        func flushAll() throws(ShardError) {
            if let failed { throw .writerClosed(reason: failed) }
            for b in buffers.indices where !buffers[b].isEmpty { try flush(b) }
            buffers = []
            failed = "finish() was called"
        }
    }

    /// Writes the shards and `index.json`; returns the index. Call once, after every `add`.
    /// `threads` shards are compressed at once (the output is the same for any number).
    @discardableResult
    public func finish(threads: Int = 1, statistics: [String: Int]? = nil) throws(ShardError) -> ShardIndex {
        // The lock only to close the writer and take its appenders: a flush that fails (a full disk) calls
        // `fail`, which takes the lock too, so flushing under it would deadlock.
        lock.lock()
        if let reason = closedReason { lock.unlock(); throw .writerClosed(reason: reason) }
        closedReason = "finish() was called"
        let flushing = appenders
        appenders = []
        shared = nil
        lock.unlock()
        for a in flushing { try a.flushAll() }
        let appenderCount = flushing.count
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
        let present = (0..<bucketCount).filter { b in
            (0..<appenderCount).contains { FileManager.default.fileExists(atPath: bucketPath(b, appender: $0)) }
        }
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
                    let paths = (0..<appenderCount).map { bucketPath(b, appender: $0) }
                        .filter { FileManager.default.fileExists(atPath: $0) }
                    // Mapped, not read: the pages come straight from the page cache.
                    var maps: [MappedFile] = []
                    for path in paths {
                        let map: MappedFile
                        do { map = try MappedFile(path: path, populate: true) } catch { throw .readFailed(path: path, reason: "\(error)") }
                        guard map.count % entrySize == 0 else {
                            throw .writeFailed(path: path, reason: "temporary bucket file has \(map.count) bytes, not a multiple of \(entrySize)")
                        }
                        maps.append(map)
                    }
                    let order = try shuffledOrder(maps, bucket: b)
                    let entry = try writeShard(named: shardFileName(k), entries: order)
                    withExtendedLifetime(maps) {}
                    for path in paths { unlink(path) }
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
            let shared = UncheckedSendable(work)
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

    /// The entries of a bucket (in its mapped files) in the order they are written: by key, then a
    /// shuffle seeded from (seed, bucket). Duplicate keys are an error (their order would depend on
    /// arrival). Returns the address of each entry.
    func shuffledOrder(_ files: [MappedFile], bucket b: Int) throws(ShardError) -> [UnsafeRawPointer] {
        var keyed: [(key: UInt64, entry: UnsafeRawPointer)] = []
        keyed.reserveCapacity(files.reduce(0) { $0 + $1.count / entrySize })
        for file in files {
            guard let base = file.pointer else { continue }
            for i in 0..<(file.count / entrySize) {
                let e = base + i * entrySize
                keyed.append((e.loadLE(UInt64.self, at: 0), e))
            }
        }
        keyed.sort { $0.key < $1.key }
        for i in keyed.indices.dropFirst() where keyed[i].key == keyed[i - 1].key { throw .duplicateKey(key: keyed[i].key) }
        var order = keyed.map(\.entry)
        var rng = SplitMix64(seed: SplitMix64.mix(shuffleSeed ^ UInt64(b)))
        rng.shuffle(&order)
        return order
    }

    /// Compresses the header and the records of `entries` (addresses of bucket entries: key, then
    /// record), in that order, into `directory/name` (through a temporary file, fsync, rename).
    func writeShard(named name: String, entries: [UnsafeRawPointer]) throws(ShardError) -> ShardEntry {
        let header = ShardHeader(layout: layout, recordCount: entries.count)
        let temporary = (tempDirectory as NSString).appendingPathComponent(name)
        let final = (directory as NSString).appendingPathComponent(name)
        let file = try CompressedFileWriter(path: temporary, pledgedSize: header.rawByteCount, level: compressionLevel)
        let chunkBytes = 1 << 20
        var chunk: [UInt8] = header.encoded()  // (≤ chunkBytes + recordSize,) raw bytes for the compressor
        chunk.reserveCapacity(chunkBytes + layout.recordSize)
        let recordSize = layout.recordSize
        for e in entries {
            chunk.append(contentsOf: UnsafeRawBufferPointer(start: e + 8, count: recordSize))
            if chunk.count >= chunkBytes {
                try file.write(chunk, end: false)
                chunk.removeAll(keepingCapacity: true)
            }
        }
        try file.write(chunk, end: true)
        let (compressedBytes, sha256) = try file.close()
        guard rename(temporary, final) == 0 else { throw .writeFailed(path: final, reason: String(cString: strerror(errno))) }
        return ShardEntry(file: name, instances: entries.count, compressedBytes: compressedBytes, rawBytes: header.rawByteCount, sha256: sha256)
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
