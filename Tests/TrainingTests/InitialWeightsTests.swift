import BertModel
import Foundation
import TestSupport
import XCTest

@testable import Training
import Checkpoints

/// `bert pretrain --init`'s loading, against the models transformers wrote in Tests/Fixtures/init (see its
/// README and Tests/Scripts/fixtures/make_init_fixtures.py): the four layouts a public BERT comes in, F32, F16 and
/// BF16, and transformers' losses on one batch.
final class InitialWeightsTests: XCTestCase {
    static func fixture(_ name: String) -> String { Fixtures.path("init/" + name) }

    /// A pre-training model initialised from the seed (transformers' statistics), then `--init`'s weights.
    static func loaded(_ name: String) throws -> (BertForPreTraining, InitialWeights, InitialWeights.Report) {
        let initial = try InitialWeights(directory: fixture(name))
        let model = try BertForPreTraining(config: initial.config, maxBatch: 4, maxSeqLength: 24, maxMaskedPositions: 20, threads: 2)
        model.initialize(seed: 42)
        let report = try initial.load(into: model.layout, parameters: model.parameters)
        model.parametersDidChange()
        return (model, initial, report)
    }

    static func batch() throws -> PretrainingBatch {
        let f = try SafetensorsFile(path: fixture("batch.safetensors"))
        func ints(_ name: String) throws -> [Int32] { try f.int64s(name).map { Int32($0) } }
        return PretrainingBatch(batchSize: 4, seqLength: 24, inputIds: try ints("input_ids"), tokenTypeIds: try ints("token_type_ids"),
                                attentionMask: try ints("attention_mask"), maskedPositions: try ints("masked_positions"),
                                maskedLabels: try ints("masked_labels"), nextSentenceLabels: try ints("next_sentence_labels"))
    }

    static func expected() throws -> [String: [String: Double]] {
        try XCTUnwrap(JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: fixture("expected.json")))) as? [String: Any])
            .compactMapValues { $0 as? [String: Double] }
    }

    /// Each layout loads, and says what it loaded, initialised and ignored, as transformers does:
    /// BertForPreTraining everything; BertModel (no prefix) the encoder and pooler, the MLM and NSP
    /// heads newly initialised; BertForMaskedLM (F16) everything but the pooler and NSP;
    /// BertForSequenceClassification (BF16) the encoder and pooler, its classifier not used. Every
    /// loaded tensor holds the file's values, widened exactly from F16/BF16.
    func testEachLayoutLoadsAndSaysWhat() throws {
        let heads = ["cls.predictions.bias", "cls.predictions.transform.dense.weight", "cls.predictions.transform.dense.bias",
                     "cls.predictions.transform.LayerNorm.weight", "cls.predictions.transform.LayerNorm.bias",
                     "cls.seq_relationship.weight", "cls.seq_relationship.bias"]
        let cases: [(String, Set<String>, [String])] = [
            ("pretraining", [], []),
            ("bert_model", Set(heads), []),
            ("masked_lm", ["bert.pooler.dense.weight", "bert.pooler.dense.bias", "cls.seq_relationship.weight", "cls.seq_relationship.bias"], []),
            ("classifier", Set(heads), ["classifier.bias", "classifier.weight"]),
        ]
        for (name, initialized, ignored) in cases {
            let (model, initial, report) = try Self.loaded(name)
            XCTAssertEqual(Set(report.initialized), initialized, name)
            XCTAssertEqual(report.ignored, ignored, name)
            XCTAssertEqual(report.loaded.count + report.initialized.count, model.layout.entries.count, name)
            for entry in model.layout.entries where report.loaded.contains(entry.name) {
                let fileName = [entry.name, String(entry.name.dropFirst(5))].first(where: initial.weights.contains)!
                let values = try initial.weights.floats(fileName)
                XCTAssertEqual(Array(model.parameters[entry.range]), values, "\(name): \(entry.name)")
            }
            let message = report.message(directory: name)
            XCTAssertTrue(message.contains("\(report.loaded.count) tensors loaded"), message)
            for n in initialized { XCTAssertTrue(message.contains(n), message) }
            for n in ignored { XCTAssertTrue(message.contains(n), message) }
        }
    }

    /// The heads a checkpoint lacks start as transformers initialises them: dense weights N(0, 0.02²)
    /// (initializer_range), biases 0, LayerNorm weight 1 and bias 0.
    func testMissingHeadsGetTransformersInitialisation() throws {
        let (model, initial, _) = try Self.loaded("bert_model")
        XCTAssertEqual(initial.config.initializerRange, 0.02)
        func values(_ name: String) -> [Float] { Array(model.parameters[model.layout.entry(named: name)!.range]) }
        func moments(_ x: [Float]) -> (mean: Double, std: Double) {
            let m = x.reduce(0.0) { $0 + Double($1) } / Double(x.count)
            return (m, (x.reduce(0.0) { $0 + (Double($1) - m) * (Double($1) - m) } / Double(x.count)).squareRoot())
        }
        let dense = moments(values("cls.predictions.transform.dense.weight"))  // 32 × 32
        XCTAssertEqual(dense.std, 0.02, accuracy: 0.002)
        XCTAssertEqual(dense.mean, 0, accuracy: 0.002)
        let nsp = moments(values("cls.seq_relationship.weight"))  // 2 × 32
        XCTAssertEqual(nsp.std, 0.02, accuracy: 0.007)
        for name in ["cls.predictions.bias", "cls.predictions.transform.dense.bias", "cls.predictions.transform.LayerNorm.bias",
                     "cls.seq_relationship.bias"] {
            XCTAssertEqual(Set(values(name)), [0], name)
        }
        XCTAssertEqual(Set(values("cls.predictions.transform.LayerNorm.weight")), [1])
    }

    /// After loading, the model computes transformers' losses on the fixture's batch: the MLM and NSP
    /// losses of BertForPreTraining, the MLM loss of BertForMaskedLM's F16 weights (relative 1e-5).
    /// This is the first update's loss of `bert pretrain --init` (its forward pass before the step).
    func testLossesEqualTransformersAfterLoading() throws {
        let expected = try Self.expected()
        let batch = try Self.batch()
        let (pretraining, _, _) = try Self.loaded("pretraining")
        let out = try pretraining.forward(batch, dropoutSeed: nil)
        let want = try XCTUnwrap(expected["pretraining"])
        XCTAssertEqual(Double(out.mlmLoss), want["mlm_loss"]!, accuracy: 1e-5 * want["mlm_loss"]!)
        XCTAssertEqual(Double(out.nspLoss), want["nsp_loss"]!, accuracy: 1e-5 * want["nsp_loss"]!)
        let (maskedLM, _, _) = try Self.loaded("masked_lm")
        let mlm = try maskedLM.forward(batch, dropoutSeed: nil)
        let wantMLM = try XCTUnwrap(expected["masked_lm"]?["mlm_loss"])
        XCTAssertEqual(Double(mlm.mlmLoss), wantMLM, accuracy: 1e-5 * wantMLM)
        XCTAssertNotEqual(out.mlmLoss, mlm.mlmLoss, "two models, two losses (the check can fail)")
    }

    /// A file that lacks an encoder tensor, or has one of another shape, is refused naming the file and
    /// the tensor.
    func testAnEncoderTensorMissingOrMisshapenIsRefused() throws {
        let dir = Fixtures.temporaryDirectory().path
        defer { try? FileManager.default.removeItem(atPath: dir) }
        for f in ["config.json", "vocab.txt"] {
            try FileManager.default.copyItem(atPath: Self.fixture("bert_model/" + f), toPath: dir + "/" + f)
        }
        let source = try SafetensorsFile(path: Self.fixture("bert_model/model.safetensors"))
        var tensors = try source.names.filter { $0 != "encoder.layer.1.output.dense.weight" }.map {
            SafetensorsTensor(name: $0, shape: try source.info($0).shape, floats: try source.floats($0))
        }
        try SafetensorsWriter.write(tensors, to: dir + "/model.safetensors")
        let initial = try InitialWeights(directory: dir)
        let model = try BertForPreTraining(config: initial.config, maxBatch: 2, maxSeqLength: 8, maxMaskedPositions: 4, threads: 1)
        XCTAssertThrowsError(try initial.load(into: model.layout, parameters: model.parameters)) { e in
            XCTAssertTrue("\(e)".contains("bert.encoder.layer.1.output.dense.weight") && "\(e)".contains(dir), "\(e)")
        }
        tensors.append(SafetensorsTensor(name: "encoder.layer.1.output.dense.weight", shape: [2, 2], floats: [1, 2, 3, 4]))
        try SafetensorsWriter.write(tensors, to: dir + "/model.safetensors")
        XCTAssertThrowsError(try InitialWeights(directory: dir).load(into: model.layout, parameters: model.parameters)) { e in
            XCTAssertTrue("\(e)".contains("shape [2, 2]"), "\(e)")
        }
    }
}
