#!/usr/bin/env python3
"""PyTorch side of the `bert predict` speed comparison: sentences/s of sequence classification on CPU.

For each --checkpoint PRESET=DIR (a directory written by `bert finetune`: config.json with id2label,
model.safetensors, vocab.txt; bench.py makes randomly initialised ones with `bert finetune
--from-scratch`), loads transformers' BertTokenizerFast and BertForSequenceClassification from DIR
(eval mode, fp32 weights; not timed: reported as load_seconds), then classifies every row of --input
(JSONL, one {"text": ...} per line, the file `bert predict` reads) the way `bert predict` does:

    for each batch of --batch-size texts, in file order:
        tokenizer(texts, padding=True (to the longest in the batch), truncation=True,
                  max_length=--max-length, return_tensors="pt")
        with torch.inference_mode() [and torch.autocast("cpu", dtype=torch.bfloat16) for bf16]:
            softmax(model(**batch).logits.float())

tokenization included in the timing, as `bert predict` includes its own. Precisions (--precisions):
fp32, and bf16 = the same under CPU autocast to bf16 (matrix products in bf16 through oneDNN's bf16
kernels where torch finds bf16 units, else torch's own bf16 code; fp32 weights). One untimed warm-up
pass over the first 2 batches, then --repeats timed passes over the rows; sentences_per_s = rows /
the fastest pass (best_seconds), median_seconds beside it. --bf16-rows M times the bf16 passes on the
first M rows only (bench.py sets it where torch has no bf16 kernels and bf16 is several times slower).
torch.set_num_threads(--threads); the tokenizer's Rust threads follow RAYON_NUM_THREADS (bench.py sets
it to --threads).

Prints one JSON object on stdout (progress on stderr): rows (preset, precision, rows, sentences_per_s,
best/median/all seconds, tokens (real, [CLS]/[SEP] included) and padded tokens per pass, load_seconds,
attention implementation, tokenizer class), torch / transformers versions, torch_config (CPU
capability, whether oneDNN bf16 kernels are used), LD_PRELOAD, the CPU model and /proc/loadavg.
With --probs-dir D it also writes D/PRESET-PRECISION.tsv in `bert predict`'s TSV format (header
`label`, `p_LABEL`...; per row the argmax label and each probability with 6 decimals) for bench.py to
compare with ours.

Usage (from the repository root; bench.py runs it with the LD_PRELOAD of torch_peer_env.py):

    env -u OPENBLAS_CORETYPE RAYON_NUM_THREADS=2 nice -n 10 /work/venv-torch/bin/python \\
        Tests/Scripts/bench/bench_torch_predict.py --checkpoint tiny=DIR [--checkpoint mini=DIR2 ...] \\
        --input rows.jsonl [--threads 2] [--batch-size 32] [--max-length 128] [--precisions fp32,bf16] \\
        [--repeats 3] [--bf16-rows M] [--probs-dir D]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from pathlib import Path

import torch
import transformers
from transformers import BertForSequenceClassification, BertTokenizerFast

from bench_torch_pretrain import cpu_model, loadavg  # the same machine facts in both peers


def log(*a) -> None:
    print(*a, file=sys.stderr, flush=True)


def torch_config() -> dict:
    out = {"cpu_capability": None, "mkldnn_enabled": torch.backends.mkldnn.is_available(), "mkldnn_bf16": None}
    try:
        out["cpu_capability"] = torch.backends.cpu.get_cpu_capability()
    except Exception:  # noqa: BLE001
        pass
    try:
        out["mkldnn_bf16"] = bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())
    except Exception:  # noqa: BLE001 -- a private op
        pass
    return out


def classify(tok, model, texts: list[str], batch_size: int, max_length: int, bf16: bool):
    """Tokenize and classify texts in batches; returns (probabilities [rows, labels], tokens, padded)."""
    probs, tokens, padded = [], 0, 0
    with torch.inference_mode():
        for i in range(0, len(texts), batch_size):
            enc = tok(texts[i:i + batch_size], padding=True, truncation=True, max_length=max_length,
                      return_tensors="pt")
            with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
                logits = model(**enc).logits
            probs.append(torch.softmax(logits.float(), dim=-1))
            tokens += int(enc["attention_mask"].sum())
            padded += enc["input_ids"].numel()
    return torch.cat(probs), tokens, padded


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--checkpoint", action="append", required=True, metavar="PRESET=DIR",
                    help="a bert finetune directory, labelled with its preset (repeatable)")
    ap.add_argument("--input", required=True, type=Path, help='JSONL, one {"text": ...} per line')
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--batch-size", type=int, default=32)
    ap.add_argument("--max-length", type=int, default=128)
    ap.add_argument("--precisions", default="fp32,bf16")
    ap.add_argument("--repeats", type=int, default=3, help="timed passes; the fastest is reported (default %(default)s)")
    ap.add_argument("--bf16-rows", type=int, default=None, help="time bf16 on the first M rows only (default: all)")
    ap.add_argument("--probs-dir", type=Path, default=None, help="write PRESET-PRECISION.tsv probabilities here")
    args = ap.parse_args()
    precisions = [p for p in args.precisions.split(",") if p]
    for p in precisions:
        if p not in ("fp32", "bf16"):
            ap.error(f"unknown precision {p!r} (fp32, bf16)")
    checkpoints = []
    for spec in args.checkpoint:
        name, sep, path = spec.partition("=")
        if not sep or not Path(path, "config.json").is_file():
            ap.error(f"--checkpoint {spec!r}: want PRESET=DIR with DIR/config.json")
        checkpoints.append((name, path))
    torch.set_num_threads(args.threads)
    transformers.logging.set_verbosity_error()
    try:
        transformers.utils.logging.disable_progress_bar()
    except Exception:  # noqa: BLE001
        pass
    texts = [json.loads(line)["text"] for line in args.input.read_text(encoding="utf-8").splitlines() if line.strip()]
    if not texts:
        ap.error(f"{args.input}: no rows")
    if args.probs_dir:
        args.probs_dir.mkdir(parents=True, exist_ok=True)

    result = {
        "torch": torch.__version__, "transformers": transformers.__version__, "python": sys.version.split()[0],
        "threads": args.threads, "torch_num_threads": torch.get_num_threads(), "torch_config": torch_config(),
        "cpu": cpu_model(), "nproc": os.cpu_count(),
        "env": {k: os.environ.get(k) for k in ("OPENBLAS_CORETYPE", "OMP_NUM_THREADS", "MKL_NUM_THREADS",
                                               "RAYON_NUM_THREADS", "LD_PRELOAD")},
        "input": str(args.input), "rows_in_input": len(texts), "batch_size": args.batch_size,
        "max_length": args.max_length, "repeats": args.repeats, "loadavg_start": loadavg(), "rows": [],
    }
    log(f"{len(texts)} rows, threads {args.threads}, loadavg {result['loadavg_start']}")
    for preset, path in checkpoints:
        t0 = time.perf_counter()
        tok = BertTokenizerFast.from_pretrained(path)
        model = BertForSequenceClassification.from_pretrained(path).eval()
        load_s = time.perf_counter() - t0
        labels = [model.config.id2label[i] for i in range(model.config.num_labels)]
        for precision in precisions:
            bf16 = precision == "bf16"
            rows = texts[:args.bf16_rows] if bf16 and args.bf16_rows else texts
            classify(tok, model, rows[:2 * args.batch_size], args.batch_size, args.max_length, bf16)  # warm-up
            la0 = loadavg()
            times, cpu = [], []
            for rep in range(max(1, args.repeats)):
                c = time.process_time()
                t = time.perf_counter()
                probs, tokens, padded = classify(tok, model, rows, args.batch_size, args.max_length, bf16)
                times.append(time.perf_counter() - t)
                cpu.append(time.process_time() - c)
                log(f"{preset} {precision} pass {rep}: {len(rows)} rows in {times[-1]:.2f} s")
            best = min(times)
            row = {
                "preset": preset, "precision": "fp32" if not bf16 else "bf16 autocast (fp32 weights)",
                "rows": len(rows), "sentences_per_s": len(rows) / best, "best_seconds": best,
                "median_seconds": statistics.median(times), "all_seconds": times,
                "cpu_per_wall": sum(cpu) / sum(times), "tokens": tokens, "padded_tokens": padded,
                "tokens_per_s": tokens / best, "load_seconds": load_s,
                "attn_implementation": getattr(model.config, "_attn_implementation", None),
                "tokenizer": type(tok).__name__, "tokenizer_is_fast": bool(getattr(tok, "is_fast", False)),
                "labels": labels, "loadavg_before": la0, "loadavg_after": loadavg(),
            }
            result["rows"].append(row)
            log(f"{preset} {precision}: {row['sentences_per_s']:.1f} sentences/s")
            if args.probs_dir:
                with open(args.probs_dir / f"{preset}-{precision}.tsv", "w") as f:
                    f.write("\t".join(["label"] + ["p_" + x for x in labels]) + "\n")
                    for p in probs.tolist():
                        best_i = max(range(len(p)), key=p.__getitem__)
                        f.write("\t".join([labels[best_i]] + [f"{x:.6f}" for x in p]) + "\n")
        del model, tok
    result["loadavg_end"] = loadavg()
    print(json.dumps(result, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
