import Foundation
import TestSupport
import XCTest

/// Every writer on a full disk. Each test mounts a size-limited tmpfs (root or CAP_SYS_ADMIN; elsewhere
/// the test skips and says why) and sweeps its size across the undisturbed output's: at every size `bert`
/// must either finish or exit 1 naming a file on that disk and "No space left"; leave nothing that a
/// later run takes for whole (no index.json, no `latest` to a partial checkpoint, no model at the top of
/// a fine-tuning folder, no prediction file, no temporary leftovers); and, once the disk has room again,
/// the rerun (`--resume-if-possible` for pre-training) must write the undisturbed run's bytes.
final class FullDiskTests: XCTestCase {
    /// A tmpfs of a given size, mounted under a fresh temporary folder.
    final class SmallDisk {
        let path: String
        var mounted = false

        init(bytes: Int) throws {
            path = Fixtures.temporaryDirectory().path + "/disk"
            try FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
            let r = try SmallDisk.mount(["-t", "tmpfs", "-o", "size=\(bytes)", "tmpfs", path])
            guard r.status == 0 else {
                throw XCTSkip("cannot mount a size-limited tmpfs here (\(r.stderr.trimmingCharacters(in: .whitespacesAndNewlines))): "
                              + "the full-disk tests need root or CAP_SYS_ADMIN")
            }
            mounted = true
        }

        static func mount(_ args: [String]) throws -> ProcessResult {
            try runProgram("/usr/bin/env", ["mount"] + args, environment: ProcessInfo.processInfo.environment)
        }

        /// Gives the disk room: the same files, a larger size.
        func grow(to bytes: Int) throws {
            let r = try SmallDisk.mount(["-o", "remount,size=\(bytes)", path])
            XCTAssertEqual(r.status, 0, r.stderr)
        }

        func unmount() {
            guard mounted else { return }
            _ = try? runProgram("/usr/bin/env", ["umount", "-l", path], environment: ProcessInfo.processInfo.environment)
            mounted = false
        }

        deinit { unmount() }
    }

    /// Sizes to try: fractions of the undisturbed output's bytes (rounded to pages), from nearly nothing to
    /// nearly all of it, so that the disk fills in each stage of the writer.
    static func sweep(_ total: Int, _ fractions: [Double] = [0.05, 0.2, 0.4, 0.6, 0.75, 0.85, 0.92, 0.97]) -> [Int] {
        Array(Set(fractions.map { max(4096, (Int(Double(total) * $0) / 4096) * 4096) })).sorted()
    }

    /// Bytes of every regular file under `dir`, by relative path, skipping names that vary by run.
    static func files(_ dir: String, skipping skip: (String) -> Bool = { _ in false }) throws -> [String: Data] {
        var out: [String: Data] = [:]
        let e = FileManager.default.enumerator(atPath: dir)
        while let rel = e?.nextObject() as? String {
            let path = dir + "/" + rel
            var isDir: ObjCBool = false
            guard FileManager.default.fileExists(atPath: path, isDirectory: &isDir), !isDir.boolValue, !skip(rel) else { continue }
            out[rel] = try Data(contentsOf: URL(fileURLWithPath: path))
        }
        return out
    }

    /// Total bytes of the files under `dir`, each rounded up to 4 KiB (tmpfs pages).
    static func pagedSize(_ dir: String) throws -> Int {
        try files(dir).values.reduce(0) { $0 + ($1.count + 4095) / 4096 * 4096 }
    }

    /// metrics.jsonl without its wall-clock fields.
    static func metricsWithoutTimes(_ path: String) throws -> [NSDictionary] {
        try String(contentsOfFile: path, encoding: .utf8).split(separator: "\n").map { line in
            let o = try XCTUnwrap(JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any])
            return o.filter { !["seconds", "tokens_per_second", "examples_per_second"].contains($0.key) } as NSDictionary
        }
    }

    /// A failed run: exit 1, naming a file on the disk and the full disk. Returns the named path.
    @discardableResult
    func assertFullDiskFailure(_ r: ProcessResult, disk: SmallDisk, _ what: String, file: StaticString = #filePath, line: UInt = #line) -> String {
        XCTAssertEqual(r.status, 1, "\(what): \(r.stderr)", file: file, line: line)
        XCTAssertTrue(r.stderr.contains("No space left"), "\(what): \(r.stderr)", file: file, line: line)
        XCTAssertTrue(r.stderr.contains(disk.path), "\(what): the message names no file on the disk: \(r.stderr)", file: file, line: line)
        return r.stderr
    }

    /// No temporary leftovers of an atomic write (`.tmp-PID…`, `NAME.tmp-PID`, `.old-PID`) under `dir`.
    func assertNoTemporaries(_ dir: String, _ what: String, file: StaticString = #filePath, line: UInt = #line) {
        let names = (FileManager.default.enumerator(atPath: dir)?.allObjects as? [String]) ?? []
        let left = names.filter { ($0 as NSString).lastPathComponent.contains(".tmp-") || ($0 as NSString).lastPathComponent.contains(".old-") }
        XCTAssertEqual(left, [], "\(what): temporary files left behind", file: file, line: line)
    }

    // MARK: - Shards and their tokenized cache

    func shardsArguments(_ output: String) -> [String] {
        ["shards", "--input", Fixtures.path("text/en_sample.txt.zst"), "--vocab", Fixtures.uncasedVocab, "--output", output,
         "--dupe-factor", "1", "--max-seq-length", "64", "--max-predictions", "10", "--threads", "2"]
    }

    func testShardsAndTheTokenizedCache() throws {
        let ref = Fixtures.temporaryDirectory().path + "/shards"
        let r0 = try runBert(shardsArguments(ref))
        XCTAssertEqual(r0.status, 0, r0.stderr)
        let expected = try Self.files(ref)
        var failedAt = Set<String>()
        for size in Self.sweep(try Self.pagedSize(ref)) {
            let disk = try SmallDisk(bytes: size)
            defer { disk.unmount() }
            let out = disk.path + "/shards"
            let r = try runBert(shardsArguments(out))
            if r.status != 0 {
                let message = assertFullDiskFailure(r, disk: disk, "bert shards on \(size) bytes")
                failedAt.insert(message.contains("/.tokenized/") ? "cache" : message.contains("vocab.txt") ? "vocab" : "shards")
                XCTAssertFalse(FileManager.default.fileExists(atPath: out + "/index.json"), "\(size) bytes: an index beside partial shards")
                if FileManager.default.fileExists(atPath: out + "/.tokenized/meta.json") {  // the cache says it is whole: it must be
                    for (rel, data) in expected where rel.hasPrefix(".tokenized/") {
                        XCTAssertEqual(try Data(contentsOf: URL(fileURLWithPath: out + "/" + rel)), data, "\(size) bytes: \(rel) of a complete-looking cache")
                    }
                }
                assertNoTemporaries(out, "bert shards on \(size) bytes")
            }
            try disk.grow(to: 16 << 20)
            let again = try runBert(shardsArguments(out))
            XCTAssertEqual(again.status, 0, again.stderr)
            XCTAssertEqual(try Self.files(out), expected, "the rerun after a full disk at \(size) bytes")
        }
        // The sweep filled the disk while tokenizing and while writing the shards.
        XCTAssertTrue(failedAt.isSuperset(of: ["cache", "shards"]), "failures seen at \(failedAt)")
    }

    // MARK: - Pre-training checkpoints

    static let tiny = #"{"vocab_size": 30522, "hidden_size": 16, "num_hidden_layers": 1, "num_attention_heads": 2, "intermediate_size": 19, "max_position_embeddings": 64}"#

    /// Shards and a tiny config, made once for the pre-training, fine-tuning and prediction tests.
    static let base: String = {
        let dir = Fixtures.temporaryDirectory().path
        let s = try? runBert(["shards", "--input", Fixtures.path("text/en_sample.txt.zst"), "--vocab", Fixtures.uncasedVocab,
                              "--output", dir + "/shards", "--dupe-factor", "1", "--max-seq-length", "64", "--max-predictions", "10"])
        precondition(s?.status == 0, s?.stderr ?? "no bert binary")
        try? Data(tiny.utf8).write(to: URL(fileURLWithPath: dir + "/tiny.json"))
        return dir
    }()

    func pretrainArguments(_ output: String) -> [String] {
        ["pretrain", "--shards", Self.base + "/shards", "--output", output, "--config", Self.base + "/tiny.json", "--batch-size", "8",
         "--max-steps", "4", "--save-every-steps", "2", "--log-every-steps", "1", "--threads", "2", "--dropout", "0.1"]
    }

    func testPretrainingCheckpointsAndResume() throws {
        let ref = Fixtures.temporaryDirectory().path + "/run"
        let r0 = try runBert(pretrainArguments(ref))
        XCTAssertEqual(r0.status, 0, r0.stderr)
        let checkpoint = ["model.safetensors", "optimizer.safetensors", "training_state.json", "config.json", "vocab.txt", "tokenizer_config.json"]
        func bytes(_ dir: String) throws -> [String: Data] {
            try Dictionary(uniqueKeysWithValues: checkpoint.map { ($0, try Data(contentsOf: URL(fileURLWithPath: dir + "/" + $0))) })
        }
        let expected = try bytes(ref + "/latest")
        var failures = 0
        for size in Self.sweep(try Self.pagedSize(ref), [0.1, 0.3, 0.45, 0.6, 0.8, 0.95]) {
            let disk = try SmallDisk(bytes: size)
            defer { disk.unmount() }
            let out = disk.path + "/run"
            let r = try runBert(pretrainArguments(out))
            if r.status != 0 {
                failures += 1
                assertFullDiskFailure(r, disk: disk, "bert pretrain on \(size) bytes")
                // `latest`, when there is one, is a whole checkpoint: the undisturbed run's at that step.
                if let target = try? FileManager.default.destinationOfSymbolicLink(atPath: out + "/latest") {
                    XCTAssertEqual(try bytes(out + "/" + target), try bytes(ref + "/" + target), "\(size) bytes: latest → \(target)")
                }
                assertNoTemporaries(out, "bert pretrain on \(size) bytes")
            }
            try disk.grow(to: 64 << 20)
            let again = try runBert(pretrainArguments(out) + ["--resume-if-possible"])
            XCTAssertEqual(again.status, 0, again.stderr)
            XCTAssertEqual(try bytes(out + "/latest"), expected, "resumed after a full disk at \(size) bytes")
            XCTAssertEqual(try Self.metricsWithoutTimes(out + "/metrics.jsonl"), try Self.metricsWithoutTimes(ref + "/metrics.jsonl"))
        }
        XCTAssertGreaterThanOrEqual(failures, 3)
    }

    // MARK: - Fine-tuning output and predictions

    /// A pre-trained checkpoint and a classification file, made once.
    static let fineTuningInputs: (checkpoint: String, data: String) = {
        let dir = Fixtures.temporaryDirectory().path
        let p = try? runBert(["pretrain", "--shards", base + "/shards", "--output", dir + "/run", "--config", base + "/tiny.json",
                              "--batch-size", "8", "--max-steps", "3"])
        precondition(p?.status == 0, p?.stderr ?? "")
        let words = ["pos": ["happy", "good", "great", "joy"], "neg": ["sad", "bad", "awful", "dark"]]
        var tsv = "text\tlabel\n"
        for i in 0..<400 {
            let label = i % 2 == 0 ? "pos" : "neg"
            tsv += (0..<4).map { words[label]![($0 * 7 + i) % 4] }.joined(separator: " ") + "\t\(label)\n"
        }
        try? Data(tsv.utf8).write(to: URL(fileURLWithPath: dir + "/data.tsv"))
        return (dir + "/run/latest", dir + "/data.tsv")
    }()

    func finetuneArguments(_ output: String) -> [String] {
        ["finetune", "--checkpoint", Self.fineTuningInputs.checkpoint, "--data", Self.fineTuningInputs.data, "--output", output,
         "--epochs", "2", "--batch-size", "16", "--max-seq-length", "16", "--threads", "2"]
    }

    func testFineTuningOutput() throws {
        let ref = Fixtures.temporaryDirectory().path + "/ft"
        let r0 = try runBert(finetuneArguments(ref))
        XCTAssertEqual(r0.status, 0, r0.stderr)
        // Files whose bytes are the run's (the summary and TensorBoard events hold times; metrics are compared without them).
        let varying: (String) -> Bool = { $0.hasPrefix("events.out") || $0 == "finetune_summary.json" || $0 == "metrics.jsonl" || $0.hasPrefix(".cache") }
        let expected = try Self.files(ref, skipping: varying)
        var failures = 0
        for size in Self.sweep(try Self.pagedSize(ref)) {
            let disk = try SmallDisk(bytes: size)
            defer { disk.unmount() }
            let out = disk.path + "/ft"
            let r = try runBert(finetuneArguments(out))
            if r.status != 0 {
                failures += 1
                assertFullDiskFailure(r, disk: disk, "bert finetune on \(size) bytes")
                XCTAssertFalse(FileManager.default.fileExists(atPath: out + "/finetune_summary.json"), "\(size) bytes: the summary of an unfinished fine-tuning")
                // An epoch saved before the disk filled may be the best so far; then it, and the model at the
                // top (links through `best`), are the undisturbed run's epoch.
                if let best = try? String(contentsOfFile: out + "/best_epoch.txt", encoding: .utf8).trimmingCharacters(in: .whitespacesAndNewlines) {
                    for name in ["model.safetensors", "config.json", "vocab.txt"] {
                        XCTAssertEqual(try Data(contentsOf: URL(fileURLWithPath: out + "/" + name)), expected[best + "/" + name],
                                       "\(size) bytes: \(name) at the top, of \(best)")
                    }
                }
                assertNoTemporaries(out, "bert finetune on \(size) bytes")
            }
            try disk.grow(to: 64 << 20)
            let again = try runBert(finetuneArguments(out))
            XCTAssertEqual(again.status, 0, again.stderr)
            XCTAssertEqual(try Self.files(out, skipping: varying), expected, "the rerun after a full disk at \(size) bytes")
            XCTAssertEqual(try Self.metricsWithoutTimes(out + "/metrics.jsonl"), try Self.metricsWithoutTimes(ref + "/metrics.jsonl"),
                           "the rerun's log after a full disk at \(size) bytes holds only its own rows")
        }
        XCTAssertGreaterThanOrEqual(failures, 3)
    }

    func testPredictions() throws {
        let ft = Fixtures.temporaryDirectory().path + "/ft"
        XCTAssertEqual(try runBert(finetuneArguments(ft)).status, 0)
        let predict = { (output: String) in
            ["predict", "--checkpoint", ft, "--input", Self.fineTuningInputs.data, "--output", output, "--threads", "2"]
        }
        let ref = Fixtures.temporaryDirectory().path + "/predictions.tsv"
        XCTAssertEqual(try runBert(predict(ref)).status, 0)
        let expected = try Data(contentsOf: URL(fileURLWithPath: ref))
        for size in Self.sweep(expected.count, [0.1, 0.5, 0.9]) where size < expected.count {
            let disk = try SmallDisk(bytes: size)
            defer { disk.unmount() }
            let out = disk.path + "/predictions.tsv"
            assertFullDiskFailure(try runBert(predict(out)), disk: disk, "bert predict on \(size) bytes")
            XCTAssertFalse(FileManager.default.fileExists(atPath: out), "\(size) bytes: a partial prediction file")
            assertNoTemporaries(disk.path, "bert predict on \(size) bytes")
            try disk.grow(to: 16 << 20)
            XCTAssertEqual(try runBert(predict(out)).status, 0)
            XCTAssertEqual(try Data(contentsOf: URL(fileURLWithPath: out)), expected)
        }
    }

    // MARK: - bert run's stamps and report

    func testPipelineStampsAndReport() throws {
        func pipeline(_ out: String) -> String {
            #"""
            {"name": "gains", "output": "\#(out)", "stages": [
              {"name": "a", "run": ["/bin/sh", "-c", "echo '{\"accuracy\": 0.6125, \"macro_f1\": 0.4}' > \#(out)/a.json"], "outputs": ["${out}/a.json"]},
              {"name": "b", "run": ["/bin/sh", "-c", "echo '{\"accuracy\": 0.5, \"macro_f1\": 0.45}' > \#(out)/b.json"], "outputs": ["${out}/b.json"]}
             ], "gains": [{"name": "accuracy here", "metric": "accuracy", "pretrained": "${out}/a.json", "baseline": "${out}/b.json"}]}
            """#
        }
        let dir = Fixtures.temporaryDirectory().path
        try Data(pipeline(dir + "/ref").utf8).write(to: URL(fileURLWithPath: dir + "/ref.json"))
        XCTAssertEqual(try runBert(["run", dir + "/ref.json"]).status, 0)
        /// The report without its stage times.
        func report(_ out: String) throws -> [Substring] {
            try String(contentsOfFile: out + "/report.txt", encoding: .utf8).split(separator: "\n").filter { !$0.hasSuffix(" s") }
        }
        let expected = try report(dir + "/ref")
        var failures = 0
        for size in stride(from: 4096, through: 6 * 4096, by: 4096) {
            let disk = try SmallDisk(bytes: size)
            defer { disk.unmount() }
            let out = disk.path + "/out"
            try Data(pipeline(out).utf8).write(to: URL(fileURLWithPath: dir + "/disk.json"))
            let r = try runBert(["run", dir + "/disk.json"])
            if r.status != 0 {
                failures += 1
                // A stage's own command may be what hit the full disk; either way the run fails with 1.
                XCTAssertEqual(r.status, 1, "bert run on \(size) bytes: \(r.stderr)")
                XCTAssertTrue(r.stderr.contains(disk.path), r.stderr)
                assertNoTemporaries(out, "bert run on \(size) bytes")
            }
            try disk.grow(to: 1 << 20)
            let again = try runBert(["run", dir + "/disk.json"])
            XCTAssertEqual(again.status, 0, again.stderr)
            XCTAssertEqual(try report(out), expected, "the report after a full disk at \(size) bytes")
            XCTAssertTrue(FileManager.default.fileExists(atPath: out + "/report.html"))
        }
        XCTAssertGreaterThanOrEqual(failures, 3)
    }
}
