import TextNormalization

/// An encoded input: `[CLS] A [SEP]` or `[CLS] A [SEP] B [SEP]`.
public struct Encoding: Sendable, Equatable {
    /// Token ids. // (length,)
    public var ids: [Int32]
    /// Segment (token type) ids: 0 for `[CLS] A [SEP]`, 1 for `B [SEP]`. // (length,)
    public var typeIds: [Int32]

    public init(ids: [Int32], typeIds: [Int32]) {
        self.ids = ids
        self.typeIds = typeIds
    }
}

/// The full BERT tokenizer: normalizer, pre-tokenizer, WordPiece, and the `[CLS]`/`[SEP]` template.
/// Immutable and `Sendable`: share one between threads, give each thread its own `Scratch`.
public final class BertTokenizer: Sendable {
    /// The vocabulary.
    public let vocabulary: Vocabulary
    /// Normalizer + pre-tokenizer.
    public let basic: BasicTokenizer
    /// WordPiece model.
    public let wordPiece: WordPieceTokenizer

    /// A tokenizer for a vocabulary and normalizer options (uncased BERT by default).
    public init(vocabulary: Vocabulary, options: BertNormalizerOptions = BertNormalizerOptions(),
                maxInputCharsPerWord: Int = 100) {
        self.vocabulary = vocabulary
        let normalizer = BertNormalizer(options: options)
        let specials = Vocabulary.specialTokens.compactMap { t in vocabulary[t].map { (t, $0) } }
        basic = BasicTokenizer(normalizer: normalizer, specials: specials)
        wordPiece = WordPieceTokenizer(vocabulary: vocabulary, maxInputCharsPerWord: maxInputCharsPerWord)
    }

    /// Per-thread working memory.
    public typealias Scratch = BasicTokenizer.Scratch

    /// Appends the WordPiece ids of raw UTF-8 text (no special tokens added) to `out`.
    @inlinable
    public func encode(utf8 input: UnsafeBufferPointer<UInt8>, into out: inout [Int32], scratch: Scratch) {
        if basic.normalizer.options.nfkc, input.contains(where: { $0 >= 0x80 }) {
            let normalized = ICU.normalize(input, form: .nfkc)
            normalized.withUnsafeBufferPointer { encodeNormalizedForm($0, into: &out, scratch: scratch) }
        } else {
            encodeNormalizedForm(input, into: &out, scratch: scratch)
        }
    }

    @inlinable
    func encodeNormalizedForm(_ input: UnsafeBufferPointer<UInt8>, into out: inout [Int32], scratch: Scratch) {
        basic.scan(input, scratch: scratch,
                   onWord: { word, chars in wordPiece.tokenize(word: word, charCount: chars, into: &out) },
                   onSpecial: { out.append($0) })
    }

    /// WordPiece ids of a text, without special tokens.
    public func encode(_ text: String, scratch: Scratch = Scratch()) -> [Int32] {
        var out: [Int32] = []
        var t = text
        t.withUTF8 { encode(utf8: $0, into: &out, scratch: scratch) }
        return out
    }

    /// Which side to cut when a pair is too long.
    public enum Truncation: Sendable { case longestFirst }

    /// `[CLS] a [SEP]` or `[CLS] a [SEP] b [SEP]` with segment ids. With `maxLength`, pieces are removed
    /// one at a time from the end of the longer side (Hugging Face's `longest_first`, which is also
    /// google-research/bert's `_truncate_seq_pair` for classifier inputs).
    public func encode(_ a: String, pair b: String? = nil, maxLength: Int? = nil, scratch: Scratch = Scratch()) -> Encoding {
        var idsA = encode(a, scratch: scratch)
        var idsB = b.map { encode($0, scratch: scratch) }
        if let maxLength {
            let specials = idsB == nil ? 2 : 3
            Self.truncate(&idsA, &idsB, to: max(0, maxLength - specials))
        }
        return assemble(idsA, idsB)
    }

    /// Truncates a pair to `budget` pieces in all, longest side first (ties: the second side).
    public static func truncate(_ a: inout [Int32], _ b: inout [Int32]?, to budget: Int) {
        while a.count + (b?.count ?? 0) > budget {
            if let bb = b, bb.count >= a.count, !bb.isEmpty { b!.removeLast() } else if !a.isEmpty { a.removeLast() } else { break }
        }
    }

    /// Adds the special tokens and segment ids.
    public func assemble(_ a: [Int32], _ b: [Int32]?) -> Encoding {
        var ids = [vocabulary.clsId]
        ids += a
        ids.append(vocabulary.sepId)
        var types = [Int32](repeating: 0, count: ids.count)
        if let b {
            ids += b
            ids.append(vocabulary.sepId)
            types += [Int32](repeating: 1, count: b.count + 1)
        }
        return Encoding(ids: ids, typeIds: types)
    }

    /// Token strings for ids.
    public func tokens(_ ids: [Int32]) -> [String] { ids.map { vocabulary.tokens[Int($0)] } }
}
