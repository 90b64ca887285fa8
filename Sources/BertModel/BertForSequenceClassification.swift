import Kernels

/// BERT with a sequence-classification head, as Hugging Face's `BertForSequenceClassification`:
/// logits (B,L) = classifier(dropout(pooled)), pooled = tanh(dense(h[:,0])) from the same encoder
/// as `BertForPreTraining`; loss = mean cross-entropy over the rows that have a label.
///
/// Storage as `BertForPreTraining`: one Float buffer of parameters with Hugging Face names
/// ("bert.*", "classifier.weight", "classifier.bias"), one of gradients, activations allocated
/// once for (maxBatch, maxSeqLength). Not thread-safe: one forward/backward at a time.
public final class BertForSequenceClassification {
    /// The model's hyper-parameters (validated); `classifierDropout` applies before the classifier.
    public let config: BertConfig
    /// L, the number of classes.
    public let numLabels: Int
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
    /// When true (the default), the last encoder layer computes its attention output, feed-forward
    /// block and LayerNorms only at the [CLS] rows, the only ones the head reads (keys and values still
    /// cover every position): same logits, loss and gradients, about T times less work in that layer.
    /// `sequenceOutput` is then empty; set false to get all of it.
    public var prunesLastLayer = true

    let encoder: Encoder
    let off: Offsets
    let acts: Activations
    let grads: ActivationGradients
    let ints: IntBuffers
    let arena: Arena
    /// Dropout probability before the classifier in training mode: classifier_dropout ?? hidden_dropout_prob.
    let classifierP: Float
    /// Shape and dropout of the last forward pass; nil before the first one or after a failed one.
    var last: LastPass?

    struct LastPass {
        let pass: Encoder.Pass
        /// K, the number of labelled rows.
        let k: Int
        let classifierP: Float
    }

    /// Element offsets of the head's tensors in `parameters` (and `gradients`).
    struct Offsets {
        let clsW, clsB: Int

        init(_ layout: ParameterLayout) {
            clsW = layout.entry(named: "classifier.weight")!.offset
            clsB = layout.entry(named: "classifier.bias")!.offset
        }
    }

    /// The head's forward activations (K = labelled rows of the pass).
    struct Activations {
        let dropped: UnsafeMutablePointer<Float> // (B,H) dropout(pooled), classifier input
        let dropMask: UnsafeMutablePointer<UInt8>? // (B,H)
        let logits: UnsafeMutablePointer<Float> // (B,L)
        let labelled: UnsafeMutablePointer<Float> // (K,L) logits of the labelled rows
        let losses, lse: UnsafeMutablePointer<Float> // (K,)
    }

    /// Gradients of the head's activations.
    struct ActivationGradients {
        let dlabelled: UnsafeMutablePointer<Float> // (K,L)
        let dlogits: UnsafeMutablePointer<Float> // (B,L)
        let ddropped: UnsafeMutablePointer<Float> // (B,H)
    }

    /// The head's integer inputs and outputs.
    struct IntBuffers {
        let rows: UnsafeMutablePointer<Int32> // (K,) indices of the labelled rows, ascending
        let targets: UnsafeMutablePointer<Int32> // (K,) their labels
        let predictions: UnsafeMutablePointer<Int32> // (K,)
    }

    /// Allocates parameters, gradients and activations for batches up to the given sizes.
    /// Parameters start at zero; call `initialize(seed:)` or load a checkpoint into `parameters`.
    public init(config: BertConfig, numLabels: Int, maxBatch: Int, maxSeqLength: Int, threads: Int) throws {
        guard numLabels > 0 else { throw ModelError.invalidSize(what: "numLabels must be positive, is \(numLabels)") }
        let p = config.classifierDropout ?? config.hiddenDropoutProb
        guard (0..<1).contains(p) else { throw ModelError.invalidSize(what: "classifier_dropout must be in [0, 1), is \(p)") }
        let arena = Arena()
        encoder = try Encoder(config: config, maxBatch: maxBatch, maxSeqLength: maxSeqLength, maxHeadRows: 0, threads: threads,
                              arena: arena, layout: { .bertForSequenceClassification($0, numLabels: numLabels) })
        self.arena = arena
        self.config = config
        self.numLabels = numLabels
        self.maxBatch = maxBatch
        self.maxSeqLength = maxSeqLength
        self.threads = threads
        classifierP = Float(p)
        layout = encoder.layout
        off = Offsets(layout)
        parameters = UnsafeMutableBufferPointer(start: arena.floats(layout.count), count: layout.count)
        gradients = UnsafeMutableBufferPointer(start: arena.floats(layout.count), count: layout.count)

        let (b, h, l) = (maxBatch, config.hiddenSize, numLabels)
        let floats = arena.floats, int32s = arena.int32s
        acts = Activations(dropped: floats(b * h), dropMask: p > 0 ? arena.bytes(b * h) : nil, logits: floats(b * l),
                           labelled: floats(b * l), losses: floats(b), lse: floats(b))
        grads = ActivationGradients(dlabelled: floats(b * l), dlogits: floats(b * l), ddropped: floats(b * h))
        ints = IntBuffers(rows: int32s(b), targets: int32s(b), predictions: int32s(b))
    }

    /// Sets every gradient to zero.
    public func zeroGradients() {
        zero(gradients.baseAddress!, count: gradients.count, threads: threads)
    }

    /// Hugging Face's `_init_weights`, as `BertForPreTraining.initialize(seed:)`: normal(0,
    /// initializer_range) for linear weights (classifier.weight included) and embedding tables (the
    /// padding row then zeroed), zero biases, LayerNorm weight 1 and bias 0. The "bert.*" tensors get
    /// the same values as `BertForPreTraining`'s for the same seed (they come first in both layouts).
    public func initialize(seed: UInt64) {
        encoder.initialize(parameters.baseAddress!, std: config.initializerRange, seed: seed)
    }

    /// The logits of the last forward pass, (B,L), every row (labelled or not). Valid until the next
    /// forward pass; empty before the first.
    public var logits: UnsafeBufferPointer<Float> {
        UnsafeBufferPointer(start: acts.logits, count: last.map { $0.pass.b * numLabels } ?? 0)
    }

    /// The encoder output of the last forward pass (last_hidden_state), (B,T,H); empty when that
    /// pass pruned the last layer (see `prunesLastLayer`).
    public var sequenceOutput: UnsafeBufferPointer<Float> {
        let count = last.map { $0.pass.kept == nil ? $0.pass.b * $0.pass.t * config.hiddenSize : 0 } ?? 0
        return UnsafeBufferPointer(start: encoder.output, count: count)
    }

    /// The pooler output of the last forward pass, tanh(dense(h[:,0])) before the classifier's dropout, (B,H).
    public var pooledOutput: UnsafeBufferPointer<Float> {
        UnsafeBufferPointer(start: encoder.acts.pooled, count: last.map { $0.pass.b * config.hiddenSize } ?? 0)
    }
}
