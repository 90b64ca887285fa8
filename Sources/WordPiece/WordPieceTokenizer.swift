/// WordPiece: greedy longest-match-first over one pre-tokenized word, continuation pieces prefixed
/// with `##`; a word that cannot be covered, or has more than `maxInputCharsPerWord` characters,
/// becomes a single `[UNK]`.
///
/// The longest match is found with a byte trie over the vocabulary (one for word-initial pieces, one
/// for `##` pieces with the prefix removed), so each piece costs one walk instead of one hash lookup
/// per candidate length. Because every vocabulary entry is whole UTF-8, the longest byte match always
/// ends on a character boundary: the result equals the reference algorithm's, which tries substrings
/// from the longest down.
///
/// `maxInputCharsPerWord` is 100 as in Hugging Face tokenizers (`max_input_chars_per_word`); google-
/// research/bert's tokenization.py uses 200. We follow HF; characters are Unicode scalars in both.
public struct WordPieceTokenizer: Sendable {
    /// The vocabulary.
    public let vocabulary: Vocabulary
    /// Words with more characters than this become `[UNK]`.
    public let maxInputCharsPerWord: Int
    /// The continuation prefix.
    public let continuationPrefix: String

    /// Open-addressed edge table: key = (node << 8 | byte) + 1, 0 = empty. // (capacity,)
    @usableFromInline let edgeKeys: [UInt64]
    /// Child node for each edge slot. // (capacity,)
    @usableFromInline let edgeChild: [UInt32]
    /// Token id ending at each node, -1 when none. // (nodes,)
    @usableFromInline let nodeToken: [Int32]
    /// For the root nodes, children by first byte, to skip the hash on the first step. // (2, 256)
    @usableFromInline let rootChild: [UInt32]
    @usableFromInline let mask: Int
    @usableFromInline static let initialRoot: UInt32 = 0
    @usableFromInline static let continuationRoot: UInt32 = 1
    @usableFromInline static let none: UInt32 = .max

    /// Builds the tries for a vocabulary.
    public init(vocabulary: Vocabulary, maxInputCharsPerWord: Int = 100, continuationPrefix: String = "##") {
        self.vocabulary = vocabulary
        self.maxInputCharsPerWord = maxInputCharsPerWord
        self.continuationPrefix = continuationPrefix
        var edges: [UInt64: UInt32] = [:]
        var nodeToken: [Int32] = [-1, -1]
        let prefix = Array(continuationPrefix.utf8)
        for (id, token) in vocabulary.tokens.enumerated() {
            var bytes = Array(token.utf8)
            var node = Self.initialRoot
            if bytes.count > prefix.count, bytes.starts(with: prefix) {
                bytes.removeFirst(prefix.count)
                node = Self.continuationRoot
            }
            if bytes.isEmpty { continue }
            for b in bytes {
                let key = UInt64(node) << 8 | UInt64(b)
                if let child = edges[key] { node = child } else {
                    let child = UInt32(nodeToken.count)
                    nodeToken.append(-1)
                    edges[key] = child
                    node = child
                }
            }
            if nodeToken[Int(node)] < 0 { nodeToken[Int(node)] = Int32(id) }
        }
        var capacity = 16
        while capacity < edges.count * 2 { capacity <<= 1 }
        var keys = [UInt64](repeating: 0, count: capacity)
        var child = [UInt32](repeating: 0, count: capacity)
        var rootChild = [UInt32](repeating: Self.none, count: 512)
        for (key, c) in edges {
            var slot = Self.hash(key) & (capacity - 1)
            while keys[slot] != 0 { slot = (slot + 1) & (capacity - 1) }
            keys[slot] = key &+ 1
            child[slot] = c
            let parent = key >> 8
            if parent <= 1 { rootChild[Int(parent) * 256 + Int(key & 0xFF)] = c }
        }
        edgeKeys = keys
        edgeChild = child
        self.nodeToken = nodeToken
        self.rootChild = rootChild
        mask = capacity - 1
    }

    @inlinable @inline(__always)
    static func hash(_ key: UInt64) -> Int {
        Int(truncatingIfNeeded: (key &* 0x9E37_79B9_7F4A_7C15) >> 29)
    }

    @inlinable @inline(__always)
    func child(_ node: UInt32, _ byte: UInt8, _ keys: UnsafePointer<UInt64>, _ children: UnsafePointer<UInt32>) -> UInt32 {
        let key = (UInt64(node) << 8 | UInt64(byte)) &+ 1
        var slot = Self.hash(key &- 1) & mask
        while true {
            let k = keys[slot]
            if k == key { return children[slot] }
            if k == 0 { return Self.none }
            slot = (slot + 1) & mask
        }
    }

    /// Appends the piece ids of one normalised word (UTF-8 bytes with `charCount` scalars) to `out`.
    @inlinable
    public func tokenize(word: UnsafeBufferPointer<UInt8>, charCount: Int, into out: inout [Int32]) {
        if charCount > maxInputCharsPerWord { out.append(vocabulary.unkId); return }
        let mark = out.count
        let ok: Bool = edgeKeys.withUnsafeBufferPointer { keys in
            edgeChild.withUnsafeBufferPointer { children in
                nodeToken.withUnsafeBufferPointer { tokens in
                    rootChild.withUnsafeBufferPointer { roots in
                        var start = 0
                        let n = word.count
                        while start < n {
                            let rootIndex = start == 0 ? 0 : 256
                            var node = roots[rootIndex + Int(word[start])]
                            var bestEnd = -1
                            var bestId: Int32 = -1
                            var i = start + 1
                            while node != Self.none {
                                let t = tokens[Int(node)]
                                if t >= 0 { bestEnd = i; bestId = t }
                                if i == n { break }
                                node = child(node, word[i], keys.baseAddress!, children.baseAddress!)
                                i += 1
                            }
                            if bestEnd < 0 { return false }
                            out.append(bestId)
                            start = bestEnd
                        }
                        return true
                    }
                }
            }
        }
        if !ok {
            out.removeSubrange(mark...)
            out.append(vocabulary.unkId)
        }
    }

    /// Piece ids of one word (reference-friendly form of `tokenize(word:charCount:into:)`).
    public func tokenize(_ word: String) -> [Int32] {
        var out: [Int32] = []
        var w = word
        let count = w.unicodeScalars.count
        w.withUTF8 { tokenize(word: $0, charCount: count, into: &out) }
        return out
    }

    /// The reference algorithm, literally: try the longest substring first, shrink by one character.
    /// Kept for tests of the trie.
    public func tokenizeNaive(_ word: String) -> [Int32] {
        let scalars = Array(word.unicodeScalars)
        if scalars.count > maxInputCharsPerWord { return [vocabulary.unkId] }
        var out: [Int32] = []
        var start = 0
        while start < scalars.count {
            var end = scalars.count
            var found: Int32? = nil
            while start < end {
                var piece = String(String.UnicodeScalarView(scalars[start..<end]))
                if start > 0 { piece = continuationPrefix + piece }
                if let id = vocabulary[piece] { found = id; break }
                end -= 1
            }
            guard let id = found else { return [vocabulary.unkId] }
            out.append(id)
            start = end
        }
        return out
    }
}
