import Kernels

/// What both BERT models share, written once: the validated config, the encoder, one Float buffer of
/// parameters with its named layout (Hugging Face names) and one of gradients, the activation arena
/// sized once for (maxBatch, maxSeqLength), and the thread count. A model (`BertForPreTraining`,
/// `BertForSequenceClassification`) is this shell plus its head's tensors and buffers.
public final class ModelShell {
    /// The model's hyper-parameters (validated).
    public let config: BertConfig
    /// Names, shapes and offsets of the tensors in `parameters` and `gradients`.
    public let layout: ParameterLayout
    /// All parameters, (layout.count,).
    public let parameters: UnsafeMutableBufferPointer<Float>
    /// d(loss)/d(parameters), same layout; `backward` adds to it, `zeroGradients` clears it.
    public let gradients: UnsafeMutableBufferPointer<Float>
    /// Largest batch size B the activations were allocated for.
    public let maxBatch: Int
    /// Largest sequence length T the activations were allocated for.
    public let maxSeqLength: Int
    /// Worker threads of every kernel (results do not depend on it).
    public let threads: Int

    /// The gradient buffer cut into the ranges `backward` completes one after another: the head (every
    /// tensor after the pooler), the pooler, the encoder layers from the last to the first, then the
    /// embeddings (whose word table is also the tied MLM decoder, so it is complete only at the very
    /// end). Adjacent, in descending order of offset, covering `gradients` exactly once.
    public let gradientStages: [Range<Int>]
    /// Called by `backward`, on its thread, with k each time `gradientStages[k]` is complete for this
    /// backward (k = 0, 1, … in order): where a data-parallel reducer starts sending a bucket while the
    /// rest of the backward runs. Nil (the default) costs nothing.
    public var onGradientStageReady: ((Int) -> Void)?

    let encoder: Encoder
    let arena: Arena
    /// The encoder pass of the model's last forward; nil before the first one or after a failed one.
    var lastPass: Encoder.Pass?

    /// Checks the config and sizes, builds the layout with `makeLayout`, allocates the encoder's buffers,
    /// then the parameters and gradients (zero). `maxHeadRows`: rows besides [CLS] the head reads.
    init(config: BertConfig, maxBatch: Int, maxSeqLength: Int, maxHeadRows: Int, threads: Int,
         layout makeLayout: (BertConfig) -> ParameterLayout) throws {
        let arena = Arena()
        try config.validate()
        encoder = try Encoder(config: config, layout: makeLayout(config), maxBatch: maxBatch, maxSeqLength: maxSeqLength,
                              maxHeadRows: maxHeadRows, threads: threads, arena: arena)
        self.arena = arena
        self.config = config
        self.maxBatch = maxBatch
        self.maxSeqLength = maxSeqLength
        self.threads = threads
        layout = encoder.layout
        parameters = UnsafeMutableBufferPointer(start: arena.floats(layout.count), count: layout.count)
        gradients = UnsafeMutableBufferPointer(start: arena.floats(layout.count), count: layout.count)
        gradientStages = Self.stages(layout, layers: config.numHiddenLayers)
        encoder.products.parameters = parameters
    }

    /// `gradientStages` from the layout's names.
    static func stages(_ layout: ParameterLayout, layers: Int) -> [Range<Int>] {
        func span(_ prefix: String) -> Range<Int> {
            let e = layout.entries.filter { $0.name.hasPrefix(prefix) }
            precondition(!e.isEmpty, "no tensors named \(prefix)*")
            return e.map(\.offset).min()!..<e.map { $0.offset + $0.count }.max()!
        }
        let pooler = span("bert.pooler.")
        var stages = [pooler.upperBound..<layout.count, pooler]
        for l in stride(from: layers - 1, through: 0, by: -1) { stages.append(span("bert.encoder.layer.\(l).")) }
        stages.append(span("bert.embeddings."))
        for k in 1..<stages.count { precondition(stages[k].upperBound == stages[k - 1].lowerBound, "gradient stages must be adjacent") }
        precondition(stages.last!.lowerBound == 0 && stages.reduce(0) { $0 + $1.count } == layout.count)
        return stages
    }
}

/// A BERT model built on a `ModelShell`; the shared accessors below are written once for both models.
public protocol BertShellModel: AnyObject {
    /// The shared part: config, encoder, parameters, gradients, arena.
    var shell: ModelShell { get }
}

extension BertShellModel {
    /// The model's hyper-parameters (validated).
    public var config: BertConfig { shell.config }
    /// Names, shapes and offsets of the tensors in `parameters` and `gradients`.
    public var layout: ParameterLayout { shell.layout }
    /// All parameters, (layout.count,).
    public var parameters: UnsafeMutableBufferPointer<Float> { shell.parameters }
    /// d(loss)/d(parameters), same layout; `backward` adds to it, `zeroGradients` clears it.
    public var gradients: UnsafeMutableBufferPointer<Float> { shell.gradients }
    /// Largest batch size B the activations were allocated for.
    public var maxBatch: Int { shell.maxBatch }
    /// Largest sequence length T the activations were allocated for.
    public var maxSeqLength: Int { shell.maxSeqLength }
    /// Worker threads of every kernel (results do not depend on it).
    public var threads: Int { shell.threads }

    var encoder: Encoder { shell.encoder }
    var arena: Arena { shell.arena }

    /// Sets the position embeddings to sinusoids of the initializer's standard deviation (see
    /// `Encoder.sinusoidalPositions`); call after `initialize(seed:)`.
    public func initializePositionsSinusoidally() {
        encoder.sinusoidalPositions(parameters.baseAddress!, std: config.initializerRange)
    }

    /// The arithmetic of the matrix products (fp32 unless set). Choose `.bf16(.oneDNN)` only where
    /// `BF16Support.isNative`.
    public var precision: ModelPrecision {
        get { shell.encoder.products.precision }
        set { shell.encoder.products.precision = newValue }
    }

    /// Says that `parameters` changed (an optimizer step, a load) after the model's first pass, so that
    /// in bf16 the weights are rounded again before the next product (once per update, not per product).
    /// In fp32 it costs nothing. A bf16 pass after an unannounced change stops the process.
    public func parametersDidChange() { shell.encoder.products.parametersDidChange() }

    /// Sets every gradient to zero.
    public func zeroGradients() {
        zero(shell.gradients.baseAddress!, count: shell.gradients.count, threads: shell.threads)
    }

    /// Hugging Face's `_init_weights` over every tensor, the head's included: normal(0, initializer_range)
    /// for linear weights and the three embedding tables (the padding id's word-embedding row then zeroed,
    /// as for `padding_idx`), zero biases (cls.predictions.bias included), LayerNorm weight 1 and bias 0.
    /// Deterministic: entry k draws from the SplitMix64 stream `deriveSeed(seed, k)` through Box–Muller,
    /// so the "bert.*" tensors (first in every layout) get the same values in both models.
    public func initialize(seed: UInt64) {
        shell.encoder.initialize(shell.parameters.baseAddress!, std: shell.config.initializerRange, seed: seed)
    }

    /// The encoder output of the last forward pass (last_hidden_state), (B,T,H); empty when that
    /// pass pruned the last layer (see `prunesLastLayer`).
    public var sequenceOutput: UnsafeBufferPointer<Float> {
        let count = shell.lastPass.map { $0.kept == nil ? $0.b * $0.t * shell.config.hiddenSize : 0 } ?? 0
        return UnsafeBufferPointer(start: shell.encoder.output, count: count)
    }

    /// The pooler output of the last forward pass, tanh(dense(h[:,0])), (B,H) (before any head dropout).
    public var pooledOutput: UnsafeBufferPointer<Float> {
        UnsafeBufferPointer(start: shell.encoder.acts.pooled, count: shell.lastPass.map { $0.b * shell.config.hiddenSize } ?? 0)
    }
}
