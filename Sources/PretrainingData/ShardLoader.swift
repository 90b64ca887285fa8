import Support
import CZstd
import Foundation

/// A padded batch of training instances, ready for the model. All arrays are row-major.
public struct InstanceBatch: Sendable, Equatable {
    /// Instances in the batch (B); the last batch of an epoch may be smaller than the loader's size.
    public var size: Int
    /// Padded sequence length (T): the layout's max_seq_length, or the longest instance with `padToLongest`.
    public var seqLength: Int
    /// (B, T) token ids, masked; 0 ([PAD] slot) after each instance's length.
    public var inputIds: [Int32]
    /// (B, T) 0 for [CLS] A [SEP], 1 for B [SEP], 0 on padding.
    public var segmentIds: [Int32]
    /// (B, T) 1 on real tokens, 0 on padding.
    public var attentionMask: [Int32]
    /// (M,) masked positions as flat indices b·T + t, ascending.
    public var maskedPositions: [Int32]
    /// (M,) original ids at those positions.
    public var maskedLabels: [Int32]
    /// (B,) 1 when B is a random next sentence, 0 when it is the real continuation (Hugging Face's
    /// `next_sentence_label`).
    public var nextSentenceLabels: [Int32]

    /// Instances in the whole batch this one is a slice of (`ShardLoader.Options.slice`): the
    /// denominator of this slice's share of the NSP loss. Equal to `size` when the batch is not sliced.
    public var wholeBatchSize: Int
    /// Masked positions in the whole batch this one is a slice of: the denominator of this slice's
    /// share of the MLM loss. Equal to `maskedPositions.count` when the batch is not sliced.
    public var wholeBatchMaskedPositions: Int
    /// Real tokens in the whole batch this one is a slice of: the denominator of this slice's share of a
    /// per-token loss (ELECTRA's discriminator). Equal to `tokenCount` when the batch is not sliced.
    public var wholeBatchTokens: Int

    /// Real (non-padding) tokens in the batch.
    public var tokenCount: Int { attentionMask.reduce(0) { $0 + Int($1) } }
}

/// One process's part of every batch in a data-parallel run: of each batch of `batchSize` instances
/// (in the loader's order), process `index` of `count` takes the instances
/// `index·c ..< min((index + 1)·c, b)`, where c = batchSize / count and b is the batch's size (the last
/// batch of an epoch may be smaller, and then the last processes' slices may be empty). So the
/// processes together see each batch exactly once, and process k's slice is the batch that a single
/// process with batch size c would have as its k-th micro-batch of the same instances.
public struct BatchSlice: Sendable, Equatable {
    /// This process's index, from 0.
    public var index: Int
    /// The number of processes; must divide the batch size.
    public var count: Int

    /// A slice.
    public init(index: Int, count: Int) {
        self.index = index
        self.count = count
    }
}

/// Where a loader is in the data: the epoch and how many instances of it were handed out. Saved
/// in checkpoints; `ShardLoader.batches(epoch:skipping:)` continues from it exactly.
public struct LoaderPosition: Codable, Equatable, Sendable {
    /// Epoch, from 0.
    public var epoch: Int
    /// Instances of this epoch already handed out.
    public var instancesConsumed: Int

    /// A position.
    public init(epoch: Int, instancesConsumed: Int) {
        self.epoch = epoch
        self.instancesConsumed = instancesConsumed
    }

    enum CodingKeys: String, CodingKey {
        case epoch
        case instancesConsumed = "instances_consumed"
    }
}

/// Reads a verified shard set in a seeded order and hands out padded batches, with background
/// threads doing the reading, checking, decompression, shuffling and (dynamic) masking.
///
/// Order: for epoch e, the shards are visited in a permutation seeded by (seed, e), and the records of
/// each shard in a permutation seeded by (seed, e, shard). Consecutive records form batches (a batch
/// may span two shards). The order is a pure function of (seed, epoch), so a position
/// (epoch, instances consumed) is enough to resume exactly: shards before it are skipped from the
/// index's counts without being read.
///
/// Dynamic masking: each instance is masked with a generator seeded by (seed, epoch, shard, record),
/// so every epoch sees new masks and a run is reproducible whatever the thread timing.
///
/// Memory: at most two decompressed shards (the one being batched and the next, prefetched) plus
/// `prefetchBatches` batches.
public final class ShardLoader: @unchecked Sendable {
    /// How batches are made.
    public struct Options: Sendable {
        /// Instances per batch (per micro-batch when `microBatches` > 1).
        public var batchSize: Int
        /// Micro-batches per update (`--accumulate`). Batches are formed, length-grouped and shuffled at
        /// `batchSize × microBatches` instances (an update's), then each is handed out as consecutive
        /// micro-batches of `batchSize`: so the instances of every update, and their order, are the same
        /// for batch B with accumulation A as for batch B·A, and for any number of processes.
        public var microBatches = 1
        /// Seed of the order (and of dynamic masks).
        public var seed: UInt64
        /// Pad to the longest instance in the batch rather than to max_seq_length.
        public var padToLongest = false
        /// Drop the last, smaller update batch of an epoch.
        public var dropLast = false
        /// Length grouping: 0 for off, else the window in batches. The epoch's instances, in their
        /// seeded order, are cut into windows of `groupWindowBatches` update batches; each window is sorted
        /// by length, cut into update batches, and those batches are handed out in a seeded order. With
        /// `padToLongest` a batch then carries little padding (Hugging Face's `group_by_length`
        /// megabatches). The order stays a pure function of (seed, epoch), so resuming is exact.
        public var groupWindowBatches = 0
        /// Batches prepared ahead of the consumer.
        public var prefetchBatches = 8
        /// Check each shard's sha256 against index.json before using it.
        public var verifyChecksums = true
        /// Hand out only this process's slice of each batch (nil: whole batches). Batches are formed
        /// (grouped, shuffled) from the whole batch size as without it, so the instances of each batch are
        /// the same for any number of processes; only the slice is decoded, checked, masked and padded
        /// into a batch (of the other records only the length and masked count are read). Every process
        /// still reads and decompresses each shard: a shard is one zstd frame.
        public var slice: BatchSlice?

        /// Options.
        public init(batchSize: Int, seed: UInt64, padToLongest: Bool = false, dropLast: Bool = false,
                    groupWindowBatches: Int = 0, prefetchBatches: Int = 8, verifyChecksums: Bool = true, slice: BatchSlice? = nil,
                    microBatches: Int = 1) {
            self.batchSize = batchSize
            self.microBatches = microBatches
            self.seed = seed
            self.padToLongest = padToLongest
            self.dropLast = dropLast
            self.groupWindowBatches = groupWindowBatches
            self.prefetchBatches = prefetchBatches
            self.verifyChecksums = verifyChecksums
            self.slice = slice
        }
    }

    /// The shard directory.
    public let shardSet: ShardSet
    /// Batch options.
    public let options: Options
    /// Masking at load time; required when the shards use dynamic masking, refused otherwise.
    public let masker: Masker?

    /// A loader. `masker` must be given exactly when the shards were built with dynamic masking.
    public init(set: ShardSet, options: Options, masker: Masker?) throws(ShardError) {
        guard options.batchSize >= 1 else { throw .invalidLayout(reason: "batch size \(options.batchSize) must be at least 1") }
        guard options.microBatches >= 1 else { throw .invalidLayout(reason: "micro-batches \(options.microBatches) must be at least 1") }
        if let slice = options.slice {
            guard slice.count >= 1, (0..<slice.count).contains(slice.index), options.batchSize % slice.count == 0 else {
                throw .invalidLayout(reason: "slice \(slice.index) of \(slice.count): the batch size \(options.batchSize) must be a multiple of the count")
            }
        }
        guard options.groupWindowBatches >= 0 else {
            throw .invalidLayout(reason: "length-grouping window \(options.groupWindowBatches) must be 0 (off) or positive")
        }
        if set.index.parameters.dynamicMasking {
            guard masker != nil else {
                throw .invalidLayout(reason: "\(set.directory) uses dynamic masking: the loader needs a masker")
            }
        } else if masker != nil {
            throw .invalidLayout(reason: "\(set.directory) is statically masked: a second masking is refused")
        }
        if let masker, masker.vocabularySize != set.index.vocabSize {
            throw .invalidLayout(reason: "masker vocabulary of \(masker.vocabularySize) tokens, shards use \(set.index.vocabSize)")
        }
        self.shardSet = set
        self.options = options
        self.masker = masker
    }

    /// Instances in one epoch.
    public var instancesPerEpoch: Int { shardSet.index.totalInstances }

    /// Instances per update batch: `batchSize × microBatches`.
    public var updateBatchSize: Int { options.batchSize * options.microBatches }

    /// Update batches in one epoch (each handed out as up to `microBatches` micro-batches).
    public var updatesPerEpoch: Int {
        let n = instancesPerEpoch, b = updateBatchSize
        return options.dropLast ? n / b : (n + b - 1) / b
    }

    /// The order in which epoch `epoch` visits the shards (indices into `set.index.shards`).
    public func shardOrder(epoch: Int) -> [Int] {
        var order = Array(shardSet.index.shards.indices)
        var rng = SeededGenerator(seed: options.seed, stream: [0x5348_4152_44, UInt64(epoch)])  // "SHARD"
        rng.shuffle(&order)
        return order
    }

    /// The order in which epoch `epoch` visits the records of shard `shard`.
    public func recordOrder(epoch: Int, shard: Int, count: Int) -> [Int] {
        var order = Array(0..<count)
        var rng = SeededGenerator(seed: options.seed, stream: [0x5245_434F_5244, UInt64(epoch), UInt64(shard)])  // "RECORD"
        rng.shuffle(&order)
        return order
    }

    /// The batches of `epoch`, starting after `skipping` instances of it. Background threads start now
    /// and stop when the iterator is released or exhausted.
    public func batches(epoch: Int, skipping: Int = 0) throws(ShardError) -> EpochBatches {
        guard epoch >= 0, (0...instancesPerEpoch).contains(skipping) else {
            throw .invalidLayout(reason: "position (epoch \(epoch), \(skipping) instances) is outside the data (\(instancesPerEpoch) per epoch)")
        }
        return EpochBatches(loader: self, epoch: epoch, skipping: skipping)
    }

    /// Reads, checks and decompresses shard `i` of the index: the raw bytes, header and record layout checked.
    func loadShard(_ i: Int) throws(ShardError) -> DecodedShard {
        let entry = shardSet.index.shards[i]
        let path = shardSet.path(of: entry)
        let compressed: [UInt8]
        do {
            compressed = try [UInt8](Data(contentsOf: URL(fileURLWithPath: path)))
        } catch {
            if !FileManager.default.fileExists(atPath: path) { throw .missingShard(path: path) }
            throw .readFailed(path: path, reason: error.localizedDescription)
        }
        guard compressed.count == entry.compressedBytes else {
            throw .sizeMismatch(path: path, expected: entry.compressedBytes, actual: compressed.count)
        }
        if options.verifyChecksums {
            let actual = SHA256.hex(SHA256.hash(compressed))
            guard actual == entry.sha256 else { throw .checksumMismatch(path: path, expected: entry.sha256, actual: actual) }
        }
        var raw = [UInt8](repeating: 0, count: entry.rawBytes)  // (rawBytes,) header and records
        let r = raw.withUnsafeMutableBytes { out in
            compressed.withUnsafeBytes { inp in ZSTD_decompress(out.baseAddress, out.count, inp.baseAddress, inp.count) }
        }
        if ZSTD_isError(r) != 0 {
            throw .corruptCompressed(path: path, offset: 0, reason: String(cString: ZSTD_getErrorName(r)))
        }
        guard r == entry.rawBytes else { throw .truncated(path: path, offset: r, expected: entry.rawBytes) }
        let header = try raw.withShardBytes { (b) throws(ShardError) in
            try ShardHeader.decode(UnsafeRawBufferPointer(rebasing: b[0..<ShardLayout.headerSize]), path: path)
        }
        guard header.layout == shardSet.layout else {
            throw .badHeader(path: path, offset: 12, reason: "layout \(header.layout) differs from index.json's \(shardSet.layout)")
        }
        guard header.recordCount == entry.instances else {
            throw .badHeader(path: path, offset: 24, reason: "\(header.recordCount) records, index.json lists \(entry.instances)")
        }
        return DecodedShard(index: i, path: path, raw: raw, layout: header.layout, count: header.recordCount)
    }
}

/// A decompressed, checked shard in memory.
struct DecodedShard: @unchecked Sendable {
    let index: Int
    let path: String
    /// (48 + count × recordSize,) the decompressed shard.
    let raw: [UInt8]
    let layout: ShardLayout
    let count: Int

    /// Record `r`, copied out and not yet decoded.
    func pending(_ r: Int) -> PendingRecord {
        let offset = ShardLayout.headerSize + r * layout.recordSize
        let bytes = Array(raw[offset..<(offset + layout.recordSize)])
        return PendingRecord(shard: index, record: r, offset: offset, bytes: bytes,
                             length: bytes.withUnsafeBytes { layout.storedLength($0) })
    }
}

/// The batches of one epoch, made by a background thread (with the next shard loaded by another)
/// and handed out in order through a bounded queue. Releasing it stops the threads.
public final class EpochBatches: @unchecked Sendable {
    /// The position after the last batch handed out.
    public private(set) var position: LoaderPosition
    let state: BatchQueue

    init(loader: ShardLoader, epoch: Int, skipping: Int) {
        position = LoaderPosition(epoch: epoch, instancesConsumed: skipping)
        let state = BatchQueue(capacity: max(1, loader.options.prefetchBatches))
        self.state = state
        let t = Thread {
            do throws(ShardError) {
                try BatchProducer(loader: loader, queue: state).run(epoch: epoch, skipping: skipping)
                state.finish(nil)
            } catch {
                state.finish(error)
            }
        }
        t.name = "bertkit-loader"
        t.start()
    }

    deinit { state.cancel() }

    /// The next batch, or nil at the end of the epoch. Throws the first error the reader met.
    public func next() throws(ShardError) -> InstanceBatch? {
        guard let batch = try state.pop() else { return nil }
        position.instancesConsumed += batch.wholeBatchSize  // the whole batch, also when this is a slice of it
        return batch
    }
}

/// A bounded queue of batches between the producer thread and the consumer.
final class BatchQueue: @unchecked Sendable {
    let capacity: Int
    let condition = NSCondition()
    /// Everything below is guarded by `condition`.
    var queue: [InstanceBatch] = []
    var finished = false
    var failure: ShardError?
    var cancelled = false

    init(capacity: Int) { self.capacity = capacity }

    func pop() throws(ShardError) -> InstanceBatch? {
        condition.lock()
        defer { condition.unlock() }
        while queue.isEmpty && !finished { condition.wait() }
        if !queue.isEmpty {
            condition.broadcast()
            return queue.removeFirst()
        }
        if let failure { throw failure }
        return nil
    }

    /// Waits until there is room; false when the consumer is gone.
    func push(_ batch: InstanceBatch) -> Bool {
        condition.lock()
        defer { condition.unlock() }
        while queue.count >= capacity && !cancelled { condition.wait() }
        if cancelled { return false }
        queue.append(batch)
        condition.broadcast()
        return true
    }

    func finish(_ error: ShardError?) {
        condition.lock()
        failure = error
        finished = true
        condition.broadcast()
        condition.unlock()
    }

    func cancel() {
        condition.lock()
        cancelled = true
        queue.removeAll()
        condition.broadcast()
        condition.unlock()
    }
}

/// Makes the batches of one epoch: shards in order (the next one prefetched), records shuffled,
/// dynamic masks applied, padded batches pushed to the queue.
struct BatchProducer {
    let loader: ShardLoader
    let queue: BatchQueue

    func run(epoch: Int, skipping: Int) throws(ShardError) {
        let shards = loader.shardSet.index.shards
        let order = loader.shardOrder(epoch: epoch).filter { shards[$0].instances > 0 }
        let batchSize = loader.updateBatchSize  // batches are formed at the update's size, then cut into micro-batches
        // With length grouping, reading starts at the window holding the position and the batches of
        // that window already handed out are dropped again.
        let window = loader.options.groupWindowBatches * batchSize  // instances per window, 0 = off
        let readFrom = window > 0 ? (skipping / window) * window : skipping
        var dropInWindow = skipping - readFrom
        var windowIndex = window > 0 ? readFrom / window : 0
        // Skip whole shards from the index's counts, without reading them.
        var skip = readFrom
        var start = 0
        while start < order.count && skip >= shards[order[start]].instances {
            skip -= shards[order[start]].instances
            start += 1
        }
        let remainingInstances = loader.instancesPerEpoch - readFrom
        let unit = window > 0 ? window : batchSize
        var pending: [PendingRecord] = []
        pending.reserveCapacity(unit)
        var prefetch: ShardPrefetch? = start < order.count ? ShardPrefetch(loader: loader, shard: order[start]) : nil
        var read = 0

        /// Hands out `pending` (one batch, or one window); false when the consumer is gone.
        func flush(last: Bool) throws(ShardError) -> Bool {
            defer { pending.removeAll(keepingCapacity: true) }
            guard window > 0 else {
                if last && loader.options.dropLast && pending.count < batchSize { return true }
                return try push(pending, epoch: epoch)
            }
            let sorted = pending.indices.sorted { (pending[$0].length, $0) < (pending[$1].length, $1) }
            // Full batches in a seeded order; a smaller one (the epoch's last window only) stays last,
            // so `dropLast` still drops the epoch's final batch and positions stay batch boundaries.
            var groups = stride(from: 0, to: sorted.count - sorted.count % batchSize, by: batchSize).map { Array(sorted[$0..<($0 + batchSize)]) }
            var rng = SeededGenerator(seed: loader.options.seed, stream: [0x4752_4F55_50, UInt64(epoch), UInt64(windowIndex)])  // "GROUP"
            rng.shuffle(&groups)
            if sorted.count % batchSize != 0 { groups.append(Array(sorted[(sorted.count - sorted.count % batchSize)...])) }
            windowIndex += 1
            for g in groups {
                if loader.options.dropLast && g.count < batchSize { continue }
                if dropInWindow > 0 {
                    guard g.count <= dropInWindow else {
                        throw .invalidLayout(reason: "position \(skipping) is not at a batch boundary of the length-grouped order")
                    }
                    dropInWindow -= g.count
                    continue
                }
                guard try push(g.map { pending[$0] }, epoch: epoch) else { return false }
            }
            if dropInWindow > 0 { throw .invalidLayout(reason: "position \(skipping) is not at a batch boundary of the length-grouped order") }
            return true
        }

        for k in start..<order.count {
            guard let current = prefetch else { break }
            let shard = try current.wait()
            prefetch = k + 1 < order.count ? ShardPrefetch(loader: loader, shard: order[k + 1]) : nil
            let records = loader.recordOrder(epoch: epoch, shard: shard.index, count: shard.count)
            for j in (k == start ? skip : 0)..<records.count {
                pending.append(shard.pending(records[j]))
                read += 1
                if pending.count == unit {
                    guard try flush(last: read == remainingInstances) else { return }
                }
            }
        }
        if !pending.isEmpty {
            guard try flush(last: true) else { return }
        }
        if read != remainingInstances {
            throw .invalidLayout(reason: "read \(read) instances, index.json promises \(remainingInstances)")
        }
    }

    /// Hands out an update batch as its micro-batches of `batchSize`, in order; false when the consumer is gone.
    func push(_ update: [PendingRecord], epoch: Int) throws(ShardError) -> Bool {
        let b = loader.options.batchSize
        for start in stride(from: 0, to: update.count, by: b) {
            guard queue.push(try makeBatch(Array(update[start..<min(update.count, start + b)]), epoch: epoch)) else { return false }
        }
        return true
    }

    /// Decodes, masks and pads the records of one (micro-)batch into an `InstanceBatch`. With a slice, only
    /// this process's slice of them is decoded and masked; of the others only the masked-position
    /// count is read (the denominator of the MLM loss), so each record is decoded (and checked) by
    /// exactly one process.
    func makeBatch(_ whole: [PendingRecord], epoch: Int) throws(ShardError) -> InstanceBatch {
        var mine = whole.indices
        if let slice = loader.options.slice {
            let c = loader.options.batchSize / slice.count
            mine = min(whole.count, slice.index * c)..<min(whole.count, (slice.index + 1) * c)
        }
        var instances: [TrainingInstance] = []
        instances.reserveCapacity(mine.count)
        for i in mine { instances.append(try decode(whole[i], epoch: epoch)) }
        var wholeMasked = instances.reduce(0) { $0 + $1.maskedPositions.count }
        for i in whole.indices where !mine.contains(i) { wholeMasked += try maskedCount(whole[i], epoch: epoch) }
        let b = instances.count
        let t = b == 0 ? 0 : loader.options.padToLongest ? instances.map(\.tokens.count).max()! : loader.shardSet.layout.maxSeqLength
        var batch = InstanceBatch(
            size: b, seqLength: t, inputIds: [Int32](repeating: 0, count: b * t), segmentIds: [Int32](repeating: 0, count: b * t),
            attentionMask: [Int32](repeating: 0, count: b * t), maskedPositions: [], maskedLabels: [],
            nextSentenceLabels: [Int32](repeating: 0, count: b), wholeBatchSize: whole.count, wholeBatchMaskedPositions: wholeMasked,
            wholeBatchTokens: whole.reduce(0) { $0 + $1.length })
        let masked = instances.reduce(0) { $0 + $1.maskedPositions.count }
        batch.maskedPositions.reserveCapacity(masked)
        batch.maskedLabels.reserveCapacity(masked)
        for (i, inst) in instances.enumerated() {  // i from 0 within the slice
            for (p, id) in inst.tokens.enumerated() {
                batch.inputIds[i * t + p] = Int32(bitPattern: id)
                batch.attentionMask[i * t + p] = 1
                batch.segmentIds[i * t + p] = p < inst.segmentALength ? 0 : 1
            }
            for (p, label) in zip(inst.maskedPositions, inst.maskedLabels) {
                batch.maskedPositions.append(Int32(i * t + p))
                batch.maskedLabels.append(Int32(bitPattern: label))
            }
            batch.nextSentenceLabels[i] = inst.isRandomNext ? 1 : 0
        }
        return batch
    }
}

extension BatchProducer {
    /// The masked instance of a record: decoded and checked, then (dynamic masking) masked with the
    /// generator of (seed, epoch, shard, record), whichever process or thread does it.
    func decode(_ p: PendingRecord, epoch: Int) throws(ShardError) -> TrainingInstance {
        let set = loader.shardSet
        var inst = try p.bytes.withShardBytes { (b) throws(ShardError) in
            try set.layout.decode(b, path: set.path(of: set.index.shards[p.shard]), offset: p.offset)
        }
        if let masker = loader.masker {
            var rng = SeededGenerator(seed: loader.options.seed, stream: [0x4D41_534B, UInt64(epoch), UInt64(p.shard), UInt64(p.record)])  // "MASK"
            let (positions, labels) = masker.mask(&inst.tokens, rng: &rng)
            inst.maskedPositions = positions
            inst.maskedLabels = labels
        }
        return inst
    }

    /// The number of masked positions `decode` would give a record, read without decoding it where
    /// the count does not depend on the random draw: the stored count (static masking), or
    /// min(target, non-special positions) (dynamic, piece masking). Whole-word masking can fall short
    /// of its target, so there the record is decoded and masked. Unchecked: the process whose slice
    /// holds the record checks it.
    func maskedCount(_ p: PendingRecord, epoch: Int) throws(ShardError) -> Int {
        let layout = loader.shardSet.layout
        guard let masker = loader.masker else { return p.bytes.withUnsafeBytes { layout.storedMaskedCount($0) } }
        if masker.wholeWord { return try decode(p, epoch: epoch).maskedPositions.count }
        let special = p.bytes.withUnsafeBytes { layout.count(of: [masker.clsId, masker.sepId], in: $0) }
        return masker.pieceMaskCount(length: p.length, specialTokens: special)
    }
}

/// A record read from a shard and not yet decoded. Its bytes are copied out of the shard, so a
/// length-grouping window never keeps whole shards alive.
struct PendingRecord {
    /// Index of the shard in index.json, and of the record in the shard.
    let shard: Int, record: Int
    /// Byte offset of the record in the decompressed shard (for error messages).
    let offset: Int
    /// (recordSize,) the record.
    let bytes: [UInt8]
    /// The stored token count (checked when decoded).
    let length: Int
}

/// A shard being loaded on its own thread.
final class ShardPrefetch: @unchecked Sendable {
    let done = DispatchSemaphore(value: 0)
    var result: Result<DecodedShard, ShardError>?

    init(loader: ShardLoader, shard: Int) {
        let t = Thread { [self] in
            do throws(ShardError) {
                result = .success(try loader.loadShard(shard))
            } catch {
                result = .failure(error)
            }
            done.signal()
        }
        t.name = "bertkit-shard-read"
        t.start()
    }

    func wait() throws(ShardError) -> DecodedShard {
        done.wait()
        done.signal()  // later waits return at once
        return try result!.get()
    }
}
