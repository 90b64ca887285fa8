import Foundation

/// Errors reading or validating a vocabulary. Each names the file (and line where there is one).
public enum VocabularyError: Error, Equatable, CustomStringConvertible {
    case unreadable(path: String, reason: String)
    case empty(path: String)
    case invalidUTF8(path: String, line: Int)
    case duplicate(path: String, token: String, line: Int, firstLine: Int)
    case missingSpecialToken(path: String, token: String)
    case tooLarge(path: String, count: Int)

    public var description: String {
        switch self {
        case let .unreadable(path, reason):
            return "\(path): cannot read the vocabulary (\(reason)); pass an existing vocab.txt"
        case let .empty(path):
            return "\(path): the vocabulary is empty; it needs one token per line, [PAD] [UNK] [CLS] [SEP] [MASK] among them"
        case let .invalidUTF8(path, line):
            return "\(path):\(line): the token is not valid UTF-8; a vocab.txt is UTF-8 text"
        case let .duplicate(path, token, line, firstLine):
            return "\(path):\(line): token \"\(token)\" repeats line \(firstLine); every token must be unique (ids are line numbers)"
        case let .missingSpecialToken(path, token):
            return "\(path): the vocabulary has no \(token) token; add it (BERT vocabularies need [UNK], [CLS], [SEP], [PAD] and [MASK])"
        case let .tooLarge(path, count):
            return "\(path): \(count) tokens is more than the 2^31 ids supported"
        }
    }
}

/// A WordPiece vocabulary: one token per line of vocab.txt, id = zero-based line number.
/// Continuation pieces start with `##`. Lines are read as Hugging Face does: split on `\n`, trailing
/// whitespace (including `\r`) trimmed.
public struct Vocabulary: Sendable, Equatable {
    /// The special tokens BERT uses, in the order a trained vocabulary puts them (ids 0–4).
    public static let specialTokens = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]

    /// Tokens by id.
    public let tokens: [String]
    /// Ids by token.
    public let ids: [String: Int32]
    /// Ids of the special tokens.
    public let padId, unkId, clsId, sepId, maskId: Int32

    /// Builds a vocabulary from tokens in id order. `source` names the origin in errors.
    public init(tokens: [String], source: String = "<memory>") throws(VocabularyError) {
        guard !tokens.isEmpty else { throw .empty(path: source) }
        guard tokens.count < Int(Int32.max) else { throw .tooLarge(path: source, count: tokens.count) }
        var ids: [String: Int32] = [:]
        ids.reserveCapacity(tokens.count)
        for (i, t) in tokens.enumerated() {
            if let first = ids[t] {
                throw .duplicate(path: source, token: t, line: i + 1, firstLine: Int(first) + 1)
            }
            ids[t] = Int32(i)
        }
        func special(_ t: String) throws(VocabularyError) -> Int32 {
            guard let id = ids[t] else { throw .missingSpecialToken(path: source, token: t) }
            return id
        }
        self.tokens = tokens
        self.ids = ids
        unkId = try special("[UNK]")
        clsId = try special("[CLS]")
        sepId = try special("[SEP]")
        padId = try special("[PAD]")
        maskId = try special("[MASK]")
    }

    /// Reads vocab.txt.
    public static func load(path: String) throws(VocabularyError) -> Vocabulary {
        let data: Data
        do { data = try Data(contentsOf: URL(fileURLWithPath: path)) } catch {
            throw .unreadable(path: path, reason: FileManager.default.fileExists(atPath: path) ? "\(error.localizedDescription)" : "no such file")
        }
        return try parse(data, source: path)
    }

    /// Parses vocab.txt bytes.
    public static func parse(_ data: Data, source: String) throws(VocabularyError) -> Vocabulary {
        // Bytes, not Data slices: a 30k-line vocabulary is read in a few milliseconds.
        let parsed: Result<[String], VocabularyError> = data.withUnsafeBytes { raw in
            let bytes = raw.bindMemory(to: UInt8.self)
            var tokens: [String] = []
            tokens.reserveCapacity(bytes.count / 8)
            var start = 0
            var line = 0
            while start < bytes.count {
                var end = start
                while end < bytes.count && bytes[end] != UInt8(ascii: "\n") { end += 1 }
                line += 1
                guard let s = String(validating: UnsafeBufferPointer(rebasing: bytes[start..<end]), as: UTF8.self) else {
                    return .failure(.invalidUTF8(path: source, line: line))
                }
                // Trailing white space (a "\r" of CRLF files, stray spaces) is not part of the token.
                if let last = s.unicodeScalars.last, last.properties.isWhitespace {
                    var t = Substring(s)
                    while let last = t.unicodeScalars.last, last.properties.isWhitespace { t = t.dropLast() }
                    tokens.append(String(t))
                } else {
                    tokens.append(s)
                }
                start = end + 1
            }
            return .success(tokens)
        }
        return try Vocabulary(tokens: try parsed.get(), source: source)
    }

    /// vocab.txt bytes: one token per line.
    public var fileContents: Data {
        var d = Data()
        for t in tokens { d.append(contentsOf: Array(t.utf8)); d.append(UInt8(ascii: "\n")) }
        return d
    }

    /// Number of tokens.
    public var count: Int { tokens.count }

    /// The id of a token, or nil.
    public subscript(token: String) -> Int32? { ids[token] }
}
