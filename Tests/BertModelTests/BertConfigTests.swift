import BertModel
import Foundation
import TestSupport
import XCTest

final class BertConfigTests: XCTestCase {
    /// bert-base-uncased's config.json as transformers writes it (keys copied from the model hub's file).
    let bertBase = """
    {"architectures": ["BertForMaskedLM"], "attention_probs_dropout_prob": 0.1, "gradient_checkpointing": false,
     "hidden_act": "gelu", "hidden_dropout_prob": 0.1, "hidden_size": 768, "initializer_range": 0.02,
     "intermediate_size": 3072, "layer_norm_eps": 1e-12, "max_position_embeddings": 512, "model_type": "bert",
     "num_attention_heads": 12, "num_hidden_layers": 12, "pad_token_id": 0, "position_embedding_type": "absolute",
     "transformers_version": "4.6.0.dev0", "type_vocab_size": 2, "use_cache": true, "vocab_size": 30522}
    """

    func testDecodesHuggingFaceConfigAndRoundTrips() throws {
        let c = try JSONDecoder().decode(BertConfig.self, from: Data(bertBase.utf8))
        XCTAssertEqual(c.hiddenSize, 768)
        XCTAssertEqual(c.numHiddenLayers, 12)
        XCTAssertEqual(c.headSize, 64)
        XCTAssertEqual(c.layerNormEps, 1e-12)
        XCTAssertNoThrow(try c.validate())
        let again = try JSONDecoder().decode(BertConfig.self, from: c.encoded())
        XCTAssertEqual(again, c)
        let keys = try XCTUnwrap(JSONSerialization.jsonObject(with: c.encoded()) as? [String: Any]).keys
        XCTAssertTrue(keys.contains("num_attention_heads") && keys.contains("layer_norm_eps"))
    }

    func testMissingKeysTakeBertBaseDefaults() throws {
        let c = try JSONDecoder().decode(BertConfig.self, from: Data(#"{"hidden_size": 64, "num_attention_heads": 4}"#.utf8))
        XCTAssertEqual(c.hiddenSize, 64)
        XCTAssertEqual(c.vocabSize, 30522)
        XCTAssertEqual(c.intermediateSize, 3072)
    }

    func testPresets() throws {
        let expected: [String: (Int, Int, Int, Int)] = [
            "tiny": (2, 128, 2, 512), "mini": (4, 256, 4, 1024), "small": (4, 512, 8, 2048),
            "medium": (8, 512, 8, 2048), "base": (12, 768, 12, 3072), "minilm": (6, 384, 12, 1536),
        ]
        for (name, (l, h, a, i)) in expected {
            let c = try BertConfig.preset(name, vocabSize: 1000)
            XCTAssertEqual([c.numHiddenLayers, c.hiddenSize, c.numAttentionHeads, c.intermediateSize], [l, h, a, i], name)
            XCTAssertEqual(c.vocabSize, 1000)
        }
        XCTAssertThrowsError(try BertConfig.preset("huge", vocabSize: 10))
    }

    func testInvalidFieldsAreNamed() throws {
        var c = BertConfig(hiddenSize: 30, numAttentionHeads: 4)
        XCTAssertThrowsError(try c.validate(path: "x/config.json")) { e in
            XCTAssertTrue("\(e)".contains("num_attention_heads") && "\(e)".contains("x/config.json"), "\(e)")
        }
        c = BertConfig(hiddenAct: "swish")
        XCTAssertThrowsError(try c.validate()) { e in XCTAssertTrue("\(e)".contains("hidden_act"), "\(e)") }
        let dir = Fixtures.temporaryDirectory()
        let path = dir.appendingPathComponent("config.json").path
        try Data("not json".utf8).write(to: URL(fileURLWithPath: path))
        XCTAssertThrowsError(try BertConfig.load(path: path)) { e in XCTAssertTrue("\(e)".contains(path), "\(e)") }
    }
}
