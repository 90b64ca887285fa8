import Foundation
@testable import Pipeline
import TestSupport
import XCTest

/// The series drawn in an SVG chart, read back from its circles' data-x/data-y (series in order).
func plottedSeries(_ svg: String) -> [(name: String, points: [(x: Double, y: Double)])] {
    svg.components(separatedBy: "<g class=\"series\" data-name=\"").dropFirst().map { part in
        let name = String(part.prefix { $0 != "\"" })
        let group = part.components(separatedBy: "</g>")[0]
        let points = group.components(separatedBy: "<circle ").dropFirst().map { c -> (x: Double, y: Double) in
            func attribute(_ a: String) -> Double {
                Double(c.components(separatedBy: "\(a)=\"")[1].prefix { $0 != "\"" }) ?? .nan
            }
            return (attribute("data-x"), attribute("data-y"))
        }
        return (name, points)
    }
}

/// report.html's charts draw exactly the rows of metrics.jsonl.
final class HTMLReportTests: XCTestCase {
    func testRunChartsDrawTheMetricsRows() throws {
        let dir = Fixtures.temporaryDirectory().path
        var rows: [[String: Any]] = []
        var rng = SeededRandom(seed: 4)
        for k in 1...25 {
            var row: [String: Any] = ["step": k * 10, "loss": Double.random(in: 2...9, using: &rng), "mlm_accuracy": Double.random(in: 0...0.3, using: &rng),
                                      "learning_rate": 1e-4 * Double(k)]
            if k % 5 != 0 { row["nsp_accuracy"] = Double.random(in: 0.4...0.9, using: &rng) }  // a series with gaps
            rows.append(row)
        }
        rows.append(["step": 250, "epoch": 1, "eval_accuracy": 0.5])  // a fine-tuning-style evaluation row
        let text = try rows.map { String(decoding: try JSONSerialization.data(withJSONObject: $0, options: .sortedKeys), as: UTF8.self) }.joined(separator: "\n")
        try Data((text + "\n").utf8).write(to: URL(fileURLWithPath: dir + "/metrics.jsonl"))
        let charts = try HTMLReport.runCharts(metrics: dir + "/metrics.jsonl", title: "run")
        XCTAssertEqual(charts.map(\.yLabel), ["loss", "accuracy", "learning rate"])
        // The rows as the file holds them (JSON text need not round-trip every last bit of a Double).
        let logged = try text.split(separator: "\n").map { try XCTUnwrap(JSONSerialization.jsonObject(with: Data($0.utf8)) as? [String: Any]) }
        func expected(_ key: String) -> [(x: Double, y: Double)] {
            logged.compactMap { r in (r[key] as? NSNumber).map { ((r["step"] as! NSNumber).doubleValue, $0.doubleValue) } }
        }
        let drawn = charts.map { plottedSeries(HTMLReport.svg($0)) }
        XCTAssertEqual(drawn[0].map(\.name), ["loss"])
        XCTAssertEqual(drawn[1].map(\.name), ["MLM accuracy", "NSP accuracy", "dev split"])
        for (series, key) in [(drawn[0][0], "loss"), (drawn[1][0], "mlm_accuracy"), (drawn[1][1], "nsp_accuracy"), (drawn[1][2], "eval_accuracy"),
                              (drawn[2][0], "learning_rate")] {
            let want = expected(key)
            XCTAssertEqual(series.points.count, want.count, key)
            for (p, q) in zip(series.points, want) { XCTAssertEqual(p.x, q.x, key); XCTAssertEqual(p.y, q.y, key) }
        }
        // The page is self-contained: no script, nothing fetched.
        let page = try HTMLReport.runPage(directory: dir)
        XCTAssertFalse(page.contains("<script") || page.contains("http://") && !page.contains("xmlns=\"http://www.w3.org/2000/svg\"") || page.contains("https://"))
        XCTAssertEqual(page.components(separatedBy: "<svg ").count - 1, 3)
        // A malformed row names its line.
        try Data((text + "\n{not json\n").utf8).write(to: URL(fileURLWithPath: dir + "/metrics.jsonl"))
        XCTAssertThrowsError(try HTMLReport.runCharts(metrics: dir + "/metrics.jsonl", title: "run")) { e in
            XCTAssertTrue("\(e)".contains("metrics.jsonl:27"), "\(e)")
        }
    }
}
