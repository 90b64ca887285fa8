import BertModel
import Foundation
import Support
import WordPiece

/// ELECTRA checkpoints: the directory is the discriminator as transformers' `ElectraForPreTraining`
/// (model.safetensors, config.json with model_type "electra"), which BertKit reads as the BERT encoder it
/// is; `generator/` holds the generator as `ElectraForMaskedLM` (its own model.safetensors with a copy of
/// the shared embeddings and the tied LM head, config.json, vocab.txt). optimizer.safetensors and
/// training_state.json cover both, under the training layout's names.
extension Checkpoint {
    /// The generator's subdirectory of an ELECTRA checkpoint.
    public static let generatorDirectory = "generator"

    /// Whether `directory` is an ELECTRA pre-training checkpoint (it has a generator).
    public static func isElectra(_ directory: String) -> Bool {
        FileManager.default.fileExists(atPath: ((directory as NSString).appendingPathComponent(generatorDirectory) as NSString)
            .appendingPathComponent(modelFile))
    }

    /// Writes the discriminator's and the generator's files of an ELECTRA checkpoint into `directory`.
    static func writeElectraModels(into directory: String, config: BertConfig, generator: BertConfig, layout: ParameterLayout,
                                   parameters: UnsafeBufferPointer<Float>, vocabulary: Data, tokenizer: TokenizerConfig?) throws {
        let prefix = "generator."
        func tensor(_ e: ParameterEntry, as name: String) -> SafetensorsTensor {
            SafetensorsTensor(name: name, shape: e.shape, floats: Array(parameters[e.range]))
        }
        let discriminator = layout.entries.filter { !$0.name.hasPrefix(prefix) }.map { tensor($0, as: $0.name) }
        try SafetensorsWriter.write(discriminator, to: (directory as NSString).appendingPathComponent(modelFile))
        var generatorTensors = layout.entries.filter { $0.name.hasPrefix("electra.embeddings.") }.map { tensor($0, as: $0.name) }
        generatorTensors += layout.entries.filter { $0.name.hasPrefix(prefix) }.map { tensor($0, as: String($0.name.dropFirst(prefix.count))) }
        if let word = layout.entry(named: "electra.embeddings.word_embeddings.weight") {
            generatorTensors.append(tensor(word, as: "generator_lm_head.weight"))  // tied; a copy for loaders that do not tie
        }
        let sub = (directory as NSString).appendingPathComponent(generatorDirectory)
        try FileManager.default.createDirectory(atPath: sub, withIntermediateDirectories: true)
        try SafetensorsWriter.write(generatorTensors, to: (sub as NSString).appendingPathComponent(modelFile))
        try writeCheckpointFile(generator.electraJSON(embeddingSize: config.hiddenSize, architectures: ["ElectraForMaskedLM"]),
                                to: (sub as NSString).appendingPathComponent(configFile))
        try writeCheckpointFile(vocabulary, to: (sub as NSString).appendingPathComponent(vocabFile))
        if let tokenizer { try writeCheckpointFile(tokenizer.encoded(), to: (sub as NSString).appendingPathComponent(TokenizerConfig.fileName)) }
        syncDirectory(sub)
    }

    /// The generator's encoder config of an ELECTRA checkpoint (generator/config.json), checked against the
    /// discriminator's: its embedding_size must be the discriminator's hidden size (BertKit shares one table).
    public static func electraGeneratorConfig(directory: String, discriminator: BertConfig) throws -> BertConfig {
        let path = (((directory as NSString).appendingPathComponent(generatorDirectory)) as NSString).appendingPathComponent(configFile)
        guard let data = FileManager.default.contents(atPath: path) else { throw TrainingError.badCheckpoint(path: path, reason: "missing") }
        var config: BertConfig
        do { config = try JSONDecoder().decode(BertConfig.self, from: data) } catch {
            throw TrainingError.badCheckpoint(path: path, reason: "not a config: \(error)")
        }
        guard config.embeddingSize == discriminator.hiddenSize else {
            throw TrainingError.badCheckpoint(path: path, reason: "embedding_size \(config.embeddingSize.map(String.init) ?? "absent") is not the "
                + "discriminator's hidden_size \(discriminator.hiddenSize): the generator must share the discriminator's embeddings")
        }
        config = config.asBertEncoder()
        try config.validate(path: path)
        return config
    }

    /// Fills an ELECTRA training layout from a checkpoint directory: the discriminator's tensors from
    /// model.safetensors, the generator's ("generator.*") from generator/model.safetensors.
    public static func loadElectraParameters(directory: String, layout: ParameterLayout,
                                             into parameters: UnsafeMutableBufferPointer<Float>) throws {
        let prefix = "generator."
        for (path, inFile) in [(directory, { (e: ParameterEntry) in e.name.hasPrefix(prefix) ? nil : e.name }),
                               ((directory as NSString).appendingPathComponent(generatorDirectory),
                                { (e: ParameterEntry) in e.name.hasPrefix(prefix) ? String(e.name.dropFirst(prefix.count)) : nil })] {
            let modelPath = (path as NSString).appendingPathComponent(modelFile)
            let file: SafetensorsFile
            do { file = try SafetensorsFile(path: modelPath) } catch { throw TrainingError.badCheckpoint(path: modelPath, reason: "\(error)") }
            for e in layout.entries {
                guard let name = inFile(e) else { continue }
                guard file.contains(name) else { throw TrainingError.badCheckpoint(path: modelPath, reason: "tensor \(name) is missing") }
                guard try file.info(name).shape == e.shape else {
                    throw TrainingError.badCheckpoint(path: modelPath, reason: "tensor \(name) has shape \(try file.info(name).shape), the model needs \(e.shape)")
                }
                try file.copyFloats(name, into: UnsafeMutableBufferPointer(rebasing: parameters[e.range]))
            }
        }
    }
}
