import Foundation
import Support

/// A parsed pipeline file.
public struct PipelineFile {
    public var name: String
    public var output: String
    public var stages: [PipelineStage]
    /// Comparisons for the report: a metric of evaluation JSON files from the pre-trained encoder and
    /// from the random-init baseline, and the difference in points.
    public var gains: [Gain] = []

    /// One comparison. `pretrained` and `baseline` each hold one evaluation file, or one per
    /// fine-tuning seed: the report then gives the means, the gain of the means and, when both lists
    /// pair up (the same seeds, in the same order), the standard error of the paired differences.
    public struct Gain {
        public var name: String, metric: String, pretrained: [String], baseline: [String]
    }

    static let keys: Set<String> = ["name", "output", "stages", "description", "gains", "defaults"]
    static let stageKeys: Set<String> = ["name", "command", "args", "run", "outputs", "report", "description"]

    /// Parses and checks a pipeline file; bert stages are checked with `runner`.
    public static func load(_ path: String, runner: PipelineCommandRunner) throws -> PipelineFile {
        guard let data = FileManager.default.contents(atPath: path) else {
            throw PipelineError.invalid("\(path): no such pipeline file")
        }
        guard let raw = try? JSONSerialization.jsonObject(with: data) as? [String: Any] else {
            throw PipelineError.invalid("\(path): not a JSON object; see Pipelines/default.json for the format")
        }
        let text = String(decoding: data, as: UTF8.self)
        for key in raw.keys where !keys.contains(key) {
            throw PipelineExpansion.invalid("unknown key \"\(key)\" (known: \(keys.sorted().joined(separator: ", ")))", key, text, path)
        }
        let object = try PipelineExpansion.expand(raw, text: text, path: path)
        let root = ((URL(fileURLWithPath: path).standardizedFileURL.path as NSString).deletingLastPathComponent as NSString).deletingLastPathComponent
        let name = object["name"] as? String ?? (path as NSString).lastPathComponent
        guard let outRaw = object["output"] as? String else { throw PipelineError.invalid("\(path): \"output\" (a directory) is missing") }
        let output = outRaw.hasPrefix("/") ? outRaw : (root as NSString).appendingPathComponent(outRaw)
        guard let list = object["stages"] as? [[String: Any]], !list.isEmpty else {
            throw PipelineError.invalid("\(path): \"stages\" must be a non-empty list of objects")
        }
        var stages: [PipelineStage] = []
        var names = Set<String>()
        for (i, s) in list.enumerated() {
            let where_ = "\(path): stage \(i + 1)"
            for key in s.keys where !stageKeys.contains(key) {
                throw PipelineExpansion.invalid("stage \(i + 1): unknown key \"\(key)\" (known: \(stageKeys.sorted().joined(separator: ", ")), and foreach)", key, text, path)
            }
            guard let stageName = s["name"] as? String, !stageName.isEmpty else { throw PipelineError.invalid("\(where_): \"name\" is missing") }
            guard names.insert(stageName).inserted else { throw PipelineError.invalid("\(where_): the name \"\(stageName)\" is used twice") }
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
                guard runner.commandNames.contains(command), command != "run" else {
                    throw PipelineError.invalid("\(where_) (\(stageName)): unknown command \"\(command)\" (known: \(runner.commandNames.filter { $0 != "run" }.sorted().joined(separator: ", ")))")
                }
                stage.commandName = command
                var args: [String] = []
                let givenJSON = try JSONSerialization.data(withJSONObject: s["args"] ?? [String: Any]())
                guard let given = try? JSONDecoder().decode([String: ArgumentValue].self, from: givenJSON) else {
                    throw PipelineError.invalid("\(where_) (\(stageName)): \"args\" must map option names to strings, numbers, booleans or lists")
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
                if let message = runner.check(command: command, arguments: args) {
                    throw PipelineError.invalid("\(where_) (\(stageName)): \(message)")
                }
            } else {
                throw PipelineError.invalid("\(where_) (\(stageName)): give \"command\" (a bert subcommand) or \"run\" (a program)")
            }
            stages.append(stage)
        }
        var gains: [Gain] = []
        for (i, g) in (object["gains"] as? [Any] ?? []).enumerated() {
            func expand(_ v: String) -> String {
                let e = v.replacingOccurrences(of: "${out}", with: output).replacingOccurrences(of: "${root}", with: root)
                return e.hasPrefix("/") ? e : (root as NSString).appendingPathComponent(e)
            }
            /// A string, or a non-empty list of strings (one evaluation file per fine-tuning seed).
            func files(_ v: Any?) -> [String]? {
                if let one = v as? String { return [one] }
                guard let many = v as? [Any], !many.isEmpty else { return nil }
                let strings = many.compactMap { $0 as? String }
                return strings.count == many.count ? strings : nil
            }
            guard let g = g as? [String: Any], let gainName = g["name"] as? String, let metric = g["metric"] as? String,
                  let pretrained = files(g["pretrained"]), let baseline = files(g["baseline"]), g.count == 4 else {
                throw PipelineError.invalid("\(path): gains[\(i)] must be an object with the strings name and metric, and pretrained and baseline: each an evaluation JSON file or a list of them (one per fine-tuning seed)")
            }
            gains.append(Gain(name: gainName, metric: metric, pretrained: pretrained.map(expand), baseline: baseline.map(expand)))
        }
        if object["gains"] != nil && !(object["gains"] is [Any]) { throw PipelineError.invalid("\(path): \"gains\" must be a list") }
        return PipelineFile(name: name, output: output, stages: stages, gains: gains)
    }
}

/// One stage of a pipeline.
public struct PipelineStage {
    public var name: String
    public var root: String
    /// The bert subcommand, or "" for an external program.
    public var commandName = ""
    public var arguments: [String] = []
    public var external: [String]?
    public var outputs: [String] = []
    public var reportFile: String?

    public var display: String { external?.joined(separator: " ") ?? "bert \(commandName) \(arguments.joined(separator: " "))" }

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

    func execute(_ runner: PipelineCommandRunner) throws {
        if let external {
            // A missing or non-executable program is the pipeline file's fault (exit 2), named as the user wrote it.
            var isDirectory: ObjCBool = false
            let exists = FileManager.default.fileExists(atPath: external[0], isDirectory: &isDirectory)
            guard exists, !isDirectory.boolValue, FileManager.default.isExecutableFile(atPath: external[0]) else {
                throw PipelineError.invalid("stage \(name): cannot run \(external[0]): \(exists ? "not an executable file" : "no such file")"
                                            + " (a \"run\" program's relative path is taken from \(root), the folder above the pipeline file's)")
            }
            let p = Process()
            p.executableURL = URL(fileURLWithPath: external[0])
            p.arguments = Array(external.dropFirst())
            p.currentDirectoryURL = URL(fileURLWithPath: root)
            do { try p.run() } catch {
                throw PipelineError.stageFailed("stage \(name): cannot start \(external[0]): \(error.localizedDescription)")
            }
            p.waitUntilExit()
            guard p.terminationStatus == 0 else {
                throw PipelineError.stageFailed("stage \(name): \(external.joined(separator: " ")) exited with status \(p.terminationStatus)")
            }
            return
        }
        guard !commandName.isEmpty else { return }
        try runner.run(command: commandName, arguments: arguments)
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
