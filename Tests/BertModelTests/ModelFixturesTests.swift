import BertModel
import Foundation
import TestSupport
import XCTest
import Checkpoints

/// Checks the committed transformers fixtures (Tests/Fixtures/model, made by
/// Tests/Scripts/fixtures/make_model_fixtures.py) with our safetensors reader alone: no Python needed.
final class ModelFixturesTests: XCTestCase {
    static let config = Fixtures.path("model/tiny_config.json")
    static let initFile = Fixtures.path("model/tiny_init.safetensors")
    static let batchFile = Fixtures.path("model/tiny_batch.safetensors")
    static let expectedFile = Fixtures.path("model/tiny_expected.safetensors")

    /// BertForPreTraining's parameters as transformers names them (`named_parameters()` order; the tied
    /// decoder weight and bias are not separate), with PyTorch shapes (linear weights [out, in]).
    static func huggingFaceParameters(_ c: BertConfig) -> [(String, [Int])] {
        let h = c.hiddenSize, i = c.intermediateSize
        var p: [(String, [Int])] = [
            ("bert.embeddings.word_embeddings.weight", [c.vocabSize, h]),
            ("bert.embeddings.position_embeddings.weight", [c.maxPositionEmbeddings, h]),
            ("bert.embeddings.token_type_embeddings.weight", [c.typeVocabSize, h]),
            ("bert.embeddings.LayerNorm.weight", [h]), ("bert.embeddings.LayerNorm.bias", [h]),
        ]
        for l in 0..<c.numHiddenLayers {
            let pre = "bert.encoder.layer.\(l)."
            for m in ["attention.self.query", "attention.self.key", "attention.self.value", "attention.output.dense"] {
                p += [(pre + m + ".weight", [h, h]), (pre + m + ".bias", [h])]
            }
            p += [(pre + "attention.output.LayerNorm.weight", [h]), (pre + "attention.output.LayerNorm.bias", [h]),
                  (pre + "intermediate.dense.weight", [i, h]), (pre + "intermediate.dense.bias", [i]),
                  (pre + "output.dense.weight", [h, i]), (pre + "output.dense.bias", [h]),
                  (pre + "output.LayerNorm.weight", [h]), (pre + "output.LayerNorm.bias", [h])]
        }
        p += [("bert.pooler.dense.weight", [h, h]), ("bert.pooler.dense.bias", [h]),
              ("cls.predictions.bias", [c.vocabSize]),
              ("cls.predictions.transform.dense.weight", [h, h]), ("cls.predictions.transform.dense.bias", [h]),
              ("cls.predictions.transform.LayerNorm.weight", [h]), ("cls.predictions.transform.LayerNorm.bias", [h]),
              ("cls.seq_relationship.weight", [2, h]), ("cls.seq_relationship.bias", [2])]
        return p
    }

    func testConfigIsTheTinyModel() throws {
        let c = try BertConfig.load(path: Self.config)
        XCTAssertEqual([c.vocabSize, c.hiddenSize, c.numHiddenLayers, c.numAttentionHeads, c.intermediateSize,
                        c.maxPositionEmbeddings, c.typeVocabSize], [99, 32, 2, 4, 37, 16, 2])
        XCTAssertEqual(c.hiddenAct, "gelu")
        XCTAssertEqual(c.hiddenDropoutProb, 0)
        XCTAssertEqual(c.attentionProbsDropoutProb, 0)
        XCTAssertEqual(c.layerNormEps, 1e-12)
        XCTAssertEqual(c.architectures, ["BertForPreTraining"])
    }

    func testInitHoldsEveryParameterWithHuggingFaceNamesAndShapes() throws {
        let c = try BertConfig.load(path: Self.config)
        let f = try SafetensorsFile(path: Self.initFile)
        let expected = Self.huggingFaceParameters(c)
        XCTAssertEqual(expected.count, 46)
        XCTAssertEqual(f.names, expected.map(\.0).sorted())
        XCTAssertFalse(f.contains("cls.predictions.decoder.weight"), "the tied decoder is not stored separately")
        XCTAssertFalse(f.contains("cls.predictions.decoder.bias"))
        XCTAssertEqual(f.metadata, ["format": "pt"])
        var total = 0
        for (name, shape) in expected {
            let info = try f.info(name)
            XCTAssertEqual(info.dtype, .f32, name)
            XCTAssertEqual(info.shape, shape, name)
            let values = try f.floats(name)
            XCTAssertEqual(values.count, shape.reduce(1, *))
            XCTAssertTrue(values.allSatisfy(\.isFinite), name)
            total += values.count
        }
        XCTAssertEqual(total, 19727)
        // Hugging Face zeroes the [PAD] row of the word embeddings.
        XCTAssertEqual(try f.floats("bert.embeddings.word_embeddings.weight").prefix(32).allSatisfy { $0 == 0 }, true)
        // The perturbation: LayerNorm weights are no longer exactly 1, biases no longer 0.
        XCTAssertFalse(try f.floats("bert.embeddings.LayerNorm.weight").contains(1))
        XCTAssertFalse(try f.floats("cls.predictions.bias").contains(0))
    }

    func testBatchDecodes() throws {
        let f = try SafetensorsFile(path: Self.batchFile)
        XCTAssertEqual(f.names, ["attention_mask", "input_ids", "labels", "next_sentence_label", "token_type_ids"])
        for name in ["attention_mask", "input_ids", "labels", "token_type_ids"] {
            XCTAssertEqual(try f.info(name).shape, [3, 7], name)
            XCTAssertEqual(try f.info(name).dtype, .i64, name)
        }
        XCTAssertEqual(try f.info("next_sentence_label").shape, [3])
        let ids = try f.int64s("input_ids"), mask = try f.int64s("attention_mask"), labels = try f.int64s("labels")
        let types = try f.int64s("token_type_ids"), nsp = try f.int64s("next_sentence_label")
        XCTAssertEqual(ids, [2, 17, 4, 3, 45, 46, 3, 2, 50, 61, 4, 3, 88, 3, 2, 4, 3, 33, 3, 0, 0])
        XCTAssertEqual(mask, [1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 0, 0])
        XCTAssertEqual(types, [0, 0, 0, 0, 1, 1, 1, 0, 0, 0, 0, 0, 1, 1, 0, 0, 0, 1, 1, 0, 0])
        XCTAssertEqual(nsp, [0, 1, 0])
        for row in 0..<3 {
            XCTAssertEqual(ids[row * 7], 2, "[CLS] first")
            let predicted = (0..<7).filter { labels[row * 7 + $0] != -100 }
            XCTAssertTrue((2...3).contains(predicted.count))
            for p in predicted {
                let i = row * 7 + p
                XCTAssertEqual(mask[i], 1)
                XCTAssertFalse([0, 2, 3].contains(ids[i]))
                XCTAssertTrue((5..<99).contains(labels[i]))
            }
        }
        XCTAssertTrue(ids.allSatisfy { (0..<99).contains($0) })
    }

    func testExpectedValuesAreCompleteAndConsistent() throws {
        let c = try BertConfig.load(path: Self.config)
        let f = try SafetensorsFile(path: Self.expectedFile)
        let params = Self.huggingFaceParameters(c)
        XCTAssertTrue(f.tensors.values.allSatisfy { $0.dtype == .f64 })
        XCTAssertEqual(try f.info("prediction_logits").shape, [3, 7, 99])
        XCTAssertEqual(try f.info("seq_relationship_logits").shape, [3, 2])
        XCTAssertEqual(try f.info("pooled_output").shape, [3, 32])
        for i in 0...2 { XCTAssertEqual(try f.info("hidden_states.\(i)").shape, [3, 7, 32]) }
        for s in ["loss", "mlm_loss", "nsp_loss"] { XCTAssertEqual(try f.info(s).shape, [], s) }
        for s in ["step_losses", "step_lr", "step_grad_norm"] { XCTAssertEqual(try f.info(s).shape, [10], s) }
        for (name, shape) in params {
            XCTAssertEqual(try f.info("grad." + name).shape, shape)
            XCTAssertEqual(try f.info("final." + name).shape, shape)
        }
        // 6 outputs and losses, 3 hidden states, 3 per-step series, a grad. and a final. per parameter.
        XCTAssertEqual(f.names.count, 6 + 3 + 3 + 2 * params.count)
        let loss = try f.doubles("loss")[0], mlm = try f.doubles("mlm_loss")[0], nsp = try f.doubles("nsp_loss")[0]
        XCTAssertEqual(loss, mlm + nsp, accuracy: 1e-12)

        // The losses again from the stored logits and the batch: mean cross-entropy over labelled positions.
        let batch = try SafetensorsFile(path: Self.batchFile)
        let labels = try batch.int64s("labels"), nspLabels = try batch.int64s("next_sentence_label")
        func crossEntropy(_ logits: ArraySlice<Double>, _ target: Int) -> Double {
            let m = logits.max()!
            return log(logits.reduce(0) { $0 + exp($1 - m) }) + m - logits[logits.startIndex + target]
        }
        let logits = try f.doubles("prediction_logits")
        let masked = labels.indices.filter { labels[$0] != -100 }
        let mlmAgain = masked.map { crossEntropy(logits[($0 * 99)..<($0 * 99 + 99)], Int(labels[$0])) }.reduce(0, +) / Double(masked.count)
        XCTAssertEqual(mlmAgain, mlm, accuracy: 1e-12)
        let seq = try f.doubles("seq_relationship_logits")
        let nspAgain = (0..<3).map { crossEntropy(seq[($0 * 2)..<($0 * 2 + 2)], Int(nspLabels[$0])) }.reduce(0, +) / 3
        XCTAssertEqual(nspAgain, nsp, accuracy: 1e-12)

        // The schedule: warmup 2, total 10, base 1e-2, at update index k.
        let lr = try f.doubles("step_lr")
        for k in 0..<10 {
            let want = k < 2 ? 1e-2 * Double(k) / 2 : 1e-2 * max(0, Double(10 - k) / 8)
            XCTAssertEqual(lr[k], want, accuracy: 1e-15)
        }
        let losses = try f.doubles("step_losses")
        XCTAssertEqual(losses[0], loss)
        XCTAssertEqual(losses[1], loss, "lr_0 = 0: the first update moves nothing")
        XCTAssertLessThan(losses[9], losses[0])
        // Positions 7..<16 are never used: zero gradient.
        XCTAssertTrue(try f.doubles("grad.bert.embeddings.position_embeddings.weight")[(7 * 32)...].allSatisfy { $0 == 0 })
    }
}
