/// What the pre-training loop needs of a model: BERT's (`BertForPreTraining`, MLM + NSP or MLM alone)
/// or ELECTRA's generator and discriminator (`ElectraForPreTraining`).
public protocol PretrainingModel: AnyObject {
    /// The encoder that fine-tuning keeps (ELECTRA's discriminator).
    var config: BertConfig { get }
    /// Names, shapes and offsets of every trained tensor.
    var layout: ParameterLayout { get }
    /// All parameters, (layout.count,).
    var parameters: UnsafeMutableBufferPointer<Float> { get }
    /// d(loss)/d(parameters), same layout.
    var gradients: UnsafeMutableBufferPointer<Float> { get }
    /// The ranges `backward` completes one after another (data-parallel buckets).
    var gradientStages: [Range<Int>] { get }
    /// Called by `backward` with k as `gradientStages[k]` completes.
    var onGradientStageReady: ((Int) -> Void)? { get set }
    /// The arithmetic of the matrix products.
    var precision: ModelPrecision { get set }
    /// Says that `parameters` changed (bf16 copies are made again).
    func parametersDidChange()
    /// Sets every gradient to zero.
    func zeroGradients()
    /// transformers' initialisation from `seed`.
    func initialize(seed: UInt64)
    /// Sinusoidal position embeddings (after `initialize`).
    func initializePositionsSinusoidally()
    /// One forward pass; `sampleSeed` draws ELECTRA's replacements (BERT ignores it).
    func forward(_ batch: PretrainingBatch, dropoutSeed: UInt64?, sampleSeed: UInt64) throws -> PretrainingOutput
    /// Adds the gradient of mlmScale × MLM + otherScale × (NSP, or λ × RTD) to `gradients`.
    func backward(mlmScale: Float, otherScale: Float)
}

extension BertForPreTraining: PretrainingModel {
    public var gradientStages: [Range<Int>] { shell.gradientStages }
    public var onGradientStageReady: ((Int) -> Void)? {
        get { shell.onGradientStageReady }
        set { shell.onGradientStageReady = newValue }
    }
    public func forward(_ batch: PretrainingBatch, dropoutSeed: UInt64?, sampleSeed: UInt64) throws -> PretrainingOutput {
        try forward(batch, dropoutSeed: dropoutSeed)
    }
    public func backward(mlmScale: Float, otherScale: Float) { backward(mlmScale: mlmScale, nspScale: otherScale) }
}

extension ElectraForPreTraining: PretrainingModel {
    public func forward(_ batch: PretrainingBatch, dropoutSeed: UInt64?, sampleSeed: UInt64) throws -> PretrainingOutput {
        try forward(batch, dropoutSeed: dropoutSeed, sampleSeed: sampleSeed, replacements: nil)
    }
    public func backward(mlmScale: Float, otherScale: Float) { backward(mlmScale: mlmScale, rtdScale: otherScale) }
}
