// Shard file format, version 1.
//
// A shard is `shard-NNNNN.bin.zst`: one zstd frame (level 1 unless `--zstd-level`; content size and frame checksum set)
// that decompresses to a 48-byte header and then `count` fixed-size records, so record i starts at
// byte 48 + i × recordSize. All integers are little-endian; sizes are pinned.
//
// Header (48 bytes):
//
//   offset size  field
//        0    8  magic "BKSHARD\0"              42 4b 53 48 41 52 44 00
//        8    4  format version (UInt32)        1
//       12    1  id width in bytes (UInt8)      2 (UInt16) when vocabulary size ≤ 65,536, else 4 (UInt32)
//       13    1  flags (UInt8)                  bit 0: static masking (positions and labels stored);
//                                               other bits 0
//       14    2  max sequence length (UInt16)   id slots per record
//       16    2  max predictions (UInt16)       masked-position slots per record; 0 with dynamic masking
//       18    2  reserved, 0
//       20    4  record size (UInt32)           8 + maxSeq × idWidth + maxPred × 2 + maxPred × idWidth
//       24    8  record count (UInt64)
//       32    4  vocabulary size (UInt32)       every id and label is below it
//       36   12  reserved, 0
//
// Record (recordSize bytes):
//
//   offset                    size              field
//        0                    2                 total length n (UInt16), 2 ≤ n ≤ maxSeq
//        2                    2                 segment A length (UInt16): [CLS] + A + first [SEP]; 1 ≤ it < n
//        4                    1                 NSP label (UInt8): 1 = B is from another document, 0 = real next
//        5                    1                 reserved, 0
//        6                    2                 number of masked positions m (UInt16), m ≤ maxPred
//        8                    maxSeq × w        token ids; the first n are the instance, the rest 0
//        8 + maxSeq·w         maxPred × 2       masked positions (UInt16), strictly ascending, < n; then 0
//        8 + maxSeq·w + 2·mp  maxPred × w       original ids at those positions; then 0
//
// Padding is zero and reserved bytes are zero, so an instance has exactly one encoding and readers
// reject anything else. Segment ids are not stored: 0 for the first `segment A length` tokens, 1 after.
//
// Worked example: vocabulary of 99 tokens (w = 2), maxSeq 8, maxPred 2, static masking, so the record
// size is 8 + 16 + 4 + 4 = 32. The instance [CLS] 10 [MASK] [SEP] 11 12 [SEP] = ids 2 10 4 3 11 12 3,
// segment A = 4 tokens, B random (label 1), masked positions 2 (original id 57) and 5 (kept as 12):
//
//   header  42 4b 53 48 41 52 44 00  01 00 00 00  02  01  08 00  02 00  00 00  20 00 00 00
//           01 00 00 00 00 00 00 00  63 00 00 00  00 00 00 00 00 00 00 00 00 00 00 00
//   record  07 00  04 00  01  00  02 00                       n = 7, A = 4, random next, 2 masked
//           02 00 0a 00 04 00 03 00 0b 00 0c 00 03 00 00 00   ids, one slot of padding
//           02 00 05 00                                       positions
//           39 00 0c 00                                       labels
//
// `ShardTests.testWorkedExampleBytes` pins these bytes.

import Support

/// One pre-training example: [CLS] A [SEP] B [SEP].
public struct TrainingInstance: Hashable, Sendable {
    /// (length,) ids, masked already when masking is static.
    public var tokens: [UInt32]
    /// Tokens with segment id 0: [CLS] + A + first [SEP].
    public var segmentALength: Int
    /// NSP label 1 (B is from another document); false (0) = real continuation.
    public var isRandomNext: Bool
    /// (numMasked,) ascending positions into `tokens`; empty for dynamic masking.
    public var maskedPositions: [Int]
    /// (numMasked,) original ids at those positions.
    public var maskedLabels: [UInt32]

    /// An instance; masked positions and labels default to none (dynamic masking).
    public init(tokens: [UInt32], segmentALength: Int, isRandomNext: Bool, maskedPositions: [Int] = [], maskedLabels: [UInt32] = []) {
        self.tokens = tokens
        self.segmentALength = segmentALength
        self.isRandomNext = isRandomNext
        self.maskedPositions = maskedPositions
        self.maskedLabels = maskedLabels
    }
}

/// The fixed record layout of a shard set: id width, slots and record size, from the vocabulary
/// size and the generation parameters. See the format description at the top of ShardFormat.swift.
public struct ShardLayout: Equatable, Sendable {
    /// "BKSHARD\0".
    public static let magic: [UInt8] = [0x42, 0x4B, 0x53, 0x48, 0x41, 0x52, 0x44, 0x00]
    /// The format version this build writes and reads.
    public static let formatVersion: UInt32 = 1
    /// Bytes before the first record.
    public static let headerSize = 48
    /// Bytes of a record before its ids.
    static let recordPrefixSize = 8
    /// Vocabularies up to this size store ids as UInt16.
    public static let maxUInt16Vocabulary = 65_536

    /// Number of tokens in the vocabulary; every id and label is below it.
    public let vocabularySize: Int
    /// Id slots per record.
    public let maxSeqLength: Int
    /// Masked-position slots per record: max_predictions_per_seq with static masking, 0 with dynamic.
    public let maxPredictions: Int
    /// Masked positions and labels are stored (flags bit 0).
    public let staticMasking: Bool

    /// Bytes per token id: 2 when the vocabulary fits UInt16, else 4.
    public var idWidth: Int { vocabularySize <= Self.maxUInt16Vocabulary ? 2 : 4 }
    /// Bytes per record.
    public var recordSize: Int { Self.recordPrefixSize + maxSeqLength * idWidth + maxPredictions * (2 + idWidth) }
    /// Offset of the masked positions in a record.
    var positionsOffset: Int { Self.recordPrefixSize + maxSeqLength * idWidth }
    /// Offset of the masked labels in a record.
    var labelsOffset: Int { positionsOffset + 2 * maxPredictions }

    /// A layout. With dynamic masking (`staticMasking` false) records have no prediction slots,
    /// whatever `maxPredictionsPerSeq` is.
    public init(vocabularySize: Int, maxSeqLength: Int, maxPredictionsPerSeq: Int, staticMasking: Bool) throws(ShardError) {
        guard (1...Int(UInt32.max)).contains(vocabularySize) else {
            throw .invalidLayout(reason: "vocabulary size \(vocabularySize) is not in 1...\(UInt32.max)")
        }
        guard (2...Int(UInt16.max)).contains(maxSeqLength) else {
            throw .invalidLayout(reason: "max_seq_length \(maxSeqLength) is not in 2...\(UInt16.max)")
        }
        if staticMasking {
            guard (1...maxSeqLength).contains(maxPredictionsPerSeq) else {
                throw .invalidLayout(reason: "max_predictions_per_seq \(maxPredictionsPerSeq) is not in 1...\(maxSeqLength) (max_seq_length)")
            }
        }
        self.vocabularySize = vocabularySize
        self.maxSeqLength = maxSeqLength
        self.maxPredictions = staticMasking ? maxPredictionsPerSeq : 0
        self.staticMasking = staticMasking
    }

    /// Checks that an instance fits this layout and is consistent in itself.
    public func validate(_ instance: TrainingInstance) throws(ShardError) {
        let n = instance.tokens.count
        guard n <= maxSeqLength else { throw .instanceTooLong(length: n, maxSeqLength: maxSeqLength) }
        guard n >= 2, (1..<n).contains(instance.segmentALength) else {
            throw .invalidInstance(reason: "segment A length \(instance.segmentALength) for \(n) tokens (needs 1 ≤ A < length)")
        }
        let m = instance.maskedPositions.count
        guard m == instance.maskedLabels.count else {
            throw .invalidInstance(reason: "\(m) masked positions but \(instance.maskedLabels.count) labels")
        }
        guard m <= maxPredictions else { throw .tooManyPredictions(count: m, maxPredictions: maxPredictions) }
        var previous = -1
        for p in instance.maskedPositions {
            guard p > previous, p < n else {
                throw .invalidInstance(reason: "masked positions \(instance.maskedPositions) are not strictly ascending within 0..<\(n)")
            }
            previous = p
        }
        for (i, id) in instance.tokens.enumerated() where Int(id) >= vocabularySize {
            throw .invalidInstance(reason: "token id \(id) at position \(i) is outside the vocabulary of \(vocabularySize)")
        }
        for id in instance.maskedLabels where Int(id) >= vocabularySize {
            throw .invalidInstance(reason: "masked label \(id) is outside the vocabulary of \(vocabularySize)")
        }
    }

    /// The record bytes of an instance: (recordSize,).
    public func encode(_ instance: TrainingInstance) throws(ShardError) -> [UInt8] {
        var record = [UInt8](repeating: 0, count: recordSize)
        try validate(instance)
        record.withUnsafeMutableBytes { encodeValidated(instance, into: $0.baseAddress!) }
        return record
    }

    /// Writes a validated instance into `record`, which holds recordSize zero bytes.
    func encodeValidated(_ instance: TrainingInstance, into record: UnsafeMutableRawPointer) {
        record.storeLE(UInt16(instance.tokens.count), at: 0)
        record.storeLE(UInt16(instance.segmentALength), at: 2)
        record.storeLE(UInt8(instance.isRandomNext ? 1 : 0), at: 4)
        record.storeLE(UInt16(instance.maskedPositions.count), at: 6)
        storeIDs(instance.tokens, to: record + Self.recordPrefixSize)
        for (i, p) in instance.maskedPositions.enumerated() { record.storeLE(UInt16(p), at: positionsOffset + 2 * i) }
        storeIDs(instance.maskedLabels, to: record + labelsOffset)
    }

    func storeIDs(_ ids: [UInt32], to p: UnsafeMutableRawPointer) {
        if idWidth == 2 {
            for (i, id) in ids.enumerated() { p.storeLE(UInt16(truncatingIfNeeded: id), at: 2 * i) }
        } else {
            for (i, id) in ids.enumerated() { p.storeLE(id, at: 4 * i) }
        }
    }

    func loadID(_ p: UnsafeRawPointer, _ i: Int) -> UInt32 {
        idWidth == 2 ? UInt32(p.loadLE(UInt16.self, at: 2 * i)) : p.loadLE(UInt32.self, at: 4 * i)
    }

    /// The token count a record stores, unchecked (`decode` checks it).
    func storedLength(_ record: UnsafeRawBufferPointer) -> Int {
        record.count >= Self.recordPrefixSize ? Int(record.baseAddress!.loadLE(UInt16.self, at: 0)) : 0
    }

    /// The masked-position count a record stores, unchecked.
    func storedMaskedCount(_ record: UnsafeRawBufferPointer) -> Int {
        record.count >= Self.recordPrefixSize ? min(maxPredictions, Int(record.baseAddress!.loadLE(UInt16.self, at: 6))) : 0
    }

    /// How many of a record's tokens (its stored length, at most max_seq_length) are one of `ids`,
    /// unchecked.
    func count(of ids: [UInt32], in record: UnsafeRawBufferPointer) -> Int {
        guard record.count == recordSize, let r = record.baseAddress else { return 0 }
        let n = min(storedLength(record), maxSeqLength)
        var c = 0
        for i in 0..<n where ids.contains(loadID(r + Self.recordPrefixSize, i)) { c += 1 }
        return c
    }

    /// Decodes and validates one record: (recordSize,) bytes at decompressed byte `offset` of the
    /// shard at `path` (both for error messages).
    public func decode(_ record: UnsafeRawBufferPointer, path: String, offset: Int) throws(ShardError) -> TrainingInstance {
        guard record.count == recordSize, let r = record.baseAddress else {
            throw .corruptRecord(path: path, offset: offset, reason: "record of \(record.count) bytes, layout needs \(recordSize)")
        }
        func fail(_ field: Int, _ reason: String) -> ShardError { .corruptRecord(path: path, offset: offset + field, reason: reason) }
        let n = Int(r.loadLE(UInt16.self, at: 0))
        guard (2...maxSeqLength).contains(n) else { throw fail(0, "length \(n) is not in 2...\(maxSeqLength)") }
        let a = Int(r.loadLE(UInt16.self, at: 2))
        guard (1..<n).contains(a) else { throw fail(2, "segment A length \(a) is not in 1..<\(n)") }
        let label = r.loadLE(UInt8.self, at: 4)
        guard label <= 1 else { throw fail(4, "NSP label \(label) is not 0 or 1") }
        guard r.loadLE(UInt8.self, at: 5) == 0 else { throw fail(5, "reserved byte is not 0") }
        let m = Int(r.loadLE(UInt16.self, at: 6))
        guard m <= maxPredictions else { throw fail(6, "\(m) masked positions, more than the \(maxPredictions) slots") }
        let ids = r + Self.recordPrefixSize
        var tokens = [UInt32](repeating: 0, count: n)
        for i in 0..<maxSeqLength {
            let id = loadID(ids, i)
            if i < n {
                guard Int(id) < vocabularySize else { throw fail(Self.recordPrefixSize + i * idWidth, "token id \(id) is outside the vocabulary of \(vocabularySize)") }
                tokens[i] = id
            } else if id != 0 {
                throw fail(Self.recordPrefixSize + i * idWidth, "padding id is \(id), not 0")
            }
        }
        var positions = [Int](repeating: 0, count: m)
        var previous = -1
        for i in 0..<maxPredictions {
            let p = Int(r.loadLE(UInt16.self, at: positionsOffset + 2 * i))
            if i < m {
                guard p > previous, p < n else { throw fail(positionsOffset + 2 * i, "masked position \(p) is not ascending within 0..<\(n)") }
                positions[i] = p
                previous = p
            } else if p != 0 {
                throw fail(positionsOffset + 2 * i, "padding position is \(p), not 0")
            }
        }
        var labels = [UInt32](repeating: 0, count: m)
        let labelBase = r + labelsOffset
        for i in 0..<maxPredictions {
            let id = loadID(labelBase, i)
            if i < m {
                guard Int(id) < vocabularySize else { throw fail(labelsOffset + i * idWidth, "masked label \(id) is outside the vocabulary of \(vocabularySize)") }
                labels[i] = id
            } else if id != 0 {
                throw fail(labelsOffset + i * idWidth, "padding label is \(id), not 0")
            }
        }
        return TrainingInstance(tokens: tokens, segmentALength: a, isRandomNext: label == 1, maskedPositions: positions, maskedLabels: labels)
    }
}

/// The 48-byte header at the start of a decompressed shard.
public struct ShardHeader: Equatable, Sendable {
    /// Record layout.
    public var layout: ShardLayout
    /// Number of records that follow.
    public var recordCount: Int

    /// A header.
    public init(layout: ShardLayout, recordCount: Int) {
        self.layout = layout
        self.recordCount = recordCount
    }

    /// Decompressed size of the whole shard.
    public var rawByteCount: Int { ShardLayout.headerSize + recordCount * layout.recordSize }

    /// The header bytes: (48,).
    public func encoded() -> [UInt8] {
        var bytes = [UInt8](repeating: 0, count: ShardLayout.headerSize)
        bytes.withUnsafeMutableBytes { b in
            let p = b.baseAddress!
            p.copyMemory(from: ShardLayout.magic, byteCount: ShardLayout.magic.count)
            p.storeLE(ShardLayout.formatVersion, at: 8)
            p.storeLE(UInt8(layout.idWidth), at: 12)
            p.storeLE(UInt8(layout.staticMasking ? 1 : 0), at: 13)
            p.storeLE(UInt16(layout.maxSeqLength), at: 14)
            p.storeLE(UInt16(layout.maxPredictions), at: 16)
            p.storeLE(UInt32(layout.recordSize), at: 20)
            p.storeLE(UInt64(recordCount), at: 24)
            p.storeLE(UInt32(layout.vocabularySize), at: 32)
        }
        return bytes
    }

    /// Decodes and validates a header: (48,) bytes from the start of the shard at `path`.
    public static func decode(_ bytes: UnsafeRawBufferPointer, path: String) throws(ShardError) -> ShardHeader {
        guard bytes.count == ShardLayout.headerSize, let p = bytes.baseAddress else {
            throw .truncated(path: path, offset: bytes.count, expected: ShardLayout.headerSize)
        }
        func fail(_ offset: Int, _ reason: String) -> ShardError { .badHeader(path: path, offset: offset, reason: reason) }
        guard Array(bytes[0..<8]) == ShardLayout.magic else {
            throw fail(0, "magic \(SHA256.hex(Array(bytes[0..<8]))) is not BKSHARD\\0: not a BertKit shard")
        }
        let version = p.loadLE(UInt32.self, at: 8)
        guard version == ShardLayout.formatVersion else {
            throw fail(8, "format version \(version); this build reads version \(ShardLayout.formatVersion)")
        }
        let width = Int(p.loadLE(UInt8.self, at: 12))
        let flags = p.loadLE(UInt8.self, at: 13)
        guard flags & ~1 == 0 else { throw fail(13, "unknown flags \(flags)") }
        let maxSeq = Int(p.loadLE(UInt16.self, at: 14))
        let maxPred = Int(p.loadLE(UInt16.self, at: 16))
        guard p.loadLE(UInt16.self, at: 18) == 0 else { throw fail(18, "reserved bytes are not 0") }
        let recordSize = Int(p.loadLE(UInt32.self, at: 20))
        let count = p.loadLE(UInt64.self, at: 24)
        let vocab = Int(p.loadLE(UInt32.self, at: 32))
        for i in 36..<ShardLayout.headerSize where bytes[i] != 0 { throw fail(i, "reserved bytes are not 0") }
        let layout: ShardLayout
        do {
            layout = try ShardLayout(vocabularySize: vocab, maxSeqLength: maxSeq, maxPredictionsPerSeq: maxPred, staticMasking: flags & 1 == 1)
        } catch {
            throw fail(14, "\(error)")
        }
        guard layout.maxPredictions == maxPred else { throw fail(16, "\(maxPred) prediction slots with dynamic masking (must be 0)") }
        guard width == layout.idWidth else { throw fail(12, "id width \(width) for a vocabulary of \(vocab) (expected \(layout.idWidth))") }
        guard recordSize == layout.recordSize else { throw fail(20, "record size \(recordSize), layout needs \(layout.recordSize)") }
        guard count <= UInt64(Int.max / max(1, recordSize)) else { throw fail(24, "record count \(count) is impossible") }
        return ShardHeader(layout: layout, recordCount: Int(count))
    }
}

extension UnsafeMutableRawPointer {
    /// Stores an integer little-endian at a byte offset (any alignment).
    @inline(__always) func storeLE<T: FixedWidthInteger>(_ value: T, at offset: Int) {
        storeBytes(of: value.littleEndian, toByteOffset: offset, as: T.self)
    }
}

extension UnsafeRawPointer {
    /// Loads a little-endian integer from a byte offset (any alignment).
    @inline(__always) func loadLE<T: FixedWidthInteger>(_ type: T.Type, at offset: Int) -> T {
        T(littleEndian: loadUnaligned(fromByteOffset: offset, as: T.self))
    }
}

extension Array where Element == UInt8 {
    /// `withUnsafeBytes` for a body that throws `ShardError` (the standard one only rethrows `any Error`).
    func withShardBytes<R>(_ body: (UnsafeRawBufferPointer) throws(ShardError) -> R) throws(ShardError) -> R {
        try withUnsafeBytes { b in Result { () throws(ShardError) in try body(b) } }.get()
    }
}
