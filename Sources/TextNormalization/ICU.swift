import CICUShim

/// Unicode general categories, numbered as ICU's `UCharCategory` (pinned by static asserts in the shim).
public enum GeneralCategory: Int32, Sendable {
    case unassigned = 0, uppercaseLetter, lowercaseLetter, titlecaseLetter, modifierLetter, otherLetter
    case nonSpacingMark, enclosingMark, combiningSpacingMark
    case decimalDigitNumber, letterNumber, otherNumber
    case spaceSeparator, lineSeparator, paragraphSeparator
    case control, format, privateUse, surrogate
    case dashPunctuation, startPunctuation, endPunctuation, connectorPunctuation, otherPunctuation
    case mathSymbol, currencySymbol, modifierSymbol, otherSymbol
    case initialPunctuation, finalPunctuation

    /// Unicode's "Other" group: Cc, Cf, Cn, Co, Cs.
    public var isOther: Bool {
        switch self {
        case .unassigned, .control, .format, .privateUse, .surrogate: return true
        default: return false
        }
    }

    /// Unicode's "Punctuation" group: Pc, Pd, Ps, Pe, Pi, Pf, Po.
    public var isPunctuation: Bool {
        switch self {
        case .dashPunctuation, .startPunctuation, .endPunctuation, .connectorPunctuation,
             .otherPunctuation, .initialPunctuation, .finalPunctuation:
            return true
        default: return false
        }
    }
}

/// Thin Swift face of the ICU shim. Everything here is a pure function of its input and the ICU
/// data linked in; nothing is cached globally.
public enum ICU {
    /// The Unicode version of the linked ICU, e.g. "15.0".
    public static var unicodeVersion: String {
        let v = bertkit_icu_unicode_version()
        return "\(v / 100).\(v % 100)"
    }

    /// General category of a code point.
    @inlinable public static func category(_ cp: UInt32) -> GeneralCategory {
        GeneralCategory(rawValue: bertkit_icu_general_category(Int32(bitPattern: cp))) ?? .unassigned
    }

    /// Unicode White_Space property.
    @inlinable public static func isWhiteSpace(_ cp: UInt32) -> Bool {
        bertkit_icu_is_white_space(Int32(bitPattern: cp)) != 0
    }

    /// Canonical combining class.
    @inlinable public static func combiningClass(_ cp: UInt32) -> Int {
        Int(bertkit_icu_combining_class(Int32(bitPattern: cp)))
    }

    /// Version (major*100+minor) in which the code point was assigned; 0 if unassigned.
    @inlinable public static func age(_ cp: UInt32) -> Int {
        Int(bertkit_icu_char_age(Int32(bitPattern: cp)))
    }

    /// Full, context-free lowercase mapping of one code point.
    public static func lowercase(_ cp: UInt32) -> [UInt32] {
        var out = [Int32](repeating: 0, count: 8)
        let n = bertkit_icu_to_lower(Int32(bitPattern: cp), &out, 8)
        guard n > 0, n <= 8 else { return [cp] }
        return out[0..<Int(n)].map { UInt32(bitPattern: $0) }
    }

    /// Normalisation forms.
    public enum Form: Int32, Sendable { case nfc = 0, nfd = 1, nfkc = 2, nfkd = 3 }

    /// Normalises UTF-8 bytes (invalid sequences become U+FFFD).
    public static func normalize(_ bytes: UnsafeBufferPointer<UInt8>, form: Form) -> [UInt8] {
        var capacity = max(16, bytes.count * 3 + 16)
        while true {
            var out = [UInt8](repeating: 0, count: capacity)
            let n = out.withUnsafeMutableBufferPointer { dst in
                bytes.withMemoryRebound(to: CChar.self) { src in
                    dst.withMemoryRebound(to: CChar.self) { d in
                        bertkit_icu_normalize_utf8(form.rawValue, src.baseAddress, Int64(src.count),
                                                   d.baseAddress, Int64(capacity))
                    }
                }
            }
            if n < 0 { return Array(bytes) }  // ICU failure: leave text as it is
            if Int(n) <= capacity { out.removeSubrange(Int(n)...); return out }
            capacity = Int(n)
        }
    }

    /// Normalises a string.
    public static func normalize(_ text: String, form: Form) -> String {
        var t = text
        return t.withUTF8 { String(decoding: normalize($0, form: form), as: UTF8.self) }
    }

    /// Canonical decomposition of one code point.
    public static func nfd(_ cp: UInt32) -> [UInt32] {
        var out = (Int32(0), Int32(0), Int32(0), Int32(0), Int32(0), Int32(0), Int32(0), Int32(0))
        return withUnsafeMutableBytes(of: &out) { raw in
            let p = raw.baseAddress!.assumingMemoryBound(to: Int32.self)
            let n = bertkit_icu_nfd_code_point(Int32(bitPattern: cp), p, 8)
            guard n > 0, n <= 8 else { return [cp] }
            return (0..<Int(n)).map { UInt32(bitPattern: p[$0]) }
        }
    }
}
