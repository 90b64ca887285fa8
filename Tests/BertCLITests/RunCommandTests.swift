import Foundation
import TestSupport
import XCTest

/// `bert run`: every stage in order, current stages skipped, an interrupted pipeline finished by running it again.
final class RunCommandTests: XCTestCase {
    /// A small pipeline: vocabulary, shards, pre-training a tiny config, fine-tuning, evaluation.
    func pipeline(in dir: String) throws -> String {
        let config = #"{"vocab_size": 600, "hidden_size": 16, "num_hidden_layers": 1, "num_attention_heads": 2, "intermediate_size": 19, "max_position_embeddings": 64}"#
        try Data(config.utf8).write(to: URL(fileURLWithPath: dir + "/tiny.json"))
        var rows = "split\tlabel\ttext\n"
        for i in 0..<60 {
            rows += "\(i % 5 == 0 ? "test" : "train")\t\(i % 2 == 0 ? "even" : "odd")\t\(i % 2 == 0 ? "the lord said unto moses" : "and it came to pass") \(i)\n"
        }
        try Data(rows.utf8).write(to: URL(fileURLWithPath: dir + "/cls.tsv"))
        let sample = Fixtures.path("text/en_sample.txt.zst")
        let file = """
        {"name": "test", "output": "\(dir)/out", "stages": [
          {"name": "vocab", "command": "vocab", "args": {"input": ["\(sample)"], "size": 600, "output": "${out}/vocab.txt"},
           "outputs": ["${out}/vocab.txt"]},
          {"name": "shards", "command": "shards", "args": {"input": ["\(sample)"], "vocab": "${out}/vocab.txt", "output": "${out}/shards",
           "dupe-factor": 1, "max-seq-length": 64, "overwrite": true}, "outputs": ["${out}/shards/index.json"]},
          {"name": "pretrain", "command": "pretrain", "args": {"shards": "${out}/shards", "output": "${out}/pretrain",
           "config": "\(dir)/tiny.json", "batch-size": 8, "max-steps": 40, "save-every-steps": 10, "resume-if-possible": true},
           "outputs": ["${out}/pretrain/latest/model.safetensors"]},
          {"name": "pretrain-eval", "command": "evaluate", "args": {"checkpoint": "${out}/pretrain/latest", "shards": "${out}/shards",
           "limit": 64, "output": "${out}/pretrain-eval.json"}, "outputs": ["${out}/pretrain-eval.json"], "report": "${out}/pretrain-eval.json"},
          {"name": "finetune", "command": "finetune", "args": {"checkpoint": "${out}/pretrain/latest", "data": "\(dir)/cls.tsv",
           "output": "${out}/classifier", "epochs": 1, "batch-size": 8, "max-seq-length": 64}, "outputs": ["${out}/classifier/model.safetensors"]},
          {"name": "classifier-eval", "command": "evaluate", "args": {"checkpoint": "${out}/classifier", "data": "\(dir)/cls.tsv",
           "output": "${out}/classifier-eval.json"}, "outputs": ["${out}/classifier-eval.json"], "report": "${out}/classifier-eval.json"}
        ]}
        """
        let path = dir + "/pipeline.json"
        try Data(file.utf8).write(to: URL(fileURLWithPath: path))
        return path
    }

    /// A pipeline's "gains" compare a metric of two evaluation files (pre-trained against the
    /// from-scratch baseline) and print the difference in points; a malformed entry is refused.
    func testGainsInTheReport() throws {
        let dir = Fixtures.temporaryDirectory().path
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let file = """
        {"name": "gains", "output": "\(dir)/out", "stages": [
          {"name": "a", "run": ["/bin/sh", "-c", "echo '{\\"accuracy\\": 0.6125, \\"macro_f1\\": 0.4}' > \(dir)/out/a.json"],
           "outputs": ["${out}/a.json"]},
          {"name": "a-rather-long-stage-name", "run": ["/bin/sh", "-c", "echo '{\\"accuracy\\": 0.5, \\"macro_f1\\": 0.45}' > \(dir)/out/b.json"],
           "outputs": ["${out}/b.json"]},
          {"name": "seeds", "run": ["/bin/sh", "-c", "echo '{\\"accuracy\\": 0.75}' > \(dir)/out/c.json && echo '{\\"accuracy\\": 0.5}' > \(dir)/out/d.json"],
           "outputs": ["${out}/c.json", "${out}/d.json"]}
        ], "gains": [
          {"name": "accuracy here", "metric": "accuracy", "pretrained": "${out}/a.json", "baseline": "${out}/b.json"},
          {"name": "macro-F1 here", "metric": "macro_f1", "pretrained": "${out}/a.json", "baseline": "${out}/b.json"},
          {"name": "over seeds", "metric": "accuracy", "pretrained": ["${out}/c.json", "${out}/d.json"], "baseline": ["${out}/d.json", "${out}/d.json"]},
          {"name": "unpaired", "metric": "accuracy", "pretrained": ["${out}/c.json", "${out}/d.json"], "baseline": ["${out}/d.json"]}
        ]}
        """
        try Data(file.utf8).write(to: URL(fileURLWithPath: dir + "/p.json"))
        let r = try runBert(["run", dir + "/p.json"])
        XCTAssertEqual(r.status, 0, r.stderr)
        XCTAssertTrue(r.stdoutText.contains("accuracy here: pre-trained 0.6125, from scratch 0.5000, gain +11.2 points")
                      || r.stdoutText.contains("accuracy here: pre-trained 0.6125, from scratch 0.5000, gain +11.3 points"), r.stdoutText)
        XCTAssertTrue(r.stdoutText.contains("macro-F1 here: pre-trained 0.4000, from scratch 0.4500, gain -5.0 points"), r.stdoutText)
        XCTAssertTrue(r.stdoutText.contains("  a-rather-long-stage-name  ran"), "a long stage name stays apart from its status: \(r.stdoutText)")
        // One file per fine-tuning seed: means, the gain of the means, and for paired seeds the
        // standard error of the mean paired difference (differences +25 and 0: mean 12.5, s.e. 12.5).
        XCTAssertTrue(r.stdoutText.contains("over seeds: pre-trained 0.6250, from scratch 0.5000 (means of 2 and 2 fine-tunings), gain +12.5 points ± 12.5 (standard error over 2 paired seeds: +25.0, +0.0)"), r.stdoutText)
        XCTAssertTrue(r.stdoutText.contains("unpaired: pre-trained 0.6250, from scratch 0.5000 (means of 2 and 1 fine-tunings), gain +12.5 points\n"), r.stdoutText)
        // report.html draws each gain: for paired seeds, one line per seed from the baseline (x 0) to the pre-trained arm (x 1).
        let html = try String(contentsOfFile: dir + "/out/report.html", encoding: .utf8)
        let seeds = html.components(separatedBy: "<title>over seeds</title>")[1].components(separatedBy: "</svg>")[0]
        let points = seeds.components(separatedBy: "<circle ").dropFirst().map { c in
            ["data-x", "data-y"].map { Double(c.components(separatedBy: "\($0)=\"")[1].prefix { $0 != "\"" })! }
        }
        XCTAssertEqual(points, [[0, 0.5], [1, 0.75], [0, 0.5], [1, 0.5]])
        XCTAssertTrue(html.contains("gain +12.5 points ± 12.5"), html)
        let notFiles = file.replacingOccurrences(of: #""baseline": ["${out}/d.json"]"#, with: #""baseline": ["${out}/d.json", 3]"#)
        try Data(notFiles.utf8).write(to: URL(fileURLWithPath: dir + "/notfiles.json"))
        let refusedList = try runBert(["run", dir + "/notfiles.json"])
        XCTAssertEqual(refusedList.status, 2, refusedList.stderr)
        XCTAssertTrue(refusedList.stderr.contains("gains[3]"), refusedList.stderr)
        let bad = file.replacingOccurrences(of: #""metric": "macro_f1", "#, with: "")
        try Data(bad.utf8).write(to: URL(fileURLWithPath: dir + "/bad.json"))
        let refused = try runBert(["run", dir + "/bad.json"])
        XCTAssertEqual(refused.status, 2, refused.stderr)
        XCTAssertTrue(refused.stderr.contains("gains[1]"), refused.stderr)
    }

    func testRunSkipAndFinishAfterKill() throws {
        let dir = Fixtures.temporaryDirectory().path
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let path = try pipeline(in: dir)
        let stages = ["vocab", "shards", "pretrain", "pretrain-eval", "finetune", "classifier-eval"]
        let started = Date()
        let first = try runBert(["run", path])
        let wall = Date().timeIntervalSince(started)
        XCTAssertEqual(first.status, 0, first.stderr)
        let report = try Report(first.stdoutText)
        let saved = try String(contentsOfFile: dir + "/out/report.txt", encoding: .utf8)
        XCTAssertTrue(saved.contains("== bert run test: report ==") && first.stdoutText.hasSuffix(saved), "report.txt is the report printed after the stages' output")
        // report.html beside it draws the pre-training losses exactly as metrics.jsonl logged them.
        let html = try String(contentsOfFile: dir + "/out/report.html", encoding: .utf8)
        let lossChart = html.components(separatedBy: "<title>pretrain: training loss</title>")[1].components(separatedBy: "</svg>")[0]
        let drawn = lossChart.components(separatedBy: "data-name=\"loss\"")[1].components(separatedBy: "</g>")[0]
            .components(separatedBy: "data-y=\"").dropFirst().map { Double($0.prefix { $0 != "\"" })! }
        let logged = try String(contentsOfFile: dir + "/out/pretrain/metrics.jsonl", encoding: .utf8).split(separator: "\n")
            .map { try XCTUnwrap((JSONSerialization.jsonObject(with: Data($0.utf8)) as? [String: Any])?["loss"] as? Double) }
        XCTAssertEqual(drawn, logged)
        XCTAssertTrue(html.contains("Pre-training figures (held-out against training)") && html.contains("Fine-tuned classifiers on the test split"))
        // Every stage ran, in order; the times (to 0.1 s) add up to no more than the total, itself within the wall time.
        XCTAssertEqual(report.stages.map(\.name), stages)
        XCTAssertEqual(report.stages.map(\.what), [String](repeating: "ran", count: stages.count), first.stdoutText)
        XCTAssertTrue(report.stages.allSatisfy { $0.seconds >= 0 }, first.stdoutText)
        XCTAssertGreaterThan(report.total, 0, first.stdoutText)
        XCTAssertLessThanOrEqual(report.stages.map(\.seconds).reduce(0, +), report.total + 0.05 * Double(stages.count + 1), first.stdoutText)
        XCTAssertLessThanOrEqual(report.total, wall + 0.05, first.stdoutText)
        // The stages' numbers are what the evaluations print when run on their own.
        XCTAssertEqual(Set(report.values.keys), ["pretrain-eval", "classifier-eval"])
        let mlm = try runBert(["evaluate", "--checkpoint", dir + "/out/pretrain/latest", "--shards", dir + "/out/shards", "--limit", "64"])
        XCTAssertEqual(mlm.status, 0, mlm.stderr)
        try expectSame(report.values["pretrain-eval"], mlm.stdout, keys: ["mlm_accuracy", "mlm_loss", "nsp_accuracy", "nsp_loss", "instances", "masked_positions"])
        let cls = try runBert(["evaluate", "--checkpoint", dir + "/out/classifier", "--data", dir + "/cls.tsv", "--json"])
        XCTAssertEqual(cls.status, 0, cls.stderr)
        try expectSame(report.values["classifier-eval"], cls.stdout, keys: ["accuracy", "macro_f1", "examples"])
        XCTAssertEqual(report.values["classifier-eval"]?["examples"], "12", "the 12 rows of split test")
        XCTAssertEqual(report.values["pretrain-eval"]?["instances"], "64", "--limit 64")

        // A second run: every stage skipped, and reported as skipped, with the same numbers.
        let again = try runBert(["run", path])
        XCTAssertEqual(again.status, 0, again.stderr)
        for stage in stages {
            XCTAssertTrue(again.stderr.contains("\(stage): up to date, skipped"), again.stderr)
        }
        let skipped = try Report(again.stdoutText)
        XCTAssertEqual(skipped.stages.map(\.name), stages)
        XCTAssertEqual(skipped.stages.map(\.what), [String](repeating: "skipped (current)", count: stages.count), again.stdoutText)
        XCTAssertEqual(skipped.stages.map(\.seconds), [Double](repeating: 0, count: stages.count))
        XCTAssertEqual(skipped.values, report.values)

        // kill -9 during pre-training, then run again: earlier stages are not redone, training resumes.
        try FileManager.default.removeItem(atPath: dir + "/out")
        let p = try startBert(["run", path])
        let deadline = Date().addingTimeInterval(120)
        while Date() < deadline, (try? FileManager.default.destinationOfSymbolicLink(atPath: dir + "/out/pretrain/latest")) != "step-00000020" {
            Thread.sleep(forTimeInterval: 0.005)
        }
        kill(p.processIdentifier, SIGKILL)
        p.waitUntilExit()
        let resumed = try runBert(["run", path])
        XCTAssertEqual(resumed.status, 0, resumed.stderr)
        XCTAssertTrue(resumed.stderr.contains("vocab: up to date, skipped") && resumed.stderr.contains("shards: up to date, skipped"), resumed.stderr)
        XCTAssertTrue(resumed.stderr.contains("resuming at update 20") || resumed.stderr.contains("resuming at update 30"), resumed.stderr)
        XCTAssertTrue(resumed.stderr.contains("pretrain: continuing an interrupted run"), resumed.stderr)
        XCTAssertTrue(FileManager.default.fileExists(atPath: dir + "/out/classifier-eval.json"))

        // Other settings for pre-training: its old run is removed, not resumed; the stages before it
        // are skipped and the ones after it run again.
        let edited = try String(contentsOfFile: path, encoding: .utf8).replacingOccurrences(of: #""max-steps": 40"#, with: #""max-steps": 30"#)
        try Data(edited.utf8).write(to: URL(fileURLWithPath: path))
        let changed = try runBert(["run", path])
        XCTAssertEqual(changed.status, 0, changed.stderr)
        XCTAssertTrue(changed.stderr.contains("shards: up to date, skipped"), changed.stderr)
        XCTAssertTrue(changed.stderr.contains("was made with other settings or inputs; removing it"), changed.stderr)
        XCTAssertFalse(changed.stderr.contains("resuming at update"), changed.stderr)
        XCTAssertEqual(try FileManager.default.destinationOfSymbolicLink(atPath: dir + "/out/pretrain/latest"), "step-00000030")
        XCTAssertFalse(FileManager.default.fileExists(atPath: dir + "/out/pretrain/step-00000040"), "nothing of the old run is left")
        XCTAssertFalse(changed.stderr.contains("finetune: up to date"), changed.stderr)
    }

    /// Each key of `reported` (the report's text) equals the value in `json` (an evaluation's output).
    func expectSame(_ reported: [String: String]?, _ json: Data, keys: [String], file: StaticString = #filePath, line: UInt = #line) throws {
        let reported = try XCTUnwrap(reported, file: file, line: line)
        let object = try XCTUnwrap(JSONSerialization.jsonObject(with: json) as? [String: Any], file: file, line: line)
        for key in keys {
            let expected = try XCTUnwrap((object[key] as? NSNumber)?.doubleValue, key, file: file, line: line)
            let got = try XCTUnwrap(reported[key].flatMap(Double.init), "\(key) not in the report: \(reported)", file: file, line: line)
            XCTAssertEqual(got, expected, accuracy: 1e-12 * max(1, abs(expected)), key, file: file, line: line)
        }
    }

    /// The report `bert run` prints: a table of stages (name, "ran" or "skipped (current)", seconds),
    /// the total, then per stage with a report file its top-level numbers.
    struct Report {
        var stages: [(name: String, what: String, seconds: Double)] = []
        var total = -1.0
        var values: [String: [String: String]] = [:]

        init(_ text: String) throws {
            let lines = text.split(separator: "\n", omittingEmptySubsequences: false).map(String.init)
            guard let head = lines.firstIndex(where: { $0.hasPrefix("== bert run ") && $0.hasSuffix(": report ==") }) else {
                throw Bad(text: text)
            }
            var section: String?
            for line in lines[(head + 1)...] where !line.isEmpty {
                if line.hasPrefix("-- ") {
                    let name = String(line.dropFirst(3).prefix { $0 != ":" })
                    section = name
                    values[name] = [:]
                } else if let s = section {
                    let kv = line.trimmingCharacters(in: .whitespaces).components(separatedBy: ": ")
                    guard kv.count == 2 else { throw Bad(text: text) }
                    values[s]![kv[0]] = kv[1]
                } else {
                    // "  name             what                 12.3 s"
                    guard line.hasSuffix(" s") else { throw Bad(text: text) }
                    let fields = line.dropLast(2).split(separator: " ", omittingEmptySubsequences: true).map(String.init)
                    guard fields.count >= 2, let seconds = Double(fields.last!) else { throw Bad(text: text) }
                    if fields[0] == "total" && fields.count == 2 {
                        total = seconds
                    } else {
                        stages.append((fields[0], fields[1..<(fields.count - 1)].joined(separator: " "), seconds))
                    }
                }
            }
        }

        struct Bad: Error, CustomStringConvertible {
            var text: String
            var description: String { "not a bert run report:\n\(text)" }
        }
    }

    func testBadPipelineFilesAreRefused() throws {
        let dir = Fixtures.temporaryDirectory().path
        defer { try? FileManager.default.removeItem(atPath: dir) }
        func expect(_ json: String, _ fragment: String) throws {
            try Data(json.utf8).write(to: URL(fileURLWithPath: dir + "/p.json"))
            let r = try runBert(["run", dir + "/p.json"])
            XCTAssertEqual(r.status, 2, r.stderr)
            XCTAssertTrue(r.stderr.contains(fragment) && r.stderr.contains("p.json"), r.stderr)
        }
        try expect(#"{"output": "o", "stages": [{"name": "x", "command": "transmogrify"}]}"#, "unknown command \"transmogrify\"")
        try expect(#"{"output": "o", "stages": [{"name": "x", "command": "vocab", "colour": 1}]}"#, "unknown key \"colour\"")
        try expect(#"{"output": "o", "stages": [{"name": "x", "command": "vocab", "args": {"input": ["a"], "output": "b", "sise": 5}}]}"#, "sise")
        try expect(#"{"output": "o", "stagez": []}"#, "unknown key \"stagez\"")

        // A "run" program that is not there, or not executable: exit 2, the stage and the path named.
        try Data("echo hi\n".utf8).write(to: URL(fileURLWithPath: dir + "/plain.sh"))  // not executable
        for (program, says) in [("nope.sh", "no such file"), (dir + "/plain.sh", "not an executable file")] {
            try Data(#"{"output": "o", "stages": [{"name": "x", "run": ["\#(program)"]}]}"#.utf8).write(to: URL(fileURLWithPath: dir + "/q.json"))
            let r = try runBert(["run", dir + "/q.json"])
            XCTAssertEqual(r.status, 2, r.stderr)
            XCTAssertTrue(r.stderr.contains("stage x: cannot run") && r.stderr.contains(says) && r.stderr.contains((program as NSString).lastPathComponent),
                          r.stderr)
        }
    }

    /// Every pipeline shipped in Pipelines/ parses, and each of its bert stages' arguments is accepted
    /// by its command: a dry run of a copy whose output is a temporary folder (nothing runs).
    func testShippedPipelinesParseAndEveryStageWouldRun() throws {
        let folder = Fixtures.root.appendingPathComponent("Pipelines").path
        let names = try FileManager.default.contentsOfDirectory(atPath: folder).filter { $0.hasSuffix(".json") }.sorted()
        XCTAssertTrue(names.contains("default.json") && names.contains("full.json"), "\(names)")
        for name in names {
            let dir = Fixtures.temporaryDirectory().path
            defer { try? FileManager.default.removeItem(atPath: dir) }
            let data = try Data(contentsOf: URL(fileURLWithPath: folder + "/" + name))
            guard var object = try JSONSerialization.jsonObject(with: data) as? [String: Any],
                  let stages = object["stages"] as? [[String: Any]] else { return XCTFail("\(name): not a pipeline object") }
            object["output"] = dir + "/out"
            try FileManager.default.createDirectory(atPath: dir + "/Pipelines", withIntermediateDirectories: true)
            try JSONSerialization.data(withJSONObject: object).write(to: URL(fileURLWithPath: dir + "/Pipelines/" + name))
            let r = try runBert(["run", dir + "/Pipelines/" + name, "--dry-run"])
            XCTAssertEqual(r.status, 0, "\(name): \(r.stderr)")
            let said = r.stdoutText + r.stderr
            for stage in stages where stage["foreach"] == nil {  // foreach copies are named from their items
                let stageName = stage["name"] as? String ?? "?"
                XCTAssertTrue(said.contains("\(stageName): would run"), "\(name): stage \(stageName) not listed: \(said)")
            }
            XCTAssertGreaterThanOrEqual(said.components(separatedBy: ": would run ").count - 1, stages.count, "\(name): \(said)")
            XCTAssertFalse(FileManager.default.fileExists(atPath: dir + "/out/report.txt"), "\(name): a dry run wrote a report")
        }
    }
}
