import CICUShim
import Foundation

/// Sentence boundaries from ICU's sentence break iterator, for free text and JSONL documents.
/// One per thread (the ICU iterator is stateful).
public final class SentenceSplitter {
    let breaker: OpaquePointer
    var offsets: [Int64] = .init(repeating: 0, count: 256)

    /// A splitter for a locale. The default, English with ICU's standard suppressions
    /// (`@ss=standard`), does not break after abbreviations such as "Mr." and handles Chinese
    /// full stops as well.
    public init?(locale: String = "en@ss=standard") {
        guard let b = bertkit_icu_sentence_breaker_open(locale) else { return nil }
        breaker = b
    }

    deinit { bertkit_icu_sentence_breaker_close(breaker) }

    /// End offsets (exclusive, in bytes) of the sentences of UTF-8 text; the last equals its length.
    public func boundaries(_ text: UnsafeBufferPointer<UInt8>) -> ArraySlice<Int64> {
        guard !text.isEmpty else { return [] }
        while true {
            let n = text.withMemoryRebound(to: CChar.self) { t in
                offsets.withUnsafeMutableBufferPointer { o in
                    bertkit_icu_sentence_breaks(breaker, t.baseAddress, Int64(t.count), o.baseAddress, Int64(o.count))
                }
            }
            if n < 0 { return [Int64(text.count)] }  // ICU failure: the whole text as one sentence
            if Int(n) <= offsets.count { return offsets[0..<Int(n)] }
            offsets = .init(repeating: 0, count: Int(n))
        }
    }

    /// Sentences of a string (trailing whitespace kept as ICU returns it).
    public func split(_ text: String) -> [String] {
        var t = text
        return t.withUTF8 { p in
            var start = 0
            return boundaries(p).map { end in
                defer { start = Int(end) }
                return String(decoding: UnsafeBufferPointer(rebasing: p[start..<Int(end)]), as: UTF8.self)
            }
        }
    }
}
