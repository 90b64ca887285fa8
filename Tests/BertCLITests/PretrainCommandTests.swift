import Foundation
import TestSupport
import XCTest

/// `bert pretrain` end to end on a tiny odd-sized model: checkpoints, refusals, exact resume after kill -9.
final class PretrainCommandTests: XCTestCase {
    /// Shards of the committed sample (dupe factor 1) and a tiny config, made once.
    static let base: String = {
        let dir = Fixtures.temporaryDirectory().path
        let r = try? runBert(["shards", "--input", Fixtures.path("text/en_sample.txt.zst"), "--vocab", Fixtures.uncasedVocab,
                              "--output", dir + "/shards", "--dupe-factor", "1", "--max-seq-length", "64", "--max-predictions", "10"])
        precondition(r?.status == 0, "bert shards failed: \(r?.stderr ?? "no binary")")
        let config = #"{"vocab_size": 30522, "hidden_size": 24, "num_hidden_layers": 2, "num_attention_heads": 3, "intermediate_size": 37, "max_position_embeddings": 64}"#
        try? Data(config.utf8).write(to: URL(fileURLWithPath: dir + "/tiny.json"))
        return dir
    }()

    func pretrainArguments(_ run: String) -> [String] {
        ["pretrain", "--shards", Self.base + "/shards", "--output", run, "--config", Self.base + "/tiny.json",
         "--batch-size", "16", "--epochs", "2", "--learning-rate", "1e-3", "--save-every-steps", "10", "--threads", "2",
         "--dropout", "0.1"]  // dropout on, so resuming must restore its random stream too
    }

    func pretrain(_ run: String, _ extra: [String] = [], environment: [String: String] = bertEnvironment()) throws -> ProcessResult {
        try runBert(pretrainArguments(run) + extra, environment: environment)
    }

    func bytes(_ dir: String) throws -> [String: Data] {
        var out: [String: Data] = [:]
        for f in ["model.safetensors", "optimizer.safetensors", "training_state.json", "config.json", "vocab.txt"] {
            out[f] = try Data(contentsOf: URL(fileURLWithPath: dir + "/" + f))
        }
        return out
    }

    /// Losses by step from metrics.jsonl.
    func losses(_ run: String) throws -> [Int: Double] {
        var out: [Int: Double] = [:]
        for line in try String(contentsOfFile: run + "/metrics.jsonl", encoding: .utf8).split(separator: "\n") {
            let o = try XCTUnwrap(JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any])
            out[try XCTUnwrap(o["step"] as? Int)] = try XCTUnwrap(o["loss"] as? Double)
        }
        return out
    }

    /// A run killed with -9 and resumed equals an uninterrupted one, whatever kernels OpenBLAS picks:
    /// here with the CPU's own, below with Haswell's forced (the environment of the machine this once
    /// failed on, where the killed process inherited the forced kernels and the other two did not).
    func testKillNineThenResumeEqualsAnUninterruptedRun() throws {
        try killNineThenResume(blasCore: nil)
    }

    func testKillNineThenResumeEqualsAnUninterruptedRunOnForcedHaswellKernels() throws {
        try killNineThenResume(blasCore: "Haswell")
    }

    func killNineThenResume(blasCore: String?) throws {
        let env = bertEnvironment(blasCore: blasCore)
        let dir = Fixtures.temporaryDirectory().path
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let whole = try pretrain(dir + "/whole", environment: env)
        XCTAssertEqual(whole.status, 0, whole.stderr)
        let final = dir + "/whole/epoch-0002"
        XCTAssertTrue(FileManager.default.fileExists(atPath: dir + "/whole/epoch-0001/model.safetensors"))
        XCTAssertEqual(try FileManager.default.destinationOfSymbolicLink(atPath: dir + "/whole/latest"), "epoch-0002")

        // Start the same run, kill -9 once a mid-epoch checkpoint exists, then resume.
        let p = try startBert(pretrainArguments(dir + "/killed"), environment: env)
        let deadline = Date().addingTimeInterval(120)
        while Date() < deadline, (try? FileManager.default.destinationOfSymbolicLink(atPath: dir + "/killed/latest")) != "step-00000030" {
            Thread.sleep(forTimeInterval: 0.005)
        }
        kill(p.processIdentifier, SIGKILL)
        p.waitUntilExit()
        let latest = try FileManager.default.destinationOfSymbolicLink(atPath: dir + "/killed/latest")
        XCTAssertTrue(latest.hasPrefix("step-"), "killed mid-epoch (latest is \(latest))")
        XCTAssertFalse(FileManager.default.fileExists(atPath: dir + "/killed/epoch-0002"), "killed before the end")

        // Without --resume the directory is refused.
        let refused = try pretrain(dir + "/killed", environment: env)
        XCTAssertEqual(refused.status, 2)
        XCTAssertTrue(refused.stderr.contains("--resume"), refused.stderr)

        let resumed = try pretrain(dir + "/killed", ["--resume"], environment: env)
        XCTAssertEqual(resumed.status, 0, resumed.stderr)
        // (On an AVX-512 CPU, forced Haswell kernels also bring a start-up warning about speed; that is not this note.)
        XCTAssertFalse(resumed.stderr.contains("was written with OpenBLAS's"), "the same kernels: no note about them (\(resumed.stderr))")
        XCTAssertEqual(try bytes(dir + "/killed/epoch-0002"), try bytes(final), "the final checkpoint's bytes equal the uninterrupted run's")
        XCTAssertEqual(try losses(dir + "/killed"), try losses(dir + "/whole"), "every logged loss is the same")
    }

    /// --group-by-length: a run stopped inside a window and resumed equals the uninterrupted grouped
    /// run; the grouping is recorded, changes the batches, and a resume without it is refused.
    func testLengthGroupedRunResumesExactly() throws {
        let dir = Fixtures.temporaryDirectory().path
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let grouped = ["--group-by-length", "--sinusoidal-positions"]
        let whole = try pretrain(dir + "/whole", grouped)
        XCTAssertEqual(whole.status, 0, whole.stderr)
        let plain = try pretrain(dir + "/plain", ["--no-group-by-length", "--sinusoidal-positions"])
        XCTAssertEqual(plain.status, 0, plain.stderr)
        XCTAssertNotEqual(try losses(dir + "/whole"), try losses(dir + "/plain"), "grouping changes the batches")
        let state = try XCTUnwrap(JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: dir + "/whole/latest/training_state.json"))) as? [String: Any])
        XCTAssertEqual(state["group_window_batches"] as? Int, 64)

        // Stop after 13 updates: the last checkpoint is step 10, inside the first window of 64 batches.
        let stopped = try pretrain(dir + "/stopped", grouped + ["--stop-after-steps", "13"])
        XCTAssertEqual(stopped.status, 0, stopped.stderr)
        XCTAssertEqual(try FileManager.default.destinationOfSymbolicLink(atPath: dir + "/stopped/latest"), "step-00000010")
        let refused = try pretrain(dir + "/stopped", ["--resume", "--no-group-by-length", "--sinusoidal-positions"])
        XCTAssertEqual(refused.status, 2, refused.stderr)
        XCTAssertTrue(refused.stderr.contains("length-grouping"), refused.stderr)
        // The positions' flag is the start's business: a resume that says otherwise still records how the run
        // started (training_state.json is among the bytes compared).
        let resumed = try pretrain(dir + "/stopped", ["--group-by-length", "--no-sinusoidal-positions", "--resume"])
        XCTAssertEqual(resumed.status, 0, resumed.stderr)
        XCTAssertEqual(try bytes(dir + "/stopped/epoch-0002"), try bytes(dir + "/whole/epoch-0002"), "the same final checkpoint")
        XCTAssertEqual(try losses(dir + "/stopped"), try losses(dir + "/whole"), "every logged loss is the same")
    }

    /// --recipe: the default (small-budget) is exactly its documented flags, google is google-research/bert's
    /// settings (lr 1e-4, the config's dropout, plain batches, random positions), and explicit flags win.
    func testRecipesSetTheirDocumentedDefaults() throws {
        let dir = Fixtures.temporaryDirectory().path
        defer { try? FileManager.default.removeItem(atPath: dir) }
        func run(_ name: String, _ extra: [String]) throws -> [String: Any] {
            let r = try runBert(["pretrain", "--shards", Self.base + "/shards", "--output", dir + "/" + name, "--config", Self.base + "/tiny.json",
                                 "--batch-size", "16", "--max-steps", "3", "--threads", "2"] + extra)
            XCTAssertEqual(r.status, 0, r.stderr)
            let state = try XCTUnwrap(JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: dir + "/" + name + "/latest/training_state.json"))) as? [String: Any])
            let config = try XCTUnwrap(JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: dir + "/" + name + "/latest/config.json"))) as? [String: Any])
            let schedule = try XCTUnwrap(state["schedule"] as? [String: Any])
            return ["lr": schedule["base_learning_rate"] as Any, "group": state["group_window_batches"] as Any, "positions": state["position_init"] as Any,
                    "dropout": config["hidden_dropout_prob"] as Any, "attention_dropout": config["attention_probs_dropout_prob"] as Any]
        }
        let small = try run("default", [])
        XCTAssertEqual(small["lr"] as? Double, 5e-4)
        XCTAssertEqual(small["group"] as? Int, 64)
        XCTAssertEqual(small["dropout"] as? Double, 0)
        XCTAssertEqual(small["attention_dropout"] as? Double, 0)
        XCTAssertEqual(small["positions"] as? String, "sinusoidal", "recorded for `finetune --from-scratch`")
        _ = try run("spelled", ["--recipe", "google", "--learning-rate", "5e-4", "--dropout", "0", "--group-by-length", "--sinusoidal-positions"])
        XCTAssertEqual(try bytes(dir + "/default/latest"), try bytes(dir + "/spelled/latest"),
                       "the default recipe is its documented flags, and explicit flags override google's")
        let google = try run("google", ["--recipe", "google"])
        XCTAssertEqual(google["lr"] as? Double, 1e-4)
        XCTAssertEqual(google["group"] as? Int, 0)
        XCTAssertEqual(google["dropout"] as? Double, 0.1, "the config's dropout (bert-base's 0.1 where the config is silent)")
        XCTAssertEqual(google["attention_dropout"] as? Double, 0.1)
        XCTAssertEqual(google["positions"] as? String, "normal")
        _ = try run("google-no-sin", ["--recipe", "google", "--learning-rate", "5e-4", "--dropout", "0", "--group-by-length"])
        XCTAssertNotEqual(try bytes(dir + "/google-no-sin/latest")["model.safetensors"], try bytes(dir + "/default/latest")["model.safetensors"],
                          "google initialises positions randomly, small-budget as sinusoids")
    }

    func testBadInputIsRefusedWithExitTwo() throws {
        let dir = Fixtures.temporaryDirectory().path
        defer { try? FileManager.default.removeItem(atPath: dir) }
        // A config whose vocabulary does not match the shards.
        try Data(#"{"vocab_size": 100, "hidden_size": 24, "num_hidden_layers": 1, "num_attention_heads": 3, "intermediate_size": 10}"#.utf8)
            .write(to: URL(fileURLWithPath: dir + "/small.json"))
        let mismatch = try runBert(["pretrain", "--shards", Self.base + "/shards", "--output", dir + "/r", "--config", dir + "/small.json"])
        XCTAssertEqual(mismatch.status, 2)
        XCTAssertTrue(mismatch.stderr.contains("vocab_size"), mismatch.stderr)
        // Nothing to resume.
        let nothing = try pretrain(dir + "/empty", ["--resume"])
        XCTAssertEqual(nothing.status, 2)
        XCTAssertTrue(nothing.stderr.contains("no checkpoint"), nothing.stderr)
        // A corrupt checkpoint on resume: the message names the file.
        XCTAssertEqual(try pretrain(dir + "/c", ["--epochs", "1"]).status, 0)
        let model = dir + "/c/epoch-0001/model.safetensors"
        var data = try Data(contentsOf: URL(fileURLWithPath: model))
        data.removeLast(100)
        try data.write(to: URL(fileURLWithPath: model))
        let corrupt = try pretrain(dir + "/c", ["--epochs", "1", "--resume"])
        XCTAssertEqual(corrupt.status, 2)
        XCTAssertTrue(corrupt.stderr.contains(model), corrupt.stderr)
        // --max-grad-norm 0 would zero every gradient: refused.
        let zeroClip = try pretrain(dir + "/z", ["--max-grad-norm", "0"])
        XCTAssertEqual(zeroClip.status, 2, zeroClip.stderr)
        XCTAssertTrue(zeroClip.stderr.contains("--max-grad-norm"), zeroClip.stderr)
        // A learning rate that makes the loss blow up: a clear stop, exit 2.
        let nan = try pretrain(dir + "/nan", ["--learning-rate", "1e30", "--max-grad-norm", "1e30", "--epochs", "1"])
        XCTAssertEqual(nan.status, 2, nan.stderr)
        XCTAssertTrue(nan.stderr.contains("NaN or infinite"), nan.stderr)
    }
}
