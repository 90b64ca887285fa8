import Foundation

/// The processes of a data-parallel run and the collective operations training needs from them. Every
/// process calls each operation in the same order; the operations block until all have called.
/// `SingleProcess` is the group of one; `bert` provides an MPI group under `mpirun`.
public protocol ProcessGroup: AnyObject {
    /// This process's index, from 0; process 0 writes checkpoints and logs.
    var rank: Int { get }
    /// The number of processes.
    var size: Int { get }
    /// Replaces `buffer` on every process with the element-wise sum over the processes (every process
    /// ends with the same values).
    func allReduceSum(_ buffer: UnsafeMutableBufferPointer<Float>) throws
    /// The same for Doubles.
    func allReduceSum(_ buffer: UnsafeMutableBufferPointer<Double>) throws
    /// The element-wise minimum and maximum of `values` over the processes.
    func allReduceMinMax(_ values: [UInt64]) throws -> (min: [UInt64], max: [UInt64])
    /// Returns when every process has called it.
    func barrier() throws
    /// Starts replacing `buffer` with the sum over the processes and returns at once; the buffer must not
    /// be touched until the returned operation is complete. Every process starts the same operations in
    /// the same order.
    func startAllReduceSum(_ buffer: UnsafeMutableBufferPointer<Float>) throws -> PendingCollective
}

/// A collective operation under way.
public protocol PendingCollective: AnyObject {
    /// Lets the operation progress; true once it is complete.
    func poll() throws -> Bool
    /// Returns when the operation is complete.
    func wait() throws
}

/// An operation that was complete when it started.
public final class CompletedCollective: PendingCollective {
    public init() {}
    public func poll() throws -> Bool { true }
    public func wait() throws {}
}

extension ProcessGroup {
    /// Whether this is the process that writes (rank 0).
    public var isRoot: Bool { rank == 0 }

    /// The sums of `values` over the processes.
    public func allReduceSum(_ values: [Double]) throws -> [Double] {
        var v = values
        try v.withUnsafeMutableBufferPointer { try allReduceSum($0) }
        return v
    }
}

/// The group of one process: every collective is the identity.
public final class SingleProcess: ProcessGroup {
    public init() {}
    public var rank: Int { 0 }
    public var size: Int { 1 }
    public func allReduceSum(_ buffer: UnsafeMutableBufferPointer<Float>) throws {}
    public func allReduceSum(_ buffer: UnsafeMutableBufferPointer<Double>) throws {}
    public func allReduceMinMax(_ values: [UInt64]) throws -> (min: [UInt64], max: [UInt64]) { (values, values) }
    public func barrier() throws {}
    public func startAllReduceSum(_ buffer: UnsafeMutableBufferPointer<Float>) throws -> PendingCollective { CompletedCollective() }
}
