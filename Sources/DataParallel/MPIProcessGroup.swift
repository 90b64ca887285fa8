import CMPIShim
import Foundation
import Support

/// An MPI call that failed: its name and MPI's text for the code.
public struct MPIError: Error, CustomStringConvertible {
    /// The shim function that failed.
    public let call: String
    /// MPI's error code.
    public let code: Int32
    /// MPI's text for it.
    public let text: String

    public var description: String { "MPI: \(call) failed (\(code)): \(text)" }
}

/// The processes started by `mpirun` as a `ProcessGroup` (Open MPI's world communicator). Only the
/// thread that initialised MPI calls it (MPI_THREAD_FUNNELED): the trainers call collectives from
/// their run loop, between the threaded kernels.
public final class MPIProcessGroup: ProcessGroup {
    public let rank: Int
    public let size: Int

    /// Whether this process was started by an MPI launcher (Open MPI's `mpirun`/`mpiexec`, or a PMIx or
    /// PMI launcher such as Slurm's `srun`). Without one, `bert` never initialises MPI and a single
    /// process behaves exactly as without MPI.
    public static func launched(environment: [String: String] = ProcessInfo.processInfo.environment) -> Bool {
        ["OMPI_COMM_WORLD_SIZE", "PMIX_RANK", "PMI_RANK"].contains { environment[$0] != nil }
    }

    /// Initialises MPI (once per process) and joins the world communicator.
    public init() throws {
        var r: Int32 = 0
        var n: Int32 = 0
        try Self.check("MPI_Init_thread", bertkit_mpi_init(&r, &n))
        rank = Int(r)
        size = Int(n)
    }

    /// MPI's library version line, e.g. "Open MPI v4.1.4, ...".
    public static var libraryVersion: String {
        var buffer = [CChar](repeating: 0, count: 512)
        bertkit_mpi_library_version(&buffer, buffer.count)
        return text(buffer).split(separator: ",").first.map(String.init) ?? ""
    }

    public func allReduceSum(_ buffer: UnsafeMutableBufferPointer<Float>) throws {
        guard size > 1, let base = buffer.baseAddress else { return }
        try Self.check("MPI_Allreduce", bertkit_mpi_allreduce_sum_float(base, Int64(buffer.count)))
    }

    public func allReduceSum(_ buffer: UnsafeMutableBufferPointer<Double>) throws {
        guard size > 1, let base = buffer.baseAddress else { return }
        try Self.check("MPI_Allreduce", bertkit_mpi_allreduce_sum_double(base, Int64(buffer.count)))
    }

    public func allReduceMinMax(_ values: [UInt64]) throws -> (min: [UInt64], max: [UInt64]) {
        var low = values
        var high = values
        guard size > 1, !values.isEmpty else { return (low, high) }
        try Self.check("MPI_Allreduce", bertkit_mpi_allreduce_min_uint64(&low, Int64(low.count)))
        try Self.check("MPI_Allreduce", bertkit_mpi_allreduce_max_uint64(&high, Int64(high.count)))
        return (low, high)
    }

    public func barrier() throws {
        guard size > 1 else { return }
        try Self.check("MPI_Barrier", bertkit_mpi_barrier())
    }

    public func startAllReduceSum(_ buffer: UnsafeMutableBufferPointer<Float>) throws -> PendingCollective {
        guard size > 1, let base = buffer.baseAddress, buffer.count > 0 else { return CompletedCollective() }
        var request: UnsafeMutableRawPointer?
        try Self.check("MPI_Iallreduce", bertkit_mpi_iallreduce_sum_float(base, Int64(buffer.count), &request))
        return MPIRequest(request!)
    }

    /// Ends the whole job with `code` (every rank exits): what a rank that fails does, so that the
    /// others never wait for it in a collective.
    public func abort(code: Int32) -> Never {
        bertkit_mpi_abort(code)
        exit(code)  // MPI_Abort does not return; this is for the type checker
    }

    /// MPI_Finalize: every rank calls it at the end of a successful run.
    public func finalize() throws {
        try Self.check("MPI_Finalize", bertkit_mpi_finalize())
    }

    static func check(_ call: String, _ code: Int32) throws {
        guard code != 0 else { return }
        var buffer = [CChar](repeating: 0, count: 512)
        bertkit_mpi_error_string(code, &buffer, buffer.count)
        throw MPIError(call: call, code: code, text: text(buffer))
    }

    /// A NUL-terminated C string in `buffer` as a String.
    static func text(_ buffer: [CChar]) -> String {
        String(decoding: buffer.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
    }
}

/// An MPI request under way (from MPI_Iallreduce); freed when it completes.
final class MPIRequest: PendingCollective {
    var request: UnsafeMutableRawPointer?

    init(_ request: UnsafeMutableRawPointer) { self.request = request }

    func poll() throws -> Bool {
        guard let r = request else { return true }
        var done: Int32 = 0
        try MPIProcessGroup.check("MPI_Test", bertkit_mpi_test(r, &done))
        if done != 0 { request = nil }
        return done != 0
    }

    func wait() throws {
        guard let r = request else { return }
        request = nil
        try MPIProcessGroup.check("MPI_Wait", bertkit_mpi_wait(r))
    }
}
