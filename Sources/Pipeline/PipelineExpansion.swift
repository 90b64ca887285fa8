import Foundation

/// The shorthands of a pipeline file, expanded into the plain form `PipelineFile.load` reads (one object per
/// stage and per gain, every argument written out):
///
/// - `"defaults": {"finetune": {"epochs": 3, ...}, "evaluate": {...}}`: arguments every stage of that command
///   starts from; a stage's own `args` win.
/// - `"foreach": [item, ...]` on a stage or a gain: one copy per item, in order. Inside it, `${item}` is the item
///   and `${item.KEY}` a field of an object item. A string that is exactly one such reference takes the item's
///   value with its JSON type (a number, a boolean for a flag), and `null` leaves the argument out (as `null`
///   in a stage's `args` does, also for an argument its command's defaults give).
/// - `{"foreach": [...], "stages": [stage, ...]}` in `stages`: the group of stages once per item, in order (a
///   fine-tuning and its evaluation per seed, say), as DVC's `foreach` does for one stage.
/// - A stage of a known command may leave out `outputs`: they follow from its `output` argument (a run's
///   `latest/model.safetensors`, a shard directory's `index.json`, a file itself). `"report": true` reports
///   that output.
///
/// Errors name the file and the line of the offending key or value.
enum PipelineExpansion {
    /// What each command's `output` argument makes, for stages that leave `outputs` out.
    static let derivedOutputs: [String: String] = [
        "vocab": "", "inspect": "", "evaluate": "", "shards": "/index.json", "pretrain": "/latest/model.safetensors",
        "finetune": "/model.safetensors",
    ]

    /// The expanded top-level object.
    static func expand(_ object: [String: Any], text: String, path: String) throws -> [String: Any] {
        var object = object
        let defaults = try defaultArguments(object["defaults"], text: text, path: path)
        object["defaults"] = nil
        if let list = object["stages"] as? [Any] {
            var stages: [Any] = []
            for entry in list {
                guard let stage = entry as? [String: Any] else { stages.append(entry); continue }
                if let group = stage["stages"] {
                    guard let members = group as? [Any], let items = stage["foreach"] as? [Any], !items.isEmpty,
                          Set(stage.keys).isSubset(of: ["foreach", "stages", "description"]) else {
                        throw invalid("a group needs \"foreach\" (a non-empty list) and \"stages\" (a list), and nothing else", "foreach", text, path)
                    }
                    for item in items {
                        for member in members { stages += try copies(member, items: [item], text: text, path: path) }
                    }
                } else if let items = stage["foreach"] {
                    guard let items = items as? [Any], !items.isEmpty else { throw invalid("\"foreach\" must be a non-empty list", "foreach", text, path) }
                    var template = stage
                    template["foreach"] = nil
                    stages += try copies(template, items: items, text: text, path: path)
                } else {
                    stages.append(stage)
                }
            }
            object["stages"] = try stages.map { try completed($0, defaults: defaults, text: text, path: path) }
        }
        if let gains = object["gains"] as? [Any] {
            var out: [Any] = []
            for g in gains {
                guard var gain = g as? [String: Any], let items = gain["foreach"] else { out.append(g); continue }
                guard let items = items as? [Any], !items.isEmpty else { throw invalid("\"foreach\" must be a non-empty list", "foreach", text, path) }
                gain["foreach"] = nil
                out += try copies(gain, items: items, text: text, path: path)
            }
            object["gains"] = out
        }
        return object
    }

    static func defaultArguments(_ value: Any?, text: String, path: String) throws -> [String: [String: Any]] {
        guard let value else { return [:] }
        guard let table = value as? [String: Any] else { throw invalid("\"defaults\" must map command names to argument objects", "defaults", text, path) }
        var out: [String: [String: Any]] = [:]
        for (command, args) in table {
            guard let args = args as? [String: Any] else {
                throw invalid("defaults.\(command) must be an object of arguments", command, text, path)
            }
            out[command] = args
        }
        return out
    }

    /// One copy of `template` per item, with `${item}` and `${item.KEY}` replaced.
    static func copies(_ template: Any, items: [Any], text: String, path: String) throws -> [Any] {
        try items.map { item in
            guard let copy = try substitute(template, item: item, text: text, path: path) else {
                throw invalid("a stage or gain cannot be null", "foreach", text, path)
            }
            return copy
        }
    }

    /// `value` with every reference to `item` replaced; nil when it becomes null (the argument is left out).
    static func substitute(_ value: Any, item: Any, text: String, path: String) throws -> Any? {
        switch value {
        case let s as String:
            if let key = wholeReference(s) { return try lookup(key, in: item, text: text, path: path) }
            var out = s
            while let range = out.range(of: #"\$\{item(\.[A-Za-z0-9_-]+)?\}"#, options: .regularExpression) {
                let reference = String(out[range])
                let key = String(reference.dropFirst(2).dropLast())
                guard let v = try lookup(key, in: item, text: text, path: path) else {
                    throw invalid("\(reference) is null, so it cannot be part of \"\(s)\"", s, text, path)
                }
                out.replaceSubrange(range, with: scalarText(v))
            }
            return out
        case let list as [Any]:
            return try list.compactMap { try substitute($0, item: item, text: text, path: path) }
        case let object as [String: Any]:
            var out: [String: Any] = [:]
            for (k, v) in object { if let s = try substitute(v, item: item, text: text, path: path) { out[k] = s } }
            return out
        case is NSNull:
            return nil
        default:
            return value
        }
    }

    /// "item" or "item.KEY" when `s` is exactly one reference.
    static func wholeReference(_ s: String) -> String? {
        guard s.hasPrefix("${item"), s.hasSuffix("}"), s.range(of: #"^\$\{item(\.[A-Za-z0-9_-]+)?\}$"#, options: .regularExpression) != nil else { return nil }
        return String(s.dropFirst(2).dropLast())
    }

    static func lookup(_ key: String, in item: Any, text: String, path: String) throws -> Any? {
        if key == "item" { return item is NSNull ? nil : item }
        let field = String(key.dropFirst("item.".count))
        guard let object = item as? [String: Any] else {
            throw invalid("${\(key)} needs object items in \"foreach\", but an item is \(scalarText(item))", key, text, path)
        }
        guard let v = object[field] else {
            throw invalid("${\(key)}: an item of \"foreach\" has no field \"\(field)\" (it has \(object.keys.sorted().joined(separator: ", ")))", key, text, path)
        }
        return v is NSNull ? nil : v
    }

    static func scalarText(_ v: Any) -> String {
        if let s = v as? String { return s }
        if let data = try? JSONSerialization.data(withJSONObject: v, options: [.sortedKeys, .fragmentsAllowed]) { return String(decoding: data, as: UTF8.self) }
        return "\(v)"
    }

    /// A stage with its command's defaults under its arguments, and `outputs`/`report` derived from `output`.
    static func completed(_ entry: Any, defaults: [String: [String: Any]], text: String, path: String) throws -> Any {
        guard var stage = entry as? [String: Any] else { return entry }
        if let command = stage["command"] as? String {
            var args = defaults[command] ?? [:]
            for (k, v) in stage["args"] as? [String: Any] ?? [:] { args[k] = v is NSNull ? nil : v }  // null: leave it out
            if !args.isEmpty || stage["args"] != nil { stage["args"] = args }
            let output = args["output"] as? String
            if stage["outputs"] == nil, let output, let suffix = derivedOutputs[command] { stage["outputs"] = [output + suffix] }
            if let report = stage["report"] as? Bool {
                guard report else { stage["report"] = nil; return stage }
                guard let output else {
                    throw invalid("stage \(stage["name"] as? String ?? "?"): \"report\": true needs an \"output\" argument", "report", text, path)
                }
                stage["report"] = output
            }
        }
        return stage
    }

    /// An error naming the file and the first line where `needle` appears (a key or a value).
    static func invalid(_ message: String, _ needle: String, _ text: String, _ path: String) -> PipelineError {
        .invalid("\(path)\(lineOf(needle, in: text).map { ":\($0)" } ?? ""): \(message)")
    }

    /// The 1-based line of the first `"needle"` in `text`, else of `needle`, else nil.
    static func lineOf(_ needle: String, in text: String) -> Int? {
        for candidate in ["\"\(needle)\"", needle] {
            if let r = text.range(of: candidate) {
                return text[..<r.lowerBound].reduce(1) { $1 == "\n" ? $0 + 1 : $0 }
            }
        }
        return nil
    }
}
