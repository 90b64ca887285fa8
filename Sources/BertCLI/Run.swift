import Support
import ArgumentParser
import Foundation
import PretrainingData

/// `bert run Pipelines/NAME.json`: the stages of a pipeline file in order, each skipped when its
/// outputs exist and were made from the same settings and inputs.
///
/// A pipeline file:
///
///     {"name": "default", "output": "out/default",
///      "stages": [
///        {"name": "corpus",   "run": ["Corpora/build.sh"], "outputs": ["Corpora/generated/en.txt"]},
///        {"name": "vocab",    "command": "vocab",  "args": {"input": ["Corpora/generated/en.txt"], "size": 16000,
///                                                           "output": "${out}/vocab.txt"}},
///        {"name": "shards",   "command": "shards", "args": {...}},
///        ...]}
///
/// `command` is a `bert` subcommand and `args` its options (`"dupe-factor": 5` → `--dupe-factor 5`;
/// true → a flag; a list → the values one after another). `run` is an external program (the corpus
/// build). `${out}` is the pipeline's output directory, `${root}` the directory of the pipeline
/// file's parent (the repository). A stage records a stamp in `${out}/.stages/NAME.json`: the sha256
/// of its settings, of the stamps before it, and of the size and time of its input files. A stage
/// whose stamp matches and whose `outputs` exist is skipped. While a stage runs, its stamp is in
/// `NAME.pending`: an interrupted stage with the same stamp is run again and continues (bert's own
/// commands resume or rewrite atomically); a stage whose settings or inputs changed first removes its
/// own output (its `output` argument, when inside the pipeline's directory), so nothing made with
/// the old settings is resumed or mixed in.
struct RunCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "run",
        abstract: "Run every stage of a pipeline file (corpus, vocabulary, shards, pre-training, fine-tuning, evaluation).")

    @Argument(help: "The pipeline file, e.g. Pipelines/default.json.") var pipeline: String
    @Flag(help: "Run every stage even when its outputs are current.") var force = false
    @Flag(help: "Print the stages and what would run, then stop.") var dryRun = false

    /// Subcommands a stage may name.
    static let commands: [String: ParsableCommand.Type] = Bert.configuration.subcommands.reduce(into: [:]) {
        $0[$1.configuration.commandName ?? ""] = $1
    }

    func run() throws {
        let file = try PipelineFile.load(pipeline)
        let out = file.output
        try FileManager.default.createDirectory(atPath: out + "/.stages", withIntermediateDirectories: true)
        var report: [(String, String, Double)] = []
        var previous = ""
        let started = Date()
        for stage in file.stages {
            let stampPath = out + "/.stages/\(stage.name).json"
            let stamp = try stage.stamp(previous: previous)
            previous = stamp
            let current = (try? String(contentsOfFile: stampPath, encoding: .utf8))?.trimmingCharacters(in: .whitespacesAndNewlines) == stamp
                && stage.outputs.allSatisfy { FileManager.default.fileExists(atPath: $0) }
            if current && !force {
                log("bert run: \(stage.name): up to date, skipped")
                report.append((stage.name, "skipped (current)", 0))
                continue
            }
            if dryRun {
                log("bert run: \(stage.name): would run \(stage.display)")
                continue
            }
            try? FileManager.default.removeItem(atPath: stampPath)
            let pendingPath = out + "/.stages/\(stage.name).pending"
            let pending = (try? String(contentsOfFile: pendingPath, encoding: .utf8))?.trimmingCharacters(in: .whitespacesAndNewlines)
            if let work = stage.workOutput(inside: out), FileManager.default.fileExists(atPath: work) {
                if pending == stamp && !force {
                    log("bert run: \(stage.name): continuing an interrupted run")
                } else {
                    log("bert run: \(stage.name): \(work) was made with other settings or inputs; removing it and starting again")
                    do { try FileManager.default.removeItem(atPath: work) } catch {
                        throw UsageError("\(work): cannot remove it (\(error.localizedDescription)); remove it by hand and run again")
                    }
                }
            }
            try writeFileAtomically(Data((stamp + "\n").utf8), to: pendingPath)
            log("bert run: \(stage.name): \(stage.display)")
            let t0 = Date()
            try stage.execute()
            try writeFileAtomically(Data((stamp + "\n").utf8), to: stampPath)
            try? FileManager.default.removeItem(atPath: pendingPath)
            let seconds = Date().timeIntervalSince(t0)
            report.append((stage.name, "ran", seconds))
        }
        if dryRun { return }
        let total = Date().timeIntervalSince(started)
        var text = "\n== bert run \(file.name): report ==\n"
        func pad(_ s: String, _ w: Int) -> String { s.count >= w ? s : s + String(repeating: " ", count: w - s.count) }
        // Stage names as wide as the longest, so a long name never runs into its status.
        let width = max(17, (report.map { $0.0.count }.max() ?? 0) + 2)
        for (name, what, seconds) in report {
            text += "  " + pad(name, width) + pad(what, 20) + String(format: "%8.1f s\n", seconds)
        }
        text += "  " + pad("total", width + 20) + String(format: "%8.1f s\n", total)
        for stage in file.stages {
            if let path = stage.reportFile, let data = FileManager.default.contents(atPath: path) {
                text += "\n-- \(stage.name): \(path)\n"
                if path.hasSuffix(".json"), let object = try? JSONSerialization.jsonObject(with: data) as? [String: Any] {
                    // JSON reports: the top-level numbers only (matrices and per-class tables stay in the file).
                    for key in object.keys.sorted() {
                        if let n = object[key] as? NSNumber, !(object[key] is Bool) { text += "  \(key): \(n)\n" }
                    }
                } else {
                    text += String(decoding: data, as: UTF8.self)
                    if !text.hasSuffix("\n") { text += "\n" }
                }
            }
        }
        if !file.gains.isEmpty { text += "\n-- what pre-training bought (fine-tuned from the pre-trained encoder vs from a random one)\n" }
        for gain in file.gains {
            func value(_ path: String) -> Double? {
                guard let data = FileManager.default.contents(atPath: path),
                      let object = try? JSONSerialization.jsonObject(with: data) as? [String: Any] else { return nil }
                return (object[gain.metric] as? NSNumber)?.doubleValue
            }
            if let a = value(gain.pretrained), let b = value(gain.baseline) {
                text += String(format: "  %@: pre-trained %.4f, from scratch %.4f, gain %+.1f points\n", gain.name, a, b, 100 * (a - b))
            } else {
                text += "  \(gain.name): missing \(gain.metric) in \(gain.pretrained) or \(gain.baseline)\n"
            }
        }
        print(text, terminator: "")
        try writeFileAtomically(Data(text.utf8), to: out + "/report.txt")
    }
}

/// A parsed pipeline file.
struct PipelineFile {
    var name: String
    var output: String
    var stages: [PipelineStage]
    /// Comparisons for the report: a metric of two evaluation JSON files, from the pre-trained encoder
    /// and from the random-init baseline, and the difference in points.
    var gains: [Gain] = []

    struct Gain {
        var name: String, metric: String, pretrained: String, baseline: String
    }

    static let keys: Set<String> = ["name", "output", "stages", "description", "gains"]
    static let stageKeys: Set<String> = ["name", "command", "args", "run", "outputs", "report", "description"]

    static func load(_ path: String) throws -> PipelineFile {
        guard let data = FileManager.default.contents(atPath: path) else {
            throw UsageError("\(path): no such pipeline file")
        }
        guard let object = try? JSONSerialization.jsonObject(with: data) as? [String: Any] else {
            throw UsageError("\(path): not a JSON object; see Pipelines/default.json for the format")
        }
        for key in object.keys where !keys.contains(key) {
            throw UsageError("\(path): unknown key \"\(key)\" (known: \(keys.sorted().joined(separator: ", ")))")
        }
        let root = ((URL(fileURLWithPath: path).standardizedFileURL.path as NSString).deletingLastPathComponent as NSString).deletingLastPathComponent
        let name = object["name"] as? String ?? (path as NSString).lastPathComponent
        guard let outRaw = object["output"] as? String else { throw UsageError("\(path): \"output\" (a directory) is missing") }
        let output = outRaw.hasPrefix("/") ? outRaw : (root as NSString).appendingPathComponent(outRaw)
        guard let list = object["stages"] as? [[String: Any]], !list.isEmpty else {
            throw UsageError("\(path): \"stages\" must be a non-empty list of objects")
        }
        var stages: [PipelineStage] = []
        var names = Set<String>()
        for (i, s) in list.enumerated() {
            let where_ = "\(path): stage \(i + 1)"
            for key in s.keys where !stageKeys.contains(key) {
                throw UsageError("\(where_): unknown key \"\(key)\" (known: \(stageKeys.sorted().joined(separator: ", ")))")
            }
            guard let stageName = s["name"] as? String, !stageName.isEmpty else { throw UsageError("\(where_): \"name\" is missing") }
            guard names.insert(stageName).inserted else { throw UsageError("\(where_): the name \"\(stageName)\" is used twice") }
            func expand(_ v: String) -> String {
                v.replacingOccurrences(of: "${out}", with: output).replacingOccurrences(of: "${root}", with: root)
            }
            func resolve(_ v: String) -> String {
                let e = expand(v)
                return e.hasPrefix("/") || e.hasPrefix("-") ? e : (root as NSString).appendingPathComponent(e)
            }
            var stage = PipelineStage(name: stageName, root: root)
            stage.outputs = (s["outputs"] as? [String] ?? []).map(resolve)
            stage.reportFile = (s["report"] as? String).map(resolve)
            if let run = s["run"] as? [String], !run.isEmpty {
                stage.external = [resolve(run[0])] + run.dropFirst().map(expand)
            } else if let command = s["command"] as? String {
                guard let type = RunCommand.commands[command], command != "run" else {
                    throw UsageError("\(where_) (\(stageName)): unknown command \"\(command)\" (known: \(RunCommand.commands.keys.filter { $0 != "run" }.sorted().joined(separator: ", ")))")
                }
                stage.command = type
                stage.commandName = command
                var args: [String] = []
                let givenJSON = try JSONSerialization.data(withJSONObject: s["args"] ?? [String: Any]())
                guard let given = try? JSONDecoder().decode([String: ArgumentValue].self, from: givenJSON) else {
                    throw UsageError("\(where_) (\(stageName)): \"args\" must map option names to strings, numbers, booleans or lists")
                }
                let pathKeys: Set<String> = ["output", "vocab", "shards", "checkpoint", "data", "eval", "input", "config", "cache", "_"]
                for key in given.keys.sorted() where key != "_" {
                    let flag = "--" + key
                    let isPath = pathKeys.contains(key)
                    switch given[key]! {
                    case let .bool(b): if b { args.append(flag) }
                    case let .scalar(v): args += [flag, isPath ? resolve(v) : expand(v)]
                    case let .list(vs): args.append(flag); args += vs.map { isPath ? resolve($0) : expand($0) }
                    }
                }
                // Positional arguments (e.g. inspect's path) under "_".
                switch given["_"] {
                case let .scalar(v)?: args = [resolve(v)] + args
                case let .list(vs)?: args = vs.map(resolve) + args
                default: break
                }
                stage.arguments = args
                do { _ = try type.parse(args) } catch {
                    throw UsageError("\(where_) (\(stageName)): \(type.message(for: error))")
                }
            } else {
                throw UsageError("\(where_) (\(stageName)): give \"command\" (a bert subcommand) or \"run\" (a program)")
            }
            stages.append(stage)
        }
        var gains: [Gain] = []
        for (i, g) in (object["gains"] as? [Any] ?? []).enumerated() {
            func expand(_ v: String) -> String {
                let e = v.replacingOccurrences(of: "${out}", with: output).replacingOccurrences(of: "${root}", with: root)
                return e.hasPrefix("/") ? e : (root as NSString).appendingPathComponent(e)
            }
            guard let g = g as? [String: Any], let gainName = g["name"] as? String, let metric = g["metric"] as? String,
                  let pretrained = g["pretrained"] as? String, let baseline = g["baseline"] as? String, g.count == 4 else {
                throw UsageError("\(path): gains[\(i)] must be an object with the strings name, metric, pretrained and baseline (evaluation JSON files)")
            }
            gains.append(Gain(name: gainName, metric: metric, pretrained: expand(pretrained), baseline: expand(baseline)))
        }
        if object["gains"] != nil && !(object["gains"] is [Any]) { throw UsageError("\(path): \"gains\" must be a list") }
        return PipelineFile(name: name, output: output, stages: stages, gains: gains)
    }
}

/// One stage of a pipeline.
struct PipelineStage {
    var name: String
    var root: String
    var command: ParsableCommand.Type?
    var commandName = ""
    var arguments: [String] = []
    var external: [String]?
    var outputs: [String] = []
    var reportFile: String?

    var display: String { external?.joined(separator: " ") ?? "bert \(commandName) \(arguments.joined(separator: " "))" }

    /// The stage's own output (the value of its `--output` argument) when it lies inside the
    /// pipeline's output directory `out`; nil otherwise (nothing outside it is ever removed).
    func workOutput(inside out: String) -> String? {
        guard let i = arguments.firstIndex(of: "--output"), i + 1 < arguments.count else { return nil }
        let path = URL(fileURLWithPath: arguments[i + 1]).standardizedFileURL.path
        let base = URL(fileURLWithPath: out).standardizedFileURL.path
        return path.hasPrefix(base + "/") ? path : nil
    }

    /// sha256 of the settings, the previous stamp, and the size and time of input files.
    func stamp(previous: String) throws -> String {
        var text = previous + "\n" + display + "\n"
        for a in arguments where a.hasPrefix("/") {
            var isDir: ObjCBool = false
            if FileManager.default.fileExists(atPath: a, isDirectory: &isDir), !isDir.boolValue,
               let attributes = try? FileManager.default.attributesOfItem(atPath: a) {
                let size = (attributes[.size] as? NSNumber)?.intValue ?? -1
                let time = (attributes[.modificationDate] as? Date)?.timeIntervalSince1970 ?? 0
                // Outputs of this stage change when it runs: only inputs count (files that exist before).
                if !outputs.contains(a) { text += "\(a) \(size) \(time)\n" }
            }
        }
        return SHA256.hex(SHA256.hash(Array(text.utf8)))
    }

    func execute() throws {
        if let external {
            let p = Process()
            p.executableURL = URL(fileURLWithPath: external[0])
            p.arguments = Array(external.dropFirst())
            p.currentDirectoryURL = URL(fileURLWithPath: root)
            try p.run()
            p.waitUntilExit()
            guard p.terminationStatus == 0 else {
                throw UsageError("stage \(name): \(external.joined(separator: " ")) exited with status \(p.terminationStatus)")
            }
            return
        }
        guard let command else { return }
        var parsed = try command.parse(arguments)
        try parsed.run()
    }
}

/// An option value in a pipeline file.
enum ArgumentValue: Decodable {
    case bool(Bool)
    case scalar(String)
    case list([String])

    init(from decoder: Decoder) throws {
        let c = try decoder.singleValueContainer()
        if let b = try? c.decode(Bool.self) { self = .bool(b); return }
        if let i = try? c.decode(Int.self) { self = .scalar(String(i)); return }
        if let d = try? c.decode(Double.self) { self = .scalar(String(d)); return }
        if let s = try? c.decode(String.self) { self = .scalar(s); return }
        if let l = try? c.decode([ArgumentValue].self) {
            self = .list(l.compactMap { if case let .scalar(s) = $0 { return s } else { return nil } })
            return
        }
        throw DecodingError.dataCorruptedError(in: c, debugDescription: "not a string, number, boolean or list")
    }
}
