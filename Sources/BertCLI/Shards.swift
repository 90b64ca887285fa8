import Support
import ArgumentParser
import Foundation
import PretrainingData
import WordPiece

/// `bert shards`: raw corpora → tokenized store → NSP pairs + masking → shuffled zstd shards.
struct ShardsCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "shards",
        abstract: "Build masked-LM + next-sentence training shards from raw text (google-research/bert's algorithm).")

    @Option(name: .long, parsing: .upToNextOption, help: "Input files, directories or globs: text (.txt), JSONL (.jsonl), or a classification file's train split (.tsv, .csv); any .zst.") var input: [String]
    @Option(help: "The vocab.txt to tokenize with.") var vocab: String
    @Option(help: "Output directory (index.json and shard-NNNNN.bin.zst).") var output: String
    @Option(help: "Maximum sequence length, special tokens included.") var maxSeqLength = 128
    @Option(help: "Passes over the corpus, each with new pairs and masks.") var dupeFactor = 10
    @Option(help: "Fraction of tokens to mask.") var maskedLmProb = 0.15
    @Option(help: "Maximum masked positions per instance.") var maxPredictions = 20
    @Option(help: "Probability of a shorter target length for a document pass.") var shortSeqProb = 0.1
    @Flag(help: "Mask all pieces of a word together.") var wholeWordMask = false
    @Flag(help: "Store unmasked instances; mask at load time from (seed, epoch, instance).") var dynamicMasking = false
    @Option(help: "Random seed.") var seed: UInt64 = 12345
    @OptionGroup var threading: ThreadOptions
    @OptionGroup var casing: CasingOptions
    @OptionGroup var corpusColumns: CorpusColumnOptions
    @Option(help: "How text files give sentences: 'lines' (one per line) or 'icu' (free text). JSONL is always icu.")
    var sentenceSplit: SentenceSplit = .lines
    @Option(help: "Target decompressed size of a shard, in MiB.") var shardSizeMb: Double = 64
    @Option(help: "zstd level of the shards, 1…19: 1 is about twice as fast as 3, whose shards are about 12% smaller.")
    var zstdLevel = 1
    @Option(help: "Tokenized-store cache directory (default: OUTPUT/.tokenized).") var cache: String?
    @Flag(help: "Replace shards already in the output directory.") var overwrite = false
    @Option(help: ArgumentHelp("Build part K of N of the inputs (K = 1…N), for a corpus prepared on many machines; join the parts with bert merge-shards.",
                               discussion: "Under mpirun, each rank builds its part into OUTPUT/parts and rank 0 merges them into OUTPUT."))
    var part: String?

    func validate() throws {
        if maxSeqLength < 8 || maxSeqLength > 65535 { throw ValidationError("--max-seq-length must be in 8…65535") }
        if dupeFactor < 1 || dupeFactor > 255 { throw ValidationError("--dupe-factor must be in 1…255") }
        if !(maskedLmProb > 0 && maskedLmProb < 1) { throw ValidationError("--masked-lm-prob must be in (0, 1)") }
        if maxPredictions < 1 || maxPredictions > maxSeqLength { throw ValidationError("--max-predictions must be in 1…max-seq-length") }
        if !(shortSeqProb >= 0 && shortSeqProb <= 1) { throw ValidationError("--short-seq-prob must be in [0, 1]") }
        if !(shardSizeMb >= 0.01) { throw ValidationError("--shard-size-mb must be at least 0.01") }
        if !(1...19).contains(zstdLevel) { throw ValidationError("--zstd-level must be in 1…19") }
        if let part {
            do { _ = try ShardPart(parsing: part) } catch { throw ValidationError(error.description) }
        }
    }

    func run() throws {
        let group = Processes.group
        guard group.size > 1 && part == nil else {
            _ = try build(part: try part.map { try ShardPart(parsing: $0) }, output: output)
            return
        }
        // Under mpirun: rank r builds part r + 1 of N, then rank 0 merges the parts into OUTPUT.
        switch try ShardMerger.buildAcrossProcesses(group: group, output: output, build: { try build(part: $0, output: $1, printing: false) }) {
        case .builtPart: return
        case let .merged(index):
            log("bert shards: merged \(group.size) parts: \(index.totalInstances) instances in \(index.shards.count) shards")
        case .upToDate:
            log("bert shards: \(output) is up to date (\(group.size) parts)")
        }
        print(output)
    }

    /// Builds (one part of) the shards into `output`; true when shards were written, false when they were up to date.
    func build(part: ShardPart?, output: String, printing: Bool = true) throws -> Bool {
        var request = ShardBuilder.Request(inputs: try expandInputs(input), vocabularyData: try Data(contentsOf: URL(fileURLWithPath: vocab)),
                                           vocabularyPath: vocab, output: output)
        request.part = part
        request.classificationColumns = corpusColumns.columns
        request.cacheDirectory = cache
        request.maxSeqLength = maxSeqLength
        request.maskedLMProb = maskedLmProb
        request.maxPredictions = maxPredictions
        request.dupeFactor = dupeFactor
        request.shortSeqProb = shortSeqProb
        request.seed = seed
        request.wholeWordMask = wholeWordMask
        request.dynamicMasking = dynamicMasking
        request.normalizer = casing.normalizerOptions
        request.sentenceSplit = sentenceSplit
        request.targetShardBytes = Int(shardSizeMb * 1048576)
        request.zstdLevel = zstdLevel
        request.overwrite = overwrite
        request.threads = threading.count
        let prefix = part.map { "bert shards: part \($0): " } ?? "bert shards: "
        let outcome = try ShardBuilder.build(request) { event in
            switch event {
            case let .tokenized(store, reused, damaged, directory, seconds):
                if let damaged { log(prefix + "the tokenized store in \(directory) was damaged (\(damaged)); tokenized the inputs again") }
                log(prefix + String(format: "%@ %d documents, %d sentences, %d tokens (%.1f MB of text) in %.2fs",
                           reused ? "reused tokenized store:" : "tokenized", store.documentCount, store.sentenceCount,
                           store.tokens.count, Double(store.rawBytes) / 1e6, seconds))
            }
        }
        switch outcome {
        case let .upToDate(existing):
            log(prefix + "\(output) is up to date (\(existing.totalInstances) instances); --overwrite to rebuild")
            return false
        case let .built(index, summary):
            let totals = summary.counts
            let compressed = index.shards.reduce(0) { $0 + $1.compressedBytes }
            log(prefix + String(format: "%d instances (%.1f%% random next, %.1f%% short targets) in %d shards, %.1f MB compressed; pairs %.2fs, shards %.2fs, total %.2fs (%.1f MB/s of text)",
                       index.totalInstances, 100 * Double(totals.randomNext) / Double(max(1, totals.instances)),
                       100 * Double(totals.shortTarget) / Double(max(1, totals.documentPasses)), index.shards.count,
                       Double(compressed) / 1e6, summary.pairSeconds, summary.shardSeconds,
                       summary.totalSeconds, Double(summary.rawBytes) / 1e6 / summary.totalSeconds))
            if printing { print(output) }
            return true
        }
    }
}

extension SentenceSplit: ExpressibleByArgument {}

/// `bert merge-shards`: the parts built by `bert shards --part K/N` joined into one shard set.
struct MergeShardsCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "merge-shards",
        abstract: "Join the part directories of `bert shards --part K/N` (K = 1…N) into one shard set that pretrain reads.")

    @Argument(help: "The N part directories, in any order.") var parts: [String]
    @Option(help: "Output directory (shard files hard-linked from the parts, or copied across file systems).") var output: String
    @Flag(help: "Replace a shard set already in the output directory.") var overwrite = false

    func run() throws {
        let index = try ShardMerger.merge(parts: parts, output: output, overwrite: overwrite)
        log("bert merge-shards: \(parts.count) parts: \(index.totalInstances) instances in \(index.shards.count) shards")
        print(output)
    }
}
