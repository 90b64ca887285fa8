import BertModel
import Foundation
import Support
import WordPiece

/// Checkpoint directories: `RUN/epoch-NNNN/` (end of an epoch) and `RUN/step-NNNNNNNN/` (every N
/// steps), each with model.safetensors (BertForPreTraining names, loadable by transformers),
/// config.json, vocab.txt, optimizer.safetensors and training_state.json; `RUN/latest` is a symbolic
/// link to the newest. A directory is written under a temporary name, fsynced and renamed, and
/// `latest` is replaced atomically afterwards, so a crash leaves the previous checkpoint valid.
public enum Checkpoint {
    /// Names of the files in a checkpoint directory.
    public static let modelFile = "model.safetensors", configFile = "config.json", vocabFile = "vocab.txt"
    public static let optimizerFile = "optimizer.safetensors", stateFile = "training_state.json"
    /// The link to the newest checkpoint in a run directory.
    public static let latestLink = "latest"

    /// Tied tensors written as copies so that loaders that do not tie weights find them too:
    /// (copy's name, source name).
    public static let tiedCopies = [("cls.predictions.decoder.weight", "bert.embeddings.word_embeddings.weight"),
                                    ("cls.predictions.decoder.bias", "cls.predictions.bias")]

    /// The model's tensors with their names (F32), tied copies included.
    public static func modelTensors(layout: ParameterLayout, parameters: UnsafeBufferPointer<Float>,
                                    tied: [(String, String)] = tiedCopies) -> [SafetensorsTensor] {
        var out: [SafetensorsTensor] = []
        for e in layout.entries {
            out.append(SafetensorsTensor(name: e.name, shape: e.shape,
                                         floats: Array(parameters[e.offset..<(e.offset + e.count)])))
        }
        for (copy, source) in tied {
            if let e = layout.entry(named: source) {
                out.append(SafetensorsTensor(name: copy, shape: e.shape, floats: Array(parameters[e.offset..<(e.offset + e.count)])))
            }
        }
        return out
    }

    /// Fills `parameters` from a safetensors file with the layout's names (a `prefix` such as
    /// "bert." may be missing from the file's names, as in models saved from BertModel, or be
    /// "electra.", as in an ELECTRA discriminator's). Every entry must be present with the right shape;
    /// `ignoring` names may be absent or extra.
    public static func loadParameters(from file: SafetensorsFile, layout: ParameterLayout,
                                      into parameters: UnsafeMutableBufferPointer<Float>,
                                      optionalPrefix: String = "bert.", ignoring: Set<String> = []) throws {
        for e in layout.entries where !ignoring.contains(e.name) {
            var name = e.name
            if !file.contains(name), name.hasPrefix(optionalPrefix) {
                let bare = String(name.dropFirst(optionalPrefix.count))
                if file.contains(bare) { name = bare } else if file.contains("electra." + bare) { name = "electra." + bare }
            }
            guard file.contains(name) else {
                throw CheckpointError.badCheckpoint(path: file.path, reason: "tensor \(e.name) is missing")
            }
            let info = try file.info(name)
            guard info.shape == e.shape else {
                throw CheckpointError.badCheckpoint(path: file.path, reason: "tensor \(name) has shape \(info.shape), the model needs \(e.shape)")
            }
            try file.copyFloats(name, into: UnsafeMutableBufferPointer(rebasing: parameters[e.offset..<(e.offset + e.count)]))
        }
    }

    /// The newest checkpoint directory of a run, from its `latest` link; nil when there is none.
    public static func latest(runDirectory: String) -> String? {
        let link = (runDirectory as NSString).appendingPathComponent(latestLink)
        guard let target = try? FileManager.default.destinationOfSymbolicLink(atPath: link) else { return nil }
        let dir = target.hasPrefix("/") ? target : (runDirectory as NSString).appendingPathComponent(target)
        return FileManager.default.fileExists(atPath: (dir as NSString).appendingPathComponent(stateFile)) ? dir : nil
    }
}

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

    /// The generator's encoder config of an ELECTRA checkpoint (generator/config.json), checked against the
    /// discriminator's: its embedding_size must be the discriminator's hidden size (BertKit shares one table).
    public static func electraGeneratorConfig(directory: String, discriminator: BertConfig) throws -> BertConfig {
        let path = (((directory as NSString).appendingPathComponent(generatorDirectory)) as NSString).appendingPathComponent(configFile)
        guard let data = FileManager.default.contents(atPath: path) else { throw CheckpointError.badCheckpoint(path: path, reason: "missing") }
        var config: BertConfig
        do { config = try JSONDecoder().decode(BertConfig.self, from: data) } catch {
            throw CheckpointError.badCheckpoint(path: path, reason: "not a config: \(error)")
        }
        guard config.embeddingSize == discriminator.hiddenSize else {
            throw CheckpointError.badCheckpoint(path: path, reason: "embedding_size \(config.embeddingSize.map(String.init) ?? "absent") is not the "
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
            do { file = try SafetensorsFile(path: modelPath) } catch { throw CheckpointError.badCheckpoint(path: modelPath, reason: "\(error)") }
            for e in layout.entries {
                guard let name = inFile(e) else { continue }
                guard file.contains(name) else { throw CheckpointError.badCheckpoint(path: modelPath, reason: "tensor \(name) is missing") }
                guard try file.info(name).shape == e.shape else {
                    throw CheckpointError.badCheckpoint(path: modelPath, reason: "tensor \(name) has shape \(try file.info(name).shape), the model needs \(e.shape)")
                }
                try file.copyFloats(name, into: UnsafeMutableBufferPointer(rebasing: parameters[e.range]))
            }
        }
    }
}
