import Support
import Foundation

/// Every parameter that went into building a shard set, as stored in `index.json`.
/// Defaults are google-research/bert's create_pretraining_data.py flags.
public struct ShardGenerationParameters: Codable, Equatable, Sendable {
    /// Tokens per instance at most, [CLS] and [SEP]s included.
    public var maxSeqLength: Int
    /// Fraction of tokens masked.
    public var maskedLMProb: Double
    /// Masked positions per instance at most.
    public var maxPredictionsPerSeq: Int
    /// Passes over the corpus, each with different pairs and masks.
    public var dupeFactor: Int
    /// Probability of a shorter target length.
    public var shortSeqProb: Double
    /// Seed of every random choice, the shuffle of the shards included.
    public var seed: UInt64
    /// Whole-word masking.
    public var wholeWordMask: Bool
    /// Masking at load time (no masked positions stored) instead of at generation time.
    public var dynamicMasking: Bool
    /// Text was lowercased (uncased vocabulary).
    public var lowercase: Bool
    /// Anything else worth recording (input files, tool version): free-form.
    public var extra: [String: String]

    /// Parameters; defaults are BERT's.
    public init(
        maxSeqLength: Int = 128, maskedLMProb: Double = 0.15, maxPredictionsPerSeq: Int = 20, dupeFactor: Int = 10,
        shortSeqProb: Double = 0.1, seed: UInt64 = 12345, wholeWordMask: Bool = false, dynamicMasking: Bool = false,
        lowercase: Bool = true, extra: [String: String] = [:]
    ) {
        self.maxSeqLength = maxSeqLength
        self.maskedLMProb = maskedLMProb
        self.maxPredictionsPerSeq = maxPredictionsPerSeq
        self.dupeFactor = dupeFactor
        self.shortSeqProb = shortSeqProb
        self.seed = seed
        self.wholeWordMask = wholeWordMask
        self.dynamicMasking = dynamicMasking
        self.lowercase = lowercase
        self.extra = extra
    }

    enum CodingKeys: String, CodingKey {
        case maxSeqLength = "max_seq_length"
        case maskedLMProb = "masked_lm_prob"
        case maxPredictionsPerSeq = "max_predictions_per_seq"
        case dupeFactor = "dupe_factor"
        case shortSeqProb = "short_seq_prob"
        case seed
        case wholeWordMask = "whole_word_mask"
        case dynamicMasking = "dynamic_masking"
        case lowercase
        case extra
    }
}

/// One shard as listed in `index.json`.
public struct ShardEntry: Codable, Equatable, Sendable {
    /// File name inside the shard directory, `shard-NNNNN.bin.zst`.
    public var file: String
    /// Records in the shard.
    public var instances: Int
    /// Size of the file.
    public var compressedBytes: Int
    /// Size of the decompressed data (header and records).
    public var rawBytes: Int
    /// Lowercase hex sha256 of the file (the compressed bytes).
    public var sha256: String

    /// An entry.
    public init(file: String, instances: Int, compressedBytes: Int, rawBytes: Int, sha256: String) {
        self.file = file
        self.instances = instances
        self.compressedBytes = compressedBytes
        self.rawBytes = rawBytes
        self.sha256 = sha256
    }

    enum CodingKeys: String, CodingKey {
        case file, instances, sha256
        case compressedBytes = "compressed_bytes"
        case rawBytes = "raw_bytes"
    }
}

/// `index.json` of a shard directory: what was built, from what, and the list of shards.
/// It is written last, so its presence means the directory is complete.
public struct ShardIndex: Codable, Equatable, Sendable {
    /// The index file's name in a shard directory.
    public static let fileName = "index.json"

    /// Shard format version (`ShardLayout.formatVersion`).
    public var formatVersion: Int
    /// Lowercase hex sha256 of the vocab.txt the ids refer to.
    public var vocabSHA256: String
    /// Tokens in that vocabulary.
    public var vocabSize: Int
    /// How the instances were generated.
    public var parameters: ShardGenerationParameters
    /// Sum of the shards' instance counts.
    public var totalInstances: Int
    /// The shards, in file-name order.
    public var shards: [ShardEntry]
    /// Counts from generation (instances, random_next, document_passes, short_targets, …), for reports;
    /// absent when the writer was given none.
    public var statistics: [String: Int]?

    /// An index.
    public init(formatVersion: Int = Int(ShardLayout.formatVersion), vocabSHA256: String, vocabSize: Int,
                parameters: ShardGenerationParameters, totalInstances: Int, shards: [ShardEntry], statistics: [String: Int]? = nil) {
        self.formatVersion = formatVersion
        self.vocabSHA256 = vocabSHA256
        self.vocabSize = vocabSize
        self.parameters = parameters
        self.totalInstances = totalInstances
        self.shards = shards
        self.statistics = statistics
    }

    enum CodingKeys: String, CodingKey {
        case formatVersion = "format_version"
        case vocabSHA256 = "vocab_sha256"
        case vocabSize = "vocab_size"
        case parameters
        case totalInstances = "total_instances"
        case shards
        case statistics
    }

    /// The record layout the index describes.
    public func layout() throws(ShardError) -> ShardLayout {
        try ShardLayout(vocabularySize: vocabSize, maxSeqLength: parameters.maxSeqLength,
                        maxPredictionsPerSeq: parameters.maxPredictionsPerSeq, staticMasking: !parameters.dynamicMasking)
    }

    /// The JSON text: sorted keys, pretty-printed, a final newline (same index, same bytes).
    public func encoded() throws(ShardError) -> Data {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys, .prettyPrinted, .withoutEscapingSlashes]
        do {
            var data = try encoder.encode(self)
            data.append(0x0A)
            return data
        } catch {
            throw .badIndex(path: Self.fileName, reason: "cannot encode: \(error)")
        }
    }

    /// Writes `DIRECTORY/index.json` atomically (temporary file, fsync, rename, directory fsync).
    public func write(toDirectory directory: String) throws(ShardError) {
        let path = (directory as NSString).appendingPathComponent(Self.fileName)
        do {
            try writeFileAtomically(try encoded(), to: path)
        } catch let error as OutputError {
            if case let .writeFailed(path, reason) = error { throw .writeFailed(path: path, reason: reason) }
            throw .writeFailed(path: path, reason: "\(error)")
        } catch let error as ShardError {
            throw error
        } catch {
            throw .writeFailed(path: path, reason: "\(error)")
        }
    }

    /// Reads and checks an index file: version, names, counts and checksums well-formed, totals
    /// consistent, and raw sizes that match the record layout.
    public static func load(path: String) throws(ShardError) -> ShardIndex {
        let data: Data
        do {
            data = try Data(contentsOf: URL(fileURLWithPath: path))
        } catch {
            throw .readFailed(path: path, reason: error.localizedDescription)
        }
        let index: ShardIndex
        do {
            index = try JSONDecoder().decode(ShardIndex.self, from: data)
        } catch {
            throw .badIndex(path: path, reason: "not a valid index: \(error)")
        }
        try index.check(path: path)
        return index
    }

    /// Consistency checks of a decoded index; errors name `path`.
    func check(path: String) throws(ShardError) {
        func fail(_ reason: String) -> ShardError { .badIndex(path: path, reason: reason) }
        guard formatVersion == Int(ShardLayout.formatVersion) else {
            throw fail("format version \(formatVersion); this build reads version \(ShardLayout.formatVersion)")
        }
        guard isSHA256Hex(vocabSHA256) else { throw fail("vocab_sha256 \"\(vocabSHA256)\" is not 64 lowercase hex digits") }
        let layout: ShardLayout
        do { layout = try self.layout() } catch { throw fail("\(error)") }
        var names = Set<String>()
        var total = 0
        for s in shards {
            guard isShardFileName(s.file) else { throw fail("shard file name \"\(s.file)\" is not shard-NNNNN.bin.zst") }
            guard names.insert(s.file).inserted else { throw fail("\(s.file) is listed twice") }
            guard isSHA256Hex(s.sha256) else { throw fail("\(s.file): sha256 \"\(s.sha256)\" is not 64 lowercase hex digits") }
            guard s.instances >= 0, s.compressedBytes > 0 else { throw fail("\(s.file): negative or zero counts") }
            let (records, overflow) = s.instances.multipliedReportingOverflow(by: layout.recordSize)
            guard !overflow, s.rawBytes == ShardLayout.headerSize + records else {
                throw fail("\(s.file): raw_bytes \(s.rawBytes) for \(s.instances) records of \(layout.recordSize) bytes")
            }
            total += s.instances
        }
        guard total == totalInstances else { throw fail("total_instances \(totalInstances), the shards hold \(total)") }
    }
}

/// Whether `s` is 64 lowercase hex digits.
func isSHA256Hex(_ s: String) -> Bool {
    s.utf8.count == 64 && s.utf8.allSatisfy { (0x30...0x39).contains($0) || (0x61...0x66).contains($0) }
}

/// Whether `name` is a shard file name: `shard-` digits (at least 5) `.bin.zst`.
func isShardFileName(_ name: String) -> Bool {
    guard name.hasPrefix("shard-"), name.hasSuffix(".bin.zst") else { return false }
    let digits = name.utf8.dropFirst(6).dropLast(8)
    return digits.count >= 5 && digits.allSatisfy { (0x30...0x39).contains($0) }
}

/// Whether `name` looks like a shard file (`shard-*.bin.zst`), well-formed number or not.
func looksLikeShardFile(_ name: String) -> Bool {
    name.hasPrefix("shard-") && name.hasSuffix(".bin.zst")
}

/// `shard-NNNNN.bin.zst` for shard `i` (five digits, more when needed).
func shardFileName(_ i: Int) -> String {
    let digits = String(i)
    return "shard-" + String(repeating: "0", count: max(0, 5 - digits.count)) + digits + ".bin.zst"
}
