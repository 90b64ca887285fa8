import Foundation

/// The tokenizer settings a model directory records beside its vocabulary, in Hugging Face's
/// `tokenizer_config.json`: the casing (`do_lower_case`) and the length the model was trained with
/// (`model_max_length`). transformers' `AutoTokenizer.from_pretrained` reads the same keys, and its
/// pipelines truncate at `model_max_length`.
public struct TokenizerConfig: Equatable, Sendable {
    /// The file's name inside a model directory.
    public static let fileName = "tokenizer_config.json"

    /// Whether text is lowercased (and accents stripped), as BERT's uncased models do; nil when the
    /// file does not say.
    public var doLowerCase: Bool?
    /// Tokens per example, `[CLS]`/`[SEP]` included, that the model was trained with; nil when the
    /// file does not say, or says transformers' "no limit" (a value of 10^12 or more).
    public var modelMaxLength: Int?

    public init(doLowerCase: Bool?, modelMaxLength: Int?) {
        self.doLowerCase = doLowerCase
        self.modelMaxLength = modelMaxLength
    }

    /// Errors reading a tokenizer_config.json; each names the file and the field.
    public enum Error: Swift.Error, Equatable, CustomStringConvertible {
        case unreadable(path: String, reason: String)
        case badField(path: String, field: String, reason: String)

        public var description: String {
            switch self {
            case let .unreadable(path, reason): return "\(path): \(reason); fix the file or remove it"
            case let .badField(path, field, reason): return "\(path): \(field) \(reason); fix the field or remove it"
            }
        }
    }

    /// Reads `DIRECTORY/tokenizer_config.json`; nil when the directory has none. Keys other than the two
    /// above are ignored (transformers writes many).
    public static func load(directory: String) throws(Error) -> TokenizerConfig? {
        let path = (directory as NSString).appendingPathComponent(fileName)
        guard FileManager.default.fileExists(atPath: path) else { return nil }
        guard let data = FileManager.default.contents(atPath: path) else { throw .unreadable(path: path, reason: "cannot read") }
        return try parse(data, path: path)
    }

    /// Parses the JSON of a tokenizer_config.json; `path` is for messages.
    public static func parse(_ data: Data, path: String) throws(Error) -> TokenizerConfig {
        let object: [String: Any]
        do {
            guard let o = try JSONSerialization.jsonObject(with: data) as? [String: Any] else {
                throw Error.unreadable(path: path, reason: "not a JSON object")
            }
            object = o
        } catch let e as Error {
            throw e
        } catch {
            throw .unreadable(path: path, reason: "not JSON (\(error.localizedDescription))")
        }
        var config = TokenizerConfig(doLowerCase: nil, modelMaxLength: nil)
        switch object["do_lower_case"] {
        case nil, is NSNull: break
        case let n as NSNumber: config.doLowerCase = n.boolValue  // true/false (0/1 also read as such)
        default: throw .badField(path: path, field: "do_lower_case", reason: "is not true or false")
        }
        switch object["model_max_length"] {
        case nil, is NSNull: break
        case let n as NSNumber:
            let v = n.doubleValue
            guard v.isFinite, v >= 1, v == v.rounded() else {
                throw .badField(path: path, field: "model_max_length", reason: "\(n) is not a positive whole number")
            }
            config.modelMaxLength = v < 1e12 ? Int(v) : nil  // transformers' VERY_LARGE_INTEGER means "none"
        default: throw .badField(path: path, field: "model_max_length", reason: "is not a number")
        }
        return config
    }

    /// The JSON that records these settings for BERT's WordPiece tokenizer, as transformers'
    /// `BertTokenizer.save_pretrained` writes it (sorted keys): the special tokens, the casing (accents
    /// stripped with lowercasing, kept without), Chinese characters split, and the length.
    public func encoded() -> Data {
        var object: [String: Any] = [
            "tokenizer_class": "BertTokenizer",
            "cls_token": "[CLS]", "sep_token": "[SEP]", "pad_token": "[PAD]", "mask_token": "[MASK]", "unk_token": "[UNK]",
            "tokenize_chinese_chars": true,
            "clean_up_tokenization_spaces": false,
        ]
        if let doLowerCase {
            object["do_lower_case"] = doLowerCase
            object["strip_accents"] = doLowerCase ? NSNull() : false
        }
        if let modelMaxLength { object["model_max_length"] = modelMaxLength }
        // Serialising a dictionary of plain JSON values cannot fail.
        let data = try! JSONSerialization.data(withJSONObject: object, options: [.sortedKeys, .prettyPrinted])
        return data + Data([0x0A])
    }
}
