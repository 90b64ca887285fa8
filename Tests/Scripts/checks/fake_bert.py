#!/usr/bin/env python3
"""A stand-in for `bert` that implements `tokenize` and `vocab` with Hugging Face `tokenizers` itself.

Only for testing the oracle scripts (parity.py, vocab_compare.py) before/without the Swift binary:
with it, parity.py must report `mismatches: 0` and vocab_compare.py a ratio of 1.0. It is not a
reference implementation of anything.

    Tests/Scripts/checks/fake_bert.py tokenize --vocab V [--cased] [--ids] [--pair] [--no-special-tokens] [--threads N]
    Tests/Scripts/checks/fake_bert.py vocab --input PATH... --size N --output vocab.txt [--cased] [--min-frequency N]

Fault injection, to prove the comparison catches differences:
    FAKE_BERT_CORRUPT=3,17   change the last id of output lines 3 and 17 (1-based) in `tokenize`
    FAKE_BERT_DROP_LAST=1    omit the last output line

It re-executes itself with the repository's .venv/bin/python when `tokenizers` is not importable.
Example:

    .venv/bin/python Tests/Scripts/checks/parity.py --bert Tests/Scripts/checks/fake_bert.py \\
        --vocab Tests/Fixtures/tokenizer/bert-base-uncased-vocab.txt --input ../shared/data/corpus_zh.txt.zst
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
try:
    from tokenizers import BertWordPieceTokenizer
except ImportError:  # pragma: no cover - re-exec with the project venv
    venv = HERE.parents[2] / ".venv"
    venv_python = venv / "bin/python"
    if venv_python.exists() and Path(sys.prefix).resolve() != venv.resolve():
        os.execv(str(venv_python), [str(venv_python), __file__, *sys.argv[1:]])
    raise

# corpus_io lives in Tests/Scripts/lib/ (shared with bench/).
sys.path.insert(0, str(HERE.parent / "lib"))
from corpus_io import decode_line, split_lines  # noqa: E402


def tokenize(args) -> int:
    if args.threads:
        os.environ["RAYON_NUM_THREADS"] = str(args.threads)
    tok = BertWordPieceTokenizer(args.vocab, lowercase=not args.cased)
    texts = [decode_line(line) for line in split_lines(sys.stdin.buffer.read())]
    special = not args.no_special_tokens
    if args.pair:
        inputs = [tuple(t.split("\t", 1)) if "\t" in t else (t, "") for t in texts]
    else:
        inputs = texts
    encs = tok.encode_batch(inputs, add_special_tokens=special)
    corrupt = {int(x) for x in os.environ.get("FAKE_BERT_CORRUPT", "").split(",") if x}
    out = []
    for i, e in enumerate(encs, 1):
        if args.ids:
            ids = list(e.ids)
            if i in corrupt and ids:
                ids[-1] += 1
            out.append(" ".join(map(str, ids)))
        else:
            out.append(" ".join(e.tokens))
    if os.environ.get("FAKE_BERT_DROP_LAST") and out:
        out.pop()
    sys.stdout.buffer.write("".join(line + "\n" for line in out).encode("utf-8"))
    return 0


def vocab(args) -> int:
    tok = BertWordPieceTokenizer(lowercase=not args.cased)
    kwargs = {"vocab_size": args.size, "show_progress": False}
    if args.min_frequency is not None:
        kwargs["min_frequency"] = args.min_frequency
    tok.train(args.input, **kwargs)
    out = Path(args.output)
    vocab = tok.get_vocab()
    with open(out, "w", encoding="utf-8") as f:
        for token, _ in sorted(vocab.items(), key=lambda kv: kv[1]):
            f.write(token + "\n")
    print(f"wrote {out} ({len(vocab)} tokens)", file=sys.stderr)
    return 0


def main() -> int:
    ap = argparse.ArgumentParser(prog="fake_bert")
    sub = ap.add_subparsers(dest="command", required=True)
    t = sub.add_parser("tokenize")
    t.add_argument("--vocab", required=True)
    t.add_argument("--cased", action="store_true")
    t.add_argument("--ids", action="store_true")
    t.add_argument("--pair", action="store_true")
    t.add_argument("--no-special-tokens", action="store_true")
    t.add_argument("--threads", type=int, default=0)
    v = sub.add_parser("vocab")
    v.add_argument("--input", nargs="+", required=True)
    v.add_argument("--size", type=int, required=True)
    v.add_argument("--output", required=True)
    v.add_argument("--cased", action="store_true")
    v.add_argument("--min-frequency", type=int, default=None)
    args = ap.parse_args()
    return tokenize(args) if args.command == "tokenize" else vocab(args)


if __name__ == "__main__":
    sys.exit(main())
