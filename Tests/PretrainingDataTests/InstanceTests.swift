import Support
import Foundation
import TestSupport
import TextNormalization
import WordPiece
import XCTest

@testable import PretrainingData

/// Instance building and masking on a small real input: the first 27 chapters of the English corpus
/// (Tests/Fixtures/text/en_sample.txt.zst, 300 kB of public-domain prose, one sentence per line).
final class InstanceTests: XCTestCase {
    static let vocabulary = try! Vocabulary.load(path: Fixtures.uncasedVocab)
    static let tokenizer = BertTokenizer(vocabulary: vocabulary)
    static let storeDir = Fixtures.temporaryDirectory().path

    static func store(split: SentenceSplit = .lines) throws -> TokenizedStore {
        let input = Fixtures.path("text/en_sample.txt.zst")
        let key = TokenizedStore.key(inputs: [input], vocabSHA256: "test", options: .init(lowercase: true, nfkc: false), split: split)
        return try TokenizedStore.openOrBuild(directory: storeDir + "-\(split)", inputs: [input], key: key,
                                              tokenizer: tokenizer, threads: 2).store
    }

    static func masker(wholeWord: Bool = false) -> Masker {
        let v = vocabulary
        return Masker(maskId: UInt32(v.maskId), clsId: UInt32(v.clsId), sepId: UInt32(v.sepId),
                      isContinuation: v.tokens.map { $0.hasPrefix("##") }, maskedLMProb: 0.15, maxPredictions: 20,
                      wholeWord: wholeWord)
    }

    func testStoreMatchesTheTokenizerAndIsReused() throws {
        let s = try Self.store()
        XCTAssertEqual(s.documentCount, 28)  // 27 whole chapters and the start of one more
        // Every stored sentence is the tokenizer's encoding of a non-empty line, in order.
        let text = String(decoding: try Self.readAll(Fixtures.path("text/en_sample.txt.zst")), as: UTF8.self)
        let lines = text.split(separator: "\n", omittingEmptySubsequences: true).map(String.init)
        let encoded = lines.map { Self.tokenizer.encode($0).map { UInt32($0) } }.filter { !$0.isEmpty }
        XCTAssertEqual(s.sentenceCount, encoded.count)
        for (i, e) in encoded.enumerated() where i % 7 == 0 { XCTAssertEqual(Array(s.tokens(ofSentence: i)), e, "sentence \(i)") }
        // Same key: reused, not rebuilt.
        let input = Fixtures.path("text/en_sample.txt.zst")
        let key = TokenizedStore.key(inputs: [input], vocabSHA256: "test", options: .init(lowercase: true, nfkc: false), split: .lines)
        XCTAssertTrue(try TokenizedStore.openOrBuild(directory: Self.storeDir + "-lines", inputs: [input], key: key,
                                                     tokenizer: Self.tokenizer, threads: 1).reused)
        var other = key
        other.vocabSHA256 = "another"
        guard case .absent = TokenizedStore.open(directory: Self.storeDir + "-lines", key: other) else {
            return XCTFail("a store built with another vocabulary is not opened")
        }
    }

    /// A few bytes changed in any file of the store (the offsets, the tokens, even a change that keeps
    /// the offsets rising) are found on opening, and `openOrBuild` rebuilds the store, saying why.
    func testDamagedStoreIsFoundAndRebuilt() throws {
        let input = Fixtures.path("text/en_sample.txt.zst")
        let key = TokenizedStore.key(inputs: [input], vocabSHA256: "test", options: .init(lowercase: true, nfkc: false), split: .lines)
        let dir = Fixtures.temporaryDirectory().path
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let fresh = try TokenizedStore.openOrBuild(directory: dir, inputs: [input], key: key, tokenizer: Self.tokenizer, threads: 2)
        XCTAssertFalse(fresh.reused)
        let tokens = Array(fresh.store.tokens), sentences = Array(fresh.store.sentenceEnds)
        // (file, byte offset, new byte): a wild offset, a token id, and an offset nudged by one.
        let damages: [(String, Int, UInt8)] = [("sentences.u64", 8 * 10 + 5, 0x7F), ("tokens.u32", 4 * 100, 0x01),
                                                 ("sentences.u64", 8 * 20, UInt8(truncatingIfNeeded: sentences[20] &+ 1)),
                                                 ("documents.u64", 3, 0xFF)]
        for (file, offset, byte) in damages {
            let url = URL(fileURLWithPath: dir + "/" + file)
            var data = try Data(contentsOf: url)
            XCTAssertNotEqual(data[offset], byte)
            data[offset] = byte
            try data.write(to: url)
            guard case let .damaged(reason) = TokenizedStore.open(directory: dir, key: key) else {
                return XCTFail("\(file) changed at byte \(offset) is not noticed")
            }
            XCTAssertTrue(reason.contains(file), reason)
            let rebuilt = try TokenizedStore.openOrBuild(directory: dir, inputs: [input], key: key, tokenizer: Self.tokenizer, threads: 1)
            XCTAssertFalse(rebuilt.reused)
            XCTAssertEqual(rebuilt.damaged, reason)
            XCTAssertEqual(Array(rebuilt.store.tokens), tokens)
            XCTAssertEqual(Array(rebuilt.store.sentenceEnds), sentences)
        }
        // A file cut short.
        let url = URL(fileURLWithPath: dir + "/tokens.u32")
        try Data(try Data(contentsOf: url).dropLast(4)).write(to: url)
        guard case let .damaged(reason) = TokenizedStore.open(directory: dir, key: key) else { return XCTFail("a short file is not noticed") }
        XCTAssertTrue(reason.contains("tokens.u32") && reason.contains("bytes"), reason)
    }

    func testICUSentenceSplitting() throws {
        let splitter = try XCTUnwrap(SentenceSplitter())
        XCTAssertEqual(splitter.split("Mr. Smith went home. He slept! Did he? 你好。再见。"),
                       ["Mr. Smith went home. ", "He slept! ", "Did he? ", "你好。", "再见。"])
        let s = try Self.store(split: .icu)
        XCTAssertEqual(s.documentCount, 28)  // 27 whole chapters and the start of one more
        // ICU only places the sentence boundaries (lines of a paragraph are joined by spaces): per
        // document the tokens are the line store's, in the same order. The boundaries are ICU's own,
        // not the lines' ("Mr." ends a line of the sample but not a sentence), and each one that
        // is not a document's end follows a sentence terminator, possibly closed by quotes or brackets.
        let lines = try Self.store(split: .lines)
        XCTAssertEqual(lines.documentCount, s.documentCount)
        var differ = 0, notAfterTerminator: [String] = []
        let vocab = Self.vocabulary.tokens
        for d in 0..<s.documentCount {
            func ends(_ store: TokenizedStore) -> (tokens: [UInt32], ends: Set<Int>) {
                var tokens: [UInt32] = [], ends = Set<Int>()
                for i in store.sentences(ofDocument: d) { tokens += store.tokens(ofSentence: i); ends.insert(tokens.count) }
                return (tokens, ends)
            }
            let icu = ends(s), line = ends(lines)
            XCTAssertEqual(icu.tokens, line.tokens, "document \(d)")
            if icu.ends != line.ends { differ += 1 }
            for e in icu.ends where e < icu.tokens.count {
                let before = icu.tokens[..<e].reversed().map { vocab[Int($0)] }
                let closed = before.drop { ["'", "\"", ")", "]", "’", "”", "_"].contains($0) }
                if !["." , "!", "?"].contains(closed.first ?? "") { notAfterTerminator.append(before.prefix(4).reversed().joined(separator: " ")) }
            }
        }
        XCTAssertGreaterThan(differ, 0, "ICU's boundaries are not the lines'")
        XCTAssertEqual(notAfterTerminator, [], "boundaries not after . ! or ?")
    }

    static func readAll(_ path: String) throws -> [UInt8] {
        let src = try openInput(path)
        var out: [UInt8] = [], buf = [UInt8](repeating: 0, count: 65536)
        while true {
            let n = try readAppending(src, into: &buf, at: 0)
            if n == 0 { return out }
            out += buf[0..<n]
        }
    }

    func testMaskerCountsLabelsAndSplit() {
        var rng = SeededGenerator(seed: 1)
        let m = Self.masker()
        var counts = [0, 0, 0]  // mask, same, random
        for trial in 0..<3000 {
            let length = 5 + trial % 124
            var tokens: [UInt32] = [101] + (0..<(length - 3)).map { _ in UInt32(rng.int(in: 1000...29000)) } + [102, 102]
            tokens[1 + (length - 3) / 2] = 102  // a [SEP] in the middle, like a pair
            let original = tokens
            let (positions, labels) = m.mask(&tokens, rng: &rng)
            XCTAssertEqual(positions.count, min(20, max(1, Int((Double(length) * 0.15).rounded(.toNearestOrEven)))))
            XCTAssertEqual(positions, positions.sorted())
            XCTAssertEqual(Set(positions).count, positions.count)
            for (p, l) in zip(positions, labels) {
                XCTAssertEqual(l, original[p], "label is the original token")
                XCTAssertNotEqual(original[p], 101); XCTAssertNotEqual(original[p], 102)
                if tokens[p] == 103 { counts[0] += 1 } else if tokens[p] == original[p] { counts[1] += 1 } else { counts[2] += 1 }
            }
            for p in 0..<length where !positions.contains(p) { XCTAssertEqual(tokens[p], original[p]) }
        }
        let total = Double(counts.reduce(0, +))
        XCTAssertEqual(Double(counts[0]) / total, 0.8, accuracy: 0.01)
        XCTAssertEqual(Double(counts[1]) / total, 0.1, accuracy: 0.01)
        XCTAssertEqual(Double(counts[2]) / total, 0.1, accuracy: 0.01)
        // Python's round is half to even: 10 × 0.15 = 1.5 → 2, 30 × 0.15 = 4.5 → 4.
        XCTAssertEqual(m.predictionCount(length: 10), 2)
        XCTAssertEqual(m.predictionCount(length: 30), 4)
        XCTAssertEqual(m.predictionCount(length: 3), 1)
        XCTAssertEqual(m.predictionCount(length: 512), 20)
    }

    /// The fast single-piece masker against the general group masker (its naive reference): the same
    /// positions, labels, replaced tokens and random draws on sequences with [SEP]s in odd places.
    func testPieceMaskerMatchesGroupMasker() {
        let m = Self.masker()
        var source = SeededGenerator(seed: 77)
        for trial in 0..<2000 {
            let length = 3 + trial % 140
            var tokens: [UInt32] = [101] + (0..<(length - 2)).map { _ in UInt32(source.int(in: 999...1010)) } + [102]
            if length > 6 { tokens[source.int(in: 1...(length - 2))] = 102 }
            var fastTokens = tokens, slowTokens = tokens
            var fastRNG = SeededGenerator(seed: UInt64(trial)), slowRNG = fastRNG
            // Output arrays with stale contents: their storage is reused, their contents replaced.
            var positions = [5, 6, 7], labels: [UInt32] = [1]
            m.maskPieces(&fastTokens, positions: &positions, labels: &labels, rng: &fastRNG)
            let slow = m.maskGroups(&slowTokens, rng: &slowRNG)
            XCTAssertEqual(positions, slow.positions, "trial \(trial)")
            XCTAssertEqual(labels, slow.labels, "trial \(trial)")
            XCTAssertEqual(fastTokens, slowTokens, "trial \(trial)")
            XCTAssertEqual(fastRNG, slowRNG, "trial \(trial): the same random draws")
        }
    }

    func testWholeWordMaskingMasksWordsTogether() {
        let v = Self.vocabulary
        let m = Self.masker(wholeWord: true)
        let words = Self.tokenizer.encode("unwanted running the tokenizers").map { UInt32($0) }
        XCTAssertTrue(words.contains { v.tokens[Int($0)].hasPrefix("##") })
        var rng = SeededGenerator(seed: 5)
        var perWordDecisions = 0
        for _ in 0..<500 {
            var tokens: [UInt32] = [UInt32(v.clsId)]
            for _ in 0..<12 { tokens += words }
            tokens.append(UInt32(v.sepId))
            let original = tokens
            let (positions, _) = m.mask(&tokens, rng: &rng)
            let set = Set(positions)
            // A masked piece's whole word is masked, and the word gets one decision.
            var p = 1
            while p < original.count - 1 {
                var end = p + 1
                while end < original.count - 1, v.tokens[Int(original[end])].hasPrefix("##") { end += 1 }
                let inWord = (p..<end).filter { set.contains($0) }
                XCTAssertTrue(inWord.isEmpty || inWord.count == end - p, "whole word")
                if !inWord.isEmpty {
                    let masked = (p..<end).map { tokens[$0] == UInt32(v.maskId) }
                    XCTAssertTrue(masked.allSatisfy { $0 } || masked.allSatisfy { !$0 }, "one 80/10/10 draw per word")
                    perWordDecisions += 1
                }
                p = end
            }
            XCTAssertLessThanOrEqual(positions.count, m.predictionCount(length: original.count))
        }
        XCTAssertGreaterThan(perWordDecisions, 1000)
    }

    /// google-research/bert's statistics on real text: lengths, NSP balance, short targets.
    func testInstanceStatisticsOnRealText() throws {
        let store = try Self.store()
        let params = ShardGenerationParameters(dupeFactor: 5)
        let b = InstanceBuilder(store: store, parameters: params, clsId: 101, sepId: 102, masker: Self.masker())
        var counts = InstanceBuilder.Counts()
        var lengths: [Int] = []
        var realPairs = 0
        let documents = (0..<store.documentCount).map { d in store.sentences(ofDocument: d).flatMap { Array(store.tokens(ofSentence: $0)) } }
        for pass in 0..<params.dupeFactor {
            for d in 0..<store.documentCount {
                b.instances(pass: pass, document: d, counts: &counts) { inst in
                    lengths.append(inst.tokens.count)
                    XCTAssertLessThanOrEqual(inst.tokens.count, 128)
                    XCTAssertEqual(inst.tokens.first, 101)
                    XCTAssertEqual(inst.tokens.last, 102)
                    XCTAssertEqual(inst.tokens[inst.segmentALength - 1], 102)
                    XCTAssertEqual(inst.maskedPositions.count, Self.masker().predictionCount(length: inst.tokens.count))
                    XCTAssertFalse(inst.maskedPositions.contains(0))
                    XCTAssertEqual(inst.tokens.filter { $0 == 102 }.count - inst.maskedLabels.filter { $0 == 102 }.count, 2)
                    // Every masked label is the original token: with the labels put back, A (and B when
                    // it is the real next) is a contiguous run of the document's text, B after A.
                    var restored = inst.tokens
                    for (p, l) in zip(inst.maskedPositions, inst.maskedLabels) { restored[p] = l }
                    let a = Array(restored[1..<(inst.segmentALength - 1)])
                    let bSeg = Array(restored[inst.segmentALength..<(restored.count - 1)])
                    let text = documents[d]
                    let aAt = Self.find(a, in: text)
                    XCTAssertNotNil(aAt, "segment A of document \(d) is its text")
                    if !inst.isRandomNext, let aAt {
                        let bAt = Self.find(bSeg, in: text, from: aAt + 1)
                        XCTAssertNotNil(bAt, "segment B of document \(d) follows A")
                    }
                    realPairs += inst.isRandomNext ? 0 : 1
                }
            }
        }
        XCTAssertGreaterThan(counts.instances, 2000)
        XCTAssertGreaterThan(realPairs, 1000)
        // Half random next, single-segment chunks included (they are split for a real next).
        let randomShare = Double(counts.randomNext) / Double(counts.instances)
        XCTAssertGreaterThan(counts.singleSegment, 50, "the sample has single-segment chunks to balance")
        XCTAssertEqual(randomShare, 0.5, accuracy: 0.02, "random next \(randomShare) of \(counts.instances)")
        XCTAssertEqual(counts.documentPasses, 5 * 28)
        XCTAssertEqual(Double(counts.shortTarget) / Double(counts.documentPasses), 0.1, accuracy: 0.08)
        // Most instances fill the target: long documents, target 125 tokens.
        XCTAssertGreaterThan(Double(lengths.filter { $0 >= 100 }.count) / Double(lengths.count), 0.6)
        // Same seed, same instances.
        var again: [TrainingInstance] = [], first: [TrainingInstance] = []
        var c = InstanceBuilder.Counts()
        b.instances(pass: 3, document: 4, counts: &c) { first.append($0) }
        b.instances(pass: 3, document: 4, counts: &c) { again.append($0) }
        XCTAssertEqual(first, again)
    }

    /// The first index at or after `from` where `needle` occurs in `haystack`.
    static func find(_ needle: [UInt32], in haystack: [UInt32], from: Int = 0) -> Int? {
        guard !needle.isEmpty, needle.count <= haystack.count else { return nil }
        var i = from
        while i + needle.count <= haystack.count {
            if haystack[i] == needle[0] && Array(haystack[i..<(i + needle.count)]) == needle { return i }
            i += 1
        }
        return nil
    }

    /// The first draw of each derived (pass, document) generator is uniform: the short-target share
    /// over many document passes is close to short_seq_prob.
    func testDerivedGeneratorsAreUniform() {
        var below = 0
        for pass in 0..<10 { for d in 0..<5000 {
            var g = SeededGenerator(seed: 12345, stream: [UInt64(pass), UInt64(d)])
            if g.nextDouble() < 0.1 { below += 1 }
        } }
        XCTAssertEqual(Double(below) / 50000, 0.1, accuracy: 0.005)
    }

    func testTruncationKeepsTheShorterSide() {
        var rng = SeededGenerator(seed: 9)
        var a = [UInt32](repeating: 1, count: 100), b = [UInt32](repeating: 2, count: 10)
        InstanceBuilder.truncatePair(&a, &b, maxTokens: 50, rng: &rng)
        XCTAssertEqual(a.count, 40)
        XCTAssertEqual(b.count, 10)
        a = [1, 2, 3, 4, 5, 6]; b = [7, 8, 9, 10, 11, 12]
        InstanceBuilder.truncatePair(&a, &b, maxTokens: 6, rng: &rng)
        XCTAssertEqual(a.count, 3); XCTAssertEqual(b.count, 3)
    }

    /// google-research/bert's truncate_seq_pair removes each token from the front or the back of the
    /// longer side with probability 1/2: what is left is a contiguous slice of the original, and
    /// over many seeds the number cut from the front is Binomial(cuts, 1/2).
    func testTruncationCutsFromARandomEnd() {
        let original = (0..<100).map { UInt32($0) }
        let other = (1000..<1010).map { UInt32($0) }
        let cuts = 100 + 10 - 50  // all from the longer side, A
        var fronts: [Int] = []
        for seed in 0..<2000 {
            var rng = SeededGenerator(seed: UInt64(seed))
            var a = original, b = other
            InstanceBuilder.truncatePair(&a, &b, maxTokens: 50, rng: &rng)
            XCTAssertEqual(b, other, "the shorter side is left alone")
            XCTAssertEqual(a.count, 40)
            let start = Int(a.first ?? 0)
            XCTAssertEqual(a, Array(original[start..<(start + a.count)]), "seed \(seed): a contiguous slice")
            fronts.append(start)
        }
        // Both ends get cut, and in the proportion of a fair coin: mean cuts/2 = 30, sd √(60/4) ≈ 3.9.
        XCTAssertTrue(fronts.contains(0) == false && fronts.contains(cuts) == false, "never all from one end with 60 cuts")
        let mean = Double(fronts.reduce(0, +)) / Double(fronts.count)
        let variance = fronts.map { (Double($0) - mean) * (Double($0) - mean) }.reduce(0, +) / Double(fronts.count - 1)
        XCTAssertEqual(mean, Double(cuts) / 2, accuracy: 0.5, "mean cut from the front")  // 6 standard errors (0.087)
        XCTAssertEqual(variance, Double(cuts) / 4, accuracy: 3, "variance of the cut from the front")
        // Both sides longer than half: the longer one is cut until they are level, then alternately (B on ties).
        var seen = Set<[Int]>()
        for seed in 0..<200 {
            var rng = SeededGenerator(seed: UInt64(seed))
            var a = (0..<30).map { UInt32($0) }, b = (100..<125).map { UInt32($0) }
            InstanceBuilder.truncatePair(&a, &b, maxTokens: 40, rng: &rng)
            XCTAssertEqual([a.count, b.count], [20, 20])
            XCTAssertEqual(a, Array(UInt32(a[0])..<(UInt32(a[0]) + 20)), "A contiguous")
            XCTAssertEqual(b, Array(UInt32(b[0])..<(UInt32(b[0]) + 20)), "B contiguous")
            seen.insert([Int(a[0]), Int(b[0]) - 100])
        }
        XCTAssertTrue(seen.contains { $0[0] > 0 } && seen.contains { $0[0] < 10 }, "A (10 cuts) cut at the front and at the back")
        XCTAssertTrue(seen.contains { $0[1] > 0 } && seen.contains { $0[1] < 5 }, "B (5 cuts) cut at the front and at the back")
    }
}
