import Support
import ArgumentParser
import Foundation
import PretrainingData
import WordPiece

/// `bert inspect`: decoded instances of a shard directory or one shard, or their statistics.
struct InspectCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "inspect",
        abstract: "Show the instances in shards (verified), as text, JSON lines, or statistics.")

    @Argument(help: "A shard directory (with index.json) or one shard-NNNNN.bin.zst file.") var path: String
    @Option(help: "Show at most this many instances (default 10; 0 for all).") var limit = 10
    @Flag(help: "One JSON object per line.") var json = false
    @Flag(help: "Counts, length histogram, masking split and NSP balance over every instance.") var stats = false
    @Option(help: "vocab.txt for decoding (default: the one in the shard directory).") var vocab: String?
    @Option(help: "With --stats: also write the statistics to this file.") var output: String?

    func run() throws {
        var isDir: ObjCBool = false
        guard FileManager.default.fileExists(atPath: path, isDirectory: &isDir) else {
            throw UsageError("\(path): no such shard directory or file")
        }
        let dir = isDir.boolValue ? path : (path as NSString).deletingLastPathComponent
        let vocabPath = vocab ?? (dir as NSString).appendingPathComponent("vocab.txt")
        let vocabulary = try Vocabulary.load(path: vocabPath)
        var readers: [ShardReader] = []
        var generation: [String: Int]? = nil
        var parameters: ShardGenerationParameters? = nil
        if isDir.boolValue {
            let vocabData = try Data(contentsOf: URL(fileURLWithPath: vocabPath))
            let set = try ShardSet(directory: path, expectedVocabSHA256: SHA256.hex(SHA256.hash(Array(vocabData))))
            for s in set.index.shards { readers.append(try set.reader(for: s)) }
            generation = set.index.statistics
            parameters = set.index.parameters
        } else {
            let indexPath = (dir as NSString).appendingPathComponent("index.json")
            let index = try? ShardIndex.load(path: indexPath)
            let entry = index?.shards.first { $0.file == (path as NSString).lastPathComponent }
            if let index, entry != nil {
                parameters = index.parameters
                let vocabSHA = SHA256.hex(try SHA256.hash(file: vocabPath))
                if vocabSHA != index.vocabSHA256 {
                    throw ShardError.vocabularyMismatch(path: indexPath, expected: vocabSHA, found: index.vocabSHA256)
                }
            }
            let reader = try ShardReader(path: path, expected: entry)
            try reader.requireVocabulary(count: vocabulary.count, vocabularyPath: vocabPath)
            readers.append(reader)
        }
        let staticMasks = parameters.map { !$0.dynamicMasking } ?? false
        var statistics = InstanceStatistics(maskId: UInt32(vocabulary.maskId), maskedLMProb: parameters?.maskedLMProb ?? 0,
                                            maxPredictions: staticMasks ? parameters?.maxPredictionsPerSeq ?? 0 : 0)
        var shown = 0
        for reader in readers {
            while let inst = try reader.next() {
                if stats { statistics.add(inst); continue }
                if limit > 0 && shown >= limit { return }
                print(json ? jsonLine(inst, vocabulary) : text(inst, vocabulary))
                shown += 1
            }
        }
        if stats {
            if let g = generation, let passes = g["document_passes"], let short = g["short_targets"], passes > 0 {
                statistics.shortTargetShare = Double(short) / Double(passes)
            }
            let report = statistics.report(json: json)
            print(report)
            if let output { try writeFileAtomically(Data((report + "\n").utf8), to: output) }
        }
    }

    func segments(_ inst: TrainingInstance) -> [Int] {
        (0..<inst.tokens.count).map { $0 < inst.segmentALength ? 0 : 1 }
    }

    func text(_ inst: TrainingInstance, _ v: Vocabulary) -> String {
        """
        tokens: \(inst.tokens.map { v.tokens[Int($0)] }.joined(separator: " "))
        segment_ids: \(segments(inst).map(String.init).joined(separator: " "))
        is_random_next: \(inst.isRandomNext)
        masked_lm_positions: \(inst.maskedPositions.map(String.init).joined(separator: " "))
        masked_lm_labels: \(inst.maskedLabels.map { v.tokens[Int($0)] }.joined(separator: " "))

        """
    }

    func jsonLine(_ inst: TrainingInstance, _ v: Vocabulary) -> String {
        let obj: [String: Any] = [
            "tokens": inst.tokens.map { v.tokens[Int($0)] },
            "input_ids": inst.tokens.map { Int($0) },
            "segment_ids": segments(inst),
            "masked_lm_positions": inst.maskedPositions,
            "masked_lm_labels": inst.maskedLabels.map { Int($0) },
            "next_sentence_label": inst.isRandomNext ? 1 : 0,
        ]
        let data = (try? JSONSerialization.data(withJSONObject: obj, options: [.sortedKeys])) ?? Data()
        return String(decoding: data, as: UTF8.self)
    }
}

/// Statistics over instances, as `bert inspect --stats` prints them.
struct InstanceStatistics {
    let maskId: UInt32
    var instances = 0, randomNext = 0, tokens = 0, masked = 0, maskToken = 0, unchanged = 0, replaced = 0
    var histogram = [Int](repeating: 0, count: 9)  // lengths in 16-token bins up to 128, then more
    var maxLength = 0
    /// Document passes that drew a short target length (from index.json), when known.
    var shortTargetShare: Double?
    /// Instances whose masked count is not min(maxPredictions, max(1, round(length × prob))).
    var wrongMaskCounts = 0
    let maskedLMProb: Double, maxPredictions: Int

    init(maskId: UInt32, maskedLMProb: Double, maxPredictions: Int) {
        self.maskId = maskId
        self.maskedLMProb = maskedLMProb
        self.maxPredictions = maxPredictions
    }

    mutating func add(_ inst: TrainingInstance) {
        instances += 1
        if inst.isRandomNext { randomNext += 1 }
        tokens += inst.tokens.count
        maxLength = max(maxLength, inst.tokens.count)
        histogram[min(8, (inst.tokens.count - 1) / 16)] += 1
        masked += inst.maskedPositions.count
        if maxPredictions > 0 {
            let expected = min(maxPredictions, max(1, Int((Double(inst.tokens.count) * maskedLMProb).rounded(.toNearestOrEven))))
            if inst.maskedPositions.count != expected { wrongMaskCounts += 1 }
        }
        for (p, label) in zip(inst.maskedPositions, inst.maskedLabels) {
            let t = inst.tokens[p]
            if t == maskId { maskToken += 1 } else if t == label { unchanged += 1 } else { replaced += 1 }
        }
    }

    func report(json: Bool) -> String {
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
