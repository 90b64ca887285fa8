import ArgumentParser

struct VocabCommand: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "vocab", abstract: "Train a WordPiece vocabulary.")
    func run() throws { throw UsageError("not built yet") }
}
