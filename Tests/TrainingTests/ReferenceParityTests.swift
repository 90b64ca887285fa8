import BertModel
import Foundation
import TestSupport
import XCTest

@testable import Training
import Checkpoints

/// The whole model, its gradients and ten AdamW steps against Hugging Face transformers'
/// BertForPreTraining (PyTorch, float64), from Tests/Fixtures/model (see its README for how the
/// fixtures were made). Ours runs in Float32, so tolerances are relative to each tensor's scale.
final class ReferenceParityTests: XCTestCase {
    static let dir = Fixtures.path("model")

    static func load() throws -> (BertForPreTraining, PretrainingBatch, SafetensorsFile, [Int]) {
        let config = try BertConfig.load(path: dir + "/tiny_config.json")
        let initFile = try SafetensorsFile(path: dir + "/tiny_init.safetensors")
        let batchFile = try SafetensorsFile(path: dir + "/tiny_batch.safetensors")
        let expected = try SafetensorsFile(path: dir + "/tiny_expected.safetensors")
        let ids = try batchFile.int64s("input_ids").map { Int32($0) }
        let types = try batchFile.int64s("token_type_ids").map { Int32($0) }
        let mask = try batchFile.int64s("attention_mask").map { Int32($0) }
        let labels = try batchFile.int64s("labels")
        let nsp = try batchFile.int64s("next_sentence_label").map { Int32($0) }
        let shape = try batchFile.info("input_ids").shape
        let positions = labels.indices.filter { labels[$0] != -100 }
        let batch = PretrainingBatch(batchSize: shape[0], seqLength: shape[1], inputIds: ids, tokenTypeIds: types, attentionMask: mask,
                                     maskedPositions: positions.map { Int32($0) }, maskedLabels: positions.map { Int32(labels[$0]) },
                                     nextSentenceLabels: nsp)
        let model = try BertForPreTraining(config: config, maxBatch: shape[0], maxSeqLength: shape[1],
                                           maxMaskedPositions: positions.count, threads: 2)
        try Checkpoint.loadParameters(from: initFile, layout: model.layout, into: model.parameters)
        return (model, batch, expected, positions)
    }

    func testLossesLogitsAndEveryGradientMatchTransformers() throws {
        let (model, batch, expected, positions) = try Self.load()
        model.zeroGradients()
        let out = try model.forward(batch, dropoutSeed: nil)
        model.backward()
        XCTAssertEqual(Double(out.mlmLoss), try expected.doubles("mlm_loss")[0], accuracy: 2e-5)
        XCTAssertEqual(Double(out.nspLoss), try expected.doubles("nsp_loss")[0], accuracy: 2e-5)
        XCTAssertEqual(Double(out.loss), try expected.doubles("loss")[0], accuracy: 4e-5)
        // MLM logits at the masked positions, NSP logits.
        let v = model.config.vocabSize
        let full = try expected.doubles("prediction_logits")
        let refMLM = positions.flatMap { p in full[(p * v)..<((p + 1) * v)] }
        XCTAssertLessThan(Numerics.relativeError(Array(model.mlmLogits), Array(refMLM)), 1e-5)
        XCTAssertLessThan(Numerics.relativeError(Array(model.nspLogits), try expected.doubles("seq_relationship_logits")), 1e-5)
        // Every parameter's gradient (the tied decoder's lands on the word embeddings, as in PyTorch).
        var worstGradient = 0.0
        for e in model.layout.entries {
            let ours = Array(model.gradients[e.offset..<(e.offset + e.count)])
            let reference = try expected.doubles("grad." + e.name)
            if e.name.hasSuffix("attention.self.key.bias") {
                // Zero in exact arithmetic (softmax is invariant to it): absolute check only.
                XCTAssertLessThan(ours.map { abs(Double($0)) }.max() ?? 0, 1e-6, e.name)
                continue
            }
            let error = Numerics.relativeError(ours, reference)
            worstGradient = max(worstGradient, error)
            XCTAssertLessThan(error, 1e-5, e.name)
        }
        print(String(format: "parity: loss %.3g abs, MLM logits %.3g, NSP logits %.3g, worst gradient %.3g (relative to each tensor's max)",
                     abs(Double(out.loss) - (try expected.doubles("loss")[0])), Numerics.relativeError(Array(model.mlmLogits), Array(refMLM)),
                     Numerics.relativeError(Array(model.nspLogits), try expected.doubles("seq_relationship_logits")), worstGradient))
    }

    func testTenAdamWStepsMatchTransformers() throws {
        let (model, batch, expected, _) = try Self.load()
        let ranges = model.layout.entries.filter(\.decay).map { $0.offset..<($0.offset + $0.count) }.sorted { $0.lowerBound < $1.lowerBound }
        let adam = AdamW(count: model.layout.count, decayRanges: ranges, threads: 2)
        let schedule = LinearSchedule(base: 1e-2, warmupSteps: 2, totalSteps: 10)
        let losses = try expected.doubles("step_losses")
        let rates = try expected.doubles("step_lr")
        for k in 0..<10 {
            model.zeroGradients()
            let out = try model.forward(batch, dropoutSeed: nil)
            model.backward()
            XCTAssertEqual(Double(out.loss), losses[k], accuracy: 1e-4 * max(1, losses[k]), "loss before update \(k)")
            XCTAssertEqual(schedule.rate(at: k), rates[k], accuracy: 1e-15)
            clipGlobalNorm(model.gradients.baseAddress!, count: model.layout.count, maxNorm: 1.0)
            adam.step(parameters: model.parameters.baseAddress!, gradients: model.gradients.baseAddress!, lr: schedule.rate(at: k))
        }
        var worst = 0.0
        for e in model.layout.entries {
            let ours = Array(model.parameters[e.offset..<(e.offset + e.count)])
            let reference = try expected.doubles("final." + e.name)
            let error = Numerics.relativeError(ours, reference, floor: 1e-2)
            worst = max(worst, error)
            XCTAssertLessThan(error, 1e-3, e.name)
        }
        print(String(format: "parity after 10 AdamW steps: worst parameter error %.3g (relative to each tensor's max)", worst))
    }
}
