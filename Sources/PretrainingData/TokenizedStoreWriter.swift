import Support
import Dispatch
import Foundation
import TextNormalization
import WordPiece

// Building a tokenized store: each chunk of text tokenized into sentences and document breaks, in
// parallel, then appended in order to the store's files (`TokenizedStore.build` drives it).

/// How sentences are found in text files.
public enum SentenceSplit: String, Codable, Sendable, CaseIterable {
    /// One sentence per line (google-research/bert's input format); blank lines separate documents.
    case lines
    /// Free text: blank lines separate documents; ICU's sentence break iterator finds sentences.
    case icu
}

/// Tokens of one chunk: sentences as lengths, document breaks as `UInt32.max`.
struct ChunkTokens {
    var tokens: [UInt32] = []
    var events: [UInt32] = []
}

/// Tokenizes one chunk into sentences and document breaks.
func tokenizeChunk(_ chunk: TextChunk, tokenizer: BertTokenizer, split: SentenceSplit,
                   scratch: BertTokenizer.Scratch, splitter: SentenceSplitter?) -> ChunkTokens {
    var out = ChunkTokens()
    out.tokens.reserveCapacity(chunk.bytes.count / 3)
    var ids: [Int32] = []
    func sentence(_ p: UnsafeBufferPointer<UInt8>) {
        ids.removeAll(keepingCapacity: true)
        tokenizer.encode(utf8: p, into: &ids, scratch: scratch)
        if ids.isEmpty { return }
        for id in ids { out.tokens.append(UInt32(bitPattern: id)) }
        out.events.append(UInt32(ids.count))
    }
    chunk.bytes.withUnsafeBufferPointer { all in
        var paragraph: [UInt8] = []
        func flushParagraph() {
            guard !paragraph.isEmpty else { return }
            paragraph.withUnsafeBufferPointer { p in
                if let splitter {
                    var start = 0
                    for end in splitter.boundaries(p) {
                        sentence(UnsafeBufferPointer(rebasing: p[start..<Int(end)]))
                        start = Int(end)
                    }
                } else {
                    sentence(p)
                }
            }
            paragraph.removeAll(keepingCapacity: true)
        }
        var start = 0
        while start < all.count {
            let end = all[start...].firstIndex(of: 0x0A) ?? all.count
            let line = UnsafeBufferPointer(rebasing: all[start..<end])
            let blank = line.allSatisfy { $0 == 0x20 || $0 == 0x09 || $0 == 0x0D }
            if blank {
                if split == .icu { flushParagraph() }
                out.events.append(.max)
            } else if split == .lines {
                sentence(line)
            } else {
                if !paragraph.isEmpty { paragraph.append(0x20) }
                paragraph.append(contentsOf: line)
            }
            start = end + 1
        }
        if split == .icu { flushParagraph() }
    }
    return out
}

/// Appends chunk results to the store's files.
final class StoreWriter {
    let directory: String
    let tokens: FileDescriptorWriter, sentences: FileDescriptorWriter, documents: FileDescriptorWriter
    let fds: [Int32]
    var tokenCount = 0, sentenceCount = 0, documentCount = 0, sentencesInDocument = 0
    /// Running sha256 of each file, in `TokenizedStore.dataFiles` order.
    var hashes = [SHA256(), SHA256(), SHA256()]

    init(directory: String) throws {
        self.directory = directory
        var fds: [Int32] = []
        func make(_ name: String) throws -> FileDescriptorWriter {
            let path = directory + "/" + name + ".tmp"
            let fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0o644)
            guard fd >= 0 else { throw OutputError.writeFailed(path: path, reason: String(cString: strerror(errno))) }
            fds.append(fd)
            return FileDescriptorWriter(fd: fd, name: path)
        }
        tokens = try make("tokens.u32")
        sentences = try make("sentences.u64")
        documents = try make("documents.u64")
        self.fds = fds
    }

    func append(_ c: ChunkTokens) throws {
        try c.tokens.withUnsafeBytes { try tokens.write($0); hashes[0].update($0) }
        var sentenceEnds: [UInt64] = [], documentEnds: [UInt64] = []
        var offset = tokenCount
        for e in c.events {
            if e == .max {
                if sentencesInDocument > 0 {
                    documentEnds.append(UInt64(sentenceCount + sentenceEnds.count))
                    sentencesInDocument = 0
                }
            } else {
                offset += Int(e)
                sentenceEnds.append(UInt64(offset))
                sentencesInDocument += 1
            }
        }
        tokenCount = offset
        sentenceCount += sentenceEnds.count
        documentCount += documentEnds.count
        try sentenceEnds.withUnsafeBytes { try sentences.write($0); hashes[1].update($0) }
        try documentEnds.withUnsafeBytes { try documents.write($0); hashes[2].update($0) }
    }

    func finish() throws -> (tokens: Int, sentences: Int, documents: Int, sha256: [String: String]) {
        if sentencesInDocument > 0 {
            try [UInt64(sentenceCount)].withUnsafeBytes { try documents.write($0); hashes[2].update($0) }
            documentCount += 1
            sentencesInDocument = 0
        }
        for fd in fds { fsync(fd); close(fd) }
        for name in ["tokens.u32", "sentences.u64", "documents.u64"] {
            let p = directory + "/" + name
            guard rename(p + ".tmp", p) == 0 else { throw OutputError.writeFailed(path: p, reason: String(cString: strerror(errno))) }
        }
        var digests: [String: String] = [:]
        for (name, i) in zip(TokenizedStore.dataFiles, hashes.indices) { digests[name] = SHA256.hex(hashes[i].finalize()) }
        return (tokenCount, sentenceCount, documentCount, digests)
    }
}
