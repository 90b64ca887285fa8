/// Trains a WordPiece vocabulary the way Hugging Face's `WordPieceTrainer` does: byte-pair-style
/// merges over the alphabet, with continuation symbols carrying the `##` prefix, the most frequent
/// pair merged first. Unlike HF, every tie is broken deterministically (by symbol id, and symbol ids
/// are assigned in sorted order), so the same counts always give the same vocabulary.
///
/// Defaults are `BertWordPieceTokenizer.train`'s: min frequency 2, alphabet limited to the 1,000 most
/// frequent characters, special tokens `[PAD] [UNK] [CLS] [SEP] [MASK]` at ids 0–4.
public struct VocabularyTrainer: Sendable {
    /// Target vocabulary size (special tokens and alphabet included).
    public var size: Int
    /// Merges seen fewer times than this are not made.
    public var minFrequency: Int = 2
    /// Keep only this many characters, the most frequent (nil: all).
    public var limitAlphabet: Int? = 1000
    /// Tokens put first, in order.
    public var specialTokens: [String] = Vocabulary.specialTokens
    /// Continuation prefix.
    public var continuationPrefix: String = "##"

    public init(size: Int) { self.size = size }

    /// Trains on word counts (normalised, pre-tokenized words). Returns tokens in id order.
    public func train(_ counter: WordCounter) -> [String] {
        let words = counter.sortedWords()
        // Alphabet: character frequencies over all words.
        var charCount: [UInt32: Int] = [:]
        var wordScalars: [[UInt32]] = []
        wordScalars.reserveCapacity(words.count)
        for (w, c) in words {
            let scalars = String(decoding: w, as: UTF8.self).unicodeScalars.map(\.value)
            for s in scalars { charCount[s, default: 0] += c }
            wordScalars.append(scalars)
        }
        var alphabet = charCount.sorted { $0.value != $1.value ? $0.value > $1.value : $0.key < $1.key }
        if let limit = limitAlphabet, alphabet.count > limit { alphabet.removeLast(alphabet.count - limit) }
        let kept = Set(alphabet.map(\.key))

        var tokens: [String] = []
        var ids: [String: Int32] = [:]
        func intern(_ t: String) -> Int32 {
            if let id = ids[t] { return id }
            let id = Int32(tokens.count)
            tokens.append(t)
            ids[t] = id
            return id
        }
        for t in specialTokens { _ = intern(t) }
        for c in alphabet.map(\.key).sorted() { _ = intern(String(Character(Unicode.Scalar(c)!))) }
        // Continuation symbols, in sorted order for determinism.
        var continuation = Set<UInt32>()
        for scalars in wordScalars {
            var first = true
            for s in scalars where kept.contains(s) {
                if !first { continuation.insert(s) }
                first = false
            }
        }
        for c in continuation.sorted() { _ = intern(continuationPrefix + String(Character(Unicode.Scalar(c)!))) }

        // Words as symbol sequences. HF marks "first" by position in the word (a dropped first
        // character makes the next one a continuation symbol); so do we.
        var symbols: [[Int32]] = []
        var wordCounts: [Int] = []
        symbols.reserveCapacity(words.count)
        for (k, scalars) in wordScalars.enumerated() {
            var seq: [Int32] = []
            for (i, s) in scalars.enumerated() where kept.contains(s) {
                let ch = String(Character(Unicode.Scalar(s)!))
                seq.append(ids[i == 0 ? ch : continuationPrefix + ch]!)
            }
            symbols.append(seq)
            wordCounts.append(words[k].count)
        }

        // Pair counts and where each pair occurs.
        var pairCount: [UInt64: Int] = [:]
        var wherePair: [UInt64: [Int32]] = [:]
        @inline(__always) func key(_ a: Int32, _ b: Int32) -> UInt64 { UInt64(UInt32(a)) << 32 | UInt64(UInt32(b)) }
        for (w, seq) in symbols.enumerated() where seq.count > 1 {
            for i in 0..<(seq.count - 1) {
                let k = key(seq[i], seq[i + 1])
                pairCount[k, default: 0] += wordCounts[w]
                wherePair[k, default: []].append(Int32(w))
            }
        }
        var heap = PairHeap()
        for (k, c) in pairCount where c > 0 { heap.push(count: c, pair: k) }

        let prefixCount = continuationPrefix.count
        while tokens.count < size, let top = heap.pop() {
            let current = pairCount[top.pair] ?? 0
            if current != top.count {
                if current > 0 { heap.push(count: current, pair: top.pair) }
                continue
            }
            if current < 1 || current < minFrequency { break }
            let a = Int32(truncatingIfNeeded: top.pair >> 32)
            let b = Int32(truncatingIfNeeded: top.pair & 0xFFFF_FFFF)
            var partB = tokens[Int(b)]
            if partB.hasPrefix(continuationPrefix) { partB = String(partB.dropFirst(prefixCount)) }
            let merged = intern(tokens[Int(a)] + partB)
            var touched = Set<UInt64>()
            var positions = wherePair[top.pair] ?? []
            positions.sort()
            var last: Int32 = -1
            for w in positions where w != last {
                last = w
                let c = wordCounts[Int(w)]
                var seq = symbols[Int(w)]
                var i = 0
                var changed = false
                while i < seq.count - 1 {
                    if seq[i] == a && seq[i + 1] == b {
                        if i > 0 {
                            let old = key(seq[i - 1], a); pairCount[old, default: 0] -= c; touched.insert(old)
                        }
                        if i + 2 < seq.count {
                            let old = key(b, seq[i + 2]); pairCount[old, default: 0] -= c; touched.insert(old)
                        }
                        pairCount[top.pair, default: 0] -= c
                        seq[i] = merged
                        seq.remove(at: i + 1)
                        if i > 0 {
                            let new = key(seq[i - 1], merged); pairCount[new, default: 0] += c
                            wherePair[new, default: []].append(w); touched.insert(new)
                        }
                        if i + 1 < seq.count {
                            let new = key(merged, seq[i + 1]); pairCount[new, default: 0] += c
                            wherePair[new, default: []].append(w); touched.insert(new)
                        }
                        changed = true
                    }
                    i += 1
                }
                if changed { symbols[Int(w)] = seq }
            }
            wherePair[top.pair] = nil
            for t in touched.sorted() {
                if let c = pairCount[t], c > 0 { heap.push(count: c, pair: t) }
            }
        }
        return tokens
    }
}

/// Max-heap of (count, pair): highest count first, then the smallest pair key.
struct PairHeap {
    var items: [(count: Int, pair: UInt64)] = []

    @inline(__always) static func before(_ x: (count: Int, pair: UInt64), _ y: (count: Int, pair: UInt64)) -> Bool {
        x.count != y.count ? x.count > y.count : x.pair < y.pair
    }

    mutating func push(count: Int, pair: UInt64) {
        items.append((count, pair))
        var i = items.count - 1
        while i > 0 {
            let p = (i - 1) / 2
            if Self.before(items[i], items[p]) { items.swapAt(i, p); i = p } else { break }
        }
    }

    mutating func pop() -> (count: Int, pair: UInt64)? {
        guard !items.isEmpty else { return nil }
        let top = items[0]
        let last = items.removeLast()
        if !items.isEmpty {
            items[0] = last
            var i = 0
            while true {
                let l = 2 * i + 1, r = l + 1
                var m = i
                if l < items.count && Self.before(items[l], items[m]) { m = l }
                if r < items.count && Self.before(items[r], items[m]) { m = r }
                if m == i { break }
                items.swapAt(i, m)
                i = m
            }
        }
        return top
    }
}
