import BertModel
import Foundation
import TestSupport
import XCTest

@testable import Training

/// BertForSequenceClassification, its gradients and ten AdamW steps against Hugging Face
/// transformers' BertForSequenceClassification (PyTorch, float64), from Tests/Fixtures/classifier
/// (see its README). Ours runs in Float32, so tolerances are relative to each tensor's scale.
final class ClassifierParityTests: XCTestCase {
    static let dir = Fixtures.path("classifier")

    static func load() throws -> (BertForSequenceClassification, ClassificationBatch, SafetensorsFile) {
        let config = try BertConfig.load(path: dir + "/tiny_config.json")
        let initFile = try SafetensorsFile(path: dir + "/tiny_init.safetensors")
        let batchFile = try SafetensorsFile(path: dir + "/tiny_batch.safetensors")
        let expected = try SafetensorsFile(path: dir + "/tiny_expected.safetensors")
        let shape = try batchFile.info("input_ids").shape
        let batch = ClassificationBatch(batchSize: shape[0], seqLength: shape[1],
                                        inputIds: try batchFile.int64s("input_ids").map { Int32($0) },
                                        tokenTypeIds: try batchFile.int64s("token_type_ids").map { Int32($0) },
                                        attentionMask: try batchFile.int64s("attention_mask").map { Int32($0) },
                                        labels: try batchFile.int64s("labels").map { Int32($0) })
        let numLabels = try XCTUnwrap(config.id2label?.count) // transformers: num_labels = len(id2label)
        let model = try BertForSequenceClassification(config: config, numLabels: numLabels, maxBatch: shape[0],
                                                      maxSeqLength: shape[1], threads: 2)
        try Checkpoint.loadParameters(from: initFile, layout: model.layout, into: model.parameters)
        return (model, batch, expected)
    }

    /// max |ours − reference| / max(max |reference|, floor).
    func relativeError(_ ours: [Float], _ reference: [Double], floor: Double = 1e-3) -> Double {
        precondition(ours.count == reference.count)
        let scale = max(floor, reference.map(abs).max() ?? 0)
        var worst = 0.0
        for (a, b) in zip(ours, reference) { worst = max(worst, abs(Double(a) - b)) }
        return worst / scale
    }

    func testLogitsLossAndEveryGradientMatchTransformers() throws {
        let (model, batch, expected) = try Self.load()
        XCTAssertEqual(model.layout.entries.count, 41)
        for prune in [true, false] {
            model.prunesLastLayer = prune
            model.zeroGradients()
            let out = try model.forward(batch, dropoutSeed: nil)
            model.backward()
            XCTAssertEqual(out.count, 3)
            let lossError = abs(Double(out.loss) - (try expected.doubles("loss")[0]))
            XCTAssertLessThan(lossError, 2e-6)
            let logitsError = relativeError(Array(model.logits), try expected.doubles("logits"))
            XCTAssertLessThan(logitsError, 1e-5)
            let pooledError = relativeError(Array(model.pooledOutput), try expected.doubles("pooled_output"))
            XCTAssertLessThan(pooledError, 1e-5)
            var worstGradient = 0.0
            for e in model.layout.entries {
                let ours = Array(model.gradients[e.range])
                let reference = try expected.doubles("grad." + e.name)
                if e.name.hasSuffix("attention.self.key.bias") {
                    // Zero in exact arithmetic (softmax is invariant to it): absolute check only.
                    XCTAssertLessThan(ours.map { abs(Double($0)) }.max() ?? 0, 1e-6, e.name)
                    continue
                }
                let error = relativeError(ours, reference)
                worstGradient = max(worstGradient, error)
                XCTAssertLessThan(error, 1e-5, e.name)
            }
            print(String(format: "classifier parity (prune %@): loss %.3g abs, logits %.3g, pooled %.3g, worst gradient %.3g (relative to each tensor's max)",
                         "\(prune)", lossError, logitsError, pooledError, worstGradient))
        }
    }

    func testTenAdamWStepsMatchTransformers() throws {
        let (model, batch, expected) = try Self.load()
        let ranges = model.layout.entries.filter(\.decay).map(\.range).sorted { $0.lowerBound < $1.lowerBound }
        let adam = AdamW(count: model.layout.count, decayRanges: ranges, threads: 2)
        let schedule = LinearSchedule(base: 1e-2, warmupSteps: 2, totalSteps: 10)
        let losses = try expected.doubles("step_losses")
        let rates = try expected.doubles("step_lr")
        let norms = try expected.doubles("step_grad_norm")
        var worstLoss = 0.0, worstNorm = 0.0
        for k in 0..<10 {
            model.zeroGradients()
            let out = try model.forward(batch, dropoutSeed: nil)
            model.backward()
            worstLoss = max(worstLoss, abs(Double(out.loss) - losses[k]) / max(1, losses[k]))
            XCTAssertEqual(Double(out.loss), losses[k], accuracy: 1e-4 * max(1, losses[k]), "loss before update \(k)")
            XCTAssertEqual(schedule.rate(at: k), rates[k], accuracy: 1e-15)
            let norm = clipGlobalNorm(model.gradients.baseAddress!, count: model.layout.count, maxNorm: 1.0)
            worstNorm = max(worstNorm, abs(norm - norms[k]) / max(1, norms[k]))
            XCTAssertEqual(norm, norms[k], accuracy: 1e-3 * max(1, norms[k]), "gradient norm before clipping \(k)")
            adam.step(parameters: model.parameters.baseAddress!, gradients: model.gradients.baseAddress!, lr: schedule.rate(at: k))
        }
        var worst = 0.0
        for e in model.layout.entries {
            let error = relativeError(Array(model.parameters[e.range]), try expected.doubles("final." + e.name), floor: 1e-2)
            worst = max(worst, error)
            XCTAssertLessThan(error, 1e-3, e.name)
        }
        print(String(format: "classifier parity after 10 AdamW steps: worst loss %.3g, gradient norm %.3g, parameter %.3g (relative to each tensor's max)",
                     worstLoss, worstNorm, worst))
    }
}
