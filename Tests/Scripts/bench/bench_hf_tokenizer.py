#!/usr/bin/env python3
"""Throughput of Hugging Face `tokenizers`' BertWordPieceTokenizer on a corpus: the peer row for `make bench`.

Reads INPUT (.zst allowed), splits it into lines on b"\\n" only and decodes them (UTF-8, errors="replace");
reading and decoding are not timed. Then times, best of --repeat runs:
  * `encode_line_by_line`: `tok.encode(line)` for each line in a Python loop, one thread;
  * `encode_batch_1_thread`: `tok.encode_batch(lines)` in a subprocess with RAYON_NUM_THREADS=1;
  * `encode_batch_N_threads`: the same with RAYON_NUM_THREADS=N for each N in --threads (default 2).
RAYON_NUM_THREADS only takes effect before rayon's pool starts, hence one subprocess per setting.

Rates: `mb_per_s` is raw UTF-8 input bytes (the decompressed file, newlines included) / 1e6 / seconds;
`tokens_per_s` counts WordPiece tokens without [CLS]/[SEP] (encode runs with add_special_tokens=True,
as `bert tokenize` does by default; 2 per line are subtracted). `cpu_seconds` is the process CPU time
of the best run (all threads): cpu_seconds ~= seconds with N > 1 threads means the threads did not
run in parallel (a busy machine; `load_average_1min` is recorded at start). Prints one JSON object.

Usage (from the repository root):

    .venv/bin/python Tests/Scripts/bench/bench_hf_tokenizer.py \\
        --vocab Tests/Fixtures/tokenizer/bert-base-uncased-vocab.txt \\
        --input ../shared/data/corpus_en.txt.zst [--cased] [--repeat 3] [--threads 2] [--limit N]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import time
from pathlib import Path

# corpus_io lives in Tests/Scripts/lib/ (shared with checks/).
sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "lib"))
from corpus_io import decode_line, read_bytes, split_lines  # noqa: E402


def load(args):
    raw = read_bytes(args.input)
    lines = split_lines(raw)
    if args.limit:
        lines = lines[:args.limit]
        nbytes = sum(len(line) + 1 for line in lines)
    else:
        nbytes = len(raw)
    return [decode_line(line) for line in lines], nbytes


def tokenizer(args):
    from tokenizers import BertWordPieceTokenizer
    return BertWordPieceTokenizer(args.vocab, lowercase=not args.cased)


def rates(seconds: float, cpu: float, nbytes: int, tokens: int) -> dict:
    """Wall-clock rates; cpu_seconds (all threads of the process) shows whether the threads really ran."""
    return {"seconds": round(seconds, 4), "cpu_seconds": round(cpu, 4), "mb_per_s": round(nbytes / 1e6 / seconds, 3),
            "tokens_per_s": round(tokens / seconds, 1)}


def worker(args) -> None:
    """encode_batch timing inside this process (RAYON_NUM_THREADS set by the parent)."""
    lines, nbytes = load(args)
    tok = tokenizer(args)
    tok.encode_batch(lines[:1000])  # warm up the thread pool
    best, tokens = None, 0
    for _ in range(args.repeat):
        t0, c0 = time.perf_counter(), time.process_time()
        encs = tok.encode_batch(lines)
        dt, dc = time.perf_counter() - t0, time.process_time() - c0
        tokens = sum(len(e.ids) for e in encs) - 2 * len(encs)
        if best is None or dt < best[0]:
            best = (dt, dc)
    print(json.dumps({"tokens": tokens, **rates(best[0], best[1], nbytes, tokens)}))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--vocab", required=True)
    ap.add_argument("--input", required=True)
    ap.add_argument("--cased", action="store_true")
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--threads", type=int, nargs="*", default=[2], help="thread counts for encode_batch")
    ap.add_argument("--limit", type=int, default=0)
    ap.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.worker:
        worker(args)
        return

    import tokenizers

    lines, nbytes = load(args)
    tok = tokenizer(args)
    best, tokens = None, 0
    for _ in range(args.repeat):
        t0, c0 = time.perf_counter(), time.process_time()
        n = 0
        for line in lines:
            n += len(tok.encode(line).ids) - 2
        dt, dc = time.perf_counter() - t0, time.process_time() - c0
        tokens = n
        if best is None or dt < best[0]:
            best = (dt, dc)
    result = {
        "tool": "hf-tokenizers",
        "tokenizers_version": tokenizers.__version__,
        "python": platform.python_version(),
        "input": args.input,
        "vocab": args.vocab,
        "lowercase": not args.cased,
        "bytes": nbytes,
        "lines": len(lines),
        "tokens": tokens,
        "cpu_count": os.cpu_count(),
        "repeat": args.repeat,
        "load_average_1min": round(os.getloadavg()[0], 2),
        "encode_line_by_line": rates(best[0], best[1], nbytes, tokens),
    }
    base = [sys.executable, os.path.abspath(__file__), "--worker", "--vocab", args.vocab, "--input", args.input,
            "--repeat", str(args.repeat), "--limit", str(args.limit)] + (["--cased"] if args.cased else [])
    for n in [1] + [t for t in args.threads if t != 1]:
        env = dict(os.environ, RAYON_NUM_THREADS=str(n), TOKENIZERS_PARALLELISM="true")
        out = subprocess.run(base, env=env, check=True, stdout=subprocess.PIPE).stdout
        r = json.loads(out)
        if r.pop("tokens") != tokens:
            raise SystemExit("token counts differ between encode and encode_batch")
        result[f"encode_batch_{n}_thread{'s' if n > 1 else ''}"] = r
    print(json.dumps(result))


if __name__ == "__main__":
    main()
