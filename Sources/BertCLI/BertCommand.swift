import Support
import ArgumentParser
import Foundation
import Kernels
import BertModel
import DataParallel
import Pipeline
import ClassificationData
import PretrainingData
import Training
import WordPiece
import Checkpoints
import Inference

/// The `bert` tool: thin commands over the BertKit libraries. Results go to stdout, progress and
/// logs to stderr. Exit codes: 0 success, 2 bad usage or bad input, 1 internal error.
@main
struct Bert: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "bert",
        abstract: "BertKit: BERT pre-training and fine-tuning on CPU: vocabularies, tokenization, shards, training, classifiers.",
        version: "0.1.0",
        subcommands: [VocabCommand.self, TokenizeCommand.self, ShardsCommand.self, MergeShardsCommand.self, InspectCommand.self, PretrainCommand.self,
                      FinetuneCommand.self, PredictCommand.self, EvaluateCommand.self, RunCommand.self, ReportCommand.self, BenchmarkTrainCommand.self,
                      CLIReferenceCommand.self]
    )

    static func main() {
        correctBLASCoreByReexec()  // before anything else: OpenBLAS's kernels are fixed when it loads
        signal(SIGPIPE, SIG_IGN)
        if let warning = forcedBLASCoreWarning() { log("bert: warning: " + warning) }
        do {
            try Processes.start()
            var command = try parseAsRoot()
            try command.run()
            Processes.exit(0)
        } catch let error as UserInputError {
            log("bert: error: \(Processes.messagePrefix)\(error)")
            Processes.exit(isEnvironmentFailure(error) ? 1 : 2)
        } catch OutputError.closedPipe {
            Processes.exit(0)
        } catch {
            let code = exitCode(for: error)
            let message = fullMessage(for: error)
            if code == .success {
                print(message)
                Processes.exit(0)
            }
            if !message.isEmpty { log(Processes.messagePrefix + message) }
            // Usage errors (ArgumentParser's 64) are bad input: exit 2 as the contract says.
            Processes.exit(code == .validationFailure ? 2 : code.rawValue)
        }
    }
}

/// The library's typed errors: printed as they are. Exit code 2 when the user's command or input is
/// wrong (the message says what to fix), 1 when the environment failed (`isEnvironmentFailure`).
protocol UserInputError: Error, CustomStringConvertible {}

/// Failures of the environment rather than of the input: a write that fails (a full disk, a lost
/// mount), a read that fails after the file opened, a file just written that does not read back.
/// These exit 1, like internal errors: the command and its input were fine.
func isEnvironmentFailure(_ error: Error) -> Bool {
    switch error {
    case let e as OutputError: if case .writeFailed = e { return true }
    case let e as InputError: if case .readFailed = e { return true }
    case let e as ShardError: if case .writeFailed = e { return true }
    case let e as SafetensorsError: if case .writeFailed = e { return true }
    case let e as TrainingError: if case .io = e { return true }
    case let e as StoreError: if case .corrupt = e { return true }
    case is ExampleStoreError: return true
    case is MPIError: return true
    case let e as PipelineError: if case .stageFailed = e { return true }
    default: break
    }
    return false
}
extension VocabularyError: UserInputError {}
extension InputError: UserInputError {}
extension OutputError: UserInputError {}
extension CorpusError: UserInputError {}
extension ShardError: UserInputError {}
extension StoreError: UserInputError {}
extension ExampleStoreError: UserInputError {}
extension TrainingError: UserInputError {}
extension CheckpointError: UserInputError {}
extension InferenceError: UserInputError {}
extension ConfigError: UserInputError {}
extension SafetensorsError: UserInputError {}
extension ModelError: UserInputError {}
extension ClassificationFileError: UserInputError {}
extension PipelineError: UserInputError {}
extension MPIError: UserInputError {}

/// A message for the user, exit code 2.
struct UsageError: UserInputError {
    let description: String
    init(_ d: String) { description = d }
}

/// Writes a line to stderr.
func log(_ message: String) {
    FileHandle.standardError.write(Data((message + "\n").utf8))
}

/// Loads vocab.txt.
func loadVocabulary(_ path: String) throws -> Vocabulary {
    try Vocabulary.load(path: path)
}
