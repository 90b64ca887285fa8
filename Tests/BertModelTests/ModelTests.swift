import BertModel
import Foundation
import Kernels
import ModelTestSupport
import TestSupport
import XCTest

final class ModelTests: XCTestCase {
    func makeModel(_ config: BertConfig = tinyConfig(), threads: Int = 2) throws -> BertForPreTraining {
        try BertForPreTraining(config: config, maxBatch: 4, maxSeqLength: 9, maxMaskedPositions: 6, threads: threads)
    }

    func testLayoutHasHuggingFaceNamesShapesAndFusedQKV() throws {
        let c = tinyConfig()
        let layout = ParameterLayout.bertForPreTraining(c)
        XCTAssertEqual(layout.entries.count, 5 + 16 * 2 + 9)
        XCTAssertEqual(layout.entry(named: "bert.embeddings.word_embeddings.weight")?.shape, [99, 32])
        XCTAssertEqual(layout.entry(named: "bert.embeddings.position_embeddings.weight")?.shape, [16, 32])
        XCTAssertEqual(layout.entry(named: "bert.embeddings.token_type_embeddings.weight")?.shape, [2, 32])
        XCTAssertEqual(layout.entry(named: "bert.encoder.layer.1.intermediate.dense.weight")?.shape, [37, 32])
        XCTAssertEqual(layout.entry(named: "bert.encoder.layer.1.output.dense.weight")?.shape, [32, 37])
        XCTAssertEqual(layout.entry(named: "cls.predictions.bias")?.shape, [99])
        XCTAssertEqual(layout.entry(named: "cls.seq_relationship.weight")?.shape, [2, 32])
        XCTAssertEqual(layout.entry(named: "cls.seq_relationship.bias")?.shape, [2])
        XCTAssertNil(layout.entry(named: "cls.predictions.decoder.weight")) // tied to the word embeddings
        for l in 0..<2 {
            let p = "bert.encoder.layer.\(l).attention.self."
            let q = layout.entry(named: p + "query.weight")!, k = layout.entry(named: p + "key.weight")!, v = layout.entry(named: p + "value.weight")!
            XCTAssertEqual([q.shape, k.shape, v.shape], [[32, 32], [32, 32], [32, 32]])
            XCTAssertEqual([k.offset, v.offset], [q.offset + 1024, q.offset + 2048])
            let qb = layout.entry(named: p + "query.bias")!, kb = layout.entry(named: p + "key.bias")!, vb = layout.entry(named: p + "value.bias")!
            XCTAssertEqual([kb.offset, vb.offset], [qb.offset + 32, qb.offset + 64])
        }
        // Back to back, no gaps; decay as google-research/bert's optimizer.
        var next = 0
        for e in layout.entries {
            XCTAssertEqual(e.offset, next)
            XCTAssertEqual(e.count, e.shape.reduce(1, *))
            next += e.count
            XCTAssertEqual(e.decay, !(e.name.contains("bias") || e.name.contains("LayerNorm")), e.name)
        }
        XCTAssertEqual(layout.count, next)
        XCTAssertTrue(layout.entry(named: "bert.embeddings.word_embeddings.weight")!.decay)
        XCTAssertFalse(layout.entry(named: "bert.encoder.layer.0.output.LayerNorm.weight")!.decay)
        // transformers' BertForPreTraining(bert-base-uncased) has 110,106,428 parameters.
        XCTAssertEqual(ParameterLayout.bertForPreTraining(BertConfig()).count, 110_106_428)
    }

    func testInitializationFollowsHuggingFace() throws {
        let config = BertConfig(vocabSize: 500, hiddenSize: 64, numHiddenLayers: 1, numAttentionHeads: 2, intermediateSize: 96)
        let a = try BertForPreTraining(config: config, maxBatch: 1, maxSeqLength: 8, maxMaskedPositions: 1, threads: 2)
        let b = try BertForPreTraining(config: config, maxBatch: 1, maxSeqLength: 8, maxMaskedPositions: 1, threads: 1)
        a.initialize(seed: 5)
        b.initialize(seed: 5)
        XCTAssertTrue(Numerics.bitIdentical(Array(a.parameters), Array(b.parameters)))
        b.initialize(seed: 6)
        XCTAssertFalse(Numerics.bitIdentical(Array(a.parameters), Array(b.parameters)))
        for e in a.layout.entries {
            let x = a.parameters[e.range].map(Double.init)
            if e.name.hasSuffix("LayerNorm.weight") {
                XCTAssertTrue(x.allSatisfy { $0 == 1 }, e.name)
            } else if e.name.hasSuffix("bias") {
                XCTAssertTrue(x.allSatisfy { $0 == 0 }, e.name)
            } else {
                let mean = x.reduce(0, +) / Double(x.count)
                let std = (x.map { ($0 - mean) * ($0 - mean) }.reduce(0, +) / Double(x.count)).squareRoot()
                XCTAssertEqual(mean, 0, accuracy: 4 * 0.02 / Double(x.count).squareRoot() + 1e-12, e.name)
                XCTAssertEqual(std, 0.02, accuracy: 0.02 * 6 / Double(x.count).squareRoot() + 0.002, e.name)
            }
        }
        // The padding id's word-embedding row is zero (nn.Embedding padding_idx = pad_token_id = 0).
        XCTAssertTrue(a.parameters[0..<64].allSatisfy { $0 == 0 })
        XCTAssertFalse(a.parameters[64..<128].allSatisfy { $0 == 0 })
    }

    /// Sinusoidal position initialisation: each row is Vaswani et al.'s sin/cos pair per frequency,
    /// computed here independently in Double, scaled to the initializer's standard deviation; every
    /// other tensor keeps its seeded initialisation.
    func testSinusoidalPositionsFollowTheFormula() throws {
        let config = BertConfig(vocabSize: 50, hiddenSize: 16, numHiddenLayers: 1, numAttentionHeads: 2, intermediateSize: 24,
                                maxPositionEmbeddings: 40)
        let model = try BertForPreTraining(config: config, maxBatch: 1, maxSeqLength: 8, maxMaskedPositions: 1, threads: 1)
        model.initialize(seed: 3)
        let before = Array(model.parameters)
        model.initializePositionsSinusoidally()
        let entry = try XCTUnwrap(model.layout.entry(named: "bert.embeddings.position_embeddings.weight"))
        let rows = Array(model.parameters[entry.range])
        XCTAssertEqual(rows.count, 40 * 16)
        for t in 0..<40 {
            for i in 0..<16 {
                let frequency = 1 / pow(10000.0, Double(i - i % 2) / 16)
                let expected = (i % 2 == 0 ? sin(Double(t) * frequency) : cos(Double(t) * frequency)) * 0.02 * 2.0.squareRoot()
                XCTAssertEqual(Double(rows[t * 16 + i]), expected, accuracy: 1e-7, "position \(t), dimension \(i)")
            }
        }
        let std = (rows.map { Double($0) * Double($0) }.reduce(0, +) / Double(rows.count)).squareRoot()
        XCTAssertEqual(std, 0.02, accuracy: 0.003, "the initializer's scale")
        var others = Array(model.parameters)
        others.replaceSubrange(entry.range, with: before[entry.range])
        XCTAssertTrue(Numerics.bitIdentical(others, before), "nothing else changes")
    }

    func testLossAtInitializationIsLogVPlusLog2() throws {
        let model = try makeModel()
        model.initialize(seed: 1)
        let out = try model.forward(tinyBatch(), dropoutSeed: nil)
        XCTAssertEqual(Double(out.mlmLoss), log(99.0), accuracy: 0.05)
        XCTAssertEqual(Double(out.nspLoss), log(2.0), accuracy: 0.02)
        XCTAssertEqual(out.loss, out.mlmLoss + out.nspLoss, accuracy: 1e-6)
        XCTAssertEqual(Double(out.loss), doubleLoss(model, tinyBatch()), accuracy: 1e-5)
        XCTAssertEqual([out.mlmCount, out.nspCount], [5, 3])
    }

    /// The MLM head computed on the masked rows only equals the head computed at every position (in
    /// Double, with the naive kernels) and then selected; the NSP logits equal the naive pooler + head.
    func testMaskedOnlyHeadEqualsFullHeadThenSelect() throws {
        let model = try makeModel()
        model.prunesLastLayer = false // keep the whole last_hidden_state
        randomizeParameters(model, seed: 3)
        let batch = tinyBatch()
        let out = try model.forward(batch, dropoutSeed: nil)
        let (b, t, h, v) = (3, 7, 32, 99)
        func param(_ name: String) -> [Double] { model.parameters[model.layout.entry(named: name)!.range].map(Double.init) }
        let seq = Array(model.sequenceOutput).map(Double.init)
        XCTAssertEqual(seq.count, b * t * h)
        // All B·T positions through transform → GELU → LayerNorm → tied decoder.
        let dense = Naive.linearForward(inp: seq, weight: param("cls.predictions.transform.dense.weight"),
                                        bias: param("cls.predictions.transform.dense.bias"), n: b * t, inFeatures: h, outFeatures: h)
        let ln = Naive.layerNormForward(inp: Naive.activationForward(.gelu, inp: dense), weight: param("cls.predictions.transform.LayerNorm.weight"),
                                        bias: param("cls.predictions.transform.LayerNorm.bias"), n: b * t, c: h, eps: 1e-12).out
        let full = Naive.linearForward(inp: ln, weight: param("bert.embeddings.word_embeddings.weight"), bias: param("cls.predictions.bias"),
                                       n: b * t, inFeatures: h, outFeatures: v)
        var selected: [Double] = []
        for p in batch.maskedPositions { selected += full[(Int(p) * v)..<((Int(p) + 1) * v)] }
        XCTAssertLessThan(Numerics.maxError(Array(model.mlmLogits), selected), 1e-5)
        // Transformers' loss: labels -100 except at masked positions, mean over the non-ignored ones.
        var labels = [Int32](repeating: -100, count: b * t)
        for (p, l) in zip(batch.maskedPositions, batch.maskedLabels) { labels[Int(p)] = l }
        var total = 0.0, count = 0
        for (i, l) in labels.enumerated() where l != -100 {
            let row = Array(full[(i * v)..<((i + 1) * v)])
            let m = row.max()!
            total += m + log(row.reduce(0) { $0 + exp($1 - m) }) - row[Int(l)]
            count += 1
        }
        XCTAssertEqual(Double(out.mlmLoss), total / Double(count), accuracy: 1e-5)
        // NSP: tanh(dense(h[:,0])) → seq_relationship.
        let cls = (0..<b).flatMap { seq[($0 * t * h)..<($0 * t * h + h)] }
        let pooled = Naive.tanhForward(inp: Naive.linearForward(inp: cls, weight: param("bert.pooler.dense.weight"), bias: param("bert.pooler.dense.bias"),
                                                               n: b, inFeatures: h, outFeatures: h))
        let nsp = Naive.linearForward(inp: pooled, weight: param("cls.seq_relationship.weight"), bias: param("cls.seq_relationship.bias"),
                                      n: b, inFeatures: h, outFeatures: 2)
        XCTAssertLessThan(Numerics.maxError(Array(model.nspLogits), nsp), 1e-5)
        XCTAssertLessThan(Numerics.maxError(Array(model.pooledOutput), pooled), 1e-5)
    }

    /// Pruning the last layer to the rows the heads read changes no loss, logit or gradient (beyond
    /// Float rounding), dropout included, also when a masked position is a [CLS] row.
    /// The data-parallel hook: `gradientStages` tile the gradient buffer (head, pooler, layers from the
    /// last, embeddings), `backward` reports them in that order, and a reported stage is final: its
    /// gradients at the report equal those after the backward, bit for bit, for both models, with and
    /// without the pruned last layer. (A stage reported before a later write to it fails this.)
    func testGradientStagesAreReportedInOrderOnceFinal() throws {
        let config = tinyConfig(hiddenDropout: 0.1, attentionDropout: 0.1)
        func check(_ shell: ModelShell, file: StaticString = #filePath, line: UInt = #line, backward: () throws -> Void) rethrows {
            let stages = shell.gradientStages
            XCTAssertEqual(stages.count, 2 + config.numHiddenLayers + 1, file: file, line: line)
            XCTAssertEqual(stages.last?.lowerBound, 0, file: file, line: line)
            XCTAssertEqual(stages.first?.upperBound, shell.layout.count, file: file, line: line)
            for k in 1..<stages.count { XCTAssertEqual(stages[k].upperBound, stages[k - 1].lowerBound, file: file, line: line) }
            var reported: [Int] = []
            var snapshots: [[Float]] = []
            let g = shell.gradients
            shell.onGradientStageReady = { k in
                reported.append(k)
                snapshots.append(Array(g[stages[k]]))
            }
            defer { shell.onGradientStageReady = nil }
            try backward()
            XCTAssertEqual(reported, Array(stages.indices), file: file, line: line)
            for (k, snapshot) in snapshots.enumerated() {
                XCTAssertTrue(Numerics.bitIdentical(snapshot, Array(g[stages[k]])), "stage \(k) changed after it was reported", file: file, line: line)
                XCTAssertTrue(snapshot.contains { $0 != 0 }, "stage \(k) has gradients", file: file, line: line)
            }
        }
        for prune in [false, true] {
            let model = try makeModel(config)
            model.prunesLastLayer = prune
            randomizeParameters(model, seed: 8)
            model.zeroGradients()
            _ = try model.forward(tinyBatch(), dropoutSeed: 31)
            check(model.shell) { model.backward() }
            let classifier = try BertForSequenceClassification(config: config, numLabels: 3, maxBatch: 4, maxSeqLength: 9, threads: 2)
            classifier.prunesLastLayer = prune
            randomizeParameters(classifier.layout, classifier.parameters, seed: 8)
            classifier.zeroGradients()
            let p = tinyBatch()
            _ = try classifier.forward(ClassificationBatch(batchSize: 3, seqLength: 7, inputIds: p.inputIds, tokenTypeIds: p.tokenTypeIds,
                                                           attentionMask: p.attentionMask, labels: [2, -1, 0]), dropoutSeed: 31)
            check(classifier.shell) { classifier.backward() }
        }
    }

    func testPrunedLastLayerMatchesFullComputation() throws {
        let config = tinyConfig(hiddenDropout: 0.1, attentionDropout: 0.1)
        var batch = tinyBatch()
        for variant in 0..<2 {
            if variant == 1 { batch.maskedPositions[0] = 7; batch.maskedLabels[0] = 2 } // row (1, 0): [CLS]
            var results: [(PretrainingOutput, [Float], [Float], [Float])] = []
            for prune in [false, true] {
                let model = try makeModel(config)
                model.prunesLastLayer = prune
                randomizeParameters(model, seed: 8)
                model.zeroGradients()
                let out = try model.forward(batch, dropoutSeed: 31)
                model.backward()
                results.append((out, Array(model.mlmLogits), Array(model.nspLogits), Array(model.gradients)))
                XCTAssertEqual(model.sequenceOutput.count, prune ? 0 : 3 * 7 * 32)
            }
            let (full, pruned) = (results[0], results[1])
            XCTAssertEqual(Double(full.0.loss), Double(pruned.0.loss), accuracy: 1e-6)
            XCTAssertEqual(full.0.mlmCorrect, pruned.0.mlmCorrect)
            XCTAssertLessThan(Numerics.maxError(pruned.1, full.1.double), 1e-6)
            XCTAssertLessThan(Numerics.maxError(pruned.2, full.2.double), 1e-6)
            XCTAssertLessThan(Numerics.maxError(pruned.3, full.3.double), 1e-6)
            XCTAssertFalse(Numerics.bitIdentical(pruned.3, [Float](repeating: 0, count: pruned.3.count)))
        }
    }

    func testPaddedPositionsDoNotMatter() throws {
        let model = try makeModel()
        randomizeParameters(model, seed: 4)
        let batch = tinyBatch()
        model.zeroGradients()
        let a = try model.forward(batch, dropoutSeed: nil)
        model.backward()
        let gradsA = Array(model.gradients)
        var changed = batch
        var rng = SeededRandom(seed: 9)
        for i in changed.attentionMask.indices where changed.attentionMask[i] == 0 {
            changed.inputIds[i] = Int32.random(in: 1..<99, using: &rng)
            changed.tokenTypeIds[i] = 1
        }
        XCTAssertNotEqual(changed.inputIds, batch.inputIds)
        model.zeroGradients()
        let c = try model.forward(changed, dropoutSeed: nil)
        model.backward()
        XCTAssertEqual(a, c)
        XCTAssertEqual(Array(model.gradients), gradsA)
        // Control: the same change at a real (unmasked, non-[CLS]) position changes the loss.
        var real = batch
        real.inputIds[2] = 77
        XCTAssertNotEqual(try model.forward(real, dropoutSeed: nil).loss, a.loss)
    }

    func testResultsDoNotDependOnThreadCount() throws {
        let config = tinyConfig(hiddenDropout: 0.1, attentionDropout: 0.1)
        var results: [(PretrainingOutput, [Float], [Float])] = []
        for threads in [1, 3] {
            let model = try makeModel(config, threads: threads)
            randomizeParameters(model, seed: 5)
            model.zeroGradients()
            let out = try model.forward(tinyBatch(), dropoutSeed: 77)
            model.backward()
            results.append((out, Array(model.mlmLogits), Array(model.gradients)))
        }
        XCTAssertEqual(results[0].0, results[1].0)
        XCTAssertTrue(Numerics.bitIdentical(results[0].1, results[1].1))
        XCTAssertTrue(Numerics.bitIdentical(results[0].2, results[1].2))
    }

    func testDropoutIsSeededAndOffInEvalMode() throws {
        let model = try makeModel(tinyConfig(hiddenDropout: 0.1, attentionDropout: 0.1))
        randomizeParameters(model, seed: 6)
        let batch = tinyBatch()
        let eval = try model.forward(batch, dropoutSeed: nil)
        let s1 = try model.forward(batch, dropoutSeed: 1), s1again = try model.forward(batch, dropoutSeed: 1)
        let s2 = try model.forward(batch, dropoutSeed: 2)
        XCTAssertEqual(s1, s1again)
        XCTAssertNotEqual(s1.loss, eval.loss)
        XCTAssertNotEqual(s1.loss, s2.loss)
        // With probability 0 the seed changes nothing.
        let plain = try makeModel()
        randomizeParameters(plain, seed: 6)
        XCTAssertEqual(try plain.forward(batch, dropoutSeed: 1), try plain.forward(batch, dropoutSeed: nil))
        XCTAssertEqual(try plain.forward(batch, dropoutSeed: nil), eval)
    }

    func testBackwardAccumulates() throws {
        let model = try makeModel()
        randomizeParameters(model, seed: 7)
        model.zeroGradients()
        _ = try model.forward(tinyBatch(), dropoutSeed: nil)
        model.backward()
        let once = Array(model.gradients)
        model.backward()
        XCTAssertLessThan(Numerics.maxError(Array(model.gradients), once.map { 2 * Double($0) }), 1e-6)
        model.zeroGradients()
        XCTAssertTrue(model.gradients.allSatisfy { $0 == 0 })
    }

    func testBadBatchesThrowTypedErrors() throws {
        let model = try makeModel()
        model.initialize(seed: 1)
        let good = tinyBatch()
        func expect(_ error: ModelError, _ edit: (inout PretrainingBatch) -> Void, line: UInt = #line) {
            var b = good
            edit(&b)
            Expect.error(error, line: line) { try model.forward(b, dropoutSeed: nil) }
        }
        expect(.batchTooLarge(batchSize: 5, max: 4)) { $0.batchSize = 5 }
        expect(.sequenceTooLong(seqLength: 10, max: 9)) { $0.seqLength = 10 }
        expect(.wrongCount(field: "inputIds", expected: 21, actual: 20)) { $0.inputIds.removeLast() }
        expect(.outOfRange(field: "inputIds", index: 3, value: 99, range: 0..<99)) { $0.inputIds[3] = 99 }
        expect(.outOfRange(field: "tokenTypeIds", index: 0, value: 2, range: 0..<2)) { $0.tokenTypeIds[0] = 2 }
        expect(.outOfRange(field: "maskedPositions", index: 0, value: 21, range: 0..<21)) { $0.maskedPositions[0] = 21 }
        expect(.outOfRange(field: "nextSentenceLabels", index: 2, value: -1, range: 0..<2)) { $0.nextSentenceLabels[2] = -1 }
        expect(.duplicateMaskedPosition(position: 9)) { $0.maskedPositions[1] = 9 }
        expect(.noMaskedPositions) { $0.maskedPositions = []; $0.maskedLabels = [] }
        expect(.tooManyMaskedPositions(count: 7, max: 6)) { $0.maskedPositions = [0, 1, 2, 3, 4, 5, 6]; $0.maskedLabels = [1, 1, 1, 1, 1, 1, 1] }
        XCTAssertThrowsError(try BertForPreTraining(config: tinyConfig(), maxBatch: 1, maxSeqLength: 17, maxMaskedPositions: 1, threads: 1))
        // A good batch still works after the failures.
        XCTAssertNoThrow(try model.forward(good, dropoutSeed: nil))
    }
}
