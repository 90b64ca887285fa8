import Foundation

/// A self-contained HTML report: inline SVG charts and tables, no script and nothing fetched from the network.
/// `bert run` writes one beside report.txt (the run's curves, the held-out figures, each gain with every seed's
/// point, the stage table with times); `bert report RUN_DIR` draws the curves of one pre-training or fine-tuning
/// run from its metrics.jsonl. Every plotted point is a `<circle>` carrying its values in `data-x` and `data-y`,
/// so a test can read back exactly what was drawn.
public enum HTMLReport {
    /// One line of a chart: (x, y) points in order.
    public struct Series: Equatable {
        public var name: String
        public var points: [(x: Double, y: Double)]
        public init(name: String, points: [(x: Double, y: Double)]) { self.name = name; self.points = points }
        public static func == (a: Series, b: Series) -> Bool {
            a.name == b.name && a.points.count == b.points.count && zip(a.points, b.points).allSatisfy { $0.x == $1.x && $0.y == $1.y }
        }
    }

    /// A line chart (`connect`) or a dot chart.
    public struct Chart {
        public var title: String
        public var xLabel: String
        public var yLabel: String
        public var series: [Series]
        public var connect = true
        /// Names for integer x positions (a dot chart's categories); nil: numeric ticks.
        public var xNames: [String]? = nil
        public init(title: String, xLabel: String, yLabel: String, series: [Series], connect: Bool = true, xNames: [String]? = nil) {
            self.title = title; self.xLabel = xLabel; self.yLabel = yLabel; self.series = series; self.connect = connect; self.xNames = xNames
        }
    }

    static let colours = ["#1f77b4", "#d62728", "#2ca02c", "#ff7f0e", "#9467bd", "#8c564b"]

    /// The charts of a run's metrics.jsonl: the training losses against updates, the accuracies (MLM and NSP
    /// for pre-training, the training batches' and the dev split's for fine-tuning), and the learning rate.
    /// Rows without a field are skipped for that series. Throws when the file cannot be read.
    public static func runCharts(metrics path: String, title: String) throws -> [Chart] {
        guard let data = FileManager.default.contents(atPath: path) else { throw PipelineError.invalid("\(path): cannot read it") }
        var rows: [[String: Any]] = []
        for (i, line) in String(decoding: data, as: UTF8.self).split(separator: "\n").enumerated() where !line.isEmpty {
            guard let row = try? JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any] else {
                throw PipelineError.invalid("\(path):\(i + 1): not a JSON object")
            }
            rows.append(row)
        }
        func series(_ key: String, _ name: String) -> Series? {
            let points = rows.compactMap { r -> (x: Double, y: Double)? in
                guard let s = (r["step"] as? NSNumber)?.doubleValue, let v = (r[key] as? NSNumber)?.doubleValue, !(r[key] is Bool) else { return nil }
                return (s, v)
            }
            return points.isEmpty ? nil : Series(name: name, points: points)
        }
        var charts: [Chart] = []
        // ELECTRA's runs: the generator's MLM, the discriminator's RTD loss, accuracy and recall on replaced tokens.
        let losses = [series("loss", "loss"), series("mlm_loss", "MLM loss"), series("nsp_loss", "NSP loss"),
                      series("rtd_loss", "RTD loss")].compactMap { $0 }
        if !losses.isEmpty { charts.append(Chart(title: "\(title): training loss", xLabel: "update", yLabel: "loss", series: losses)) }
        let accuracies = [series("mlm_accuracy", "MLM accuracy"), series("nsp_accuracy", "NSP accuracy"), series("accuracy", "training batches"),
                          series("eval_accuracy", "dev split"), series("eval_macro_f1", "dev macro-F1"),
                          series("rtd_accuracy", "RTD accuracy"), series("rtd_recall", "RTD recall"),
                          series("sampled_original", "sampled = original")].compactMap { $0 }
        if !accuracies.isEmpty { charts.append(Chart(title: "\(title): accuracy", xLabel: "update", yLabel: "accuracy", series: accuracies)) }
        if let lr = series("learning_rate", "learning rate") {
            charts.append(Chart(title: "\(title): learning rate", xLabel: "update", yLabel: "learning rate", series: [lr]))
        }
        return charts
    }

    /// An SVG chart, 640 × 300, with axes, ticks, a legend and one circle per point.
    public static func svg(_ chart: Chart) -> String {
        let (w, h, left, right, top, bottom) = (640.0, 300.0, 64.0, 150.0, 28.0, 44.0)
        let all = chart.series.flatMap(\.points)
        guard !all.isEmpty else { return "<p>\(escape(chart.title)): no points</p>" }
        var (x0, x1) = (all.map(\.x).min()!, all.map(\.x).max()!)
        var (y0, y1) = (all.map(\.y).min()!, all.map(\.y).max()!)
        if chart.xNames != nil { x0 -= 0.5; x1 += 0.5 }
        if x1 == x0 { x0 -= 1; x1 += 1 }
        if y1 == y0 { y0 -= abs(y0) * 0.1 + 1e-9; y1 += abs(y1) * 0.1 + 1e-9 }
        let pad = (y1 - y0) * 0.05
        y0 -= pad; y1 += pad
        func px(_ x: Double) -> Double { left + (x - x0) / (x1 - x0) * (w - left - right) }
        func py(_ y: Double) -> Double { h - bottom - (y - y0) / (y1 - y0) * (h - top - bottom) }
        func f(_ v: Double) -> String { String(format: "%.1f", v) }
        var s = "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"\(Int(w))\" height=\"\(Int(h))\" viewBox=\"0 0 \(Int(w)) \(Int(h))\" role=\"img\">"
        s += "<title>\(escape(chart.title))</title>"
        s += "<text x=\"\(f(left))\" y=\"18\" font-size=\"14\" font-weight=\"bold\">\(escape(chart.title))</text>"
        s += "<line x1=\"\(f(left))\" y1=\"\(f(h - bottom))\" x2=\"\(f(w - right))\" y2=\"\(f(h - bottom))\" stroke=\"#444\"/>"
        s += "<line x1=\"\(f(left))\" y1=\"\(f(top))\" x2=\"\(f(left))\" y2=\"\(f(h - bottom))\" stroke=\"#444\"/>"
        for k in 0...4 {
            let y = y0 + (y1 - y0) * Double(k) / 4
            s += "<line x1=\"\(f(left - 4))\" y1=\"\(f(py(y)))\" x2=\"\(f(w - right))\" y2=\"\(f(py(y)))\" stroke=\"#ddd\"/>"
            s += "<text x=\"\(f(left - 6))\" y=\"\(f(py(y) + 4))\" font-size=\"11\" text-anchor=\"end\">\(tick(y))</text>"
        }
        if let names = chart.xNames {
            for (i, name) in names.enumerated() {
                s += "<text x=\"\(f(px(Double(i))))\" y=\"\(f(h - bottom + 16))\" font-size=\"11\" text-anchor=\"middle\">\(escape(name))</text>"
            }
        } else {
            for k in 0...4 {
                let x = x0 + (x1 - x0) * Double(k) / 4
                s += "<text x=\"\(f(px(x)))\" y=\"\(f(h - bottom + 16))\" font-size=\"11\" text-anchor=\"middle\">\(tick(x))</text>"
            }
        }
        s += "<text x=\"\(f((left + w - right) / 2))\" y=\"\(f(h - 6))\" font-size=\"12\" text-anchor=\"middle\">\(escape(chart.xLabel))</text>"
        s += "<text x=\"14\" y=\"\(f((top + h - bottom) / 2))\" font-size=\"12\" text-anchor=\"middle\" transform=\"rotate(-90 14 \(f((top + h - bottom) / 2)))\">\(escape(chart.yLabel))</text>"
        for (k, series) in chart.series.enumerated() {
            let colour = colours[k % colours.count]
            s += "<g class=\"series\" data-name=\"\(escape(series.name))\">"
            if chart.connect && series.points.count > 1 {
                s += "<polyline fill=\"none\" stroke=\"\(colour)\" stroke-width=\"1.5\" points=\"" + series.points.map { "\(f(px($0.x))),\(f(py($0.y)))" }.joined(separator: " ") + "\"/>"
            }
            let r = chart.connect && series.points.count > 40 ? 1.2 : 3.5
            for p in series.points {
                s += "<circle cx=\"\(f(px(p.x)))\" cy=\"\(f(py(p.y)))\" r=\"\(r)\" fill=\"\(colour)\" data-x=\"\(p.x)\" data-y=\"\(p.y)\"/>"
            }
            s += "</g>"
            let ly = top + 8 + Double(k) * 18
            s += "<rect x=\"\(f(w - right + 12))\" y=\"\(f(ly - 8))\" width=\"10\" height=\"10\" fill=\"\(colour)\"/>"
            s += "<text x=\"\(f(w - right + 28))\" y=\"\(f(ly + 1))\" font-size=\"11\">\(escape(series.name))</text>"
        }
        return s + "</svg>"
    }

    /// A tick label: up to 4 significant digits.
    static func tick(_ v: Double) -> String {
        if v != 0 && (abs(v) < 1e-3 || abs(v) >= 1e6) { return String(format: "%.2e", v) }
        return String(format: "%.4g", v)
    }

    /// Text made safe for HTML and SVG.
    public static func escape(_ s: String) -> String {
        s.replacingOccurrences(of: "&", with: "&amp;").replacingOccurrences(of: "<", with: "&lt;")
            .replacingOccurrences(of: ">", with: "&gt;").replacingOccurrences(of: "\"", with: "&quot;")
    }

    /// A whole page: a title and sections of HTML.
    public static func page(title: String, sections: [(heading: String, html: String)]) -> String {
        var s = "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"><title>\(escape(title))</title>"
        s += "<style>body{font-family:sans-serif;margin:24px;max-width:1100px;color:#222}table{border-collapse:collapse;margin:8px 0}"
        s += "td,th{border:1px solid #ccc;padding:3px 8px;text-align:left}td.n{text-align:right;font-variant-numeric:tabular-nums}"
        s += "svg{margin:8px 16px 8px 0;border:1px solid #eee}h2{margin-top:28px}</style></head><body>\n"
        s += "<h1>\(escape(title))</h1>\n"
        for (heading, html) in sections { s += "<h2>\(escape(heading))</h2>\n\(html)\n" }
        return s + "</body></html>\n"
    }

    /// A table of rows of cells; cells that are numbers are right-aligned.
    public static func table(header: [String], rows: [[String]]) -> String {
        var s = "<table><tr>" + header.map { "<th>\(escape($0))</th>" }.joined() + "</tr>"
        for row in rows {
            s += "<tr>" + row.map { Double($0.trimmingCharacters(in: CharacterSet(charactersIn: "+%s "))) != nil ? "<td class=\"n\">\(escape($0))</td>" : "<td>\(escape($0))</td>" }.joined() + "</tr>"
        }
        return s + "</table>"
    }

    /// The report of one run directory (`bert report`): its curves from metrics.jsonl.
    public static func runPage(directory: String) throws -> String {
        let metrics = (directory as NSString).appendingPathComponent("metrics.jsonl")
        let name = URL(fileURLWithPath: directory).standardizedFileURL.lastPathComponent
        let charts = try runCharts(metrics: metrics, title: name)
        return page(title: "BertKit run \(name)", sections: [("Curves from \(metrics)", charts.map(svg).joined(separator: "\n"))])
    }
}
