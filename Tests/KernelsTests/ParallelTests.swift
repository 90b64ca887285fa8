import Support
import Kernels
import XCTest

final class ParallelTests: XCTestCase {
    func testForEachVisitsEveryIndexOnce() {
        for threads in [1, 2, 3, 8] {
            for count in [0, 1, 5, 17] {
                var hits = [Int](repeating: 0, count: count)
                hits.withUnsafeMutableBufferPointer { h in
                    let p = UncheckedSendable(h)
                    Parallel.forEach(count, threads: threads) { i in p.value[i] += 1 }
                }
                XCTAssertEqual(hits, [Int](repeating: 1, count: count), "threads \(threads) count \(count)")
            }
        }
    }
}
