/// One batch for masked-LM + next-sentence pre-training. (B,T) arrays are row-major.
public struct PretrainingBatch: Sendable {
    /// B, the number of sequences.
    public var batchSize: Int
    /// T, the (padded) length of every sequence.
    public var seqLength: Int
    /// Token ids (B,T) in 0..<vocab_size.
    public var inputIds: [Int32]
    /// Segment ids (B,T) in 0..<type_vocab_size.
    public var tokenTypeIds: [Int32]
    /// (B,T): 1 for a real token, 0 for padding (padding is ignored as an attention key).
    public var attentionMask: [Int32]
    /// Flat indices b·T + t of the masked positions of the whole batch, in any order, distinct.
    public var maskedPositions: [Int32]
    /// The original ids at `maskedPositions` (the MLM targets), same order.
    public var maskedLabels: [Int32]
    /// (B,): 0 when segment B is the real continuation of A, 1 when it is random (transformers' convention).
    public var nextSentenceLabels: [Int32]

    /// A batch; `validate`d by the model before use.
    public init(batchSize: Int, seqLength: Int, inputIds: [Int32], tokenTypeIds: [Int32], attentionMask: [Int32],
                maskedPositions: [Int32], maskedLabels: [Int32], nextSentenceLabels: [Int32]) {
        self.batchSize = batchSize
        self.seqLength = seqLength
        self.inputIds = inputIds
        self.tokenTypeIds = tokenTypeIds
        self.attentionMask = attentionMask
        self.maskedPositions = maskedPositions
        self.maskedLabels = maskedLabels
        self.nextSentenceLabels = nextSentenceLabels
    }
}

/// Losses and accuracy counts of one forward pass.
public struct PretrainingOutput: Sendable, Equatable {
    /// mlmLoss + nspLoss, the loss that `backward()` differentiates.
    public var loss: Float
    /// Mean cross-entropy over all masked positions of the batch (not per sequence), as transformers.
    public var mlmLoss: Float
    /// Mean next-sentence cross-entropy over the batch.
    public var nspLoss: Float
    /// Masked positions whose arg-max prediction is the label.
    public var mlmCorrect: Int
    /// Number of masked positions.
    public var mlmCount: Int
    /// Sequences whose NSP arg-max is the label.
    public var nspCorrect: Int
    /// Number of sequences.
    public var nspCount: Int
    /// ELECTRA's discriminator (nil for BERT's objectives).
    public var replacedToken: ReplacedTokenOutput?

    /// An output with every field given.
    public init(loss: Float, mlmLoss: Float, nspLoss: Float, mlmCorrect: Int, mlmCount: Int, nspCorrect: Int, nspCount: Int,
                replacedToken: ReplacedTokenOutput? = nil) {
        self.loss = loss
        self.mlmLoss = mlmLoss
        self.nspLoss = nspLoss
        self.mlmCorrect = mlmCorrect
        self.mlmCount = mlmCount
        self.nspCorrect = nspCorrect
        self.nspCount = nspCount
        self.replacedToken = replacedToken
    }
}

/// The replaced-token-detection side of one ELECTRA forward pass (counts over the batch's real tokens).
public struct ReplacedTokenOutput: Sendable, Equatable {
    /// Mean binary cross-entropy of the discriminator over the real tokens (λ not applied).
    public var loss: Float
    /// Real tokens the discriminator classified right (replaced or original).
    public var correct: Int
    /// Real tokens (attention mask 1).
    public var count: Int
    /// Tokens the generator replaced (its sample differs from the original).
    public var replaced: Int
    /// Replaced tokens the discriminator called replaced (recall = detected / replaced).
    public var detected: Int
    /// Masked positions where the generator's sample is the original token.
    public var sampledOriginal: Int

    public init(loss: Float, correct: Int, count: Int, replaced: Int, detected: Int, sampledOriginal: Int) {
        (self.loss, self.correct, self.count, self.replaced, self.detected, self.sampledOriginal) = (loss, correct, count, replaced, detected, sampledOriginal)
    }
}

/// Errors from building a model or checking a batch against it.
public enum ModelError: Error, Equatable, CustomStringConvertible {
    /// A model size or capacity that cannot work (`what` says which and why).
    case invalidSize(what: String)
    /// A config.json activation (`hidden_act`) the kernels do not implement.
    case unsupportedActivation(name: String)
    /// A config.json probability outside [0, 1) (`field` names it).
    case invalidProbability(field: String, value: Double)
    /// The batch has more sequences than the model was allocated for.
    case batchTooLarge(batchSize: Int, max: Int)
    /// The sequences are longer than the allocated maximum or max_position_embeddings.
    case sequenceTooLong(seqLength: Int, max: Int)
    /// An array of the batch has the wrong number of elements.
    case wrongCount(field: String, expected: Int, actual: Int)
    /// A value outside its range, at `index` of `field`.
    case outOfRange(field: String, index: Int, value: Int32, range: Range<Int>)
    /// More masked positions than allocated.
    case tooManyMaskedPositions(count: Int, max: Int)
    /// A batch without any masked position (the mean MLM loss is undefined).
    case noMaskedPositions
    /// The same flat position appears twice in `maskedPositions`.
    case duplicateMaskedPosition(position: Int32)

    public var description: String {
        switch self {
        case let .invalidSize(what): return "invalid model size: \(what)"
        case let .unsupportedActivation(name):
            return "config.json: hidden_act \"\(name)\" is not supported; use gelu, gelu_new, gelu_pytorch_tanh or relu"
        case let .invalidProbability(field, value): return "config.json: \(field) must be in [0, 1), is \(value)"
        case let .batchTooLarge(b, m): return "batch of \(b) sequences exceeds the allocated maximum \(m); lower --batch-size"
        case let .sequenceTooLong(t, m): return "sequence length \(t) exceeds the maximum \(m) (allocation or max_position_embeddings)"
        case let .wrongCount(f, e, a): return "batch field \(f) has \(a) elements, expected \(e)"
        case let .outOfRange(f, i, v, r): return "batch field \(f)[\(i)] = \(v) is outside \(r.lowerBound)..<\(r.upperBound)"
        case let .tooManyMaskedPositions(c, m): return "\(c) masked positions exceed the allocated maximum \(m)"
        case .noMaskedPositions: return "batch has no masked positions; the masked-LM loss is undefined"
        case let .duplicateMaskedPosition(p): return "masked position \(p) appears twice in the batch"
        }
    }
}
