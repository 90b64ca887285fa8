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
}

/// Cuts a byte stream into chunks of about `chunkSize` bytes at line ends, so workers can process
/// chunks in parallel and the results be joined in order. Memory stays bounded whatever the input:
/// a line longer than a chunk is cut after an ASCII space or tab (so no word is split), or failing
/// that at a UTF-8 boundary (a word of over `chunkSize` bytes, far past any word-length limit).
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
        while true {
            // Fill up to the target.
            while carry.count < target && !eof {
                let want = min(target - carry.count, readBuffer.count)
                let n = try readBuffer.withUnsafeMutableBytes { b in
                    Result { () throws(InputError) -> Int in
                        try source.read(into: UnsafeMutableRawBufferPointer(rebasing: b[0..<want]))
                    }
                }.get()
                if n == 0 { eof = true } else { carry.append(contentsOf: readBuffer[0..<n]) }
            }
            if carry.isEmpty { return nil }
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
            let window = carry[..<target]
            if let ws = window.lastIndex(where: { $0 == 0x20 || $0 == 0x09 }) {
                return try take(ws + 1, endsMidLine: true)
            }
            var cut = target
            while cut > 0 && carry[cut] & 0xC0 == 0x80 { cut -= 1 }
            return try take(cut, endsMidLine: true)
        }
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
