import Foundation
import TestSupport
import XCTest

/// `--threads` is declared and checked once (BertCLI/ComputeOptions.swift): every command that takes it
/// refuses 0 with exit 2 before it reads anything.
final class ComputeOptionsTests: XCTestCase {
    func testEveryCommandRefusesZeroThreads() throws {
        // Arguments that parse (the files need not exist: validation comes before any reading).
        let commands: [String: [String]] = [
            "vocab": ["--input", "in.txt", "--size", "100", "--output", "v.txt"],
            "tokenize": ["--vocab", "v.txt"],
            "shards": ["--input", "in.txt", "--vocab", "v.txt", "--output", "s"],
            "pretrain": ["--shards", "s", "--output", "r"],
            "finetune": ["--checkpoint", "c", "--data", "d.tsv", "--output", "o"],
            "predict": ["--checkpoint", "c", "--input", "d.tsv"],
            "evaluate": ["--checkpoint", "c", "--data", "d.tsv"],
            "benchmark-train": [],
        ]
        // Every command whose help offers --threads is in the list above.
        let root = try runBert(["--help"]).stdoutText
        let listed = root.components(separatedBy: "SUBCOMMANDS:").last?.split(separator: "\n")
            .compactMap { $0.hasPrefix("  ") && !$0.hasPrefix("   ") ? $0.split(separator: " ").first.map(String.init) : nil } ?? []
        for name in listed where !name.hasPrefix("See") {
            let help = try runBert([name, "--help"]).stdoutText
            if help.contains("--threads") { XCTAssertNotNil(commands[name], "bert \(name) takes --threads but is not tested here") }
        }
        let dir = Fixtures.temporaryDirectory().path
        for (name, args) in commands.sorted(by: { $0.key < $1.key }) {
            let r = try runBert([name] + args.map { $0.contains(".") || ["s", "r", "c", "o"].contains($0) ? dir + "/" + $0 : $0 } + ["--threads", "0"])
            XCTAssertEqual(r.status, 2, "bert \(name) --threads 0: \(r.stderr)")
            XCTAssertTrue(r.stderr.contains("--threads must be at least 1"), "bert \(name): \(r.stderr)")
        }
    }
}
