import Dispatch
import Support

/// Counts byte strings (normalised words) without creating a `String` per occurrence: an arena of
/// bytes and an open-addressed table. Memory grows with the number of distinct words, not with the
/// input.
public struct WordCounter: Sendable {
    /// Concatenated bytes of all distinct words. // (arenaBytes,)
    var arena: [UInt8] = []
    /// Per distinct word: arena offset, byte length, scalar count, occurrences.
    var offsets: [Int] = []
    var lengths: [Int32] = []
    var chars: [Int32] = []
    var counts: [Int] = []
    var hashes: [UInt64] = []
    /// Slots: index + 1 into the per-word arrays, 0 = empty. // (capacity,)
    var slots: [Int32] = [Int32](repeating: 0, count: 1024)

    public init() {}

    /// Number of distinct words.
    public var distinct: Int { counts.count }
    /// Total occurrences.
    public var total: Int { counts.reduce(0, +) }

    @inline(__always)
    static func hash(_ w: UnsafeBufferPointer<UInt8>) -> UInt64 {
        var h: UInt64 = 0xcbf2_9ce4_8422_2325
        for b in w { h = (h ^ UInt64(b)) &* 0x100_0000_01b3 }
        return h ^ (h >> 29)
    }

    /// Adds `count` occurrences of a word.
    public mutating func add(_ w: UnsafeBufferPointer<UInt8>, chars c: Int, count: Int = 1) {
        let h = Self.hash(w)
        add(w, chars: c, count: count, hash: h)
    }

    mutating func add(_ w: UnsafeBufferPointer<UInt8>, chars c: Int, count: Int, hash h: UInt64) {
        if (counts.count + 1) * 2 > slots.count { rehash(slots.count * 2) }
        let mask = slots.count - 1
        var s = Int(truncatingIfNeeded: h) & mask
        while true {
            let k = Int(slots[s])
            if k == 0 {
                offsets.append(arena.count)
                arena.append(contentsOf: w)
                lengths.append(Int32(w.count))
                chars.append(Int32(c))
                counts.append(count)
                hashes.append(h)
                slots[s] = Int32(counts.count)
                return
            }
            let i = k - 1
            if hashes[i] == h && Int(lengths[i]) == w.count && equal(i, w) {
                counts[i] += count
                return
            }
            s = (s + 1) & mask
        }
    }

    @inline(__always)
    func equal(_ i: Int, _ w: UnsafeBufferPointer<UInt8>) -> Bool {
        arena.withUnsafeBufferPointer { a in
            let o = offsets[i]
            for k in 0..<w.count where a[o + k] != w[k] { return false }
            return true
        }
    }

    mutating func rehash(_ capacity: Int) {
        slots = [Int32](repeating: 0, count: capacity)
        let mask = capacity - 1
        for i in 0..<counts.count {
            var s = Int(truncatingIfNeeded: hashes[i]) & mask
            while slots[s] != 0 { s = (s + 1) & mask }
            slots[s] = Int32(i + 1)
        }
    }

    /// Adds all counts of another counter.
    public mutating func merge(_ other: WordCounter) {
        other.arena.withUnsafeBufferPointer { a in
            for i in 0..<other.counts.count {
                let w = UnsafeBufferPointer(rebasing: a[other.offsets[i]..<(other.offsets[i] + Int(other.lengths[i]))])
                add(w, chars: Int(other.chars[i]), count: other.counts[i], hash: other.hashes[i])
            }
        }
    }

    /// The distinct words and counts, sorted by bytes (a deterministic order).
    public func sortedWords() -> [(word: [UInt8], count: Int)] {
        var out: [(word: [UInt8], count: Int)] = []
        out.reserveCapacity(counts.count)
        for i in 0..<counts.count {
            out.append((Array(arena[offsets[i]..<(offsets[i] + Int(lengths[i]))]), counts[i]))
        }
        out.sort { $0.word.lexicographicallyPrecedes($1.word) }
        return out
    }
}

/// Counts normalised words over corpus files on `threads` cores, for vocabulary training.
/// Memory is bounded by the number of distinct words plus one batch of chunks. Words of more than
/// `maxCharsPerWord` characters are not counted: WordPiece turns each of them into `[UNK]` whole
/// (Hugging Face's `max_input_chars_per_word`), so no piece of them could ever be used, and a
/// megabyte-long "word" (a blob with no spaces) would only make the merges slow. Files `opener` takes
/// are read through it (see `CorpusTextChunks`).
public func countWords(paths: [String], basic: BasicTokenizer, threads: Int, maxCharsPerWord: Int = 100, opener: CorpusOpener? = nil,
                       progress: ((Int) -> Void)? = nil) throws -> (counter: WordCounter, bytes: Int, invalid: Int) {
    let chunks = CorpusTextChunks(paths: paths, opener: opener)
    let slots = max(1, threads)
    let counters = UnsafeMutableBufferPointer<WordCounter>.allocate(capacity: slots)
    counters.initialize(repeating: WordCounter())
    defer { counters.deinitialize(); counters.deallocate() }
    let scratches = (0..<slots).map { _ in BasicTokenizer.Scratch() }
    var bytes = 0
    while true {
        var batch: [TextChunk] = []
        while batch.count < slots, let c = try chunks.next() { batch.append(c) }
        if batch.isEmpty { break }
        bytes += batch.reduce(0) { $0 + $1.bytes.count }
        let shared = UncheckedSendable((counters, batch, scratches))
        let work: @Sendable (Int) -> Void = { i in
            let (counters, batch, scratches) = shared.value
            batch[i].bytes.withUnsafeBufferPointer { p in
                basic.scan(p, scratch: scratches[i],
                           onWord: { w, c in if c <= maxCharsPerWord { counters[i].add(w, chars: c) } },
                           onSpecial: { _ in })
            }
        }
        if batch.count == 1 { work(0) } else { DispatchQueue.concurrentPerform(iterations: batch.count, execute: work) }
        progress?(bytes)
    }
    var total = counters[0]
    for c in counters.dropFirst() { total.merge(c) }
    return (total, bytes, scratches.reduce(0) { $0 + $1.invalidSequences })
}
