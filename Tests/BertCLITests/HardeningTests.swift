import Foundation
import TestSupport
import XCTest

/// Ordinary mistakes and odd inputs that once ended `bert` on a signal: each now gives a correct
/// result, or exit 2 with a message naming the file and what to do.
final class HardeningTests: XCTestCase {
    /// A 50 MB line with no newline and no space (one word) once crashed `bert tokenize` with an index
    /// out of range in the line chunker. The word is far over WordPiece's 100-character limit, so it is
    /// one `[UNK]`, as Hugging Face gives; `bert vocab` and `bert shards` read the same chunker.
    func testFiftyMegabyteLineWithoutNewline() throws {
        let dir = Fixtures.temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: dir) }
        let word = Data(repeating: UInt8(ascii: "a"), count: 50_000_000)
        let tok = try runBert(["tokenize", "--vocab", Fixtures.uncasedVocab], stdin: word)
        XCTAssertEqual(tok.status, 0, tok.stderr)
        XCTAssertEqual(tok.stdoutText, "[CLS] [UNK] [SEP]\n")
        // The same line after ordinary text, in a file: one line of output each.
        let file = dir.appendingPathComponent("long.txt")
        var text = Data("Hello there.\n".utf8)
        text.append(word)
        text.append(Data("!\nThe end.\n".utf8))
        try text.write(to: file)
        let tok2 = try runBert(["tokenize", "--vocab", Fixtures.uncasedVocab], stdin: text)
        XCTAssertEqual(tok2.status, 0, tok2.stderr)
        XCTAssertEqual(tok2.stdoutText, "[CLS] hello there . [SEP]\n[CLS] [UNK] ! [SEP]\n[CLS] the end . [SEP]\n")

        let vocab = try runBert(["vocab", "--input", file.path, "--size", "200", "--min-frequency", "1",
                                 "--output", dir.appendingPathComponent("v.txt").path])
        XCTAssertEqual(vocab.status, 0, vocab.stderr)
        let tokens = try String(contentsOf: dir.appendingPathComponent("v.txt"), encoding: .utf8).split(separator: "\n")
        XCTAssertTrue(tokens.contains("hello") && tokens.contains("end"), "the ordinary words are in the vocabulary")
        XCTAssertTrue(tokens.allSatisfy { $0.count <= 100 }, "no token made of the long word (over 100 characters, it is [UNK] whole)")

        // Two documents so that pairs can be made; the long line is a sentence of one [UNK].
        var corpus = text
        corpus.append(Data("\nA second document.\nWith two sentences.\n".utf8))
        try corpus.write(to: file)
        let shards = try runBert(["shards", "--input", file.path, "--vocab", Fixtures.uncasedVocab, "--output", dir.appendingPathComponent("s").path,
                                  "--dupe-factor", "2", "--max-seq-length", "32", "--max-predictions", "4"])
        XCTAssertEqual(shards.status, 0, shards.stderr)
        let shown = try runBert(["inspect", dir.appendingPathComponent("s").path, "--json", "--limit", "0"])
        XCTAssertEqual(shown.status, 0, shown.stderr)
        XCTAssertTrue(shown.stdoutText.contains("\"[UNK]\""), "the long word is [UNK] in the instances")
    }

    /// `bert inspect SHARD-FILE --vocab V` with a vocabulary smaller than the shard's once crashed
    /// (index out of range while decoding). A lone shard file is checked against the vocabulary's size,
    /// and against index.json's sha256 when the index beside it lists the file.
    func testInspectOneShardWithAnotherVocabulary() throws {
        let dir = Fixtures.temporaryDirectory().path
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let built = try runBert(["shards", "--input", Fixtures.path("text/en_sample.txt.zst"), "--vocab", Fixtures.uncasedVocab,
                                 "--output", dir + "/s", "--dupe-factor", "1"])
        XCTAssertEqual(built.status, 0, built.stderr)
        let small = dir + "/small.txt"
        try Data("[PAD]\n[UNK]\n[CLS]\n[SEP]\n[MASK]\nthe\n".utf8).write(to: URL(fileURLWithPath: small))
        let shard = dir + "/s/shard-00000.bin.zst"
        XCTAssertEqual(try runBert(["inspect", shard, "--limit", "3"]).status, 0, "the shard's own vocabulary decodes it")

        let listed = try runBert(["inspect", shard, "--vocab", small])
        XCTAssertEqual(listed.status, 2, listed.stderr)
        XCTAssertTrue(listed.stderr.contains("index.json") && listed.stderr.contains("vocabulary"), listed.stderr)

        // A shard on its own, no index beside it: the size check names the shard and the vocabulary.
        try FileManager.default.createDirectory(atPath: dir + "/alone", withIntermediateDirectories: true)
        try FileManager.default.copyItem(atPath: shard, toPath: dir + "/alone/shard-00000.bin.zst")
        for args in [["--vocab", small], ["--vocab", small, "--json"], ["--vocab", small, "--stats"]] {
            let alone = try runBert(["inspect", dir + "/alone/shard-00000.bin.zst"] + args)
            XCTAssertEqual(alone.status, 2, alone.stderr)
            XCTAssertTrue(alone.stderr.contains("shard-00000.bin.zst") && alone.stderr.contains("30522")
                          && alone.stderr.contains(small), alone.stderr)
        }
        let right = try runBert(["inspect", dir + "/alone/shard-00000.bin.zst", "--vocab", Fixtures.uncasedVocab, "--limit", "1", "--json"])
        XCTAssertEqual(right.status, 0, right.stderr)
    }

    /// A damaged tokenized cache (`OUTPUT/.tokenized/sentences.u64` with a few bytes changed), then the
    /// same `bert shards ... --overwrite`: the process once aborted. The cache is checked, rebuilt, and
    /// the shards equal those of a clean run.
    func testDamagedTokenizedCacheIsRebuilt() throws {
        let dir = Fixtures.temporaryDirectory().path
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let args = ["shards", "--input", Fixtures.path("text/en_sample.txt.zst"), "--vocab", Fixtures.uncasedVocab,
                    "--output", dir + "/s", "--dupe-factor", "2", "--overwrite"]
        XCTAssertEqual(try runBert(args).status, 0)
        let clean = try Data(contentsOf: URL(fileURLWithPath: dir + "/s/shard-00000.bin.zst"))
        let cache = URL(fileURLWithPath: dir + "/s/.tokenized/sentences.u64")
        var data = try Data(contentsOf: cache)
        for i in stride(from: 101, to: 140, by: 8) { data[i] ^= 0x5A }
        try data.write(to: cache)
        let again = try runBert(args)
        XCTAssertEqual(again.status, 0, again.stderr)
        XCTAssertTrue(again.stderr.contains("damaged") && again.stderr.contains("sentences.u64"), again.stderr)
        XCTAssertEqual(try Data(contentsOf: URL(fileURLWithPath: dir + "/s/shard-00000.bin.zst")), clean, "the same shards as a clean run")
        let third = try runBert(args)
        XCTAssertTrue(third.stderr.contains("reused tokenized store"), "the rebuilt cache is sound: \(third.stderr)")
    }

    /// `bert pretrain --resume-if-possible` over a damaged checkpoint once threw the run away and started
    /// again. A damaged checkpoint is exit 2 naming the file, as with --resume; starting again is for a
    /// checkpoint of other settings, and the message says so.
    func testResumeIfPossibleRefusesADamagedCheckpoint() throws {
        let dir = Fixtures.temporaryDirectory().path
        defer { try? FileManager.default.removeItem(atPath: dir) }
        func pretrain(_ extra: [String]) throws -> ProcessResult {
            try runBert(["pretrain", "--shards", PretrainCommandTests.base + "/shards", "--output", dir + "/run",
                         "--config", PretrainCommandTests.base + "/tiny.json", "--batch-size", "16", "--max-steps", "3",
                         "--threads", "2"] + extra)
        }
        XCTAssertEqual(try pretrain([]).status, 0)
        let optimizer = dir + "/run/latest/optimizer.safetensors"
        let url = URL(fileURLWithPath: optimizer)
        let good = try Data(contentsOf: url)
        var zeroed = good
        zeroed.replaceSubrange(0..<64, with: Data(count: 64))
        try zeroed.write(to: url)
        let damaged = try pretrain(["--resume-if-possible"])
        XCTAssertEqual(damaged.status, 2, damaged.stderr)
        XCTAssertTrue(damaged.stderr.contains("optimizer.safetensors"), damaged.stderr)
        XCTAssertEqual(try Data(contentsOf: url), zeroed, "the run was not thrown away")
        // The same with --resume.
        let resumed = try pretrain(["--resume"])
        XCTAssertEqual(resumed.status, 2, resumed.stderr)
        XCTAssertTrue(resumed.stderr.contains("optimizer.safetensors"), resumed.stderr)

        // Whole again, the same settings: resumed (nothing left to do, the run is finished).
        try good.write(to: url)
        let same = try pretrain(["--resume-if-possible"])
        XCTAssertEqual(same.status, 0, same.stderr)
        XCTAssertFalse(same.stderr.contains("starting again"), same.stderr)
        // Other settings: a new run, and the message says why.
        let other = try pretrain(["--resume-if-possible", "--batch-size", "8"])
        XCTAssertEqual(other.status, 0, other.stderr)
        XCTAssertTrue(other.stderr.contains("other settings") && other.stderr.contains("starting again"), other.stderr)
        let state = try String(contentsOfFile: dir + "/run/latest/training_state.json", encoding: .utf8)
        XCTAssertTrue(state.contains("\"batch_size\" : 8"), state)
    }

    /// The exit-code contract: 2 when the user's command or input is wrong, 1 when the environment
    /// fails. A full disk (here stdout on /dev/full, which fails every write with ENOSPC) is not the
    /// user's input: exit 1, with the message naming what could not be written.
    func testFullDiskIsExitOneAndBadInputExitTwo() throws {
        let p = Process()
        p.executableURL = URL(fileURLWithPath: try bertBinary())
        p.arguments = ["tokenize", "--vocab", Fixtures.uncasedVocab]
        p.environment = bertEnvironment()
        let dir = Fixtures.temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: dir) }
        let input = dir.appendingPathComponent("in.txt"), errors = dir.appendingPathComponent("err.txt")
        try Data(String(repeating: "Hello world, a line to tokenize.\n", count: 20_000).utf8).write(to: input)
        _ = FileManager.default.createFile(atPath: errors.path, contents: nil)
        p.standardInput = try FileHandle(forReadingFrom: input)
        p.standardOutput = try XCTUnwrap(FileHandle(forWritingAtPath: "/dev/full"))
        p.standardError = try FileHandle(forWritingTo: errors)
        try p.run()
        p.waitUntilExit()
        let stderr = try String(contentsOf: errors, encoding: .utf8)
        XCTAssertEqual(p.terminationReason, .exit)
        XCTAssertEqual(p.terminationStatus, 1, stderr)
        XCTAssertTrue(stderr.contains("write failed") && stderr.contains("No space left"), stderr)

        // The same command with a vocabulary that does not exist: the user's to fix, exit 2.
        let missing = try runBert(["tokenize", "--vocab", dir.appendingPathComponent("nope.txt").path], stdin: Data("hi\n".utf8))
        XCTAssertEqual(missing.status, 2, missing.stderr)
        XCTAssertTrue(missing.stderr.contains("nope.txt"), missing.stderr)
        // Shards into a path that is a file: exit 2, naming it.
        let file = dir.appendingPathComponent("taken").path
        _ = FileManager.default.createFile(atPath: file, contents: Data("x".utf8))
        let taken = try runBert(["shards", "--input", Fixtures.path("text/en_sample.txt.zst"), "--vocab", Fixtures.uncasedVocab, "--output", file])
        XCTAssertEqual(taken.status, 2, taken.stderr)
        XCTAssertTrue(taken.stderr.contains(file) && taken.stderr.contains("not a directory"), taken.stderr)
    }

    /// `--keep-last 2` with a checkpoint every 10 updates: at the end the two newest step checkpoints
    /// and both epoch checkpoints are left, and a kill -9 then `--resume` still equals the whole run.
    func testKeepLastPrunesOldStepCheckpoints() throws {
        let dir = Fixtures.temporaryDirectory().path
        defer { try? FileManager.default.removeItem(atPath: dir) }
        func args(_ run: String) -> [String] {
            ["pretrain", "--shards", PretrainCommandTests.base + "/shards", "--output", dir + "/" + run,
             "--config", PretrainCommandTests.base + "/tiny.json", "--batch-size", "16", "--epochs", "2", "--save-every-steps", "10",
             "--keep-last", "2", "--threads", "2"]
        }
        let whole = try runBert(args("whole"))
        XCTAssertEqual(whole.status, 0, whole.stderr)
        let names = try FileManager.default.contentsOfDirectory(atPath: dir + "/whole")
        let steps = names.filter { $0.hasPrefix("step-") }.sorted()
        XCTAssertEqual(steps, ["step-00000130", "step-00000140"], "\(names)")  // 70 updates an epoch
        XCTAssertTrue(names.contains("epoch-0001") && names.contains("epoch-0002"), "\(names)")
        XCTAssertEqual(try runBert(args("whole") + ["--keep-last", "0"]).status, 2, "--keep-last 0 is refused")

        let p = try startBert(args("killed"))
        let deadline = Date().addingTimeInterval(120)
        while Date() < deadline, (try? FileManager.default.destinationOfSymbolicLink(atPath: dir + "/killed/latest")) != "step-00000050" {
            Thread.sleep(forTimeInterval: 0.005)
        }
        kill(p.processIdentifier, SIGKILL)
        p.waitUntilExit()
        let left = try FileManager.default.contentsOfDirectory(atPath: dir + "/killed").filter { $0.hasPrefix("step-") }
        XCTAssertLessThanOrEqual(left.count, 3, "at most the two kept and one being replaced: \(left)")
        let resumed = try runBert(args("killed") + ["--resume"])
        XCTAssertEqual(resumed.status, 0, resumed.stderr)
        XCTAssertEqual(try Data(contentsOf: URL(fileURLWithPath: dir + "/killed/epoch-0002/model.safetensors")),
                       try Data(contentsOf: URL(fileURLWithPath: dir + "/whole/epoch-0002/model.safetensors")))
    }

    /// `bert finetune` keeps the best epoch at the top of OUTPUT through one link (`best`), switched by
    /// one rename, so model.safetensors, config.json and vocab.txt there always come from one epoch;
    /// every epoch directory is written whole under a temporary name. Killed at any moment, what is
    /// left is whole models only.
    func testFinetuneOutputIsSwitchedAtomically() throws {
        let dir = Fixtures.temporaryDirectory().path
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let data = dir + "/d.tsv"
        try Data(FinetuneCommandTests.separable(400, seed: 3).tsv.utf8).write(to: URL(fileURLWithPath: data))
        func args(_ out: String) -> [String] {
            ["finetune", "--checkpoint", FinetuneCommandTests.checkpoint, "--data", data, "--output", dir + "/" + out, "--epochs", "4",
             "--batch-size", "8", "--max-seq-length", "16", "--learning-rate", "1e-2", "--threads", "1"]
        }
        let r = try runBert(args("whole"))
        XCTAssertEqual(r.status, 0, r.stderr)
        let out = dir + "/whole"
        let best = try String(contentsOfFile: out + "/best_epoch.txt", encoding: .utf8)
        XCTAssertEqual(try FileManager.default.destinationOfSymbolicLink(atPath: out + "/best"), best)
        for file in ["model.safetensors", "config.json", "vocab.txt"] {
            XCTAssertEqual(try Data(contentsOf: URL(fileURLWithPath: out + "/" + file)),
                           try Data(contentsOf: URL(fileURLWithPath: out + "/" + best + "/" + file)), file)
        }
        XCTAssertEqual(try FileManager.default.contentsOfDirectory(atPath: out).filter { $0.contains(".tmp") || $0.contains(".old") }, [])

        // Killed at several moments: each epoch directory and the top of OUTPUT hold whole models.
        var checked = 0
        // (After epoch k's directory appears, a little later each time: during the next epoch, around
        // the switch of `best`, or while the next epoch directory is written.)
        for (i, (epoch, delay)) in [(1, 0.0), (1, 0.02), (2, 0.05), (3, 0.0)].enumerated() {
            let killed = "killed\(i)"
            let p = try startBert(args(killed))
            let deadline = Date().addingTimeInterval(120)
            while Date() < deadline, !FileManager.default.fileExists(atPath: dir + "/\(killed)/epoch-000\(epoch)") {
                Thread.sleep(forTimeInterval: 0.002)
            }
            Thread.sleep(forTimeInterval: delay)
            kill(p.processIdentifier, SIGKILL)
            p.waitUntilExit()
            let names = (try? FileManager.default.contentsOfDirectory(atPath: dir + "/" + killed)) ?? []
            for epoch in names.filter({ $0.hasPrefix("epoch-") && !$0.contains(".") }) + (names.contains("best") ? [""] : []) {
                let model = dir + "/" + killed + "/" + epoch
                let predicted = try runBert(["predict", "--checkpoint", model, "--input", data, "--max-seq-length", "16"])
                XCTAssertEqual(predicted.status, 0, "\(model) after a kill \(delay) s after epoch \(epoch): \(predicted.stderr)")
                checked += 1
            }
        }
        XCTAssertGreaterThanOrEqual(checked, 4, "every kill came after a first epoch was saved")
    }
}
