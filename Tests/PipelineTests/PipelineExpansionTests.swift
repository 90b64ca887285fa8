import Foundation
@testable import Pipeline
import TestSupport
import XCTest

/// Accepts every command and argument: these tests are about the file format, not the commands.
struct AcceptingRunner: PipelineCommandRunner {
    var commandNames: [String] { ["vocab", "tokenize", "shards", "merge-shards", "inspect", "pretrain", "finetune", "predict", "evaluate", "run"] }
    func check(command: String, arguments: [String]) -> String? { nil }
    func run(command: String, arguments: [String]) throws {}
}

/// The pipeline file's shorthands (defaults per command, foreach over stages, groups and gains, outputs
/// derived from `output`) expand to the plain form, and their mistakes are errors naming the line.
final class PipelineExpansionTests: XCTestCase {
    /// Copies `files` (name → text) into DIR/Pipelines/ so that they share one repository root.
    func write(_ files: [String: String]) throws -> String {
        let dir = Fixtures.temporaryDirectory().path + "/Pipelines"
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        for (name, text) in files { try Data(text.utf8).write(to: URL(fileURLWithPath: dir + "/" + name)) }
        return dir
    }

    func load(_ path: String) throws -> PipelineFile { try PipelineFile.load(path, runner: AcceptingRunner()) }

    func plan(_ p: PipelineFile) -> [String] {
        p.stages.map { s in
            [s.name, s.commandName, s.arguments.joined(separator: " "), s.external?.joined(separator: " ") ?? "-",
             s.outputs.joined(separator: ","), s.reportFile ?? "-"].joined(separator: " | ")
        }
    }

    /// Pipelines/default.json, written with the shorthands, is exactly the plain file it replaced
    /// (Tests/Fixtures/pipelines/default-expanded.json, the file as it was before): the same stages in the
    /// same order with the same arguments, outputs and reports, so its stamps and report stay the same; and
    /// the same gains.
    func testDefaultExpandsToThePlainFileItReplaced() throws {
        let shorthand = try String(contentsOf: Fixtures.root.appendingPathComponent("Pipelines/default.json"), encoding: .utf8)
        let plain = try String(contentsOf: Fixtures.root.appendingPathComponent("Tests/Fixtures/pipelines/default-expanded.json"), encoding: .utf8)
        let dir = try write(["default.json": shorthand, "plain.json": plain])
        let a = try load(dir + "/default.json"), b = try load(dir + "/plain.json")
        XCTAssertEqual(plan(a).count, 24)
        XCTAssertEqual(plan(a), plan(b))
        XCTAssertEqual(a.gains.map { [$0.name, $0.metric] + $0.pretrained + ["vs"] + $0.baseline },
                       b.gains.map { [$0.name, $0.metric] + $0.pretrained + ["vs"] + $0.baseline })
        XCTAssertEqual(a.output, b.output)
        XCTAssertLessThan(shorthand.count, plain.count * 3 / 4, "the shorthand is shorter")
    }

    /// A reference that is the whole string takes the item's JSON type: a number, true for a flag, null to
    /// leave the argument out; inside a longer string it is text. Stage-level foreach copies one stage.
    func testItemValuesKeepTheirType() throws {
        let dir = try write(["p.json": """
            {"name": "p", "output": "out/p",
             "defaults": {"finetune": {"epochs": 2, "data": "d.tsv"}},
             "stages": [
               {"name": "ft-${item.seed}", "command": "finetune", "foreach": [{"seed": 7, "scratch": true}, {"seed": null, "scratch": null}],
                "args": {"checkpoint": "c", "seed": "${item.seed}", "from-scratch": "${item.scratch}", "output": "${out}/ft-${item.seed}"}},
               {"name": "v-${item}", "command": "vocab", "foreach": ["a", "b"], "args": {"input": ["${item}.txt"], "size": 10, "epochs": null, "output": "${out}/${item}.txt"}, "report": true}
             ]}
            """])
        // "ft-${item.seed}" with a null seed cannot be named: an error that says so, with its line.
        XCTAssertThrowsError(try load(dir + "/p.json")) { e in
            XCTAssertTrue("\(e)".contains("${item.seed} is null") && "\(e)".contains("p.json:"), "\(e)")
        }
        let fixed = try String(contentsOfFile: dir + "/p.json", encoding: .utf8).replacingOccurrences(of: "\"ft-${item.seed}\", \"command\"", with: "\"ft-${item.scratch}-x\", \"command\"")
            .replacingOccurrences(of: "{\"seed\": null, \"scratch\": null}", with: "{\"seed\": null, \"scratch\": false}")
            .replacingOccurrences(of: "\"${out}/ft-${item.seed}\"", with: "\"${out}/ft-${item.scratch}\"")
        try Data(fixed.utf8).write(to: URL(fileURLWithPath: dir + "/p.json"))
        let p = try load(dir + "/p.json")
        XCTAssertEqual(p.stages.map(\.name), ["ft-true-x", "ft-false-x", "v-a", "v-b"])
        let root = (dir as NSString).deletingLastPathComponent
        XCTAssertEqual(p.stages[0].arguments, ["--checkpoint", root + "/c", "--data", root + "/d.tsv", "--epochs", "2", "--from-scratch",
                                               "--output", root + "/out/p/ft-true", "--seed", "7"])
        XCTAssertEqual(p.stages[1].arguments, ["--checkpoint", root + "/c", "--data", root + "/d.tsv", "--epochs", "2",
                                               "--output", root + "/out/p/ft-false"], "null and false leave the option out")
        XCTAssertEqual(p.stages[0].outputs, [root + "/out/p/ft-true/model.safetensors"])
        XCTAssertEqual(p.stages[2].arguments, ["--input", root + "/a.txt", "--output", root + "/out/p/a.txt", "--size", "10"])
        XCTAssertEqual(p.stages[2].reportFile, root + "/out/p/a.txt")
        XCTAssertEqual(p.stages[3].outputs, [root + "/out/p/b.txt"])
    }

    /// Mistakes name the file and the line: an unknown key, a field the items lack, a group without items.
    func testMistakesNameTheLine() throws {
        let cases: [(String, String, Int)] = [
            ("{\"name\": \"p\", \"output\": \"o\",\n \"stages\": [{\"name\": \"a\", \"run\": [\"x\"]}],\n \"stagse\": []}", "unknown key \"stagse\"", 3),
            ("{\"name\": \"p\", \"output\": \"o\", \"stages\": [\n {\"name\": \"a\", \"run\": [\"x\"],\n  \"ouputs\": []}]}", "unknown key \"ouputs\"", 3),
            ("{\"name\": \"p\", \"output\": \"o\", \"stages\": [\n {\"name\": \"a-${item.sede}\", \"run\": [\"x\"],\n \"foreach\": [{\"seed\": 1}]}]}",
             "no field \"sede\"", 2),
            ("{\"name\": \"p\", \"output\": \"o\", \"stages\": [\n {\"foreach\": [],\n \"stages\": [{\"name\": \"a\", \"run\": [\"x\"]}]}]}",
             "a group needs \"foreach\"", 2),
        ]
        for (text, fragment, line) in cases {
            let dir = try write(["bad.json": text])
            XCTAssertThrowsError(try load(dir + "/bad.json")) { e in
                XCTAssertTrue("\(e)".contains(fragment), "\(e)")
                XCTAssertTrue("\(e)".contains("bad.json:\(line):"), "line \(line) expected: \(e)")
            }
        }
    }
}
