import TextNormalization

/// BERT's pre-tokenizer fused with its normalizer: one pass over raw UTF-8 that cleans, lowercases,
/// strips accents, isolates CJK ideographs and punctuation, splits on whitespace, and hands out
/// normalised words. Special tokens written literally in the text (`[MASK]`, `[CLS]`, …, exact case)
/// are recognised before normalisation, as Hugging Face does for its added special tokens;
/// google-research/bert's tokenizer has no such rule and splits them into `[`, `mask`, `]`.
///
/// Invalid UTF-8 decodes to U+FFFD (one per maximal invalid subsequence), which cleaning drops.
public struct BasicTokenizer: Sendable {
    /// The normalizer whose table drives the scan.
    public let normalizer: BertNormalizer
    /// Special tokens matched in raw text: bytes and id, longest first.
    public let specials: [(bytes: [UInt8], id: Int32)]
    /// ASCII fast path: action << 8 | output byte. Actions: 0 letter, 1 space, 2 punctuation, 3 drop.
    @usableFromInline let ascii: [UInt16]

    /// A pre-tokenizer over `normalizer` recognising `specials` (token text → id) in raw text.
    public init(normalizer: BertNormalizer, specials: [(String, Int32)] = []) {
        self.normalizer = normalizer
        self.specials = specials.map { (Array($0.0.utf8), $0.1) }.sorted { $0.bytes.count > $1.bytes.count }
        var ascii = [UInt16](repeating: 0, count: 128)
        for b in 0..<128 {
            let e = normalizer.entry(UInt32(b))!
            switch e.kind {
            case .removed: ascii[b] = 3 << 8
            case .whitespace: ascii[b] = 1 << 8
            case .identity: ascii[b] = (e.isPunctuation ? 2 << 8 : 0) | UInt16(b)
            case .mapped:
                let m = normalizer.withMapping(e) { Array($0) }
                precondition(m.count == 1 && m[0] < 128, "ASCII maps to one ASCII character")
                ascii[b] = (normalizer.isPunctuation(m[0]) ? 2 << 8 : 0) | UInt16(m[0])
            }
        }
        self.ascii = ascii
    }

    /// Reusable word buffer for `scan`; one per thread.
    public final class Scratch {
        @usableFromInline var buffer: UnsafeMutablePointer<UInt8>
        @usableFromInline var capacity: Int
        /// Invalid UTF-8 sequences seen so far.
        public var invalidSequences = 0

        public init(capacity: Int = 1024) {
            self.capacity = capacity
            buffer = .allocate(capacity: capacity)
        }
        deinit { buffer.deallocate() }

        @usableFromInline func grow(to needed: Int) {
            var c = capacity
            while c < needed { c *= 2 }
            let b = UnsafeMutablePointer<UInt8>.allocate(capacity: c)
            b.update(from: buffer, count: capacity)
            buffer.deallocate()
            buffer = b
            capacity = c
        }
    }

    /// Decodes one UTF-8 scalar at `i` (well-formed per Unicode Table 3-7). Returns the code point and
    /// its length, or U+FFFD and the length of the maximal invalid subpart.
    @inlinable @inline(__always)
    static func decode(_ p: UnsafeBufferPointer<UInt8>, _ i: Int) -> (UInt32, Int) {
        let n = p.count
        let b0 = p[i]
        @inline(__always) func cont(_ j: Int, _ lo: UInt8 = 0x80, _ hi: UInt8 = 0xBF) -> UInt32? {
            guard j < n else { return nil }
            let b = p[j]
            return (b >= lo && b <= hi) ? UInt32(b & 0x3F) : nil
        }
        switch b0 {
        case 0xC2...0xDF:
            guard let c1 = cont(i + 1) else { return (0xFFFD, 1) }
            return (UInt32(b0 & 0x1F) << 6 | c1, 2)
        case 0xE0...0xEF:
            let lo: UInt8 = b0 == 0xE0 ? 0xA0 : 0x80
            let hi: UInt8 = b0 == 0xED ? 0x9F : 0xBF
            guard let c1 = cont(i + 1, lo, hi) else { return (0xFFFD, 1) }
            guard let c2 = cont(i + 2) else { return (0xFFFD, 2) }
            return (UInt32(b0 & 0x0F) << 12 | c1 << 6 | c2, 3)
        case 0xF0...0xF4:
            let lo: UInt8 = b0 == 0xF0 ? 0x90 : 0x80
            let hi: UInt8 = b0 == 0xF4 ? 0x8F : 0xBF
            guard let c1 = cont(i + 1, lo, hi) else { return (0xFFFD, 1) }
            guard let c2 = cont(i + 2) else { return (0xFFFD, 2) }
            guard let c3 = cont(i + 3) else { return (0xFFFD, 3) }
            return (UInt32(b0 & 0x07) << 18 | c1 << 12 | c2 << 6 | c3, 4)
        default:
            return (0xFFFD, 1)
        }
    }

    @inlinable @inline(__always)
    static func encode(_ cp: UInt32, into p: UnsafeMutablePointer<UInt8>) -> Int {
        switch cp {
        case 0..<0x80:
            p[0] = UInt8(cp); return 1
        case 0x80..<0x800:
            p[0] = UInt8(0xC0 | cp >> 6); p[1] = UInt8(0x80 | cp & 0x3F); return 2
        case 0x800..<0x10000:
            p[0] = UInt8(0xE0 | cp >> 12); p[1] = UInt8(0x80 | (cp >> 6) & 0x3F); p[2] = UInt8(0x80 | cp & 0x3F); return 3
        default:
            p[0] = UInt8(0xF0 | cp >> 18); p[1] = UInt8(0x80 | (cp >> 12) & 0x3F)
            p[2] = UInt8(0x80 | (cp >> 6) & 0x3F); p[3] = UInt8(0x80 | cp & 0x3F); return 4
        }
    }

    /// Scans raw UTF-8 text. Calls `onWord(bytes, scalarCount)` for each normalised word and
    /// `onSpecial(id)` for each special token written in the text, in order.
    @inlinable
    public func scan(
        _ input: UnsafeBufferPointer<UInt8>, scratch: Scratch,
        onWord: (UnsafeBufferPointer<UInt8>, Int) -> Void, onSpecial: (Int32) -> Void
    ) {
        // Worst case a code point maps to 4 scalars of 4 bytes each; the word never outgrows
        // 16 bytes per input byte.
        let needed = input.count * 16 + 64
        if scratch.capacity < needed { scratch.grow(to: needed) }
        let buf = scratch.buffer
        var len = 0
        var chars = 0
        let n = input.count
        let hasSpecials = !specials.isEmpty

        @inline(__always) func flush() {
            if len > 0 { onWord(UnsafeBufferPointer(start: buf, count: len), chars) }
            len = 0
            chars = 0
        }
        @inline(__always) func single(_ cp: UInt32) {
            flush()
            len = Self.encode(cp, into: buf)
            chars = 1
            flush()
        }
        @inline(__always) func add(_ cp: UInt32) {
            if normalizer.isPunctuation(cp) { single(cp) }
            else if cp < 0x80 && ascii[Int(cp)] >> 8 == 1 { flush() }
            else { len += Self.encode(cp, into: buf + len); chars += 1 }
        }

        ascii.withUnsafeBufferPointer { table in
            var i = 0
            while i < n {
                let b = input[i]
                if b < 0x80 {
                    if b == 0x5B && hasSpecials, let (id, length) = matchSpecial(input, at: i) {
                        flush()
                        onSpecial(id)
                        i += length
                        continue
                    }
                    let a = table[Int(b)]
                    switch a >> 8 {
                    case 0: buf[len] = UInt8(truncatingIfNeeded: a); len += 1; chars += 1
                    case 1: flush()
                    case 2: single(UInt32(a & 0xFF))
                    default: break
                    }
                    i += 1
                    continue
                }
                let (cp, l) = Self.decode(input, i)
                if cp == 0xFFFD && (l != 3 || input[i] != 0xEF) { scratch.invalidSequences += 1 }
                i += l
                if let e = normalizer.entry(cp) {
                    switch e.kind {
                    case .removed: continue
                    case .whitespace: flush()
                    case .identity:
                        if e.isChinese { single(cp) }
                        else if e.isPunctuation { single(cp) }
                        else { len += Self.encode(cp, into: buf + len); chars += 1 }
                    case .mapped:
                        if e.isChinese { flush() }
                        normalizer.withMapping(e) { m in for c in m { add(c) } }
                        if e.isChinese { flush() }
                    }
                } else {
                    let c = BertNormalizer.classify(cp, options: normalizer.options)
                    switch c.kind {
                    case .removed: continue
                    case .whitespace: flush()
                    case .identity, .mapped:
                        if c.isChinese { flush() }
                        for m in (c.kind == .identity ? [cp] : c.mapping) { add(m) }
                        if c.isChinese { flush() }
                    }
                }
            }
            flush()
        }
    }

    @inlinable
    func matchSpecial(_ input: UnsafeBufferPointer<UInt8>, at i: Int) -> (Int32, Int)? {
        for s in specials where i + s.bytes.count <= input.count {
            var ok = true
            for (k, b) in s.bytes.enumerated() where input[i + k] != b { ok = false; break }
            if ok { return (s.id, s.bytes.count) }
        }
        return nil
    }

    /// The words of a text (normalised), special tokens included as written. Convenience for tests
    /// and tools; the hot path is `scan`.
    public func split(_ text: String) -> [String] {
        var words: [String] = []
        var t = text
        let scratch = Scratch()
        t.withUTF8 { p in
            scan(p, scratch: scratch, onWord: { w, _ in words.append(String(decoding: w, as: UTF8.self)) },
                 onSpecial: { id in words.append(specials.first { $0.id == id }.map { String(decoding: $0.bytes, as: UTF8.self) } ?? "") })
        }
        return words
    }
}
