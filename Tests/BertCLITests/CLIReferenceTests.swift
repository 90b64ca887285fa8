import Foundation
import TestSupport
import XCTest

/// docs/cli.md is the commands' own help: it cannot drift from the parsers.
final class CLIReferenceTests: XCTestCase {
    /// The committed reference equals what `bert cli-reference` prints now (regenerate with `make docs`),
    /// and it has a section for every command that `bert --help` lists.
    func testCommittedReferenceMatchesTheHelp() throws {
        let r = try runBert(["cli-reference"])
        XCTAssertEqual(r.status, 0, r.stderr)
        let committed = try String(contentsOf: Fixtures.root.appendingPathComponent("docs/cli.md"), encoding: .utf8)
        if committed != r.stdoutText {
            let a = committed.split(separator: "\n", omittingEmptySubsequences: false)
            let b = r.stdoutText.split(separator: "\n", omittingEmptySubsequences: false)
            let first = zip(a, b).enumerated().first { $0.element.0 != $0.element.1 }?.offset ?? min(a.count, b.count)
            XCTFail("docs/cli.md differs from `bert cli-reference` at line \(first + 1): run `make docs` and commit it.\n"
                    + "file: \(first < a.count ? String(a[first]) : "<end>")\nhelp: \(first < b.count ? String(b[first]) : "<end>")")
        }
        let help = try runBert(["--help"])
        let listed = help.stdoutText.components(separatedBy: "SUBCOMMANDS:").last?
            .split(separator: "\n").compactMap { $0.hasPrefix("  ") && !$0.hasPrefix("   ") ? $0.split(separator: " ").first.map(String.init) : nil } ?? []
        XCTAssertGreaterThanOrEqual(listed.count, 10, help.stdoutText)
        for name in listed where !name.hasPrefix("See") {
            XCTAssertTrue(committed.contains("\n## bert \(name)\n"), "no section for bert \(name) in docs/cli.md")
        }
    }
}
