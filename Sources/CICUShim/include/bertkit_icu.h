// bertkit_icu.h: the only interface between BertKit and ICU.
//
// ICU's C functions are renamed per version by macros (u_charType -> u_charType_72), so Swift
// must never import <unicode/*.h> directly. This header exports unversioned, prefixed functions
// over plain C types; the implementation (bertkit_icu.c) is the only file including ICU headers.
#ifndef BERTKIT_ICU_H
#define BERTKIT_ICU_H

#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/// Unicode general category of a code point, as ICU's UCharCategory numbering
/// (0 = Cn unassigned, 1 = Lu, ... see BERTKIT_GC_* below).
int32_t bertkit_icu_general_category(int32_t codePoint);

/// 1 when the code point has the Unicode White_Space property (Rust's char::is_whitespace).
int32_t bertkit_icu_is_white_space(int32_t codePoint);

/// Canonical combining class (0 for starters).
int32_t bertkit_icu_combining_class(int32_t codePoint);

/// The Unicode version in which the code point was first assigned, as major*100 + minor
/// (e.g. 1100 for 11.0); 0 when unassigned.
int32_t bertkit_icu_char_age(int32_t codePoint);

/// The Unicode version implemented by the linked ICU, as major*100 + minor.
int32_t bertkit_icu_unicode_version(void);

/// Full (one-to-many, context-free) lowercase mapping of one code point, as written by
/// u_strToLower on the one-character string with the root locale.
/// Writes up to `capacity` code points to `out`; returns the number of code points of the
/// mapping, or -1 on an ICU error.
int32_t bertkit_icu_to_lower(int32_t codePoint, int32_t *out, int32_t capacity);

/// Full canonical decomposition (NFD) of one code point. Writes up to `capacity` code points to
/// `out` and returns their number (1 and the code point itself when it does not decompose), or -1
/// on an ICU error.
int32_t bertkit_icu_nfd_code_point(int32_t codePoint, int32_t *out, int32_t capacity);

/// Normalisation forms for bertkit_icu_normalize_utf8.
enum {
    BERTKIT_NFC = 0,
    BERTKIT_NFD = 1,
    BERTKIT_NFKC = 2,
    BERTKIT_NFKD = 3,
};

/// Normalises UTF-8 text. Returns the byte length of the result (which may exceed `capacity`,
/// in which case nothing useful was written and the caller retries with a larger buffer),
/// or a negative value on an ICU error (invalid form, invalid UTF-8 is replaced by U+FFFD).
int64_t bertkit_icu_normalize_utf8(int32_t form, const char *src, int64_t length,
                                   char *dst, int64_t capacity);

/// Opaque sentence-break iterator.
typedef struct bertkit_sentence_breaker bertkit_sentence_breaker;

/// Opens a sentence-break iterator for a locale ("" or "en" or "zh"); NULL on failure.
bertkit_sentence_breaker *bertkit_icu_sentence_breaker_open(const char *locale);
void bertkit_icu_sentence_breaker_close(bertkit_sentence_breaker *breaker);

/// Finds sentence boundaries in UTF-8 text. Writes up to `capacity` boundary byte offsets
/// (each the end of one sentence, the last one == length) to `out` and returns how many
/// boundaries there are in all (call again with a larger buffer if it exceeds capacity),
/// or -1 on an ICU error.
int64_t bertkit_icu_sentence_breaks(bertkit_sentence_breaker *breaker, const char *utf8,
                                    int64_t length, int64_t *out, int64_t capacity);

#ifdef __cplusplus
}
#endif
#endif
