import Support
import Dispatch
import Foundation
import TestSupport
import XCTest

@testable import PretrainingData

final class ShardTests: XCTestCase {
    /// Tiny, odd-sized parameters: 13 tokens, 3 predictions.
    static func parameters(dynamic: Bool = false, seed: UInt64 = 7) -> ShardGenerationParameters {
        ShardGenerationParameters(maxSeqLength: 13, maskedLMProb: 0.15, maxPredictionsPerSeq: 3, dupeFactor: 2,
                                  shortSeqProb: 0.1, seed: seed, dynamicMasking: dynamic, extra: ["inputs": "test/*.txt"])
    }

    static let vocabSHA = SHA256.hex(SHA256.hash(Array("vocab".utf8)))

    /// A random valid instance for `layout`.
    static func randomInstance(_ layout: ShardLayout, _ rng: inout SeededRandom) -> TrainingInstance {
        let n = Int.random(in: 3...layout.maxSeqLength, using: &rng)
        let tokens = (0..<n).map { _ in UInt32.random(in: 0..<UInt32(layout.vocabularySize), using: &rng) }
        let m = Int.random(in: 0...min(layout.maxPredictions, n), using: &rng)
        let positions = Array((0..<n).shuffled(using: &rng).prefix(m)).sorted()
        let labels = positions.map { _ in UInt32.random(in: 0..<UInt32(layout.vocabularySize), using: &rng) }
        return TrainingInstance(tokens: tokens, segmentALength: Int.random(in: 1..<n, using: &rng),
                                isRandomNext: Bool.random(using: &rng), maskedPositions: positions, maskedLabels: labels)
    }

    /// `count` keyed random instances.
    static func instances(_ count: Int, layout: ShardLayout, seed: UInt64) -> [(key: UInt64, instance: TrainingInstance)] {
        var rng = SeededRandom(seed: seed)
        return (0..<count).map { i in (UInt64(i) * 1_000_003 + 17, randomInstance(layout, &rng)) }
    }

    /// Writes keyed instances into `dir` in the given order, on `threads` threads.
    @discardableResult
    static func write(_ items: [(key: UInt64, instance: TrainingInstance)], to dir: URL, vocabularySize: Int,
                      parameters: ShardGenerationParameters = parameters(), threads: Int = 1, overwrite: Bool = false,
                      expected: Int? = nil, targetShardBytes: Int = 4000, appenders: Bool = false,
                      compressionLevel: Int = 1) throws -> ShardIndex {
        let writer = try ShardWriter(directory: dir.path, vocabularySize: vocabularySize, vocabSHA256: vocabSHA,
                                     parameters: parameters, expectedInstances: expected ?? items.count,
                                     targetShardBytes: targetShardBytes, overwrite: overwrite, bufferBytes: 3000,
                                     compressionLevel: compressionLevel)
        if appenders {
            // One appender per thread, and every third instance through the shared `add`.
            let failures = NSLock()
            nonisolated(unsafe) var errors: [Error] = []
            DispatchQueue.concurrentPerform(iterations: threads) { t in
                do {
                    let appender = try writer.makeAppender()
                    for i in stride(from: t, to: items.count, by: threads) {
                        if i % 3 == 0 { try writer.add(items[i].instance, key: items[i].key) } else { try appender.add(items[i].instance, key: items[i].key) }
                    }
                } catch {
                    failures.lock(); errors.append(error); failures.unlock()
                }
            }
            if let e = errors.first { throw e }
        } else if threads == 1 {
            for item in items { try writer.add(item.instance, key: item.key) }
        } else {
            final class Failures: @unchecked Sendable {
                let lock = NSLock()
                var errors: [Error] = []
            }
            let failures = Failures()
            DispatchQueue.concurrentPerform(iterations: threads) { t in
                for i in stride(from: t, to: items.count, by: threads) {
                    do { try writer.add(items[i].instance, key: items[i].key) } catch {
                        failures.lock.lock(); failures.errors.append(error); failures.lock.unlock()
                    }
                }
            }
            if let e = failures.errors.first { throw e }
        }
        return try writer.finish()
    }

    /// Every instance of a shard directory, checked.
    static func readAll(_ dir: URL, expectedVocab: String? = vocabSHA) throws -> [TrainingInstance] {
        let set = try ShardSet(directory: dir.path, expectedVocabSHA256: expectedVocab)
        try set.verify()
        var out: [TrainingInstance] = []
        for shard in set.index.shards { out += try set.reader(for: shard).readAll() }
        return out
    }

    static func counts(_ instances: [TrainingInstance]) -> [TrainingInstance: Int] {
        instances.reduce(into: [:]) { $0[$1, default: 0] += 1 }
    }

    /// Every file under `dir` (hidden ones included) with its bytes.
    static func contents(_ dir: URL) throws -> [String: Data] {
        var out: [String: Data] = [:]
        let e = FileManager.default.enumerator(atPath: dir.path)!
        while let rel = e.nextObject() as? String {
            let url = dir.appendingPathComponent(rel)
            var isDir: ObjCBool = false
            if FileManager.default.fileExists(atPath: url.path, isDirectory: &isDir), !isDir.boolValue {
                out[rel] = try Data(contentsOf: url)
            }
        }
        return out
    }

    func expectShardError(_ body: @autoclosure () throws -> Any, _ check: (ShardError) -> Void, file: StaticString = #filePath, line: UInt = #line) {
        Expect.error(ShardError.self, file: file, line: line, body, check: check)
    }

    // MARK: - Format

    /// The worked example in ShardFormat.swift's comment, byte for byte.
    func testWorkedExampleBytes() throws {
        let layout = try ShardLayout(vocabularySize: 99, maxSeqLength: 8, maxPredictionsPerSeq: 2, staticMasking: true)
        XCTAssertEqual(layout.recordSize, 32)
        let instance = TrainingInstance(tokens: [2, 10, 4, 3, 11, 12, 3], segmentALength: 4, isRandomNext: true,
                                        maskedPositions: [2, 5], maskedLabels: [57, 12])
        let header = ShardHeader(layout: layout, recordCount: 1).encoded()
        XCTAssertEqual(SHA256.hex(header), "424b534841524400" + "01000000" + "02" + "01" + "0800" + "0200" + "0000" + "20000000"
                       + "0100000000000000" + "63000000" + String(repeating: "00", count: 12))
        let record = try layout.encode(instance)
        XCTAssertEqual(SHA256.hex(record), "0700" + "0400" + "01" + "00" + "0200" + "02000a00040003000b000c0003000000" + "02000500" + "39000c00")
        XCTAssertEqual(try record.withUnsafeBytes { try layout.decode($0, path: "x", offset: 48) }, instance)
        XCTAssertEqual(try header.withUnsafeBytes { try ShardHeader.decode($0, path: "x") }, ShardHeader(layout: layout, recordCount: 1))
        // Vocabulary sizes pick the id width: 65,536 tokens still fit UInt16.
        XCTAssertEqual(try ShardLayout(vocabularySize: 65_536, maxSeqLength: 8, maxPredictionsPerSeq: 2, staticMasking: true).idWidth, 2)
        XCTAssertEqual(try ShardLayout(vocabularySize: 65_537, maxSeqLength: 8, maxPredictionsPerSeq: 2, staticMasking: true).idWidth, 4)
        // Dynamic masking stores no prediction slots.
        let dynamic = try ShardLayout(vocabularySize: 99, maxSeqLength: 8, maxPredictionsPerSeq: 2, staticMasking: false)
        XCTAssertEqual(dynamic.maxPredictions, 0)
        XCTAssertEqual(dynamic.recordSize, 8 + 16)
    }

    func testInstancesThatDoNotFitAreTypedErrors() throws {
        let layout = try ShardParameters.layout(vocab: 99)
        let ok = TrainingInstance(tokens: [2, 5, 3, 6, 3], segmentALength: 3, isRandomNext: false, maskedPositions: [1], maskedLabels: [9])
        XCTAssertNoThrow(try layout.encode(ok))
        var long = ok
        long.tokens = [UInt32](repeating: 5, count: 14)
        expectShardError(try layout.encode(long)) { XCTAssertEqual($0, .instanceTooLong(length: 14, maxSeqLength: 13)) }
        var many = ok
        many.tokens = [UInt32](repeating: 5, count: 8)
        many.maskedPositions = [1, 2, 3, 4]
        many.maskedLabels = [1, 2, 3, 4]
        expectShardError(try layout.encode(many)) { XCTAssertEqual($0, .tooManyPredictions(count: 4, maxPredictions: 3)) }
        let dynamic = try ShardLayout(vocabularySize: 99, maxSeqLength: 13, maxPredictionsPerSeq: 3, staticMasking: false)
        expectShardError(try dynamic.encode(ok)) { XCTAssertEqual($0, .tooManyPredictions(count: 1, maxPredictions: 0)) }
        for (name, bad) in [
            ("segment A 0", TrainingInstance(tokens: [2, 5, 3], segmentALength: 0, isRandomNext: false)),
            ("segment A = length", TrainingInstance(tokens: [2, 5, 3], segmentALength: 3, isRandomNext: false)),
            ("empty", TrainingInstance(tokens: [], segmentALength: 0, isRandomNext: false)),
            ("id outside vocabulary", TrainingInstance(tokens: [2, 99, 3], segmentALength: 2, isRandomNext: false)),
            ("positions not ascending", TrainingInstance(tokens: [2, 5, 3, 6, 3], segmentALength: 3, isRandomNext: false,
                                                        maskedPositions: [3, 1], maskedLabels: [1, 2])),
            ("position past the end", TrainingInstance(tokens: [2, 5, 3], segmentALength: 2, isRandomNext: false,
                                                      maskedPositions: [3], maskedLabels: [1])),
            ("labels count", TrainingInstance(tokens: [2, 5, 3], segmentALength: 2, isRandomNext: false,
                                             maskedPositions: [1], maskedLabels: [])),
            ("label outside vocabulary", TrainingInstance(tokens: [2, 5, 3], segmentALength: 2, isRandomNext: false,
                                                         maskedPositions: [1], maskedLabels: [100])),
        ] {
            expectShardError(try layout.encode(bad)) {
                guard case .invalidInstance = $0 else { return XCTFail("\(name): \($0)") }
            }
        }
        // Through the writer: refused, and the writer goes on.
        let dir = Fixtures.temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: dir) }
        let writer = try ShardWriter(directory: dir.path, vocabularySize: 99, vocabSHA256: Self.vocabSHA, parameters: Self.parameters(), expectedInstances: 2)
        expectShardError(try writer.add(long, key: 1)) { XCTAssertEqual($0, .instanceTooLong(length: 14, maxSeqLength: 13)) }
        try writer.add(ok, key: 2)
        XCTAssertEqual(try writer.finish().totalInstances, 1)
        expectShardError(try writer.add(ok, key: 3)) { guard case .writerClosed = $0 else { return XCTFail("\($0)") } }
    }

    /// A write that fails while `finish` flushes the appenders' buffers (a full disk) is an error, not a
    /// deadlock: the failing appender tells the writer, whose lock `finish` once held while flushing.
    func testAWriteThatFailsInFinishThrowsInsteadOfHanging() throws {
        let dir = Fixtures.temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: dir) }
        let layout = try ShardParameters.layout(vocab: 99)
        let writer = try ShardWriter(directory: dir.path, vocabularySize: 99, vocabSHA256: Self.vocabSHA, parameters: Self.parameters(),
                                     expectedInstances: 50)
        for item in Self.instances(50, layout: layout, seed: 3) { try writer.add(item.instance, key: item.key) }
        // The bucket folder becomes a plain file: every bucket write in `finish` fails.
        try FileManager.default.removeItem(atPath: writer.tempDirectory)
        XCTAssertTrue(FileManager.default.createFile(atPath: writer.tempDirectory, contents: Data()))
        let done = DispatchSemaphore(value: 0)
        final class Outcome: @unchecked Sendable { var value: Result<ShardIndex, ShardError>? }  // written before `done` is signalled
        let outcome = Outcome()
        Thread.detachNewThread {
            do throws(ShardError) { outcome.value = .success(try writer.finish()) } catch { outcome.value = .failure(error) }
            done.signal()
        }
        guard done.wait(timeout: .now() + 30) == .success else { return XCTFail("finish() hangs after a failed write") }
        guard case let .failure(error) = outcome.value else { return XCTFail("finish() succeeded: \(String(describing: outcome.value))") }
        guard case .writeFailed = error else { return XCTFail("\(error)") }
        XCTAssertFalse(FileManager.default.fileExists(atPath: dir.appendingPathComponent("index.json").path))
        try? FileManager.default.removeItem(atPath: writer.tempDirectory)
    }

    // MARK: - Round trip and determinism

    func testRoundTripUInt16AndUInt32Ids() throws {
        for vocab in [99, 70_000] {
            let layout = try ShardParameters.layout(vocab: vocab)
            let items = Self.instances(400, layout: layout, seed: UInt64(vocab))
            let dir = Fixtures.temporaryDirectory()
            defer { try? FileManager.default.removeItem(at: dir) }
            let index = try Self.write(items, to: dir, vocabularySize: vocab)
            XCTAssertGreaterThan(index.shards.count, 3, "several shards")
            XCTAssertEqual(index.totalInstances, 400)
            XCTAssertEqual(index.vocabSize, vocab)
            XCTAssertEqual(index.parameters, Self.parameters())
            XCTAssertEqual(index.shards.map(\.file), (0..<index.shards.count).map { String(format: "shard-%05d.bin.zst", $0) })
            let read = try Self.readAll(dir)
            XCTAssertEqual(Self.counts(read), Self.counts(items.map(\.instance)), "vocab \(vocab)")
            XCTAssertNotEqual(read, items.map(\.instance), "shuffled")
            let set = try ShardSet(directory: dir.path)
            let reader = try set.reader(for: set.index.shards[0])
            XCTAssertEqual(reader.header.layout.idWidth, vocab == 99 ? 2 : 4)
            XCTAssertEqual(reader.header.layout, layout)
            // A lone shard file reads too, without the index (bert inspect SHARD).
            let lone = try ShardReader(path: set.path(of: set.index.shards[0])).readAll()
            XCTAssertEqual(lone.count, set.index.shards[0].instances)
            // Sizes in the index are the files' and the decompressed data's.
            for shard in set.index.shards {
                let bytes = try Data(contentsOf: URL(fileURLWithPath: set.path(of: shard)))
                XCTAssertEqual(bytes.count, shard.compressedBytes)
                XCTAssertEqual(shard.rawBytes, 48 + shard.instances * layout.recordSize)
                XCTAssertEqual(Array(bytes.prefix(4)), [0x28, 0xB5, 0x2F, 0xFD], "a zstd frame")
            }
            // Nothing else is left in the directory.
            XCTAssertEqual(Set(try Self.contents(dir).keys), Set(index.shards.map(\.file) + ["index.json"]))
        }
    }

    func testDynamicMaskingRoundTrip() throws {
        let params = Self.parameters(dynamic: true)
        let layout = try ShardLayout(vocabularySize: 99, maxSeqLength: 13, maxPredictionsPerSeq: 3, staticMasking: false)
        let items = Self.instances(60, layout: layout, seed: 5)
        XCTAssertTrue(items.allSatisfy { $0.instance.maskedPositions.isEmpty })
        let dir = Fixtures.temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: dir) }
        try Self.write(items, to: dir, vocabularySize: 99, parameters: params)
        XCTAssertEqual(Self.counts(try Self.readAll(dir)), Self.counts(items.map(\.instance)))
    }

    func testOutputIndependentOfArrivalOrderAndThreads() throws {
        let layout = try ShardParameters.layout(vocab: 99)
        let items = Self.instances(300, layout: layout, seed: 11)
        var rng = SeededRandom(seed: 12)
        let dirs = (0..<3).map { _ in Fixtures.temporaryDirectory() }
        defer { for d in dirs { try? FileManager.default.removeItem(at: d) } }
        try Self.write(items, to: dirs[0], vocabularySize: 99)
        try Self.write(items.reversed(), to: dirs[1], vocabularySize: 99)
        try Self.write(items.shuffled(using: &rng), to: dirs[2], vocabularySize: 99, threads: 2)
        let reference = try Self.contents(dirs[0])
        XCTAssertGreaterThan(reference.count, 3)
        XCTAssertEqual(try Self.contents(dirs[1]), reference)
        XCTAssertEqual(try Self.contents(dirs[2]), reference)
        // Per-thread appenders (3 of them, plus the shared `add`) write the same bytes.
        let appended = Fixtures.temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: appended) }
        try Self.write(items.shuffled(using: &rng), to: appended, vocabularySize: 99, threads: 3, appenders: true)
        XCTAssertEqual(try Self.contents(appended), reference)
        // An appender used after finish() is refused with a typed error.
        let late = Fixtures.temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: late) }
        let writer = try ShardWriter(directory: late.path, vocabularySize: 99, vocabSHA256: Self.vocabSHA, parameters: Self.parameters(),
                                     expectedInstances: items.count)
        let appender = try writer.makeAppender()
        try appender.add(items[0].instance, key: items[0].key)
        try writer.finish()
        XCTAssertThrowsError(try appender.add(items[1].instance, key: items[1].key)) {
            guard case .writerClosed = $0 as? ShardError else { return XCTFail("\($0)") }
        }
        XCTAssertThrowsError(try writer.makeAppender())
        // Another zstd level: other compressed bytes, the same instances in the same order.
        let level9 = Fixtures.temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: level9) }
        try Self.write(items, to: level9, vocabularySize: 99, compressionLevel: 9)
        XCTAssertNotEqual(try Self.contents(level9), reference)
        XCTAssertEqual(try Self.readAll(level9), try Self.readAll(dirs[0]))
        // Another seed shuffles differently.
        let other = Fixtures.temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: other) }
        try Self.write(items, to: other, vocabularySize: 99, parameters: Self.parameters(seed: 8))
        XCTAssertNotEqual(try Self.contents(other)["shard-00000.bin.zst"], reference["shard-00000.bin.zst"])
    }

    func testIndexJSONIsSortedPrettyAndRoundTrips() throws {
        let dir = Fixtures.temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: dir) }
        let layout = try ShardParameters.layout(vocab: 99)
        let index = try Self.write(Self.instances(20, layout: layout, seed: 1), to: dir, vocabularySize: 99)
        let text = try String(contentsOf: dir.appendingPathComponent("index.json"), encoding: .utf8)
        for key in ["\"format_version\" : 1", "\"vocab_sha256\" : \"\(Self.vocabSHA)\"", "\"vocab_size\" : 99", "\"max_seq_length\" : 13",
                    "\"masked_lm_prob\" : 0.15", "\"max_predictions_per_seq\" : 3", "\"dupe_factor\" : 2", "\"short_seq_prob\" : 0.1",
                    "\"seed\" : 7", "\"whole_word_mask\" : false", "\"dynamic_masking\" : false", "\"lowercase\" : true",
                    "\"inputs\" : \"test/*.txt\"", "\"total_instances\" : 20", "\"compressed_bytes\"", "\"raw_bytes\"", "\"sha256\""] {
            XCTAssertTrue(text.contains(key), key)
        }
        XCTAssertTrue(text.hasSuffix("}\n"))
        let keys = text.split(separator: "\n").filter { $0.hasPrefix("  \"") }.map { $0.split(separator: "\"")[1] }
        XCTAssertEqual(keys, ["format_version", "parameters", "shards", "total_instances", "vocab_sha256", "vocab_size"])
        XCTAssertEqual(try ShardIndex.load(path: dir.appendingPathComponent("index.json").path), index)
    }

    func testDuplicateKeysAreRefused() throws {
        let dir = Fixtures.temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: dir) }
        let items = Self.instances(2, layout: try ShardParameters.layout(vocab: 99), seed: 2)
        let writer = try ShardWriter(directory: dir.path, vocabularySize: 99, vocabSHA256: Self.vocabSHA, parameters: Self.parameters(), expectedInstances: 2)
        try writer.add(items[0].instance, key: 5)
        try writer.add(items[1].instance, key: 5)
        expectShardError(try writer.finish()) { XCTAssertEqual($0, .duplicateKey(key: 5)) }
        XCTAssertFalse(FileManager.default.fileExists(atPath: dir.appendingPathComponent("index.json").path))
    }

    /// An existing set is kept unless overwriting is asked for; a re-run removes stale shards and
    /// temporary directories; until `finish` the old set stays readable.
    func testRerunOverwritesStaleFiles() throws {
        let dir = Fixtures.temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: dir) }
        let layout = try ShardParameters.layout(vocab: 99)
        let big = try Self.write(Self.instances(300, layout: layout, seed: 3), to: dir, vocabularySize: 99)
        expectShardError(try Self.write([], to: dir, vocabularySize: 99)) { XCTAssertEqual($0, .outputExists(directory: dir.path)) }
        try FileManager.default.createDirectory(at: dir.appendingPathComponent(".tmp-999-dead/x"), withIntermediateDirectories: true)
        let small = Self.instances(30, layout: layout, seed: 4)
        let writer = try ShardWriter(directory: dir.path, vocabularySize: 99, vocabSHA256: Self.vocabSHA, parameters: Self.parameters(),
                                     expectedInstances: 30, targetShardBytes: 4000, overwrite: true)
        for item in small { try writer.add(item.instance, key: item.key) }
        XCTAssertEqual(try ShardSet(directory: dir.path).index, big, "the old set is intact until finish()")
        let index = try writer.finish()
        XCTAssertLessThan(index.shards.count, big.shards.count)
        XCTAssertEqual(Set(try Self.contents(dir).keys), Set(index.shards.map(\.file) + ["index.json"]))
        XCTAssertEqual(Self.counts(try Self.readAll(dir)), Self.counts(small.map(\.instance)))
        // An empty output is a valid (empty) set.
        try Self.write([], to: dir, vocabularySize: 99, overwrite: true)
        XCTAssertEqual(try Self.readAll(dir), [])
    }

    /// A run interrupted after any step of `finish()` (a thrown hook standing for kill -9) never
    /// leaves a directory that a reader accepts with old and new shards mixed: until the old index
    /// is removed the old set is intact, then there is no index until the new set is complete.
    func testInterruptionAtEveryStepLeavesNothingHalfDone() throws {
        let fm = FileManager.default
        let layout = try ShardParameters.layout(vocab: 99)
        let old = Self.instances(250, layout: layout, seed: 21), new = Self.instances(150, layout: layout, seed: 22)
        let pristine = Fixtures.temporaryDirectory(), dir = Fixtures.temporaryDirectory()
        defer { try? fm.removeItem(at: pristine); try? fm.removeItem(at: dir) }
        let oldIndex = try Self.write(old, to: pristine, vocabularySize: 99)
        func restore() throws {
            try fm.removeItem(at: dir)
            try fm.copyItem(at: pristine, to: dir)
        }
        func newWriter() throws -> ShardWriter {
            let writer = try ShardWriter(directory: dir.path, vocabularySize: 99, vocabSHA256: Self.vocabSHA, parameters: Self.parameters(),
                                         expectedInstances: new.count, targetShardBytes: 4000, overwrite: true)
            for item in new { try writer.add(item.instance, key: item.key) }
            return writer
        }
        // The steps of an uninterrupted run.
        try restore()
        var steps: [String] = []
        let probe = try newWriter()
        probe.afterStep = { steps.append($0) }
        let newIndex = try probe.finish()
        XCTAssertEqual(steps.first, "buckets flushed")
        XCTAssertEqual(steps.last, "index written")
        XCTAssertEqual(steps.filter { $0.hasPrefix("renamed") }.count, newIndex.shards.count)
        let removed = try XCTUnwrap(steps.firstIndex(of: "old index removed"))
        for (i, step) in steps.enumerated() {
            try restore()
            do {
                let writer = try newWriter()
                writer.afterStep = { (s: String) throws(ShardError) in if s == step { throw .writeFailed(path: "crash", reason: s) } }
                expectShardError(try writer.finish()) { XCTAssertEqual($0, .writeFailed(path: "crash", reason: step)) }
            }
            if i < removed {
                let set = try ShardSet(directory: dir.path)
                XCTAssertEqual(set.index, oldIndex, step)
                XCTAssertEqual(Self.counts(try Self.readAll(dir)), Self.counts(old.map(\.instance)), step)
            } else if step == "index written" {
                XCTAssertEqual(try ShardSet(directory: dir.path).index, newIndex, step)
            } else {
                expectShardError(try ShardSet(directory: dir.path)) { XCTAssertEqual($0, .missingIndex(directory: dir.path), step) }
            }
            // A re-run completes.
            try newWriter().finish()
            XCTAssertEqual(Self.counts(try Self.readAll(dir)), Self.counts(new.map(\.instance)), step)
            XCTAssertEqual(Set(try Self.contents(dir).keys), Set(newIndex.shards.map(\.file) + ["index.json"]), step)
        }
    }

    // MARK: - Faults

    /// A written directory of several shards.
    func makeSet() throws -> (dir: URL, set: ShardSet) {
        let dir = Fixtures.temporaryDirectory()
        addTeardownBlock { try? FileManager.default.removeItem(at: dir) }
        try Self.write(Self.instances(200, layout: try ShardParameters.layout(vocab: 99), seed: 9), to: dir, vocabularySize: 99)
        let set = try ShardSet(directory: dir.path, expectedVocabSHA256: Self.vocabSHA)
        XCTAssertGreaterThanOrEqual(set.index.shards.count, 3)
        return (dir, set)
    }

    func testFlippedByteIsCaught() throws {
        let (dir, set) = try makeSet()
        let shard = set.index.shards[1]
        let path = set.path(of: shard)
        var bytes = try Data(contentsOf: URL(fileURLWithPath: path))
        bytes[bytes.count / 2] ^= 0x10
        try bytes.write(to: URL(fileURLWithPath: path))
        let reopened = try ShardSet(directory: dir.path)  // same size: only the checksum tells
        expectShardError(try reopened.verify()) {
            guard case let .checksumMismatch(p, expected, actual) = $0 else { return XCTFail("\($0)") }
            XCTAssertEqual(p, path)
            XCTAssertEqual(expected, shard.sha256)
            XCTAssertNotEqual(actual, expected)
            XCTAssertTrue("\($0)".contains("re-run bert shards"))
        }
        expectShardError(try reopened.reader(for: shard)) { guard case .checksumMismatch(path, _, _) = $0 else { return XCTFail("\($0)") } }
        // Without the index, zstd's frame checksum or the record checks still catch it.
        expectShardError(try ShardReader(path: path).readAll()) { XCTAssertTrue("\($0)".contains(path), "\($0)") }
    }

    func testTruncatedShardIsCaught() throws {
        let (dir, set) = try makeSet()
        let shard = set.index.shards[2]
        let path = set.path(of: shard)
        let bytes = try Data(contentsOf: URL(fileURLWithPath: path))
        try bytes.prefix(bytes.count / 2).write(to: URL(fileURLWithPath: path))
        expectShardError(try ShardSet(directory: dir.path)) {
            XCTAssertEqual($0, .sizeMismatch(path: path, expected: shard.compressedBytes, actual: bytes.count / 2))
        }
        expectShardError(try set.reader(for: shard)) { XCTAssertEqual($0, .sizeMismatch(path: path, expected: shard.compressedBytes, actual: bytes.count / 2)) }
        expectShardError(try ShardReader(path: path).readAll()) {
            guard case let .corruptCompressed(p, offset, _) = $0 else { return XCTFail("\($0)") }
            XCTAssertEqual(p, path)
            XCTAssertEqual(offset, bytes.count / 2)
        }
    }

    func testWrongMagicAndVersionAreCaught() throws {
        let (dir, set) = try makeSet()
        var index = set.index
        let shard = index.shards[0]
        let path = set.path(of: shard)
        let raw = try readRaw(path)
        for (offset, value, what) in [(6, UInt8(ascii: "X"), "magic"), (8, 2, "version")] {
            var bad = raw
            bad[offset] = value
            let packed = zstdCompress(bad)  // a valid zstd frame around a bad header
            try Data(packed).write(to: URL(fileURLWithPath: path))
            // Make the index agree with the file, so that only the header is wrong.
            index.shards[0].compressedBytes = packed.count
            index.shards[0].sha256 = SHA256.hex(SHA256.hash(packed))
            try index.write(toDirectory: dir.path)
            let reopened = try ShardSet(directory: dir.path)
            try reopened.verify()
            expectShardError(try reopened.reader(for: reopened.index.shards[0])) {
                guard case let .badHeader(p, at, reason) = $0 else { return XCTFail("\(what): \($0)") }
                XCTAssertEqual(p, path)
                XCTAssertEqual(at, what == "magic" ? 0 : 8)
                XCTAssertTrue(reason.contains(what == "magic" ? "not a BertKit shard" : "version 2"), reason)
            }
            expectShardError(try ShardReader(path: path)) { guard case .badHeader(path, _, _) = $0 else { return XCTFail("\($0)") } }
        }
    }

    /// Field checks inside records name the decompressed byte offset of the field.
    func testCorruptRecordsNameTheOffset() throws {
        let (_, set) = try makeSet()
        let path = set.path(of: set.index.shards[0])
        let raw = try readRaw(path)
        let layout = set.layout
        let second = 48 + layout.recordSize
        func reading(_ bytes: [UInt8]) throws -> [TrainingInstance] {
            try Data(zstdCompress(bytes)).write(to: URL(fileURLWithPath: path))
            return try ShardReader(path: path).readAll()
        }
        // Length 0 in record 1.
        var bad = raw
        bad[second] = 0; bad[second + 1] = 0
        expectShardError(try reading(bad)) { XCTAssertEqual($0, .corruptRecord(path: path, offset: second, reason: "length 0 is not in 2...13")) }
        // NSP label 2.
        bad = raw
        bad[second + 4] = 2
        expectShardError(try reading(bad)) { XCTAssertEqual($0, .corruptRecord(path: path, offset: second + 4, reason: "NSP label 2 is not 0 or 1")) }
        // A token id outside the vocabulary (99): the first id of record 1.
        bad = raw
        bad[second + 8] = 99; bad[second + 9] = 0
        expectShardError(try reading(bad)) {
            XCTAssertEqual($0, .corruptRecord(path: path, offset: second + 8, reason: "token id 99 is outside the vocabulary of 99"))
        }
        // Non-zero padding after the last id slot.
        bad = raw
        bad[second + layout.positionsOffset - 1] = 1
        expectShardError(try reading(bad)) {
            guard case .corruptRecord(path, second + layout.positionsOffset - 2, _) = $0 else { return XCTFail("\($0)") }
        }
        // One record missing: the header promises more.
        let count = set.index.shards[0].instances
        expectShardError(try reading(Array(raw.dropLast(layout.recordSize)))) {
            XCTAssertEqual($0, .truncated(path: path, offset: 48 + (count - 1) * layout.recordSize, expected: raw.count))
        }
        // Bytes after the last record.
        expectShardError(try reading(raw + [0])) { XCTAssertEqual($0, .trailingData(path: path, offset: raw.count)) }
        XCTAssertEqual(try reading(raw).count, count)
    }

    func testMissingAndUnlistedShardsAreCaught() throws {
        let (dir, set) = try makeSet()
        let extra = dir.appendingPathComponent("shard-00099.bin.zst")
        try FileManager.default.copyItem(atPath: set.path(of: set.index.shards[0]), toPath: extra.path)
        expectShardError(try ShardSet(directory: dir.path)) { XCTAssertEqual($0, .unlistedShard(path: extra.path)) }
        try FileManager.default.removeItem(at: extra)
        let missing = set.path(of: set.index.shards[1])
        try FileManager.default.removeItem(atPath: missing)
        expectShardError(try ShardSet(directory: dir.path)) {
            XCTAssertEqual($0, .missingShard(path: missing))
            XCTAssertTrue("\($0)".contains("re-run bert shards"))
        }
    }

    func testOtherVocabularyAndMissingIndexAreCaught() throws {
        let (dir, set) = try makeSet()
        let other = SHA256.hex(SHA256.hash(Array("another vocab".utf8)))
        let indexPath = dir.appendingPathComponent("index.json").path
        expectShardError(try ShardSet(directory: dir.path, expectedVocabSHA256: other)) {
            XCTAssertEqual($0, .vocabularyMismatch(path: indexPath, expected: other, found: set.index.vocabSHA256))
        }
        // Shards without index.json: an interrupted run, refused as incomplete.
        try FileManager.default.removeItem(atPath: indexPath)
        expectShardError(try ShardSet(directory: dir.path)) {
            XCTAssertEqual($0, .missingIndex(directory: dir.path))
            XCTAssertTrue("\($0)".contains("incomplete"))
        }
        expectShardError(try ShardSet(directory: dir.appendingPathComponent("nope").path)) { guard case .notFound = $0 else { return XCTFail("\($0)") } }
        // A damaged index is an error naming it.
        try Data("{\"format_version\": 1}".utf8).write(to: URL(fileURLWithPath: indexPath))
        expectShardError(try ShardSet(directory: dir.path)) { guard case .badIndex(indexPath, _) = $0 else { return XCTFail("\($0)") } }
    }

    /// The decompressed bytes of a shard file.
    func readRaw(_ path: String) throws -> [UInt8] {
        let source = ZstdSource(try FileDescriptorSource(path: path))
        var out: [UInt8] = []
        var buffer = [UInt8](repeating: 0, count: 4096)
        while true {
            let n = try readAppending(source, into: &buffer, at: 0)
            if n == 0 { return out }
            out += buffer[0..<n]
        }
    }
}

/// The test layout: 13 tokens, 3 predictions, static masking.
enum ShardParameters {
    static func layout(vocab: Int) throws -> ShardLayout {
        try ShardLayout(vocabularySize: vocab, maxSeqLength: 13, maxPredictionsPerSeq: 3, staticMasking: true)
    }
}
