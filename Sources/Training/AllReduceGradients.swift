import Foundation
import Support

/// The data-parallel reducer: each process's gradients are already weighted by its share of the
/// update's masked positions and sequences (over all processes), so the update's gradients are their sum.
///
/// Bucketed and overlapped with the backward, as PyTorch DDP and Horovod do it: the gradient buffer is
/// cut into buckets of whole `ModelShell.gradientStages` (the head, the pooler, each layer from the last,
/// the embeddings) of at least `bucketElements` each. During the last backward of an update
/// (`stageReady`, from the model's hook) a bucket's sum starts as soon as all its stages are complete,
/// while the backward goes on below it; `reduce` starts what is left and waits for all. Buckets are fixed
/// by the layout and started in the same order on every process, as MPI requires.
public final class AllReduceGradients: GradientReducer {
    /// The processes.
    public let group: ProcessGroup
    /// The buckets: ranges of the gradient buffer, in the order they are started.
    public let buckets: [Range<Int>]
    /// For each bucket, the index of its last stage (it may start once that stage is complete).
    let lastStage: [Int]
    var started: [PendingCollective] = []
    var stagesReady = 0
    /// Seconds `reduce` spent waiting for sums to finish, and updates reduced, since the start.
    public private(set) var secondsWaiting = 0.0
    public private(set) var updates = 0

    /// A reducer over `group`, for a model whose backward completes `stages` in order (`gradientStages`);
    /// `bucketElements` 0 or more than the buffer: one bucket, summed after the backward (no overlap).
    public init(group: ProcessGroup, stages: [Range<Int>], bucketElements: Int) {
        self.group = group
        var buckets: [Range<Int>] = []
        var lastStage: [Int] = []
        var current: Range<Int>?
        let total = stages.reduce(0) { $0 + $1.count }
        let size = bucketElements > 0 ? bucketElements : total
        for (k, stage) in stages.enumerated() {
            current = current.map { stage.lowerBound..<$0.upperBound } ?? stage  // stages descend
            if current!.count >= size || k == stages.count - 1 {
                buckets.append(current!)
                lastStage.append(k)
                current = nil
            }
        }
        self.buckets = buckets
        self.lastStage = lastStage
    }

    /// Called as stage k of the update's last backward completes (`ModelShell.onGradientStageReady`):
    /// starts every bucket whose stages are all complete, and lets the ones under way progress. An error
    /// is kept and thrown by `reduce` (the backward itself cannot throw).
    public func stageReady(_ k: Int, gradients: UnsafeMutableBufferPointer<Float>) {
        guard deferredError == nil else { return }
        stagesReady = k + 1
        do {
            try startReadyBuckets(gradients, all: false)
            for op in started { _ = try op.poll() }
        } catch {
            deferredError = error
        }
    }
    var deferredError: Error?

    func startReadyBuckets(_ gradients: UnsafeMutableBufferPointer<Float>, all: Bool) throws {
        while started.count < buckets.count && (all || lastStage[started.count] < stagesReady) {
            let range = buckets[started.count]
            started.append(try group.startAllReduceSum(UnsafeMutableBufferPointer(rebasing: gradients[range])))
        }
    }

    public func reduce(_ gradients: UnsafeMutableBufferPointer<Float>) throws {
        if let error = deferredError { throw error }
        let t0 = Date()
        try startReadyBuckets(gradients, all: true)
        for op in started { try op.wait() }
        secondsWaiting += Date().timeIntervalSince(t0)
        updates += 1
        started.removeAll(keepingCapacity: true)
        stagesReady = 0
    }
}
