import BertModel
import Foundation
import Support
import WordPiece
import Checkpoints

extension Checkpoint {
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
}
