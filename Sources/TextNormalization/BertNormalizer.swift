import Support
import Dispatch

/// Options of the BERT normalizer. Defaults are Hugging Face `BertNormalizer`'s
/// (clean text, handle Chinese characters, lowercase, strip accents following lowercase).
public struct BertNormalizerOptions: Sendable, Hashable, Codable {
    /// Drop NUL, U+FFFD and "other" (Cc/Cf/Cn/Co/Cs) characters; turn whitespace into a space.
    public var cleanText: Bool = true
    /// Put spaces around CJK ideographs so that each becomes its own word.
    public var handleChineseChars: Bool = true
    /// Lowercase every code point (full, context-free mapping).
    public var lowercase: Bool = true
    /// Strip accents (NFD, then drop Mn). `nil` follows `lowercase`, as in HF and google-research/bert.
    public var stripAccents: Bool? = nil
    /// Apply NFKC to the raw text first (full-width forms, ligatures). Off by default: neither
    /// reference tokenizer does it, so it breaks parity with vocabularies made without it.
    public var nfkc: Bool = false
    /// Unicode version (major*100+minor) whose general categories decide "other", punctuation and
    /// non-spacing marks. Hugging Face tokenizers uses the `unicode_categories` crate, whose tables
    /// are Unicode 8.0's: a character assigned later is in none of its categories (so a newer
    /// punctuation mark does not split words and a newer format character is not dropped).
    /// `nil` uses ICU's own version.
    public var categoryUnicodeVersion: Int? = BertNormalizerOptions.huggingFaceCategoryVersion

    /// The Unicode version of HF tokenizers' category tables (see `categoryUnicodeVersion`);
    /// pinned by the exhaustive code point test against the oracle.
    public static let huggingFaceCategoryVersion = 800

    /// Uncased (lowercase + strip accents) or cased (neither) BERT defaults.
    public init(lowercase: Bool = true) { self.lowercase = lowercase }

    /// Whether accents are stripped once `stripAccents` has been resolved.
    public var resolvedStripAccents: Bool { stripAccents ?? lowercase }
}

/// What the normalizer does with one input code point.
public struct CharEntry: Sendable, Equatable {
    @usableFromInline let raw: UInt32

    @usableFromInline init(raw: UInt32) { self.raw = raw }

    /// Disposition of a code point.
    public enum Kind: UInt32, Sendable { case identity = 0, removed = 1, whitespace = 2, mapped = 3 }

    @inlinable public var kind: Kind { Kind(rawValue: raw & 3)! }
    /// A CJK ideograph that the normalizer isolates with spaces.
    @inlinable public var isChinese: Bool { raw & 4 != 0 }
    /// The code point itself is BERT punctuation (a word of its own for the pre-tokenizer).
    @inlinable public var isPunctuation: Bool { raw & 8 != 0 }
    @inlinable var mappingCount: Int { Int((raw >> 4) & 0xF) }
    @inlinable var mappingOffset: Int { Int(raw >> 8) }
}

/// BERT's normalizer, on ICU: text cleaning, spaces around CJK ideographs, accent stripping through
/// NFD minus non-spacing marks, lowercasing, and an optional NFKC pass. Behaviour follows Hugging Face
/// tokenizers' `BertNormalizer` (the reference for parity); where google-research/bert's
/// `tokenization.py` differs it is noted on the function concerned.
///
/// The decision for every code point of the BMP is precomputed once from
/// ICU into a table, so the hot path never calls ICU; rarer code points go through `classify`.
public final class BertNormalizer: Sendable {
    /// The options this normalizer was built with.
    public let options: BertNormalizerOptions
    /// Entries for code points 0..<tableLimit (the BMP). // (0x10000,)
    @usableFromInline let entries: [UInt32]
    /// Mapped code points referenced by `mapped` entries.
    @usableFromInline let pool: [UInt32]
    @usableFromInline static let tableLimit: UInt32 = 0x10000

    /// Builds the table from ICU (about 0.1 s of CPU, split over the cores).
    public init(options: BertNormalizerOptions = BertNormalizerOptions()) {
        self.options = options
        // Classify in blocks on all cores, then intern the mappings in order (deterministic pool).
        let blockSize = 0x1000
        let blocks = Int(Self.tableLimit) / blockSize
        let results = UnsafeMutableBufferPointer<[Classification]>.allocate(capacity: blocks)
        results.initialize(repeating: [])
        defer { results.deinitialize(); results.deallocate() }
        let shared = UncheckedSendable(results)
        DispatchQueue.concurrentPerform(iterations: blocks) { b in
            let start = UInt32(b * blockSize)
            shared.value[b] = (start..<(start + UInt32(blockSize))).map { Self.classify($0, options: options) }
        }
        var entries = [UInt32](repeating: 0, count: Int(Self.tableLimit))
        var pool: [UInt32] = []
        var dedupe: [[UInt32]: Int] = [:]
        for b in 0..<blocks {
            for (k, c) in results[b].enumerated() {
                var raw = c.kind.rawValue | (c.isChinese ? 4 : 0) | (c.isPunctuation ? 8 : 0)
                if c.kind == .mapped {
                    let offset: Int
                    if let o = dedupe[c.mapping] { offset = o } else {
                        offset = pool.count; pool.append(contentsOf: c.mapping); dedupe[c.mapping] = offset
                    }
                    raw |= UInt32(c.mapping.count) << 4 | UInt32(offset) << 8
                }
                entries[b * blockSize + k] = raw
            }
        }
        self.entries = entries
        self.pool = pool
    }

    /// The full decision for one code point (any code point; slow, calls ICU).
    public struct Classification: Sendable, Equatable {
        public var kind: CharEntry.Kind
        public var isChinese: Bool
        public var isPunctuation: Bool
        /// Output code points for `.mapped` (may be empty when everything was a stripped mark).
        public var mapping: [UInt32]
    }

    /// Decides what happens to one code point, in Hugging Face's order: clean (drop "other" and
    /// NUL/U+FFFD, whitespace to space), isolate CJK, strip accents (NFD, drop Mn), lowercase.
    ///
    /// Differences from google-research/bert `tokenization.py`, where we follow HF:
    /// - HF strips accents before lowercasing; Google lowercases first (same result for all code
    ///   points with ICU 72 data except where a lowercase mapping introduces a mark).
    /// - HF's "other" includes Cn (unassigned in its tables' Unicode version) and Co/Cs; Google
    ///   drops only Cc and Cf. So HF drops emoji newer than its tables; Google keeps them.
    /// - HF's whitespace is the White_Space property (U+2028, U+2029, U+0085 included; U+0085 and
    ///   U+000B/U+000C are Cc and are dropped first); Google's is Zs plus \t\n\r.
    /// - HF's CJK ranges include U+2B920–U+2CEAF where Google has U+2B820–U+2CEAF.
    public static func classify(_ cp: UInt32, options: BertNormalizerOptions) -> Classification {
        let punct = isBertPunctuation(cp, version: options.categoryUnicodeVersion)
        var result = Classification(kind: .identity, isChinese: false, isPunctuation: punct, mapping: [])
        if options.cleanText && (cp == 0 || cp == 0xFFFD || isOther(cp, version: options.categoryUnicodeVersion)) {
            result.kind = .removed
            return result
        }
        // Cleaning turns whitespace into a space; without it the pre-tokenizer still splits there.
        if isBertWhitespace(cp) {
            result.kind = .whitespace
            return result
        }
        if options.handleChineseChars && isChineseChar(cp) { result.isChinese = true }
        // Fast exits (most of the table): unassigned code points and unified CJK ideographs neither
        // decompose nor change case.
        if ICU.age(cp) == 0 && (options.categoryUnicodeVersion == nil || !(options.lowercase && hasLowercaseAddedIn1600(cp))) {
            return result
        }
        if result.isChinese && !(0xF900...0xFAFF).contains(cp) && !(0x2F800...0x2FA1F).contains(cp) { return result }
        var out: [UInt32] = [cp]
        if options.resolvedStripAccents {
            out = decompose(cp, options: options).filter { !isNonSpacingMark($0, version: options.categoryUnicodeVersion) }
        }
        if options.lowercase { out = out.flatMap { lowercase($0, options: options) } }
        if out != [cp] {
            result.kind = .mapped
            result.mapping = out
        }
        return result
    }

    /// The table entry for a code point; `nil` above the table (use `classify`).
    @inlinable @inline(__always)
    public func entry(_ cp: UInt32) -> CharEntry? {
        cp < Self.tableLimit ? CharEntry(raw: entries.withUnsafeBufferPointer { $0[Int(cp)] }) : nil
    }

    /// Calls `body` with the mapped code points of a `.mapped` entry.
    @inlinable @inline(__always)
    public func withMapping<R>(_ e: CharEntry, _ body: (UnsafeBufferPointer<UInt32>) -> R) -> R {
        pool.withUnsafeBufferPointer { p in
            body(UnsafeBufferPointer(rebasing: p[e.mappingOffset..<(e.mappingOffset + e.mappingCount)]))
        }
    }

    /// Whether the pre-tokenizer treats a (normalised) code point as punctuation.
    @inlinable @inline(__always)
    public func isPunctuation(_ cp: UInt32) -> Bool {
        if let e = entry(cp) { return e.isPunctuation }
        return Self.isBertPunctuation(cp, version: options.categoryUnicodeVersion)
    }

    /// Normalises a string the slow, obvious way: one code point at a time through `classify`,
    /// CJK ideographs surrounded by spaces. The reference the fast paths are tested against.
    public func normalize(_ text: String) -> String {
        var source = text
        if options.nfkc { source = ICU.normalize(source, form: .nfkc) }
        var out = String.UnicodeScalarView()
        for scalar in source.unicodeScalars {
            let c = Self.classify(scalar.value, options: options)
            switch c.kind {
            case .removed: continue
            case .whitespace: out.append(" ")
            case .identity, .mapped:
                if c.isChinese { out.append(" ") }
                for m in (c.kind == .identity ? [scalar.value] : c.mapping) {
                    if let s = Unicode.Scalar(m) { out.append(s) }
                }
                if c.isChinese { out.append(" ") }
            }
        }
        return String(out)
    }

    // MARK: character classes

    /// General category as seen by a table of Unicode `version` (nil: ICU's): code points assigned
    /// later are unassigned.
    public static func category(_ cp: UInt32, version: Int?) -> GeneralCategory {
        if let v = version {
            let age = ICU.age(cp)
            if age == 0 || age > v { return .unassigned }
            if v <= 800, let old = categoriesBefore900[cp] { return old }
        }
        return ICU.category(cp)
    }

    /// Characters whose general category changed after Unicode 8.0, with their 8.0 category (from
    /// Unicode's DerivedAge and the category history; pinned by the exhaustive code point test).
    static let categoriesBefore900: [UInt32: GeneralCategory] = [
        0x166D: .otherPunctuation,      // CANADIAN SYLLABICS CHI SIGN: Po in 8.0, So in 15.0
        0x1734: .nonSpacingMark,        // HANUNOO SIGN PAMUDPOD: Mn in 8.0, Mc in 15.0
        0x1885: .otherLetter,           // MONGOLIAN LETTER ALI GALI BALUDA: Lo in 8.0, Mn in 15.0
        0x1886: .otherLetter,           // MONGOLIAN LETTER ALI GALI THREE BALUDA: Lo in 8.0, Mn in 15.0
        0xA9BD: .combiningSpacingMark,  // JAVANESE CONSONANT SIGN KERET: Mc in 8.0, Mn in 15.0
        0x111C9: .otherPunctuation,     // SHARADA SANDHI MARK: Po in 8.0, Mn in 15.0
    ]

    /// Lowercase mappings new in Unicode 16.0, which Rust's standard library (and so HF) has and
    /// ICU 72 (Unicode 15.0) lacks. Ranges: first, last, offset to the lowercase letter.
    static let lowercaseAddedIn1600: [(first: UInt32, last: UInt32, offset: Int32)] = [
        (0x1C89, 0x1C89, 1),            // CYRILLIC CAPITAL LETTER TJE
        (0xA7CB, 0xA7CB, -42343),       // LATIN CAPITAL LETTER RAMS HORN -> U+0264
        (0xA7CC, 0xA7CC, 1), (0xA7CE, 0xA7CE, 1), (0xA7D2, 0xA7D2, 1), (0xA7D4, 0xA7D4, 1), (0xA7DA, 0xA7DA, 1),
        (0xA7DC, 0xA7DC, -42561),       // LATIN CAPITAL LETTER LAMBDA WITH STROKE -> U+019B
        (0x10D50, 0x10D65, 32),         // GARAY capital letters
        (0x16EA0, 0x16EB8, 27),         // BERIA ERFE capital letters
    ]

    static func hasLowercaseAddedIn1600(_ cp: UInt32) -> Bool {
        lowercaseAddedIn1600.contains { $0.first <= cp && cp <= $0.last }
    }

    /// Full lowercase of one code point: ICU's, plus the Unicode 16.0 additions when following HF.
    static func lowercase(_ cp: UInt32, options: BertNormalizerOptions) -> [UInt32] {
        if options.categoryUnicodeVersion != nil && ICU.age(cp) == 0 {
            for r in lowercaseAddedIn1600 where r.first <= cp && cp <= r.last {
                return [UInt32(Int32(cp) + r.offset)]
            }
        }
        return ICU.lowercase(cp)
    }

    /// Canonical decomposition. HF's normalization tables predate Unicode 13.0: characters assigned
    /// since (e.g. U+11938 DIVES AKURU VOWEL SIGN O) are not decomposed there.
    static func decompose(_ cp: UInt32, options: BertNormalizerOptions) -> [UInt32] {
        if options.categoryUnicodeVersion != nil && ICU.age(cp) >= 1300 { return [cp] }
        return ICU.nfd(cp)
    }

    /// HF `is_control`: "other" except \t, \n, \r. Measured against tokenizers 0.23.3 over every
    /// code point: Cc, Cf, Co and Cs are dropped, but unassigned code points (Cn) are kept, and the
    /// tables are Unicode 8.0's (a Cf character added later, e.g. U+0890, is kept).
    /// Google's `_is_control` is Cc and Cf (current Unicode) only.
    public static func isOther(_ cp: UInt32, version: Int?) -> Bool {
        if cp == 0x09 || cp == 0x0A || cp == 0x0D { return false }
        switch category(cp, version: version) {
        case .control, .format, .privateUse, .surrogate: return true
        default: return false
        }
    }

    /// HF `is_whitespace`: \t, \n, \r, or the White_Space property.
    public static func isBertWhitespace(_ cp: UInt32) -> Bool {
        cp == 0x09 || cp == 0x0A || cp == 0x0D || ICU.isWhiteSpace(cp)
    }

    /// BERT punctuation: any ASCII non-alphanumeric printable (so `$ + < = > ^ \` | ~`, which are
    /// symbols, count) or a Unicode P* category. Same in HF and Google.
    public static func isBertPunctuation(_ cp: UInt32, version: Int?) -> Bool {
        if (33...47).contains(cp) || (58...64).contains(cp) || (91...96).contains(cp) || (123...126).contains(cp) {
            return true
        }
        return category(cp, version: version).isPunctuation
    }

    /// Non-spacing mark (Mn), the category accent stripping removes.
    public static func isNonSpacingMark(_ cp: UInt32, version: Int?) -> Bool {
        category(cp, version: version) == .nonSpacingMark
    }

    /// CJK ideograph blocks as HF tokenizers defines them. google-research/bert has U+2B820–U+2CEAF
    /// for the fifth range; HF has U+2B920–U+2CEAF. Hangul, kana and CJK punctuation are not included.
    public static func isChineseChar(_ cp: UInt32) -> Bool {
        switch cp {
        case 0x4E00...0x9FFF, 0x3400...0x4DBF, 0x20000...0x2A6DF, 0x2A700...0x2B73F,
             0x2B740...0x2B81F, 0x2B920...0x2CEAF, 0xF900...0xFAFF, 0x2F800...0x2FA1F:
            return true
        default:
            return false
        }
    }
}
