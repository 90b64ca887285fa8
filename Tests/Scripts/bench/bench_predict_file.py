#!/usr/bin/env python3
"""`make bench-predict`: `bert predict` on a plain-text file against transformers, whole processes timed
(start-up, imports, model load, tokenization and output included), at the length the model was
fine-tuned with (recorded in DIR/tokenizer_config.json, which both sides read), in the same run on the
same cores. Issue 30's measurement.

    python bench_predict_file.py --bert .build/release/bert --checkpoint DIR --input TEXTS.txt \\
        --torch-python /path/to/python [--threads 2] [--repeats 3] [--precisions fp32,bf16]

For each precision, --repeats rounds, each running ours then the peer (alternating, so load drifts hit
both): `bert predict --checkpoint DIR --input TEXTS --output F --precision P --threads N` and
`torch_predict_file.py DIR TEXTS F [--bf16]` (bf16 = torch.autocast to bf16 with fp32 weights) with
the best-effort peer environment of torch_peer_env.py (fakeintel on AVX-512, tcmalloc when installed),
RAYON_NUM_THREADS=N for the tokenizer. Reports the best wall time of each, the ratio (peer / ours:
above 1 means we are faster), the label agreement of the two outputs and the largest probability
difference, and prints one JSON object. On a CPU without bf16 units our bf16 row is skipped (bert
refuses bf16 there) and says so.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import torch_peer_env  # noqa: E402


def timed(cmd: list[str], env: dict) -> tuple[float, subprocess.CompletedProcess]:
    t = time.perf_counter()
    p = subprocess.run(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    return time.perf_counter() - t, p


def read(path: str) -> list[list[str]]:
    with open(path, encoding="utf-8") as f:
        return [line.rstrip("\n").split("\t") for line in f][1:]


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--bert", required=True)
    ap.add_argument("--checkpoint", required=True)
    ap.add_argument("--input", required=True)
    ap.add_argument("--torch-python", required=True)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--precisions", default="fp32,bf16")
    args = ap.parse_args()
    repo = Path(__file__).resolve().parents[3]
    base = {k: v for k, v in os.environ.items() if k not in ("OPENBLAS_CORETYPE", "OPENBLAS_L2_SIZE")}
    peer = torch_peer_env.prepare(args.torch_python, dict(base, RAYON_NUM_THREADS=str(args.threads)), repo)
    rows = sum(1 for _ in open(args.input, encoding="utf-8"))
    recorded = json.loads((Path(args.checkpoint) / "tokenizer_config.json").read_text()).get("model_max_length")
    result = {"rows": rows, "recorded_length": recorded, "threads": args.threads, "peer_env": peer.summary(),
              "cpu": torch_peer_env.cpu_flags() >= {"avx512_bf16"} and "avx512_bf16" or "no bf16 units",
              "loadavg": open("/proc/loadavg").read().split()[:3], "precisions": {}}
    with tempfile.TemporaryDirectory() as tmp:
        for precision in args.precisions.split(","):
            ours_cmd = [args.bert, "predict", "--checkpoint", args.checkpoint, "--input", args.input, "--output",
                        f"{tmp}/ours.tsv", "--precision", precision, "--threads", str(args.threads)]
            peer_cmd = [args.torch_python, str(repo / "Tests/Scripts/bench/torch_predict_file.py"), args.checkpoint, args.input,
                        f"{tmp}/peer.tsv", "--threads", str(args.threads)] + (["--bf16"] if precision == "bf16" else [])
            ours_t, peer_t, notes = [], [], {}
            for _ in range(args.repeats):
                t, p = timed(ours_cmd, base)
                if p.returncode != 0:
                    notes["ours"] = p.stderr.decode().strip().splitlines()[-1]
                    break
                ours_t.append(t)
                notes["ours_first_line"] = p.stderr.decode().splitlines()[0]
                t, p = timed(peer_cmd, peer.env)
                if p.returncode != 0:
                    raise SystemExit(f"peer failed: {p.stderr.decode()[-2000:]}")
                peer_t.append(t)
                notes["peer"] = json.loads(p.stderr.decode().strip().splitlines()[-1])
            row: dict = {"ours_s": ours_t, "peer_s": peer_t, **notes}
            if ours_t:
                a, b = read(f"{tmp}/ours.tsv"), read(f"{tmp}/peer.tsv")
                assert len(a) == len(b) == rows, (len(a), len(b), rows)
                row["label_agreement"] = sum(x[0] == y[0] for x, y in zip(a, b)) / rows
                row["max_abs_dp"] = max(abs(float(u) - float(v)) for x, y in zip(a, b) for u, v in zip(x[1:], y[1:]))
                row["ratio_peer_over_ours"] = min(peer_t) / min(ours_t)
                print(f"{precision}: ours {min(ours_t):.2f} s, transformers {min(peer_t):.2f} s (best of {args.repeats}): "
                      f"{row['ratio_peer_over_ours']:.2f}x; labels agree {row['label_agreement']:.2%}, "
                      f"max |dp| {row['max_abs_dp']:.2e}", file=sys.stderr)
            result["precisions"][precision] = row
    print(json.dumps(result, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
