import Foundation
import TestSupport
import XCTest

/// `bert shards` and `bert inspect` on the committed real-text sample.
final class ShardsCommandTests: XCTestCase {
    func shards(_ out: String, _ extra: [String] = []) throws -> ProcessResult {
        try runBert(["shards", "--input", Fixtures.path("text/en_sample.txt.zst"), "--vocab", Fixtures.uncasedVocab,
                     "--output", out, "--dupe-factor", "2", "--shard-size-mb", "0.1"] + extra)
    }

    func files(_ dir: String) throws -> [String: Data] {
        var out: [String: Data] = [:]
        for name in try FileManager.default.contentsOfDirectory(atPath: dir) where !name.hasPrefix(".") {
            out[name] = try Data(contentsOf: URL(fileURLWithPath: dir + "/" + name))
        }
        return out
    }

    func testSameBytesWhateverTheThreadsAndInspectable() throws {
        let dir = Fixtures.temporaryDirectory().path
        let a = try shards(dir + "/a", ["--threads", "1"])
        XCTAssertEqual(a.status, 0, a.stderr)
        let b = try shards(dir + "/b", ["--threads", "2"])
        XCTAssertEqual(b.status, 0, b.stderr)
        let fa = try files(dir + "/a"), fb = try files(dir + "/b")
        XCTAssertGreaterThan(fa.keys.filter { $0.hasPrefix("shard-") }.count, 1)
        XCTAssertEqual(fa, fb, "byte-identical output with 1 and 2 threads")

        let json = try runBert(["inspect", dir + "/a", "--json", "--limit", "50"])
        XCTAssertEqual(json.status, 0, json.stderr)
        let lines = json.stdoutText.split(separator: "\n")
        XCTAssertEqual(lines.count, 50)
        for line in lines {
            let obj = try XCTUnwrap(JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any])
            let ids = try XCTUnwrap(obj["input_ids"] as? [Int])
            let tokens = try XCTUnwrap(obj["tokens"] as? [String])
            XCTAssertEqual(ids.count, tokens.count)
            XCTAssertLessThanOrEqual(ids.count, 128)
            XCTAssertEqual(tokens.first, "[CLS]")
            XCTAssertEqual((obj["segment_ids"] as? [Int])?.count, ids.count)
            XCTAssertEqual((obj["masked_lm_positions"] as? [Int])?.count, (obj["masked_lm_labels"] as? [Int])?.count)
            XCTAssertNotNil(obj["next_sentence_label"] as? Int)
        }
        let stats = try runBert(["inspect", dir + "/a", "--stats", "--json"])
        XCTAssertEqual(stats.status, 0, stats.stderr)
        let s = try XCTUnwrap(JSONSerialization.jsonObject(with: stats.stdout) as? [String: Any])
        XCTAssertEqual(try XCTUnwrap(s["masked_as_mask"] as? Double), 0.8, accuracy: 0.02)
        XCTAssertEqual(try XCTUnwrap(s["max_length"] as? Int), 128)

        // A re-run of the same command finds the output up to date and leaves it alone.
        let again = try shards(dir + "/a")
        XCTAssertEqual(again.status, 0, again.stderr)
        XCTAssertTrue(again.stderr.contains("up to date"), again.stderr)
        XCTAssertEqual(try files(dir + "/a"), fa)
    }

    func testDamagedShardIsReportedWithItsName() throws {
        let dir = Fixtures.temporaryDirectory().path + "/s"
        XCTAssertEqual(try shards(dir).status, 0)
        let shard = try XCTUnwrap(try FileManager.default.contentsOfDirectory(atPath: dir).sorted().first { $0.hasPrefix("shard-") })
        var bytes = try Data(contentsOf: URL(fileURLWithPath: dir + "/" + shard))
        bytes[bytes.count / 2] ^= 0x01
        try bytes.write(to: URL(fileURLWithPath: dir + "/" + shard))
        let r = try runBert(["inspect", dir, "--stats"])
        XCTAssertEqual(r.status, 2, r.stderr)
        XCTAssertTrue(r.stderr.contains(shard), r.stderr)
        // Another vocabulary than the one the shards were built with.
        try FileManager.default.removeItem(atPath: dir + "/" + shard)
        let missing = try runBert(["inspect", dir])
        XCTAssertEqual(missing.status, 2)
        XCTAssertTrue(missing.stderr.contains(shard), missing.stderr)
    }

    /// google-research/bert's statistics on the whole English corpus with the default flags.
    func testStatisticsOnTheEnglishCorpus() throws {
        let corpus = try Fixtures.englishCorpus()
        let dir = Fixtures.temporaryDirectory().path + "/en"
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let r = try runBert(["shards", "--input", corpus, "--vocab", Fixtures.uncasedVocab, "--output", dir])
        XCTAssertEqual(r.status, 0, r.stderr)
        let stats = try runBert(["inspect", dir, "--stats", "--json"])
        XCTAssertEqual(stats.status, 0, stats.stderr)
        let s = try XCTUnwrap(JSONSerialization.jsonObject(with: stats.stdout) as? [String: Any])
        func value(_ k: String) throws -> Double { try XCTUnwrap(s[k] as? Double, k) }
        XCTAssertEqual(try value("masked_as_mask"), 0.8, accuracy: 0.01)
        XCTAssertEqual(try value("masked_unchanged"), 0.1, accuracy: 0.01)
        XCTAssertEqual(try value("masked_random"), 0.1, accuracy: 0.01)
        XCTAssertEqual(try value("random_next"), 0.5, accuracy: 0.01)
        XCTAssertEqual(try value("short_target_share"), 0.1, accuracy: 0.02)
        XCTAssertEqual(s["masked_count_not_formula"] as? Int, 0, "masked count = min(20, max(1, round(0.15 × length)))")
        XCTAssertEqual(s["max_length"] as? Int, 128)
        // corpus_en gives about 412k instances, the embedded Bibles about 240k.
        XCTAssertGreaterThan(try XCTUnwrap(s["instances"] as? Int), 150_000, corpus)
        // Another vocabulary than the shards were built with: refused, naming the index.
        let other = Fixtures.temporaryDirectory().appendingPathComponent("vocab.txt")
        try Data("[PAD]\n[UNK]\n[CLS]\n[SEP]\n[MASK]\nthe\n".utf8).write(to: other)
        let mismatch = try runBert(["inspect", dir, "--vocab", other.path])
        XCTAssertEqual(mismatch.status, 2, mismatch.stderr)
        XCTAssertTrue(mismatch.stderr.contains("index.json") && mismatch.stderr.contains("vocabulary"), mismatch.stderr)
    }

    /// Free text through ICU's sentence breaks, and JSONL (always ICU): the documents and sentences
    /// counted are the input's, and every instance is made of them as google-research/bert pairs them.
    func testICUSentencesAndJSONLDocumentsMakeThePairs() throws {
        let dir = Fixtures.temporaryDirectory().path
        defer { try? FileManager.default.removeItem(atPath: dir) }
        try Data("First sentence. Second one! Third? Fourth.\n\nAnother document. With two.\n".utf8).write(to: URL(fileURLWithPath: dir + "/free.txt"))
        try Data("{\"text\": \"One. Two. Three.\"}\n{\"text\": \"Four. Five.\"}\n".utf8).write(to: URL(fileURLWithPath: dir + "/docs.jsonl"))
        // The sentences ICU finds, as the uncased tokenizer splits them (words and punctuation).
        let free = [[["first", "sentence", "."], ["second", "one", "!"], ["third", "?"], ["fourth", "."]],
                    [["another", "document", "."], ["with", "two", "."]]]
        let jsonl = [[["one", "."], ["two", "."], ["three", "."]], [["four", "."], ["five", "."]]]
        for (input, extra, documents) in [("free.txt", ["--sentence-split", "icu"], free), ("docs.jsonl", [], jsonl)] {
            try checkPairs(dir: dir, input: input, extra: extra, documents: documents)
        }
    }

    func checkPairs(dir: String, input: String, extra: [String], documents: [[[String]]]) throws {
        let dupe = 50
        let out = dir + "/out-" + input
        let run = try runBert(["shards", "--input", dir + "/" + input, "--vocab", Fixtures.uncasedVocab, "--output", out,
                               "--dupe-factor", String(dupe)] + extra)
        XCTAssertEqual(run.status, 0, run.stderr)
        let vocab = try String(contentsOfFile: Fixtures.uncasedVocab, encoding: .utf8).split(separator: "\n").map(String.init)
        let id = Dictionary(vocab.enumerated().map { ($0.element, $0.offset) }, uniquingKeysWith: { a, _ in a })
        let docs = try documents.map { try $0.map { try $0.map { try XCTUnwrap(id[$0], $0) } } }
        let sentenceCount = docs.map(\.count).reduce(0, +)

        // The counts the builder records: the input's documents and ICU's sentences.
        let index = try XCTUnwrap(JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: out + "/index.json"))) as? [String: Any])
        let statistics = try XCTUnwrap(index["statistics"] as? [String: Int], "\(index.keys)")
        XCTAssertEqual(statistics["documents"], docs.count, input)
        XCTAssertEqual(statistics["sentences"], sentenceCount, input)
        XCTAssertEqual(statistics["document_passes"], dupe * docs.count, input)

        // Runs of whole consecutive sentences of one document: (document, first, last) by tokens.
        var runs: [[Int]: (doc: Int, first: Int, last: Int)] = [:]
        for (d, sentences) in docs.enumerated() {
            for i in sentences.indices { for j in i..<sentences.count { runs[Array(sentences[i...j].joined())] = (d, i, j) } }
        }
        let json = try runBert(["inspect", out, "--json", "--limit", "0"])
        XCTAssertEqual(json.status, 0, json.stderr)
        let lines = json.stdoutText.split(separator: "\n")
        XCTAssertEqual(lines.count, statistics["instances"], input)
        // Each document pass gives at least one pair, and each pair uses up at least one sentence of it.
        XCTAssertGreaterThanOrEqual(lines.count, dupe * docs.count, input)
        XCTAssertLessThanOrEqual(lines.count, dupe * sentenceCount, input)
        var randomNext = 0
        var used = Set<[Int]>()
        for line in lines {
            let o = try XCTUnwrap(JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any])
            var ids = try XCTUnwrap(o["input_ids"] as? [Int])
            let segments = try XCTUnwrap(o["segment_ids"] as? [Int])
            let positions = try XCTUnwrap(o["masked_lm_positions"] as? [Int]), labels = try XCTUnwrap(o["masked_lm_labels"] as? [Int])
            for (p, l) in zip(positions, labels) { ids[p] = l }
            let aLength = segments.filter { $0 == 0 }.count
            XCTAssertEqual(segments, [Int](repeating: 0, count: aLength) + [Int](repeating: 1, count: ids.count - aLength))
            XCTAssertEqual([ids[0], ids[aLength - 1], ids[ids.count - 1]], [id["[CLS]"]!, id["[SEP]"]!, id["[SEP]"]!], "\(ids)")
            let a = Array(ids[1..<(aLength - 1)]), b = Array(ids[aLength..<(ids.count - 1)])
            XCTAssertFalse(a.isEmpty || b.isEmpty, "\(ids)")
            let isRandom = try XCTUnwrap(o["next_sentence_label"] as? Int) == 1
            if isRandom {
                randomNext += 1
                // A is whole sentences; B whole sentences from a random start (nothing is long enough to truncate).
                XCTAssertNotNil(runs[a], "\(input): random-next A is not whole sentences: \(a)")
                XCTAssertNotNil(runs[b], "\(input): random-next B is not whole sentences: \(b)")
            } else if let whole = runs[a + b] {
                // Real next: A then B, consecutive text of one document, split at a sentence boundary
                // unless the chunk was a single sentence (then at a random token).
                if whole.first != whole.last {
                    let first = runs[a]
                    XCTAssertTrue(first.map { $0.doc == whole.doc && $0.first == whole.first && $0.last < whole.last } ?? false,
                                  "\(input): A is not split from B at a sentence boundary: \(a) | \(b)")
                }
            } else {
                XCTFail("\(input): a real-next pair is not consecutive sentences of one document: \(a) | \(b)")
            }
            used.formUnion([a, b, a + b])
        }
        // Every sentence of the input is in some pair.
        for sentence in docs.joined() {
            XCTAssertTrue(used.contains { InstanceText.contains($0, sentence) }, "\(input): sentence \(sentence) is in no pair")
        }
        // NSP is balanced: single-sentence chunks are split for a real next half of the time.
        XCTAssertEqual(Double(randomNext) / Double(lines.count), 0.5, accuracy: 0.1, "\(input): \(randomNext) random of \(lines.count)")
    }

    /// `kill -9` at several moments of `bert shards`: what is left is never taken for a complete
    /// shard set, and running the command again gives the output of an uninterrupted run.
    func testKillNineThenRerunGivesTheSameShards() throws {
        let base = Fixtures.temporaryDirectory().path
        defer { try? FileManager.default.removeItem(atPath: base) }
        func args(_ out: String) -> [String] {
            ["shards", "--input", Fixtures.path("text/en_sample.txt.zst"), "--vocab", Fixtures.uncasedVocab, "--output", out,
             "--dupe-factor", "40", "--shard-size-mb", "0.5", "--threads", "2"]
        }
        XCTAssertEqual(try runBert(args(base + "/whole")).status, 0)
        let whole = try files(base + "/whole")
        var interrupted = 0
        for (i, delay) in [0.05, 0.15, 0.3, 0.6].enumerated() {
            let dir = base + "/killed\(i)"
            let p = try startBert(args(dir))
            Thread.sleep(forTimeInterval: delay)
            kill(p.processIdentifier, SIGKILL)
            p.waitUntilExit()
            let hasIndex = FileManager.default.fileExists(atPath: dir + "/index.json")
            let inspect = try runBert(["inspect", dir, "--stats"])
            if hasIndex {
                // It finished before the kill: then it is complete and valid.
                XCTAssertEqual(inspect.status, 0, inspect.stderr)
            } else {
                XCTAssertEqual(inspect.status, 2, "an interrupted directory is refused: \(inspect.stderr)")
                interrupted += 1
            }
            let again = try runBert(args(dir))
            XCTAssertEqual(again.status, 0, again.stderr)
            XCTAssertEqual(try files(dir), whole, "re-run after kill at \(delay)s gives the uninterrupted output")
        }
        XCTAssertGreaterThan(interrupted, 0, "at least one kill landed mid-run")
    }

    /// Awkward input: one-sentence documents, empty documents, a sentence far longer than
    /// max_seq_length, invalid UTF-8, CRLF line ends, free text and JSONL through ICU.
    func testAwkwardDocumentsAndFormats() throws {
        let dir = Fixtures.temporaryDirectory().path
        var text = Data("Just one sentence here.\n\n\n\n".utf8)
        text += Data((["A very long sentence"] + Array(repeating: "with many many words", count: 200)).joined(separator: " ").utf8)
        text += Data("\nAnd a short one after it.\r\n\n".utf8)
        text += Data([0x42, 0x61, 0x64, 0x20, 0xFF, 0xFE, 0x20, 0x62, 0x79, 0x74, 0x65, 0x73, 0x2E, 0x0A])
        text += Data("Then normal text again.\nAnd more of it.\n\nSecond document, first line.\nSecond line.\n".utf8)
        try text.write(to: URL(fileURLWithPath: dir + "/odd.txt"))
        let r = try runBert(["shards", "--input", dir + "/odd.txt", "--vocab", Fixtures.uncasedVocab, "--output", dir + "/out",
                             "--max-seq-length", "32", "--max-predictions", "5", "--dupe-factor", "3"])
        XCTAssertEqual(r.status, 0, r.stderr)
        let stats = try runBert(["inspect", dir + "/out", "--stats", "--json"])
        let s = try XCTUnwrap(JSONSerialization.jsonObject(with: stats.stdout) as? [String: Any])
        XCTAssertLessThanOrEqual(try XCTUnwrap(s["max_length"] as? Int), 32)
        XCTAssertGreaterThan(try XCTUnwrap(s["instances"] as? Int), 10)
        XCTAssertEqual(s["masked_count_not_formula"] as? Int, 0)
        let json = try runBert(["inspect", dir + "/out", "--json", "--limit", "0"])
        let tokens = json.stdoutText.split(separator: "\n").compactMap {
            (try? JSONSerialization.jsonObject(with: Data($0.utf8)) as? [String: Any])?["tokens"] as? [String]
        }
        XCTAssertFalse(tokens.joined().contains("\u{FFFD}"), "invalid UTF-8 is dropped, as by the tokenizer")
        XCTAssertTrue(tokens.contains { $0.contains("bad") && $0.contains("bytes") }, "the rest of that line is kept")

        // No text at all: a clear error, exit 2, no index.
        try Data("\n\n  \n".utf8).write(to: URL(fileURLWithPath: dir + "/empty.txt"))
        let empty = try runBert(["shards", "--input", dir + "/empty.txt", "--vocab", Fixtures.uncasedVocab, "--output", dir + "/none"])
        XCTAssertEqual(empty.status, 2, empty.stderr)
        XCTAssertTrue(empty.stderr.contains("empty.txt"), empty.stderr)
        XCTAssertFalse(FileManager.default.fileExists(atPath: dir + "/none/index.json"))
    }
}

enum InstanceText {
    /// Whether `needle` occurs contiguously in `haystack`.
    static func contains(_ haystack: [Int], _ needle: [Int]) -> Bool {
        guard needle.count <= haystack.count else { return false }
        return (0...(haystack.count - needle.count)).contains { Array(haystack[$0..<($0 + needle.count)]) == needle }
    }
}

/// `bert shards` and `bert vocab` read a classification file's train rows as pre-training text
/// (task-adaptive pre-training): a character of the test split never reaches the shards or the
/// vocabulary, one of the train split does, and the index records the file and the split.
final class ClassificationCorpusTests: XCTestCase {
    func testTrainRowsOnlyAndRecorded() throws {
        let dir = Fixtures.temporaryDirectory().path
        defer { try? FileManager.default.removeItem(atPath: dir) }
        var rows = "split\ttext\tlabel\n"
        for i in 0..<60 { rows += "train\tThe ship \(i) sails west. A quiet ʘ harbour waits for it.\tx\n" }
        rows += "test\tA forbidden ǂ word from the test split.\ty\ndev\tA dev ɮ row.\tx\n"
        let data = dir + "/task.tsv"
        try Data(rows.utf8).write(to: URL(fileURLWithPath: data))
        let vocab = try runBert(["vocab", "--input", data, "--size", "200", "--output", dir + "/vocab.txt"])
        XCTAssertEqual(vocab.status, 0, vocab.stderr)
        let words = Set(try String(contentsOfFile: dir + "/vocab.txt", encoding: .utf8).split(separator: "\n").map(String.init))
        XCTAssertTrue(words.contains("ʘ"), "a train character is in the alphabet")
        XCTAssertFalse(words.contains("ǂ") || words.contains("ɮ"), "test and dev rows are never read")
        let shards = try runBert(["shards", "--input", data, "--vocab", Fixtures.uncasedVocab, "--output", dir + "/shards",
                                  "--dupe-factor", "1", "--max-seq-length", "32"])
        XCTAssertEqual(shards.status, 0, shards.stderr)
        XCTAssertTrue(shards.stderr.contains("tokenized 60 documents"), shards.stderr)
        let index = try XCTUnwrap(JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: dir + "/shards/index.json"))) as? [String: Any])
        let extra = try XCTUnwrap((index["parameters"] as? [String: Any])?["extra"] as? [String: String])
        XCTAssertEqual(extra["classification_files"], data)
        XCTAssertEqual(extra["classification_split"], "train")
        let decoded = try runBert(["inspect", dir + "/shards", "--limit", "1000"])
        XCTAssertEqual(decoded.status, 0, decoded.stderr)
        XCTAssertTrue(decoded.stdoutText.contains("harbour"), "train text is in the shards")
        XCTAssertFalse(decoded.stdoutText.contains("forbidden") || decoded.stdoutText.contains("dev row"), "no test or dev text")
    }
}
