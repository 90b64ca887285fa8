import Foundation
#if canImport(Glibc)
import Glibc
#endif
import Support
import XCTest

final class CoresTests: XCTestCase {
    /// The default thread count must follow the affinity mask, as coreutils' `nproc` does (a child
    /// inherits this process's mask), so that `taskset -c 0 bert ...` runs one thread.
    func testAvailableCoresMatchesNproc() throws {
        let nproc = URL(fileURLWithPath: "/usr/bin/nproc")
        guard FileManager.default.isExecutableFile(atPath: nproc.path) else {
            throw XCTSkip("/usr/bin/nproc (coreutils) is not installed")
        }
        let process = Process()
        process.executableURL = nproc
        let pipe = Pipe()
        process.standardOutput = pipe
        try process.run()
        process.waitUntilExit()
        let text = String(decoding: pipe.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        let expected = try XCTUnwrap(Int(text.trimmingCharacters(in: .whitespacesAndNewlines)), "nproc printed \(text)")
        XCTAssertEqual(availableCores(), expected)
        XCTAssertLessThanOrEqual(availableCores(), ProcessInfo.processInfo.activeProcessorCount)
    }

    /// Restricting this thread to one CPU (what `taskset -c 0` does to a process) must make the
    /// default one thread; the mask is restored afterwards.
    func testAvailableCoresFollowsARestrictedMask() throws {
        typealias Affinity = @convention(c) (pid_t, Int, UnsafeMutableRawPointer) -> Int32
        guard let get = dlsym(nil, "sched_getaffinity"), let set = dlsym(nil, "sched_setaffinity") else {
            throw XCTSkip("no sched_getaffinity/sched_setaffinity in this C library")
        }
        let getAffinity = unsafeBitCast(get, to: Affinity.self), setAffinity = unsafeBitCast(set, to: Affinity.self)
        var saved = [UInt8](repeating: 0, count: 1024)
        XCTAssertEqual(saved.withUnsafeMutableBytes { getAffinity(0, $0.count, $0.baseAddress!) }, 0)
        let first = try XCTUnwrap(saved.indices.first { saved[$0] != 0 }, "empty affinity mask")
        var one = [UInt8](repeating: 0, count: 1024)
        one[first] = saved[first] & (~saved[first] &+ 1)  // the lowest CPU in the mask
        XCTAssertEqual(one.withUnsafeMutableBytes { setAffinity(0, $0.count, $0.baseAddress!) }, 0)
        let restricted = availableCores()
        XCTAssertEqual(saved.withUnsafeMutableBytes { setAffinity(0, $0.count, $0.baseAddress!) }, 0)
        XCTAssertEqual(restricted, 1)
        XCTAssertEqual(availableCores(), saved.reduce(0) { $0 + $1.nonzeroBitCount })
    }
}
