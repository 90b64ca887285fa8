import Support
import ArgumentParser
import Foundation
import TextNormalization
import ClassificationData
import PretrainingData
import WordPiece

/// `bert tokenize`: stdin lines → tokens or ids, one line out per line in, order kept.
struct TokenizeCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "tokenize",
        abstract: "Tokenize lines from stdin with a WordPiece vocabulary (parity with Hugging Face BertWordPieceTokenizer).")

    @Option(help: "The vocab.txt to use.") var vocab: String
    @OptionGroup var casing: CasingOptions
    @Flag(help: "Print ids instead of tokens.") var ids = false
    @Flag(help: "Each line is 'text_a<TAB>text_b': encode as a pair.") var pair = false
    @Flag(help: "Do not add [CLS] and [SEP].") var noSpecialTokens = false
    @OptionGroup var threading: ThreadOptions

    func validate() throws {
        if pair && noSpecialTokens { throw ValidationError("--pair needs the special tokens; drop --no-special-tokens") }
    }

    func run() throws {
        let vocabulary = try loadVocabulary(vocab)
        let tokenizer = BertTokenizer(vocabulary: vocabulary, options: casing.normalizerOptions)
        let format = LineTokenizer.Format(ids: ids, pair: pair, specialTokens: !noSpecialTokens)
        let runner = LineTokenizer(tokenizer: tokenizer, format: format, threads: threading.count)
        let stats = try runner.run(input: FileDescriptorSource(fd: 0), output: FileDescriptorWriter(fd: 1))
        if stats.invalidSequences > 0 {
            log("bert tokenize: \(stats.invalidSequences) invalid UTF-8 sequence(s) in the input were replaced by U+FFFD and dropped")
        }
    }
}

/// Casing flags shared by the text commands.
/// The columns `bert shards` and `bert vocab` read from classification files (.tsv/.csv): the train
/// split's texts as pre-training text.
struct CorpusColumnOptions: ParsableArguments {
    @Option(help: "In .tsv/.csv inputs (classification files, whose train-split rows are read): the text column.") var textColumn = "text"
    @Option(help: "… the second text of a pair, used when present.") var textBColumn = "text_b"
    @Option(help: "… the split column (rows of other splits are skipped; a file without one gives every row).") var splitColumn = "split"

    var columns: ClassificationColumns {
        ClassificationColumns(text: textColumn, textB: textBColumn, split: splitColumn, requireLabel: false)
    }
}

struct CasingOptions: ParsableArguments {
    @Flag(help: "Keep case and accents (a cased vocabulary).") var cased = false
    @Flag(help: "Apply NFKC first (full-width forms, ligatures); not done by HF or google-research/bert.") var nfkc = false

    var normalizerOptions: BertNormalizerOptions {
        var o = BertNormalizerOptions(lowercase: !cased)
        o.nfkc = nfkc
        return o
    }
}
