import BertModel
import Foundation
import Kernels
import ModelTestSupport
import TestSupport
import XCTest
import Checkpoints

/// ELECTRA's two models: gradients of every tensor (the discriminator head, the embedding projection,
/// the generator head on the shared embeddings) against finite differences, as `GradientTests` does for
/// BERT; the pruned generator against the full one; the sampling.
final class ElectraTests: XCTestCase {
    let eps: Float = 2e-2
    let tolerance = 2e-3

    /// The tiny discriminator with a generator at half its width (so the projection E → G exists).
    func tinyElectra(dropout: Double = 0, weight: Float = 5) throws -> ElectraForPreTraining {
        let config = tinyConfig(hiddenDropout: dropout, attentionDropout: dropout)
        let generator = try ElectraForPreTraining.generatorConfig(discriminator: config, size: 0.5)
        return try ElectraForPreTraining(config: config, generator: generator, discriminatorWeight: weight, maxBatch: 3, maxSeqLength: 7,
                                         maxMaskedPositions: 5, threads: 2)
    }

    /// Replacements for `tinyBatch()`'s five masked positions: two equal to the original (not replaced).
    let replacements: [Int32] = [57, 13, 7, 5, 77]

    /// The loss of the last forward pass in Double from the logits: mean MLM cross-entropy of the
    /// generator + λ × mean binary cross-entropy of the discriminator over the real tokens.
    func doubleLoss(_ model: ElectraForPreTraining, _ batch: PretrainingBatch) -> Double {
        let v = model.config.vocabSize
        var mlm = 0.0
        for (k, target) in batch.maskedLabels.enumerated() {
            let row = (0..<v).map { Double(model.generatorLogits[k * v + $0]) }
            let m = row.max()!
            mlm += m + log(row.reduce(0) { $0 + exp($1 - m) }) - row[Int(target)]
        }
        mlm /= Double(batch.maskedLabels.count)
        var replaced = [Double](repeating: 0, count: batch.inputIds.count)
        for (k, p) in batch.maskedPositions.enumerated() where replacements[k] != batch.maskedLabels[k] { replaced[Int(p)] = 1 }
        var bce = 0.0, active = 0
        for i in replaced.indices where batch.attentionMask[i] != 0 {
            let x = Double(model.discriminatorLogits[i])
            bce += max(x, 0) - x * replaced[i] + log1p(exp(-abs(x)))
            active += 1
        }
        return mlm + Double(model.discriminatorWeight) * bce / Double(active)
    }

    /// max over sampled entries of |fd − analytic| / (the tensor's largest |analytic|), per tensor.
    func check(_ model: ElectraForPreTraining, dropoutSeed: UInt64?) throws -> (errors: [String: Double], scale: [String: Double]) {
        let batch = tinyBatch()
        model.zeroGradients()
        _ = try model.forward(batch, dropoutSeed: dropoutSeed, sampleSeed: 0, replacements: replacements)
        model.backward()
        var rng = SeededRandom(seed: 3)
        var errors: [String: Double] = [:], scales: [String: Double] = [:]
        for e in model.layout.entries {
            let g = (0..<e.count).map { Double(model.gradients[e.offset + $0]) }
            let order = g.indices.sorted { abs(g[$0]) > abs(g[$1]) }
            let picks = Array(order.prefix(2)) + (0..<3).map { _ in Int.random(in: 0..<e.count, using: &rng) }
            let scale = max(abs(g[order[0]]), 1e-12)
            var worst = 0.0
            for k in picks {
                let j = e.offset + k
                let saved = model.parameters[j]
                func loss(_ delta: Float) throws -> Double {
                    model.parameters[j] = saved + delta
                    _ = try model.forward(batch, dropoutSeed: dropoutSeed, sampleSeed: 0, replacements: replacements)
                    return doubleLoss(model, batch)
                }
                let fd = (-(try loss(2 * eps)) + 8 * (try loss(eps)) - 8 * (try loss(-eps)) + (try loss(-2 * eps))) / (12 * Double(eps))
                model.parameters[j] = saved
                worst = max(worst, abs(fd - g[k]) / scale)
            }
            errors[e.name] = worst
            scales[e.name] = scale
        }
        return (errors, scales)
    }

    func testEveryTensorMatchesFiniteDifferences() throws {
        let model = try tinyElectra()
        XCTAssertNotNil(model.layout.entry(named: "generator.electra.embeddings_project.weight"))
        randomizeParameters(model.layout, model.parameters, seed: 201)
        let (errors, scales) = try check(model, dropoutSeed: nil)
        XCTAssertEqual(errors.count, model.layout.entries.count)
        for e in model.layout.entries where !e.name.hasSuffix("attention.self.key.bias") {
            XCTAssertLessThan(errors[e.name]!, tolerance, e.name)
            XCTAssertGreaterThan(scales[e.name]!, 1e-3, "\(e.name): gradient too small to test")
        }
    }

    func testWithDropout() throws {
        let model = try tinyElectra(dropout: 0.1)
        randomizeParameters(model.layout, model.parameters, seed: 202)
        let (errors, _) = try check(model, dropoutSeed: 99)
        for e in model.layout.entries where !e.name.hasSuffix("attention.self.key.bias") {
            XCTAssertLessThan(errors[e.name]!, tolerance, e.name)
        }
    }

    /// Pruning the generator's last layer to the masked rows changes neither losses nor gradients.
    func testPrunedGeneratorEqualsFull() throws {
        let model = try tinyElectra()
        randomizeParameters(model.layout, model.parameters, seed: 203)
        var results: [(PretrainingOutput, [Float])] = []
        for prune in [true, false] {
            model.prunesGeneratorLastLayer = prune
            model.zeroGradients()
            let out = try model.forward(tinyBatch(), dropoutSeed: nil, sampleSeed: 5)
            model.backward()
            results.append((out, Array(model.gradients)))
        }
        XCTAssertEqual(results[0].0.mlmLoss, results[1].0.mlmLoss, accuracy: 1e-5)
        XCTAssertEqual(results[0].0.replacedToken!.loss, results[1].0.replacedToken!.loss, accuracy: 1e-5)
        let worst = zip(results[0].1, results[1].1).map { abs($0 - $1) }.max()!
        XCTAssertLessThan(worst, 1e-4)
    }

    /// Samples are the seed's: the same seed draws the same tokens, another seed others; a generator
    /// whose LM bias makes one token certain always draws it; with uniform logits (all weights zero)
    /// every token is drawn about equally often; the counts of the output match the labels.
    func testSampling() throws {
        let model = try tinyElectra()
        randomizeParameters(model.layout, model.parameters, seed: 204)
        let batch = tinyBatch()
        _ = try model.forward(batch, dropoutSeed: nil, sampleSeed: 1)
        let first = model.sampledTokens
        _ = try model.forward(batch, dropoutSeed: nil, sampleSeed: 1)
        XCTAssertEqual(model.sampledTokens, first)
        var differs = false
        for seed in 2..<10 as Range<UInt64> {
            _ = try model.forward(batch, dropoutSeed: nil, sampleSeed: seed)
            differs = differs || model.sampledTokens != first
        }
        XCTAssertTrue(differs, "other seeds never drew other tokens")

        let bias = model.layout.entry(named: "generator.generator_lm_head.bias")!
        for j in bias.range { model.parameters[j] = 0 }
        model.parameters[bias.offset + 42] = 60
        model.parametersDidChange()
        let out = try model.forward(batch, dropoutSeed: nil, sampleSeed: 3)
        XCTAssertEqual(model.sampledTokens, [42, 42, 42, 42, 42])
        let rtd = try XCTUnwrap(out.replacedToken)
        XCTAssertEqual(rtd.replaced, 5)  // no label is 42
        XCTAssertEqual(rtd.sampledOriginal, 0)
        XCTAssertEqual(rtd.count, 16)  // the batch's real tokens

        for j in 0..<model.parameters.count { model.parameters[j] = 0 }
        model.parametersDidChange()
        var counts = [Int](repeating: 0, count: model.config.vocabSize)
        let draws = 400
        for seed in 0..<UInt64(draws) {
            _ = try model.forward(batch, dropoutSeed: nil, sampleSeed: seed)
            for s in model.sampledTokens { counts[Int(s)] += 1 }
        }
        // 2000 draws over 99 tokens: about 20.2 each; a chi-square of 99 − 1 degrees of freedom is below 150 with p > 0.999.
        let expected = Double(draws * 5) / Double(counts.count)
        let chi2 = counts.reduce(0.0) { $0 + pow(Double($1) - expected, 2) / expected }
        XCTAssertLessThan(chi2, 150)
        XCTAssertGreaterThan(counts.filter { $0 > 0 }.count, 90)
    }

    /// Accumulation: two micro-batches weighted by their shares of the masked positions (MLM) and of
    /// the real tokens (RTD, a per-token mean) give the whole batch's gradient, as the trainer weights them.
    func testMicroBatchesWeightedByTokensEqualTheWholeBatch() throws {
        let model = try tinyElectra()
        randomizeParameters(model.layout, model.parameters, seed: 206)
        let whole = tinyBatch()
        model.zeroGradients()
        _ = try model.forward(whole, dropoutSeed: nil, sampleSeed: 0, replacements: replacements)
        model.backward()
        let expected = Array(model.gradients)
        func slice(_ rows: Range<Int>, positions: [Int32], labels: [Int32]) -> PretrainingBatch {
            let r = (rows.lowerBound * 7)..<(rows.upperBound * 7)
            return PretrainingBatch(batchSize: rows.count, seqLength: 7, inputIds: Array(whole.inputIds[r]), tokenTypeIds: Array(whole.tokenTypeIds[r]),
                                    attentionMask: Array(whole.attentionMask[r]), maskedPositions: positions, maskedLabels: labels,
                                    nextSentenceLabels: Array(whole.nextSentenceLabels[rows]))
        }
        // tinyBatch's masked positions [9, 1, 16, 4, 15]: sequence 0 holds 1 and 4, sequences 1-2 the others.
        let a = slice(0..<1, positions: [1, 4], labels: [12, 5]), b = slice(1..<3, positions: [2, 9, 8], labels: [57, 98, 40])
        model.zeroGradients()
        _ = try model.forward(a, dropoutSeed: nil, sampleSeed: 0, replacements: [13, 5])
        model.backward(mlmScale: 2.0 / 5, rtdScale: 7.0 / 16)
        _ = try model.forward(b, dropoutSeed: nil, sampleSeed: 0, replacements: [57, 7, 77])
        model.backward(mlmScale: 3.0 / 5, rtdScale: 9.0 / 16)
        let scale = expected.map(abs).max()!
        let worst = zip(model.gradients, expected).map { abs($0 - $1) }.max()!
        XCTAssertLessThan(worst / scale, 1e-5)
    }

    /// bf16 products (both encoders and every head): the reference backend near fp32 on any CPU, and
    /// where the CPU has bf16 units oneDNN's equal to the reference up to the order of the fp32 sums
    /// and the same on 1 and 2 threads.
    func testBF16() throws {
        func run(_ model: ElectraForPreTraining, _ precision: ModelPrecision) throws -> (loss: Float, gradients: [Float]) {
            model.precision = precision
            model.zeroGradients()
            let out = try model.forward(tinyBatch(), dropoutSeed: nil, sampleSeed: 0, replacements: replacements)
            model.backward()
            return (out.loss, Array(model.gradients))
        }
        func cosine(_ a: [Float], _ b: [Float]) -> Double {
            let dot = zip(a, b).reduce(0.0) { $0 + Double($1.0) * Double($1.1) }
            let na = a.reduce(0.0) { $0 + Double($1) * Double($1) }, nb = b.reduce(0.0) { $0 + Double($1) * Double($1) }
            return dot / (na * nb).squareRoot()
        }
        let model = try tinyElectra()
        randomizeParameters(model.layout, model.parameters, seed: 205)
        let fp32 = try run(model, .fp32)
        let reference = try run(model, .bf16(.reference))
        XCTAssertEqual(Double(reference.loss), Double(fp32.loss), accuracy: 0.02 * Double(fp32.loss))
        XCTAssertGreaterThan(cosine(reference.gradients, fp32.gradients), 0.999)
        guard BF16Support.isNative else {
            throw XCTSkip("native bf16 ELECTRA not checked on this machine: \(BF16Support.unavailableReason ?? "")")
        }
        let native = try run(model, .bf16(.oneDNN))
        let config = tinyConfig()
        let single = try ElectraForPreTraining(config: config, generator: try ElectraForPreTraining.generatorConfig(discriminator: config, size: 0.5),
                                               discriminatorWeight: 5, maxBatch: 3, maxSeqLength: 7, maxMaskedPositions: 5, threads: 1)
        for i in 0..<model.parameters.count { single.parameters[i] = model.parameters[i] }
        let oneThread = try run(single, .bf16(.oneDNN))
        XCTAssertEqual(native.loss, oneThread.loss)
        XCTAssertEqual(native.gradients, oneThread.gradients, "native bf16: 2 threads = 1 thread")
        XCTAssertEqual(Double(native.loss), Double(reference.loss), accuracy: 1e-4 * Double(reference.loss))
        XCTAssertGreaterThan(cosine(native.gradients, reference.gradients), 0.9999)
    }

    /// The generator config: fractions of the discriminator's width, heads that divide it.
    func testGeneratorConfig() throws {
        let base = try BertConfig.preset("base", vocabSize: 100)
        let g = try ElectraForPreTraining.generatorConfig(discriminator: base, size: 1.0 / 3)
        XCTAssertEqual([g.hiddenSize, g.numAttentionHeads, g.intermediateSize, g.numHiddenLayers], [256, 4, 1024, 12])  // electra-base's generator
        let tiny = try ElectraForPreTraining.generatorConfig(discriminator: try BertConfig.preset("tiny", vocabSize: 100), size: 0.25)
        XCTAssertEqual([tiny.hiddenSize, tiny.numAttentionHeads, tiny.intermediateSize], [32, 1, 128])
        XCTAssertThrowsError(try ElectraForPreTraining.generatorConfig(discriminator: base, size: 0))
        XCTAssertThrowsError(try ElectraForPreTraining.generatorConfig(discriminator: base, size: 1.5))
    }
}

/// The whole objective against transformers' ElectraForMaskedLM + ElectraForPreTraining in float64
/// (Tests/Fixtures/model/electra_*, made by Tests/Scripts/fixtures/make_electra_fixture.py): the same weights,
/// batch and replacements give the same losses, logits and gradients of MLM + 50·RTD.
final class ElectraFixtureTests: XCTestCase {
    func testMatchesTransformersInFloat64() throws {
        let initFile = try SafetensorsFile(path: Fixtures.path("model/electra_init.safetensors"))
        let batchFile = try SafetensorsFile(path: Fixtures.path("model/electra_batch.safetensors"))
        let expected = try SafetensorsFile(path: Fixtures.path("model/electra_expected.safetensors"))
        let config = BertConfig(vocabSize: 99, hiddenSize: 32, numHiddenLayers: 2, numAttentionHeads: 4, intermediateSize: 37,
                                hiddenDropoutProb: 0, attentionProbsDropoutProb: 0, maxPositionEmbeddings: 16, typeVocabSize: 2)
        let generator = try ElectraForPreTraining.generatorConfig(discriminator: config, size: 0.5)
        XCTAssertEqual([generator.hiddenSize, generator.numAttentionHeads, generator.intermediateSize], [16, 2, 19])
        let model = try ElectraForPreTraining(config: config, generator: generator, discriminatorWeight: 50, maxBatch: 3, maxSeqLength: 7,
                                              maxMaskedPositions: 7, threads: 2)
        XCTAssertEqual(initFile.names.sorted(), model.layout.entries.map(\.name).sorted(), "the fixture holds exactly our tensors")
        for e in model.layout.entries {
            XCTAssertEqual(try initFile.info(e.name).shape, e.shape, e.name)
            try initFile.copyFloats(e.name, into: UnsafeMutableBufferPointer(rebasing: model.parameters[e.range]))
        }
        model.parametersDidChange()
        func ints(_ name: String) throws -> [Int32] { try batchFile.int64s(name).map { Int32($0) } }
        let batch = PretrainingBatch(batchSize: 3, seqLength: 7, inputIds: try ints("input_ids"), tokenTypeIds: try ints("token_type_ids"),
                                     attentionMask: try ints("attention_mask"), maskedPositions: try ints("masked_positions"),
                                     maskedLabels: try ints("masked_labels"), nextSentenceLabels: [0, 0, 0])
        model.zeroGradients()
        let out = try model.forward(batch, dropoutSeed: nil, sampleSeed: 0, replacements: try ints("replacements"))
        model.backward()
        let rtd = try XCTUnwrap(out.replacedToken)
        func relative(_ a: Double, _ b: Double) -> Double { abs(a - b) / max(abs(b), 1e-12) }
        XCTAssertLessThan(relative(Double(out.mlmLoss), try expected.doubles("mlm_loss")[0]), 1e-5)
        XCTAssertLessThan(relative(Double(rtd.loss), try expected.doubles("rtd_loss")[0]), 1e-5)
        XCTAssertLessThan(relative(Double(out.loss), try expected.doubles("loss")[0]), 1e-5)
        XCTAssertEqual(rtd.replaced, 5)
        XCTAssertEqual(rtd.sampledOriginal, 2)
        func worst(_ ours: [Float], _ theirs: [Double]) -> Double {
            let scale = max(theirs.map(abs).max() ?? 0, 1e-12)
            return zip(ours, theirs).map { abs(Double($0) - $1) }.max()! / scale
        }
        XCTAssertLessThan(worst(Array(model.generatorLogits), try expected.doubles("generator_logits")), 1e-5)
        XCTAssertLessThan(worst(Array(model.discriminatorLogits), try expected.doubles("discriminator_logits")), 1e-5)
        for e in model.layout.entries where !e.name.hasSuffix("attention.self.key.bias") {
            let g = try expected.doubles("grad." + e.name)
            XCTAssertLessThan(worst(Array(model.gradients[e.range]), g), 1e-4, e.name)
        }
    }
}
