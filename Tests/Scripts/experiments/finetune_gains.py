#!/usr/bin/env python3
"""Gains in test accuracy over a baseline, paired by fine-tuning seed, for any number of encoders.

    python3 Tests/Scripts/experiments/finetune_gains.py --baseline PREFIX [--seeds 42,1,2,3,4,5] \
        NAME=PREFIX [NAME=PREFIX ...] [--pairs A:B,...]

Every PREFIX names `bert evaluate --split test` outputs PREFIX-seedS-eval.json, one per fine-tuning seed S (as
out/e28/ft.sh writes them). For each encoder: its gain over the baseline with the same fine-tuning seed, the
mean over the seeds with its standard error, and each seed's gain. With --pairs A:B, the differences A - B seed
by seed, their mean and standard error. With --group NAME:A,B,... the mean of those encoders' gains over the
encoders (each encoder one sample) with its standard error.
"""
from __future__ import annotations

import argparse
import json
import math


def acc(prefix: str, seed: int) -> float:
    with open(f"{prefix}-seed{seed}-eval.json") as f:
        return 100 * json.load(f)["accuracy"]


def mean_se(xs: list[float]) -> tuple[float, float]:
    m = sum(xs) / len(xs)
    if len(xs) < 2:
        return m, float("nan")
    return m, math.sqrt(sum((x - m) ** 2 for x in xs) / (len(xs) - 1) / len(xs))


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--baseline", required=True)
    ap.add_argument("--seeds", default="42,1,2,3,4,5")
    ap.add_argument("--pairs", default="")
    ap.add_argument("--group", action="append", default=[])
    ap.add_argument("encoders", nargs="+")
    args = ap.parse_args()
    seeds = [int(s) for s in args.seeds.split(",")]
    base = {s: acc(args.baseline, s) for s in seeds}
    print("baseline: " + ", ".join(f"{base[s]:.2f}" for s in seeds) + f" (seeds {args.seeds})")
    gains = {}
    for spec in args.encoders:
        name, _, prefix = spec.partition("=")
        gains[name] = [acc(prefix, s) - base[s] for s in seeds]
    print("| encoder | gain | per fine-tuning seed |\n|---|---|---|")
    for name, g in gains.items():
        m, se = mean_se(g)
        print(f"| {name} | {m:+.1f} ± {se:.1f} | " + ", ".join(f"{x:+.1f}" for x in g) + " |")
    for pair in filter(None, args.pairs.split(",")):
        a, b = pair.split(":")
        d = [x - y for x, y in zip(gains[a], gains[b])]
        m, se = mean_se(d)
        print(f"{a} - {b}: {m:+.1f} ± {se:.1f} (" + ", ".join(f"{x:+.1f}" for x in d) + ")")
    for spec in args.group:
        name, _, members = spec.partition(":")
        per = [sum(gains[k]) / len(gains[k]) for k in members.split(",")]
        m, se = mean_se(per)
        print(f"{name}: {m:+.1f} ± {se:.1f} over {len(per)} encoders")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
