import ArgumentParser
import Foundation
import Pipeline

/// `bert run Pipelines/NAME.json`: the stages of a pipeline file in order (the engine and the file
/// format are in the Pipeline module).
struct RunCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "run",
        abstract: "Run every stage of a pipeline file (corpus, vocabulary, shards, pre-training, fine-tuning, evaluation).")

    @Argument(help: "The pipeline file, e.g. Pipelines/default.json.") var pipeline: String
    @Flag(help: "Run every stage even when its outputs are current.") var force = false
    @Flag(help: "Print the stages and what would run, then stop.") var dryRun = false

    func run() throws {
        let engine = try PipelineEngine(path: pipeline, runner: SubcommandRunner(), log: log)
        let report = try engine.run(force: force, dryRun: dryRun)
        print(report, terminator: "")
    }
}

/// Runs pipeline stages with bert's own subcommand parsers, in this process.
struct SubcommandRunner: PipelineCommandRunner {
    /// Subcommands a stage may name.
    static let commands: [String: ParsableCommand.Type] = Bert.configuration.subcommands.reduce(into: [:]) {
        $0[$1.configuration.commandName ?? ""] = $1
    }

    var commandNames: [String] { Array(Self.commands.keys) }

    func check(command: String, arguments: [String]) -> String? {
        guard let type = Self.commands[command] else { return "unknown command \(command)" }
        do { _ = try type.parse(arguments) } catch { return type.message(for: error) }
        return nil
    }

    func run(command: String, arguments: [String]) throws {
        guard let type = Self.commands[command] else { throw PipelineError.invalid("unknown command \(command)") }
        var parsed = try type.parse(arguments)
        try parsed.run()
    }
}
