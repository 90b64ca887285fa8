import Foundation
import TestSupport
import XCTest

/// `bert pretrain --objective electra` end to end: static, dynamic and whole-word shards; the
/// checkpoint (discriminator + generator/) read by evaluate and finetune; exact resume after kill -9;
/// refusals with exit code 2.
final class ElectraCommandTests: XCTestCase {
    /// Static, dynamic and whole-word-masked shards of the committed sample, and a tiny config, made once.
    static let base: String = {
        let dir = Fixtures.temporaryDirectory().path
        for (name, extra) in [("static", [String]()), ("dynamic", ["--dynamic-masking"]), ("wholeword", ["--whole-word-mask", "--dynamic-masking"])] {
            let r = try? runBert(["shards", "--input", Fixtures.path("text/en_sample.txt.zst"), "--vocab", Fixtures.uncasedVocab,
                                  "--output", dir + "/" + name, "--dupe-factor", "1", "--max-seq-length", "64", "--max-predictions", "10"] + extra)
            precondition(r?.status == 0, "bert shards failed: \(r?.stderr ?? "no binary")")
        }
        let config = #"{"vocab_size": 30522, "hidden_size": 24, "num_hidden_layers": 2, "num_attention_heads": 3, "intermediate_size": 37, "max_position_embeddings": 64}"#
        try? Data(config.utf8).write(to: URL(fileURLWithPath: dir + "/tiny.json"))
        return dir
    }()

    func arguments(_ run: String, shards: String = "static") -> [String] {
        ["pretrain", "--shards", Self.base + "/" + shards, "--output", run, "--config", Self.base + "/tiny.json", "--objective", "electra",
         "--generator-size", "0.34", "--batch-size", "16", "--epochs", "2", "--learning-rate", "1e-3", "--save-every-steps", "10",
         "--threads", "2", "--dropout", "0.1"]
    }

    func json(_ path: String) throws -> [String: Any] {
        try XCTUnwrap(JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: path))) as? [String: Any])
    }

    func rows(_ run: String) throws -> [[String: Any]] {
        try String(contentsOfFile: run + "/metrics.jsonl", encoding: .utf8).split(separator: "\n").map {
            try XCTUnwrap(JSONSerialization.jsonObject(with: Data($0.utf8)) as? [String: Any])
        }
    }

    func files(_ dir: String) throws -> [String: Data] {
        var out: [String: Data] = [:]
        for f in ["model.safetensors", "optimizer.safetensors", "training_state.json", "config.json", "generator/model.safetensors",
                  "generator/config.json"] {
            out[f] = try Data(contentsOf: URL(fileURLWithPath: dir + "/" + f))
        }
        return out
    }

    func testKillNineThenResumeGivesTheSameBytes() throws {
        let dir = Fixtures.temporaryDirectory().path
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let whole = try runBert(arguments(dir + "/whole"))
        XCTAssertEqual(whole.status, 0, whole.stderr)
        let p = try startBert(arguments(dir + "/killed"))
        let deadline = Date().addingTimeInterval(120)
        while Date() < deadline, (try? FileManager.default.destinationOfSymbolicLink(atPath: dir + "/killed/latest")) != "step-00000030" {
            Thread.sleep(forTimeInterval: 0.005)
        }
        kill(p.processIdentifier, SIGKILL)
        p.waitUntilExit()
        XCTAssertFalse(FileManager.default.fileExists(atPath: dir + "/killed/epoch-0002"), "killed before the end")
        let resumed = try runBert(arguments(dir + "/killed") + ["--resume"])
        XCTAssertEqual(resumed.status, 0, resumed.stderr)
        XCTAssertEqual(try files(dir + "/killed/epoch-0002"), try files(dir + "/whole/epoch-0002"), "the same bytes, both models")
        XCTAssertEqual(try rows(dir + "/killed").map { $0["loss"] as? Double }, try rows(dir + "/whole").map { $0["loss"] as? Double })

        // Another λ or generator is another run: refused on resume, with both named.
        let other = try runBert(arguments(dir + "/killed") + ["--resume", "--discriminator-weight", "20"])
        XCTAssertEqual(other.status, 2, other.stderr)
        XCTAssertTrue(other.stderr.contains("--discriminator-weight"), other.stderr)

        // The metrics and the state say what was trained.
        let row = try XCTUnwrap(try rows(dir + "/whole").last)
        for key in ["mlm_loss", "mlm_accuracy", "rtd_loss", "rtd_accuracy", "rtd_recall", "sampled_original"] {
            XCTAssertNotNil(row[key] as? Double, key)
        }
        XCTAssertNil(row["nsp_loss"])
        let events = try XCTUnwrap(try FileManager.default.contentsOfDirectory(atPath: dir + "/whole").first { $0.hasPrefix("events.out.tfevents") })
        let board = try Data(contentsOf: URL(fileURLWithPath: dir + "/whole/" + events))
        for tag in ["train/rtd_loss", "train/rtd_accuracy", "train/rtd_recall", "train/sampled_original"] {
            XCTAssertNotNil(board.range(of: Data(tag.utf8)), "TensorBoard has \(tag)")
        }
        let report = try runBert(["report", dir + "/whole"])
        XCTAssertEqual(report.status, 0, report.stderr)
        let html = try String(contentsOfFile: dir + "/whole/report.html", encoding: .utf8)
        XCTAssertTrue(html.contains("RTD recall") && html.contains("RTD loss"), "report.html charts the discriminator")
        let state = try json(dir + "/whole/latest/training_state.json")
        XCTAssertEqual(state["objective"] as? String, "electra")
        XCTAssertEqual(state["generator_size"] as? Double, 0.34)
        XCTAssertEqual(state["discriminator_weight"] as? Double, 50)
        let generator = try json(dir + "/whole/latest/generator/config.json")
        XCTAssertEqual(generator["hidden_size"] as? Int, 8)  // 24 × 0.34, rounded
        XCTAssertEqual(generator["embedding_size"] as? Int, 24)
        XCTAssertEqual(generator["num_attention_heads"] as? Int, 1)
    }

    /// Dynamic and whole-word shards train too; evaluate --shards reports the generator's and the
    /// discriminator's figures; finetune and evaluate read the discriminator as a BERT encoder.
    func testEveryMaskingAndTheCheckpointDownstream() throws {
        let dir = Fixtures.temporaryDirectory().path
        defer { try? FileManager.default.removeItem(atPath: dir) }
        for shards in ["dynamic", "wholeword"] {
            let r = try runBert(arguments(dir + "/" + shards, shards: shards) + ["--epochs", "1"])
            XCTAssertEqual(r.status, 0, r.stderr)
            let last = try XCTUnwrap(try rows(dir + "/" + shards).last)
            XCTAssertGreaterThan(try XCTUnwrap(last["rtd_accuracy"] as? Double), 0.5, shards)
        }
        let checkpoint = dir + "/dynamic/latest"
        let eval = try runBert(["evaluate", "--checkpoint", checkpoint, "--shards", Self.base + "/static", "--output", dir + "/eval.json"])
        XCTAssertEqual(eval.status, 0, eval.stderr)
        let figures = try json(dir + "/eval.json")
        for key in ["mlm_loss", "mlm_accuracy", "rtd_loss", "rtd_accuracy", "rtd_recall", "sampled_original"] {
            XCTAssertNotNil(figures[key] as? Double, key)
        }
        XCTAssertNil(figures["nsp_accuracy"])

        var tsv = "text\tlabel\n"
        for k in 0..<40 { tsv += (k % 2 == 0 ? "the cat sat on the mat" : "stocks fell sharply today") + " \(k)\t\(k % 2 == 0 ? "pets" : "money")\n" }
        try Data(tsv.utf8).write(to: URL(fileURLWithPath: dir + "/d.tsv"))
        let tuned = try runBert(["finetune", "--checkpoint", checkpoint, "--data", dir + "/d.tsv", "--output", dir + "/classifier",
                                 "--epochs", "1", "--max-seq-length", "32", "--batch-size", "8"])
        XCTAssertEqual(tuned.status, 0, tuned.stderr)
        let config = try json(dir + "/classifier/config.json")
        XCTAssertEqual(config["model_type"] as? String, "bert", "a classifier fine-tuned from ELECTRA is a BERT classifier")
        XCTAssertNil(config["embedding_size"])
    }

    func testBadSettingsAreRefusedWithExitTwo() throws {
        let dir = Fixtures.temporaryDirectory().path
        defer { try? FileManager.default.removeItem(atPath: dir) }
        for (extra, says) in [(["--generator-size", "0"], "--generator-size"), (["--generator-size", "1.5"], "--generator-size"),
                              (["--discriminator-weight", "-1"], "--discriminator-weight"),
                              (["--init", Fixtures.path("init/bert_model")], "--objective mlm")] {
            let r = try runBert(arguments(dir + "/bad") + extra)
            XCTAssertEqual(r.status, 2, "\(extra): \(r.stderr)")
            XCTAssertTrue(r.stderr.contains(says), "\(extra): \(r.stderr)")
        }
    }

    /// `--record-batches` writes each micro-batch as the model saw it: the shards' instances with their
    /// dynamic masks, and the generator's samples, which the metrics' `sampled_original` share confirms.
    func testRecordBatchesHoldsWhatTheModelSaw() throws {
        let dir = Fixtures.temporaryDirectory().path
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let trace = dir + "/trace.jsonl"
        let r = try runBert(arguments(dir + "/run", shards: "dynamic") + ["--epochs", "1", "--max-steps", "3", "--accumulate", "2",
                                                                          "--batch-size", "8", "--log-every-steps", "1", "--record-batches", trace])
        XCTAssertEqual(r.status, 0, r.stderr)
        XCTAssertEqual(try FileManager.default.contentsOfDirectory(atPath: dir).sorted(), ["run", "trace.jsonl"], "no temporary file left")

        // The shards' instances, unmasked (dynamic masking), as inspect shows them.
        let inspect = try runBert(["inspect", Self.base + "/dynamic", "--json", "--limit", "0"])
        XCTAssertEqual(inspect.status, 0, inspect.stderr)
        var instances = Set<[Int]>()
        for line in inspect.stdoutText.split(separator: "\n") {
            let row = try XCTUnwrap(JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any])
            instances.insert(try XCTUnwrap(row["input_ids"] as? [Int]))
        }

        let lines = try String(contentsOfFile: trace, encoding: .utf8).split(separator: "\n")
        XCTAssertEqual(lines.count, 6, "3 updates of 2 micro-batches")
        var sampledOriginal = [Int: (same: Int, masked: Int)]()
        for (k, line) in lines.enumerated() {
            let row = try XCTUnwrap(JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any])
            XCTAssertEqual(row["step"] as? Int, k / 2 + 1)
            XCTAssertEqual(row["micro"] as? Int, k % 2)
            let (b, t) = (try XCTUnwrap(row["batch_size"] as? Int), try XCTUnwrap(row["seq_length"] as? Int))
            XCTAssertEqual(b, 8)
            let ids = try XCTUnwrap(row["input_ids"] as? [Int]), mask = try XCTUnwrap(row["attention_mask"] as? [Int])
            XCTAssertEqual(ids.count, b * t)
            XCTAssertEqual((try XCTUnwrap(row["token_type_ids"] as? [Int])).count, b * t)
            let positions = try XCTUnwrap(row["masked_positions"] as? [Int]), labels = try XCTUnwrap(row["masked_labels"] as? [Int])
            let samples = try XCTUnwrap(row["samples"] as? [Int])
            XCTAssertEqual(labels.count, positions.count)
            XCTAssertEqual(samples.count, positions.count)
            XCTAssertEqual(Set(positions).count, positions.count, "distinct positions")
            XCTAssertTrue(samples.allSatisfy { (0..<30522).contains($0) })
            // Put the labels back: every row is one of the shards' instances, masked only inside it.
            var original = ids
            for (p, label) in zip(positions, labels) {
                XCTAssertEqual(mask[p], 1, "a masked position is a real token")
                original[p] = label
                XCTAssertFalse([101, 102].contains(label), "[CLS] and [SEP] are never masked")
            }
            for i in 0..<b {
                let length = mask[(i * t)..<((i + 1) * t)].reduce(0, +)
                XCTAssertTrue(instances.contains(Array(original[(i * t)..<(i * t + length)])), "line \(k + 1), row \(i) is an instance")
            }
            XCTAssertNotEqual(original, ids, "masked")
            let step = k / 2 + 1, same = zip(samples, labels).filter { $0 == $1 }.count
            sampledOriginal[step] = ((sampledOriginal[step]?.same ?? 0) + same, (sampledOriginal[step]?.masked ?? 0) + labels.count)
        }
        // The recorded samples are the ones trained on: the metrics' share of samples equal to the original.
        for row in try rows(dir + "/run") {
            let step = try XCTUnwrap(row["step"] as? Int), counts = try XCTUnwrap(sampledOriginal[step])
            XCTAssertEqual(try XCTUnwrap(row["sampled_original"] as? Double), Double(counts.same) / Double(counts.masked), accuracy: 1e-9)
        }

        let resumed = try runBert(arguments(dir + "/run", shards: "dynamic") + ["--resume", "--record-batches", dir + "/again.jsonl"])
        XCTAssertEqual(resumed.status, 2, resumed.stderr)
        XCTAssertTrue(resumed.stderr.contains("--record-batches"), resumed.stderr)
    }
}
