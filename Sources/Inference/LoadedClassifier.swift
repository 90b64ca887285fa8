import BertModel
import Checkpoints
import Foundation
import ClassificationData
import PretrainingData
import Support
import TextNormalization
import WordPiece

/// How a classifier's inputs are tokenized: the length and casing it was fine-tuned with (recorded in
/// its tokenizer_config.json), unless overridden.
public struct ClassifierInputs: Equatable, Sendable {
    /// Tokens per example, `[CLS]`/`[SEP]` included.
    public var maxSeqLength: Int
    /// Whether text is lowercased.
    public var lowercase: Bool
    /// Where each came from, for the command's first line, e.g. "max_seq_length 64 (recorded in
    /// DIR/tokenizer_config.json), uncased (recorded)".
    public var summary: String

    /// The length used where a directory records none (the fine-tuning default).
    public static let fallbackLength = 128

    /// `maxSeqLength` and `cased` (nil: not given) override what `recorded` says; where neither says,
    /// 128 (capped at the model's `positions`) and uncased, as before lengths were recorded. `file` names
    /// the tokenizer_config.json for messages. A length over `positions` is refused.
    public static func resolve(recorded: TokenizerConfig?, file: String, maxSeqLength: Int?, cased: Bool?,
                               positions: Int) throws -> ClassifierInputs {
        let length: Int, lengthSource: String
        if let given = maxSeqLength {
            (length, lengthSource) = (given, "--max-seq-length")
        } else if let r = recorded?.modelMaxLength {
            (length, lengthSource) = (r, "recorded in \(file)")
        } else {
            (length, lengthSource) = (min(fallbackLength, positions), "\(file) records none; the default, give --max-seq-length to change it")
        }
        guard length >= 3 else { throw InferenceError.invalidSetting(name: "--max-seq-length", reason: "\(length) is less than 3 ([CLS], a token, [SEP])") }
        guard length <= positions else {
            throw InferenceError.invalidSetting(name: "--max-seq-length", reason: "\(length) (\(lengthSource)) is more than the model's max_position_embeddings \(positions)")
        }
        let lowercase: Bool, caseSource: String
        if let cased {
            (lowercase, caseSource) = (!cased, cased ? "--cased" : "--no-cased")
        } else if let r = recorded?.doLowerCase {
            (lowercase, caseSource) = (r, "recorded")
        } else {
            (lowercase, caseSource) = (true, "the default: none recorded")
        }
        return ClassifierInputs(maxSeqLength: length, lowercase: lowercase,
                                summary: "max_seq_length \(length) (\(lengthSource)), \(lowercase ? "uncased" : "cased") (\(caseSource))")
    }
}

/// A fine-tuned classifier loaded from its directory, with its label names and its tokenizer.
public struct LoadedClassifier {
    public let model: BertForSequenceClassification
    /// Label names by id (config.json's id2label; `LABEL_k` where one is missing).
    public let labels: [String]
    /// The length and casing of its inputs (see `ClassifierInputs.resolve`).
    public let inputs: ClassifierInputs
    /// The tokenizer of its vocabulary (or `vocabulary`) and casing.
    public let tokenizer: BertTokenizer

    /// Loads a classifier directory (config.json with id2label, model.safetensors, vocab.txt,
    /// tokenizer_config.json when present) for batches of at most `maxBatch` examples of the recorded
    /// length, or `maxSeqLength` where given; `cased` overrides the recorded casing, `vocabulary` the
    /// directory's vocab.txt.
    public init(directory: String, vocabulary: String? = nil, maxSeqLength: Int?, cased: Bool?, maxBatch: Int, threads: Int,
                precision: ModelPrecision = .fp32) throws {
        let source = try PretrainedSource(directory: directory, vocabulary: vocabulary)
        guard let id2label = source.config.id2label, !id2label.isEmpty else { throw InferenceError.notAClassifier(directory: directory) }
        labels = (0..<id2label.count).map { id2label[String($0)] ?? "LABEL_\($0)" }
        inputs = try ClassifierInputs.resolve(recorded: source.tokenizerConfig,
                                              file: (directory as NSString).appendingPathComponent(TokenizerConfig.fileName),
                                              maxSeqLength: maxSeqLength, cased: cased, positions: source.config.maxPositionEmbeddings)
        var options = BertNormalizerOptions()
        options.lowercase = inputs.lowercase
        let words = try Vocabulary.load(path: source.vocabularyPath)
        guard words.count == source.config.vocabSize else {
            throw CheckpointError.badCheckpoint(path: source.vocabularyPath,
                                              reason: "\(words.count) tokens, but config.json has vocab_size \(source.config.vocabSize)")
        }
        tokenizer = BertTokenizer(vocabulary: words, options: options)
        model = try BertForSequenceClassification(config: source.config, numLabels: labels.count, maxBatch: maxBatch,
                                                  maxSeqLength: inputs.maxSeqLength, threads: threads)
        try Checkpoint.loadParameters(from: source.weights!, layout: model.layout, into: model.parameters)  // a directory always has weights
        model.precision = precision
    }
}
