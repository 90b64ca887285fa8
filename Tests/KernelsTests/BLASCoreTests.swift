import Foundation
import XCTest

@testable import Kernels

/// When OpenBLAS does not recognise the CPU it falls back to ancient kernels (Debian's 0.3.21 takes a
/// 5th-generation Xeon for a Prescott); `bert` then runs itself again with the right OPENBLAS_CORETYPE.
final class BLASCoreTests: XCTestCase {
    let avx512: Set = ["sse4_2", "avx", "avx2", "fma", "avx512f", "avx512bw", "avx512vl", "avx512dq", "avx512cd", "avx512_bf16"]
    let avx2: Set = ["sse4_2", "avx", "avx2", "fma"]

    func testAFallbackToOldKernelsIsCorrectedAndNothingElse() {
        XCTAssertEqual(blasCoreCorrection(environment: [:], flags: avx512, core: "Prescott"), "SkylakeX")
        XCTAssertEqual(blasCoreCorrection(environment: [:], flags: avx512, core: "Haswell"), "SkylakeX")
        XCTAssertEqual(blasCoreCorrection(environment: [:], flags: avx2, core: "Prescott"), "Haswell")
        XCTAssertEqual(blasCoreCorrection(environment: [:], flags: avx2, core: "Sandybridge"), "Haswell")
        for (flags, core) in [(avx512, "SkylakeX"), (avx512, "Cooperlake"), (avx512, "SapphireRapids"), (avx512, "Zen"),
                              (avx2, "Haswell"), (avx2, "Zen"), (["sse4_2"], "Prescott")] as [(Set<String>, String)] {
            XCTAssertNil(blasCoreCorrection(environment: [:], flags: flags, core: core), "\(core) on \(flags.sorted())")
        }
        XCTAssertNil(blasCoreCorrection(environment: ["OPENBLAS_CORETYPE": "Prescott"], flags: avx512, core: "Prescott"),
                     "the user's choice stands")
    }

    /// This process's OpenBLAS: where the correction applies, `bert` runs with it (the CLI tests run the
    /// binary with OPENBLAS_CORETYPE removed); here it only has to be one of the two answers.
    func testThisMachine() {
        let c = blasCoreCorrection(environment: [:])
        XCTAssertTrue(c == nil || c == "SkylakeX" || c == "Haswell", "\(String(describing: c)) for \(Parallel.blasCoreName)")
    }
}
