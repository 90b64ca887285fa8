/// Errors building, writing and reading shards. Those about files name the file; those about
/// shard contents give the byte offset in the decompressed shard (or in the compressed file, where
/// it says so), and each says what to do.
public enum ShardError: Error, Equatable, CustomStringConvertible {
    // Building records.
    /// Layout parameters out of range (sequence length, prediction count, vocabulary size).
    case invalidLayout(reason: String)
    /// An instance with more tokens than the layout's maximum sequence length.
    case instanceTooLong(length: Int, maxSeqLength: Int)
    /// An instance with more masked positions than the layout has slots (0 with dynamic masking).
    case tooManyPredictions(count: Int, maxPredictions: Int)
    /// An instance that is inconsistent in itself (segment A length, positions, ids out of range).
    case invalidInstance(reason: String)
    /// Two instances added to a `ShardWriter` under the same key.
    case duplicateKey(key: UInt64)
    /// One document pass made more instances than an instance key can number (2²⁴), or the corpus has
    /// more than 2³² documents.
    case documentTooLarge(document: Int)

    // Writing.
    /// The output directory already holds a complete shard set and overwriting was not asked for.
    case outputExists(directory: String)
    /// The output path exists and is a file, not a directory.
    case outputNotADirectory(path: String)
    /// A file could not be written, synced, renamed or removed.
    case writeFailed(path: String, reason: String)
    /// `add` or `finish` after `finish`, or after a failed write.
    case writerClosed(reason: String)

    // Reading a directory.
    /// The path given does not exist.
    case notFound(path: String)
    /// A directory without `index.json`: an incomplete (interrupted) or foreign output.
    case missingIndex(directory: String)
    /// `index.json` that cannot be parsed or is inconsistent.
    case badIndex(path: String, reason: String)
    /// Shards built with a different vocabulary from the one in use.
    case vocabularyMismatch(path: String, expected: String, found: String)
    /// A shard read with a vocabulary of another size than the one it was built with.
    case vocabularySizeMismatch(path: String, shardVocabularySize: Int, vocabularyPath: String, vocabularySize: Int)
    /// A shard that `index.json` lists is not in the directory.
    case missingShard(path: String)
    /// A `shard-*.bin.zst` in the directory that `index.json` does not list.
    case unlistedShard(path: String)
    /// `--part K/N` or a merge of parts that cannot be done as asked.
    case invalidParts(reason: String)
    /// A shard whose compressed size differs from `index.json`.
    case sizeMismatch(path: String, expected: Int, actual: Int)
    /// A shard whose sha256 differs from `index.json`.
    case checksumMismatch(path: String, expected: String, actual: String)

    // Reading a shard.
    /// The file could not be opened or read.
    case readFailed(path: String, reason: String)
    /// zstd refused the data (damaged or truncated frame, bad frame checksum); `offset` is in the
    /// compressed file.
    case corruptCompressed(path: String, offset: Int, reason: String)
    /// The shard header is wrong (magic, version, layout, record count); `offset` is the field's.
    case badHeader(path: String, offset: Int, reason: String)
    /// The decompressed data ends at `offset`, before the `expected` byte count.
    case truncated(path: String, offset: Int, expected: Int)
    /// Decompressed data goes on past the last record, from `offset`.
    case trailingData(path: String, offset: Int)
    /// A record field out of range; `offset` is the field's, in the decompressed shard.
    case corruptRecord(path: String, offset: Int, reason: String)

    public var description: String {
        let rerun = "re-run bert shards to rebuild the directory"
        switch self {
        case let .invalidLayout(reason): return "invalid shard layout: \(reason)"
        case let .instanceTooLong(length, max):
            return "instance of \(length) tokens does not fit max_seq_length \(max); truncate it before writing"
        case let .tooManyPredictions(count, max):
            return max == 0
                ? "instance has \(count) masked positions but the shards use dynamic masking (none stored)"
                : "instance has \(count) masked positions, more than max_predictions_per_seq \(max)"
        case let .invalidInstance(reason): return "invalid training instance: \(reason)"
        case let .documentTooLarge(document):
            return "document \(document) makes more than 2^24 instances; split the input into documents (blank lines)"
        case let .duplicateKey(key):
            return "two instances were added with key \(key); keys must be unique for the output to be deterministic"
        case let .outputExists(directory):
            return "\(directory): already holds shards (index.json); remove it or ask to overwrite"
        case let .outputNotADirectory(path): return "\(path): exists and is not a directory; give a directory for the shards"
        case let .writeFailed(path, reason): return "\(path): write failed (\(reason)); check free space and permissions"
        case let .writerClosed(reason): return "shard writer closed: \(reason)"
        case let .notFound(path): return "\(path): no such file or directory"
        case let .missingIndex(directory):
            return "\(directory): no index.json, so the shards are incomplete (interrupted run?) or not shards; \(rerun)"
        case let .badIndex(path, reason): return "\(path): bad shard index (\(reason)); \(rerun)"
        case let .vocabularyMismatch(path, expected, found):
            return "\(path): shards were built with vocabulary sha256 \(found), not the vocabulary in use (\(expected)); "
                + "use the vocab.txt they were built with or \(rerun)"
        case let .vocabularySizeMismatch(path, shardSize, vocabPath, size):
            return "\(path): built with a vocabulary of \(shardSize) tokens, but \(vocabPath) has \(size); "
                + "pass the vocab.txt the shards were built with (--vocab)"
        case let .missingShard(path): return "\(path): listed in index.json but missing; \(rerun)"
        case let .invalidParts(reason): return reason
        case let .unlistedShard(path):
            return "\(path): shard file not listed in index.json (left from another run?); remove it or \(rerun)"
        case let .sizeMismatch(path, expected, actual):
            return "\(path): \(actual) bytes, index.json lists \(expected) (truncated or replaced); \(rerun)"
        case let .checksumMismatch(path, expected, actual):
            return "\(path): sha256 \(actual), index.json lists \(expected) (damaged file); \(rerun)"
        case let .readFailed(path, reason): return "\(path): read failed (\(reason))"
        case let .corruptCompressed(path, offset, reason):
            return "\(path): corrupt zstd data near compressed byte \(offset) (\(reason)); \(rerun)"
        case let .badHeader(path, offset, reason):
            return "\(path): bad shard header at byte \(offset) (\(reason)); \(rerun)"
        case let .truncated(path, offset, expected):
            return "\(path): shard data ends at decompressed byte \(offset), expected \(expected) bytes (truncated); \(rerun)"
        case let .trailingData(path, offset):
            return "\(path): unexpected data after the last record at decompressed byte \(offset); \(rerun)"
        case let .corruptRecord(path, offset, reason):
            return "\(path): corrupt record at decompressed byte \(offset) (\(reason)); \(rerun)"
        }
    }
}
