/// A piece of input text handed to a worker: whole lines, or part of one very long line.
public struct TextChunk: Sendable {
    /// The bytes, with the terminating `\n` of each complete line. // (count,)
    public var bytes: [UInt8]
    /// The first byte continues a line begun in the previous chunk.
    public var startsMidLine: Bool
    /// The last line is not finished in this chunk (it goes on in the next one).
    public var endsMidLine: Bool
    /// One-based number of the first line that starts or continues in this chunk.
    public var firstLine: Int
    /// The text came from JSONL objects (free text: sentences are found with ICU).
    public var fromJSONL = false

    public init(bytes: [UInt8], startsMidLine: Bool, endsMidLine: Bool, firstLine: Int, fromJSONL: Bool = false) {
        self.bytes = bytes
        self.startsMidLine = startsMidLine
        self.endsMidLine = endsMidLine
        self.firstLine = firstLine
        self.fromJSONL = fromJSONL
    }
}

/// Cuts a byte stream into chunks of about `chunkSize` bytes at line ends, so workers can process
/// chunks in parallel and the results be joined in order. Memory stays bounded whatever the input.
///
/// A line longer than a chunk is cut where the cut changes no token:
/// 1. after the last ASCII whitespace byte of the window (no word is split);
/// 2. else after the last ASCII punctuation byte other than `[` (BERT splits every punctuation
///    character into a word of its own; `[` is left alone so that `[MASK]` and the like stay whole);
/// 3. else, when the window is one run of ASCII letters and digits and at least `longWordWindow` bytes
///    long, that run is a single word of at least that many characters, far over WordPiece's
///    100-character limit, so it is `[UNK]` whatever follows: the window is handed out as it is and
///    the rest of the run is skipped, without being held in memory (a run that goes on in non-ASCII
///    letters becomes a second word there: the one inexact case, for words of over `longWordWindow`);
/// 4. else (no break at all in a window of non-ASCII text) at the last UTF-8 character boundary.
/// With `wholeLines`, long lines are not cut; a line over `maxLineBytes` is an error instead.
public final class LineChunker {
    let source: ByteSource
    let chunkSize: Int
    let wholeLines: Bool
    let maxLineBytes: Int
    var carry: [UInt8] = []
    var eof = false
    var line = 1
    var midLine = false
    var checkedBinary = false
    var readBuffer = [UInt8](repeating: 0, count: 1 << 18)
    /// The previous chunk ended inside an over-long run of ASCII letters and digits (rule 3 above):
    /// the rest of that run is dropped before the next chunk.
    var skippingWord = false
    /// Bytes dropped by rule 3 (for tests and statistics).
    public private(set) var skippedBytes = 0
    /// Refuse input whose first 64 KiB look binary (see `binaryEvidence`).
    public var rejectBinary = true

    public init(source: ByteSource, chunkSize: Int = 1 << 22, wholeLines: Bool = false, maxLineBytes: Int = 1 << 26) {
        self.source = source
        self.chunkSize = max(chunkSize, 64)
        self.wholeLines = wholeLines
        self.maxLineBytes = maxLineBytes
    }

    /// The next chunk, or nil at the end.
    public func next() throws(InputError) -> TextChunk? {
        var target = chunkSize
        while skippingWord {
            let run = carry.prefix { Self.isWordByte($0) }.count
            carry.removeFirst(run)
            skippedBytes += run
            if !carry.isEmpty || eof { skippingWord = false } else { try fill(upTo: min(chunkSize, readBuffer.count)) }
        }
        while true {
            try fill(upTo: target)
            // The input ended inside a skipped word: an empty chunk closes the line.
            if carry.isEmpty { return midLine ? try take(0, endsMidLine: false) : nil }
            if eof && carry.count <= target {
                return try take(carry.count, endsMidLine: false)
            }
            if let nl = carry[..<min(carry.count, target)].lastIndex(of: UInt8(ascii: "\n")) {
                return try take(nl + 1, endsMidLine: false)
            }
            // One line longer than the target.
            if wholeLines {
                if target >= maxLineBytes { throw .lineTooLong(path: source.name, line: line, limit: maxLineBytes) }
                target = min(target * 2, maxLineBytes)
                continue
            }
            // Here carry.count >= target: the window is carry[0..<target].
            let window = carry[..<target]
            if let ws = window.lastIndex(where: Self.isASCIIWhitespace) {
                return try take(ws + 1, endsMidLine: true)
            }
            if let p = window.lastIndex(where: { Self.isASCIIPunctuation($0) && $0 != UInt8(ascii: "[") }) {
                return try take(p + 1, endsMidLine: true)
            }
            if target >= Self.longWordWindow && window.allSatisfy(Self.isWordByte) {
                skippingWord = true
                return try take(target, endsMidLine: true)
            }
            // The start of the window's last character: that character goes to the next chunk.
            var cut = target - 1
            while cut > 0 && carry[cut] & 0xC0 == 0x80 { cut -= 1 }
            return try take(cut > 0 ? cut : target, endsMidLine: true)
        }
    }

    /// Reads until `carry` holds `count` bytes or the input ends.
    private func fill(upTo count: Int) throws(InputError) {
        while carry.count < count && !eof {
            let want = min(count - carry.count, readBuffer.count)
            let n = try readBuffer.withUnsafeMutableBytes { b in
                Result { () throws(InputError) -> Int in
                    try source.read(into: UnsafeMutableRawBufferPointer(rebasing: b[0..<want]))
                }
            }.get()
            if n == 0 { eof = true } else { carry.append(contentsOf: readBuffer[0..<n]) }
        }
    }

    /// The shortest window that rule 3 applies to: ten times the longest word WordPiece keeps (100
    /// characters in Hugging Face, 200 in google-research/bert).
    public static let longWordWindow = 2048

    /// ASCII bytes that BERT's pre-tokenizer treats as whitespace (Unicode White_Space in ASCII).
    @inline(__always) static func isASCIIWhitespace(_ b: UInt8) -> Bool { b == 0x20 || (b >= 0x09 && b <= 0x0D) }
    /// ASCII punctuation as BERT defines it (`_is_punctuation`: 33–47, 58–64, 91–96, 123–126).
    @inline(__always) static func isASCIIPunctuation(_ b: UInt8) -> Bool {
        (b >= 33 && b <= 47) || (b >= 58 && b <= 64) || (b >= 91 && b <= 96) || (b >= 123 && b <= 126)
    }
    /// ASCII letters and digits: bytes that always continue a word.
    @inline(__always) static func isWordByte(_ b: UInt8) -> Bool {
        (b >= 0x30 && b <= 0x39) || (b >= 0x41 && b <= 0x5A) || (b >= 0x61 && b <= 0x7A)
    }

    private func take(_ count: Int, endsMidLine: Bool) throws(InputError) -> TextChunk {
        if rejectBinary && !checkedBinary {
            checkedBinary = true
            if let offset = binaryEvidence(carry[0..<min(carry.count, 1 << 16)]) {
                throw .notText(path: source.name, offset: offset)
            }
        }
        let bytes = Array(carry[0..<count])
        carry.removeSubrange(0..<count)
        let chunk = TextChunk(bytes: bytes, startsMidLine: midLine, endsMidLine: endsMidLine, firstLine: line)
        var newlines = 0
        for b in bytes where b == UInt8(ascii: "\n") { newlines += 1 }
        line += newlines
        midLine = endsMidLine
        return chunk
    }
}

/// Where a byte sample stops looking like text: more than 1% NUL bytes, or more than 10% of it in
/// invalid UTF-8. A few NULs or stray bytes in real text are cleaned later; a binary file is refused.
/// Returns the offset of the first offending byte, or nil for text.
public func binaryEvidence<C: Collection>(_ sample: C) -> Int? where C.Element == UInt8, C.Index == Int {
    guard !sample.isEmpty else { return nil }
    var nuls = 0, firstNul = -1
    for (i, b) in zip(sample.indices, sample) where b == 0 {
        nuls += 1
        if firstNul < 0 { firstNul = i - sample.startIndex }
    }
    if nuls >= 16 && nuls * 100 > sample.count { return firstNul }
    var invalid = 0, firstInvalid = -1
    var i = sample.startIndex
    let end = sample.endIndex
    while i < end {
        let b = sample[i]
        var need = 0
        if b < 0x80 { i += 1; continue }
        else if b >= 0xC2 && b <= 0xDF { need = 1 }
        else if b >= 0xE0 && b <= 0xEF { need = 2 }
        else if b >= 0xF0 && b <= 0xF4 { need = 3 }
        else { need = -1 }
        var ok = need > 0
        if ok {
            for k in 1...need where i + k >= end || sample[i + k] & 0xC0 != 0x80 {
                ok = i + k >= end  // a sequence cut by the end of the sample is not evidence
                break
            }
        }
        if !ok {
            invalid += 1
            if firstInvalid < 0 { firstInvalid = i - sample.startIndex }
            i += 1
        } else {
            i += need + 1
        }
    }
    return invalid >= 16 && invalid * 10 > sample.count ? firstInvalid : nil
}
