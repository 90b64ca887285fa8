import BertModel
import Foundation
import PretrainingData
import Support
import WordPiece

/// What a pre-training run reads: a shard directory and the vocab.txt it was built with (checked against
/// the index's hash), and from them the model config the run trains.
public struct PretrainingInputs {
    /// The shard set.
    public let shards: ShardSet
    /// The shard directory's vocab.txt, as bytes (the checkpoint stores it as it is).
    public let vocabularyData: Data
    /// The same vocabulary, parsed.
    public let vocabulary: Vocabulary
    /// Where `vocabularyData` came from.
    public let vocabularyPath: String

    /// Opens the shards in `directory` and their vocab.txt; throws when the vocabulary is missing or is
    /// not the one the shards were built with.
    public init(shardDirectory directory: String) throws {
        shards = try ShardSet(directory: directory)
        vocabularyPath = (directory as NSString).appendingPathComponent("vocab.txt")
        guard let data = FileManager.default.contents(atPath: vocabularyPath) else {
            throw TrainingError.invalidSetting(name: vocabularyPath, reason: "missing; the shard directory must hold the vocab.txt it was built with")
        }
        try shards.index.requireVocabulary(sha256: SHA256.hex(SHA256.hash(Array(data))), reportingPath: vocabularyPath)
        vocabularyData = data
        vocabulary = try Vocabulary.parse(data, source: vocabularyPath)
    }

    /// The model config of a run on these shards: `configFile`'s (a Hugging Face config.json, whose
    /// vocab_size must match the vocabulary) or else the preset `preset` sized to the vocabulary.
    /// `dropout`, when given, sets both dropout probabilities; the pad id is the vocabulary's, and the
    /// position table is at least the shards' sequence length. The result is validated.
    public func modelConfig(configFile: String?, preset: String, dropout: Double?) throws -> BertConfig {
        var config: BertConfig
        if let configFile {
            config = try BertConfig.load(path: configFile)
            guard config.vocabSize == vocabulary.count else {
                throw TrainingError.invalidSetting(
                    name: configFile, reason: "vocab_size \(config.vocabSize) but \(vocabularyPath) has \(vocabulary.count) tokens; they must match")
            }
        } else {
            config = try BertConfig.preset(preset, vocabSize: vocabulary.count)
        }
        if let dropout { config.hiddenDropoutProb = dropout; config.attentionProbsDropoutProb = dropout }
        config.padTokenId = Int(vocabulary.padId)
        config.maxPositionEmbeddings = max(config.maxPositionEmbeddings, shards.index.parameters.maxSeqLength)
        try config.validate(path: configFile ?? "--model \(preset)")
        return config
    }

    /// The masker the loader uses for dynamically masked shards (nil for static ones).
    public var masker: Masker? { Masker.forLoading(vocabulary: vocabulary, parameters: shards.index.parameters) }
}
