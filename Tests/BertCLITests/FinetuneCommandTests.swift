import Checkpoints
import Foundation
import TestSupport
import XCTest

/// `bert finetune`, `predict` and `evaluate` on a tiny checkpoint written here: outputs and refusals.
final class FinetuneCommandTests: XCTestCase {
    /// A tiny BertKit pre-training checkpoint (a few updates on the committed sample), made once.
    static let checkpoint: String = {
        let dir = Fixtures.temporaryDirectory().path
        let config = #"{"vocab_size": 30522, "hidden_size": 16, "num_hidden_layers": 1, "num_attention_heads": 2, "intermediate_size": 19, "max_position_embeddings": 64}"#
        try? Data(config.utf8).write(to: URL(fileURLWithPath: dir + "/tiny.json"))
        let s = try? runBert(["shards", "--input", Fixtures.path("text/en_sample.txt.zst"), "--vocab", Fixtures.uncasedVocab,
                              "--output", dir + "/shards", "--dupe-factor", "1", "--max-seq-length", "64", "--max-predictions", "10"])
        precondition(s?.status == 0, s?.stderr ?? "no bert binary")
        let p = try? runBert(["pretrain", "--shards", dir + "/shards", "--output", dir + "/run", "--config", dir + "/tiny.json",
                              "--batch-size", "8", "--max-steps", "3"])
        precondition(p?.status == 0, p?.stderr ?? "")
        return dir + "/run/latest"
    }()

    func write(_ text: String, _ name: String) throws -> String {
        let path = Fixtures.temporaryDirectory().appendingPathComponent(name).path
        try Data(text.utf8).write(to: URL(fileURLWithPath: path))
        return path
    }

    /// `count` rows "w w w w\tlabel", alternately pos and neg, each word drawn from its label's own
    /// word set: the two classes share no word, so a classifier separates them perfectly.
    static func separable(_ count: Int, seed: UInt64) -> (tsv: String, labels: [String]) {
        let words = ["pos": ["happy", "good", "great", "joy", "love", "bright", "sunny", "kind", "warm", "sweet"],
                     "neg": ["sad", "bad", "awful", "hate", "dark", "cold", "cruel", "bitter", "gloomy", "angry"]]
        var rng = SeededRandom(seed: seed)
        var tsv = "text\tlabel\n", labels: [String] = []
        for i in 0..<count {
            let label = i % 2 == 0 ? "pos" : "neg"
            tsv += (0..<4).map { _ in words[label]!.randomElement(using: &rng)! }.joined(separator: " ") + "\t\(label)\n"
            labels.append(label)
        }
        return (tsv, labels)
    }

    /// Fine-tuning learns: on an easily separable task (disjoint word sets), held-out rows it never
    /// saw are classified far above the majority class; predict and evaluate agree on them.
    func testFinetunePredictEvaluate() throws {
        let data = try write(Self.separable(120, seed: 1).tsv, "d.tsv")
        let (testRows, testLabels) = Self.separable(40, seed: 2)
        let test = try write(testRows, "test.tsv")
        let out = Fixtures.temporaryDirectory().path + "/cls"
        // A learning rate for a 16-wide model barely pre-trained (5e-5, BERT's, leaves it at chance in 3 epochs).
        let r = try runBert(["finetune", "--checkpoint", Self.checkpoint, "--data", data, "--output", out, "--epochs", "3",
                             "--batch-size", "8", "--max-seq-length", "32", "--eval-fraction", "0.25", "--learning-rate", "1e-2"])
        XCTAssertEqual(r.status, 0, r.stderr)
        let config = try XCTUnwrap(JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: out + "/config.json"))) as? [String: Any])
        XCTAssertEqual(config["id2label"] as? [String: String], ["0": "neg", "1": "pos"])
        XCTAssertEqual(config["architectures"] as? [String], ["BertForSequenceClassification"])
        XCTAssertTrue(FileManager.default.fileExists(atPath: out + "/epoch-0002/model.safetensors"))
        let predicted = try runBert(["predict", "--checkpoint", out, "--input", test, "--max-seq-length", "32"])
        XCTAssertEqual(predicted.status, 0, predicted.stderr)
        let lines = predicted.stdoutText.split(separator: "\n")
        XCTAssertEqual(lines.first, "label\tp_neg\tp_pos")
        XCTAssertEqual(lines.count, 41)
        var correct = 0
        for (line, truth) in zip(lines.dropFirst(), testLabels) {
            let f = line.split(separator: "\t")
            XCTAssertEqual((Double(f[1])! + Double(f[2])!), 1, accuracy: 1e-5)
            XCTAssertEqual(String(f[0]), Double(f[1])! > Double(f[2])! ? "neg" : "pos")
            if String(f[0]) == truth { correct += 1 }
        }
        let majority = Double(Dictionary(grouping: testLabels, by: { $0 }).values.map(\.count).max()!) / Double(testLabels.count)
        XCTAssertEqual(majority, 0.5)
        let accuracy = Double(correct) / Double(testLabels.count)
        XCTAssertGreaterThanOrEqual(accuracy, 0.9, "accuracy on unseen rows \(accuracy); the majority class is \(majority)")
        let evaluated = try runBert(["evaluate", "--checkpoint", out, "--data", test, "--json", "--max-seq-length", "32"])
        XCTAssertEqual(evaluated.status, 0, evaluated.stderr)
        let m = try XCTUnwrap(JSONSerialization.jsonObject(with: evaluated.stdout) as? [String: Any])
        XCTAssertEqual(m["examples"] as? Int, 40)
        XCTAssertEqual(try XCTUnwrap(m["accuracy"] as? Double), accuracy, accuracy: 1e-12, "evaluate against predict's labels")
        XCTAssertGreaterThanOrEqual(try XCTUnwrap(m["macro_f1"] as? Double), 0.9)
        let confusion = try XCTUnwrap(m["confusion_matrix"] as? [[Int]])
        XCTAssertEqual(confusion.flatMap { $0 }.reduce(0, +), 40)
        XCTAssertEqual(confusion[0][0] + confusion[1][1], correct, "the diagonal is the correct predictions")

        // Length-grouped batches (the grouping itself is tested in GroupByLengthTests): same data, a model.
        let grouped = Fixtures.temporaryDirectory().path + "/grouped"
        let g = try runBert(["finetune", "--checkpoint", Self.checkpoint, "--data", data, "--output", grouped, "--epochs", "1",
                             "--batch-size", "8", "--max-seq-length", "32", "--eval-fraction", "0.25", "--group-by-length"])
        XCTAssertEqual(g.status, 0, g.stderr)
        XCTAssertTrue(FileManager.default.fileExists(atPath: grouped + "/model.safetensors"))
    }

    /// `--from-scratch`: the baseline starts from a random encoder of the checkpoint's shape and
    /// vocabulary, the checkpoint's weights unused, its positions drawn as the checkpoint's pre-training
    /// drew them (sinusoids: the fixture uses the small-budget recipe): the same bytes as from `--config`
    /// and `--vocab` with `--sinusoidal-positions` (the same seed), and other bytes than fine-tuning from
    /// the checkpoint with the same settings.
    func testFromScratchBaseline() throws {
        let data = try write(Self.separable(64, seed: 4).tsv, "d.tsv")
        let dir = Fixtures.temporaryDirectory().path
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let common = ["--data", data, "--epochs", "1", "--batch-size", "8", "--max-seq-length", "16", "--learning-rate", "1e-3",
                      "--threads", "1"]
        func model(_ out: String) throws -> Data { try Data(contentsOf: URL(fileURLWithPath: dir + "/" + out + "/epoch-0001/model.safetensors")) }
        let shaped = try runBert(["finetune", "--from-scratch", "--checkpoint", Self.checkpoint, "--output", dir + "/shaped"] + common)
        XCTAssertEqual(shaped.status, 0, shaped.stderr)
        let config = (Self.checkpoint as NSString).appendingPathComponent("config.json")
        let vocab = (Self.checkpoint as NSString).appendingPathComponent("vocab.txt")
        let given = try runBert(["finetune", "--from-scratch", "--config", config, "--vocab", vocab, "--sinusoidal-positions",
                                 "--output", dir + "/given"] + common)
        XCTAssertEqual(given.status, 0, given.stderr)
        let pretrained = try runBert(["finetune", "--checkpoint", Self.checkpoint, "--output", dir + "/pretrained"] + common)
        XCTAssertEqual(pretrained.status, 0, pretrained.stderr)
        XCTAssertEqual(try model("shaped"), try model("given"), "a random encoder of one config and seed, whichever way it is named")
        XCTAssertNotEqual(try model("shaped"), try model("pretrained"), "the checkpoint's weights are not used from scratch")
        func summary(_ out: String) throws -> [String: Any] {
            try XCTUnwrap(JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: dir + "/" + out + "/finetune_summary.json"))) as? [String: Any])
        }
        XCTAssertEqual(try summary("shaped")["from_scratch"] as? Bool, true)
        XCTAssertEqual(try summary("shaped")["position_init"] as? String, "sinusoidal", "as the checkpoint's training_state.json records")
        XCTAssertNil(try summary("pretrained")["position_init"])

        // --no-sinusoidal-positions overrides the record, and equals --config without the flag (normal draws).
        let normal = try runBert(["finetune", "--from-scratch", "--checkpoint", Self.checkpoint, "--no-sinusoidal-positions",
                                  "--output", dir + "/normal"] + common)
        XCTAssertEqual(normal.status, 0, normal.stderr)
        let plain = try runBert(["finetune", "--from-scratch", "--config", config, "--vocab", vocab, "--output", dir + "/plain"] + common)
        XCTAssertEqual(plain.status, 0, plain.stderr)
        XCTAssertEqual(try model("normal"), try model("plain"))
        XCTAssertEqual(try summary("plain")["position_init"] as? String, "normal")
        // The rows past --max-seq-length 16 get no gradient (only AdamW's decay, a factor near 1): there the
        // classifier still holds its start, sinusoids (computed here in Double) or not.
        func positions(_ out: String) throws -> [Float] {
            let file = try SafetensorsFile(path: dir + "/" + out + "/epoch-0001/model.safetensors")
            return try file.floats("bert.embeddings.position_embeddings.weight")
        }
        let width = 16
        func sinusoid(_ t: Int, _ i: Int) -> Double {
            let angle = Double(t) / pow(10000.0, Double(i - i % 2) / Double(width))
            return (i % 2 == 0 ? sin(angle) : cos(angle)) * 0.02 * 2.0.squareRoot()
        }
        for (out, sinusoidal) in [("shaped", true), ("normal", false)] {
            let rows = try positions(out)
            XCTAssertEqual(rows.count, 64 * width)
            let worst = (16..<64).flatMap { t in (0..<width).map { i in abs(Double(rows[t * width + i]) - sinusoid(t, i)) } }.max()!
            if sinusoidal {
                XCTAssertLessThan(worst, 1e-5, "\(out): positions 16..<64 are the sinusoids")
            } else {
                XCTAssertGreaterThan(worst, 1e-2, "\(out): positions 16..<64 are normal draws, not sinusoids")
            }
        }
        let strayFlag = try runBert(["finetune", "--checkpoint", Self.checkpoint, "--sinusoidal-positions", "--output", dir + "/z"] + common)
        XCTAssertEqual(strayFlag.status, 2, strayFlag.stderr)
        XCTAssertTrue(strayFlag.stderr.contains("--sinusoidal-positions is for --from-scratch"), strayFlag.stderr)
        // Refusals: nothing to shape the encoder, or --config without --from-scratch.
        let nothing = try runBert(["finetune", "--from-scratch", "--output", dir + "/x"] + common)
        XCTAssertEqual(nothing.status, 2, nothing.stderr)
        XCTAssertTrue(nothing.stderr.contains("--from-scratch needs"), nothing.stderr)
        let stray = try runBert(["finetune", "--checkpoint", Self.checkpoint, "--config", config, "--output", dir + "/y"] + common)
        XCTAssertEqual(stray.status, 2, stray.stderr)
    }

    /// --dropout overrides the checkpoint config's dropout while fine-tuning (the tiny checkpoint was
    /// pre-trained with the small-budget recipe, so its config says 0): the classifier's config records
    /// the rate, and the rate changes the training; without the flag the config's 0 is kept.
    func testDropoutOverridesTheCheckpointConfig() throws {
        let data = try write(Self.separable(64, seed: 6).tsv, "d.tsv")
        let dir = Fixtures.temporaryDirectory().path
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let common = ["finetune", "--checkpoint", Self.checkpoint, "--data", data, "--epochs", "1", "--batch-size", "8",
                      "--max-seq-length", "16", "--learning-rate", "1e-3", "--threads", "1"]
        func config(_ out: String) throws -> [String: Any] {
            try XCTUnwrap(JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: dir + "/" + out + "/epoch-0001/config.json"))) as? [String: Any])
        }
        func model(_ out: String) throws -> Data { try Data(contentsOf: URL(fileURLWithPath: dir + "/" + out + "/epoch-0001/model.safetensors")) }
        let source = try XCTUnwrap(JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: Self.checkpoint + "/config.json"))) as? [String: Any])
        XCTAssertEqual(source["hidden_dropout_prob"] as? Double, 0, "the small-budget recipe pre-trains without dropout")
        for (out, extra) in [("kept", [String]()), ("zero", ["--dropout", "0"]), ("set", ["--dropout", "0.25"])] {
            let r = try runBert(common + ["--output", dir + "/" + out] + extra)
            XCTAssertEqual(r.status, 0, r.stderr)
        }
        XCTAssertEqual(try config("kept")["hidden_dropout_prob"] as? Double, 0)
        XCTAssertEqual(try config("set")["hidden_dropout_prob"] as? Double, 0.25)
        XCTAssertEqual(try config("set")["attention_probs_dropout_prob"] as? Double, 0.25)
        XCTAssertEqual(try model("kept"), try model("zero"), "--dropout 0 is the config's 0")
        XCTAssertNotEqual(try model("kept"), try model("set"), "dropout changes the training")
        let bad = try runBert(common + ["--output", dir + "/bad", "--dropout", "1"])
        XCTAssertEqual(bad.status, 2, bad.stderr)
        XCTAssertTrue(bad.stderr.contains("--dropout"), bad.stderr)
    }

    /// A file with train and test splits but no dev split: the epoch is chosen on --eval-fraction of
    /// the train rows, and the test split is never read by fine-tuning (here its rows carry a label the
    /// training rows lack, which an evaluation on them would refuse).
    func testTestSplitNeverChoosesTheEpoch() throws {
        let train = Self.separable(100, seed: 5).tsv.split(separator: "\n").dropFirst().map { "train\t" + $0 }
        let test = (0..<20).map { "test\tzebra zebra\tunseen-\($0 % 2)" }
        let data = try write((["split\ttext\tlabel"] + train + test).joined(separator: "\n") + "\n", "split.tsv")
        let out = Fixtures.temporaryDirectory().path + "/cls"
        let r = try runBert(["finetune", "--checkpoint", Self.checkpoint, "--data", data, "--output", out, "--epochs", "1",
                             "--batch-size", "8", "--max-seq-length", "16", "--threads", "1", "--eval-fraction", "0.2"])
        XCTAssertEqual(r.status, 0, r.stderr)
        XCTAssertTrue(r.stderr.contains("held out as dev"), r.stderr)
        let summary = try XCTUnwrap(JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: out + "/finetune_summary.json"))) as? [String: Any])
        let held = try XCTUnwrap((summary["eval"] as? [String: Any])?["examples"] as? Int)
        let trained = try XCTUnwrap(summary["train_examples"] as? Int)
        XCTAssertEqual(held + trained, 100, "every train row either trains or chooses the epoch")
        XCTAssertTrue((8...35).contains(held), "about 20% of 100 held out, got \(held)")
        XCTAssertEqual(summary["labels"] as? [String], ["neg", "pos"], "labels from the train rows only")
    }

    /// --train-fraction trains on a seeded share of the train rows: the dev rows are the very same as at
    /// the full fraction, about the asked share of the others trains, and a share that keeps no row, or
    /// one outside (0, 1], is refused (exit 2) with the option named.
    func testTrainFraction() throws {
        let train = Self.separable(200, seed: 6).tsv.split(separator: "\n").dropFirst().map { "train\t" + $0 }
        let data = try write((["split\ttext\tlabel"] + train).joined(separator: "\n") + "\n", "fraction.tsv")
        func run(_ fraction: String?) throws -> (held: Int, trained: Int, stderr: String) {
            let out = Fixtures.temporaryDirectory().path + "/cls"
            let r = try runBert(["finetune", "--checkpoint", Self.checkpoint, "--data", data, "--output", out, "--epochs", "1",
                                 "--batch-size", "8", "--max-seq-length", "16", "--threads", "1", "--eval-fraction", "0.2"]
                                + (fraction.map { ["--train-fraction", $0] } ?? []))
            XCTAssertEqual(r.status, 0, r.stderr)
            let summary = try XCTUnwrap(JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: out + "/finetune_summary.json"))) as? [String: Any])
            if let fraction { XCTAssertEqual(summary["train_fraction"] as? Double, Double(fraction)) }
            return (try XCTUnwrap((summary["eval"] as? [String: Any])?["examples"] as? Int),
                    try XCTUnwrap(summary["train_examples"] as? Int), r.stderr)
        }
        let all = try run(nil), quarter = try run("0.25")
        XCTAssertEqual(all.held + all.trained, 200)
        XCTAssertEqual(quarter.held, all.held, "the dev rows do not depend on --train-fraction")
        XCTAssertTrue((Int(Double(all.trained) * 0.12)...Int(Double(all.trained) * 0.4)).contains(quarter.trained),
                      "about a quarter of \(all.trained) rows, got \(quarter.trained)")
        XCTAssertTrue(quarter.stderr.contains("--train-fraction 0.25"), quarter.stderr)
        let tiny = try write("text\tlabel\nhi\ta\nho\tb\n", "tiny.tsv")
        for (fraction, fragment) in [("0", "--train-fraction"), ("1.5", "--train-fraction"), ("0.000001", "raise --train-fraction")] {
            let r = try runBert(["finetune", "--checkpoint", Self.checkpoint, "--data", tiny, "--output", Fixtures.temporaryDirectory().path + "/z",
                                 "--max-seq-length", "16", "--eval-fraction", "0", "--train-fraction", fraction])
            XCTAssertEqual(r.status, 2, r.stderr)
            XCTAssertTrue(r.stderr.contains(fragment), r.stderr)
        }
    }

    func testRefusals() throws {
        let out = Fixtures.temporaryDirectory().path
        func expect(_ args: [String], _ fragments: [String]) throws {
            let r = try runBert(args)
            XCTAssertEqual(r.status, 2, r.stderr)
            for f in fragments { XCTAssertTrue(r.stderr.contains(f), "\(f) not in: \(r.stderr)") }
        }
        let base = ["finetune", "--checkpoint", Self.checkpoint, "--output", out + "/x", "--max-seq-length", "32"]
        let noLabel = try write("text\tcategory\nhi\ta\n", "nolabel.tsv")
        try expect(base + ["--data", noLabel], [noLabel, "no column \"label\""])
        let oneClass = try write("text\tlabel\nhi\ta\nho\ta\n", "one.tsv")
        try expect(base + ["--data", oneClass], [oneClass, "one class"])
        let fields = try write("text\tlabel\nhi\ta\nho\tb\textra\n", "fields.tsv")
        try expect(base + ["--data", fields], [fields, "line 3"])
        let empty = try write("text\tlabel\nhi\ta\n\tb\n", "empty.tsv")
        try expect(base + ["--data", empty], [empty, "line 3", "empty text"])
        let train = try write("text\tlabel\nhi\ta\nho\tb\n", "train.tsv")
        let unseen = try write("text\tlabel\nhey\ta\nwho\tc\n", "eval.tsv")
        try expect(base + ["--data", train, "--eval", unseen], [unseen, "line 3", "\"c\""])
        try expect(base + ["--data", train, "--accumulate", "0"], ["--accumulate must be at least 1"])
        try expect(base + ["--data", train, "--log-every-steps", "0"], ["--log-every-steps must be at least 1"])
        // A checkpoint whose config does not match its weights.
        let bad = out + "/badckpt"
        try FileManager.default.createDirectory(atPath: bad, withIntermediateDirectories: true)
        for f in ["model.safetensors", "vocab.txt"] {
            try FileManager.default.copyItem(atPath: Self.checkpoint + "/" + f, toPath: bad + "/" + f)
        }
        var config = try XCTUnwrap(JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: Self.checkpoint + "/config.json"))) as? [String: Any])
        config["intermediate_size"] = 23
        try JSONSerialization.data(withJSONObject: config).write(to: URL(fileURLWithPath: bad + "/config.json"))
        try expect(["finetune", "--checkpoint", bad, "--data", train, "--output", out + "/y", "--max-seq-length", "32"],
                   ["model.safetensors", "intermediate.dense.weight", "shape"])
    }
}
