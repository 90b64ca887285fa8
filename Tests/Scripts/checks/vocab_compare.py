#!/usr/bin/env python3
"""Compare our WordPiece vocabulary trainer (`bert vocab`) with Hugging Face's on held-out text.

Steps:
  1. Split INPUT (one sentence per line, blank line between documents; .zst allowed) by documents:
     every 10th document (index % 10 == 9) is held out, the other 9/10 are written, in the same
     format, to a temporary training file.
  2. Train HF: `BertWordPieceTokenizer(lowercase=not --cased).train([train], vocab_size=SIZE)` with the
     trainer's defaults (min_frequency=2, limit_alphabet=1000, initial_alphabet=[], special tokens
     [PAD] [UNK] [CLS] [SEP] [MASK], wordpieces_prefix "##"; --min-frequency overrides the first for
     both trainers), timed. HF trains with all cores (rayon) unless --threads/RAYON_NUM_THREADS says so.
  3. Train ours: `BIN vocab --input TRAIN --size SIZE --output DIR/ours-vocab.txt [--cased]
     [--min-frequency N]`, timed (skipped when --bert is not given).
  4. For each vocab.txt, load `BertWordPieceTokenizer(vocab.txt, lowercase=...)` and count WordPiece
     tokens (no special tokens) per whitespace-separated word over the held-out lines; also [UNK] rate.
  5. Print a table (vocab, size, train seconds, tokens/word, unk %, ratio ours/HF) and exit 1 when
     ratio > --max-ratio (default 1.02).

Usage (from the repository root):

    .venv/bin/python Tests/Scripts/checks/vocab_compare.py --bert .build/release/bert \\
        --input ../shared/data/corpus_en.txt.zst --size 30000 [--cased] [--keep DIR]

`--bert` may be a command line (see parity.py); `--bert Tests/Scripts/checks/fake_bert.py` trains with HF
twice and must give ratio 1.000.
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import subprocess
import sys
import tempfile
import time
from pathlib import Path

# corpus_io lives in Tests/Scripts/lib/ (shared with bench/).
sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "lib"))
from corpus_io import decode_line, read_bytes, split_documents  # noqa: E402

import tokenizers  # noqa: E402
from tokenizers import BertWordPieceTokenizer  # noqa: E402

HF_DEFAULTS = {"min_frequency": 2, "limit_alphabet": 1000, "initial_alphabet": [],
               "special_tokens": ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"], "wordpieces_prefix": "##"}


def bert_command(value: str) -> list[str]:
    return [value] if os.path.isfile(value) else shlex.split(value)


def write_vocab(tok, path: Path) -> int:
    vocab = tok.get_vocab()
    with open(path, "w", encoding="utf-8") as f:
        for token, _ in sorted(vocab.items(), key=lambda kv: kv[1]):
            f.write(token + "\n")
    return len(vocab)


def evaluate(vocab_path: Path, lowercase: bool, lines: list[str]) -> dict:
    tok = BertWordPieceTokenizer(str(vocab_path), lowercase=lowercase)
    unk = tok.token_to_id("[UNK]")
    words = sum(len(line.split()) for line in lines)
    tokens = unks = 0
    for enc in tok.encode_batch(lines, add_special_tokens=False):
        tokens += len(enc.ids)
        unks += sum(1 for i in enc.ids if i == unk)
    with open(vocab_path, encoding="utf-8") as f:
        size = sum(1 for _ in f)
    return {"vocab_size": size, "words": words, "tokens": tokens,
            "tokens_per_word": tokens / max(words, 1), "unk_percent": 100.0 * unks / max(tokens, 1)}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--bert", default=None, help="the bert binary (or a command line); omit for HF only")
    ap.add_argument("--input", required=True)
    ap.add_argument("--size", type=int, default=30000)
    ap.add_argument("--cased", action="store_true")
    ap.add_argument("--min-frequency", type=int, default=None)
    ap.add_argument("--threads", type=int, default=0, help="RAYON_NUM_THREADS for HF training")
    ap.add_argument("--max-ratio", type=float, default=1.02)
    ap.add_argument("--keep", type=Path, default=None, help="keep train file and vocabularies in DIR")
    ap.add_argument("--json", action="store_true", help="also print the results as one JSON object")
    args = ap.parse_args()
    if args.threads:
        os.environ["RAYON_NUM_THREADS"] = str(args.threads)  # before the first parallel HF call
    lowercase = not args.cased

    docs = split_documents(read_bytes(args.input))
    train_docs = [d for i, d in enumerate(docs) if i % 10 != 9]
    held_docs = [d for i, d in enumerate(docs) if i % 10 == 9]
    held_lines = [decode_line(line) for d in held_docs for line in d]

    tmp = tempfile.TemporaryDirectory(prefix="vocab_compare-")
    work = args.keep or Path(tmp.name)
    work.mkdir(parents=True, exist_ok=True)
    train_path = work / "train.txt"
    with open(train_path, "wb") as f:
        f.write(b"\n\n".join(b"\n".join(d) for d in train_docs) + b"\n")
    print(f"input {args.input}: {len(docs)} documents -> train {len(train_docs)} docs "
          f"({train_path.stat().st_size} bytes), held out {len(held_docs)} docs ({len(held_lines)} lines)")

    hf_kwargs = dict(HF_DEFAULTS)
    if args.min_frequency is not None:
        hf_kwargs["min_frequency"] = args.min_frequency
    print(f"HF trainer (tokenizers {tokenizers.__version__}): BertWordPieceTokenizer(lowercase={lowercase})"
          f".train(vocab_size={args.size}, {', '.join(f'{k}={v!r}' for k, v in hf_kwargs.items())}); "
          f"threads: RAYON_NUM_THREADS={os.environ.get('RAYON_NUM_THREADS', 'unset (all cores)')}, "
          f"cores={os.cpu_count()}")

    rows = []
    hf_tok = BertWordPieceTokenizer(lowercase=lowercase)
    t0 = time.perf_counter()
    hf_tok.train([str(train_path)], vocab_size=args.size, show_progress=False, **hf_kwargs)
    hf_secs = time.perf_counter() - t0
    hf_vocab = work / "hf-vocab.txt"
    write_vocab(hf_tok, hf_vocab)
    rows.append({"vocab": "hf", "train_seconds": hf_secs, **evaluate(hf_vocab, lowercase, held_lines)})

    if args.bert:
        ours_vocab = work / "ours-vocab.txt"
        cmd = bert_command(args.bert) + ["vocab", "--input", str(train_path), "--size", str(args.size),
                                         "--output", str(ours_vocab)]
        if args.cased:
            cmd.append("--cased")
        if args.min_frequency is not None:
            cmd += ["--min-frequency", str(args.min_frequency)]
        t0 = time.perf_counter()
        proc = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        ours_secs = time.perf_counter() - t0
        if proc.returncode != 0:
            print(f"error: {shlex.join(cmd)} exited {proc.returncode}\n{proc.stderr.decode(errors='replace')[-4000:]}")
            return 1
        rows.append({"vocab": "ours", "train_seconds": ours_secs, **evaluate(ours_vocab, lowercase, held_lines)})

    hf_tpw = rows[0]["tokens_per_word"]
    for r in rows:
        r["ratio"] = r["tokens_per_word"] / hf_tpw
    print(f"held-out: {rows[0]['words']} whitespace-separated words")
    print(f"{'vocab':<6} {'size':>6} {'train s':>8} {'tokens/word':>12} {'unk %':>7} {'ratio':>7}")
    for r in rows:
        print(f"{r['vocab']:<6} {r['vocab_size']:>6} {r['train_seconds']:>8.2f} {r['tokens_per_word']:>12.4f} "
              f"{r['unk_percent']:>7.3f} {r['ratio']:>7.3f}")
    if args.json:
        print(json.dumps({"input": args.input, "size": args.size, "cased": args.cased, "rows": rows}))
    if len(rows) > 1 and rows[1]["ratio"] > args.max_ratio:
        print(f"FAIL: ours/HF tokens per word {rows[1]['ratio']:.4f} > {args.max_ratio}")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
