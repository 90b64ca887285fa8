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
}
