#!/usr/bin/env python3
"""Line-by-line tokenizer parity between `bert tokenize --ids` and Hugging Face `tokenizers`.

Tokenizes every line of INPUT twice:
  * HF: `BertWordPieceTokenizer(VOCAB, lowercase=not --cased).encode_batch(lines)` where the lines are
    the input split on b"\\n" only and decoded as UTF-8 with errors="replace" (the CLI contract);
  * ours: `BIN tokenize --vocab VOCAB --ids [--cased] [--pair]`, fed the very same raw bytes on stdin.
Then compares the id lists line by line, prints `mismatches: N of M lines` and the first 10 mismatches
(line number, text, both id lists around the first difference, with tokens) and exits 1 if N > 0
(or if BIN failed or printed the wrong number of lines).

Usage (from the repository root):

    .venv/bin/python Tests/Scripts/checks/parity.py --bert .build/release/bert \\
        --vocab Tests/Fixtures/tokenizer/bert-base-uncased-vocab.txt \\
        --input ../shared/data/corpus_en.txt.zst [--cased] [--pair] [--limit N] [--threads N]

--bert may also be a command line (split like a shell would) when it is not an existing file, e.g.
`--bert ".venv/bin/python Tests/Scripts/checks/fake_bert.py"`; Tests/Scripts/checks/fake_bert.py implements the CLI
contract with HF itself and is how this script's own comparison was tested.
"""

from __future__ import annotations

import argparse
import os
import shlex
import subprocess
import sys
import time
from pathlib import Path

# corpus_io lives in Tests/Scripts/lib/ (shared with bench/).
sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "lib"))
from corpus_io import decode_line, read_bytes, split_lines  # noqa: E402

from tokenizers import BertWordPieceTokenizer  # noqa: E402


def bert_command(value: str) -> list[str]:
    return [value] if os.path.isfile(value) else shlex.split(value)


def hf_ids(tok, texts: list[str], pair: bool) -> list[list[int]]:
    if pair:
        inputs = [tuple(t.split("\t", 1)) if "\t" in t else (t, "") for t in texts]
        return [e.ids for e in tok.encode_batch(inputs)]
    return [e.ids for e in tok.encode_batch(texts)]


def parse_ids(line: bytes, lineno: int) -> list[int]:
    try:
        return [int(x) for x in line.split()]
    except ValueError:
        raise SystemExit(f"bert output line {lineno} is not a list of ids: {line[:200]!r}")


def show_diff(tok, a: list[int], b: list[int], width: int = 6) -> tuple[int, str]:
    first = next((i for i, (x, y) in enumerate(zip(a, b)) if x != y), min(len(a), len(b)))
    lo = max(0, first - width)

    def window(ids):
        part = ids[lo:first + width]
        toks = [tok.id_to_token(i) if 0 <= i < tok.get_vocab_size() else f"<{i}>" for i in part]
        pre = "... " if lo > 0 else ""
        post = " ..." if first + width < len(ids) else ""
        return f"{pre}{part}{post}  {pre}{toks}{post}"

    return first, f"      hf   (len {len(a)}): {window(a)}\n      bert (len {len(b)}): {window(b)}"


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--bert", required=True, help="the bert binary (or a command line)")
    ap.add_argument("--vocab", required=True)
    ap.add_argument("--input", required=True, help="text file, optionally .zst")
    ap.add_argument("--cased", action="store_true")
    ap.add_argument("--pair", action="store_true", help="split each line at its first TAB into a pair")
    ap.add_argument("--limit", type=int, default=0, help="only the first N lines")
    ap.add_argument("--threads", type=int, default=0, help="pass --threads N to bert")
    ap.add_argument("--show", type=int, default=10, help="how many mismatches to print")
    args = ap.parse_args()

    raw_lines = split_lines(read_bytes(args.input))
    if args.limit:
        raw_lines = raw_lines[:args.limit]
    stdin = b"".join(line + b"\n" for line in raw_lines)
    texts = [decode_line(line) for line in raw_lines]

    tok = BertWordPieceTokenizer(args.vocab, lowercase=not args.cased)
    t0 = time.perf_counter()
    want = hf_ids(tok, texts, args.pair)
    t_hf = time.perf_counter() - t0

    cmd = bert_command(args.bert) + ["tokenize", "--vocab", args.vocab, "--ids"]
    if args.cased:
        cmd.append("--cased")
    if args.pair:
        cmd.append("--pair")
    if args.threads:
        cmd += ["--threads", str(args.threads)]
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, input=stdin, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    t_bert = time.perf_counter() - t0
    if proc.returncode != 0:
        print(f"error: {shlex.join(cmd)} exited {proc.returncode}\n{proc.stderr.decode(errors='replace')[-4000:]}")
        return 1
    out_lines = split_lines(proc.stdout)

    m = len(texts)
    print(f"input: {args.input} ({len(stdin)} bytes, {m} lines), vocab {args.vocab}, "
          f"{'cased' if args.cased else 'uncased'}{', pairs' if args.pair else ''}")
    print(f"hf encode_batch: {t_hf:.2f}s; bert: {t_bert:.2f}s ({shlex.join(cmd)})")
    if len(out_lines) != m:
        print(f"error: bert printed {len(out_lines)} lines for {m} input lines")
    got = [parse_ids(line, i + 1) for i, line in enumerate(out_lines)]

    mismatches = [i for i in range(m) if i >= len(got) or got[i] != want[i]]
    n = len(mismatches) + max(0, len(got) - m)
    print(f"mismatches: {n} of {m} lines")
    for i in mismatches[:args.show]:
        text = texts[i]
        shown = repr(text if len(text) <= 300 else text[:300] + "...")
        if i >= len(got):
            print(f"  line {i + 1}: {shown}\n      (no output line)")
            continue
        first, diff = show_diff(tok, want[i], got[i])
        print(f"  line {i + 1}: {shown}\n      first difference at position {first}\n{diff}")
    return 1 if n or len(out_lines) != m else 0


if __name__ == "__main__":
    sys.exit(main())
