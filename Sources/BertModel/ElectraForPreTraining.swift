import Kernels
import Support

/// ELECTRA's replaced-token detection (Clark et al. 2020) as transformers' two models trained together:
/// a small generator (`ElectraForMaskedLM`) learns masked-LM on the masked positions; its samples
/// replace the masked tokens; the discriminator (`ElectraForPreTraining`, a BERT encoder without a
/// pooler plus a two-layer head) learns, at every real token, whether it was replaced. The loss is
/// MLM(generator) + λ · RTD(discriminator), λ = `discriminatorWeight` (50 in the paper).
///
/// Both read one set of embedding tables (word, position, token type, their LayerNorm), of the
/// discriminator's width E = H; the generator projects them to its width H_g (`embeddings_project`)
/// and its LM head's weight is the word table. The samples are drawn from the generator's softmax with
/// a seed, and no gradient flows through the sampling. Storage is one parameter buffer (see
/// `ParameterLayout.electraForPreTraining`) and one gradient buffer; the two encoders keep their own
/// activations. Not thread-safe: one forward/backward at a time.
public final class ElectraForPreTraining {
    /// The discriminator: the encoder that fine-tuning keeps (validated; no pooler is used).
    public let config: BertConfig
    /// The generator's encoder (its hidden size, heads and intermediate size are fractions of the discriminator's).
    public let generatorConfig: BertConfig
    /// λ, the weight of the discriminator's loss.
    public let discriminatorWeight: Float
    /// Names, shapes and offsets of every tensor, both models.
    public let layout: ParameterLayout
    /// All parameters, (layout.count,).
    public let parameters: UnsafeMutableBufferPointer<Float>
    /// d(loss)/d(parameters), same layout; `backward` adds to it.
    public let gradients: UnsafeMutableBufferPointer<Float>
    /// Largest batch size, sequence length and number of masked positions allocated for.
    public let maxBatch: Int, maxSeqLength: Int, maxMaskedPositions: Int
    /// Worker threads of every kernel.
    public let threads: Int
    /// The gradient buffer as one stage: the generator's backward (the last) completes the shared
    /// embedding tables, so no part of it is final earlier.
    public var gradientStages: [Range<Int>] { [0..<layout.count] }
    /// Called with 0 when `backward` has completed every gradient (see `ModelShell.onGradientStageReady`).
    public var onGradientStageReady: ((Int) -> Void)?
    /// When true (the default) the generator's last layer runs only at [CLS] and the masked rows, as
    /// `BertForPreTraining.prunesLastLayer`; the discriminator reads every row and is never pruned.
    public var prunesGeneratorLastLayer = true

    let arena = Arena()
    let discriminator: Encoder
    let generator: Encoder
    let off: Offsets
    let acts: Activations
    let grads: ActivationGradients
    let ints: IntBuffers
    let discriminatorAct: Activation
    var last: LastPass?

    struct LastPass {
        let discriminator: Encoder.Pass
        let generator: Encoder.Pass
        let m: Int
        let active: Int
    }

    /// The generator's MLM head (`generator_predictions` with gelu, as transformers', then `generator_lm_head`
    /// tied to the shared word table: G → E → V) on this model's buffers.
    var generatorHead: (head: MaskedLMHead, buffers: MaskedLMHead.Buffers, gradients: MaskedLMHead.Gradients) {
        let (a, d) = (acts, grads)
        return (MaskedLMHead(dense: off.gW, denseBias: off.gB, norm: off.gLnW, normBias: off.gLnB, decoder: discriminator.off.word,
                             decoderBias: off.lmBias, inWidth: generatorConfig.hiddenSize, width: config.hiddenSize, vocab: config.vocabSize,
                             act: .gelu, eps: generator.dims.eps),
                MaskedLMHead.Buffers(input: a.genIn, pre: a.gPre, act: a.gAct, mean: a.gMean, rstd: a.gRstd, out: a.gOut, logits: a.logits),
                MaskedLMHead.Gradients(dlogits: d.dlogits, dOut: d.dgOut, dAct: d.dgAct, dPre: d.dgPre, dInput: d.dgenIn))
    }

    /// Element offsets of the heads' tensors.
    struct Offsets {
        let dW, dB, pW, pB: Int  // discriminator_predictions.dense, .dense_prediction
        let gW, gB, gLnW, gLnB, lmBias: Int  // generator_predictions.dense, .LayerNorm, generator_lm_head.bias

        init(_ layout: ParameterLayout) {
            func o(_ name: String) -> Int { layout.entry(named: name)!.offset }
            dW = o("discriminator_predictions.dense.weight")
            dB = o("discriminator_predictions.dense.bias")
            pW = o("discriminator_predictions.dense_prediction.weight")
            pB = o("discriminator_predictions.dense_prediction.bias")
            gW = o("generator.generator_predictions.dense.weight")
            gB = o("generator.generator_predictions.dense.bias")
            gLnW = o("generator.generator_predictions.LayerNorm.weight")
            gLnB = o("generator.generator_predictions.LayerNorm.bias")
            lmBias = o("generator.generator_lm_head.bias")
        }
    }

    /// The heads' activations (N = B·T, M masked positions, E the embedding width, G the generator's).
    struct Activations {
        let genIn: UnsafeMutablePointer<Float> // (M,G) generator output at the masked rows
        let gPre, gAct: UnsafeMutablePointer<Float> // (M,E) generator_predictions.dense output, gelu output
        let gMean, gRstd: UnsafeMutablePointer<Float> // (M,)
        let gOut: UnsafeMutablePointer<Float> // (M,E) LayerNorm output, the LM head's input
        let logits: UnsafeMutablePointer<Float> // (M,V)
        let mlmLosses, mlmLse: UnsafeMutablePointer<Float> // (M,)
        let dPre, dAct: UnsafeMutablePointer<Float> // (N,H) discriminator_predictions.dense output, activation output
        let rtdLogits: UnsafeMutablePointer<Float> // (N,) one logit per position: > 0 says "replaced"
    }

    struct ActivationGradients {
        let dlogits: UnsafeMutablePointer<Float> // (M,V)
        let dgOut, dgAct, dgPre: UnsafeMutablePointer<Float> // (M,E)
        let dgenIn: UnsafeMutablePointer<Float> // (M,G)
        let drtd: UnsafeMutablePointer<Float> // (N,)
        let ddAct, ddPre: UnsafeMutablePointer<Float> // (N,H)
    }

    struct IntBuffers {
        let maskedPositions, maskedLabels, maskedRow, mlmPred: UnsafeMutablePointer<Int32> // (M,)
        let sampled: UnsafeMutablePointer<Int32> // (M,) the generator's samples
        let replaced: UnsafeMutablePointer<Int32> // (N,) 1 where the discriminator's input differs from the original
    }

    /// The generator's config for a discriminator `config` at `size` (0 < size ≤ 1) of its width: hidden
    /// size, heads and intermediate size scaled (at least 1 each, the heads dividing the hidden size), the
    /// depth, vocabulary, positions, activation and dropout the same. ELECTRA's paper finds 1/4 to 1/2 best.
    public static func generatorConfig(discriminator config: BertConfig, size: Double) throws -> BertConfig {
        guard size > 0, size <= 1 else { throw ModelError.invalidSize(what: "the generator size must be in (0, 1], is \(size)") }
        var g = config
        g.hiddenSize = max(1, Int((Double(config.hiddenSize) * size).rounded()))
        g.intermediateSize = max(1, Int((Double(config.intermediateSize) * size).rounded()))
        var heads = max(1, Int((Double(config.numAttentionHeads) * size).rounded()))
        while g.hiddenSize % heads != 0 { heads -= 1 }
        g.numAttentionHeads = heads
        (g.architectures, g.id2label, g.label2id) = (nil, nil, nil)
        return g
    }

    /// Allocates both models for batches up to the given sizes; parameters start at zero (call
    /// `initialize(seed:)` or load them). `generator` must have the discriminator's depth-independent
    /// fields (vocabulary, positions, types) and a hidden size no larger than the discriminator's.
    public init(config: BertConfig, generator: BertConfig, discriminatorWeight: Float = 50, maxBatch: Int, maxSeqLength: Int,
                maxMaskedPositions: Int, threads: Int) throws {
        try config.validate()
        try generator.validate(path: "generator config")
        guard generator.vocabSize == config.vocabSize, generator.maxPositionEmbeddings == config.maxPositionEmbeddings,
              generator.typeVocabSize == config.typeVocabSize, generator.hiddenSize <= config.hiddenSize else {
            throw ModelError.invalidSize(what: "the generator must share the discriminator's vocabulary, positions and token types, and be no wider")
        }
        guard discriminatorWeight.isFinite, discriminatorWeight >= 0 else {
            throw ModelError.invalidSize(what: "the discriminator weight must be a finite non-negative number, is \(discriminatorWeight)")
        }
        guard maxMaskedPositions > 0, maxMaskedPositions <= maxBatch * maxSeqLength else {
            throw ModelError.invalidSize(what: "maxMaskedPositions \(maxMaskedPositions) must be in 1...maxBatch·maxSeqLength")
        }
        guard let act = Activation(huggingFaceName: config.hiddenAct) else { throw ModelError.unsupportedActivation(name: config.hiddenAct) }
        discriminatorAct = act
        self.config = config
        generatorConfig = generator
        self.discriminatorWeight = discriminatorWeight
        self.maxBatch = maxBatch
        self.maxSeqLength = maxSeqLength
        self.maxMaskedPositions = maxMaskedPositions
        self.threads = threads
        layout = ParameterLayout.electraForPreTraining(discriminator: config, generator: generator)
        let e = config.hiddenSize
        discriminator = try Encoder(config: config, layout: layout,
                                    names: .init(embeddings: "electra.embeddings.", projection: nil, layers: "electra.encoder.layer.", pooler: nil),
                                    maxBatch: maxBatch, maxSeqLength: maxSeqLength, maxHeadRows: 0, threads: threads, arena: arena)
        self.generator = try Encoder(
            config: generator, layout: layout,
            names: .init(embeddings: "electra.embeddings.", projection: generator.hiddenSize == e ? nil : "generator.electra.embeddings_project.",
                         layers: "generator.electra.encoder.layer.", pooler: nil),
            embeddingSize: e, maxBatch: maxBatch, maxSeqLength: maxSeqLength, maxHeadRows: maxMaskedPositions, threads: threads, arena: arena)
        parameters = UnsafeMutableBufferPointer(start: arena.floats(layout.count), count: layout.count)
        gradients = UnsafeMutableBufferPointer(start: arena.floats(layout.count), count: layout.count)
        discriminator.products.parameters = parameters
        self.generator.products.parameters = parameters
        off = Offsets(layout)
        let (n, m, h, g, v) = (maxBatch * maxSeqLength, maxMaskedPositions, config.hiddenSize, generator.hiddenSize, config.vocabSize)
        let floats = arena.floats, int32s = arena.int32s
        acts = Activations(genIn: floats(m * g), gPre: floats(m * e), gAct: floats(m * e), gMean: floats(m), gRstd: floats(m),
                           gOut: floats(m * e), logits: floats(m * v), mlmLosses: floats(m), mlmLse: floats(m), dPre: floats(n * h),
                           dAct: floats(n * h), rtdLogits: floats(n))
        grads = ActivationGradients(dlogits: floats(m * v), dgOut: floats(m * e), dgAct: floats(m * e), dgPre: floats(m * e),
                                    dgenIn: floats(m * g), drtd: floats(n), ddAct: floats(n * h), ddPre: floats(n * h))
        ints = IntBuffers(maskedPositions: int32s(m), maskedLabels: int32s(m), maskedRow: int32s(m), mlmPred: int32s(m),
                          sampled: int32s(m), replaced: int32s(n))
    }

    /// The arithmetic of the matrix products of both models (fp32 unless set).
    public var precision: ModelPrecision {
        get { discriminator.products.precision }
        set {
            discriminator.products.precision = newValue
            generator.products.precision = newValue
        }
    }

    /// Says that `parameters` changed (see `BertShellModel.parametersDidChange`).
    public func parametersDidChange() {
        discriminator.products.parametersDidChange()
        generator.products.parametersDidChange()
    }

    /// Sets every gradient to zero.
    public func zeroGradients() { zero(gradients.baseAddress!, count: gradients.count, threads: threads) }

    /// transformers' `_init_weights` over every tensor of both models (see `BertShellModel.initialize`).
    public func initialize(seed: UInt64) {
        discriminator.initialize(parameters.baseAddress!, std: config.initializerRange, seed: seed)
    }

    /// Sets the shared position embeddings to sinusoids (see `BertShellModel.initializePositionsSinusoidally`).
    public func initializePositionsSinusoidally() {
        discriminator.sinusoidalPositions(parameters.baseAddress!, std: config.initializerRange)
    }

    /// The generator's samples at the masked positions of the last forward pass, (M,), in the batch's order.
    public var sampledTokens: [Int32] { Array(UnsafeBufferPointer(start: ints.sampled, count: last?.m ?? 0)) }

    /// The discriminator's logits of the last forward pass, (B·T,): > 0 says "replaced".
    public var discriminatorLogits: UnsafeBufferPointer<Float> {
        UnsafeBufferPointer(start: acts.rtdLogits, count: last.map { $0.discriminator.b * $0.discriminator.t } ?? 0)
    }

    /// The generator's MLM logits of the last forward pass, (M,V).
    public var generatorLogits: UnsafeBufferPointer<Float> {
        UnsafeBufferPointer(start: acts.logits, count: (last?.m ?? 0) * config.vocabSize)
    }
}
