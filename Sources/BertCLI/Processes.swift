import DataParallel
import Support
import Foundation
import Training

/// The processes of this invocation: MPI's world when `mpirun` (or another MPI launcher) started it,
/// else this one process, with MPI never initialised.
enum Processes {
    /// Set once in `Bert.main`, before any command runs, and only read afterwards.
    nonisolated(unsafe) static var mpi: MPIProcessGroup?

    /// The group the trainers use.
    static var group: ProcessGroup { mpi ?? SingleProcess() }

    /// Whether this process prints results and progress (rank 0, or the only process).
    static var isRoot: Bool { mpi.map { $0.rank == 0 } ?? true }

    /// Joins MPI when launched by an MPI launcher.
    static func start() throws {
        guard MPIProcessGroup.launched() else { return }
        mpi = try MPIProcessGroup()
    }

    /// "rank R of N: " in a data-parallel run's messages, so a failing rank is named.
    static var messagePrefix: String { mpi.map { $0.size > 1 ? "rank \($0.rank) of \($0.size): " : "" } ?? "" }

    /// Ends the process. Under MPI a failure aborts the whole job (the other ranks would otherwise wait
    /// in their next collective forever); success finalises MPI first.
    static func exit(_ code: Int32) -> Never {
        if let mpi {
            if code != 0 && mpi.size > 1 { mpi.abort(code: code) }
            try? mpi.finalize()
        }
        Foundation.exit(code)
    }
}
