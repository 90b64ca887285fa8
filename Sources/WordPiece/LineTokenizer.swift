import Support
import Dispatch
import Foundation

/// Tokenizes a stream of lines on all cores, one output line per input line, in input order.
/// Chunks of the input are tokenized in parallel, a batch of `2 × threads` chunks at a time, then
/// written in order: memory is bounded by the batch, whatever the input size.
public struct LineTokenizer: Sendable {
    /// What to print for each line.
    public struct Format: Sendable {
        /// Ids instead of token strings.
        public var ids: Bool
        /// Lines are `a<TAB>b` pairs.
        public var pair: Bool
        /// Add `[CLS]`/`[SEP]`.
        public var specialTokens: Bool
        public init(ids: Bool, pair: Bool = false, specialTokens: Bool = true) {
            self.ids = ids
            self.pair = pair
            self.specialTokens = specialTokens
        }
    }

    /// Counters from a run.
    public struct Stats: Sendable {
        public var lines = 0
        public var bytes = 0
        public var tokens = 0
        public var invalidSequences = 0
    }

    public let tokenizer: BertTokenizer
    public let format: Format
    public let threads: Int
    public let chunkSize: Int

    public init(tokenizer: BertTokenizer, format: Format, threads: Int, chunkSize: Int = 1 << 20) {
        self.tokenizer = tokenizer
        self.format = format
        self.threads = max(1, threads)
        self.chunkSize = chunkSize
    }

    /// Reads all of `input`, writes to `output`. `threads` workers each take the next chunk (reading
    /// is serialised under a lock, so it overlaps the others' tokenizing), tokenize it, and hand the
    /// result to an in-order writer; at most `2 × threads` results wait to be written.
    public func run(input: ByteSource, output: FileDescriptorWriter) throws -> Stats {
        let state = PipelineState(chunker: LineChunker(source: input, chunkSize: chunkSize, wholeLines: format.pair),
                                  output: output, window: threads * 2)
        let workers = (0..<threads).map { _ in
            Thread { [self] in
                let scratch = BertTokenizer.Scratch()
                while let (index, chunk) = state.take() {
                    let result = process(chunk, scratch: scratch)
                    state.deliver(index: index, result: result)
                }
                state.finishWorker()
            }
        }
        for w in workers { w.stackSize = 1 << 20; w.start() }
        state.waitForWorkers(threads)
        if let e = state.error { throw e }
        return state.stats
    }

    /// Tokenizes one chunk into its output bytes.
    public func process(_ chunk: TextChunk, scratch: BertTokenizer.Scratch) -> (out: [UInt8], stats: Stats) {
        var out: [UInt8] = []
        out.reserveCapacity(chunk.bytes.count * 2)
        var stats = Stats()
        stats.bytes = chunk.bytes.count
        let before = scratch.invalidSequences
        var ids: [Int32] = []
        ids.reserveCapacity(4096)
        let vocab = tokenizer.vocabulary
        chunk.bytes.withUnsafeBufferPointer { all in
            var start = 0
            var index = 0
            while true {
                let nl = all[start...].firstIndex(of: UInt8(ascii: "\n"))
                let end = nl ?? all.count
                let terminated = nl != nil
                // Nothing after the last newline: no line to print.
                // (An empty piece that continues a line still closes it.)
                if !terminated && start == end && !chunk.endsMidLine && !(index == 0 && chunk.startsMidLine) { break }
                let line = UnsafeBufferPointer(rebasing: all[start..<end])
                let opensLine = !(index == 0 && chunk.startsMidLine)
                let closesLine = terminated || !chunk.endsMidLine
                ids.removeAll(keepingCapacity: true)
                if format.pair {
                    let tab = line.firstIndex(of: 0x09)
                    let a = UnsafeBufferPointer(rebasing: line[..<(tab ?? line.count)])
                    ids.append(vocab.clsId)
                    tokenizer.encode(utf8: a, into: &ids, scratch: scratch)
                    ids.append(vocab.sepId)
                    if let tab {
                        tokenizer.encode(utf8: UnsafeBufferPointer(rebasing: line[(tab + 1)...]), into: &ids, scratch: scratch)
                        ids.append(vocab.sepId)
                    }
                } else {
                    if opensLine && format.specialTokens { ids.append(vocab.clsId) }
                    tokenizer.encode(utf8: line, into: &ids, scratch: scratch)
                    if closesLine && format.specialTokens { ids.append(vocab.sepId) }
                }
                // Separator between this piece and what the previous chunk wrote on the same line.
                if !opensLine && !ids.isEmpty { out.append(0x20) }
                for (k, id) in ids.enumerated() {
                    if k > 0 { out.append(0x20) }
                    if format.ids { Self.appendDecimal(id, to: &out) } else { out.append(contentsOf: vocab.tokens[Int(id)].utf8) }
                }
                stats.tokens += ids.count
                if closesLine { out.append(0x0A); stats.lines += 1 }
                if !terminated { break }
                start = end + 1
                index += 1
            }
        }
        stats.invalidSequences = scratch.invalidSequences - before
        return (out, stats)
    }

    @inline(__always)
    static func appendDecimal(_ v: Int32, to out: inout [UInt8]) {
        var x = UInt32(bitPattern: v)
        if v < 0 { out.append(UInt8(ascii: "-")); x = UInt32(-Int64(v)) }
        var tmp: (UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8) = (0, 0, 0, 0, 0, 0, 0, 0, 0, 0)
        var n = 0
        withUnsafeMutableBytes(of: &tmp) { t in
            repeat { t[n] = UInt8(48 + x % 10); x /= 10; n += 1 } while x > 0
            for k in stride(from: n - 1, through: 0, by: -1) { out.append(t[k]) }
        }
    }
}

/// Shared state of the `LineTokenizer` pipeline: the chunk source, the in-order writer, the first error.
final class PipelineState: @unchecked Sendable {
    let chunker: LineChunker
    let output: FileDescriptorWriter
    let window: Int
    let condition = NSCondition()
    var nextIndex = 0
    var nextToWrite = 0
    var pending: [Int: (out: [UInt8], stats: LineTokenizer.Stats)] = [:]
    var stats = LineTokenizer.Stats()
    var error: Error?
    var done = false
    var finishedWorkers = 0

    init(chunker: LineChunker, output: FileDescriptorWriter, window: Int) {
        self.chunker = chunker
        self.output = output
        self.window = max(2, window)
    }

    /// The next chunk to process, or nil at the end or after an error.
    func take() -> (Int, TextChunk)? {
        condition.lock()
        defer { condition.unlock() }
        // Bound memory: do not run ahead of the writer by more than the window.
        while !done && error == nil && nextIndex - nextToWrite >= window { condition.wait() }
        if done || error != nil { return nil }
        do {
            guard let c = try chunker.next() else { done = true; condition.broadcast(); return nil }
            defer { nextIndex += 1 }
            return (nextIndex, c)
        } catch {
            self.error = error
            condition.broadcast()
            return nil
        }
    }

    /// Hands a result over; writes every result that is next in order.
    func deliver(index: Int, result: (out: [UInt8], stats: LineTokenizer.Stats)) {
        condition.lock()
        defer { condition.unlock() }
        pending[index] = result
        while error == nil, let r = pending.removeValue(forKey: nextToWrite) {
            do { try output.write(r.out) } catch { self.error = error; break }
            stats.lines += r.stats.lines
            stats.bytes += r.stats.bytes
            stats.tokens += r.stats.tokens
            stats.invalidSequences += r.stats.invalidSequences
            nextToWrite += 1
        }
        condition.broadcast()
    }

    func finishWorker() {
        condition.lock()
        finishedWorkers += 1
        condition.broadcast()
        condition.unlock()
    }

    func waitForWorkers(_ n: Int) {
        condition.lock()
        while finishedWorkers < n { condition.wait() }
        condition.unlock()
    }
}
