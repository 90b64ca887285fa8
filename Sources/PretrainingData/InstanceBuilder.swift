import Support
import Foundation

/// Masked-LM masking, as google-research/bert's `create_masked_lm_predictions`: candidates are all
/// positions but `[CLS]`/`[SEP]` (whole words when `wholeWordMask`: a piece starting with `##` joins
/// the word before it), shuffled; exactly `min(maxPredictions, max(1, round(length × prob)))`
/// positions are masked (Python's round, half to even; with whole words a word that would overshoot
/// is skipped, so it can fall short); each chosen position becomes `[MASK]` 80%, stays 10%, becomes a
/// random vocabulary id 10%. With whole words the 80/10/10 draw is made once per word, not per piece
/// (google-research/bert draws per piece).
public struct Masker: Sendable {
    public let maskId: UInt32
    public let clsId: UInt32
    public let sepId: UInt32
    public let vocabularySize: Int
    /// Per vocabulary id: the token is a `##` continuation piece. // (vocabularySize,)
    public let isContinuation: [Bool]
    public let maskedLMProb: Double
    public let maxPredictions: Int
    public let wholeWord: Bool

    public init(maskId: UInt32, clsId: UInt32, sepId: UInt32, isContinuation: [Bool],
                maskedLMProb: Double, maxPredictions: Int, wholeWord: Bool) {
        self.maskId = maskId; self.clsId = clsId; self.sepId = sepId
        self.vocabularySize = isContinuation.count
        self.isContinuation = isContinuation
        self.maskedLMProb = maskedLMProb; self.maxPredictions = maxPredictions; self.wholeWord = wholeWord
    }

    /// The number of positions to mask for a sequence length.
    public func predictionCount(length: Int) -> Int {
        Self.predictionCount(length: length, maskedLMProb: maskedLMProb, maxPredictions: maxPredictions)
    }

    /// google-research/bert's count: min(maxPredictions, max(1, round(length × prob))), half to even.
    public static func predictionCount(length: Int, maskedLMProb: Double, maxPredictions: Int) -> Int {
        min(maxPredictions, max(1, Int((Double(length) * maskedLMProb).rounded(.toNearestOrEven))))
    }

    /// The number of positions `mask` masks without whole words, for a sequence of `length` tokens of
    /// which `specialTokens` are `[CLS]`/`[SEP]`: the target, or every candidate when there are fewer.
    /// (With whole words the count also depends on the draw.)
    public func pieceMaskCount(length: Int, specialTokens: Int) -> Int {
        min(predictionCount(length: length), max(0, length - specialTokens))
    }

    /// Masks `tokens` in place; returns the masked positions (ascending) and their original ids.
    public func mask(_ tokens: inout [UInt32], rng: inout SeededGenerator) -> (positions: [Int], labels: [UInt32]) {
        var positions: [Int] = [], labels: [UInt32] = []
        mask(&tokens, positions: &positions, labels: &labels, rng: &rng)
        return (positions, labels)
    }

    /// Masks `tokens` in place and puts the masked positions (ascending) and their original ids in
    /// `positions` and `labels`, replacing what they held (their storage is reused).
    public func mask(_ tokens: inout [UInt32], positions: inout [Int], labels: inout [UInt32], rng: inout SeededGenerator) {
        if wholeWord {
            (positions, labels) = maskGroups(&tokens, rng: &rng)
        } else {
            maskPieces(&tokens, positions: &positions, labels: &labels, rng: &rng)
        }
    }

    /// `mask` over groups of positions (whole words, or single pieces): the general path, and the
    /// reference that `maskPieces` is tested against.
    func maskGroups(_ tokens: inout [UInt32], rng: inout SeededGenerator) -> (positions: [Int], labels: [UInt32]) {
        // Candidate groups as (start, count) runs of positions.
        var groups: [(start: Int32, count: Int32)] = []
        groups.reserveCapacity(tokens.count)
        for (i, t) in tokens.enumerated() {
            if t == clsId || t == sepId { continue }
            if wholeWord, let last = groups.last, Int(t) < vocabularySize, isContinuation[Int(t)],
               Int(last.start + last.count) == i {
                groups[groups.count - 1].count += 1
            } else {
                groups.append((Int32(i), 1))
            }
        }
        let target = predictionCount(length: tokens.count)
        var chosen: [(position: Int, label: UInt32)] = []
        chosen.reserveCapacity(target)
        // The groups in a uniformly random order, drawn lazily (one Fisher-Yates step per group
        // visited): the same distribution as shuffling them all first, with work proportional to the
        // groups looked at (usually `target`), not to the sequence length. Groups are disjoint, so a
        // position's label is read before anything overwrites it.
        var k = 0
        while k < groups.count && chosen.count < target {
            let j = rng.int(in: k...(groups.count - 1))
            if j != k { groups.swapAt(k, j) }
            let g = groups[k]
            k += 1
            if chosen.count + Int(g.count) > target { continue }
            let r = rng.nextDouble()
            let keep = r >= 0.8 && rng.nextDouble() < 0.5
            let random = r >= 0.8 && !keep
            for p in Int(g.start)..<Int(g.start + g.count) {
                chosen.append((p, tokens[p]))
                if r < 0.8 { tokens[p] = maskId }
                else if random { tokens[p] = UInt32(rng.int(in: 0...(vocabularySize - 1))) }
            }
        }
        chosen.sort { $0.position < $1.position }
        return (chosen.map(\.position), chosen.map(\.label))
    }
}

extension Masker {
    /// `mask` without whole words: every group is one position, so candidates are plain positions
    /// in scratch memory on the stack, and the output arrays' storage is reused. Draws the same
    /// random numbers as `maskGroups`, and gives the same result.
    func maskPieces(_ tokens: inout [UInt32], positions: inout [Int], labels: inout [UInt32], rng: inout SeededGenerator) {
        let target = predictionCount(length: tokens.count)
        let n = tokens.count
        positions.removeAll(keepingCapacity: true)
        labels.removeAll(keepingCapacity: true)
        positions.append(contentsOf: repeatElement(0, count: target))
        labels.append(contentsOf: repeatElement(0, count: target))
        let (maskId, clsId, sepId, top) = (maskId, clsId, sepId, vocabularySize - 1)
        let chosen = tokens.withUnsafeMutableBufferPointer { t in
            positions.withUnsafeMutableBufferPointer { pos in
                labels.withUnsafeMutableBufferPointer { lab in
                    withUnsafeTemporaryAllocation(of: Int32.self, capacity: n) { candidates in  // (n,) positions
                        var c = 0
                        for i in 0..<n where t[i] != clsId && t[i] != sepId {
                            candidates[c] = Int32(i)
                            c += 1
                        }
                        var chosen = 0
                        var k = 0
                        while k < c && chosen < target {
                            let j = rng.int(in: k...(c - 1))
                            candidates.swapAt(k, j)
                            let p = Int(candidates[k])
                            k += 1
                            let r = rng.nextDouble()
                            let keep = r >= 0.8 && rng.nextDouble() < 0.5
                            // Insertion into the ascending chosen positions (at most maxPredictions).
                            var slot = chosen
                            while slot > 0 && pos[slot - 1] > p {
                                pos[slot] = pos[slot - 1]
                                lab[slot] = lab[slot - 1]
                                slot -= 1
                            }
                            pos[slot] = p
                            lab[slot] = t[p]
                            chosen += 1
                            if r < 0.8 { t[p] = maskId } else if !keep { t[p] = UInt32(rng.int(in: 0...top)) }
                        }
                        return chosen
                    }
                }
            }
        }
        if chosen < target {
            positions.removeSubrange(chosen...)
            labels.removeSubrange(chosen...)
        }
    }
}

/// Builds next-sentence-prediction pairs from the tokenized store with google-research/bert's
/// `create_instances_from_document`: per document pass, a target length (`maxSeqLength - 3`, or with
/// probability `shortSeqProb` a uniform 2…max); sentences gathered until the target; a random split
/// point; with probability 0.5 B comes from a random other document starting at a random sentence, and
/// the unused segments are put back; the longer side is truncated from a random end until the pair fits.
/// One difference: when a single segment was gathered, google-research/bert always takes a random
/// next; we split that segment at a random token for a real next half of the time, so NSP stays 50/50.
public struct InstanceBuilder: Sendable {
    public let store: TokenizedStore
    public let parameters: ShardGenerationParameters
    public let clsId: UInt32
    public let sepId: UInt32
    /// Masking at build time (static), nil for dynamic masking.
    public let masker: Masker?

    public init(store: TokenizedStore, parameters: ShardGenerationParameters, clsId: UInt32, sepId: UInt32, masker: Masker?) {
        self.store = store; self.parameters = parameters; self.clsId = clsId; self.sepId = sepId; self.masker = masker
    }

    /// The generator for one (pass, document): independent of thread count and order.
    public func generator(pass: Int, document: Int) -> SeededGenerator {
        SeededGenerator(seed: parameters.seed, stream: [UInt64(pass), UInt64(document)])
    }

    /// Statistics of a build, for reports and tests.
    public struct Counts: Sendable {
        public var instances = 0
        public var randomNext = 0
        public var shortTarget = 0
        public var documentPasses = 0
        /// Pairs made from a chunk of one segment (B is then always random).
        public var singleSegment = 0
        public init() {}
    }

    /// Emits the instances of one document for one dupe pass, in order.
    public func instances(pass: Int, document: Int, counts: inout Counts, emit: (TrainingInstance) throws -> Void) rethrows {
        var rng = generator(pass: pass, document: document)
        let sentences = store.sentences(ofDocument: document)
        let maxTokens = parameters.maxSeqLength - 3
        var target = maxTokens
        counts.documentPasses += 1
        if rng.nextDouble() < parameters.shortSeqProb {
            target = rng.int(in: 2...max(2, maxTokens))
            counts.shortTarget += 1
        }
        var chunk: [Int] = []  // sentence indices
        var chunkLength = 0
        // Reused for every instance: when `emit` keeps no copy, no allocation after the first.
        var a: [UInt32] = [], b: [UInt32] = []
        var instance = TrainingInstance(tokens: [], segmentALength: 0, isRandomNext: false)
        var i = sentences.lowerBound
        while i < sentences.upperBound {
            chunk.append(i)
            chunkLength += store.tokens(ofSentence: i).count
            if i == sentences.upperBound - 1 || chunkLength >= target {
                var aEnd = 1
                if chunk.count >= 2 { aEnd = rng.int(in: 1...(chunk.count - 1)) }
                a.removeAll(keepingCapacity: true)
                b.removeAll(keepingCapacity: true)
                for s in chunk[0..<aEnd] { a.append(contentsOf: store.tokens(ofSentence: s)) }
                var isRandomNext = false
                // One segment: google-research/bert always takes a random next here, which tips the
                // NSP balance (55% random on corpus_en, where single sentences often fill the target).
                // We keep the 50/50 draw and, for a real next, split the segment at a random token:
                // A and B are then still consecutive text. See docs/design.md's table of differences.
                var splitSingle = false
                if chunk.count == 1 {
                    counts.singleSegment += 1
                    splitSingle = a.count >= 2 && rng.nextDouble() >= 0.5
                }
                if splitSingle {
                    let cut = rng.int(in: 1...(a.count - 1))
                    b.append(contentsOf: a[cut...])
                    a.removeSubrange(cut...)
                } else if chunk.count == 1 || rng.nextDouble() < 0.5 {
                    isRandomNext = true
                    let targetB = target - a.count
                    var other = document
                    for _ in 0..<10 {
                        other = rng.int(in: 0...(store.documentCount - 1))
                        if other != document { break }
                    }
                    let otherSentences = store.sentences(ofDocument: other)
                    let start = rng.int(in: otherSentences.lowerBound...(otherSentences.upperBound - 1))
                    for s in start..<otherSentences.upperBound {
                        b.append(contentsOf: store.tokens(ofSentence: s))
                        if b.count >= targetB { break }
                    }
                    // Put the unused segments back.
                    i -= chunk.count - aEnd
                } else {
                    for s in chunk[aEnd...] { b.append(contentsOf: store.tokens(ofSentence: s)) }
                }
                Self.truncatePair(&a, &b, maxTokens: maxTokens, rng: &rng)
                if !a.isEmpty && !b.isEmpty {
                    instance.tokens.removeAll(keepingCapacity: true)
                    instance.tokens.append(clsId)
                    instance.tokens += a
                    instance.tokens.append(sepId)
                    instance.tokens += b
                    instance.tokens.append(sepId)
                    instance.segmentALength = a.count + 2
                    instance.isRandomNext = isRandomNext
                    if let masker {
                        masker.mask(&instance.tokens, positions: &instance.maskedPositions, labels: &instance.maskedLabels, rng: &rng)
                    }
                    counts.instances += 1
                    if isRandomNext { counts.randomNext += 1 }
                    try emit(instance)
                }
                chunk.removeAll(keepingCapacity: true)
                chunkLength = 0
            }
            i += 1
        }
    }

    /// google-research/bert's `truncate_seq_pair`: remove one token at a time from the longer side
    /// (B on ties), from the front or the back with equal probability.
    public static func truncatePair(_ a: inout [UInt32], _ b: inout [UInt32], maxTokens: Int, rng: inout SeededGenerator) {
        var aStart = 0, aEnd = a.count, bStart = 0, bEnd = b.count
        while (aEnd - aStart) + (bEnd - bStart) > maxTokens {
            let front = rng.nextDouble() < 0.5
            if aEnd - aStart > bEnd - bStart {
                if front { aStart += 1 } else { aEnd -= 1 }
            } else {
                if front { bStart += 1 } else { bEnd -= 1 }
            }
        }
        // In place, keeping the arrays' storage.
        a.removeSubrange(aEnd...)
        a.removeSubrange(..<aStart)
        b.removeSubrange(bEnd...)
        b.removeSubrange(..<bStart)
    }
}
