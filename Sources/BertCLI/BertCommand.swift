import ArgumentParser
import Foundation
import BertModel
import PretrainingData
import Training
import WordPiece

/// The `bert` tool: thin commands over the BertKit libraries. Results go to stdout, progress and
/// logs to stderr. Exit codes: 0 success, 2 bad usage or bad input, 1 internal error.
@main
struct Bert: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "bert",
        abstract: "BertKit: BERT pre-training and fine-tuning on CPU: vocabularies, tokenization, shards, training, classifiers.",
        version: "0.1.0",
        subcommands: [VocabCommand.self, TokenizeCommand.self, ShardsCommand.self, InspectCommand.self, PretrainCommand.self,
                      FinetuneCommand.self, PredictCommand.self, EvaluateCommand.self, RunCommand.self, BenchmarkTrainCommand.self]
    )

    static func main() {
        signal(SIGPIPE, SIG_IGN)
        warnAboutForcedBLASCore()
        do {
            var command = try parseAsRoot()
            try command.run()
        } catch let error as UserInputError {
            log("bert: error: \(error)")
            Foundation.exit(2)
        } catch OutputError.closedPipe {
            Foundation.exit(0)
        } catch {
            let code = exitCode(for: error)
            let message = fullMessage(for: error)
            if code == .success {
                print(message)
                Foundation.exit(0)
            }
            if !message.isEmpty { log(message) }
            // Usage errors (ArgumentParser's 64) are bad input: exit 2 as the contract says.
            Foundation.exit(code == .validationFailure ? 2 : code.rawValue)
        }
    }
}

/// Errors caused by the user's input: printed as they are, exit code 2.
protocol UserInputError: Error, CustomStringConvertible {}
extension VocabularyError: UserInputError {}
extension InputError: UserInputError {}
extension OutputError: UserInputError {}
extension CorpusError: UserInputError {}
extension ShardError: UserInputError {}
extension StoreError: UserInputError {}
extension TrainingError: UserInputError {}
extension ConfigError: UserInputError {}
extension SafetensorsError: UserInputError {}
extension ModelError: UserInputError {}
extension ClassificationFileError: UserInputError {}

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
