/// The seam between backward and the optimizer: called once per update, when this process's gradients
/// of the update are complete (every micro-batch accumulated) and before clipping and the optimizer step.
/// A data-parallel run all-reduces (averages) the gradients across its processes here, so that clipping
/// sees the global norm and every process takes the same step. A single process needs nothing.
public protocol GradientReducer: AnyObject {
    /// Makes `gradients` (the model's whole gradient buffer, (layout.count,)) the update's global gradients.
    func reduce(_ gradients: UnsafeMutableBufferPointer<Float>) throws
}

/// One process: the local gradients are the global ones.
public final class LocalGradients: GradientReducer {
    public init() {}
    public func reduce(_ gradients: UnsafeMutableBufferPointer<Float>) throws {}
}

/// One optimizer update from complete local gradients, the same in pre-training and fine-tuning: reduce
/// (the seam above), clip to `maxGradNorm` by the global L2 norm, the optimizer's step (AdamW or LAMB) at `lr`. Returns the norm
/// before clipping.
func applyUpdate(parameters: UnsafeMutableBufferPointer<Float>, gradients: UnsafeMutableBufferPointer<Float>,
                 reducer: GradientReducer, optimizer: MomentOptimizer, maxGradNorm: Double, lr: Double) throws -> Double {
    try reducer.reduce(gradients)
    let norm = clipGlobalNorm(gradients.baseAddress!, count: gradients.count, maxNorm: maxGradNorm)
    optimizer.step(parameters: parameters.baseAddress!, gradients: gradients.baseAddress!, lr: lr)
    return norm
}
