// bertkit_icu.c: unversioned wrappers over ICU's C API. See bertkit_icu.h.
#include "bertkit_icu.h"

#include <stdlib.h>
#include <string.h>
#include <unicode/ubrk.h>
#include <unicode/uchar.h>
#include <unicode/unorm2.h>
#include <unicode/ustring.h>
#include <unicode/utext.h>
#include <unicode/uversion.h>

_Static_assert(sizeof(UChar32) == sizeof(int32_t), "UChar32 must be 32 bits");
_Static_assert(U_UNASSIGNED == 0, "general category numbering changed");
_Static_assert(U_NON_SPACING_MARK == 6, "general category numbering changed");
_Static_assert(U_OTHER_PUNCTUATION == 23, "general category numbering changed");

int32_t bertkit_icu_general_category(int32_t c) { return (int32_t)u_charType(c); }

int32_t bertkit_icu_is_white_space(int32_t c) { return u_isUWhiteSpace(c) ? 1 : 0; }

int32_t bertkit_icu_combining_class(int32_t c) { return (int32_t)u_getCombiningClass(c); }

int32_t bertkit_icu_char_age(int32_t c) {
    UVersionInfo v;
    u_charAge(c, v);
    return (int32_t)v[0] * 100 + (int32_t)v[1];
}

int32_t bertkit_icu_unicode_version(void) {
    UVersionInfo v;
    u_getUnicodeVersion(v);
    return (int32_t)v[0] * 100 + (int32_t)v[1];
}

/// The code points of UTF-16 `s` (n units): the first `capacity` go to `out`; returns how many there are.
static int32_t code_points(const UChar *s, int32_t n, int32_t *out, int32_t capacity) {
    int32_t count = 0;
    for (int32_t i = 0; i < n;) {
        UChar32 cp;
        U16_NEXT(s, i, n, cp);
        if (count < capacity) out[count] = cp;
        count++;
    }
    return count;
}

int32_t bertkit_icu_to_lower(int32_t c, int32_t *out, int32_t capacity) {
    UChar src[2];
    int32_t srcLen = 0;
    UBool err = 0;
    U16_APPEND(src, srcLen, 2, c, err);
    if (err) return -1;
    UChar dst[16];
    UErrorCode status = U_ZERO_ERROR;
    int32_t n = u_strToLower(dst, 16, src, srcLen, "", &status);
    if (U_FAILURE(status)) return -1;
    return code_points(dst, n, out, capacity);
}

int32_t bertkit_icu_nfd_code_point(int32_t c, int32_t *out, int32_t capacity) {
    UErrorCode status = U_ZERO_ERROR;
    const UNormalizer2 *nfd = unorm2_getNFDInstance(&status);
    if (U_FAILURE(status)) return -1;
    UChar buf[32];
    int32_t n = unorm2_getDecomposition(nfd, c, buf, 32, &status);
    if (U_FAILURE(status)) return -1;
    if (n < 0) {  // no decomposition
        if (capacity > 0) out[0] = c;
        return 1;
    }
    return code_points(buf, n, out, capacity);
}

static const UNormalizer2 *instance(int32_t form, UErrorCode *status) {
    switch (form) {
    case BERTKIT_NFC: return unorm2_getNFCInstance(status);
    case BERTKIT_NFD: return unorm2_getNFDInstance(status);
    case BERTKIT_NFKC: return unorm2_getNFKCInstance(status);
    case BERTKIT_NFKD: return unorm2_getNFKDInstance(status);
    default: *status = U_ILLEGAL_ARGUMENT_ERROR; return NULL;
    }
}

int64_t bertkit_icu_normalize_utf8(int32_t form, const char *src, int64_t length, char *dst,
                                   int64_t capacity) {
    if (length > INT32_MAX / 4) return -2;
    UErrorCode status = U_ZERO_ERROR;
    const UNormalizer2 *norm = instance(form, &status);
    if (U_FAILURE(status)) return -1;

    // UTF-8 -> UTF-16 (invalid sequences become U+FFFD).
    int32_t len16 = 0;
    status = U_ZERO_ERROR;
    u_strFromUTF8WithSub(NULL, 0, &len16, src, (int32_t)length, 0xFFFD, NULL, &status);
    if (status != U_BUFFER_OVERFLOW_ERROR && U_FAILURE(status)) return -1;
    UChar *in16 = malloc(sizeof(UChar) * (size_t)(len16 + 1));
    if (!in16) return -1;
    status = U_ZERO_ERROR;
    u_strFromUTF8WithSub(in16, len16 + 1, NULL, src, (int32_t)length, 0xFFFD, NULL, &status);
    if (U_FAILURE(status)) { free(in16); return -1; }

    // Normalise; compatibility forms can grow the text up to 18x, so size on demand.
    status = U_ZERO_ERROR;
    int32_t outLen16 = unorm2_normalize(norm, in16, len16, NULL, 0, &status);
    if (status != U_BUFFER_OVERFLOW_ERROR && U_FAILURE(status)) { free(in16); return -1; }
    UChar *out16 = malloc(sizeof(UChar) * (size_t)(outLen16 + 1));
    if (!out16) { free(in16); return -1; }
    status = U_ZERO_ERROR;
    unorm2_normalize(norm, in16, len16, out16, outLen16 + 1, &status);
    free(in16);
    if (U_FAILURE(status)) { free(out16); return -1; }

    // UTF-16 -> UTF-8.
    int32_t outLen8 = 0;
    status = U_ZERO_ERROR;
    u_strToUTF8(dst, (int32_t)(capacity > INT32_MAX ? INT32_MAX : capacity), &outLen8, out16,
                outLen16, &status);
    free(out16);
    if (status == U_BUFFER_OVERFLOW_ERROR || status == U_STRING_NOT_TERMINATED_WARNING ||
        U_SUCCESS(status))
        return outLen8;
    return -1;
}

struct bertkit_sentence_breaker {
    UBreakIterator *iter;
    UText *text;
};

bertkit_sentence_breaker *bertkit_icu_sentence_breaker_open(const char *locale) {
    UErrorCode status = U_ZERO_ERROR;
    UBreakIterator *iter = ubrk_open(UBRK_SENTENCE, locale, NULL, 0, &status);
    if (U_FAILURE(status)) return NULL;
    bertkit_sentence_breaker *b = calloc(1, sizeof(*b));
    if (!b) { ubrk_close(iter); return NULL; }
    b->iter = iter;
    return b;
}

void bertkit_icu_sentence_breaker_close(bertkit_sentence_breaker *b) {
    if (!b) return;
    if (b->text) utext_close(b->text);
    ubrk_close(b->iter);
    free(b);
}

int64_t bertkit_icu_sentence_breaks(bertkit_sentence_breaker *b, const char *utf8, int64_t length,
                                    int64_t *out, int64_t capacity) {
    UErrorCode status = U_ZERO_ERROR;
    // UText over UTF-8 reports native indexes as byte offsets.
    b->text = utext_openUTF8(b->text, utf8, length, &status);
    if (U_FAILURE(status)) return -1;
    ubrk_setUText(b->iter, b->text, &status);
    if (U_FAILURE(status)) return -1;
    int64_t count = 0;
    ubrk_first(b->iter);
    for (int32_t p = ubrk_next(b->iter); p != UBRK_DONE; p = ubrk_next(b->iter)) {
        if (count < capacity) out[count] = p;
        count++;
    }
    return count;
}
