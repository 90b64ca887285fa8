#!/usr/bin/env python3
"""Write the tokenizer edge-case fixtures, with Hugging Face `tokenizers` as the oracle.

Writes `Tests/Fixtures/tokenizer/edge_cases.json` and copies the vocabulary next to it
(`Tests/Fixtures/tokenizer/bert-base-uncased-vocab.txt`). Every case is encoded with
`tokenizers.BertWordPieceTokenizer(vocab, lowercase=L).encode(text[, text_b], add_special_tokens=...)`
for L = True and L = False, exactly what `bert tokenize --vocab VOCAB [--cased] [--pair]` must print.

JSON layout:

    {"generator": "<command line>", "tokenizers_version": "0.23.3",
     "vocab": "bert-base-uncased-vocab.txt", "max_input_chars_per_word": 100,
     "cases": [{"name": "...", "text": "...", "lowercase": true, "add_special_tokens": true,
                "tokens": [...], "ids": [...], "type_ids": [...],
                # only for pairs:   "text_b": "...",
                # only when the CLI input is not text.encode("utf-8"): "utf8_hex": "...",
                "cli": true}, ...]}

`cli` is false when the case cannot be fed to `bert tokenize` as one stdin line (the text contains
"\\n", or a pair whose first text contains a TAB). `utf8_hex` gives the raw stdin bytes for cases that
model invalid UTF-8 (the CLI replaces each invalid sequence with U+FFFD, as Python's
`bytes.decode("utf-8", errors="replace")` does; `text` is that decoded string).

Usage (from the repository root):

    .venv/bin/python Tests/Scripts/make_tokenizer_fixtures.py [--vocab /work/shared/data/bert-base-uncased-vocab.txt]

Without --vocab it uses the copy already in Tests/Fixtures/tokenizer/ (or ../shared/data when the copy
is missing).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
from pathlib import Path

import tokenizers
from tokenizers import BertWordPieceTokenizer

ROOT = Path(__file__).resolve().parents[2]
FIXTURES = ROOT / "Tests/Fixtures/tokenizer"
VOCAB_NAME = "bert-base-uncased-vocab.txt"
SHARED_VOCAB = ROOT.parent / "shared/data" / VOCAB_NAME


def long_word(n: int) -> str:
    letters = "abcdefghijklmnopqrstuvwxyz"
    return "".join(letters[i % 26] for i in range(n))


# (name, text) single-sentence cases. Keep names unique and stable: the Swift tests refer to some.
SINGLE: list[tuple[str, str]] = [
    # --- plain text
    ("plain_sentence", "The quick brown fox jumps over the lazy dog."),
    ("hello_world", "Hello, World!"),
    ("moby_dick", "Call me Ishmael. Some years ago--never mind how long precisely--having little or no money in my purse."),
    ("all_caps", "ALL CAPS SENTENCE WITH SHOUTING"),
    ("mixed_case", "MiXeD CaSe wOrDs"),
    ("wordpiece_split", "unaffable tokenization embeddings"),
    ("hello_accents_whitespace", "HäLLo!how  \t Are yoU?  "),
    # --- accents and combining marks
    ("unwanted_precomposed", "UNwant\u00E9d,running"),
    ("unwanted_decomposed", "UNwante\u0301d,running"),
    ("cafe_precomposed", "Caf\u00E9 r\u00E9sum\u00E9 na\u00EFve fa\u00E7ade \u00C5ngstr\u00F6m"),
    ("cafe_decomposed", "Cafe\u0301 re\u0301sume\u0301 nai\u0308ve fac\u0327ade A\u030Angstro\u0308m"),
    ("mn_standalone", "\u0301"),
    ("mn_word_start", "\u0301abc \u0300"),
    ("mn_between_letters", "a\u0300b x\u0301\u0302\u0303y"),
    ("mn_stacked_reorder", "a\u0301\u0323b a\u0323\u0301b"),
    ("mc_devanagari", "\u0915\u093E \u0939\u093F\u0928\u094D\u0926\u0940 \u0915\u0903"),
    ("me_enclosing", "a\u20DDb 1\u20E3 x\u0488y"),
    ("mn_newer_than_unicode8", "a\u0898b \u1885x a\u1AC1b"),
    ("variation_selector", "\u2764\uFE0F ok\uFE0E"),
    ("hebrew_niqqud", "\u05E9\u05B8\u05C1\u05DC\u05D5\u05B9\u05DD"),
    ("vietnamese", "Ti\u1EBFng Vi\u1EC7t c\u00F3 d\u1EA5u"),
    ("precomposed_vs_nfd_greek", "\u1F08\u03B8\u1F75\u03BD\u03B1 \u0391\u0313\u03B8\u03B7\u0301\u03BD\u03B1"),
    # --- control, format and whitespace characters
    ("nul", "a\u0000b"),
    ("soh", "a\u0001b"),
    ("del", "a\u007Fb"),
    ("nel_0085", "a\u0085b"),
    ("c1_controls", "a\u0080\u0090\u009Fb"),
    ("zwsp_200b", "a\u200Bb"),
    ("zwnj_zwj", "a\u200Cb\u200Dc"),
    ("lrm_rlm", "a\u200E\u200Fb"),
    ("bidi_embedding", "\u202Aabc\u202C \u2066def\u2069"),
    ("bom_feff", "\uFEFFhello \uFEFFworld"),
    ("soft_hyphen", "co\u00ADoperate"),
    ("replacement_char", "a\uFFFDb \uFFFD"),
    ("line_separator_2028", "a\u2028b"),
    ("paragraph_separator_2029", "a\u2029b"),
    ("nbsp_00a0", "a\u00A0b"),
    ("narrow_nbsp_202f", "a\u202Fb"),
    ("ideographic_space_3000", "a\u3000b"),
    ("ogham_space_1680", "a\u1680b"),
    ("en_em_spaces", "a\u2002b\u2003c\u2009d\u200Ae"),
    ("mongolian_vowel_separator_180e", "a\u180Eb"),
    ("vt_ff", "a\u000Bb\u000Cc"),
    ("file_group_separators", "a\u001Cb\u001Dc\u001Ed\u001Fe"),
    ("tabs", "a\tb\t\tc"),
    ("carriage_return", "a\rb\r"),
    ("crlf_in_text", "a\r\nb"),
    ("newline_in_text", "first line\nsecond line"),
    ("private_use", "a\uE000b \U000F0000"),
    ("cf_newer_than_unicode8", "a\u0890b a\U00013430b"),
    ("unassigned_0378", "a\u0378b"),
    ("noncharacter_fffe", "a\uFFFEb \U0010FFFF"),
    ("arabic_number_sign_cf", "\u0600\u0661\u0662"),
    ("only_controls", "\u200B\u0000\u00AD"),
    # --- CJK and other scripts
    ("cjk_basic", "\u6211\u7231\u5317\u4EAC\u5929\u5B89\u95E8"),
    ("cjk_mixed_latin", "BERT\u6A21\u578B\u57282018\u5E74\u53D1\u5E03\u3002"),
    ("cjk_punctuation", "\u4F60\u597D\uFF0C\u4E16\u754C\uFF01\u300C\u5F15\u7528\u300D\u3001\u300A\u4E66\u300B"),
    ("cjk_ext_a", "\u3400\u4DB5\u4DBF"),
    ("cjk_ext_b", "\U00020000\U0002A6D6"),
    ("cjk_ext_c_d", "\U0002A700\U0002B740"),
    ("cjk_ext_e_hf_gap_2b820", "\U0002B820\U0002B8FF\U0002B91F"),
    ("cjk_ext_e_2b920", "\U0002B920\U0002CEA1"),
    ("cjk_ext_f_g", "\U0002CEB0\U00030000\U00031350"),
    ("cjk_compat_f900", "\uF900\uFA0E\uFAD9"),
    ("cjk_compat_supplement", "\U0002F800\U0002FA1D"),
    ("cjk_radicals_not_cjk", "\u2E80\u2F00\u31C0"),
    ("hangul", "\uC548\uB155\uD558\uC138\uC694 \uC138\uACC4"),
    ("hangul_jamo", "\u1100\u1161\u11A8"),
    ("kana", "\u3053\u3093\u306B\u3061\u306F \u30AB\u30BF\u30AB\u30CA"),
    ("halfwidth_katakana", "\uFF76\uFF80\uFF76\uFF85 \uFF8A\uFF9F"),
    ("thai", "\u0E2A\u0E27\u0E31\u0E2A\u0E14\u0E35\u0E04\u0E23\u0E31\u0E1A"),
    ("arabic", "\u0645\u0631\u062D\u0628\u0627 \u0628\u0627\u0644\u0639\u0627\u0644\u0645\u061F"),
    ("arabic_harakat", "\u0643\u064E\u062A\u064E\u0628\u064E"),
    ("devanagari", "\u0928\u092E\u0938\u094D\u0924\u0947 \u0926\u0941\u0928\u093F\u092F\u093E\u0964"),
    ("cyrillic", "\u041F\u0440\u0438\u0432\u0435\u0442, \u041C\u0418\u0420! \u0401\u043B\u043A\u0430"),
    # --- emoji
    ("emoji_old_1f600", "\U0001F600"),
    ("emoji_1f970", "I \U0001F970 it"),
    ("emoji_1fae0", "melting\U0001FAE0face"),
    ("emoji_flags", "\U0001F1FA\U0001F1F8\U0001F1EF\U0001F1F5"),
    ("emoji_skin_tone", "\U0001F44D\U0001F3FD"),
    ("emoji_zwj_family", "\U0001F468\u200D\U0001F469\u200D\U0001F467\u200D\U0001F466"),
    ("emoji_keycap", "1\uFE0F\u20E3 #\uFE0F\u20E3"),
    ("emoji_in_words", "hi\U0001F600there \u263A\u2764"),
    # --- compatibility forms and casing
    ("fullwidth", "\uFF21\uFF22\uFF23\uFF11\uFF12\uFF13\uFF01"),
    ("turkish_dotted_i", "\u0130stanbul \u0131\u015F\u0131k D\u0130YARBAKIR"),
    ("i_combining_dot", "i\u0307 I\u0307"),
    ("german_sharp_s", "Stra\u00DFe STRASSE \u1E9E"),
    ("greek_final_sigma", "\u039F\u0394\u039F\u03A3"),
    ("greek_sisyphus", "\u03A3\u03AF\u03C3\u03C5\u03C6\u03BF\u03C2 \u1F48\u0394\u03A5\u03A3\u03A3\u0395\u038E\u03A3"),
    ("greek_varia_1fef", "a\u1FEFb \u037E"),
    ("ligature_fi", "\uFB01nance \uFB02ow \uFB00"),
    ("titlecase_digraphs", "\u01C4 \u01C5 \u01C6"),
    ("letterlike", "\u212A \u212B \u2126 \u210C \u2122"),
    ("super_subscripts", "x\u00B2 H\u2082O \u2167 \u2460"),
    ("newer_lowercase_mappings", "\uA7CB\uA7DC \u1C89"),
    ("symbols", "\u00A9\u00AE\u2122\u00B0\u00B1\u00D7\u00F7\u20AC\u00A3\u00A5"),
    # --- word length limit (HF: 100 characters per pre-token; google-research/bert: 200)
    ("word_99_chars", long_word(99)),
    ("word_100_chars", long_word(100)),
    ("word_101_chars", long_word(101)),
    ("word_150_chars", long_word(150)),
    ("word_200_chars", long_word(200)),
    ("word_201_chars", long_word(201)),
    ("word_250_chars", long_word(250)),
    ("word_100_in_sentence", "before " + long_word(100) + " after"),
    ("word_101_in_sentence", "before " + long_word(101) + " after"),
    ("word_101_split_by_punct", long_word(60) + "," + long_word(60)),
    ("word_101_x", "x" * 101),
    ("word_decomposed_60_accents", "e\u0301" * 60),
    ("word_precomposed_101_accents", "\u00E9" * 101),
    ("word_100_cjk_run", "\u4E2D" * 120),
    ("word_100_emoji", "\U0001F600" * 101),
    # --- special tokens in raw text
    ("literal_mask", "[MASK]"),
    ("literal_mask_lower", "[mask]"),
    ("literal_mask_title", "[Mask]"),
    ("mask_inside_word", "a[MASK]b"),
    ("mask_in_sentence", "the [MASK] is here"),
    ("mask_twice", "[MASK][MASK]"),
    ("mask_spaced", "[ MASK ]"),
    ("mask_unclosed", "[MASK"),
    ("mask_then_accent", "[MASK]\u00E9"),
    ("literal_cls_sep", "[CLS] hello [SEP]"),
    ("literal_unk", "[UNK]"),
    ("literal_pad", "[PAD]"),
    ("literal_hashes", "## ##ing un##able"),
    ("unused_token", "[unused0]"),
    # --- empty and whitespace-only
    ("empty", ""),
    ("whitespace_only", "   \t  "),
    ("single_space", " "),
    # --- punctuation
    ("unicode_quotes", "\u00ABBonjour\u00BB \u2018single\u2019 \u201Cdouble\u201D \u201Elow\u201C"),
    ("ellipsis_inverted", "Wait\u2026 \u00BFQu\u00E9? \u00A1Hola! \u00A7 12 \u00B6 3"),
    ("ascii_symbols_as_punct", "$5 + 3 < 4 = 7 > 2 ^ ` | ~"),
    ("ascii_all_punct", "!\"#$%&'()*+,-./:;<=>?@[\\]^_`{|}~"),
    ("dashes", "a-b \u2013 c \u2014 d \u2012 e \u2010 f"),
    ("abbreviations", "e.g. U.S.A. Mr. Smith's"),
    ("repeated_punct", "...!!!???"),
    ("handles_hashtags", "@user #hashtag C++ & C#"),
    ("percent_money", "50% off!!! \u20AC100 \u00A35"),
    ("brackets", "(parenthetical) [bracketed] {braced} <angled>"),
    ("punct_newer_than_unicode8", "a\u2E43b a\u2E52b a\u1144Bb"),
    ("canadian_chi_sign_166d", "a\u166Db"),
    ("middle_dot_and_bullets", "a\u00B7b \u2022 c \u2027 d"),
    # --- digits, urls, apostrophes
    ("digits", "1234567890 3.14159 1,000,000"),
    ("other_digits", "\u0661\u0662\u0663 \u0967\u0968 \uFF14\uFF15"),
    ("url", "https://www.example.com/path?q=1&r=2#frag"),
    ("email", "user.name@example.co.uk"),
    ("apostrophes", "don't can\u2019t it's O'Reilly rock 'n' roll"),
    ("possessive_plural", "the students' books"),
]

# (name, raw bytes) cases for invalid UTF-8 on the CLI's stdin.
INVALID_UTF8: list[tuple[str, bytes]] = [
    ("invalid_utf8_latin1_byte", b"caf\xe9 au lait"),
    ("invalid_utf8_truncated", b"abc\xe4\xb8"),
    ("invalid_utf8_lone_continuation", b"a\x80b\xbfc"),
    ("invalid_utf8_overlong", b"a\xc0\xafb"),
    ("invalid_utf8_surrogate", b"a\xed\xa0\x80b"),
]

PAIRS: list[tuple[str, str, str]] = [
    ("pair_simple", "Hello world", "How are you?"),
    ("pair_special_tokens", "[MASK] test", "second [SEP] part"),
    ("pair_empty_a", "", "only b"),
    ("pair_empty_b", "only a", ""),
    ("pair_both_empty", "", ""),
    ("pair_cjk_english", "\u4E2D\u6587\u53E5\u5B50\u3002", "An English sentence."),
    ("pair_accents", "UNwant\u00E9d,running", "Caf\u00E9"),
    ("pair_long_word", long_word(101), "short"),
    ("pair_b_with_tab", "a", "b\tc"),
]

SPECIAL_OFF = ["plain_sentence", "literal_mask", "empty", "cjk_basic", "unwanted_precomposed"]


def encode_case(tok, name, text, lowercase, text_b=None, add_special=True, utf8_hex=None):
    enc = tok.encode(text, text_b, add_special_tokens=add_special) if text_b is not None \
        else tok.encode(text, add_special_tokens=add_special)
    case = {"name": name, "text": text}
    if text_b is not None:
        case["text_b"] = text_b
    if utf8_hex is not None:
        case["utf8_hex"] = utf8_hex
    case.update({
        "lowercase": lowercase,
        "add_special_tokens": add_special,
        "tokens": enc.tokens,
        "ids": enc.ids,
        "type_ids": enc.type_ids,
        "cli": "\n" not in text and "\n" not in (text_b or "") and (text_b is None or "\t" not in text),
    })
    return case


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--vocab", type=Path, default=None, help="vocab.txt to copy into the fixtures and use")
    ap.add_argument("--output", type=Path, default=FIXTURES / "edge_cases.json")
    args = ap.parse_args()

    FIXTURES.mkdir(parents=True, exist_ok=True)
    dest_vocab = FIXTURES / VOCAB_NAME
    src = args.vocab or (dest_vocab if dest_vocab.exists() else SHARED_VOCAB)
    if src.resolve() != dest_vocab.resolve():
        shutil.copyfile(src, dest_vocab)
        os.chmod(dest_vocab, 0o644)

    names = [n for n, _ in SINGLE] + [n for n, _ in INVALID_UTF8] + [n for n, _, _ in PAIRS]
    dup = {n for n in names if names.count(n) > 1}
    if dup:
        sys.exit(f"duplicate case names: {sorted(dup)}")

    cases = []
    for lowercase in (True, False):
        tok = BertWordPieceTokenizer(str(dest_vocab), lowercase=lowercase)
        for name, text in SINGLE:
            cases.append(encode_case(tok, name, text, lowercase))
        for name, raw in INVALID_UTF8:
            cases.append(encode_case(tok, name, raw.decode("utf-8", errors="replace"), lowercase,
                                     utf8_hex=raw.hex()))
        for name, a, b in PAIRS:
            cases.append(encode_case(tok, name, a, lowercase, text_b=b))
        for name in SPECIAL_OFF:
            text = dict(SINGLE)[name]
            cases.append(encode_case(tok, name + "_no_special", text, lowercase, add_special=False))

    doc = {
        "generator": "python3 Tests/Scripts/make_tokenizer_fixtures.py"
                     + (f" --vocab {os.path.relpath(args.vocab, ROOT)}" if args.vocab else ""),
        "tokenizers_version": tokenizers.__version__,
        "vocab": VOCAB_NAME,
        "max_input_chars_per_word": 100,
        "special_tokens": {t: BertWordPieceTokenizer(str(dest_vocab)).token_to_id(t)
                           for t in ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]},
        "cases": cases,
    }
    # One case per line keeps diffs readable while staying valid JSON.
    with open(args.output, "w", encoding="utf-8", newline="\n") as f:
        f.write("{\n")
        for key in ["generator", "tokenizers_version", "vocab", "max_input_chars_per_word", "special_tokens"]:
            f.write(f"  {json.dumps(key)}: {json.dumps(doc[key], ensure_ascii=False)},\n")
        f.write('  "cases": [\n')
        for i, case in enumerate(cases):
            sep = "," if i + 1 < len(cases) else ""
            f.write("    " + json.dumps(case, ensure_ascii=True) + sep + "\n")
        f.write("  ]\n}\n")
    json.load(open(args.output, encoding="utf-8"))  # must parse
    print(f"wrote {args.output}: {len(cases)} cases ({len(cases) // 2} per casing)")


if __name__ == "__main__":
    main()
