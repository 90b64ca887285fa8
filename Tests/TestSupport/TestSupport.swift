import Foundation
import Support

/// Paths to the repository and its fixtures, found from this file's location.
public enum Fixtures {
    /// The repository root.
    public static let root: URL = URL(fileURLWithPath: #filePath)
        .deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()

    /// A file under Tests/Fixtures.
    public static func path(_ relative: String) -> String {
        root.appendingPathComponent("Tests/Fixtures").appendingPathComponent(relative).path
    }

    /// The real uncased BERT vocabulary (30,522 tokens) committed as a fixture.
    public static var uncasedVocab: String { path("tokenizer/bert-base-uncased-vocab.txt") }

    /// `../shared/data/NAME` beside the repository, when it exists (CI has it; a bare clone does not).
    /// `BERTKIT_SHARED_DATA` names another folder; one that does not exist hides the data, which is how
    /// `make test SHARED=/nonexistent` checks the bare-clone path on a machine that has it.
    public static func shared(_ name: String) -> String? {
        let folder = ProcessInfo.processInfo.environment["BERTKIT_SHARED_DATA"].flatMap { $0.isEmpty ? nil : $0 }
            ?? root.deletingLastPathComponent().appendingPathComponent("shared/data").path
        let p = (folder as NSString).appendingPathComponent(name)
        return FileManager.default.fileExists(atPath: p) ? p : nil
    }

    /// A file of the embedded default corpora, built by `make corpus` (`Corpora/build.sh`, from Debian
    /// packages; `make test` runs it first). Throws, saying how to build it, when it is missing.
    public static func embedded(_ name: String) throws -> String {
        let p = root.appendingPathComponent("Corpora/generated/\(name)").path
        guard FileManager.default.fileExists(atPath: p) else {
            throw FixtureMissing(description: "\(p) is missing: run `make corpus` (Corpora/build.sh) first; `make test` does")
        }
        return p
    }

    /// A real English corpus in google's format (one sentence per line, blank line between documents):
    /// ../shared/data/corpus_en.txt.zst when it is there (15.6 MB), else the embedded Bibles (9 MB).
    public static func englishCorpus() throws -> String {
        try shared("corpus_en.txt.zst") ?? embedded("en.txt")
    }

    /// A real classification TSV (`split`, `label`, `text`): ../shared/data/classification_en.tsv.zst
    /// when it is there, else the embedded fortunes file.
    public static func classificationFile() throws -> String {
        try shared("classification_en.tsv.zst") ?? embedded("fortunes.tsv")
    }

    struct FixtureMissing: Error, CustomStringConvertible { var description: String }

    /// A fresh temporary directory, inside this test process's own folder, which is removed when the
    /// process exits (`BERTKIT_KEEP_TEST_FILES=1` keeps it, for a post-mortem).
    public static func temporaryDirectory() -> URL {
        let url = testRoot.appendingPathComponent("t-\(UUID().uuidString)")
        try? FileManager.default.createDirectory(at: url, withIntermediateDirectories: true)
        return url
    }
}

/// The folder that holds every temporary directory of this test process.
private let testRoot: URL = makeTestRoot()

private func makeTestRoot() -> URL {
    let url = FileManager.default.temporaryDirectory.appendingPathComponent("bertkit-tests-\(getpid())-\(UUID().uuidString.prefix(8))")
    try? FileManager.default.createDirectory(at: url, withIntermediateDirectories: true)
    if ProcessInfo.processInfo.environment["BERTKIT_KEEP_TEST_FILES"].map({ $0.isEmpty || $0 == "0" }) ?? true {
        atexit { removeTestRoot() }
    }
    return url
}

private func removeTestRoot() {
    try? FileManager.default.removeItem(at: testRoot)
}

/// SplitMix64 (Support's, the package's one definition): a small seeded generator for reproducible tests.
public typealias SeededRandom = SplitMix64

/// The result of running a process.
public struct ProcessResult {
    public var status: Int32
    public var stdout: Data
    public var stderr: String
    public var stdoutText: String { String(decoding: stdout, as: UTF8.self) }
}

/// The `bert` binary under test: $BERT_BINARY, else the release or debug build in .build.
public func bertBinary() throws -> String {
    if let p = ProcessInfo.processInfo.environment["BERT_BINARY"], !p.isEmpty { return p }
    for config in ["debug", "release"] {
        let p = Fixtures.root.appendingPathComponent(".build/\(config)/bert").path
        if FileManager.default.isExecutableFile(atPath: p) { return p }
    }
    struct NoBinary: Error, CustomStringConvertible {
        var description: String { "no bert binary: run `swift build` (or set BERT_BINARY)" }
    }
    throw NoBinary()
}

/// The environment `bert` runs in under test: this process's, with `OPENBLAS_CORETYPE` set to
/// `blasCore`, or removed when nil. Every process of one test must get the same one: OpenBLAS's
/// kernels for different cores round differently, so a run killed under one setting and resumed
/// under another cannot give the same bits.
public func bertEnvironment(blasCore: String? = nil) -> [String: String] {
    var env = ProcessInfo.processInfo.environment
    env["OPENBLAS_CORETYPE"] = blasCore
    return env
}

/// Open MPI's launcher, from PATH (or /usr/bin). Its absence is an error that says how to install it:
/// tests that need MPI fail without it, never skip.
public func mpirunPath() throws -> String {
    let path = (ProcessInfo.processInfo.environment["PATH"] ?? "").split(separator: ":").map(String.init) + ["/usr/bin"]
    for dir in path {
        let p = dir + "/mpirun"
        if FileManager.default.isExecutableFile(atPath: p) { return p }
    }
    struct NoMPI: Error, CustomStringConvertible {
        var description: String { "no mpirun on PATH: install Open MPI (make deps installs openmpi-bin and libopenmpi-dev)" }
    }
    throw NoMPI()
}

/// `environment` plus what Open MPI needs to run as root in a container.
public func mpiEnvironment(_ environment: [String: String]) -> [String: String] {
    var env = environment
    env["OMPI_ALLOW_RUN_AS_ROOT"] = "1"
    env["OMPI_ALLOW_RUN_AS_ROOT_CONFIRM"] = "1"
    return env
}

/// Starts `bert` in the background with stdout and stderr discarded (for kill -9 tests).
public func startBert(_ args: [String], environment: [String: String] = bertEnvironment()) throws -> Process {
    let p = Process()
    p.executableURL = URL(fileURLWithPath: try bertBinary())
    p.arguments = args
    p.environment = environment
    p.standardError = FileHandle.nullDevice
    p.standardOutput = FileHandle.nullDevice
    try p.run()
    return p
}

/// Runs `bert` with arguments and stdin bytes; collects stdout and stderr.
public func runBert(_ args: [String], stdin: Data = Data(), environment: [String: String] = bertEnvironment()) throws -> ProcessResult {
    try runProgram(try bertBinary(), args, stdin: stdin, environment: environment)
}

/// Runs `executable` with arguments and stdin bytes; collects stdout and stderr.
public func runProgram(_ executable: String, _ args: [String], stdin: Data = Data(), environment: [String: String]) throws -> ProcessResult {
    let p = Process()
    p.executableURL = URL(fileURLWithPath: executable)
    p.arguments = args
    p.environment = environment
    // Files rather than pipes: no reader threads, no deadlock on large outputs.
    let dir = Fixtures.temporaryDirectory()
    defer { try? FileManager.default.removeItem(at: dir) }
    let inURL = dir.appendingPathComponent("stdin"), outURL = dir.appendingPathComponent("stdout"),
        errURL = dir.appendingPathComponent("stderr")
    try stdin.write(to: inURL)
    FileManager.default.createFile(atPath: outURL.path, contents: nil)
    FileManager.default.createFile(atPath: errURL.path, contents: nil)
    p.standardInput = try FileHandle(forReadingFrom: inURL)
    p.standardOutput = try FileHandle(forWritingTo: outURL)
    p.standardError = try FileHandle(forWritingTo: errURL)
    try p.run()
    p.waitUntilExit()
    let out = try Data(contentsOf: outURL)
    let errData = try Data(contentsOf: errURL)
    return ProcessResult(status: p.terminationStatus, stdout: out, stderr: String(decoding: errData, as: UTF8.self))
}

/// A run directory's metrics.jsonl that is not what `bert` writes.
public struct MetricsRowsError: Error, CustomStringConvertible {
    public let description: String
}

/// Every row of RUN/metrics.jsonl, by step, with its numeric fields (a fine-tuning epoch's eval row
/// merged into its step's train row).
public func metricsRows(_ run: String) throws -> [Int: [String: Double]] {
    var out: [Int: [String: Double]] = [:]
    let path = run + "/metrics.jsonl"
    for (n, line) in try String(contentsOfFile: path, encoding: .utf8).split(separator: "\n").enumerated() {
        guard let o = try JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any], let step = o["step"] as? Int else {
            throw MetricsRowsError(description: "\(path):\(n + 1): not a JSON object with an integer \"step\"")
        }
        out[step, default: [:]].merge(o.compactMapValues { $0 as? Double }) { $1 }
    }
    return out
}
