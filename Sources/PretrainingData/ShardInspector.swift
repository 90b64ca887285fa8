import Foundation
import Support
import WordPiece

/// The instances of a shard directory (every shard, verified against `index.json` and the vocabulary) or
/// of one shard file (checked against the index beside it when that lists it). The library behind
/// `bert inspect`.
public struct ShardInspector {
    /// Readers in shard order.
    public let readers: [ShardReader]
    /// The vocabulary the shards were checked against (for decoding ids).
    public let vocabulary: Vocabulary
    /// The generation parameters, when an index describes the shards.
    public let parameters: ShardGenerationParameters?
    /// The index's generation statistics (document passes, short targets, …), for a directory.
    public let generation: [String: Int]?

    /// Opens `path`, a shard directory or one shard file, with the vocabulary at `vocabularyPath`.
    public init(path: String, vocabularyPath: String) throws {
        var isDir: ObjCBool = false
        guard FileManager.default.fileExists(atPath: path, isDirectory: &isDir) else { throw ShardError.notFound(path: path) }
        let vocabulary = try Vocabulary.load(path: vocabularyPath)
        self.vocabulary = vocabulary
        if isDir.boolValue {
            let vocabData = try Data(contentsOf: URL(fileURLWithPath: vocabularyPath))
            let set = try ShardSet(directory: path, expectedVocabSHA256: SHA256.hex(SHA256.hash(Array(vocabData))))
            readers = try set.index.shards.map { try set.reader(for: $0) }
            generation = set.index.statistics
            parameters = set.index.parameters
        } else {
            let dir = (path as NSString).deletingLastPathComponent
            let indexPath = (dir as NSString).appendingPathComponent("index.json")
            let index = try? ShardIndex.load(path: indexPath)
            let entry = index?.shards.first { $0.file == (path as NSString).lastPathComponent }
            var parameters: ShardGenerationParameters? = nil
            if let index, entry != nil {
                parameters = index.parameters
                try index.requireVocabulary(sha256: SHA256.hex(try SHA256.hash(file: vocabularyPath)), reportingPath: indexPath)
            }
            let reader = try ShardReader(path: path, expected: entry)
            try reader.requireVocabulary(count: vocabulary.count, vocabularyPath: vocabularyPath)
            readers = [reader]
            generation = nil
            self.parameters = parameters
        }
    }

    /// Calls `body` on each instance in order until it returns false or the shards end.
    public func forEach(_ body: (TrainingInstance) throws -> Bool) throws {
        for reader in readers {
            while let inst = try reader.next() {
                if try !body(inst) { return }
            }
        }
    }

    /// Statistics over every instance. The mask-count check applies to static masks only.
    public func statistics() throws -> InstanceStatistics {
        let maskId = UInt32(vocabulary.maskId)
        let staticMasks = parameters.map { !$0.dynamicMasking } ?? false
        var statistics = InstanceStatistics(maskId: maskId, maskedLMProb: parameters?.maskedLMProb ?? 0,
                                            maxPredictions: staticMasks ? parameters?.maxPredictionsPerSeq ?? 0 : 0)
        try forEach { statistics.add($0); return true }
        if let g = generation, let passes = g["document_passes"], let short = g["short_targets"], passes > 0 {
            statistics.shortTargetShare = Double(short) / Double(passes)
        }
        return statistics
    }
}

extension ShardIndex {
    /// Checks that the vocabulary with hex sha256 `sha256` is the one these shards were built with;
    /// the error names `reportingPath`.
    public func requireVocabulary(sha256: String, reportingPath: String) throws(ShardError) {
        guard sha256 == vocabSHA256 else { throw .vocabularyMismatch(path: reportingPath, expected: sha256, found: vocabSHA256) }
    }
}

/// Statistics over instances, as `bert inspect --stats` prints them.
public struct InstanceStatistics {
    public let maskId: UInt32
    public var instances = 0, randomNext = 0, tokens = 0, masked = 0, maskToken = 0, unchanged = 0, replaced = 0
    public var histogram = [Int](repeating: 0, count: 9)  // lengths in 16-token bins up to 128, then more
    public var maxLength = 0
    /// Document passes that drew a short target length (from index.json), when known.
    public var shortTargetShare: Double?
    /// Instances whose masked count is not min(maxPredictions, max(1, round(length × prob))).
    public var wrongMaskCounts = 0
    public let maskedLMProb: Double, maxPredictions: Int

    /// `maxPredictions` 0 skips the mask-count check (dynamic shards store no masks).
    public init(maskId: UInt32, maskedLMProb: Double, maxPredictions: Int) {
        self.maskId = maskId
        self.maskedLMProb = maskedLMProb
        self.maxPredictions = maxPredictions
    }

    /// Counts one instance.
    public mutating func add(_ inst: TrainingInstance) {
        instances += 1
        if inst.isRandomNext { randomNext += 1 }
        tokens += inst.tokens.count
        maxLength = max(maxLength, inst.tokens.count)
        histogram[min(8, (inst.tokens.count - 1) / 16)] += 1
        masked += inst.maskedPositions.count
        if maxPredictions > 0 {
            let expected = Masker.predictionCount(length: inst.tokens.count, maskedLMProb: maskedLMProb, maxPredictions: maxPredictions)
            if inst.maskedPositions.count != expected { wrongMaskCounts += 1 }
        }
        for (p, label) in zip(inst.maskedPositions, inst.maskedLabels) {
            let t = inst.tokens[p]
            if t == maskId { maskToken += 1 } else if t == label { unchanged += 1 } else { replaced += 1 }
        }
    }

    /// The report: `key: value` lines, or one JSON object with sorted keys.
    public func report(json: Bool) -> String {
        let m = Double(max(1, masked))
        let values: [(String, Any)] = [
            ("instances", instances), ("tokens", tokens), ("max_length", maxLength),
            ("mean_length", Double(tokens) / Double(max(1, instances))),
            ("masked_fraction", Double(masked) / Double(max(1, tokens))),
            ("masked_as_mask", Double(maskToken) / m), ("masked_unchanged", Double(unchanged) / m),
            ("masked_random", Double(replaced) / m),
            ("random_next", Double(randomNext) / Double(max(1, instances))),
            ("length_histogram_16", histogram),
        ] + (maxPredictions > 0 ? [("masked_count_not_formula", wrongMaskCounts)] : [])
            + (shortTargetShare.map { [("short_target_share", $0)] } ?? [])
        if json {
            let data = (try? JSONSerialization.data(withJSONObject: Dictionary(uniqueKeysWithValues: values), options: [.sortedKeys])) ?? Data()
            return String(decoding: data, as: UTF8.self)
        }
        return values.map { k, v in
            if let d = v as? Double { return "\(k): \(String(format: "%.4f", d))" }
            return "\(k): \(v)"
        }.joined(separator: "\n")
    }
}
