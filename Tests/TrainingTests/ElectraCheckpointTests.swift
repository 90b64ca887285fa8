import BertModel
import Foundation
import ModelTestSupport
import TestSupport
import XCTest

@testable import Training
import Checkpoints

/// ELECTRA checkpoints: exactly the tensors transformers' two models hold (names and shapes from
/// Tests/Fixtures/model/electra_keys.json, written by make_electra_fixture.py from their state_dicts),
/// the values BertKit trained, and read back by BertKit as ELECTRA (resume) and as a BERT encoder.
final class ElectraCheckpointTests: XCTestCase {
    /// The fixture's model (the weights of electra_init.safetensors).
    func fixtureModel() throws -> ElectraForPreTraining {
        let config = BertConfig(vocabSize: 99, hiddenSize: 32, numHiddenLayers: 2, numAttentionHeads: 4, intermediateSize: 37,
                                hiddenDropoutProb: 0, attentionProbsDropoutProb: 0, maxPositionEmbeddings: 16, typeVocabSize: 2)
        let model = try ElectraForPreTraining(config: config, generator: try ElectraForPreTraining.generatorConfig(discriminator: config, size: 0.5),
                                              maxBatch: 3, maxSeqLength: 7, maxMaskedPositions: 7, threads: 1)
        let file = try SafetensorsFile(path: Fixtures.path("model/electra_init.safetensors"))
        for e in model.layout.entries { try file.copyFloats(e.name, into: UnsafeMutableBufferPointer(rebasing: model.parameters[e.range])) }
        return model
    }

    func write(_ model: ElectraForPreTraining, to run: String) throws -> String {
        let adam = AdamW(count: model.layout.count, decayRanges: [])
        try Checkpoint.write(runDirectory: run, name: "step-00000001", config: model.config, vocabulary: Data("v\n".utf8), layout: model.layout,
                             parameters: UnsafeBufferPointer(model.parameters), optimizer: adam, state: CheckpointTests.state(step: 1),
                             electraGenerator: model.generatorConfig)
        return try XCTUnwrap(Checkpoint.latest(runDirectory: run))
    }

    func testFilesHoldTransformersKeysAndOurValues() throws {
        let run = Fixtures.temporaryDirectory().path
        defer { try? FileManager.default.removeItem(atPath: run) }
        let model = try fixtureModel()
        let dir = try write(model, to: run)
        let keys = try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: Fixtures.path("model/electra_keys.json"))))
            as! [String: [String: [Int]]]
        XCTAssertTrue(Checkpoint.isElectra(dir))
        for (role, path) in [("discriminator", dir), ("generator", dir + "/generator")] {
            let file = try SafetensorsFile(path: path + "/model.safetensors")
            let want = try XCTUnwrap(keys[role])
            XCTAssertEqual(file.names.sorted(), want.keys.sorted(), role)
            for (name, shape) in want { XCTAssertEqual(try file.info(name).shape, shape, "\(role) \(name)") }
            for name in file.names {
                let ours = role == "discriminator" || name.hasPrefix("electra.embeddings.") ? name
                    : name == "generator_lm_head.weight" ? "electra.embeddings.word_embeddings.weight" : "generator." + name
                let e = try XCTUnwrap(model.layout.entry(named: ours), ours)
                XCTAssertEqual(try file.doubles(name), model.parameters[e.range].map(Double.init), "\(role) \(name)")
            }
            let config = try XCTUnwrap(JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: path + "/config.json"))) as? [String: Any])
            XCTAssertEqual(config["model_type"] as? String, "electra")
            XCTAssertEqual(config["embedding_size"] as? Int, 32)
            XCTAssertEqual(config["hidden_size"] as? Int, role == "discriminator" ? 32 : 16)
            XCTAssertEqual(config["architectures"] as? [String], [role == "discriminator" ? "ElectraForPreTraining" : "ElectraForMaskedLM"])
        }

        // Resume reads both files back into the training layout.
        let again = try fixtureModel()
        for i in 0..<again.parameters.count { again.parameters[i] = 0 }
        try Checkpoint.loadElectraParameters(directory: dir, layout: again.layout, into: again.parameters)
        XCTAssertEqual(Array(again.parameters), Array(model.parameters))
        XCTAssertEqual(try Checkpoint.electraGeneratorConfig(directory: dir, discriminator: model.config), model.generatorConfig)
    }

    /// The discriminator is a BERT encoder to the rest of BertKit: fine-tuning, evaluation and --init read
    /// its config as BERT's and its "electra.*" tensors as "bert.*"; the pooler it lacks starts anew.
    func testDiscriminatorLoadsAsBertEncoder() throws {
        let run = Fixtures.temporaryDirectory().path
        defer { try? FileManager.default.removeItem(atPath: run) }
        let model = try fixtureModel()
        let dir = try write(model, to: run)
        try Data("[PAD]\n".utf8).write(to: URL(fileURLWithPath: dir + "/vocab.txt"))
        let source = try PretrainedSource(directory: dir)
        XCTAssertEqual(source.config.modelType, "bert")
        XCTAssertNil(source.config.embeddingSize)
        let classifier = try BertForSequenceClassification(config: source.config, numLabels: 3, maxBatch: 2, maxSeqLength: 7, threads: 1)
        classifier.initialize(seed: 1)
        try FineTuner.loadEncoder(into: classifier, from: source.weights!)
        for e in classifier.layout.entries where e.name.hasPrefix("bert.") && !e.name.hasPrefix("bert.pooler.") {
            let theirs = try XCTUnwrap(model.layout.entry(named: "electra." + e.name.dropFirst(5)), e.name)
            XCTAssertEqual(Array(classifier.parameters[e.range]), Array(model.parameters[theirs.range]), e.name)
        }
        let weights = try InitialWeights(directory: dir)
        let bert = try BertForPreTraining(config: weights.config, maxBatch: 2, maxSeqLength: 7, maxMaskedPositions: 3, threads: 1)
        bert.initialize(seed: 1)
        let report = try weights.load(into: bert.layout, parameters: bert.parameters)
        XCTAssertEqual(Set(report.initialized), Set(bert.layout.entries.map(\.name).filter { $0.hasPrefix("cls.") || $0.hasPrefix("bert.pooler.") }))
        XCTAssertEqual(report.ignored, [], "the discriminator head is ELECTRA's, not an unknown tensor")
    }

    /// A config.json whose embedding_size differs from hidden_size (ELECTRA-small, a generator) is refused
    /// with the field named: the BERT encoder has no embedding projection.
    func testEmbeddingProjectionIsRefusedForBert() throws {
        var config = tinyConfig()
        config.modelType = "electra"
        config.embeddingSize = 16
        XCTAssertThrowsError(try config.validate(path: "x/config.json")) { error in
            XCTAssertTrue("\(error)".contains("embedding_size"), "\(error)")
        }
        config.embeddingSize = 32
        XCTAssertNoThrow(try config.validate())
    }
}
