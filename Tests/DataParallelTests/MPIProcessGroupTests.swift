import DataParallel
import Foundation
import Support
import TestSupport
import XCTest

/// `MPIProcessGroup`'s collectives on two real ranks. `testTwoRanks` starts this test binary under
/// `mpirun -np 2`, running only `testCollectivesOnEveryRank`, which checks every collective's result on
/// its rank; each rank's XCTest run must pass and say so. Needs Open MPI's `mpirun` (`make deps`).
final class MPIProcessGroupTests: XCTestCase {
    /// Set by `testTwoRanks` for the ranks it starts.
    static let innerVariable = "BERTKIT_MPI_GROUP_TEST"

    func testLaunchedReadsTheLauncherEnvironment() {
        XCTAssertTrue(MPIProcessGroup.launched(environment: ["OMPI_COMM_WORLD_SIZE": "2"]))
        XCTAssertTrue(MPIProcessGroup.launched(environment: ["PMIX_RANK": "0"]))
        XCTAssertTrue(MPIProcessGroup.launched(environment: ["PMI_RANK": "1"]))
        XCTAssertFalse(MPIProcessGroup.launched(environment: ["PATH": "/usr/bin", "HOME": "/root"]))
    }

    func testTwoRanks() throws {
        let binary = ProcessInfo.processInfo.arguments[0]
        var env = mpiEnvironment(ProcessInfo.processInfo.environment)
        env[Self.innerVariable] = "1"
        let r = try runProgram(try mpirunPath(), ["--oversubscribe", "-np", "2", binary,
                                                  "DataParallelTests.MPIProcessGroupTests/testCollectivesOnEveryRank"], environment: env)
        XCTAssertEqual(r.status, 0, "mpirun failed:\n" + r.stdoutText + r.stderr)
        for rank in 0..<2 {
            XCTAssertTrue(r.stdoutText.contains("MPI group test: rank \(rank) of 2 checked every collective"), r.stdoutText + r.stderr)
        }
        XCTAssertFalse(r.stdoutText.contains("skipped"), "a rank skipped instead of running:\n" + r.stdoutText)
    }

    /// Runs only on the ranks `testTwoRanks` starts (elsewhere it says so and skips).
    func testCollectivesOnEveryRank() throws {
        guard ProcessInfo.processInfo.environment[Self.innerVariable] != nil, MPIProcessGroup.launched() else {
            throw XCTSkip("runs on the two ranks that testTwoRanks starts under mpirun")
        }
        let group = try MPIProcessGroup()
        XCTAssertEqual(group.size, 2)
        let rank = group.rank
        XCTAssertTrue((0..<2).contains(rank))
        XCTAssertEqual(group.isRoot, rank == 0)

        var floats: [Float] = [Float(rank + 1), 10 * Float(rank + 1), -1, 0.25]
        try floats.withUnsafeMutableBufferPointer { try group.allReduceSum($0) }
        XCTAssertEqual(floats, [3, 30, -2, 0.5])

        var doubles: [Double] = [Double(rank) * 0.5, 1e-300, Double(1 << 40) + Double(rank)]
        try doubles.withUnsafeMutableBufferPointer { try group.allReduceSum($0) }
        XCTAssertEqual(doubles, [0.5, 2e-300, Double(1 << 41) + 1])
        XCTAssertEqual(try group.allReduceSum([Double(rank)]), [1])

        let (low, high) = try group.allReduceMinMax([UInt64(rank), 7, UInt64.max - UInt64(rank)])
        XCTAssertEqual(low, [0, 7, UInt64.max - 1])
        XCTAssertEqual(high, [1, 7, UInt64.max])

        // A non-blocking sum over a buffer larger than one eager message, polled, then waited for.
        let count = 300_000
        let buffer = UnsafeMutableBufferPointer<Float>.allocate(capacity: count)  // (count,) rank + 1 everywhere
        defer { buffer.deallocate() }
        buffer.initialize(repeating: Float(rank + 1))
        let pending = try group.startAllReduceSum(buffer)
        _ = try pending.poll()
        try pending.wait()
        XCTAssertTrue(buffer.allSatisfy { $0 == 3 }, "the non-blocking sum is not 1 + 2 everywhere")

        // An empty buffer completes at once.
        let empty = UnsafeMutableBufferPointer<Float>(start: nil, count: 0)
        XCTAssertTrue(try group.startAllReduceSum(empty).poll())

        try group.barrier()
        print("MPI group test: rank \(rank) of \(group.size) checked every collective")
        try group.finalize()
    }
}
