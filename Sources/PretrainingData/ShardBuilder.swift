import Dispatch
import Foundation
import ClassificationData
import Support
import TextNormalization
import WordPiece

/// Builds a shard set from raw text: inputs → tokenized store (reused when its key matches) → NSP
/// pairs and masks on worker threads → shuffled zstd shards, `index.json` and a copy of `vocab.txt`.
/// The library behind `bert shards`; the output does not depend on the thread count.
public struct ShardBuilder {
    /// What to build.
    public struct Request: Sendable {
        /// Input files, already expanded (see `expandInputs`).
        public var inputs: [String]
        /// The vocabulary file's bytes and its path (for messages).
        public var vocabularyData: Data
        public var vocabularyPath: String
        /// The output directory.
        public var output: String
        /// The tokenized-store directory (default: OUTPUT/.tokenized).
        public var cacheDirectory: String?
        /// Pair and mask settings; `extra` is filled in by the builder (inputs hash, split, NFKC).
        public var maxSeqLength = 128
        public var maskedLMProb = 0.15
        public var maxPredictions = 20
        public var dupeFactor = 10
        public var shortSeqProb = 0.1
        public var seed: UInt64 = 12345
        public var wholeWordMask = false
        public var dynamicMasking = false
        public var normalizer = BertNormalizerOptions(lowercase: true)
        public var sentenceSplit: SentenceSplit = .lines
        /// Target decompressed bytes per shard.
        public var targetShardBytes = 64 << 20
        public var zstdLevel = 1
        /// Replace shards already in the output directory.
        public var overwrite = false
        public var threads = 1
        /// Build only this part of the inputs (`ShardPart`), for a corpus prepared on many machines.
        public var part: ShardPart?
        /// The columns read from classification-file inputs (.tsv/.csv: the train split's text and
        /// text_b, see `ClassificationTextChunks`).
        public var classificationColumns = ClassificationColumns(requireLabel: false)

        public init(inputs: [String], vocabularyData: Data, vocabularyPath: String, output: String) {
            self.inputs = inputs; self.vocabularyData = vocabularyData; self.vocabularyPath = vocabularyPath; self.output = output
        }
    }

    /// What happened, in order, for the caller to report.
    public enum Event {
        /// The tokenized store is ready: reused or built (after a damaged one, if `damaged` is set).
        case tokenized(store: TokenizedStore, reused: Bool, damaged: String?, directory: String, seconds: Double)
    }

    /// The result of `build`.
    public enum Outcome {
        /// The output already holds shards with these parameters and vocabulary; nothing was written.
        case upToDate(ShardIndex)
        /// New shards were written.
        case built(ShardIndex, Summary)
    }

    /// Counts and timings of a build.
    public struct Summary: Sendable {
        public var counts: InstanceBuilder.Counts
        public var rawBytes: Int
        /// Seconds spent making pairs, writing shards, and in all.
        public var pairSeconds: Double, shardSeconds: Double, totalSeconds: Double
    }

    /// Headroom of the writer's bucket sizing over tokens × dupe / (max length − 3): shorter targets and
    /// segment ends make more instances than full-length packing would.
    static let instanceEstimateHeadroom = 1.3

    /// Builds (or finds up to date) the shards `request` describes.
    public static func build(_ request: Request, onEvent: (Event) -> Void = { _ in }) throws -> Outcome {
        let started = Date()
        var isDirectory: ObjCBool = false
        if FileManager.default.fileExists(atPath: request.output, isDirectory: &isDirectory), !isDirectory.boolValue {
            throw ShardError.outputNotADirectory(path: request.output)
        }
        var request = request
        var seed = request.seed
        if let part = request.part {
            request.inputs = try part.inputs(of: request.inputs)
            seed = part.seed(base: request.seed)
        }
        let vocabulary = try Vocabulary.parse(request.vocabularyData, source: request.vocabularyPath)
        let vocabSHA = SHA256.hex(SHA256.hash(Array(request.vocabularyData)))
        let tokenizer = BertTokenizer(vocabulary: vocabulary, options: request.normalizer)

        // 1. Tokenize into the store (or reuse it).
        let storeDir = request.cacheDirectory ?? (request.output as NSString).appendingPathComponent(".tokenized")
        let classificationFiles = request.inputs.filter(ClassificationTextChunks.isClassificationFile)
        let c = request.classificationColumns
        let key = TokenizedStore.key(inputs: request.inputs, vocabSHA256: vocabSHA,
                                     options: .init(lowercase: request.normalizer.lowercase, nfkc: request.normalizer.nfkc),
                                     split: request.sentenceSplit,
                                     classificationColumns: classificationFiles.isEmpty ? nil : [c.text, c.textB, c.split])
        let (store, reused, damaged) = try TokenizedStore.openOrBuild(directory: storeDir, inputs: request.inputs, key: key,
                                                                      tokenizer: tokenizer, threads: request.threads,
                                                                      opener: ClassificationTextChunks.opener(columns: c))
        let tokenized = Date()
        onEvent(.tokenized(store: store, reused: reused, damaged: damaged, directory: storeDir,
                           seconds: tokenized.timeIntervalSince(started)))

        // 2. Pairs and masks into shuffled shards.
        let keyEncoder = JSONEncoder()
        keyEncoder.outputFormatting = [.sortedKeys]  // key order is not fixed otherwise
        let keyHash = SHA256.hex(SHA256.hash(Array(try keyEncoder.encode(key))))
        let parameters = ShardGenerationParameters(
            maxSeqLength: request.maxSeqLength, maskedLMProb: request.maskedLMProb, maxPredictionsPerSeq: request.maxPredictions,
            dupeFactor: request.dupeFactor, shortSeqProb: request.shortSeqProb, seed: seed,
            wholeWordMask: request.wholeWordMask, dynamicMasking: request.dynamicMasking, lowercase: request.normalizer.lowercase,
            extra: ["inputs_sha256": keyHash, "sentence_split": request.sentenceSplit.rawValue, "nfkc": String(request.normalizer.nfkc)]
                .merging(request.part.map { ["part": $0.description, "base_seed": String(request.seed)] } ?? [:]) { $1 }
                .merging(classificationFiles.isEmpty ? [:] : [
                    "classification_files": classificationFiles.joined(separator: ", "),
                    "classification_split": ClassificationTextChunks.split,
                    "classification_columns": [c.text, c.textB].joined(separator: ", ")]) { $1 })
        let indexPath = (request.output as NSString).appendingPathComponent("index.json")
        if FileManager.default.fileExists(atPath: indexPath), !request.overwrite,
           let existing = try? ShardIndex.load(path: indexPath),
           existing.parameters == parameters, existing.vocabSHA256 == vocabSHA,
           (try? ShardSet(directory: request.output, expectedVocabSHA256: vocabSHA)) != nil {
            return .upToDate(existing)
        }
        let masker = request.dynamicMasking ? nil : Masker(vocabulary: vocabulary, parameters: parameters)
        let builder = InstanceBuilder(store: store, parameters: parameters, clsId: UInt32(vocabulary.clsId),
                                      sepId: UInt32(vocabulary.sepId), masker: masker)
        let expected = Int(Double(store.tokens.count) * Double(request.dupeFactor) / Double(max(1, request.maxSeqLength - 3))
                           * instanceEstimateHeadroom) + 16
        let writer = try ShardWriter(directory: request.output, vocabularySize: vocabulary.count, vocabSHA256: vocabSHA,
                                     parameters: parameters, expectedInstances: expected,
                                     targetShardBytes: request.targetShardBytes, overwrite: request.overwrite,
                                     compressionLevel: request.zstdLevel)
        try writeFileAtomically(request.vocabularyData, to: (request.output as NSString).appendingPathComponent("vocab.txt"))
        let totals = try generate(builder: builder, writer: writer, store: store, threads: request.threads)
        let generated = Date()
        let index = try writer.finish(threads: request.threads, statistics: [
            "instances": totals.instances, "random_next": totals.randomNext, "document_passes": totals.documentPasses,
            "short_targets": totals.shortTarget, "single_segment_chunks": totals.singleSegment,
            "documents": store.documentCount, "sentences": store.sentenceCount, "tokens": store.tokens.count, "raw_text_bytes": store.rawBytes,
        ])
        let done = Date()
        return .built(index, Summary(counts: totals, rawBytes: store.rawBytes,
                                     pairSeconds: generated.timeIntervalSince(tokenized),
                                     shardSeconds: done.timeIntervalSince(generated), totalSeconds: done.timeIntervalSince(started)))
    }

    /// The bits of an instance key: pass (8) | document (32) | instance within the document pass (24). The
    /// key, not the worker, fixes an instance's place in the shuffle.
    static func instanceKey(pass: Int, document: Int, instance: UInt64) -> UInt64 {
        UInt64(pass) << 56 | UInt64(document) << 24 | instance
    }

    /// Builds every (pass, document) on `threads` workers; documents are striped over workers, and the
    /// instance key (pass, document, index) makes the output independent of the split.
    static func generate(builder: InstanceBuilder, writer: ShardWriter, store: TokenizedStore, threads: Int) throws -> InstanceBuilder.Counts {
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
                            guard k < (1 << 24), d < (1 << 32) else { throw ShardError.documentTooLarge(document: d) }
                            try appender.add(inst, key: instanceKey(pass: pass, document: d, instance: k))
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

extension Masker {
    /// The masker that a shard set's parameters describe, over `vocabulary` ([MASK]/[CLS]/[SEP] ids and
    /// `##` continuation pieces for whole-word masking).
    public init(vocabulary: Vocabulary, parameters: ShardGenerationParameters) {
        self.init(maskId: UInt32(vocabulary.maskId), clsId: UInt32(vocabulary.clsId), sepId: UInt32(vocabulary.sepId),
                  isContinuation: vocabulary.tokens.map { $0.hasPrefix("##") }, maskedLMProb: parameters.maskedLMProb,
                  maxPredictions: parameters.maxPredictionsPerSeq, wholeWord: parameters.wholeWordMask)
    }

    /// The masker a loader applies to shards built with `--dynamic-masking`; nil for static shards,
    /// whose masks are stored.
    public static func forLoading(vocabulary: Vocabulary, parameters: ShardGenerationParameters) -> Masker? {
        parameters.dynamicMasking ? Masker(vocabulary: vocabulary, parameters: parameters) : nil
    }
}
