/// One named tensor in the flat parameter buffer.
public struct ParameterEntry: Sendable, Equatable {
    /// Hugging Face state-dict name, e.g. "bert.encoder.layer.0.attention.self.query.weight".
    public let name: String
    /// Shape as in PyTorch: [out, in] for linear weights, [rows, width] for embeddings, [n] for vectors.
    public let shape: [Int]
    /// Index of the first element in the buffer.
    public let offset: Int
    /// Number of elements (the product of `shape`).
    public let count: Int
    /// Whether AdamW weight decay applies: google-research/bert's optimization.py excludes names
    /// containing "bias", "LayerNorm" or "layer_norm".
    public let decay: Bool

    /// An entry; `count` is the product of `shape`, `decay` follows the name.
    public init(name: String, shape: [Int], offset: Int) {
        self.name = name
        self.shape = shape
        self.offset = offset
        count = shape.reduce(1, *)
        decay = !(name.contains("bias") || name.contains("LayerNorm") || name.contains("layer_norm"))
    }

    /// The element range of this entry in the buffer.
    public var range: Range<Int> { offset..<(offset + count) }
}

/// The layout of the one parameter buffer: named views, back to back, no padding. Gradients (and
/// AdamW's moments) use the same layout in their own buffers.
public struct ParameterLayout: Sendable {
    /// Entries in buffer order.
    public let entries: [ParameterEntry]
    /// Total number of floats.
    public let count: Int
    private let index: [String: Int]

    /// A layout from (name, shape) pairs, placed back to back in order.
    public init(_ tensors: [(name: String, shape: [Int])]) {
        var entries: [ParameterEntry] = []
        var offset = 0
        for (name, shape) in tensors {
            let e = ParameterEntry(name: name, shape: shape, offset: offset)
            entries.append(e)
            offset += e.count
        }
        self.entries = entries
        count = offset
        index = Dictionary(uniqueKeysWithValues: entries.enumerated().map { ($1.name, $0) })
    }

    /// The entry with this Hugging Face name, or nil.
    public func entry(named name: String) -> ParameterEntry? {
        index[name].map { entries[$0] }
    }

    /// Hugging Face BertForPreTraining's parameters for `config`: `bertTensors`, then the heads. The MLM
    /// decoder weight is tied to the word embeddings and has no entry of its own; its bias is
    /// "cls.predictions.bias" (transformers ties cls.predictions.decoder.bias to it).
    public static func bertForPreTraining(_ config: BertConfig) -> ParameterLayout {
        let (v, h) = (config.vocabSize, config.hiddenSize)
        return ParameterLayout(bertTensors(config) + [
            ("cls.predictions.bias", [v]),
            ("cls.predictions.transform.dense.weight", [h, h]),
            ("cls.predictions.transform.dense.bias", [h]),
            ("cls.predictions.transform.LayerNorm.weight", [h]),
            ("cls.predictions.transform.LayerNorm.bias", [h]),
            ("cls.seq_relationship.weight", [2, h]),
            ("cls.seq_relationship.bias", [2]),
        ])
    }

    /// Hugging Face BertForSequenceClassification's parameters for `config` and `numLabels` (> 0):
    /// `bertTensors`, then "classifier.weight" [numLabels, H] and "classifier.bias" [numLabels].
    public static func bertForSequenceClassification(_ config: BertConfig, numLabels: Int) -> ParameterLayout {
        ParameterLayout(bertTensors(config) + [
            ("classifier.weight", [numLabels, config.hiddenSize]),
            ("classifier.bias", [numLabels]),
        ])
    }

    /// Hugging Face BertModel's parameters (embeddings, layers, pooler) under "bert.", in state-dict
    /// order except that each layer's query, key and value weights are adjacent (one [3H, H] matrix)
    /// and so are their biases ([3H]).
    static func bertTensors(_ config: BertConfig) -> [(name: String, shape: [Int])] {
        let (v, h, i) = (config.vocabSize, config.hiddenSize, config.intermediateSize)
        var t: [(name: String, shape: [Int])] = [
            ("bert.embeddings.word_embeddings.weight", [v, h]),
            ("bert.embeddings.position_embeddings.weight", [config.maxPositionEmbeddings, h]),
            ("bert.embeddings.token_type_embeddings.weight", [config.typeVocabSize, h]),
            ("bert.embeddings.LayerNorm.weight", [h]),
            ("bert.embeddings.LayerNorm.bias", [h]),
        ]
        for l in 0..<config.numHiddenLayers { t += layerTensors("bert.encoder.layer.\(l).", hidden: h, intermediate: i) }
        return t + [("bert.pooler.dense.weight", [h, h]), ("bert.pooler.dense.bias", [h])]
    }

    /// One post-LayerNorm encoder layer's tensors under `prefix` (Hugging Face's names; the query, key
    /// and value weights adjacent, then their biases).
    static func layerTensors(_ prefix: String, hidden h: Int, intermediate i: Int) -> [(name: String, shape: [Int])] {
        let p = prefix
        return [
            (p + "attention.self.query.weight", [h, h]),
            (p + "attention.self.key.weight", [h, h]),
            (p + "attention.self.value.weight", [h, h]),
            (p + "attention.self.query.bias", [h]),
            (p + "attention.self.key.bias", [h]),
            (p + "attention.self.value.bias", [h]),
            (p + "attention.output.dense.weight", [h, h]),
            (p + "attention.output.dense.bias", [h]),
            (p + "attention.output.LayerNorm.weight", [h]),
            (p + "attention.output.LayerNorm.bias", [h]),
            (p + "intermediate.dense.weight", [i, h]),
            (p + "intermediate.dense.bias", [i]),
            (p + "output.dense.weight", [h, i]),
            (p + "output.dense.bias", [h]),
            (p + "output.LayerNorm.weight", [h]),
            (p + "output.LayerNorm.bias", [h]),
        ]
    }

    /// ELECTRA's pre-training parameters in one buffer, named as transformers' checkpoints name them:
    /// the discriminator (`ElectraForPreTraining`: "electra.embeddings.*" of width E = its hidden size,
    /// "electra.encoder.layer.*", "discriminator_predictions.*"), then the generator
    /// (`ElectraForMaskedLM`) under "generator.": its embedding projection E → H_g when the widths
    /// differ, its layers, "generator_predictions.*" (H_g → E, LayerNorm) and the LM head's bias. The
    /// generator has no embedding tables of its own (it reads the discriminator's) and its LM head's
    /// weight is the word-embedding table.
    public static func electraForPreTraining(discriminator d: BertConfig, generator g: BertConfig) -> ParameterLayout {
        let (v, e, h, gh) = (d.vocabSize, d.hiddenSize, d.hiddenSize, g.hiddenSize)
        var t: [(name: String, shape: [Int])] = [
            ("electra.embeddings.word_embeddings.weight", [v, e]),
            ("electra.embeddings.position_embeddings.weight", [d.maxPositionEmbeddings, e]),
            ("electra.embeddings.token_type_embeddings.weight", [d.typeVocabSize, e]),
            ("electra.embeddings.LayerNorm.weight", [e]),
            ("electra.embeddings.LayerNorm.bias", [e]),
        ]
        for l in 0..<d.numHiddenLayers { t += layerTensors("electra.encoder.layer.\(l).", hidden: h, intermediate: d.intermediateSize) }
        t += [
            ("discriminator_predictions.dense.weight", [h, h]),
            ("discriminator_predictions.dense.bias", [h]),
            ("discriminator_predictions.dense_prediction.weight", [1, h]),
            ("discriminator_predictions.dense_prediction.bias", [1]),
        ]
        if gh != e { t += [("generator.electra.embeddings_project.weight", [gh, e]), ("generator.electra.embeddings_project.bias", [gh])] }
        for l in 0..<g.numHiddenLayers {
            t += layerTensors("generator.electra.encoder.layer.\(l).", hidden: gh, intermediate: g.intermediateSize)
        }
        return ParameterLayout(t + [
            ("generator.generator_predictions.dense.weight", [e, gh]),
            ("generator.generator_predictions.dense.bias", [e]),
            ("generator.generator_predictions.LayerNorm.weight", [e]),
            ("generator.generator_predictions.LayerNorm.bias", [e]),
            ("generator.generator_lm_head.bias", [v]),
        ])
    }
}
