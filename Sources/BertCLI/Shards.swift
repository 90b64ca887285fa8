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

    @Option(name: .long, parsing: .upToNextOption, help: "Input files, directories or globs (.txt, .jsonl, .zst).") var input: [String]
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
    @Option(help: "Worker threads (default: all cores).") var threads: Int?
    @OptionGroup var casing: CasingOptions
    @Option(help: "How text files give sentences: 'lines' (one per line) or 'icu' (free text). JSONL is always icu.")
    var sentenceSplit: SentenceSplit = .lines
    @Option(help: "Target decompressed size of a shard, in MiB.") var shardSizeMb: Double = 64
    @Option(help: "zstd level of the shards, 1…19: 1 is about twice as fast as 3, whose shards are about 12% smaller.")
    var zstdLevel = 1
    @Option(help: "Tokenized-store cache directory (default: OUTPUT/.tokenized).") var cache: String?
    @Flag(help: "Replace shards already in the output directory.") var overwrite = false

    func validate() throws {
        if maxSeqLength < 8 || maxSeqLength > 65535 { throw ValidationError("--max-seq-length must be in 8…65535") }
        if dupeFactor < 1 || dupeFactor > 255 { throw ValidationError("--dupe-factor must be in 1…255") }
        if !(maskedLmProb > 0 && maskedLmProb < 1) { throw ValidationError("--masked-lm-prob must be in (0, 1)") }
        if maxPredictions < 1 || maxPredictions > maxSeqLength { throw ValidationError("--max-predictions must be in 1…max-seq-length") }
        if !(shortSeqProb >= 0 && shortSeqProb <= 1) { throw ValidationError("--short-seq-prob must be in [0, 1]") }
        if let t = threads, t < 1 { throw ValidationError("--threads must be at least 1") }
        if !(shardSizeMb >= 0.01) { throw ValidationError("--shard-size-mb must be at least 0.01") }
        if !(1...19).contains(zstdLevel) { throw ValidationError("--zstd-level must be in 1…19") }
    }

    func run() throws {
        var request = ShardBuilder.Request(inputs: try expandInputs(input), vocabularyData: try Data(contentsOf: URL(fileURLWithPath: vocab)),
                                           vocabularyPath: vocab, output: output)
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
        request.threads = threads ?? ProcessInfo.processInfo.activeProcessorCount
        let outcome = try ShardBuilder.build(request) { event in
            switch event {
            case let .tokenized(store, reused, damaged, directory, seconds):
                if let damaged { log("bert shards: the tokenized store in \(directory) was damaged (\(damaged)); tokenized the inputs again") }
                log(String(format: "bert shards: %@ %d documents, %d sentences, %d tokens (%.1f MB of text) in %.2fs",
                           reused ? "reused tokenized store:" : "tokenized", store.documentCount, store.sentenceCount,
                           store.tokens.count, Double(store.rawBytes) / 1e6, seconds))
            }
        }
        switch outcome {
        case let .upToDate(existing):
            log("bert shards: \(output) is up to date (\(existing.totalInstances) instances); --overwrite to rebuild")
            return
        case let .built(index, summary):
            let totals = summary.counts
            let compressed = index.shards.reduce(0) { $0 + $1.compressedBytes }
            log(String(format: "bert shards: %d instances (%.1f%% random next, %.1f%% short targets) in %d shards, %.1f MB compressed; pairs %.2fs, shards %.2fs, total %.2fs (%.1f MB/s of text)",
                       index.totalInstances, 100 * Double(totals.randomNext) / Double(max(1, totals.instances)),
                       100 * Double(totals.shortTarget) / Double(max(1, totals.documentPasses)), index.shards.count,
                       Double(compressed) / 1e6, summary.pairSeconds, summary.shardSeconds,
                       summary.totalSeconds, Double(summary.rawBytes) / 1e6 / summary.totalSeconds))
            print(output)
        }
    }
}

extension SentenceSplit: ExpressibleByArgument {}
