import Support
import XCTest

import PretrainingData
@testable import Training
import Inference

final class ClassificationMetricsTests: XCTestCase {
    /// y_true = [0,0,0,1,1,2,2,2,2,0], y_pred = [0,1,0,1,2,2,2,0,2,0], worked by hand from the
    /// definitions scikit-learn's classification_report uses: precision tp/(tp+fp), recall tp/(tp+fn).
    func testAgainstHandComputedReport() {
        var m = ClassificationMetrics(labels: ["a", "b", "c"])
        for (t, p) in zip([0, 0, 0, 1, 1, 2, 2, 2, 2, 0], [0, 1, 0, 1, 2, 2, 2, 0, 2, 0]) { m.add(truth: t, predicted: p) }
        XCTAssertEqual(m.accuracy, 0.7, accuracy: 1e-12)
        // a: tp 3, predicted 4, support 4; b: tp 1, predicted 2, support 2; c: tp 3, predicted 4, support 4
        XCTAssertEqual(m.precision(0), 0.75, accuracy: 1e-12); XCTAssertEqual(m.recall(0), 0.75, accuracy: 1e-12)
        XCTAssertEqual(m.precision(1), 0.5, accuracy: 1e-12); XCTAssertEqual(m.recall(1), 0.5, accuracy: 1e-12)
        XCTAssertEqual(m.precision(2), 0.75, accuracy: 1e-12); XCTAssertEqual(m.recall(2), 0.75, accuracy: 1e-12)
        XCTAssertEqual(m.macroF1, (0.75 + 0.5 + 0.75) / 3, accuracy: 1e-12)
        XCTAssertEqual(m.confusion, [[3, 1, 0], [0, 1, 1], [1, 0, 3]])
        XCTAssertTrue(m.table().contains("macro f1"))
    }

    func testClassNeverPredictedOrAbsent() {
        var m = ClassificationMetrics(labels: ["x", "y"])
        for _ in 0..<3 { m.add(truth: 0, predicted: 0) }
        m.add(truth: 1, predicted: 0)
        XCTAssertEqual(m.precision(1), 0)
        XCTAssertEqual(m.f1(1), 0)
        XCTAssertEqual(m.f1(0), 2 * 0.75 * 1 / 1.75, accuracy: 1e-12)
        let json = m.jsonObject()
        XCTAssertEqual(json["examples"] as? Int, 4)
        XCTAssertNotNil(JSONSerialization.isValidJSONObject(json) ? json : nil)
    }
}

/// `FineTuner.groupedByLength`: transformers' length-grouped mega-batches, their batches in a seeded order.
final class GroupByLengthTests: XCTestCase {
    func testMegaBatchesAreRunsOfTheSortedMegaBatchInASeededOrder() {
        var rng = SystemRandomNumberGenerator()
        let lengths = (0..<1000).map { _ in Int.random(in: 3...128, using: &rng) }
        let order = Array(0..<1000).shuffled(using: &rng)
        var g = SeededGenerator(seed: 9)
        let grouped = FineTuner.groupedByLength(order, batchSize: 4, rng: &g) { lengths[$0] }
        XCTAssertEqual(grouped.sorted(), Array(0..<1000), "a permutation: nothing lost or repeated")
        var sweeps = 0
        for start in stride(from: 0, to: 1000, by: 200) {  // mega-batches of 50 × 4
            let run = Array(grouped[start..<min(1000, start + 200)])
            XCTAssertEqual(Set(run), Set(order[start..<min(1000, start + 200)]), "examples stay in their mega-batch")
            // Oracle: the mega-batch sorted longest first (stable) and cut into batches of 4; the
            // run holds exactly those batches, in some order.
            let sorted = order[start..<min(1000, start + 200)].enumerated()
                .sorted { lengths[$0.element] != lengths[$1.element] ? lengths[$0.element] > lengths[$1.element] : $0.offset < $1.offset }
                .map(\.element)
            let expected = stride(from: 0, to: sorted.count, by: 4).map { Array(sorted[$0..<min($0 + 4, sorted.count)]) }
            let got = stride(from: 0, to: run.count, by: 4).map { Array(run[$0..<min($0 + 4, run.count)]) }
            XCTAssertEqual(Set(got), Set(expected), "batches are runs of the sorted mega-batch")
            if got == expected { sweeps += 1 }
        }
        XCTAssertEqual(sweeps, 0, "batches are not handed out longest first")
        // The same generator state gives the same order; another seed another.
        var g1 = SeededGenerator(seed: 9), g2 = SeededGenerator(seed: 10)
        XCTAssertEqual(FineTuner.groupedByLength(order, batchSize: 4, rng: &g1) { lengths[$0] }, grouped)
        XCTAssertNotEqual(FineTuner.groupedByLength(order, batchSize: 4, rng: &g2) { lengths[$0] }, grouped)
        // Less padding: the summed batch maxima drop.
        func padded(_ o: [Int]) -> Int { stride(from: 0, to: o.count, by: 4).map { o[$0..<min(o.count, $0 + 4)].map { lengths[$0] }.max()! * 4 }.reduce(0, +) }
        XCTAssertLessThan(padded(grouped), padded(order))
    }
}
