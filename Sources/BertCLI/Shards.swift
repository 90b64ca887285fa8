import Support
import ArgumentParser
import Dispatch
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
        let started = Date()
        let threadCount = threads ?? ProcessInfo.processInfo.activeProcessorCount
        var isDirectory: ObjCBool = false
        if FileManager.default.fileExists(atPath: output, isDirectory: &isDirectory), !isDirectory.boolValue {
            throw ShardError.outputNotADirectory(path: output)
        }
        let paths = try expandInputs(input)
        let vocabData = try Data(contentsOf: URL(fileURLWithPath: vocab))
        let vocabulary = try Vocabulary.parse(vocabData, source: vocab)
        let vocabSHA = SHA256.hex(SHA256.hash(Array(vocabData)))
        let tokenizer = BertTokenizer(vocabulary: vocabulary, options: casing.normalizerOptions)

        // 1. Tokenize into the store (or reuse it).
        let storeDir = cache ?? (output as NSString).appendingPathComponent(".tokenized")
        let key = TokenizedStore.key(inputs: paths, vocabSHA256: vocabSHA,
                                     options: .init(lowercase: !casing.cased, nfkc: casing.nfkc), split: sentenceSplit)
        let (store, reused, damaged) = try TokenizedStore.openOrBuild(directory: storeDir, inputs: paths, key: key,
                                                             tokenizer: tokenizer, threads: threadCount)
        let tokenized = Date()
        if let damaged { log("bert shards: the tokenized store in \(storeDir) was damaged (\(damaged)); tokenized the inputs again") }
        log(String(format: "bert shards: %@ %d documents, %d sentences, %d tokens (%.1f MB of text) in %.2fs",
                   reused ? "reused tokenized store:" : "tokenized", store.documentCount, store.sentenceCount,
                   store.tokens.count, Double(store.rawBytes) / 1e6, tokenized.timeIntervalSince(started)))

        // 2. Pairs and masks into shuffled shards.
        let keyEncoder = JSONEncoder()
        keyEncoder.outputFormatting = [.sortedKeys]  // key order is not fixed otherwise
        let keyHash = SHA256.hex(SHA256.hash(Array(try keyEncoder.encode(key))))
        let parameters = ShardGenerationParameters(
            maxSeqLength: maxSeqLength, maskedLMProb: maskedLmProb, maxPredictionsPerSeq: maxPredictions,
            dupeFactor: dupeFactor, shortSeqProb: shortSeqProb, seed: seed, wholeWordMask: wholeWordMask,
            dynamicMasking: dynamicMasking, lowercase: !casing.cased,
            extra: ["inputs_sha256": keyHash, "sentence_split": sentenceSplit.rawValue, "nfkc": String(casing.nfkc)])
        let indexPath = (output as NSString).appendingPathComponent("index.json")
        if FileManager.default.fileExists(atPath: indexPath), !overwrite,
           let existing = try? ShardIndex.load(path: indexPath),
           existing.parameters == parameters, existing.vocabSHA256 == vocabSHA,
           (try? ShardSet(directory: output, expectedVocabSHA256: vocabSHA)) != nil {
            log("bert shards: \(output) is up to date (\(existing.totalInstances) instances); --overwrite to rebuild")
            return
        }
        let masker = dynamicMasking ? nil : Masker(
            maskId: UInt32(vocabulary.maskId), clsId: UInt32(vocabulary.clsId), sepId: UInt32(vocabulary.sepId),
            isContinuation: vocabulary.tokens.map { $0.hasPrefix("##") }, maskedLMProb: maskedLmProb,
            maxPredictions: maxPredictions, wholeWord: wholeWordMask)
        let builder = InstanceBuilder(store: store, parameters: parameters, clsId: UInt32(vocabulary.clsId),
                                      sepId: UInt32(vocabulary.sepId), masker: masker)
        let expected = Int(Double(store.tokens.count) * Double(dupeFactor) / Double(max(1, maxSeqLength - 3)) * 1.3) + 16
        let writer = try ShardWriter(directory: output, vocabularySize: vocabulary.count, vocabSHA256: vocabSHA,
                                     parameters: parameters, expectedInstances: expected,
                                     targetShardBytes: Int(shardSizeMb * 1048576), overwrite: overwrite,
                                     compressionLevel: zstdLevel)
        try writeFileAtomically(vocabData, to: (output as NSString).appendingPathComponent("vocab.txt"))
        let totals = try generate(builder: builder, writer: writer, store: store, threads: threadCount)
        let generated = Date()
        let index = try writer.finish(threads: threadCount, statistics: [
            "instances": totals.instances, "random_next": totals.randomNext, "document_passes": totals.documentPasses,
            "short_targets": totals.shortTarget, "single_segment_chunks": totals.singleSegment,
            "documents": store.documentCount, "sentences": store.sentenceCount, "tokens": store.tokens.count, "raw_text_bytes": store.rawBytes,
        ])
        let done = Date()
        let compressed = index.shards.reduce(0) { $0 + $1.compressedBytes }
        log(String(format: "bert shards: %d instances (%.1f%% random next, %.1f%% short targets) in %d shards, %.1f MB compressed; pairs %.2fs, shards %.2fs, total %.2fs (%.1f MB/s of text)",
                   index.totalInstances, 100 * Double(totals.randomNext) / Double(max(1, totals.instances)),
                   100 * Double(totals.shortTarget) / Double(max(1, totals.documentPasses)), index.shards.count,
                   Double(compressed) / 1e6, generated.timeIntervalSince(tokenized), done.timeIntervalSince(generated),
                   done.timeIntervalSince(started), Double(store.rawBytes) / 1e6 / done.timeIntervalSince(started)))
        print(output)
    }

    /// Builds every (pass, document) on `threads` workers; documents are striped over workers, and the
    /// instance key (pass, document, index) makes the output independent of the split.
    func generate(builder: InstanceBuilder, writer: ShardWriter, store: TokenizedStore, threads: Int) throws -> InstanceBuilder.Counts {
        let workers = max(1, min(threads, store.documentCount))
        let results = UnsafeMutableBufferPointer<(counts: InstanceBuilder.Counts, error: Error?)>.allocate(capacity: workers)
        results.initialize(repeating: (InstanceBuilder.Counts(), nil))
        defer { results.deinitialize(); results.deallocate() }
        let shared = UncheckedSendable(results)
        let passes = builder.parameters.dupeFactor
        DispatchQueue.concurrentPerform(iterations: workers) { w in
            var counts = InstanceBuilder.Counts()
            do {
                let appender = try writer.makeAppender()
                for pass in 0..<passes {
                    var d = w
                    while d < store.documentCount {
                        var k: UInt64 = 0
                        try builder.instances(pass: pass, document: d, counts: &counts) { inst in
                            guard k < (1 << 24), d < (1 << 32) else {
                                throw UsageError("document \(d) makes more than 2^24 instances; split the input into documents (blank lines)")
                            }
                            try appender.add(inst, key: UInt64(pass) << 56 | UInt64(d) << 24 | k)
                            k += 1
                        }
                        d += workers
                    }
                }
            } catch {
                shared.value[w].error = error
            }
            shared.value[w].counts = counts
        }
        var total = InstanceBuilder.Counts()
        for r in results {
            if let e = r.error { throw e }
            total.instances += r.counts.instances
            total.randomNext += r.counts.randomNext
            total.shortTarget += r.counts.shortTarget
            total.documentPasses += r.counts.documentPasses
            total.singleSegment += r.counts.singleSegment
        }
        return total
    }
}


extension SentenceSplit: ExpressibleByArgument {}
