#!/usr/bin/env python3
"""Two pre-training runs from one start on the same batches (`bert pretrain --record-batches` and
`torch_pretrain_control.py --replay`): where do they part?

    python3 Tests/Scripts/experiments/trajectory_compare.py --start INIT/step-00000001 A_RUN B_RUN \
        [--steps 500,1000,...] [--json OUT.jsonl]

A_RUN and B_RUN are run directories with metrics.jsonl (a row per update: --log-every-steps 1) and
step-NNNNNNNN/ checkpoints (model.safetensors, and generator/model.safetensors for ELECTRA) at the same
steps. Prints:
  - the losses of the two runs side by side, as the mean relative difference over windows of updates;
  - at every common checkpoint, per tensor group, how far the two runs' weights are apart against how far
    training moved them from the start: d = |A - B| / |A - start| (Frobenius norms over the group). d near 0:
    the same trajectory; d near sqrt(2) ~ 1.41: two independent walks of the same length from the start;
  - the share of tensors (of the discriminator and the generator) where d > 0.5.
Needs numpy and safetensors (the venv of Tests/Scripts/requirements-model.txt).
"""
from __future__ import annotations

import argparse
import json
import math
import re
from pathlib import Path

import numpy as np
from safetensors.numpy import load_file


def rows(run: Path) -> dict[int, dict]:
    out = {}
    with open(run / "metrics.jsonl") as f:
        for line in f:
            r = json.loads(line)
            out[r["step"]] = r
    return out


def tensors(directory: Path) -> dict[str, np.ndarray]:
    out = {k: v.astype(np.float64) for k, v in load_file(str(directory / "model.safetensors")).items()}
    gen = directory / "generator" / "model.safetensors"
    if gen.is_file():
        for k, v in load_file(str(gen)).items():
            if not k.startswith("electra.embeddings."):  # shared with the discriminator
                out["generator/" + k] = v.astype(np.float64)
    return out


def group(name: str) -> str:
    """A tensor's group: embeddings, each layer's attention and feed-forward, heads, generator."""
    if name.startswith("generator/"):
        return "generator"
    if "embeddings" in name:
        m = re.search(r"embeddings\.(\w+?)(?:\.weight|\.bias)$", name)
        return "emb." + (m.group(1) if m else name)
    m = re.search(r"layer\.(\d+)\.(attention|intermediate|output)", name)
    if m:
        return f"layer{m.group(1)}." + ("attention" if m.group(2) == "attention" else "ffn")
    return "head"


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("a", type=Path)
    ap.add_argument("b", type=Path)
    ap.add_argument("--start", type=Path, required=True, help="the checkpoint both runs started from")
    ap.add_argument("--steps", help="checkpoint steps to compare (default: every step-* directory in both)")
    ap.add_argument("--windows", default="1,10,100,300,1000,3000,6000,9500", help="loss windows' last updates")
    ap.add_argument("--json", type=Path, help="also write the per-checkpoint figures here, one JSON object per line")
    args = ap.parse_args()

    ra, rb = rows(args.a), rows(args.b)
    common = sorted(set(ra) & set(rb))
    print(f"losses: {len(common)} common updates")
    print("updates | mean |loss A - loss B| / loss A | same for the RTD (or NSP) loss | the MLM loss | gradient norm")
    edges = [int(x) for x in args.windows.split(",")]
    lo = 1
    for hi in edges:
        ks = [k for k in common if lo <= k <= hi]
        if not ks:
            continue
        def rel(key):
            v = [abs(ra[k][key] - rb[k][key]) / max(1e-12, abs(ra[k][key])) for k in ks if key in ra[k] and key in rb[k]]
            return f"{np.mean(v):.2e}" if v else "-"
        second = "rtd_loss" if "rtd_loss" in ra[ks[0]] else "nsp_loss"
        print(f"{lo}-{hi} | {rel('loss')} | {rel(second)} | {rel('mlm_loss')} | {rel('gradient_norm')}")
        lo = hi + 1

    start = tensors(args.start)
    start.pop("generator/generator_lm_head.weight", None)
    if args.steps:
        steps = [int(s) for s in args.steps.split(",")]
    else:
        def found(run):
            return {int(p.name[5:]) for p in run.glob("step-*") if p.name[5:].isdigit()}
        steps = sorted(found(args.a) & found(args.b))
    out = open(args.json, "w") if args.json else None
    groups = sorted({group(n) for n in start})
    print("\nweights: d = |A - B| / |A - start| per group (0: one trajectory; ~1.41: independent walks)")
    print("step | " + " | ".join(groups) + " | all | tensors with d > 0.5")
    for s in steps:
        ta, tb = tensors(args.a / f"step-{s:08d}"), tensors(args.b / f"step-{s:08d}")
        # A tied copy one writer stores and the other does not (the generator's LM head is the word table).
        for t in (ta, tb):
            t.pop("generator/generator_lm_head.weight", None)
        missing = set(start) ^ set(ta) | set(start) ^ set(tb)
        if missing:
            raise SystemExit(f"step {s}: tensors differ between the checkpoints: {sorted(missing)[:5]}")
        sums = {g: [0.0, 0.0] for g in groups + ["all"]}
        parted = 0
        for n in start:
            diff = float(np.sum((ta[n] - tb[n]) ** 2))
            moved = float(np.sum((ta[n] - start[n]) ** 2))
            for g in (group(n), "all"):
                sums[g][0] += diff
                sums[g][1] += moved
            if moved > 0 and math.sqrt(diff / moved) > 0.5:
                parted += 1
        d = {g: math.sqrt(a / b) if b > 0 else float("nan") for g, (a, b) in sums.items()}
        print(f"{s} | " + " | ".join(f"{d[g]:.3f}" for g in groups) + f" | {d['all']:.3f} | {parted}/{len(start)}")
        if out:
            out.write(json.dumps({"step": s, "d": d, "tensors_parted": parted, "tensors": len(start)}) + "\n")
    if out:
        out.close()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
