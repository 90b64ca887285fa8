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

    func testRunSkipAndFinishAfterKill() throws {
        let dir = Fixtures.temporaryDirectory().path
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let path = try pipeline(in: dir)
        let first = try runBert(["run", path])
        XCTAssertEqual(first.status, 0, first.stderr)
        XCTAssertTrue(first.stdoutText.contains("mlm_accuracy") && first.stdoutText.contains("macro_f1"), first.stdoutText)
        let again = try runBert(["run", path])
        XCTAssertEqual(again.status, 0, again.stderr)
        for stage in ["vocab", "shards", "pretrain", "pretrain-eval", "finetune", "classifier-eval"] {
            XCTAssertTrue(again.stderr.contains("\(stage): up to date, skipped"), again.stderr)
        }

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
    }
}
