import BertModel
import Foundation
import Support
import WordPiece

/// Where the initial weights come from: a BertKit pre-training checkpoint or any Hugging Face BERT
/// directory (config.json + model.safetensors [+ vocab.txt]), with or without the `bert.` prefix,
/// with or without pre-training heads (ignored) or a classifier (replaced).
public struct PretrainedSource {
    /// Where the config (and weights) came from: a checkpoint directory, or a description.
    public var directory: String
    public var config: BertConfig
    /// The encoder's weights; nil for a randomly initialised encoder (the from-scratch baseline).
    public var weights: SafetensorsFile?
    public var vocabularyPath: String
    /// The directory's tokenizer_config.json (casing, trained length), nil where it has none.
    public var tokenizerConfig: TokenizerConfig?
    /// For a randomly initialised encoder (`weights` nil): start the position embeddings as sinusoids
    /// (`BertShellModel.initializePositionsSinusoidally`) rather than normal draws, as a pre-training
    /// run with `--sinusoidal-positions` started, so that the baseline differs from it by pre-training
    /// alone. Ignored when there are weights.
    public var sinusoidalPositions = false

    /// No pre-trained weights: an encoder of `config` with Hugging Face's initialisation (normal(0,
    /// initializer_range), seeded by the fine-tuning seed) and `vocabulary`. Fine-tuning it is the
    /// baseline that says what pre-training bought.
    public init(randomlyInitialized config: BertConfig, vocabulary: String, description: String) throws {
        guard FileManager.default.fileExists(atPath: vocabulary) else {
            throw CheckpointError.invalidSetting(name: "--vocab", reason: "\(vocabulary) does not exist")
        }
        directory = description
        self.config = config
        weights = nil
        vocabularyPath = vocabulary
    }

    /// The from-scratch baseline: a randomly initialised encoder shaped as the checkpoint in `directory`
    /// (its config and vocabulary; its weights unused), or, without a directory, as `config` (a preset
    /// name or a config.json path) over the vocabulary `vocabulary` (required then).
    public init(randomlyInitializedLike directory: String?, config: String?, vocabulary: String?) throws {
        if let directory {
            let loaded = try PretrainedSource(directory: directory, vocabulary: vocabulary)
            try self.init(randomlyInitialized: loaded.config, vocabulary: loaded.vocabularyPath,
                          description: "random init shaped as \(directory)")
            tokenizerConfig = loaded.tokenizerConfig  // the casing of its vocabulary
            return
        }
        guard let vocabPath = vocabulary, let name = config else {
            throw CheckpointError.invalidSetting(name: "--from-scratch", reason: "needs a checkpoint, or a config and a vocabulary")
        }
        let words = try Vocabulary.load(path: vocabPath)
        let cfg = FileManager.default.fileExists(atPath: name) ? try BertConfig.load(path: name)
            : try BertConfig.preset(name, vocabSize: words.count)
        try cfg.validate(path: name)
        try self.init(randomlyInitialized: cfg, vocabulary: vocabPath, description: "random init (\(name))")
    }

    /// Reads and checks a checkpoint directory; `vocabulary` overrides its vocab.txt.
    public init(directory: String, vocabulary: String? = nil) throws {
        let fm = FileManager.default
        var isDir: ObjCBool = false
        guard fm.fileExists(atPath: directory, isDirectory: &isDir), isDir.boolValue else {
            throw CheckpointError.badCheckpoint(path: directory, reason: "not a directory; give a checkpoint directory (config.json, model.safetensors)")
        }
        self.directory = directory
        // An ELECTRA discriminator's config reads as the BERT encoder it is.
        config = try BertConfig.load(path: (directory as NSString).appendingPathComponent("config.json")).asBertEncoder()
        let weightsPath = (directory as NSString).appendingPathComponent("model.safetensors")
        do { weights = try SafetensorsFile(path: weightsPath) } catch {
            throw CheckpointError.badCheckpoint(path: weightsPath, reason: "\(error)")
        }
        vocabularyPath = vocabulary ?? (directory as NSString).appendingPathComponent("vocab.txt")
        guard fm.fileExists(atPath: vocabularyPath) else {
            throw CheckpointError.badCheckpoint(path: vocabularyPath, reason: "missing; give --vocab")
        }
        tokenizerConfig = try TokenizerConfig.load(directory: directory)
    }
}
