import Foundation
import Support

/// Runs a bert subcommand named by a pipeline stage. The CLI implements it with its parsers; the
/// engine knows commands only by name.
public protocol PipelineCommandRunner {
    /// The subcommand names a stage may use.
    var commandNames: [String] { get }
    /// nil when `arguments` parse for `command`, else the parser's message.
    func check(command: String, arguments: [String]) -> String?
    /// Runs `command` with `arguments` in this process.
    func run(command: String, arguments: [String]) throws
}

/// An invalid pipeline file or a failed stage; the message names the file, stage or path.
public enum PipelineError: Error, CustomStringConvertible {
    /// The pipeline file or a path it names is wrong (exit 2).
    case invalid(String)
    /// A stage's external command failed (exit 1: the pipeline was fine, the command or its environment,
    /// a full disk say, was not).
    case stageFailed(String)
    public var description: String {
        switch self {
        case let .invalid(m), let .stageFailed(m): return m
        }
    }
}

/// `bert run Pipelines/NAME.json`: the stages of a pipeline file in order, each skipped when its
/// outputs exist and were made from the same settings and inputs.
///
/// A pipeline file:
///
///     {"name": "default", "output": "out/default",
///      "stages": [
///        {"name": "corpus",   "run": ["Corpora/build.sh"], "outputs": ["Corpora/generated/en.txt"]},
///        {"name": "vocab",    "command": "vocab",  "args": {"input": ["Corpora/generated/en.txt"], "size": 16000,
///                                                           "output": "${out}/vocab.txt"}},
///        {"name": "shards",   "command": "shards", "args": {...}},
///        ...]}
///
/// `command` is a `bert` subcommand and `args` its options (`"dupe-factor": 5` → `--dupe-factor 5`;
/// true → a flag; a list → the values one after another). `run` is an external program (the corpus
/// build). `${out}` is the pipeline's output directory, `${root}` the directory of the pipeline
/// file's parent (the repository). A stage records a stamp in `${out}/.stages/NAME.json`: the sha256
/// of its settings, of the stamps before it, and of the size and time of its input files. A stage
/// whose stamp matches and whose `outputs` exist is skipped. While a stage runs, its stamp is in
/// `NAME.pending`: an interrupted stage with the same stamp is run again and continues (bert's own
/// commands resume or rewrite atomically); a stage whose settings or inputs changed first removes its
/// own output (its `output` argument, when inside the pipeline's directory), so nothing made with
/// the old settings is resumed or mixed in.
public struct PipelineEngine {
    public let file: PipelineFile
    let runner: PipelineCommandRunner
    let log: (String) -> Void

    /// Loads and checks the pipeline file at `path`; every stage's arguments are parsed before anything runs.
    public init(path: String, runner: PipelineCommandRunner, log: @escaping (String) -> Void) throws {
        file = try PipelineFile.load(path, runner: runner)
        self.runner = runner
        self.log = log
    }

    /// Runs every stage in order (`force`: even current ones; `dryRun`: only say what would run) and
    /// returns the report, also written to `OUTPUT/report.txt` (not in a dry run, which returns "").
    public func run(force: Bool = false, dryRun: Bool = false) throws -> String {
        let file = self.file
        let out = file.output
        try FileManager.default.createDirectory(atPath: out + "/.stages", withIntermediateDirectories: true)
        var report: [(String, String, Double)] = []
        var previous = ""
        let started = Date()
        for stage in file.stages {
            let stampPath = out + "/.stages/\(stage.name).json"
            let stamp = try stage.stamp(previous: previous)
            previous = stamp
            let current = (try? String(contentsOfFile: stampPath, encoding: .utf8))?.trimmingCharacters(in: .whitespacesAndNewlines) == stamp
                && stage.outputs.allSatisfy { FileManager.default.fileExists(atPath: $0) }
            if current && !force {
                self.log("bert run: \(stage.name): up to date, skipped")
                report.append((stage.name, "skipped (current)", 0))
                continue
            }
            if dryRun {
                self.log("bert run: \(stage.name): would run \(stage.display)")
                continue
            }
            try? FileManager.default.removeItem(atPath: stampPath)
            let pendingPath = out + "/.stages/\(stage.name).pending"
            let pending = (try? String(contentsOfFile: pendingPath, encoding: .utf8))?.trimmingCharacters(in: .whitespacesAndNewlines)
            if let work = stage.workOutput(inside: out), FileManager.default.fileExists(atPath: work) {
                if pending == stamp && !force {
                    self.log("bert run: \(stage.name): continuing an interrupted run")
                } else {
                    self.log("bert run: \(stage.name): \(work) was made with other settings or inputs; removing it and starting again")
                    do { try FileManager.default.removeItem(atPath: work) } catch {
                        throw PipelineError.invalid("\(work): cannot remove it (\(error.localizedDescription)); remove it by hand and run again")
                    }
                }
            }
            try writeFileAtomically(Data((stamp + "\n").utf8), to: pendingPath)
            self.log("bert run: \(stage.name): \(stage.display)")
            let t0 = Date()
            try stage.execute(runner)
            try writeFileAtomically(Data((stamp + "\n").utf8), to: stampPath)
            try? FileManager.default.removeItem(atPath: pendingPath)
            let seconds = Date().timeIntervalSince(t0)
            report.append((stage.name, "ran", seconds))
        }
        if dryRun { return "" }
        let total = Date().timeIntervalSince(started)
        var text = "\n== bert run \(file.name): report ==\n"
        func pad(_ s: String, _ w: Int) -> String { s.count >= w ? s : s + String(repeating: " ", count: w - s.count) }
        // Stage names as wide as the longest, so a long name never runs into its status.
        let width = max(17, (report.map { $0.0.count }.max() ?? 0) + 2)
        for (name, what, seconds) in report {
            text += "  " + pad(name, width) + pad(what, 20) + String(format: "%8.1f s\n", seconds)
        }
        text += "  " + pad("total", width + 20) + String(format: "%8.1f s\n", total)
        for stage in file.stages {
            if let path = stage.reportFile, let data = FileManager.default.contents(atPath: path) {
                text += "\n-- \(stage.name): \(path)\n"
                if path.hasSuffix(".json"), let object = try? JSONSerialization.jsonObject(with: data) as? [String: Any] {
                    // JSON reports: the top-level numbers only (matrices and per-class tables stay in the file).
                    for key in object.keys.sorted() {
                        if let n = object[key] as? NSNumber, !(object[key] is Bool) { text += "  \(key): \(n)\n" }
                    }
                } else {
                    text += String(decoding: data, as: UTF8.self)
                    if !text.hasSuffix("\n") { text += "\n" }
                }
            }
        }
        if !file.gains.isEmpty { text += "\n-- what pre-training bought (fine-tuned from the pre-trained encoder vs from a random one)\n" }
        for gain in file.gains {
            let value = { (path: String) in Self.metric(gain.metric, in: path) }
            let a = gain.pretrained.map(value), b = gain.baseline.map(value)
            guard a.allSatisfy({ $0 != nil }), b.allSatisfy({ $0 != nil }) else {
                let missing = zip(gain.pretrained + gain.baseline, a + b).filter { $0.1 == nil }.map(\.0)
                text += "  \(gain.name): missing \(gain.metric) in \(missing.joined(separator: ", "))\n"
                continue
            }
            text += Self.gainLine(name: gain.name, pretrained: a.map { $0! }, baseline: b.map { $0! })
        }
        try writeFileAtomically(Data(text.utf8), to: out + "/report.txt")
        try writeFileAtomically(Data(htmlReport(stages: report, total: total).utf8), to: out + "/report.html")
        return text
    }

    /// report.html: the stage table, the curves of every pre-training (and the dev accuracy of every fine-tuning)
    /// run, the held-out and evaluation figures, and each gain with every seed's point.
    func htmlReport(stages report: [(String, String, Double)], total: Double) -> String {
        let file = self.file, out = file.output
        var sections: [(heading: String, html: String)] = []
        sections.append(("Stages", HTMLReport.table(header: ["stage", "status", "seconds"],
                                                     rows: report.map { [$0.0, $0.1, String(format: "%.1f", $0.2)] } + [["total", "", String(format: "%.1f", total)]])))
        var pretraining: [String] = [], finetuning: [String] = []
        for stage in file.stages where stage.commandName == "pretrain" || stage.commandName == "finetune" {
            guard let dir = stage.workOutput(inside: out), let charts = try? HTMLReport.runCharts(metrics: dir + "/metrics.jsonl", title: stage.name) else { continue }
            if stage.commandName == "pretrain" { pretraining += charts.map(HTMLReport.svg) } else if let accuracy = charts.first(where: { $0.yLabel == "accuracy" }) {
                finetuning.append(HTMLReport.svg(accuracy))
            }
        }
        if !pretraining.isEmpty { sections.append(("Pre-training", pretraining.joined(separator: "\n"))) }
        // Evaluation reports (JSON): the pre-training figures (held-out against training) and the fine-tuned classifiers.
        var mlm: [(String, [String: Double])] = [], classifiers: [(String, [String: Double])] = []
        for stage in file.stages {
            guard let path = stage.reportFile, path.hasSuffix(".json"), let data = FileManager.default.contents(atPath: path),
                  let object = try? JSONSerialization.jsonObject(with: data) as? [String: Any] else { continue }
            var numbers: [String: Double] = [:]
            for (k, v) in object { if let n = v as? NSNumber, !(v is Bool) { numbers[k] = n.doubleValue } }
            if numbers["mlm_accuracy"] != nil { mlm.append((stage.name, numbers)) } else { classifiers.append((stage.name, numbers)) }
        }
        for (heading, reports) in [("Pre-training figures (held-out against training)", mlm), ("Fine-tuned classifiers on the test split", classifiers)] where !reports.isEmpty {
            let keys = Set(reports.flatMap { $0.1.keys }).sorted()
            let rows = keys.map { k in [k] + reports.map { r in r.1[k].map { String(format: "%.4f", $0) } ?? "" } }
            sections.append((heading, HTMLReport.table(header: ["metric"] + reports.map(\.0), rows: rows)))
        }
        if !finetuning.isEmpty { sections.append(("Fine-tuning: accuracy against updates", finetuning.joined(separator: "\n"))) }
        // Gains: each fine-tuning seed's pair of points (from scratch → pre-trained), and the single-seed gains in order as a curve.
        var gainHTML: [String] = [], curve: [(String, Double)] = []
        for gain in file.gains {
            let value = { (path: String) in Self.metric(gain.metric, in: path) }
            let a = gain.pretrained.compactMap(value), b = gain.baseline.compactMap(value)
            guard a.count == gain.pretrained.count, b.count == gain.baseline.count else { continue }
            if a.count == 1 && b.count == 1 { curve.append((gain.name, 100 * (a[0] - b[0]))) }
            let series = a.count == b.count
                ? zip(a, b).enumerated().map { HTMLReport.Series(name: "fine-tuning \($0.offset + 1)", points: [(0, $0.element.1), (1, $0.element.0)]) }
                : [HTMLReport.Series(name: "baseline", points: b.map { (0, $0) }), HTMLReport.Series(name: "pre-trained", points: a.map { (1, $0) })]
            gainHTML.append(HTMLReport.svg(HTMLReport.Chart(title: gain.name, xLabel: "", yLabel: gain.metric, series: series,
                                                            connect: a.count == b.count, xNames: ["baseline", "pre-trained"]))
                            + "<p>" + HTMLReport.escape(Self.gainLine(name: gain.name, pretrained: a, baseline: b).trimmingCharacters(in: .whitespacesAndNewlines)) + "</p>")
        }
        if curve.count > 1 {
            gainHTML.append(HTMLReport.svg(HTMLReport.Chart(
                title: "Single-seed gains, in the order declared", xLabel: "gain", yLabel: "points",
                series: [HTMLReport.Series(name: "gain", points: curve.enumerated().map { (Double($0.offset), $0.element.1) })],
                xNames: curve.map { name in name.0.components(separatedBy: " after ").last ?? name.0 })))
        }
        if !gainHTML.isEmpty { sections.append(("What pre-training bought", gainHTML.joined(separator: "\n"))) }
        return HTMLReport.page(title: "bert run \(file.name)", sections: sections)
    }
}

extension PipelineEngine {
    /// The top-level number `metric` of the evaluation JSON file at `path`; nil when it is missing.
    static func metric(_ metric: String, in path: String) -> Double? {
        guard let data = FileManager.default.contents(atPath: path),
              let object = try? JSONSerialization.jsonObject(with: data) as? [String: Any] else { return nil }
        return (object[metric] as? NSNumber)?.doubleValue
    }

    /// One line of the report's gains: the metric from the pre-trained encoder and from the baseline
    /// (means when there is one value per fine-tuning seed), the gain in points and, for paired
    /// seeds, the standard error of the mean paired difference and each seed's gain.
    static func gainLine(name: String, pretrained a: [Double], baseline b: [Double]) -> String {
        let meanA = a.reduce(0, +) / Double(a.count), meanB = b.reduce(0, +) / Double(b.count)
        if a.count == 1 && b.count == 1 {
            return String(format: "  %@: pre-trained %.4f, from scratch %.4f, gain %+.1f points\n", name, meanA, meanB, 100 * (meanA - meanB))
        }
        var line = String(format: "  %@: pre-trained %.4f, from scratch %.4f (means of %d and %d fine-tunings), gain %+.1f points",
                          name, meanA, meanB, a.count, b.count, 100 * (meanA - meanB))
        if a.count == b.count {
            let d = zip(a, b).map { 100 * ($0 - $1) }
            let mean = d.reduce(0, +) / Double(d.count)
            let variance = d.map { ($0 - mean) * ($0 - mean) }.reduce(0, +) / Double(d.count - 1)
            line += String(format: " ± %.1f (standard error over %d paired seeds: %@)", (variance / Double(d.count)).squareRoot(), d.count,
                           d.map { String(format: "%+.1f", $0) }.joined(separator: ", "))
        }
        return line + "\n"
    }
}
