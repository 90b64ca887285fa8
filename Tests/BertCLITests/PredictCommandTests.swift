import Foundation
import TestSupport
import XCTest

/// `bert predict` and `bert evaluate` as the model was trained: the length and casing recorded in the
/// model directory's tokenizer_config.json, plain-text inputs, and the input order kept under length
/// sorting (issue 30).
final class PredictCommandTests: XCTestCase {
    /// Rows of bert predict's TSV: (label, probabilities), header dropped.
    static func rows(_ tsv: String) -> [(label: String, p: [Double])] {
        tsv.split(separator: "\n", omittingEmptySubsequences: false).dropFirst().filter { !$0.isEmpty }.map { line in
            let f = line.split(separator: "\t", omittingEmptySubsequences: false)
            return (String(f[0]), f.dropFirst().map { Double($0) ?? .nan })
        }
    }

    /// Labels equal and probabilities within `tolerance`; the largest difference.
    @discardableResult
    static func expectSame(_ a: [(label: String, p: [Double])], _ b: [(label: String, p: [Double])], tolerance: Double,
                           _ what: String, file: StaticString = #filePath, line: UInt = #line) -> Double {
        XCTAssertEqual(a.count, b.count, what, file: file, line: line)
        var worst = 0.0
        for (i, (x, y)) in zip(a, b).enumerated() {
            XCTAssertEqual(x.label, y.label, "\(what): row \(i + 1)", file: file, line: line)
            for (u, v) in zip(x.p, y.p) { worst = max(worst, abs(u - v)) }
        }
        XCTAssertLessThanOrEqual(worst, tolerance, what, file: file, line: line)
        return worst
    }

    func write(_ text: String, _ name: String, in dir: String) throws -> String {
        let path = dir + "/" + name
        try Data(text.utf8).write(to: URL(fileURLWithPath: path))
        return path
    }

    /// Pairs of long texts ("w w w … w\tw w …"), each word from its label's own set after a shared prefix
    /// of filler words, so a classifier learns the task and a length of 12 tokens cuts most of the signal.
    static func pairs(_ count: Int, seed: UInt64, split: String) -> [(row: String, label: String)] {
        let words = ["pos": ["happy", "good", "great", "joy", "love", "bright", "sunny", "kind"],
                     "neg": ["sad", "bad", "awful", "hate", "dark", "cold", "cruel", "bitter"]]
        let filler = ["the", "a", "of", "and", "to", "in", "is", "it"]
        var rng = SeededRandom(seed: seed)
        return (0..<count).map { i in
            let label = i % 2 == 0 ? "pos" : "neg"
            let n = 3 + Int.random(in: 0..<12, using: &rng)
            let a = (0..<4).map { _ in filler.randomElement(using: &rng)! } + (0..<n).map { _ in words[label]!.randomElement(using: &rng)! }
            let b = (0..<(2 + i % 5)).map { _ in words[label]!.randomElement(using: &rng)! }
            return ("\(split)\t\(a.joined(separator: " "))\t\(b.joined(separator: " "))\t\(label)", label)
        }
    }

    /// Fine-tuning at --max-seq-length 12 records 12 and the casing in tokenizer_config.json; predict and
    /// evaluate then use them by default and say so: predict's rows for the dev split are the fine-tuning
    /// run's own dev predictions (epoch-N/eval_predictions.tsv), evaluate's confusion matrix is the one the
    /// run reported for its best epoch, and text_b is read as fine-tuning read it. --max-seq-length
    /// overrides the recorded length (and changes the predictions: the check can fail); a directory
    /// without tokenizer_config.json falls back to 128 and says so.
    func testPredictAndEvaluateUseTheRecordedLength() throws {
        let dir = Fixtures.temporaryDirectory().path
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let header = "split\ttext\ttext_b\tlabel\n"
        let train = Self.pairs(96, seed: 11, split: "train"), dev = Self.pairs(40, seed: 12, split: "dev")
        let data = try write(header + (train + dev).map(\.row).joined(separator: "\n") + "\n", "d.tsv", in: dir)
        let devFile = try write(header + dev.map(\.row).joined(separator: "\n") + "\n", "dev.tsv", in: dir)
        let out = dir + "/cls"
        let tuned = try runBert(["finetune", "--checkpoint", FinetuneCommandTests.checkpoint, "--data", data, "--output", out,
                                 "--epochs", "2", "--batch-size", "8", "--max-seq-length", "12", "--learning-rate", "1e-2",
                                 "--precision", "fp32", "--threads", "2"])
        XCTAssertEqual(tuned.status, 0, tuned.stderr)
        XCTAssertTrue(tuned.stderr.contains("max_seq_length 12, uncased"), tuned.stderr)
        let recorded = try XCTUnwrap(JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: out + "/tokenizer_config.json"))) as? [String: Any])
        XCTAssertEqual(recorded["model_max_length"] as? Int, 12)
        XCTAssertEqual(recorded["do_lower_case"] as? Bool, true)
        XCTAssertEqual(recorded["tokenizer_class"] as? String, "BertTokenizer")

        let predicted = try runBert(["predict", "--checkpoint", out, "--input", devFile, "--precision", "fp32"])
        XCTAssertEqual(predicted.status, 0, predicted.stderr)
        XCTAssertTrue(predicted.stderr.hasPrefix("bert predict: max_seq_length 12 (recorded in \(out)/tokenizer_config.json), uncased (recorded)"),
                      predicted.stderr)
        let ours = Self.rows(predicted.stdoutText)
        XCTAssertEqual(ours.count, dev.count)
        let best = try String(contentsOfFile: out + "/best_epoch.txt", encoding: .utf8)
        let own = Self.rows(try String(contentsOfFile: out + "/" + best + "/eval_predictions.tsv", encoding: .utf8))
        Self.expectSame(ours, own, tolerance: 1e-6, "bert predict against the fine-tuning run's own dev predictions")
        let correct = zip(ours, dev).filter { $0.0.label == $0.1.label }.count
        XCTAssertGreaterThanOrEqual(correct, 30, "the classifier learned the task (\(correct) of 40)")

        let evaluated = try runBert(["evaluate", "--checkpoint", out, "--data", devFile, "--split", "dev", "--json", "--precision", "fp32"])
        XCTAssertEqual(evaluated.status, 0, evaluated.stderr)
        XCTAssertTrue(evaluated.stderr.hasPrefix("bert evaluate: max_seq_length 12 (recorded in"), evaluated.stderr)
        let m = try XCTUnwrap(JSONSerialization.jsonObject(with: evaluated.stdout) as? [String: Any])
        XCTAssertEqual(try XCTUnwrap(m["accuracy"] as? Double), Double(correct) / Double(dev.count), accuracy: 1e-12)
        let summary = try XCTUnwrap(JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: out + "/finetune_summary.json"))) as? [String: Any])
        let reported = try XCTUnwrap((summary["eval"] as? [String: Any])?["confusion_matrix"] as? [[Int]])
        XCTAssertEqual(m["confusion_matrix"] as? [[Int]], reported, "the fine-tuning run's own evaluation of its best epoch")

        // An explicit length overrides the recorded one, and the inputs are no longer the trained ones.
        let longer = try runBert(["predict", "--checkpoint", out, "--input", devFile, "--precision", "fp32", "--max-seq-length", "64"])
        XCTAssertEqual(longer.status, 0, longer.stderr)
        XCTAssertTrue(longer.stderr.hasPrefix("bert predict: max_seq_length 64 (--max-seq-length)"), longer.stderr)
        let differs = zip(Self.rows(longer.stdoutText), ours).map { zip($0.0.p, $0.1.p).map { abs($0 - $1) }.max()! }.max()!
        XCTAssertGreaterThan(differs, 1e-3, "the length changes the predictions")
        XCTAssertEqual(try runBert(["predict", "--checkpoint", out, "--input", devFile, "--max-seq-length", "600"]).status, 2,
                       "a length over max_position_embeddings is refused")

        // A model directory from before lengths were recorded: 128, said so.
        let old = dir + "/old"
        try FileManager.default.createDirectory(atPath: old, withIntermediateDirectories: true)
        for f in ["config.json", "model.safetensors", "vocab.txt"] {  // the files, not best/'s links
            try Data(contentsOf: URL(fileURLWithPath: out + "/" + f)).write(to: URL(fileURLWithPath: old + "/" + f))
        }
        let fallback = try runBert(["predict", "--checkpoint", old, "--input", devFile, "--precision", "fp32"])
        XCTAssertEqual(fallback.status, 0, fallback.stderr)
        XCTAssertTrue(fallback.stderr.contains("max_seq_length 64 (\(old)/tokenizer_config.json records none"), fallback.stderr)
        Self.expectSame(Self.rows(fallback.stdoutText), Self.rows(longer.stdoutText), tolerance: 0, "128 capped at the model's 64 positions")
    }

    /// Plain text: a .txt file, the same zstd-compressed, and standard input (`--input -`) give the same
    /// rows as a TSV of the same texts, one output row per input line; blank lines get empty rows in
    /// place (TSV: empty fields; JSONL: nulls). --input-format reads another extension as text.
    func testPlainTextFromAFileCompressedOrStandardInput() throws {
        let dir = Fixtures.temporaryDirectory().path
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let model = Fixtures.path("predict/classifier")
        let texts = try String(contentsOfFile: Fixtures.path("predict/texts.txt"), encoding: .utf8).split(separator: "\n").prefix(40).map(String.init)
        var lines = texts
        lines.insert("", at: 5)
        lines.insert("   ", at: 20)
        lines.append("")
        let plain = try write(lines.joined(separator: "\n") + "\n", "in.txt", in: dir)
        let tsv = try write("text\n" + texts.joined(separator: "\n") + "\n", "in.tsv", in: dir)
        let zst = try runProgram("/usr/bin/env", ["zstd", "-q", "-f", plain, "-o", dir + "/in.txt.zst"], environment: ProcessInfo.processInfo.environment)
        XCTAssertEqual(zst.status, 0, zst.stderr)
        try FileManager.default.copyItem(atPath: plain, toPath: dir + "/in.dat")
        let common = ["predict", "--checkpoint", model, "--precision", "fp32"]
        let reference = try runBert(common + ["--input", tsv])
        XCTAssertEqual(reference.status, 0, reference.stderr)
        let expected = Self.rows(reference.stdoutText)
        XCTAssertEqual(expected.count, texts.count)
        var outputs: [String: ProcessResult] = [:]
        outputs["txt"] = try runBert(common + ["--input", plain])
        outputs["zst"] = try runBert(common + ["--input", dir + "/in.txt.zst"])
        outputs["stdin"] = try runBert(common + ["--input", "-"], stdin: Data((lines.joined(separator: "\n") + "\n").utf8))
        outputs["format"] = try runBert(common + ["--input", dir + "/in.dat", "--input-format", "txt"])
        let blank = String(repeating: "\t", count: 39)  // the fixture has 39 labels: 40 empty fields
        for (name, r) in outputs {
            XCTAssertEqual(r.status, 0, "\(name): \(r.stderr)")
            XCTAssertEqual(r.stdoutText, outputs["txt"]!.stdoutText, name)
            let got = Array(r.stdoutText.split(separator: "\n", omittingEmptySubsequences: false).dropFirst().dropLast())
            XCTAssertEqual(got.count, lines.count, "\(name): one row per input line")
            XCTAssertEqual([got[5], got[20], got[got.count - 1]].map(String.init), [blank, blank, blank], name)
        }
        var kept = Self.rows(outputs["txt"]!.stdoutText)
        for i in [kept.count - 1, 20, 5] { kept.remove(at: i) }
        Self.expectSame(kept, expected, tolerance: 0, "plain text against the same texts in a TSV")
        let jsonl = try runBert(common + ["--input", plain, "--format", "jsonl"])
        XCTAssertEqual(jsonl.status, 0, jsonl.stderr)
        let objects = jsonl.stdoutText.split(separator: "\n").map { try? JSONSerialization.jsonObject(with: Data($0.utf8)) as? [String: Any] }
        XCTAssertEqual(objects.count, lines.count)
        XCTAssertTrue(objects[5]?["label"] is NSNull && objects[5]?["probabilities"] is NSNull, "\(String(describing: objects[5]))")
        XCTAssertEqual(objects[0]?["label"] as? String, expected[0].label)
        // Fine-tuning needs labels: plain text is refused, naming the file.
        let refused = try runBert(["finetune", "--checkpoint", model, "--data", plain, "--output", dir + "/x", "--max-seq-length", "24"])
        XCTAssertEqual(refused.status, 2, refused.stderr)
        XCTAssertTrue(refused.stderr.contains(plain) && refused.stderr.contains("no labels"), refused.stderr)
    }

    /// Length sorting keeps the input's order: with batches of 2 (windows of 128 rows, so several
    /// windows and many sorted batches), every row equals the row predicted alone (batches of 1, no
    /// padding at all); a row out of place would carry another text's probabilities.
    func testOrderIsKeptUnderLengthSorting() throws {
        let model = Fixtures.path("predict/classifier"), texts = Fixtures.path("predict/texts.txt")
        let sorted = try runBert(["predict", "--checkpoint", model, "--input", texts, "--precision", "fp32", "--batch-size", "2"])
        XCTAssertEqual(sorted.status, 0, sorted.stderr)
        let alone = try runBert(["predict", "--checkpoint", model, "--input", texts, "--precision", "fp32", "--batch-size", "1"])
        XCTAssertEqual(alone.status, 0, alone.stderr)
        let (a, b) = (Self.rows(sorted.stdoutText), Self.rows(alone.stdoutText))
        XCTAssertEqual(a.count, 300)
        Self.expectSame(a, b, tolerance: 2e-6, "batches of 2 in length order against one row at a time")
        XCTAssertGreaterThan(Set(b.map(\.p)).count, 250, "the rows are told apart (their probabilities differ)")
    }

    /// transformers, loading the fixture's directory as it is (AutoTokenizer reads model_max_length 24
    /// from its tokenizer_config.json), gives bert predict's labels and probabilities (fp32), by
    /// default, with no length given; at the model's full 64 positions the labels differ (the fixture
    /// README counts them), so the recorded length is what makes them agree.
    func testTransformersLoadingTheDirectoryPredictsTheSame() throws {
        let model = Fixtures.path("predict/classifier"), texts = Fixtures.path("predict/texts.txt")
        let hf = Self.rows(try String(contentsOfFile: Fixtures.path("predict/hf_predictions.tsv"), encoding: .utf8))
        let ours = try runBert(["predict", "--checkpoint", model, "--input", texts, "--precision", "fp32"])
        XCTAssertEqual(ours.status, 0, ours.stderr)
        let worst = Self.expectSame(Self.rows(ours.stdoutText), hf, tolerance: 1e-5, "bert predict against transformers")
        print("bert predict against transformers: 300 labels equal, largest probability difference \(worst)")
        let full = try runBert(["predict", "--checkpoint", model, "--input", texts, "--precision", "fp32", "--max-seq-length", "64"])
        XCTAssertEqual(full.status, 0, full.stderr)
        let changed = zip(Self.rows(full.stdoutText), hf).filter { $0.0.label != $0.1.label }.count
        XCTAssertGreaterThan(changed, 10, "at 64 positions the labels are not transformers' at the recorded 24")
    }
}
