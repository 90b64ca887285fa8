import Foundation
import TestSupport
import XCTest

/// `mpirun -np 2 bert pretrain`: data-parallel pre-training on Open MPI, over shared memory and over TCP
/// (what separate machines use), on one machine. Needs Open MPI's `mpirun` (`make deps` installs
/// openmpi-bin); its absence is a failure that says so, never a skip.
final class DataParallelTests: XCTestCase {
    /// Open MPI's launcher.
    static func mpirun() throws -> String { try mpirunPath() }

    /// The environment of a launch: bert's, plus what Open MPI needs to run as root in a container.
    static var environment: [String: String] { mpiEnvironment(bertEnvironment()) }

    /// `mpirun --oversubscribe -np N [--mca btl tcp,self] bert ARGS`.
    func mpirun(_ n: Int, tcp: Bool = false, _ args: [String]) throws -> ProcessResult {
        let transport = tcp ? ["--mca", "btl", "tcp,self"] : []
        return try runProgram(try Self.mpirun(), ["--oversubscribe", "-np", "\(n)"] + transport + [try bertBinary()] + args,
                              environment: Self.environment)
    }

    /// A tiny run on the shards of PretrainCommandTests: 16 × 64 tokens, one thread per process, a row
    /// of metrics every update.
    func arguments(_ run: String, batch: Int, _ extra: [String] = []) -> [String] {
        ["pretrain", "--shards", PretrainCommandTests.base + "/shards", "--output", run, "--config", PretrainCommandTests.base + "/tiny.json",
         "--batch-size", "\(batch)", "--learning-rate", "1e-3", "--threads", "1", "--log-every-steps", "1"] + extra
    }

    func state(_ checkpoint: String) throws -> [String: Any] {
        try XCTUnwrap(JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: checkpoint + "/training_state.json"))) as? [String: Any])
    }

    func bytes(_ dir: String) throws -> [String: Data] {
        var out: [String: Data] = [:]
        for f in ["model.safetensors", "optimizer.safetensors", "training_state.json"] {
            out[f] = try Data(contentsOf: URL(fileURLWithPath: dir + "/" + f))
        }
        return out
    }

    /// The losses, gradient norms and accuracies of two runs agree to `tolerance` (relative) at every step.
    func expectSameRows(_ a: String, _ b: String, tolerance: Double, file: StaticString = #filePath, line: UInt = #line) throws {
        let (x, y) = (try metricsRows(a), try metricsRows(b))
        XCTAssertEqual(Set(x.keys), Set(y.keys), file: file, line: line)
        var worst = (0.0, "")
        for (step, row) in x {
            for key in ["loss", "mlm_loss", "nsp_loss", "gradient_norm"] {
                let (p, q) = (try XCTUnwrap(row[key]), try XCTUnwrap(y[step]?[key]))
                let e = abs(p - q) / max(abs(q), 1e-12)
                if e > worst.0 { worst = (e, "\(key) at step \(step): \(p) against \(q)") }
            }
            for key in ["mlm_accuracy", "nsp_accuracy"] {
                XCTAssertEqual(row[key], y[step]?[key], "\(key) at step \(step)", file: file, line: line)
            }
        }
        XCTAssertLessThanOrEqual(worst.0, tolerance, worst.1, file: file, line: line)
    }

    /// The contract of --batch-size under MPI: 2 processes with the global batch B compute what one
    /// process with B/2 and --accumulate 2 computes: the same instances and dropout masks in every
    /// micro-batch, the same weights; only the gradient sum is rounded in another order. With dropout, 50
    /// updates: every logged loss and gradient norm within 1e-6 relative, the accuracies equal, the data
    /// position equal, and the number of processes recorded.
    func testTwoProcessesEqualOneProcessAccumulatingTwoMicroBatches() throws {
        let dir = Fixtures.temporaryDirectory().path
        defer { try? FileManager.default.removeItem(atPath: dir) }
        // fp32: in bf16 (auto, on a CPU with bf16 units) the two sum orders' last-bit differences flip
        // roundings of the bf16 weights, which 50 updates amplify to 1e-3; the contract is about the sum.
        let common = ["--max-steps", "50", "--dropout", "0.1", "--no-group-by-length", "--precision", "fp32"]
        let two = try mpirun(2, arguments(dir + "/two", batch: 16, common))
        XCTAssertEqual(two.status, 0, two.stderr)
        XCTAssertTrue(two.stderr.contains("2 processes (MPI) × 1 thread,"), two.stderr)
        XCTAssertEqual(two.stdoutText.split(separator: "\n").count, 1, "only rank 0 prints the checkpoint: \(two.stdoutText)")
        let one = try runBert(arguments(dir + "/one", batch: 8, common + ["--accumulate", "2"]))
        XCTAssertEqual(one.status, 0, one.stderr)
        try expectSameRows(dir + "/two", dir + "/one", tolerance: 1e-6)
        let (s2, s1) = (try state(dir + "/two/latest"), try state(dir + "/one/latest"))
        XCTAssertEqual(s2["processes"] as? Int, 2)
        XCTAssertNil(s1["processes"], "one process records nothing new: its bytes are as before")
        XCTAssertEqual((s2["position"] as? [String: Int]), (s1["position"] as? [String: Int]))
        XCTAssertEqual((s2["position"] as? [String: Int])?["instances_consumed"], 50 * 16)
        // Not the same as no accumulation: the comparison can fail.
        let plain = try runBert(arguments(dir + "/plain", batch: 8, common))
        XCTAssertEqual(plain.status, 0, plain.stderr)
        XCTAssertNotEqual(try metricsRows(dir + "/plain")[50]?["loss"], try metricsRows(dir + "/one")[50]?["loss"])
    }

    /// Two runs with the same number of processes give the same bytes, over shared memory and over TCP
    /// (`--mca btl tcp,self`, the transport between machines), and whether the gradients are summed in
    /// small buckets overlapped with the backward (about one per layer here) or in one sum after it (a bucket
    /// started before its layer's gradients were complete would change them); and a run stopped by 2 processes resumes
    /// with 1 (the position is global) to the end, close to the uninterrupted run (the sum is rounded
    /// in another order once it has only one process).
    func testSameBytesOverSharedMemoryAndTCPAndResumeWithAnotherProcessCount() throws {
        let dir = Fixtures.temporaryDirectory().path
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let common = ["--epochs", "1", "--save-every-steps", "10", "--max-steps", "40"]  // length-grouped, no dropout: the defaults
        let shm = try mpirun(2, arguments(dir + "/shm", batch: 16, common + ["--allreduce-bucket-mb", "0.01"]))
        XCTAssertEqual(shm.status, 0, shm.stderr)
        // 0.01 MiB = 2,621 Floats: the head, the pooler (600) with the last layer, the first layer, the embeddings.
        XCTAssertTrue(shm.stderr.contains("all-reduce: 4 buckets"), shm.stderr)
        let tcp = try mpirun(2, tcp: true, arguments(dir + "/tcp", batch: 16, common + ["--allreduce-bucket-mb", "0"]))
        XCTAssertEqual(tcp.status, 0, tcp.stderr)
        XCTAssertTrue(tcp.stderr.contains("all-reduce: 1 buckets"), tcp.stderr)
        XCTAssertEqual(try bytes(dir + "/shm/step-00000040"), try bytes(dir + "/tcp/step-00000040"))
        XCTAssertEqual(try metricsRows(dir + "/shm").mapValues { $0.filter { !["seconds", "tokens_per_second"].contains($0.key) } },
                       try metricsRows(dir + "/tcp").mapValues { $0.filter { !["seconds", "tokens_per_second"].contains($0.key) } })

        let stopped = try mpirun(2, arguments(dir + "/moved", batch: 16, common + ["--stop-after-steps", "23"]))
        XCTAssertEqual(stopped.status, 0, stopped.stderr)
        XCTAssertEqual(try FileManager.default.destinationOfSymbolicLink(atPath: dir + "/moved/latest"), "step-00000020")
        XCTAssertEqual(try bytes(dir + "/moved/step-00000020"), try bytes(dir + "/shm/step-00000020"), "stopped: the same bytes so far")
        let resumed = try runBert(arguments(dir + "/moved", batch: 16, common + ["--resume"]))
        XCTAssertEqual(resumed.status, 0, resumed.stderr)
        XCTAssertEqual(try state(dir + "/moved/latest")["step"] as? Int, 40)
        XCTAssertNil(try state(dir + "/moved/latest")["processes"])
        try expectSameRows(dir + "/moved", dir + "/shm", tolerance: 1e-4)
    }

    /// A rank that cannot read its shards ends the whole job, at once, with exit 2 and a message naming
    /// the rank and the file; the other rank, already waiting in a collective, does not hang. (MPMD
    /// launch: rank 1 gets a copy of the shards with a damaged shard file.)
    func testARankThatCannotReadItsShardsEndsTheJob() throws {
        let dir = Fixtures.temporaryDirectory().path
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let good = PretrainCommandTests.base + "/shards"
        try FileManager.default.copyItem(atPath: good, toPath: dir + "/bad")
        let shard = try XCTUnwrap(try FileManager.default.contentsOfDirectory(atPath: dir + "/bad").sorted().first { $0.hasPrefix("shard-") })
        let handle = try FileHandle(forUpdating: URL(fileURLWithPath: dir + "/bad/" + shard))
        try handle.seek(toOffset: 64)
        try handle.write(contentsOf: Data("damage".utf8))
        try handle.close()
        let started = Date()
        func args(_ shards: String) -> [String] {
            ["pretrain", "--shards", shards, "--output", dir + "/run", "--config", PretrainCommandTests.base + "/tiny.json",
             "--batch-size", "16", "--max-steps", "20", "--threads", "1"]
        }
        let r = try runProgram(try Self.mpirun(), ["--oversubscribe", "-np", "1", try bertBinary()] + args(good)
                                   + [":", "-np", "1", try bertBinary()] + args(dir + "/bad"), environment: Self.environment)
        XCTAssertEqual(r.status, 2, r.stderr)
        XCTAssertTrue(r.stderr.contains("rank 1 of 2: " + dir + "/bad/" + shard), r.stderr)
        XCTAssertLessThan(Date().timeIntervalSince(started), 60, "ended promptly")
        XCTAssertNil(try? FileManager.default.destinationOfSymbolicLink(atPath: dir + "/run/latest"), "no checkpoint")
    }

    /// A rank killed with -9 ends the job (mpirun kills the other), nothing half-written is left (the
    /// newest checkpoint is complete), and --resume with the same number of processes then continues
    /// exactly: the final checkpoint has the bytes of an uninterrupted run.
    func testKillNineOfOneRankThenResumeEqualsAnUninterruptedRun() throws {
        let dir = Fixtures.temporaryDirectory().path
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let common = ["--epochs", "2", "--save-every-steps", "10", "--dropout", "0.1"]
        let whole = try mpirun(2, arguments(dir + "/whole", batch: 16, common))
        XCTAssertEqual(whole.status, 0, whole.stderr)

        let p = Process()
        p.executableURL = URL(fileURLWithPath: try Self.mpirun())
        p.arguments = ["--oversubscribe", "-np", "2", try bertBinary()] + arguments(dir + "/killed", batch: 16, common)
        p.environment = Self.environment
        p.standardOutput = FileHandle.nullDevice
        p.standardError = FileHandle.nullDevice
        try p.run()
        let deadline = Date().addingTimeInterval(120)
        while Date() < deadline, (try? FileManager.default.destinationOfSymbolicLink(atPath: dir + "/killed/latest")) != "step-00000030" {
            Thread.sleep(forTimeInterval: 0.005)
        }
        // The ranks are mpirun's children: kill -9 the one with the higher pid (rank order is not pid order,
        // and either will do).
        let children = try childProcesses(of: p.processIdentifier)
        XCTAssertEqual(children.count, 2, "two ranks under mpirun: \(children)")
        kill(try XCTUnwrap(children.max()), SIGKILL)
        p.waitUntilExit()
        XCTAssertNotEqual(p.terminationStatus, 0, "the job ended with an error")
        let latest = try FileManager.default.destinationOfSymbolicLink(atPath: dir + "/killed/latest")
        XCTAssertTrue(latest.hasPrefix("step-"), "killed mid-epoch (latest is \(latest))")
        XCTAssertFalse(FileManager.default.fileExists(atPath: dir + "/killed/epoch-0002"), "killed before the end")
        _ = try bytes(dir + "/killed/latest")  // the newest checkpoint is whole

        let resumed = try mpirun(2, arguments(dir + "/killed", batch: 16, common + ["--resume"]))
        XCTAssertEqual(resumed.status, 0, resumed.stderr)
        XCTAssertEqual(try bytes(dir + "/killed/epoch-0002"), try bytes(dir + "/whole/epoch-0002"), "the final checkpoint's bytes")
        let strip: ([Int: [String: Double]]) -> [Int: [String: Double]] = { $0.mapValues { $0.filter { !["seconds", "tokens_per_second"].contains($0.key) } } }
        XCTAssertEqual(strip(try metricsRows(dir + "/killed")), strip(try metricsRows(dir + "/whole")), "every logged row")
    }

    /// `mpirun -np 2 bert finetune`: the global batch split between the processes, each weighted by its
    /// share of the batch's labels, gives the one-process run's losses (within 1e-5 relative at every
    /// logged step, without dropout) and its evaluation; process 0 alone writes OUTPUT, whole. With
    /// `--batch-size 4 --accumulate 2` the two processes again train as one process with 8.
    func testFineTuningOnTwoProcessesEqualsOneProcess() throws {
        let dir = Fixtures.temporaryDirectory().path
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let data = dir + "/d.tsv"
        try Data(FinetuneCommandTests.separable(150, seed: 1).tsv.utf8).write(to: URL(fileURLWithPath: data))
        let common = ["finetune", "--checkpoint", FinetuneCommandTests.checkpoint, "--data", data, "--epochs", "2", "--batch-size", "8",
                      "--max-seq-length", "16", "--learning-rate", "1e-3", "--dropout", "0", "--threads", "1"]
        let two = try mpirun(2, common + ["--output", dir + "/two", "--allreduce-bucket-mb", "0.001"])
        XCTAssertEqual(two.status, 0, two.stderr)
        XCTAssertTrue(two.stderr.contains("2 processes (MPI) × 1 thread,"), two.stderr)
        let one = try runBert(common + ["--output", dir + "/one"])
        XCTAssertEqual(one.status, 0, one.stderr)
        var accumulating = common
        accumulating[accumulating.firstIndex(of: "--batch-size")! + 1] = "4"
        let twoAccumulating = try mpirun(2, accumulating + ["--accumulate", "2", "--output", dir + "/two-accumulating"])
        XCTAssertEqual(twoAccumulating.status, 0, twoAccumulating.stderr)
        let b = try metricsRows(dir + "/one")
        for run in ["two", "two-accumulating"] {
            let a = try metricsRows(dir + "/" + run)
            XCTAssertEqual(Set(a.keys), Set(b.keys), run)
            XCTAssertGreaterThanOrEqual(a.count, 3)
            for (step, row) in a {
                let (p, q) = (try XCTUnwrap(row["loss"]), try XCTUnwrap(b[step]?["loss"]))
                XCTAssertEqual(p, q, accuracy: 1e-5 * abs(q), "\(run): loss at step \(step)")
                if let e = row["eval_accuracy"] { XCTAssertEqual(e, try XCTUnwrap(b[step]?["eval_accuracy"]), accuracy: 0.02, "\(run): step \(step)") }
            }
        }
        let files = Set(try FileManager.default.contentsOfDirectory(atPath: dir + "/two"))
        XCTAssertTrue(files.isSuperset(of: ["model.safetensors", "config.json", "vocab.txt", "epoch-0001", "epoch-0002", "finetune_summary.json"]), "\(files)")
        XCTAssertFalse(files.contains { $0.contains(".tmp-") || $0.contains(".old-") }, "\(files)")
    }

    /// Shards across machines: `bert shards --part K/N` run as separate commands (as on separate
    /// machines) and joined by `bert merge-shards` give the same bytes (index and every shard) as
    /// `mpirun -np 2 bert shards`; the parts' inputs are disjoint and their instances add up; pretrain
    /// reads the merged set; a second mpirun finds it up to date; parts that disagree, or an incomplete
    /// set of parts, are refused with exit 2.
    func testShardPartsMergeToTheSameSetOnOneMachineOrMany() throws {
        let dir = Fixtures.temporaryDirectory().path
        defer { try? FileManager.default.removeItem(atPath: dir) }
        try FileManager.default.createDirectory(atPath: dir + "/in", withIntermediateDirectories: true)
        let words = ["the", "cat", "sat", "on", "a", "mat", "and", "dog", "ran", "to", "house", "with", "red", "door", "in", "rain",
                     "she", "said", "that", "he", "would", "come", "back", "later", "for", "tea", "morning", "light", "river", "stone"]
        var rng = SeededRandom(seed: 7)
        for f in 0..<5 {
            var text = ""
            for _ in 0..<25 {
                for _ in 0..<6 { text += (0..<9).map { _ in words.randomElement(using: &rng)! }.joined(separator: " ") + ".\n" }
                text += "\n"
            }
            try Data(text.utf8).write(to: URL(fileURLWithPath: dir + "/in/file\(f).txt"))
        }
        let common = ["shards", "--input", dir + "/in", "--vocab", Fixtures.uncasedVocab, "--dupe-factor", "2", "--max-seq-length", "32",
                      "--max-predictions", "5", "--threads", "1", "--shard-size-mb", "0.02"]
        for k in 1...2 {
            let r = try runBert(common + ["--part", "\(k)/2", "--output", dir + "/p\(k)"])
            XCTAssertEqual(r.status, 0, r.stderr)
        }
        let merged = try runBert(["merge-shards", dir + "/p2", dir + "/p1", "--output", dir + "/merged"])
        XCTAssertEqual(merged.status, 0, merged.stderr)
        let launched = try mpirun(2, common + ["--output", dir + "/mpi"])
        XCTAssertEqual(launched.status, 0, launched.stderr)
        XCTAssertTrue(launched.stderr.contains("merged 2 parts"), launched.stderr)

        func index(_ d: String) throws -> [String: Any] {
            try XCTUnwrap(JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: d + "/index.json"))) as? [String: Any])
        }
        XCTAssertEqual(try Data(contentsOf: URL(fileURLWithPath: dir + "/merged/index.json")),
                       try Data(contentsOf: URL(fileURLWithPath: dir + "/mpi/index.json")))
        let shards = try XCTUnwrap(try index(dir + "/merged")["shards"] as? [[String: Any]])
        XCTAssertGreaterThan(shards.count, 2)
        for shard in shards {
            let file = try XCTUnwrap(shard["file"] as? String)
            XCTAssertEqual(try Data(contentsOf: URL(fileURLWithPath: dir + "/merged/" + file)),
                           try Data(contentsOf: URL(fileURLWithPath: dir + "/mpi/" + file)), file)
        }
        let (p1, p2, m) = (try index(dir + "/p1"), try index(dir + "/p2"), try index(dir + "/merged"))
        XCTAssertEqual((m["total_instances"] as? Int), (p1["total_instances"] as? Int).flatMap { a in (p2["total_instances"] as? Int).map { a + $0 } })
        let (x1, x2, xm) = (try XCTUnwrap((p1["parameters"] as? [String: Any])?["extra"] as? [String: String]),
                            try XCTUnwrap((p2["parameters"] as? [String: Any])?["extra"] as? [String: String]),
                            try XCTUnwrap((m["parameters"] as? [String: Any])?["extra"] as? [String: String]))
        XCTAssertEqual(x1["part"], "1/2")
        XCTAssertNotEqual(x1["inputs_sha256"], x2["inputs_sha256"], "the parts read different files")
        XCTAssertEqual(xm["parts"], "2")
        XCTAssertNil(xm["part"])
        XCTAssertEqual((m["parameters"] as? [String: Any])?["seed"] as? Int, 12345, "the merged set records the base seed")
        let seeds = [p1, p2].map { ($0["parameters"] as? [String: Any])?["seed"].map { "\($0)" } }  // 64-bit: compared as text
        XCTAssertNotNil(seeds[0])
        XCTAssertNotEqual(seeds[0], seeds[1], "each part draws from its own seed")
        XCTAssertNotEqual(seeds[0], "12345")

        let pretrain = try runBert(["pretrain", "--shards", dir + "/merged", "--output", dir + "/run", "--config", PretrainCommandTests.base + "/tiny.json",
                                    "--batch-size", "8", "--max-steps", "2", "--threads", "1"])
        XCTAssertEqual(pretrain.status, 0, pretrain.stderr)
        let again = try mpirun(2, common + ["--output", dir + "/mpi"])
        XCTAssertEqual(again.status, 0, again.stderr)
        XCTAssertTrue(again.stderr.contains("up to date"), again.stderr)

        let other = try runBert(common + ["--part", "2/2", "--output", dir + "/other", "--dupe-factor", "3"])
        XCTAssertEqual(other.status, 0, other.stderr)
        let refused = try runBert(["merge-shards", dir + "/p1", dir + "/other", "--output", dir + "/bad"])
        XCTAssertEqual(refused.status, 2)
        XCTAssertTrue(refused.stderr.contains(dir + "/other/index.json: part 2/2 was built with other parameters"), refused.stderr)
        let incomplete = try runBert(["merge-shards", dir + "/p1", "--output", dir + "/bad"])
        XCTAssertEqual(incomplete.status, 2)
        XCTAssertTrue(incomplete.stderr.contains("each of 1/2 … 2/2 exactly once"), incomplete.stderr)
        XCTAssertFalse(FileManager.default.fileExists(atPath: dir + "/bad/index.json"))
        let badPart = try runBert(common + ["--part", "3/2", "--output", dir + "/bad"])
        XCTAssertEqual(badPart.status, 2)
        XCTAssertTrue(badPart.stderr.contains("K must be in 1…N"), badPart.stderr)
    }

    /// A global batch that the processes cannot share evenly is refused before anything runs.
    func testABatchThatDoesNotDivideIsRefused() throws {
        let dir = Fixtures.temporaryDirectory().path
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let r = try mpirun(2, arguments(dir + "/odd", batch: 15, ["--max-steps", "2"]))
        XCTAssertEqual(r.status, 2, r.stderr)
        XCTAssertTrue(r.stderr.contains("--batch-size: the global batch of 15 must be a multiple of the 2 processes"), r.stderr)
    }

    /// The pids whose parent is `pid` (from /proc).
    func childProcesses(of pid: Int32) throws -> [Int32] {
        try FileManager.default.contentsOfDirectory(atPath: "/proc").compactMap { Int32($0) }.filter { child in
            guard let stat = try? String(contentsOfFile: "/proc/\(child)/stat", encoding: .utf8),
                  let close = stat.lastIndex(of: ")") else { return false }
            let fields = stat[stat.index(after: close)...].split(separator: " ")
            return fields.count > 1 && Int32(fields[1]) == pid
        }
    }
}
