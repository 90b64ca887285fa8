/// One batch for sequence classification. (B,T) arrays are row-major.
public struct ClassificationBatch: Sendable {
    /// B, the number of sequences.
    public var batchSize: Int
    /// T, the (padded) length of every sequence.
    public var seqLength: Int
    /// Token ids (B,T) in 0..<vocab_size; position 0 of each row is the pooled ([CLS]) token.
    public var inputIds: [Int32]
    /// Segment ids (B,T) in 0..<type_vocab_size.
    public var tokenTypeIds: [Int32]
    /// (B,T): 1 for a real token, 0 for padding (padding is ignored as an attention key).
    public var attentionMask: [Int32]
    /// (B,): the label id of each sequence in 0..<numLabels, or -1 for none (prediction only: the
    /// row has logits but no loss).
    public var labels: [Int32]

    /// A batch; checked by the model before use.
    public init(batchSize: Int, seqLength: Int, inputIds: [Int32], tokenTypeIds: [Int32], attentionMask: [Int32], labels: [Int32]) {
        self.batchSize = batchSize
        self.seqLength = seqLength
        self.inputIds = inputIds
        self.tokenTypeIds = tokenTypeIds
        self.attentionMask = attentionMask
        self.labels = labels
    }
}

/// Loss and accuracy count of one classification forward pass.
public struct ClassificationOutput: Sendable, Equatable {
    /// Mean cross-entropy over the labelled rows (0 when there are none), the loss `backward()` differentiates.
    public var loss: Float
    /// Labelled rows whose arg-max logit is the label.
    public var correct: Int
    /// Number of labelled rows (label ≠ -1).
    public var count: Int

    /// An output with every field given.
    public init(loss: Float, correct: Int, count: Int) {
        self.loss = loss
        self.correct = correct
        self.count = count
    }
}
