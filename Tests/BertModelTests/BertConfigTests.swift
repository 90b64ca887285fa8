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

    /// Sizes that no machine holds are refused before a layout is built. Regression for the config fuzz
    /// target's out-of-memory input (Tests/Fuzz/Corpus/config/regression-oom-layers.json): 3.8e16 layers
    /// validated and the layout was built layer after layer until the process was killed.
    func testSizesBeyondAnyMachineAreRefused() throws {
        let fuzzed = try JSONDecoder().decode(BertConfig.self, from: Data(#"{ "num_hidden_layers": 37777777777777777 }"#.utf8))
        XCTAssertThrowsError(try fuzzed.validate(path: "x/config.json")) { e in
            XCTAssertTrue("\(e)".contains("num_hidden_layers") && "\(e)".contains("x/config.json"), "\(e)")
        }
        // Each size within its bound, the product not: 16M words × 65,536 wide.
        let wide = BertConfig(vocabSize: 1 << 24, hiddenSize: 1 << 16, numHiddenLayers: 1, numAttentionHeads: 1, intermediateSize: 1)
        XCTAssertThrowsError(try wide.validate()) { e in XCTAssertTrue("\(e)".contains("parameters"), "\(e)") }
        for field in ["vocab_size", "intermediate_size", "max_position_embeddings", "type_vocab_size"] {
            let c = try JSONDecoder().decode(BertConfig.self, from: Data(#"{"\#(field)": 4611686018427387904}"#.utf8))
            XCTAssertThrowsError(try c.validate()) { e in XCTAssertTrue("\(e)".contains(field), "\(e)") }
        }
        // bert-large and a long-context model still validate.
        XCTAssertNoThrow(try BertConfig(vocabSize: 30522, hiddenSize: 1024, numHiddenLayers: 24, numAttentionHeads: 16, intermediateSize: 4096).validate())
        XCTAssertNoThrow(try BertConfig(vocabSize: 250_002, hiddenSize: 1024, numHiddenLayers: 24, numAttentionHeads: 16, intermediateSize: 4096,
                                        maxPositionEmbeddings: 8192).validate())
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
