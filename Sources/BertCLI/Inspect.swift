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
        let inspector = try ShardInspector(path: path, vocabularyPath: vocab ?? (dir as NSString).appendingPathComponent("vocab.txt"))
        let vocabulary = inspector.vocabulary
        if stats {
            let report = try inspector.statistics().report(json: json)
            print(report)
            if let output { try writeFileAtomically(Data((report + "\n").utf8), to: output) }
            return
        }
        var shown = 0
        try inspector.forEach { inst in
            if limit > 0 && shown >= limit { return false }
            print(json ? jsonLine(inst, vocabulary) : text(inst, vocabulary))
            shown += 1
            return true
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
