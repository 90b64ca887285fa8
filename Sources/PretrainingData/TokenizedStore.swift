import Support
import Dispatch
import Foundation
import TextNormalization
import WordPiece

/// Errors of the tokenized store.
public enum StoreError: Error, CustomStringConvertible {
    case corrupt(path: String, reason: String)
    case empty(inputs: [String])

    public var description: String {
        switch self {
        case let .corrupt(path, reason): return "\(path): tokenized store is damaged (\(reason)); delete the directory and run again"
        case let .empty(inputs): return "\(inputs.joined(separator: " ")): no sentences with tokens found; give non-empty text inputs"
        }
    }
}

/// The tokenized corpus: token ids of every sentence, and sentence and document boundaries, in three
/// memory-mapped files. A cache between tokenization and instance building: reused when the inputs,
/// vocabulary, casing and sentence splitting are unchanged (`meta.json` records them).
///
/// Files: `tokens.u32` (UInt32 ids, all sentences back to back), `sentences.u64` (end offset of each
/// sentence in tokens), `documents.u64` (end offset of each document in sentences), `meta.json`
/// (written last, with each file's sha256). Empty sentences and empty documents are not stored.
///
/// A cache is never trusted blindly: opening it checks every file's size and sha256 and that the
/// offsets rise strictly to the counts, so a damaged store is rebuilt instead of producing wrong
/// shards (or a crash).
public final class TokenizedStore: @unchecked Sendable {
    /// What the store was built from; equal keys mean the store can be reused.
    public struct Key: Codable, Equatable, Sendable {
        public struct Input: Codable, Equatable, Sendable { public var path: String; public var size: Int; public var modified: Double }
        public var version = 1
        public var inputs: [Input]
        public var vocabSHA256: String
        public var lowercase: Bool
        public var nfkc: Bool
        public var split: SentenceSplit
        /// The text, text_b and split columns read from classification files (absent when no input is one).
        public var classificationColumns: [String]? = nil
    }
    struct Meta: Codable {
        var key: Key; var tokens: Int; var sentences: Int; var documents: Int; var rawBytes: Int
        /// sha256 (hex) of each data file, by file name.
        var sha256: [String: String]
    }
    static let dataFiles = ["tokens.u32", "sentences.u64", "documents.u64"]

    /// What `open` found in a directory.
    public enum Opened {
        /// A complete store built from the same key, checked.
        case store(TokenizedStore)
        /// No store, or one built from other inputs or settings.
        case absent
        /// A store for the same key whose files are damaged (the reason says which and how).
        case damaged(reason: String)
    }

    public let directory: String
    let tokenFile: MappedFile, sentenceFile: MappedFile, documentFile: MappedFile
    /// All token ids. // (tokenCount,)
    public let tokens: UnsafeBufferPointer<UInt32>
    /// End offset of each sentence into `tokens`. // (sentenceCount,)
    public let sentenceEnds: UnsafeBufferPointer<UInt64>
    /// End offset of each document into the sentences. // (documentCount,)
    public let documentEnds: UnsafeBufferPointer<UInt64>
    /// Bytes of raw text the store was built from.
    public let rawBytes: Int

    private init(directory: String, meta: Meta, files: [MappedFile]) {
        self.directory = directory
        tokenFile = files[0]; sentenceFile = files[1]; documentFile = files[2]
        tokens = tokenFile.buffer(of: UInt32.self)
        sentenceEnds = sentenceFile.buffer(of: UInt64.self)
        documentEnds = documentFile.buffer(of: UInt64.self)
        rawBytes = meta.rawBytes
    }

    /// Opens the store in `directory` if it was built for `key`, after checking its files.
    public static func open(directory: String, key: Key) -> Opened {
        // meta.json is written last: without it (or with another key, or an older layout of it) there
        // is no store for this key.
        guard let data = FileManager.default.contents(atPath: directory + "/meta.json"),
              let meta = try? JSONDecoder().decode(Meta.self, from: data), meta.key == key else { return .absent }
        var files: [MappedFile] = []
        for (name, (elements, width)) in zip(dataFiles, [(meta.tokens, 4), (meta.sentences, 8), (meta.documents, 8)]) {
            guard let f = try? MappedFile(path: directory + "/" + name) else { return .damaged(reason: "\(name) is missing or unreadable") }
            guard f.count == elements * width else {
                return .damaged(reason: "\(name) has \(f.count) bytes, meta.json says \(elements * width)")
            }
            var h = SHA256()
            h.update(UnsafeRawBufferPointer(f.buffer(of: UInt8.self)))
            guard SHA256.hex(h.finalize()) == meta.sha256[name] else { return .damaged(reason: "\(name) does not match its sha256 in meta.json") }
            files.append(f)
        }
        let store = TokenizedStore(directory: directory, meta: meta, files: files)
        if let reason = store.offsetProblem() { return .damaged(reason: reason) }
        return .store(store)
    }

    /// Why the offsets cannot be right, or nil: sentence ends rise strictly to the token count and
    /// document ends to the sentence count (no empty sentence or document is stored).
    func offsetProblem() -> String? {
        func check(_ ends: UnsafeBufferPointer<UInt64>, total: Int, _ name: String) -> String? {
            var previous: UInt64 = 0
            for (i, e) in ends.enumerated() {
                guard e > previous else { return "\(name): offset \(i) (\(e)) does not rise" }
                previous = e
            }
            return Int(previous) == total ? nil : "\(name): the last offset is \(previous), not \(total)"
        }
        return check(sentenceEnds, total: tokens.count, "sentences.u64") ?? check(documentEnds, total: sentenceEnds.count, "documents.u64")
    }

    public var documentCount: Int { documentEnds.count }
    public var sentenceCount: Int { sentenceEnds.count }

    /// Sentence indices of a document.
    @inline(__always) public func sentences(ofDocument d: Int) -> Range<Int> {
        (d == 0 ? 0 : Int(documentEnds[d - 1]))..<Int(documentEnds[d])
    }

    /// Token ids of a sentence.
    @inline(__always) public func tokens(ofSentence s: Int) -> UnsafeBufferPointer<UInt32> {
        let start = s == 0 ? 0 : Int(sentenceEnds[s - 1])
        return UnsafeBufferPointer(rebasing: tokens[start..<Int(sentenceEnds[s])])
    }

    /// The key for inputs as they are on disk now.
    public static func key(inputs: [String], vocabSHA256: String, options: BertNormalizerOptionsView, split: SentenceSplit,
                           classificationColumns: [String]? = nil) -> Key {
        let fm = FileManager.default
        let ins = inputs.map { p -> Key.Input in
            let a = try? fm.attributesOfItem(atPath: p)
            let size = (a?[.size] as? NSNumber)?.intValue ?? -1
            let date = (a?[.modificationDate] as? Date)?.timeIntervalSince1970 ?? 0
            return .init(path: URL(fileURLWithPath: p).standardizedFileURL.path, size: size, modified: date)
        }
        return Key(inputs: ins, vocabSHA256: vocabSHA256, lowercase: options.lowercase, nfkc: options.nfkc, split: split,
                   classificationColumns: classificationColumns)
    }

    /// Opens the store in `directory` if it matches and is sound, else tokenizes the inputs into it (in
    /// parallel over chunks, written in input order) and opens the result. `damaged` says why a store
    /// for the same key was rebuilt (nil when it was reused, absent or built for other inputs).
    public static func openOrBuild(directory: String, inputs: [String], key: Key, tokenizer: BertTokenizer, threads: Int,
                                   opener: CorpusOpener? = nil,
                                   progress: ((Int) -> Void)? = nil) throws -> (store: TokenizedStore, reused: Bool, damaged: String?) {
        var damaged: String? = nil
        switch open(directory: directory, key: key) {
        case let .store(s): return (s, true, nil)
        case .absent: break
        case let .damaged(reason): damaged = reason
        }
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        try? FileManager.default.removeItem(atPath: directory + "/meta.json")
        let writer = try StoreWriter(directory: directory)
        let chunks = CorpusTextChunks(paths: inputs, opener: opener)
        let slots = max(1, threads)
        let scratches = (0..<slots).map { _ in BertTokenizer.Scratch() }
        let splitters = (0..<slots).map { _ in SentenceSplitter() }
        // Each worker takes the next chunk (reading under the lock), tokenizes it, and appends every
        // finished result that is next in input order. A worker holds one chunk at a time, so at most
        // `slots - 1` results wait for an earlier one: memory stays bounded, and no core waits for
        // a whole batch to finish.
        final class Pipeline: @unchecked Sendable {
            let lock = NSLock()
            var nextRead = 0, nextWrite = 0, rawBytes = 0
            var waiting: [Int: ChunkTokens] = [:]
            var failure: Error?
            var progress: ((Int) -> Void)?
        }
        let pipe = Pipeline()
        let shared = UncheckedSendable((chunks, writer, scratches, splitters))
        pipe.progress = progress
        let work: @Sendable (Int) -> Void = { w in
            let (chunks, writer, scratches, splitters) = shared.value
            while true {
                pipe.lock.lock()
                let chunk: TextChunk?
                do { chunk = pipe.failure == nil ? try chunks.next() : nil } catch {
                    pipe.failure = error
                    chunk = nil
                }
                let sequence = pipe.nextRead
                pipe.nextRead += 1
                pipe.lock.unlock()
                guard let chunk else { return }
                let result = tokenizeChunk(chunk, tokenizer: tokenizer, split: chunk.fromJSONL ? .icu : key.split,
                                           scratch: scratches[w], splitter: splitters[w])
                pipe.lock.lock()
                defer { pipe.lock.unlock() }
                pipe.waiting[sequence] = result
                pipe.rawBytes += chunk.bytes.count
                while pipe.failure == nil, let next = pipe.waiting.removeValue(forKey: pipe.nextWrite) {
                    do { try writer.append(next) } catch { pipe.failure = error }
                    pipe.nextWrite += 1
                }
                pipe.progress?(pipe.rawBytes)
            }
        }
        if slots == 1 { work(0) } else { DispatchQueue.concurrentPerform(iterations: slots, execute: work) }
        if let failure = pipe.failure { throw failure }
        let rawBytes = pipe.rawBytes
        let counts = try writer.finish()
        let meta = Meta(key: key, tokens: counts.tokens, sentences: counts.sentences, documents: counts.documents, rawBytes: rawBytes,
                        sha256: counts.sha256)
        let enc = JSONEncoder()
        enc.outputFormatting = [.prettyPrinted, .sortedKeys]
        try writeFileAtomically(try enc.encode(meta), to: directory + "/meta.json")
        let store: TokenizedStore
        switch open(directory: directory, key: key) {
        case let .store(s): store = s
        case let .damaged(reason): throw StoreError.corrupt(path: directory, reason: "what was just written does not read back: \(reason)")
        case .absent: throw StoreError.corrupt(path: directory, reason: "meta.json just written is missing")
        }
        if store.documentCount == 0 { throw StoreError.empty(inputs: inputs) }
        return (store, false, damaged)
    }
}

/// The casing fields of normalizer options that the store key records.
public struct BertNormalizerOptionsView: Sendable {
    public var lowercase: Bool
    public var nfkc: Bool
    public init(lowercase: Bool, nfkc: Bool) { self.lowercase = lowercase; self.nfkc = nfkc }
}
