import Foundation

/// Errors reading or checking a model configuration.
public enum ConfigError: Error, Equatable, CustomStringConvertible {
    /// The file could not be read or is not a JSON object with BERT's keys.
    case unreadable(path: String, reason: String)
    /// A field out of range or inconsistent with another; `field` is its config.json key.
    case invalid(path: String, field: String, reason: String)
    /// `--model NAME` that is not a preset.
    case unknownPreset(name: String)

    public var description: String {
        switch self {
        case let .unreadable(path, reason): return "\(path): cannot read model config (\(reason)); give a Hugging Face BERT config.json"
        case let .invalid(path, field, reason): return "\(path): field \"\(field)\": \(reason)"
        case let .unknownPreset(name):
            return "unknown model preset \"\(name)\"; use one of \(BertConfig.presetNames.joined(separator: ", ")) or --config FILE"
        }
    }
}

/// A BERT encoder's hyper-parameters, with Hugging Face `config.json` keys so a checkpoint's config
/// loads in transformers' `BertConfig` as it is. Defaults are bert-base-uncased's.
public struct BertConfig: Codable, Equatable, Sendable {
    public var vocabSize: Int = 30522
    public var hiddenSize: Int = 768
    public var numHiddenLayers: Int = 12
    public var numAttentionHeads: Int = 12
    public var intermediateSize: Int = 3072
    /// "gelu" (erf, Hugging Face's default), "gelu_new"/"gelu_pytorch_tanh" (tanh approximation), "relu".
    public var hiddenAct: String = "gelu"
    public var hiddenDropoutProb: Double = 0.1
    public var attentionProbsDropoutProb: Double = 0.1
    public var maxPositionEmbeddings: Int = 512
    public var typeVocabSize: Int = 2
    public var initializerRange: Double = 0.02
    public var layerNormEps: Double = 1e-12
    public var padTokenId: Int = 0
    /// Dropout before the classifier; nil means `hiddenDropoutProb` (as transformers does).
    public var classifierDropout: Double? = nil
    /// Classification labels, id → name (fine-tuning only); keys are decimal strings as in transformers.
    public var id2label: [String: String]? = nil
    /// Classification labels, name → id.
    public var label2id: [String: Int]? = nil
    /// Recorded for transformers; always ["BertForPreTraining"] or ["BertForSequenceClassification"].
    public var architectures: [String]? = nil
    /// "bert", or "electra" for an ELECTRA discriminator's config (read as the BERT encoder it is:
    /// see `embeddingSize`; `asBertEncoder` makes it a BERT config again).
    public var modelType: String = "bert"
    /// ELECTRA's embedding width (`embedding_size`); nil for BERT. BertKit's BERT encoder has none of
    /// ELECTRA's embedding projection, so it must equal `hiddenSize` where present.
    public var embeddingSize: Int? = nil
    /// Always "absolute" (the only kind implemented).
    public var positionEmbeddingType: String = "absolute"

    /// A configuration; every field has bert-base's default.
    public init(vocabSize: Int = 30522, hiddenSize: Int = 768, numHiddenLayers: Int = 12, numAttentionHeads: Int = 12,
                intermediateSize: Int = 3072, hiddenAct: String = "gelu", hiddenDropoutProb: Double = 0.1,
                attentionProbsDropoutProb: Double = 0.1, maxPositionEmbeddings: Int = 512, typeVocabSize: Int = 2,
                initializerRange: Double = 0.02, layerNormEps: Double = 1e-12, padTokenId: Int = 0) {
        self.vocabSize = vocabSize
        self.hiddenSize = hiddenSize
        self.numHiddenLayers = numHiddenLayers
        self.numAttentionHeads = numAttentionHeads
        self.intermediateSize = intermediateSize
        self.hiddenAct = hiddenAct
        self.hiddenDropoutProb = hiddenDropoutProb
        self.attentionProbsDropoutProb = attentionProbsDropoutProb
        self.maxPositionEmbeddings = maxPositionEmbeddings
        self.typeVocabSize = typeVocabSize
        self.initializerRange = initializerRange
        self.layerNormEps = layerNormEps
        self.padTokenId = padTokenId
    }

    enum CodingKeys: String, CodingKey {
        case vocabSize = "vocab_size", hiddenSize = "hidden_size", numHiddenLayers = "num_hidden_layers"
        case numAttentionHeads = "num_attention_heads", intermediateSize = "intermediate_size", hiddenAct = "hidden_act"
        case hiddenDropoutProb = "hidden_dropout_prob", attentionProbsDropoutProb = "attention_probs_dropout_prob"
        case maxPositionEmbeddings = "max_position_embeddings", typeVocabSize = "type_vocab_size"
        case initializerRange = "initializer_range", layerNormEps = "layer_norm_eps", padTokenId = "pad_token_id"
        case classifierDropout = "classifier_dropout", id2label, label2id, architectures
        case modelType = "model_type", positionEmbeddingType = "position_embedding_type", embeddingSize = "embedding_size"
    }

    /// Decodes a config.json; missing keys take bert-base's defaults, as transformers' `BertConfig` does.
    public init(from decoder: Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        let d = BertConfig()
        vocabSize = try c.decodeIfPresent(Int.self, forKey: .vocabSize) ?? d.vocabSize
        hiddenSize = try c.decodeIfPresent(Int.self, forKey: .hiddenSize) ?? d.hiddenSize
        numHiddenLayers = try c.decodeIfPresent(Int.self, forKey: .numHiddenLayers) ?? d.numHiddenLayers
        numAttentionHeads = try c.decodeIfPresent(Int.self, forKey: .numAttentionHeads) ?? d.numAttentionHeads
        intermediateSize = try c.decodeIfPresent(Int.self, forKey: .intermediateSize) ?? d.intermediateSize
        hiddenAct = try c.decodeIfPresent(String.self, forKey: .hiddenAct) ?? d.hiddenAct
        hiddenDropoutProb = try c.decodeIfPresent(Double.self, forKey: .hiddenDropoutProb) ?? d.hiddenDropoutProb
        attentionProbsDropoutProb = try c.decodeIfPresent(Double.self, forKey: .attentionProbsDropoutProb) ?? d.attentionProbsDropoutProb
        maxPositionEmbeddings = try c.decodeIfPresent(Int.self, forKey: .maxPositionEmbeddings) ?? d.maxPositionEmbeddings
        typeVocabSize = try c.decodeIfPresent(Int.self, forKey: .typeVocabSize) ?? d.typeVocabSize
        initializerRange = try c.decodeIfPresent(Double.self, forKey: .initializerRange) ?? d.initializerRange
        layerNormEps = try c.decodeIfPresent(Double.self, forKey: .layerNormEps) ?? d.layerNormEps
        padTokenId = try c.decodeIfPresent(Int.self, forKey: .padTokenId) ?? d.padTokenId
        classifierDropout = try c.decodeIfPresent(Double.self, forKey: .classifierDropout)
        id2label = try c.decodeIfPresent([String: String].self, forKey: .id2label)
        label2id = try c.decodeIfPresent([String: Int].self, forKey: .label2id)
        architectures = try c.decodeIfPresent([String].self, forKey: .architectures)
        modelType = try c.decodeIfPresent(String.self, forKey: .modelType) ?? "bert"
        embeddingSize = try c.decodeIfPresent(Int.self, forKey: .embeddingSize)
        positionEmbeddingType = try c.decodeIfPresent(String.self, forKey: .positionEmbeddingType) ?? "absolute"
    }

    /// The same encoder as a BERT config (model_type "bert", no embedding_size, and for an ELECTRA
    /// config no architectures): what a model fine-tuned or pre-trained further from an ELECTRA
    /// discriminator is. A BERT config is returned as it is.
    public func asBertEncoder() -> BertConfig {
        guard modelType != "bert" || embeddingSize != nil else { return self }
        var c = self
        (c.modelType, c.embeddingSize, c.architectures) = ("bert", nil, nil)
        return c
    }

    /// transformers' ElectraConfig JSON for this encoder: model_type "electra", embedding_size =
    /// `embeddingSize` (the hidden size unless given), `architectures` as given; the other keys as
    /// `encoded()` writes them.
    public func electraJSON(embeddingSize: Int? = nil, architectures: [String]) -> Data {
        var c = self
        (c.modelType, c.embeddingSize, c.architectures) = ("electra", embeddingSize ?? hiddenSize, architectures)
        (c.id2label, c.label2id, c.classifierDropout) = (nil, nil, nil)
        return c.encoded()
    }

    /// Width of one attention head.
    public var headSize: Int { hiddenSize / numAttentionHeads }

    /// The names `--model` accepts.
    public static let presetNames = ["tiny", "mini", "small", "medium", "base"]

    /// The preset sizes of Google's BERT miniatures (Turc et al. 2019) and bert-base:
    /// tiny L2 H128 A2 I512, mini L4 H256 A4 I1024, small L4 H512 A8 I2048, medium L8 H512 A8 I2048,
    /// base L12 H768 A12 I3072.
    public static func preset(_ name: String, vocabSize: Int) throws(ConfigError) -> BertConfig {
        let (l, h, a): (Int, Int, Int)
        switch name {
        case "tiny": (l, h, a) = (2, 128, 2)
        case "mini": (l, h, a) = (4, 256, 4)
        case "small": (l, h, a) = (4, 512, 8)
        case "medium": (l, h, a) = (8, 512, 8)
        case "base": (l, h, a) = (12, 768, 12)
        case "minilm": (l, h, a) = (6, 384, 12)  // MiniLM-L6-H384 (e.g. all-MiniLM-L6-v2): the shape continued pre-training meets
        default: throw .unknownPreset(name: name)
        }
        return BertConfig(vocabSize: vocabSize, hiddenSize: h, numHiddenLayers: l, numAttentionHeads: a, intermediateSize: 4 * h)
    }

    /// Checks ranges and consistency; `path` names the file in errors.
    public func validate(path: String = "config.json") throws(ConfigError) {
        func fail(_ field: CodingKeys, _ reason: String) -> ConfigError { .invalid(path: path, field: field.rawValue, reason: reason) }
        guard vocabSize > 0 else { throw fail(.vocabSize, "must be positive, is \(vocabSize)") }
        guard hiddenSize > 0 else { throw fail(.hiddenSize, "must be positive, is \(hiddenSize)") }
        guard numHiddenLayers > 0 else { throw fail(.numHiddenLayers, "must be positive, is \(numHiddenLayers)") }
        guard numAttentionHeads > 0, hiddenSize % numAttentionHeads == 0 else {
            throw fail(.numAttentionHeads, "\(numAttentionHeads) does not divide hidden_size \(hiddenSize)")
        }
        guard intermediateSize > 0 else { throw fail(.intermediateSize, "must be positive, is \(intermediateSize)") }
        guard ["gelu", "gelu_new", "gelu_pytorch_tanh", "relu"].contains(hiddenAct) else {
            throw fail(.hiddenAct, "\"\(hiddenAct)\" is not supported (gelu, gelu_new, gelu_pytorch_tanh, relu)")
        }
        guard (0..<1).contains(hiddenDropoutProb) else { throw fail(.hiddenDropoutProb, "must be in [0, 1), is \(hiddenDropoutProb)") }
        guard (0..<1).contains(attentionProbsDropoutProb) else {
            throw fail(.attentionProbsDropoutProb, "must be in [0, 1), is \(attentionProbsDropoutProb)")
        }
        guard maxPositionEmbeddings > 0 else { throw fail(.maxPositionEmbeddings, "must be positive") }
        guard typeVocabSize > 0 else { throw fail(.typeVocabSize, "must be positive") }
        guard layerNormEps > 0 else { throw fail(.layerNormEps, "must be positive") }
        // Bounds far above any BERT (bert-large: 24 layers, 1,024 wide, 30,522 words), so that a damaged or
        // hostile file cannot make the parameter layout ask for more memory than a machine has (found by the
        // config fuzz target: "num_hidden_layers": 37777777777777777 built layer after layer until killed).
        let bounds: [(CodingKeys, Int, Int)] = [(.vocabSize, vocabSize, 1 << 24), (.hiddenSize, hiddenSize, 1 << 16),
                                                (.numHiddenLayers, numHiddenLayers, 1 << 10), (.intermediateSize, intermediateSize, 1 << 20),
                                                (.maxPositionEmbeddings, maxPositionEmbeddings, 1 << 20), (.typeVocabSize, typeVocabSize, 1 << 16)]
        for (field, value, limit) in bounds where value > limit {
            throw fail(field, "\(value) is more than \(limit), far beyond any BERT; check the file")
        }
        let (h, i) = (Double(hiddenSize), Double(intermediateSize))
        let parameters = Double(vocabSize + maxPositionEmbeddings + typeVocabSize + 4) * h + Double(numHiddenLayers) * (4 * h * h + 2 * h * i)
        guard parameters <= 0x1p36 else {
            throw fail(.hiddenSize, "the model would hold about \(Int(parameters)) parameters, more than 2^36 (a 275 GB fp32 model); check the file")
        }
        guard modelType == "bert" || modelType == "electra" else { throw fail(.modelType, "\"\(modelType)\" is not \"bert\" or \"electra\"") }
        if let e = embeddingSize, e != hiddenSize {
            throw fail(.embeddingSize, "\(e) differs from hidden_size \(hiddenSize): BertKit's encoder has no embedding projection, "
                + "so it reads ELECTRA discriminators whose embedding_size equals hidden_size (BertKit's, electra-base, electra-large), "
                + "not ELECTRA-small or a generator")
        }
        guard positionEmbeddingType == "absolute" else { throw fail(.positionEmbeddingType, "only \"absolute\" is supported") }
    }

    /// Reads and validates a Hugging Face config.json.
    public static func load(path: String) throws(ConfigError) -> BertConfig {
        let data: Data
        do { data = try Data(contentsOf: URL(fileURLWithPath: path)) } catch {
            throw .unreadable(path: path, reason: error.localizedDescription)
        }
        let config: BertConfig
        do { config = try JSONDecoder().decode(BertConfig.self, from: data) } catch {
            throw .unreadable(path: path, reason: "\(error)")
        }
        try config.validate(path: path)
        return config
    }

    /// The JSON text transformers reads: sorted keys, pretty-printed, final newline.
    public func encoded() -> Data {
        let e = JSONEncoder()
        e.outputFormatting = [.sortedKeys, .prettyPrinted, .withoutEscapingSlashes]
        var data = (try? e.encode(self)) ?? Data("{}".utf8)
        data.append(0x0A)
        return data
    }
}
