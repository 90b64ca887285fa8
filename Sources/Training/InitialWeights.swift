import BertModel
import Foundation
import PretrainingData
import Support
import WordPiece
import Checkpoints

/// The starting weights of continued pre-training (`bert pretrain --init DIR`), as
/// google-research/bert's `--init_checkpoint` and transformers' `run_mlm.py --model_name_or_path`: a
/// Hugging Face BERT directory (config.json, vocab.txt, model.safetensors, tokenizer_config.json when
/// present) whose weights are those of BertModel, BertForPreTraining, BertForMaskedLM or
/// BertForSequenceClassification, with or without the `bert.` prefix, in F32, F16 or BF16; a BertKit
/// pre-training checkpoint; or a directory written by `bert finetune`.
public struct InitialWeights {
    /// The directory as given.
    public let directory: String
    /// Its config.json: the run trains this architecture.
    public let config: BertConfig
    /// Its model.safetensors.
    public let weights: SafetensorsFile
    /// sha256 of model.safetensors (recorded in training_state.json).
    public let weightsSHA256: String
    /// Its vocab.txt and that file's sha256, which the shards must have been built with.
    public let vocabularyPath: String
    public let vocabularySHA256: String
    /// Its tokenizer_config.json, nil where it has none.
    public let tokenizerConfig: TokenizerConfig?

    func path(_ name: String) -> String { (directory as NSString).appendingPathComponent(name) }

    /// Reads and checks DIR's files (not the weights' names and shapes yet: see `load`).
    public init(directory: String) throws {
        var isDirectory: ObjCBool = false
        guard FileManager.default.fileExists(atPath: directory, isDirectory: &isDirectory), isDirectory.boolValue else {
            throw TrainingError.badCheckpoint(path: directory, reason: "not a directory; --init takes a model directory (config.json, vocab.txt, model.safetensors)")
        }
        self.directory = directory
        let configPath = (directory as NSString).appendingPathComponent("config.json")
        guard FileManager.default.fileExists(atPath: configPath) else {
            throw TrainingError.badCheckpoint(path: configPath, reason: "missing; --init takes a Hugging Face BERT directory or a BertKit checkpoint")
        }
        var config = try BertConfig.load(path: configPath).asBertEncoder()  // an ELECTRA discriminator is a BERT encoder
        // A classifier's labels and architecture are not the pre-training model's.
        (config.id2label, config.label2id, config.architectures) = (nil, nil, nil)
        self.config = config
        let weightsPath = (directory as NSString).appendingPathComponent("model.safetensors")
        do { weights = try SafetensorsFile(path: weightsPath) } catch {
            throw TrainingError.badCheckpoint(path: weightsPath, reason: "\(error)")
        }
        weightsSHA256 = SHA256.hex(try SHA256.hash(file: weightsPath))
        vocabularyPath = (directory as NSString).appendingPathComponent("vocab.txt")
        guard let vocabulary = FileManager.default.contents(atPath: vocabularyPath) else {
            throw TrainingError.badCheckpoint(path: vocabularyPath, reason: "missing; the shards must be built with the model's own vocabulary")
        }
        vocabularySHA256 = SHA256.hex(SHA256.hash(Array(vocabulary)))
        tokenizerConfig = try TokenizerConfig.load(directory: directory)
    }

    /// Refuses a run this model cannot start: shards built with another vocabulary or casing, instances
    /// longer than the model's positions, or an explicit `--model`/`--config` (`requested`, named
    /// `requestedName`) of another shape than DIR's config. Each error names both files and the fix.
    public func check(shards: ShardSet, requested: BertConfig?, requestedName: String?) throws {
        let index = (shards.directory as NSString).appendingPathComponent(ShardIndex.fileName)
        guard shards.index.vocabSHA256 == vocabularySHA256 else {
            throw TrainingError.dataMismatch(reason: "\(index) was built with a vocabulary of sha256 \(shards.index.vocabSHA256.prefix(12))…, "
                + "but \(vocabularyPath) has sha256 \(vocabularySHA256.prefix(12))…: the token ids would mean other words. "
                + "Build the shards with the model's vocabulary: bert shards --vocab \(vocabularyPath) …")
        }
        let lowercase = shards.index.parameters.lowercase
        if let recorded = tokenizerConfig?.doLowerCase, recorded != lowercase {
            throw TrainingError.dataMismatch(reason: "\(index) holds \(lowercase ? "lowercased" : "cased") text, but "
                + "\(path(TokenizerConfig.fileName)) says do_lower_case \(recorded): build the shards "
                + (recorded ? "without --cased" : "with --cased"))
        }
        let length = shards.index.parameters.maxSeqLength
        guard length <= config.maxPositionEmbeddings else {
            throw TrainingError.dataMismatch(reason: "\(index) holds instances of up to \(length) tokens, but \(path("config.json")) has "
                + "max_position_embeddings \(config.maxPositionEmbeddings): build the shards with --max-seq-length \(config.maxPositionEmbeddings) or less")
        }
        if let requested, let name = requestedName {
            let fields: [(String, Int, Int)] = [
                ("hidden_size", requested.hiddenSize, config.hiddenSize), ("num_hidden_layers", requested.numHiddenLayers, config.numHiddenLayers),
                ("num_attention_heads", requested.numAttentionHeads, config.numAttentionHeads),
                ("intermediate_size", requested.intermediateSize, config.intermediateSize), ("vocab_size", requested.vocabSize, config.vocabSize),
                ("type_vocab_size", requested.typeVocabSize, config.typeVocabSize)]
            for (field, asked, has) in fields where asked != has {
                throw TrainingError.invalidSetting(name: name, reason: "\(field) \(asked), but \(path("config.json")) has \(has); "
                    + "--init trains the model of its own config.json: leave out --model/--config")
            }
        }
    }

    /// What `load` did, as transformers' loading message says it.
    public struct Report: Equatable, Sendable {
        /// The model's tensors filled from the file.
        public var loaded: [String] = []
        /// The model's tensors the file lacks, left as initialised (transformers' "newly initialized").
        public var initialized: [String] = []
        /// The file's tensors the model does not use.
        public var ignored: [String] = []
    }

    /// The heads a pre-training model may lack in a public checkpoint (initialised instead, as
    /// transformers does): the MLM transform and decoder bias, NSP, the pooler. Every encoder tensor
    /// (embeddings and layers) must be in the file.
    static func mayBeMissing(_ name: String) -> Bool { name.hasPrefix("cls.") || name.hasPrefix("bert.pooler.") }

    /// The file's names for a model tensor, most specific first: as is, without the `bert.` prefix
    /// (BertModel's weights), with `electra.` in its place (an ELECTRA discriminator's), and for the
    /// decoder bias transformers' tied copy's name.
    static func candidates(_ name: String) -> [String] {
        var out = [name]
        if name.hasPrefix("bert.") { out += [String(name.dropFirst(5)), "electra." + name.dropFirst(5)] }
        if name == "cls.predictions.bias" { out.append("cls.predictions.decoder.bias") }
        return out
    }

    /// File tensors that are another tensor's copy or a buffer, not weights: not reported as ignored.
    static func isCopyOrBuffer(_ name: String) -> Bool {
        name == "cls.predictions.decoder.weight" || name == "cls.predictions.decoder.bias" || name.hasSuffix("position_ids")
            || name.hasPrefix("discriminator_predictions.")  // an ELECTRA discriminator's head
    }

    /// Fills the model's tensors from the file (converting F16/BF16 to fp32): every encoder tensor must
    /// be there with the model's shape; heads the file lacks keep the values the model was initialised
    /// with (call `initialize(seed:)` first: transformers' statistics). The decoder stays tied to the
    /// word embeddings.
    public func load(into layout: ParameterLayout, parameters: UnsafeMutableBufferPointer<Float>) throws -> Report {
        var report = Report()
        var used = Set<String>()
        let file = weights.path
        for e in layout.entries {
            guard let name = Self.candidates(e.name).first(where: weights.contains) else {
                guard Self.mayBeMissing(e.name) else {
                    throw TrainingError.badCheckpoint(path: file, reason: "tensor \(e.name) (or \(Self.candidates(e.name).dropFirst().joined(separator: ", "))) is missing; "
                        + "--init needs a BERT encoder's weights")
                }
                report.initialized.append(e.name)
                continue
            }
            let info = try weights.info(name)
            guard info.shape == e.shape else {
                throw TrainingError.badCheckpoint(path: file, reason: "tensor \(name) has shape \(info.shape), but \(path("config.json")) needs \(e.shape)")
            }
            try weights.copyFloats(name, into: UnsafeMutableBufferPointer(rebasing: parameters[e.offset..<(e.offset + e.count)]))
            used.insert(name)
            report.loaded.append(e.name)
        }
        report.ignored = weights.names.filter { !used.contains($0) && !Self.isCopyOrBuffer($0) }.sorted()
        return report
    }
}

extension InitialWeights.Report {
    /// The loading message, in transformers' words: what was loaded, newly initialised, not used.
    public func message(directory: String) -> String {
        var lines = ["bert pretrain: --init \(directory): \(loaded.count) tensors loaded"]
        if !initialized.isEmpty {
            lines.append("  newly initialized (not in the checkpoint; transformers' initialization): " + initialized.joined(separator: ", "))
        }
        if !ignored.isEmpty { lines.append("  not used (no such tensor in BertForPreTraining): " + ignored.joined(separator: ", ")) }
        return lines.joined(separator: "\n")
    }
}
