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
                let old = carry.count
                carry.reserveCapacity(target)
                carry.append(contentsOf: repeatElement(0, count: target - old))
                let n = try readAppending(source, into: &carry, at: old)
                carry.removeSubrange((old + n)...)
                if n == 0 { eof = true }
            }
            if carry.isEmpty { return nil }
            if eof && carry.count <= target {
                return take(carry.count, endsMidLine: false)
            }
            if let nl = carry[..<min(carry.count, target)].lastIndex(of: UInt8(ascii: "\n")) {
                return take(nl + 1, endsMidLine: false)
            }
            // One line longer than the target.
            if wholeLines {
                if target >= maxLineBytes { throw .lineTooLong(path: source.name, line: line, limit: maxLineBytes) }
                target = min(target * 2, maxLineBytes)
                continue
            }
            let window = carry[..<target]
            if let ws = window.lastIndex(where: { $0 == 0x20 || $0 == 0x09 }) {
                return take(ws + 1, endsMidLine: true)
            }
            var cut = target
            while cut > 0 && carry[cut] & 0xC0 == 0x80 { cut -= 1 }
            return take(cut, endsMidLine: true)
        }
    }

    private func take(_ count: Int, endsMidLine: Bool) -> TextChunk {
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
