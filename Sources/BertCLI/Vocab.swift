import Support
import ArgumentParser
import Foundation
import PretrainingData
import TextNormalization
import WordPiece

/// `bert vocab`: trains a WordPiece vocabulary from raw text files.
struct VocabCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "vocab",
        abstract: "Train a WordPiece vocabulary from raw text (.txt, .jsonl with \"text\", either .zst).")

    @Option(name: .long, parsing: .upToNextOption, help: "Input files, directories or globs: text (.txt), JSONL (.jsonl), or a classification file's train split (.tsv, .csv); any .zst.") var input: [String]
    @Option(help: "Vocabulary size, special tokens included.") var size: Int = 30000
    @Option(help: "Where to write vocab.txt.") var output: String
    @OptionGroup var casing: CasingOptions
    @OptionGroup var corpusColumns: CorpusColumnOptions
    @Option(help: "Do not merge pairs seen fewer times than this.") var minFrequency: Int = 2
    @Option(help: "Keep at most this many distinct characters (the most frequent).") var limitAlphabet: Int = 1000
    @OptionGroup var threading: ThreadOptions

    func validate() throws {
        if size < Vocabulary.specialTokens.count + 1 { throw ValidationError("--size must be more than \(Vocabulary.specialTokens.count)") }
        if minFrequency < 1 { throw ValidationError("--min-frequency must be at least 1") }
        if limitAlphabet < 1 { throw ValidationError("--limit-alphabet must be at least 1") }
    }

    func run() throws {
        let paths = try expandInputs(input)
        let start = Date()
        let basic = BasicTokenizer(normalizer: BertNormalizer(options: casing.normalizerOptions))
        let (counter, bytes, invalid) = try countWords(paths: paths, basic: basic, threads: threading.count,
                                                        opener: ClassificationTextChunks.opener(columns: corpusColumns.columns))
        if counter.distinct == 0 {
            throw UsageError("\(paths.joined(separator: " ")): no words found; give text files with content")
        }
        let counted = Date()
        var trainer = VocabularyTrainer(size: size)
        trainer.minFrequency = minFrequency
        trainer.limitAlphabet = limitAlphabet
        let tokens = trainer.train(counter)
        let vocabulary = try Vocabulary(tokens: tokens, source: output)
        try writeFileAtomically(vocabulary.fileContents, to: output)
        let mb = Double(bytes) / 1e6
        log(String(format: "bert vocab: %d tokens to %@ from %.1f MB (%d words, %d distinct); counting %.2fs, merges %.2fs",
                   tokens.count, output, mb, counter.total, counter.distinct,
                   counted.timeIntervalSince(start), Date().timeIntervalSince(counted)))
        if tokens.count < size {
            log("bert vocab: note: stopped at \(tokens.count) tokens: no pair occurs \(minFrequency)+ times (lower --min-frequency or add text)")
        }
        if invalid > 0 { log("bert vocab: \(invalid) invalid UTF-8 sequence(s) were replaced by U+FFFD and dropped") }
    }
}
