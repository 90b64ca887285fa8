import Foundation
import TestSupport
import XCTest

/// `bert pretrain --init DIR` (continued pre-training) and `--objective mlm` end to end, on the small
/// models transformers wrote in Tests/Fixtures/init: what is recorded, the refusals, exact resume after
/// kill -9, and MLM alone leaving the NSP head and pooler as they were.
final class InitCommandTests: XCTestCase {
    static func fixture(_ name: String) -> String { Fixtures.path("init/" + name) }

    /// Shards of the committed sample with the fixtures' vocabulary (uncased, 32 tokens), made once.
    static let shards: String = {
        let dir = Fixtures.temporaryDirectory().path
        let r = try? runBert(["shards", "--input", Fixtures.path("text/en_sample.txt.zst"), "--vocab", fixture("vocab.txt"),
                              "--output", dir + "/shards", "--dupe-factor", "1", "--max-seq-length", "32", "--max-predictions", "5"])
        precondition(r?.status == 0, "bert shards failed: \(r?.stderr ?? "no binary")")
        return dir + "/shards"
    }()

    func arguments(_ run: String, from model: String = "pretraining", _ extra: [String] = []) -> [String] {
        ["pretrain", "--shards", Self.shards, "--output", run, "--init", Self.fixture(model), "--batch-size", "8", "--threads", "2",
         "--max-steps", "80", "--save-every-steps", "10", "--log-every-steps", "1"] + extra
    }

    func tensors(_ path: String) throws -> [String: [Float]] {
        let data = try Data(contentsOf: URL(fileURLWithPath: path))
        let n = data.prefix(8).withUnsafeBytes { $0.loadUnaligned(as: UInt64.self) }
        let header = try XCTUnwrap(JSONSerialization.jsonObject(with: data.subdata(in: 8..<(8 + Int(n)))) as? [String: Any])
        var out: [String: [Float]] = [:]
        for (name, value) in header where name != "__metadata__" {
            let info = try XCTUnwrap(value as? [String: Any])
            guard info["dtype"] as? String == "F32" else { continue }
            let range = try XCTUnwrap(info["data_offsets"] as? [Int])
            let bytes = data.subdata(in: (8 + Int(n) + range[0])..<(8 + Int(n) + range[1]))
            out[name] = bytes.withUnsafeBytes { Array($0.bindMemory(to: Float.self)) }
        }
        return out
    }

    /// The run starts from DIR's weights with DIR's architecture, says what it loaded and initialised,
    /// records the source and its sha256 (a resume from other weights is refused), and its checkpoints
    /// carry the shards' casing in tokenizer_config.json; the default recipe with --init is adapt,
    /// with Adam's bias correction on.
    func testInitIsRecordedAndSaid() throws {
        let dir = Fixtures.temporaryDirectory().path
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let r = try runBert(arguments(dir + "/run", from: "bert_model", ["--max-steps", "3"]))
        XCTAssertEqual(r.status, 0, r.stderr)
        XCTAssertTrue(r.stderr.contains("--init \(Self.fixture("bert_model")) (L2 H32 A4 I37"), r.stderr)
        XCTAssertTrue(r.stderr.contains("recipe adapt: AdamW lr 0.0001, dropout 0.1"), r.stderr)
        XCTAssertTrue(r.stderr.contains("39 tensors loaded") && r.stderr.contains("newly initialized")
                      && r.stderr.contains("cls.seq_relationship.weight"), r.stderr)
        let state = try XCTUnwrap(JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: dir + "/run/latest/training_state.json"))) as? [String: Any])
        XCTAssertEqual(state["init_from"] as? String, Self.fixture("bert_model"))
        XCTAssertNil(state["position_init"], "the positions came from --init, not from a random start")
        let sha = try runProgram("/usr/bin/env", ["sha256sum", Self.fixture("bert_model/model.safetensors")], environment: ProcessInfo.processInfo.environment)
        XCTAssertEqual(state["init_sha256"] as? String, String(sha.stdoutText.prefix(64)))
        XCTAssertEqual((state["adam"] as? [String: Any])?["bias_correction"] as? Bool, true, "recipe adapt corrects Adam's bias")
        let tokenizer = try XCTUnwrap(JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: dir + "/run/latest/tokenizer_config.json"))) as? [String: Any])
        XCTAssertEqual(tokenizer["do_lower_case"] as? Bool, true)
        let config = try XCTUnwrap(JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: dir + "/run/latest/config.json"))) as? [String: Any])
        XCTAssertEqual(config["hidden_size"] as? Int, 32)
        XCTAssertEqual(config["max_position_embeddings"] as? Int, 64)
        // The same run directory resumed from other weights is refused, naming both.
        let other = try runBert(arguments(dir + "/run", from: "pretraining", ["--max-steps", "3", "--resume"]))
        XCTAssertEqual(other.status, 2, other.stderr)
        XCTAssertTrue(other.stderr.contains("--init") && other.stderr.contains("bert_model"), other.stderr)
        // A fine-tuned classifier's directory is a starting point too (its classifier is not used).
        let fromClassifier = try runBert(arguments(dir + "/c", from: "classifier", ["--max-steps", "2"]))
        XCTAssertEqual(fromClassifier.status, 0, fromClassifier.stderr)
        XCTAssertTrue(fromClassifier.stderr.contains("not used") && fromClassifier.stderr.contains("classifier.weight"), fromClassifier.stderr)
    }

    /// Each refusal names both files and the fix, with exit 2: shards of another vocabulary, of another
    /// casing, longer than the model's positions, and a --model or --config of another shape.
    func testRefusals() throws {
        let dir = Fixtures.temporaryDirectory().path
        defer { try? FileManager.default.removeItem(atPath: dir) }
        func shards(_ name: String, _ extra: [String]) throws -> String {
            let out = dir + "/" + name
            let r = try runBert(["shards", "--input", Fixtures.path("text/en_sample.txt.zst"), "--output", out, "--dupe-factor", "1",
                                 "--max-predictions", "5"] + extra)
            XCTAssertEqual(r.status, 0, r.stderr)
            return out
        }
        let otherVocab = try shards("other-vocab", ["--vocab", Fixtures.uncasedVocab, "--max-seq-length", "32"])
        let cased = try shards("cased", ["--vocab", Self.fixture("vocab.txt"), "--max-seq-length", "32", "--cased"])
        let long = try shards("long", ["--vocab", Self.fixture("vocab.txt"), "--max-seq-length", "128"])
        let source = Self.fixture("pretraining")
        for (data, extra, words) in [
            (otherVocab, [String](), ["index.json", source + "/vocab.txt", "bert shards --vocab"]),
            (cased, [], ["index.json", source + "/tokenizer_config.json", "without --cased"]),
            (long, [], ["index.json", source + "/config.json", "--max-seq-length 64"]),
            (Self.shards, ["--model", "tiny"], ["hidden_size", source + "/config.json", "leave out --model"]),
        ] {
            let r = try runBert(["pretrain", "--shards", data, "--output", dir + "/run", "--init", source, "--max-steps", "1"] + extra)
            XCTAssertEqual(r.status, 2, "\(data) \(extra): \(r.stderr)")
            for w in words { XCTAssertTrue(r.stderr.contains(w), "\(w) in: \(r.stderr)") }
            XCTAssertFalse(FileManager.default.fileExists(atPath: dir + "/run/latest"), "nothing trained")
        }
    }

    /// A run from --init killed with -9 after a checkpoint and resumed ends with the uninterrupted run's
    /// bytes.
    func testKillNineThenResumeUnderInitEqualsAnUninterruptedRun() throws {
        let dir = Fixtures.temporaryDirectory().path
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let whole = try runBert(arguments(dir + "/whole", ["--dropout", "0.1"]))
        XCTAssertEqual(whole.status, 0, whole.stderr)
        let p = try startBert(arguments(dir + "/killed", ["--dropout", "0.1"]))
        let deadline = Date().addingTimeInterval(120)
        while Date() < deadline, (try? FileManager.default.destinationOfSymbolicLink(atPath: dir + "/killed/latest")) != "step-00000010" {
            Thread.sleep(forTimeInterval: 0.002)
        }
        kill(p.processIdentifier, SIGKILL)
        p.waitUntilExit()
        XCTAssertFalse(FileManager.default.fileExists(atPath: dir + "/killed/step-00000080"), "killed before the end")
        let resumed = try runBert(arguments(dir + "/killed", ["--dropout", "0.1", "--resume"]))
        XCTAssertEqual(resumed.status, 0, resumed.stderr)
        for f in ["model.safetensors", "optimizer.safetensors", "training_state.json"] {
            XCTAssertEqual(try Data(contentsOf: URL(fileURLWithPath: dir + "/killed/step-00000080/" + f)),
                           try Data(contentsOf: URL(fileURLWithPath: dir + "/whole/step-00000080/" + f)), f)
        }
    }

    /// --objective mlm trains MLM alone: the NSP head and the pooler end bit for bit as they started
    /// (with mlm-nsp they move), the encoder and MLM head move, the logged loss is the MLM loss, and the
    /// objective is recorded (a resume with the other one is refused).
    func testMLMAloneLeavesNSPAndPoolerAsTheyWere() throws {
        let dir = Fixtures.temporaryDirectory().path
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let start = try tensors(Self.fixture("pretraining/model.safetensors"))
        let mlm = try runBert(arguments(dir + "/mlm", ["--objective", "mlm", "--max-steps", "10"]))
        XCTAssertEqual(mlm.status, 0, mlm.stderr)
        XCTAssertTrue(mlm.stderr.contains("objective mlm (no NSP)"), mlm.stderr)
        let both = try runBert(arguments(dir + "/both", ["--max-steps", "10"]))
        XCTAssertEqual(both.status, 0, both.stderr)
        let (a, b) = (try tensors(dir + "/mlm/latest/model.safetensors"), try tensors(dir + "/both/latest/model.safetensors"))
        for name in ["cls.seq_relationship.weight", "cls.seq_relationship.bias", "bert.pooler.dense.weight", "bert.pooler.dense.bias"] {
            XCTAssertEqual(a[name], start[name], "mlm: \(name) unchanged")
            XCTAssertNotEqual(b[name], start[name], "mlm-nsp: \(name) trained")
        }
        for name in ["bert.encoder.layer.0.attention.self.query.weight", "cls.predictions.transform.dense.weight"] {
            XCTAssertNotEqual(a[name], start[name], "mlm: \(name) trained")
        }
        let rows = try String(contentsOfFile: dir + "/mlm/metrics.jsonl", encoding: .utf8).split(separator: "\n").compactMap {
            try JSONSerialization.jsonObject(with: Data($0.utf8)) as? [String: Any]
        }.filter { $0["loss"] != nil }
        XCTAssertEqual(rows.count, 10)
        for row in rows { XCTAssertEqual(try XCTUnwrap(row["loss"] as? Double), try XCTUnwrap(row["mlm_loss"] as? Double), accuracy: 1e-9) }
        let state = try String(contentsOfFile: dir + "/mlm/latest/training_state.json", encoding: .utf8)
        XCTAssertTrue(state.contains("\"objective\" : \"mlm\""), state)
        let other = try runBert(arguments(dir + "/mlm", ["--max-steps", "10", "--resume"]))
        XCTAssertEqual(other.status, 2, other.stderr)
        XCTAssertTrue(other.stderr.contains("objective"), other.stderr)
    }

    /// --freeze-encoder-steps N trains only the heads for the first N updates: from a BertModel (no
    /// heads), after 5 frozen updates every encoder tensor is bit for bit the checkpoint's and the new
    /// MLM head has moved; 3 updates later the encoder moves too. Recorded, and a resume with another N
    /// is refused.
    func testFrozenEncoderWarmUpTrainsTheHeadsOnly() throws {
        let dir = Fixtures.temporaryDirectory().path
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let start = try tensors(Self.fixture("bert_model/model.safetensors"))
        let r = try runBert(arguments(dir + "/run", from: "bert_model", ["--freeze-encoder-steps", "5", "--max-steps", "8",
                                                                         "--save-every-steps", "5", "--dropout", "0.1"]))
        XCTAssertEqual(r.status, 0, r.stderr)
        XCTAssertTrue(r.stderr.contains("heads only for the first 5 updates"), r.stderr)
        let (frozen, later) = (try tensors(dir + "/run/step-00000005/model.safetensors"), try tensors(dir + "/run/step-00000008/model.safetensors"))
        var checked = 0
        for (name, values) in start {
            let ours = "bert." + name
            XCTAssertEqual(frozen[ours], values, "\(ours) frozen for 5 updates")
            // (Not the pooler, unused by MLM; not the token types' second row alone; not the key biases, whose
            // gradient is zero in exact arithmetic: softmax ignores a shift.)
            if !name.hasPrefix("pooler.") && !name.contains("token_type") && !name.hasSuffix("key.bias") {
                XCTAssertNotEqual(later[ours], values, "\(ours) trains after")
            }
            checked += 1
        }
        XCTAssertEqual(checked, 39)
        XCTAssertNotEqual(frozen["cls.predictions.transform.dense.weight"], later["cls.predictions.transform.dense.weight"])
        let initialized = try tensors(dir + "/run/step-00000005/model.safetensors")["cls.predictions.transform.LayerNorm.weight"]
        XCTAssertNotEqual(initialized, [Float](repeating: 1, count: 32), "the new head trained while the encoder waited")
        let state = try String(contentsOfFile: dir + "/run/latest/training_state.json", encoding: .utf8)
        XCTAssertTrue(state.contains("\"freeze_encoder_steps\" : 5"), state)
        let other = try runBert(arguments(dir + "/run", from: "bert_model", ["--freeze-encoder-steps", "2", "--max-steps", "8",
                                                                             "--save-every-steps", "5", "--resume"]))
        XCTAssertEqual(other.status, 2, other.stderr)
        XCTAssertTrue(other.stderr.contains("froze the encoder for 5 updates"), other.stderr)
    }
}
