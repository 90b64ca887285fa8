import Kernels

/// BERT with a sequence-classification head, as Hugging Face's `BertForSequenceClassification`:
/// logits (B,L) = classifier(dropout(pooled)), pooled = tanh(dense(h[:,0])) from the same encoder
/// as `BertForPreTraining`; loss = mean cross-entropy over the rows that have a label.
///
/// Storage as `BertForPreTraining`: one Float buffer of parameters with Hugging Face names
/// ("bert.*", "classifier.weight", "classifier.bias"), one of gradients, activations allocated
/// once for (maxBatch, maxSeqLength). Not thread-safe: one forward/backward at a time.
public final class BertForSequenceClassification: BertShellModel {
    /// The shared part (config, encoder, parameters, gradients); see `BertShellModel` for its accessors.
    /// `config.classifierDropout` applies before the classifier.
    public let shell: ModelShell
    /// L, the number of classes.
    public let numLabels: Int
    /// When true (the default), the last encoder layer computes its attention output, feed-forward
    /// block and LayerNorms only at the [CLS] rows, the only ones the head reads (keys and values still
    /// cover every position): same logits, loss and gradients, about T times less work in that layer.
    /// `sequenceOutput` is then empty; set false to get all of it.
    public var prunesLastLayer = true

    let off: Offsets
    let acts: Activations
    let grads: ActivationGradients
    let ints: IntBuffers
    /// Dropout probability before the classifier in training mode: classifier_dropout ?? hidden_dropout_prob.
    let classifierP: Float
    /// Shape and dropout of the last forward pass; nil before the first one or after a failed one.
    var last: LastPass? { didSet { shell.lastPass = last?.pass } }

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
        guard (0..<1).contains(p) else { throw ModelError.invalidProbability(field: "classifier_dropout", value: p) }
        shell = try ModelShell(config: config, maxBatch: maxBatch, maxSeqLength: maxSeqLength, maxHeadRows: 0, threads: threads,
                               layout: { .bertForSequenceClassification($0, numLabels: numLabels) })
        self.numLabels = numLabels
        classifierP = Float(p)
        off = Offsets(shell.layout)
        let arena = shell.arena

        let (b, h, l) = (maxBatch, config.hiddenSize, numLabels)
        let floats = arena.floats, int32s = arena.int32s
        acts = Activations(dropped: floats(b * h), dropMask: p > 0 ? arena.bytes(b * h) : nil, logits: floats(b * l),
                           labelled: floats(b * l), losses: floats(b), lse: floats(b))
        grads = ActivationGradients(dlabelled: floats(b * l), dlogits: floats(b * l), ddropped: floats(b * h))
        ints = IntBuffers(rows: int32s(b), targets: int32s(b), predictions: int32s(b))
    }

    /// The logits of the last forward pass, (B,L), every row (labelled or not). Valid until the next
    /// forward pass; empty before the first.
    public var logits: UnsafeBufferPointer<Float> {
        UnsafeBufferPointer(start: acts.logits, count: last.map { $0.pass.b * numLabels } ?? 0)
    }
}
