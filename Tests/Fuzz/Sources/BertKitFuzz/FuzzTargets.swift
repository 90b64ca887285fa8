import BertModel
import Checkpoints
import ClassificationData
import Foundation
import Pipeline
import PretrainingData
import Support
import Training
import WordPiece

/// BertKit's fuzz targets, one libFuzzer binary for all: `BERTKIT_FUZZ_TARGET=NAME bertkit-fuzz [libFuzzer
/// options] [CORPUS...]`. Each target parses the input as a user's file would be parsed and then checks
/// invariants of what came back: an error is a fine outcome, a crash, a sanitizer report or a broken
/// invariant (`fail`, which traps) is a finding. Inputs that a parser reads from a path are written to a
/// file under /dev/shm (or the temporary folder) first.
enum FuzzTargets {
    static let all: [String: @Sendable (Data) -> Void] = [
        "safetensors": safetensors,
        "config": config,
        "vocab": vocab,
        "tokenizer-config": tokenizerConfig,
        "shard-record": shardRecord,
        "shard-stream": shardStream,
        "index": index,
        "training-state": trainingState,
        "classification-tsv": { classification($0, format: .tsv) },
        "classification-csv": { classification($0, format: .csv) },
        "classification-jsonl": { classification($0, format: .jsonl) },
        "pipeline": pipeline,
        "text": text,
    ]

    /// A broken invariant: trap, so that libFuzzer keeps the input as a crash.
    static func fail(_ message: String) -> Never {
        FileHandle.standardError.write(Data("invariant broken: \(message)\n".utf8))
        fatalError(message)
    }

    /// A per-process scratch folder for inputs that are read from a path.
    static let scratch: String = {
        let base = FileManager.default.fileExists(atPath: "/dev/shm") ? "/dev/shm" : NSTemporaryDirectory()
        let dir = (base as NSString).appendingPathComponent("bertkit-fuzz-\(getpid())")
        try? FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        return dir
    }()

    static func file(_ name: String, _ data: Data) -> String {
        let path = (scratch as NSString).appendingPathComponent(name)
        guard FileManager.default.createFile(atPath: path, contents: data) else { fail("cannot write the input to \(path)") }
        return path
    }

    // MARK: - Model files

    /// A parsed safetensors file's tensors lie inside its data buffer, do not overlap, and hold exactly
    /// their shape's bytes; every accessor returns that many elements.
    static func safetensors(_ data: Data) {
        guard let f = try? SafetensorsFile(data: data) else { return }
        let dataLength = data.count - 8 - f.headerLength
        guard dataLength >= 0 else { fail("header of \(f.headerLength) bytes in a file of \(data.count)") }
        var previousEnd = 0
        for t in f.tensorsInFileOrder {
            let r = t.dataOffsets
            guard r.lowerBound >= previousEnd, r.upperBound <= dataLength else {
                fail("tensor \(t.name) at \(r) overlaps the one before (ends \(previousEnd)) or leaves the \(dataLength) data bytes")
            }
            guard t.shape.allSatisfy({ $0 >= 0 }), r.count == t.elementCount * t.dtype.size else {
                fail("tensor \(t.name) \(t.dtype) \(t.shape) has \(r.count) bytes")
            }
            previousEnd = r.upperBound
            guard let raw = try? f.rawBytes(t.name), raw.count == r.count else { fail("rawBytes(\(t.name)) is not its \(r.count) bytes") }
            if t.dtype == .f32 || t.dtype == .f16 || t.dtype == .bf16 {
                guard let floats = try? f.floats(t.name), floats.count == t.elementCount else { fail("floats(\(t.name)) count") }
            }
        }
        if f.tensors.count != f.tensorsInFileOrder.count { fail("\(f.tensors.count) tensors, \(f.tensorsInFileOrder.count) in file order") }
    }

    /// A config that validates has a head size that divides, and a parameter layout whose tensors tile
    /// its buffer without gaps or overlaps.
    static func config(_ data: Data) {
        guard let c = try? JSONDecoder().decode(BertConfig.self, from: data), (try? c.validate()) != nil else { return }
        guard c.numAttentionHeads > 0, c.hiddenSize % c.numAttentionHeads == 0, c.vocabSize > 0, c.numHiddenLayers > 0 else {
            fail("validated config with hidden \(c.hiddenSize), heads \(c.numAttentionHeads), vocab \(c.vocabSize), layers \(c.numHiddenLayers)")
        }
        let layout = ParameterLayout.bertForPreTraining(c)
        var next = 0
        for e in layout.entries {
            guard e.offset == next, e.count == e.shape.reduce(1, *), e.count > 0 else { fail("layout entry \(e.name) at \(e.offset), expected \(next)") }
            next += e.count
        }
        if next != layout.count { fail("layout count \(layout.count), entries sum to \(next)") }
    }

    /// A vocabulary that parses maps every token to its line and has the special tokens inside it; its
    /// WordPiece tokenizer gives ids below its size, the same as the naive longest-match reference.
    static func vocab(_ data: Data) {
        guard let v = try? Vocabulary.parse(data, source: "fuzz") else { return }
        for (i, t) in v.tokens.enumerated() {
            guard let id = v.ids[t], v.tokens[Int(id)] == t, Int(id) <= i else { fail("token \(i) \(t.debugDescription) maps to \(String(describing: v.ids[t]))") }
        }
        for id in [v.padId, v.unkId, v.clsId, v.sepId, v.maskId] where !(0..<Int32(v.count)).contains(id) { fail("special id \(id) of \(v.count)") }
        let wordPiece = WordPieceTokenizer(vocabulary: v)
        // Words made of the vocabulary's own pieces, and a few fixed ones.
        let pieces = v.tokens.prefix(64).map { $0.hasPrefix("##") ? String($0.dropFirst(2)) : $0 }
        let words = ["unaffable", "wörld", "你好", String(repeating: "a", count: 101)] + zip(pieces, pieces.dropFirst()).map { $0 + $1 } + pieces
        for w in words where !w.isEmpty && !w.contains(where: \.isWhitespace) {
            let ids = wordPiece.tokenize(w)
            if let bad = ids.first(where: { !(0..<Int32(v.count)).contains($0) }) { fail("id \(bad) of \(v.count) for \(w.debugDescription)") }
            if ids != wordPiece.tokenizeNaive(w) { fail("\(w.debugDescription): \(ids) but the naive reference gives \(wordPiece.tokenizeNaive(w))") }
        }
    }

    /// tokenizer_config.json: what parses, written back, parses to the same settings.
    static func tokenizerConfig(_ data: Data) {
        guard let c = try? TokenizerConfig.parse(data, path: "fuzz") else { return }
        guard let again = try? TokenizerConfig.parse(c.encoded(), path: "fuzz-again"), again == c else { fail("round trip of \(c)") }
    }

    // MARK: - Shards

    /// The instance invariants every decoded record must keep.
    static func check(_ x: TrainingInstance, _ layout: ShardLayout) {
        let n = x.tokens.count
        guard (2...layout.maxSeqLength).contains(n), (1..<n).contains(x.segmentALength) || x.segmentALength == n else {
            fail("length \(n) (max \(layout.maxSeqLength)), segment A \(x.segmentALength)")
        }
        guard x.maskedPositions.count == x.maskedLabels.count, x.maskedPositions.count <= layout.maxPredictions else {
            fail("\(x.maskedPositions.count) positions, \(x.maskedLabels.count) labels, max \(layout.maxPredictions)")
        }
        guard zip(x.maskedPositions, x.maskedPositions.dropFirst()).allSatisfy({ $0 < $1 }), x.maskedPositions.allSatisfy({ (0..<n).contains($0) }) else {
            fail("masked positions \(x.maskedPositions) in a record of \(n)")
        }
        let v = UInt32(layout.vocabularySize)
        guard x.tokens.allSatisfy({ $0 < v }), x.maskedLabels.allSatisfy({ $0 < v }) else { fail("an id of \(x.tokens) / \(x.maskedLabels) is not below \(v)") }
    }

    /// One record under a layout drawn from the first bytes: decodes to a consistent instance that
    /// encodes back to a record that decodes to the same instance, or is refused.
    static func shardRecord(_ data: Data) {
        guard data.count >= 4 else { return }
        let b = [UInt8](data.prefix(4))
        let vocabularySize = [5, 100, 30522, 70000][Int(b[0] & 3)]
        let maxSeq = 8 + Int(b[1] % 120)
        guard let layout = try? ShardLayout(vocabularySize: vocabularySize, maxSeqLength: maxSeq, maxPredictionsPerSeq: 1 + Int(b[2]) % maxSeq,
                                            staticMasking: b[3] & 1 == 1) else { return }
        var record = [UInt8](data.dropFirst(4).prefix(layout.recordSize))
        record += [UInt8](repeating: 0, count: layout.recordSize - record.count)
        guard let x = record.withUnsafeBytes({ try? layout.decode($0, path: "fuzz", offset: 0) }) else { return }
        check(x, layout)
        guard let encoded = try? layout.encode(x) else { fail("a decoded instance does not encode: \(x)") }
        guard let y = encoded.withUnsafeBytes({ try? layout.decode($0, path: "fuzz-again", offset: 0) }), y == x else {
            fail("decode(encode(x)) != x for \(x)")
        }
    }

    /// A whole shard file (zstd stream, header, records): every instance the reader hands out is
    /// consistent with the header's layout, or the reader throws.
    static func shardStream(_ data: Data) {
        let path = file("shard-00000.bin.zst", data)
        guard let reader = try? ShardReader(path: path, verifyChecksum: false) else { return }
        let layout = reader.header.layout
        for _ in 0..<100_000 {
            guard let x = try? reader.next() else { return }  // the end, or an error
            check(x, layout)
        }
    }

    /// index.json: what loads (and passes its checks) encodes and loads again to the same index.
    static func index(_ data: Data) {
        guard let i = try? ShardIndex.load(path: file("index.json", data)) else { return }
        guard i.totalInstances >= 0, i.shards.allSatisfy({ $0.instances >= 0 }) else { fail("negative counts in \(i)") }
        let e = JSONEncoder()
        e.outputFormatting = [.sortedKeys]
        guard let again = try? e.encode(i), let j = try? ShardIndex.load(path: file("index-again.json", again)) else {
            fail("a loaded index does not load again after encoding")
        }
        if (try? e.encode(j)) != again { fail("index round trip changes it") }
    }

    /// training_state.json: what decodes encodes and decodes to the same state.
    static func trainingState(_ data: Data) {
        guard let s = try? JSONDecoder().decode(TrainingState.self, from: data) else { return }
        guard let again = try? JSONEncoder().encode(s), let t = try? JSONDecoder().decode(TrainingState.self, from: again), t == s else {
            fail("training state round trip")
        }
    }

    // MARK: - Fine-tuning and pipeline files

    /// A classification file: examples come with increasing line numbers and a label, until the end or
    /// an error.
    static func classification(_ data: Data, format: ClassificationReader.Format) {
        let path = file("data.\(format.rawValue)", data)
        guard let reader = try? ClassificationReader(path: path, format: format) else { return }
        var line = 0
        for _ in 0..<100_000 {
            guard let e = try? reader.nextExample() else { return }  // the end, or an error
            guard e.line > line else { fail("example at line \(e.line) after line \(line)") }
            line = e.line
            if e.label.isEmpty { fail("an example without a label at line \(e.line)") }
        }
    }

    /// Accepts every command and argument: the pipeline file's own parsing and expansion are fuzzed.
    final class AcceptingRunner: PipelineCommandRunner {
        let commandNames = ["vocab", "shards", "pretrain", "finetune", "evaluate", "predict", "inspect", "tokenize", "report"]
        func check(command: String, arguments: [String]) -> String? { nil }
        func run(command: String, arguments: [String]) throws { fail("the fuzz target never runs a stage") }
    }

    static func pipeline(_ data: Data) {
        _ = try? PipelineFile.load(file("pipeline.json", data), runner: AcceptingRunner())
    }

    // MARK: - Text

    /// bert-base-uncased's vocabulary ($BERTKIT_FUZZ_VOCAB, else the committed fixture).
    static let tokenizer: BertTokenizer = {
        let path = ProcessInfo.processInfo.environment["BERTKIT_FUZZ_VOCAB"] ?? "Tests/Fixtures/tokenizer/bert-base-uncased-vocab.txt"
        guard let v = try? Vocabulary.load(path: path) else { fail("cannot load the vocabulary \(path); run from the repository root or set BERTKIT_FUZZ_VOCAB") }
        return BertTokenizer(vocabulary: v)
    }()

    /// bytes → normaliser → basic tokenizer → WordPiece: every id is below the vocabulary's size, and the
    /// text gives the same ids in one call as line by line (the chunks of the streaming stages).
    static func text(_ data: Data) {
        let t = tokenizer
        let whole = String(decoding: data, as: UTF8.self)
        let ids = t.encode(whole)
        let size = Int32(t.vocabulary.count)
        if let bad = ids.first(where: { !(0..<size).contains($0) }) { fail("id \(bad) of \(size)") }
        var pieces: [Int32] = []
        for line in whole.split(separator: "\n", omittingEmptySubsequences: false) { pieces += t.encode(String(line)) }
        if pieces != ids { fail("\(ids.count) ids in one call, \(pieces.count) line by line") }
        var viaBytes: [Int32] = []
        Array(whole.utf8).withUnsafeBufferPointer { t.encode(utf8: $0, into: &viaBytes, scratch: BertTokenizer.Scratch()) }
        if viaBytes != ids { fail("the UTF-8 path gives \(viaBytes.count) ids, the String path \(ids.count)") }
    }
}

/// The target chosen by BERTKIT_FUZZ_TARGET (checked once, at the first input).
let selectedTarget: @Sendable (Data) -> Void = {
    let name = ProcessInfo.processInfo.environment["BERTKIT_FUZZ_TARGET"] ?? ""
    guard let target = FuzzTargets.all[name] else {
        FileHandle.standardError.write(Data("set BERTKIT_FUZZ_TARGET to one of: \(FuzzTargets.all.keys.sorted().joined(separator: ", "))\n".utf8))
        exit(2)
    }
    return target
}()

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzOneInput(_ bytes: UnsafePointer<UInt8>?, _ count: Int) -> CInt {
    let data = bytes.map { Data(bytes: $0, count: count) } ?? Data()
    selectedTarget(data)
    return 0
}
