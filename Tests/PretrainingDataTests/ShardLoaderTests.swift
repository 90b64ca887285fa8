import Support
import Foundation
import TestSupport
import XCTest

@testable import PretrainingData

/// The training-side reader: order, batches, padding, exact resumption, dynamic masking, faults.
final class ShardLoaderTests: XCTestCase {
    /// A shard directory of `count` random instances in several shards (tiny layout: 13 tokens).
    static func makeShards(_ count: Int, dynamic: Bool = false) throws -> (dir: URL, items: [TrainingInstance]) {
        let dir = Fixtures.temporaryDirectory().appendingPathComponent("shards")
        var items = ShardTests.instances(count, layout: try ShardLayout(vocabularySize: 50, maxSeqLength: 13, maxPredictionsPerSeq: 3,
                                                                         staticMasking: !dynamic), seed: 3)
        if dynamic {
            for i in items.indices {
                items[i].instance.maskedPositions = []
                items[i].instance.maskedLabels = []
            }
        }
        let index = try ShardTests.write(items, to: dir, vocabularySize: 50, parameters: ShardTests.parameters(dynamic: dynamic),
                                         targetShardBytes: 500)
        if count >= 40 { XCTAssertGreaterThanOrEqual(index.shards.count, 3, "several shards, so batches cross shard boundaries") }
        return (dir, items.map(\.instance))
    }

    static func loader(_ dir: URL, batch: Int, seed: UInt64 = 11, masker: Masker? = nil, padToLongest: Bool = false,
                       dropLast: Bool = false, group: Int = 0, prefetch: Int = 3, slice: BatchSlice? = nil) throws -> ShardLoader {
        let set = try ShardSet(directory: dir.path, expectedVocabSHA256: ShardTests.vocabSHA)
        return try ShardLoader(set: set, options: .init(batchSize: batch, seed: seed, padToLongest: padToLongest,
                                                         dropLast: dropLast, groupWindowBatches: group, prefetchBatches: prefetch,
                                                         slice: slice),
                               masker: masker)
    }

    /// Data parallelism: the slices of the processes partition every batch in order (process k's slice is
    /// the k-th chunk of batchSize/N instances, padded on its own), carry the whole batch's counts, and
    /// advance the position by the whole batch; without grouping, a slice is exactly the batch a loader of
    /// batchSize/N hands out at that place (the micro-batch of one process accumulating N).
    func testSlicesPartitionEveryBatchAndMatchTheSmallerLoadersBatches() throws {
        let (dynamicDir, _) = try Self.makeShards(103, dynamic: true)
        let (staticDir, _) = try Self.makeShards(103)
        // Ids 10…29 are "##" pieces, so whole words span several positions and can overshoot the target.
        let continuation = (0..<50).map { (10..<30).contains($0) }
        // Each process reads only the masked counts of the others' records: static counts, the piece
        // masking count, and a whole-word draw must all give the whole batch's count.
        let cases: [(URL, Masker?)] = [
            (dynamicDir, Masker(maskId: 4, clsId: 2, sepId: 3, isContinuation: [Bool](repeating: false, count: 50),
                                maskedLMProb: 0.15, maxPredictions: 3, wholeWord: false)),
            (dynamicDir, Masker(maskId: 4, clsId: 2, sepId: 3, isContinuation: continuation,
                                maskedLMProb: 0.3, maxPredictions: 3, wholeWord: true)),
            (staticDir, nil)]
        for (dir, masker) in cases {
        for (group, pad) in [(0, false), (2, true)] {
            let whole = try Self.all(Self.loader(dir, batch: 8, masker: masker, padToLongest: pad, group: group).batches(epoch: 1))
            let n = 4
            var slices: [[InstanceBatch]] = []
            for k in 0..<n {
                let batches = try Self.loader(dir, batch: 8, masker: masker, padToLongest: pad, group: group,
                                              slice: BatchSlice(index: k, count: n)).batches(epoch: 1)
                slices.append(try Self.all(batches))
                XCTAssertEqual(batches.position.instancesConsumed, 103, "the position counts whole batches")
            }
            XCTAssertEqual(whole.count, 13)
            for (i, b) in whole.enumerated() {
                let parts = (0..<n).map { slices[$0][i] }
                XCTAssertEqual(parts.flatMap(Self.unpack), Self.unpack(b), "batch \(i): the slices are the batch, in order")
                XCTAssertEqual(parts.map(\.size), b.size == 8 ? [2, 2, 2, 2] : [2, 2, 2, 1], "batch \(i)")
                for p in parts {
                    XCTAssertEqual(p.wholeBatchSize, b.size)
                    XCTAssertEqual(p.wholeBatchMaskedPositions, b.maskedPositions.count)
                    XCTAssertEqual(p.wholeBatchTokens, b.tokenCount, "the whole batch's real tokens (ELECTRA's RTD share)")
                    if pad { XCTAssertEqual(p.seqLength, Self.unpack(p).map(\.tokens.count).max(), "padded to the slice's longest") }
                }
            }
            if group == 0 {
                let small = try Self.all(Self.loader(dir, batch: 2, masker: masker).batches(epoch: 1))
                XCTAssertEqual(small, (0..<13).flatMap { i in (0..<n).map { slices[$0][i] }.filter { $0.size > 0 } }.map {
                    var b = $0
                    b.wholeBatchSize = b.size
                    b.wholeBatchMaskedPositions = b.maskedPositions.count
                    b.wholeBatchTokens = b.tokenCount
                    return b
                })
            }
        }
        }
        // An empty slice: 3 instances in the last batch of 8 split 4 ways leave process 3 nothing.
        let (small, _) = try Self.makeShards(11)
        let last = try Self.all(Self.loader(small, batch: 8, slice: BatchSlice(index: 3, count: 4)).batches(epoch: 0))
        XCTAssertEqual(last.map(\.size), [2, 0])
        XCTAssertEqual(last.map(\.wholeBatchSize), [8, 3])
        XCTAssertThrowsError(try Self.loader(small, batch: 6, slice: BatchSlice(index: 0, count: 4)), "6 is not a multiple of 4")
    }

    /// Each record is decoded and checked by the one process whose slice holds it: a damaged record in
    /// process 1's half of a batch stops process 1, naming the file and offset, while process 0 makes its
    /// slice (with the whole batch's masked count) without touching it.
    func testEachRecordIsDecodedOnlyByTheProcessWhoseSliceHoldsIt() throws {
        let (dir, _) = try Self.makeShards(40)
        func batch(_ k: Int, damaging record: Int?) throws -> InstanceBatch {
            let loader = try Self.loader(dir, batch: 4, slice: BatchSlice(index: k, count: 2))
            let shard = try loader.loadShard(0)
            XCTAssertGreaterThanOrEqual(shard.count, 4)
            var records = (0..<4).map(shard.pending)
            if let r = record {
                var bytes = records[r].bytes
                bytes[5] = 1  // the reserved byte
                records[r] = PendingRecord(shard: 0, record: r, offset: records[r].offset, bytes: bytes, length: records[r].length)
            }
            return try BatchProducer(loader: loader, queue: BatchQueue(capacity: 1)).makeBatch(records, epoch: 0)
        }
        let intact = try batch(0, damaging: nil)
        let beside = try batch(0, damaging: 3)  // record 3 is in process 1's half (2..<4)
        XCTAssertEqual(beside, intact, "process 0 never decodes process 1's records")
        XCTAssertEqual(intact.size, 2)
        XCTAssertEqual(intact.wholeBatchMaskedPositions, try batch(1, damaging: nil).wholeBatchMaskedPositions)
        let file = try ShardSet(directory: dir.path).index.shards[0].file
        XCTAssertThrowsError(try batch(1, damaging: 3)) { e in
            guard case let .corruptRecord(path, offset, reason) = e as? ShardError else { return XCTFail("\(e)") }
            XCTAssertTrue(path.hasSuffix(file), path)
            XCTAssertTrue(reason.contains("reserved"), reason)
            XCTAssertEqual(offset, ShardLayout.headerSize + 3 * (try! ShardSet(directory: dir.path)).layout.recordSize + 5)
        }
        XCTAssertThrowsError(try batch(0, damaging: 1), "the damage in process 0's own half stops it")
    }

    static func all(_ batches: EpochBatches) throws -> [InstanceBatch] {
        var out: [InstanceBatch] = []
        while let b = try batches.next() { out.append(b) }
        return out
    }

    /// Instances back out of a batch (tokens up to the mask's length, segment A from segment ids).
    static func unpack(_ b: InstanceBatch) -> [TrainingInstance] {
        (0..<b.size).map { i in
            let row = i * b.seqLength
            let n = (0..<b.seqLength).filter { b.attentionMask[row + $0] == 1 }.count
            let tokens = (0..<n).map { UInt32(b.inputIds[row + $0]) }
            let a = (0..<n).filter { b.segmentIds[row + $0] == 0 }.count
            let masked = b.maskedPositions.indices.filter { Int(b.maskedPositions[$0]) / b.seqLength == i }
            return TrainingInstance(tokens: tokens, segmentALength: a, isRandomNext: b.nextSentenceLabels[i] == 1,
                                    maskedPositions: masked.map { Int(b.maskedPositions[$0]) - row },
                                    maskedLabels: masked.map { UInt32(b.maskedLabels[$0]) })
        }
    }

    func testEveryInstanceOncePerEpochPaddedAndShuffled() throws {
        let (dir, items) = try Self.makeShards(103)
        let loader = try Self.loader(dir, batch: 8)
        XCTAssertEqual(loader.updatesPerEpoch, 13)
        let e0 = try Self.all(loader.batches(epoch: 0))
        XCTAssertEqual(e0.map(\.size), [Int](repeating: 8, count: 12) + [7])
        for b in e0 {
            XCTAssertEqual(b.seqLength, 13)
            XCTAssertEqual(b.inputIds.count, b.size * 13)
            XCTAssertEqual(b.maskedPositions, b.maskedPositions.sorted())
            for i in 0..<b.size {  // padding is zero and masked off
                let row = Array(b.attentionMask[(i * 13)..<((i + 1) * 13)])
                XCTAssertEqual(row, row.sorted(by: >), "real tokens first, then padding")
                for t in 0..<13 where row[t] == 0 { XCTAssertEqual(b.inputIds[i * 13 + t], 0); XCTAssertEqual(b.segmentIds[i * 13 + t], 0) }
            }
        }
        let got = e0.flatMap(Self.unpack)
        XCTAssertEqual(ShardTests.counts(got), ShardTests.counts(items), "each instance exactly once")
        // Another epoch, another order; the same epoch again, the same order.
        let e1 = try Self.all(loader.batches(epoch: 1)).flatMap(Self.unpack)
        XCTAssertEqual(ShardTests.counts(e1), ShardTests.counts(items))
        XCTAssertNotEqual(e1, got)
        XCTAssertEqual(try Self.all(loader.batches(epoch: 0)).flatMap(Self.unpack), got)
        // Another seed, another order.
        XCTAssertNotEqual(try Self.all(Self.loader(dir, batch: 8, seed: 12).batches(epoch: 0)).flatMap(Self.unpack), got)
        // dropLast and padToLongest.
        let dropped = try Self.all(Self.loader(dir, batch: 8, dropLast: true).batches(epoch: 0))
        XCTAssertEqual(dropped.count, 12)
        let longest = try Self.all(Self.loader(dir, batch: 8, padToLongest: true).batches(epoch: 0))
        for (b, full) in zip(longest, e0) {
            XCTAssertEqual(b.seqLength, Self.unpack(full).map(\.tokens.count).max())
            XCTAssertEqual(Self.unpack(b), Self.unpack(full))
        }
    }

    func testResumeFromAnyPositionGivesTheSameBatches() throws {
        let (dir, _) = try Self.makeShards(61)
        let loader = try Self.loader(dir, batch: 5)
        let whole = try Self.all(loader.batches(epoch: 2))
        let it = try loader.batches(epoch: 2)
        for k in 0..<whole.count {
            XCTAssertEqual(it.position, LoaderPosition(epoch: 2, instancesConsumed: 5 * k))
            let resumed = try Self.all(loader.batches(epoch: 2, skipping: it.position.instancesConsumed))
            XCTAssertEqual(resumed, Array(whole[k...]), "resumed after \(k) batches")
            _ = try it.next()
        }
        XCTAssertNil(try it.next())
        XCTAssertThrowsError(try loader.batches(epoch: 0, skipping: 62))
        // Releasing an iterator mid-epoch stops its threads (no hang, no crash).
        for _ in 0..<20 { _ = try loader.batches(epoch: 0).next() }
    }

    /// Length grouping: the same instances as the plain order, each window's instances in batches
    /// of similar length (checked against a sort of the plain order's windows), padded to their
    /// longest, in a seeded order; resuming at any batch boundary continues exactly.
    func testLengthGroupingIsAPermutationWithLessPaddingAndResumesExactly() throws {
        let (dir, items) = try Self.makeShards(103)
        let plain = try Self.all(Self.loader(dir, batch: 4).batches(epoch: 1)).flatMap(Self.unpack)
        let loader = try Self.loader(dir, batch: 4, padToLongest: true, group: 5)
        let grouped = try Self.all(loader.batches(epoch: 1))
        XCTAssertEqual(grouped.map(\.size), [Int](repeating: 4, count: 25) + [3], "full batches, the smaller one last")
        let instances = grouped.flatMap(Self.unpack)
        XCTAssertEqual(ShardTests.counts(instances), ShardTests.counts(items), "each instance exactly once")
        // Windows of 5 batches = 20 instances of the plain order: the same sets, and inside a window
        // the batches are consecutive runs of the window sorted by length.
        for w in stride(from: 0, to: 103, by: 20) {
            let window = Array(plain[w..<min(w + 20, 103)])
            let got = Array(instances[w..<min(w + 20, 103)])
            XCTAssertEqual(ShardTests.counts(got), ShardTests.counts(window), "window at \(w)")
            let sortedLengths = window.map(\.tokens.count).sorted()
            let runs = stride(from: 0, to: sortedLengths.count, by: 4).map { Array(sortedLengths[$0..<min($0 + 4, sortedLengths.count)]) }
            let batchLengths = stride(from: 0, to: got.count, by: 4).map { got[$0..<min($0 + 4, got.count)].map(\.tokens.count).sorted() }
            XCTAssertEqual(batchLengths.sorted { $0.lexicographicallyPrecedes($1) }, runs.sorted { $0.lexicographicallyPrecedes($1) },
                           "window at \(w): batches are runs of the sorted window")
        }
        for b in grouped { XCTAssertEqual(b.seqLength, Self.unpack(b).map(\.tokens.count).max(), "padded to the longest") }
        let paddedGrouped = grouped.reduce(0) { $0 + $1.size * $1.seqLength }
        let paddedPlain = try Self.all(Self.loader(dir, batch: 4, padToLongest: true).batches(epoch: 1)).reduce(0) { $0 + $1.size * $1.seqLength }
        XCTAssertLessThan(paddedGrouped, paddedPlain, "grouping pads less")
        XCTAssertNotEqual(instances, plain, "the batches are reordered")
        XCTAssertEqual(try Self.all(loader.batches(epoch: 1)), grouped, "reproducible")
        XCTAssertNotEqual(try Self.all(loader.batches(epoch: 2)).flatMap(Self.unpack), instances, "another epoch, another order")
        // Resume at every batch boundary, including ones inside a window.
        let it = try loader.batches(epoch: 1)
        for k in 0...grouped.count {
            let resumed = try Self.all(loader.batches(epoch: 1, skipping: it.position.instancesConsumed))
            XCTAssertEqual(resumed, Array(grouped[k...]), "resumed after \(k) batches")
            _ = try it.next()
        }
        XCTAssertThrowsError(try Self.all(loader.batches(epoch: 1, skipping: 2)), "not a batch boundary")
        // dropLast drops the smaller batch, still the last one.
        XCTAssertEqual(try Self.all(Self.loader(dir, batch: 4, padToLongest: true, dropLast: true, group: 5).batches(epoch: 1)),
                       Array(grouped.dropLast()))
    }

    func testDynamicMaskingDependsOnEpochAndIsReproducible() throws {
        let (dir, items) = try Self.makeShards(40, dynamic: true)
        let masker = Masker(maskId: 4, clsId: 2, sepId: 3, isContinuation: [Bool](repeating: false, count: 50),
                            maskedLMProb: 0.15, maxPredictions: 3, wholeWord: false)
        XCTAssertThrowsError(try Self.loader(dir, batch: 4), "dynamic shards need a masker")
        let loader = try Self.loader(dir, batch: 4, masker: masker)
        let e0 = try Self.all(loader.batches(epoch: 0)).flatMap(Self.unpack)
        XCTAssertEqual(try Self.all(loader.batches(epoch: 0)).flatMap(Self.unpack), e0, "reproducible")
        let originals = Set(items.map(\.tokens))
        for inst in e0 {
            var restored = inst.tokens
            for (p, l) in zip(inst.maskedPositions, inst.maskedLabels) { restored[p] = l }
            XCTAssertTrue(originals.contains(restored), "labels are the original tokens")
            // These random instances have [CLS] (2) and [SEP] (3) ids anywhere: only the other
            // positions are candidates, and the count is google-research/bert's formula
            // min(max_predictions, max(1, round(length × prob))) unless they are fewer.
            let candidates = restored.indices.filter { restored[$0] != 2 && restored[$0] != 3 }
            let target = min(3, max(1, Int((Double(inst.tokens.count) * 0.15).rounded(.toNearestOrEven))))
            XCTAssertEqual(inst.maskedPositions.count, min(target, candidates.count), "\(restored)")
            XCTAssertTrue(Set(inst.maskedPositions).isSubset(of: candidates), "never a [CLS]/[SEP] position: \(inst.maskedPositions) of \(restored)")
        }
        // Where the candidates run out, the count is theirs: [CLS] x [SEP] [SEP] … has one.
        var rng = SeededGenerator(seed: 4)
        var few: [UInt32] = [2, 17, 3] + [UInt32](repeating: 3, count: 10)
        XCTAssertEqual(masker.predictionCount(length: few.count), 2, "round(13 × 0.15) = 2")
        XCTAssertEqual(masker.mask(&few, rng: &rng).positions, [1])
        // New masks in a new epoch: compare each instance's masks by its original tokens.
        func masks(_ insts: [TrainingInstance]) -> [[UInt32]: [Int]] {
            var out: [[UInt32]: [Int]] = [:]
            for inst in insts {
                var restored = inst.tokens
                for (p, l) in zip(inst.maskedPositions, inst.maskedLabels) { restored[p] = l }
                out[restored] = inst.maskedPositions
            }
            return out
        }
        let e1 = try Self.all(loader.batches(epoch: 1)).flatMap(Self.unpack)
        let m0 = masks(e0), m1 = masks(e1)
        XCTAssertGreaterThan(m0.keys.filter { m0[$0] != m1[$0] }.count, 20, "most instances get new masks")
        // Static shards refuse a second masking.
        let (staticDir, _) = try Self.makeShards(10)
        XCTAssertThrowsError(try Self.loader(staticDir, batch: 4, masker: masker))
    }

    func testDamagedShardIsReportedByTheLoader() throws {
        let (dir, _) = try Self.makeShards(50)
        let loader = try Self.loader(dir, batch: 4)
        let victim = loader.shardSet.index.shards[1]
        let path = dir.appendingPathComponent(victim.file).path
        var bytes = try Data(contentsOf: URL(fileURLWithPath: path))
        bytes[bytes.count / 2] ^= 0x40
        try bytes.write(to: URL(fileURLWithPath: path))
        XCTAssertThrowsError(try Self.all(loader.batches(epoch: 0))) { e in
            guard case let .checksumMismatch(p, _, _) = e as? ShardError else { return XCTFail("\(e)") }
            XCTAssertEqual(p, path)
        }
        // Without checksum verification the damage is still caught, by zstd's frame checksum or the record checks.
        let set = try ShardSet(directory: dir.path)
        let unchecked = try ShardLoader(set: set, options: .init(batchSize: 4, seed: 1, verifyChecksums: false), masker: nil)
        XCTAssertThrowsError(try Self.all(unchecked.batches(epoch: 0))) { e in
            XCTAssertTrue("\(e)".contains(victim.file), "\(e)")
        }
    }
}
