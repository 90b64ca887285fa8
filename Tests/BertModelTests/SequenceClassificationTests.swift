import BertModel
import Foundation
import Kernels
import ModelTestSupport
import TestSupport
import XCTest

/// BertForSequenceClassification: gradients against finite differences, the shared encoder against
/// BertForPreTraining's, padding, unlabelled rows, threads, dropout, pruning and batch errors.
final class SequenceClassificationTests: XCTestCase {
    func makeModel(_ config: BertConfig = tinyConfig(), threads: Int = 2) throws -> BertForSequenceClassification {
        try BertForSequenceClassification(config: config, numLabels: 3, maxBatch: 4, maxSeqLength: 9, threads: threads)
    }

    /// The sequences of `tinyBatch()`; labels 2, -1 (no label), 0.
    func batch(labels: [Int32] = [2, -1, 0]) -> ClassificationBatch {
        let p = tinyBatch()
        return ClassificationBatch(batchSize: 3, seqLength: 7, inputIds: p.inputIds, tokenTypeIds: p.tokenTypeIds,
                                   attentionMask: p.attentionMask, labels: labels)
    }

    /// Mean cross-entropy over the labelled rows, in Double from the model's logits.
    func doubleLoss(_ model: BertForSequenceClassification, _ batch: ClassificationBatch) -> Double {
        let l = model.numLabels
        var total = 0.0, count = 0
        for (r, label) in batch.labels.enumerated() where label >= 0 {
            let row = (0..<l).map { Double(model.logits[r * l + $0]) }
            let m = row.max()!
            total += m + log(row.reduce(0) { $0 + exp($1 - m) }) - row[Int(label)]
            count += 1
        }
        return count == 0 ? 0 : total / Double(count)
    }

    func run(_ model: BertForSequenceClassification, _ batch: ClassificationBatch, dropoutSeed: UInt64? = nil) throws
        -> (out: ClassificationOutput, logits: [Float], gradients: [Float]) {
        model.zeroGradients()
        let out = try model.forward(batch, dropoutSeed: dropoutSeed)
        if out.count > 0 { model.backward() }
        return (out, Array(model.logits), Array(model.gradients))
    }

    func testLayoutHasHuggingFaceNamesAndTheClassifier() throws {
        let layout = ParameterLayout.bertForSequenceClassification(tinyConfig(), numLabels: 3)
        let pretraining = ParameterLayout.bertForPreTraining(tinyConfig())
        let bert = pretraining.entries.filter { $0.name.hasPrefix("bert.") }
        XCTAssertEqual(Array(layout.entries.prefix(bert.count)), bert) // same names, shapes, offsets, decay
        XCTAssertEqual(layout.entries.dropFirst(bert.count).map(\.name), ["classifier.weight", "classifier.bias"])
        XCTAssertEqual(layout.entry(named: "classifier.weight")?.shape, [3, 32])
        XCTAssertEqual(layout.entry(named: "classifier.bias")?.shape, [3])
        XCTAssertEqual(layout.entry(named: "classifier.weight")?.decay, true)
        XCTAssertEqual(layout.entry(named: "classifier.bias")?.decay, false)
        XCTAssertFalse(layout.entries.contains { $0.name.hasPrefix("cls.") })
        XCTAssertEqual(layout.count, layout.entries.last!.offset + 3)
        // transformers' BertForSequenceClassification(bert-base-uncased, num_labels=2): 109,483,778 parameters.
        XCTAssertEqual(ParameterLayout.bertForSequenceClassification(BertConfig(), numLabels: 2).count, 109_483_778)
    }

    // MARK: Gradients

    /// As `GradientTests`: per tensor its two largest analytic gradients plus random entries, against a
    /// fourth-order central difference (ε = 2e-2) of the Double loss; max |fd − analytic| over the
    /// picks, divided by the tensor's largest |analytic|, must be below 2e-3. The key biases have no
    /// gradient (softmax ignores them): both values must be ~0.
    func checkGradients(_ model: BertForSequenceClassification, _ batch: ClassificationBatch, dropoutSeed: UInt64?,
                        randomPerTensor: Int, seed: UInt64) throws -> Double {
        _ = try run(model, batch, dropoutSeed: dropoutSeed)
        var rng = SeededRandom(seed: seed)
        var worstOverall = 0.0
        for e in model.layout.entries {
            let g = (0..<e.count).map { Double(model.gradients[e.offset + $0]) }
            let order = g.indices.sorted { abs(g[$0]) > abs(g[$1]) }
            var picks = Array(order.prefix(2))
            for _ in 0..<randomPerTensor { picks.append(Int.random(in: 0..<e.count, using: &rng)) }
            let scale = abs(g[order[0]])
            var worst = 0.0, largestNumeric = 0.0
            for k in picks {
                let j = e.offset + k, saved = model.parameters[j]
                let fd = try Numerics.derivative(step: 2e-2) { delta in
                    model.parameters[j] = saved + delta
                    _ = try model.forward(batch, dropoutSeed: dropoutSeed)
                    return doubleLoss(model, batch)
                }
                model.parameters[j] = saved
                worst = max(worst, abs(fd - g[k]) / max(scale, 1e-12))
                largestNumeric = max(largestNumeric, abs(fd))
            }
            if e.name.hasSuffix("attention.self.key.bias") {
                XCTAssertLessThan(scale, 1e-6, e.name)
                XCTAssertLessThan(largestNumeric, 1e-4, e.name)
            } else {
                XCTAssertLessThan(worst, 2e-3, e.name)
                XCTAssertGreaterThan(scale, 1e-3, "\(e.name): gradient too small to test")
                worstOverall = max(worstOverall, worst)
            }
        }
        return worstOverall
    }

    func testEveryTensorMatchesFiniteDifferences() throws {
        let model = try makeModel()
        randomizeParameters(model.layout, model.parameters, seed: 201)
        let worst = try checkGradients(model, batch(), dropoutSeed: nil, randomPerTensor: 3, seed: 17)
        print(String(format: "classifier gradients vs finite differences: worst %.3g (relative to each tensor's max)", worst))
    }

    func testGradientsWithDropoutAndTanhGelu() throws {
        var config = tinyConfig(hiddenDropout: 0.1, attentionDropout: 0.1, act: "gelu_new")
        config.classifierDropout = 0.3
        let model = try makeModel(config)
        randomizeParameters(model.layout, model.parameters, seed: 202)
        let worst = try checkGradients(model, batch(), dropoutSeed: 99, randomPerTensor: 1, seed: 18)
        print(String(format: "classifier gradients with dropout vs finite differences: worst %.3g", worst))
    }

    // MARK: The shared encoder

    /// With the same "bert.*" tensors, the encoder output and the pooled output equal
    /// BertForPreTraining's bit for bit (eval and with dropout: the sites are numbered alike).
    func testEncoderEqualsBertForPreTrainingWithTheSameWeights() throws {
        let config = tinyConfig(hiddenDropout: 0.1, attentionDropout: 0.1)
        let pretraining = try BertForPreTraining(config: config, maxBatch: 4, maxSeqLength: 9, maxMaskedPositions: 6, threads: 2)
        let classifier = try makeModel(config)
        randomizeParameters(pretraining, seed: 203)
        randomizeParameters(classifier.layout, classifier.parameters, seed: 204)
        var copied = 0
        for e in classifier.layout.entries {
            guard let p = pretraining.layout.entry(named: e.name) else { continue }
            for k in 0..<e.count { classifier.parameters[e.offset + k] = pretraining.parameters[p.offset + k] }
            copied += 1
        }
        XCTAssertEqual(copied, classifier.layout.entries.count - 2)
        for prune in [false, true] {
            pretraining.prunesLastLayer = prune
            classifier.prunesLastLayer = prune
            for seed in [nil, 5] as [UInt64?] {
                _ = try pretraining.forward(tinyBatch(), dropoutSeed: seed)
                _ = try classifier.forward(batch(), dropoutSeed: seed)
                XCTAssertEqual(classifier.sequenceOutput.count, prune ? 0 : 3 * 7 * 32)
                XCTAssertTrue(Numerics.bitIdentical(Array(classifier.sequenceOutput), Array(pretraining.sequenceOutput)))
                XCTAssertEqual(classifier.pooledOutput.count, 3 * 32)
                if prune {
                    // The last layers ran on other rows (all [CLS] vs [CLS] and masked): Float rounding only.
                    XCTAssertLessThan(Numerics.maxError(Array(classifier.pooledOutput), Array(pretraining.pooledOutput).double), 1e-6)
                } else {
                    XCTAssertTrue(Numerics.bitIdentical(Array(classifier.pooledOutput), Array(pretraining.pooledOutput)))
                }
            }
        }
        // Hugging Face init: the shared tensors get the same values for the same seed.
        pretraining.initialize(seed: 7)
        classifier.initialize(seed: 7)
        for e in classifier.layout.entries where e.name.hasPrefix("bert.") {
            let p = pretraining.layout.entry(named: e.name)!
            XCTAssertTrue(Numerics.bitIdentical(Array(classifier.parameters[e.range]), Array(pretraining.parameters[p.range])), e.name)
        }
        let w = classifier.parameters[classifier.layout.entry(named: "classifier.weight")!.range].map(Double.init)
        XCTAssertEqual((w.map { $0 * $0 }.reduce(0, +) / Double(w.count)).squareRoot(), 0.02, accuracy: 0.006)
        XCTAssertTrue(classifier.parameters[classifier.layout.entry(named: "classifier.bias")!.range].allSatisfy { $0 == 0 })
    }

    /// logits = classifier(pooled) in eval mode; the loss and accuracy are over the labelled rows.
    func testLogitsLossAndAccuracyMatchANaiveHead() throws {
        let model = try makeModel()
        randomizeParameters(model.layout, model.parameters, seed: 205)
        let b = batch(labels: [2, -1, 1])
        let out = try model.forward(b, dropoutSeed: nil)
        func param(_ name: String) -> [Double] { model.parameters[model.layout.entry(named: name)!.range].map(Double.init) }
        let logits = Naive.linearForward(inp: Array(model.pooledOutput).double, weight: param("classifier.weight"),
                                         bias: param("classifier.bias"), n: 3, inFeatures: 32, outFeatures: 3)
        XCTAssertEqual(model.logits.count, 9)
        XCTAssertLessThan(Numerics.maxError(Array(model.logits), logits), 1e-6)
        XCTAssertEqual(Double(out.loss), doubleLoss(model, b), accuracy: 1e-6)
        XCTAssertEqual(out.count, 2)
        let argmax = (0..<3).map { r in (0..<3).max { logits[r * 3 + $0] < logits[r * 3 + $1] }! }
        XCTAssertEqual(out.correct, [0, 2].filter { argmax[$0] == Int(b.labels[$0]) }.count)
        // At Hugging Face's initialisation the loss is about log 3.
        model.initialize(seed: 1)
        XCTAssertEqual(Double(try model.forward(b, dropoutSeed: nil).loss), log(3.0), accuracy: 0.05)
    }

    // MARK: Rows

    func testPaddedPositionsDoNotMatter() throws {
        let model = try makeModel()
        randomizeParameters(model.layout, model.parameters, seed: 206)
        let a = try run(model, batch(labels: [2, 1, 0]))
        var changed = batch(labels: [2, 1, 0])
        var rng = SeededRandom(seed: 9)
        for i in changed.attentionMask.indices where changed.attentionMask[i] == 0 {
            changed.inputIds[i] = Int32.random(in: 1..<99, using: &rng)
            changed.tokenTypeIds[i] = 1
        }
        let c = try run(model, changed)
        XCTAssertEqual(a.out, c.out)
        XCTAssertTrue(Numerics.bitIdentical(a.logits, c.logits))
        XCTAssertTrue(Numerics.bitIdentical(a.gradients, c.gradients))
        // Control: a real token changes the logits of its row only.
        var real = batch(labels: [2, 1, 0])
        real.inputIds[9] = 77
        let r = try run(model, real)
        XCTAssertNotEqual(Array(r.logits[3..<6]), Array(a.logits[3..<6]))
        XCTAssertTrue(Numerics.bitIdentical(Array(r.logits[0..<3]) + Array(r.logits[6..<9]), Array(a.logits[0..<3]) + Array(a.logits[6..<9])))
    }

    /// A row labelled -1 gets logits but adds nothing to the loss, the count or the gradients.
    func testUnlabelledRowsGiveNoLoss() throws {
        let model = try makeModel()
        randomizeParameters(model.layout, model.parameters, seed: 207)
        let a = try run(model, batch())
        XCTAssertEqual(a.out.count, 2)
        XCTAssertEqual(Double(a.out.loss), doubleLoss(model, batch()), accuracy: 1e-6)
        // Another sequence in the unlabelled row: its logits change, nothing else does.
        var other = batch()
        other.inputIds[8] = 60
        other.inputIds[10] = 61
        let o = try run(model, other)
        XCTAssertNotEqual(Array(o.logits[3..<6]), Array(a.logits[3..<6]))
        XCTAssertEqual(o.out, a.out)
        XCTAssertTrue(Numerics.bitIdentical(o.gradients, a.gradients))
        // The same as the batch without that row (up to Float summation order).
        let p = tinyBatch()
        let without = ClassificationBatch(batchSize: 2, seqLength: 7, inputIds: Array(p.inputIds[0..<7] + p.inputIds[14..<21]),
                                          tokenTypeIds: Array(p.tokenTypeIds[0..<7] + p.tokenTypeIds[14..<21]),
                                          attentionMask: Array(p.attentionMask[0..<7] + p.attentionMask[14..<21]), labels: [2, 0])
        let w = try run(model, without)
        XCTAssertEqual(w.out.count, 2)
        XCTAssertEqual(Double(w.out.loss), Double(a.out.loss), accuracy: 1e-6)
        XCTAssertLessThan(Numerics.maxError(w.gradients, a.gradients.double), 1e-6)
        // No labelled row: logits, loss 0, and backward adds nothing.
        let none = try run(model, batch(labels: [-1, -1, -1]))
        XCTAssertEqual(none.out, ClassificationOutput(loss: 0, correct: 0, count: 0))
        XCTAssertTrue(Numerics.bitIdentical(none.logits, a.logits))
        model.backward()
        XCTAssertTrue(model.gradients.allSatisfy { $0 == 0 })
    }

    // MARK: Determinism, dropout, pruning

    func testResultsDoNotDependOnThreadCount() throws {
        var config = tinyConfig(hiddenDropout: 0.1, attentionDropout: 0.1)
        config.classifierDropout = 0.2
        var results: [(out: ClassificationOutput, logits: [Float], gradients: [Float])] = []
        for threads in [1, 3] {
            let model = try makeModel(config, threads: threads)
            randomizeParameters(model.layout, model.parameters, seed: 208)
            results.append(try run(model, batch(), dropoutSeed: 77))
        }
        XCTAssertEqual(results[0].out, results[1].out)
        XCTAssertTrue(Numerics.bitIdentical(results[0].logits, results[1].logits))
        XCTAssertTrue(Numerics.bitIdentical(results[0].gradients, results[1].gradients))
    }

    /// The classifier's dropout is classifier_dropout, else hidden_dropout_prob; it has its own site,
    /// draws from the seed, and is off in eval mode.
    func testClassifierDropout() throws {
        var config = tinyConfig()
        config.classifierDropout = 0.5
        let model = try makeModel(config)
        randomizeParameters(model.layout, model.parameters, seed: 209)
        let eval = try run(model, batch()), pooled = Array(model.pooledOutput)
        let s1 = try run(model, batch(), dropoutSeed: 1)
        XCTAssertTrue(Numerics.bitIdentical(Array(model.pooledOutput), pooled)) // the encoder has no dropout here
        XCTAssertFalse(Numerics.bitIdentical(s1.logits, eval.logits))
        XCTAssertTrue(Numerics.bitIdentical(try run(model, batch(), dropoutSeed: 1).logits, s1.logits))
        XCTAssertFalse(Numerics.bitIdentical(try run(model, batch(), dropoutSeed: 2).logits, s1.logits))
        // classifier_dropout 0 overrides hidden dropout for the head only.
        var zero = tinyConfig(hiddenDropout: 0.1)
        zero.classifierDropout = 0
        let model0 = try makeModel(zero)
        randomizeParameters(model0.layout, model0.parameters, seed: 209)
        _ = try model0.forward(batch(), dropoutSeed: 3)
        let params = model0.layout.entry(named: "classifier.weight")!
        let head = Naive.linearForward(inp: Array(model0.pooledOutput).double, weight: model0.parameters[params.range].map(Double.init),
                                       bias: model0.parameters[model0.layout.entry(named: "classifier.bias")!.range].map(Double.init),
                                       n: 3, inFeatures: 32, outFeatures: 3)
        XCTAssertLessThan(Numerics.maxError(Array(model0.logits), head), 1e-6)
        // No dropout anywhere: the seed changes nothing.
        let plain = try makeModel()
        randomizeParameters(plain.layout, plain.parameters, seed: 209)
        XCTAssertEqual(try run(plain, batch(), dropoutSeed: 4).logits, try run(plain, batch()).logits)
    }

    /// Pruning the last layer to the [CLS] rows changes no logit, loss or gradient beyond Float rounding.
    func testPrunedLastLayerMatchesFullComputation() throws {
        var config = tinyConfig(hiddenDropout: 0.1, attentionDropout: 0.1)
        config.classifierDropout = 0.2
        var results: [(out: ClassificationOutput, logits: [Float], gradients: [Float])] = []
        for prune in [false, true] {
            let model = try makeModel(config)
            model.prunesLastLayer = prune
            randomizeParameters(model.layout, model.parameters, seed: 210)
            results.append(try run(model, batch(), dropoutSeed: 31))
        }
        XCTAssertEqual(Double(results[0].out.loss), Double(results[1].out.loss), accuracy: 1e-6)
        XCTAssertLessThan(Numerics.maxError(results[1].logits, results[0].logits.double), 1e-6)
        XCTAssertLessThan(Numerics.maxError(results[1].gradients, results[0].gradients.double), 1e-6)
    }

    // MARK: Errors

    func testBadBatchesThrowTypedErrors() throws {
        let model = try makeModel()
        model.initialize(seed: 1)
        let good = batch()
        func expect(_ error: ModelError, _ edit: (inout ClassificationBatch) -> Void, line: UInt = #line) {
            var b = good
            edit(&b)
            Expect.error(error, line: line) { try model.forward(b, dropoutSeed: nil) }
        }
        expect(.batchTooLarge(batchSize: 5, max: 4)) { $0.batchSize = 5 }
        expect(.sequenceTooLong(seqLength: 10, max: 9)) { $0.seqLength = 10 }
        expect(.wrongCount(field: "attentionMask", expected: 21, actual: 20)) { $0.attentionMask.removeLast() }
        expect(.wrongCount(field: "labels", expected: 3, actual: 2)) { $0.labels.removeLast() }
        expect(.outOfRange(field: "inputIds", index: 3, value: 99, range: 0..<99)) { $0.inputIds[3] = 99 }
        expect(.outOfRange(field: "labels", index: 2, value: 3, range: -1..<3)) { $0.labels[2] = 3 }
        expect(.outOfRange(field: "labels", index: 0, value: -2, range: -1..<3)) { $0.labels[0] = -2 }
        XCTAssertThrowsError(try BertForSequenceClassification(config: tinyConfig(), numLabels: 0, maxBatch: 1, maxSeqLength: 4, threads: 1))
        var badDropout = tinyConfig()
        badDropout.classifierDropout = 1
        XCTAssertThrowsError(try BertForSequenceClassification(config: badDropout, numLabels: 2, maxBatch: 1, maxSeqLength: 4, threads: 1))
        XCTAssertThrowsError(try BertForSequenceClassification(config: tinyConfig(), numLabels: 2, maxBatch: 1, maxSeqLength: 17, threads: 1))
        XCTAssertNoThrow(try model.forward(good, dropoutSeed: nil))
    }
}
