import Foundation
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
}
