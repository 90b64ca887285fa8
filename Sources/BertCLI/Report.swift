import ArgumentParser
import Foundation
import Pipeline
import Support

/// `bert report RUN_DIR`: the curves of one pre-training or fine-tuning run as a self-contained HTML page.
struct ReportCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "report",
        abstract: "Draw a pre-training or fine-tuning run's curves (loss, accuracy, learning rate) from its metrics.jsonl as HTML.")

    @Argument(help: "The run directory (it holds metrics.jsonl).") var directory: String
    @Option(help: "The HTML file to write (default: RUN/report.html).") var output: String?

    func run() throws {
        let page = try HTMLReport.runPage(directory: directory)
        let path = output ?? (directory as NSString).appendingPathComponent("report.html")
        let parent = (path as NSString).deletingLastPathComponent
        if !parent.isEmpty { try? FileManager.default.createDirectory(atPath: parent, withIntermediateDirectories: true) }
        try writeFileAtomically(Data(page.utf8), to: path)
        print(path)
    }
}
