#!/usr/bin/env python3
"""Data-parallel scaling on one machine, in one run (issue 13): `bert pretrain` on the same shards as

  - 1 process × T threads (the baseline),
  - N ranks × T/N threads over shared memory (mpirun's default), gradients in 4 MiB buckets overlapped
    with the backward,
  - the same with one all-reduce after the backward (--allreduce-bucket-mb 0),
  - the same as the first over TCP (--mca btl tcp,self), the transport between machines,

for each model. It prints tokens/s (mean over the metrics rows after the first, so start-up is left out),
the bytes all-reduced per update, the time each rank waits for the sums after its backward, and the
share of the all-reduce hidden behind the backward: 1 − wait(overlapped) / wait(after the backward).

Usage: bench_data_parallel.py --bert .build/release/bert --shards DIR [--models mini,small] [--steps 30]
       [--batch-size 32] [--threads 2]
"""
import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile

parser = argparse.ArgumentParser()
parser.add_argument("--bert", required=True)
parser.add_argument("--shards", required=True)
parser.add_argument("--models", default="mini,small")
parser.add_argument("--steps", type=int, default=30)
parser.add_argument("--batch-size", type=int, default=32)
parser.add_argument("--threads", type=int, default=2)
parser.add_argument("--ranks", type=int, default=2)
args = parser.parse_args()

env = dict(os.environ)
env.pop("OPENBLAS_CORETYPE", None)
env.setdefault("OMPI_ALLOW_RUN_AS_ROOT", "1")
env.setdefault("OMPI_ALLOW_RUN_AS_ROOT_CONFIRM", "1")
mpirun = shutil.which("mpirun")
if not mpirun:
    sys.exit("bench_data_parallel: no mpirun; install openmpi-bin (make deps)")
work = tempfile.mkdtemp(prefix="bench-dp-")


def run(model, name, ranks, extra=(), mpi_extra=()):
    out = os.path.join(work, f"{model}-{name}")
    threads = max(1, args.threads // ranks)
    cmd = [args.bert, "pretrain", "--shards", args.shards, "--output", out, "--model", model, "--batch-size", str(args.batch_size),
           "--max-steps", str(args.steps), "--log-every-steps", "5", "--threads", str(threads), "--no-group-by-length", *extra]
    if ranks > 1:
        cmd = [mpirun, "--oversubscribe", "--bind-to", "none", "-np", str(ranks), *mpi_extra, *cmd]
    r = subprocess.run(cmd, env=env, capture_output=True, text=True)
    if r.returncode != 0:
        sys.exit(f"{' '.join(cmd)} failed:\n{r.stderr[-2000:]}")
    rows = [json.loads(l) for l in open(os.path.join(out, "metrics.jsonl"))]
    rates = [row["tokens_per_second"] for row in rows[1:]] or [rows[-1]["tokens_per_second"]]
    m = re.search(r"all-reduce: (\d+) buckets, ([\d.]+) MB per update, ([\d.]+) ms per update waiting", r.stderr)
    shutil.rmtree(out, ignore_errors=True)
    return {"tokens_per_second": sum(rates) / len(rates), "buckets": int(m.group(1)) if m else 0,
            "megabytes": float(m.group(2)) if m else 0.0, "wait_ms": float(m.group(3)) if m else 0.0,
            "label": f"{ranks} × {threads}"}


print(f"bert pretrain, batch {args.batch_size} × 128 max, {args.steps} updates, no length grouping; "
      f"{args.threads} threads in all, {os.cpu_count()} CPUs; OPENBLAS_CORETYPE unset")
print(f"{'model':6} {'configuration':52} {'tokens/s':>9} {'ratio':>6} {'MB/update':>10} {'wait ms':>8}")
for model in args.models.split(","):
    base = run(model, "one", 1)
    rows = [("1 process × %d threads" % args.threads, base),
            (f"{args.ranks} ranks, shared memory, 4 MiB buckets overlapped", run(model, "shm", args.ranks)),
            (f"{args.ranks} ranks, shared memory, one sum after backward", run(model, "shm0", args.ranks, ["--allreduce-bucket-mb", "0"])),
            (f"{args.ranks} ranks, TCP, 4 MiB buckets overlapped", run(model, "tcp", args.ranks, mpi_extra=["--mca", "btl", "tcp,self"])),
            (f"{args.ranks} ranks, TCP, one sum after backward", run(model, "tcp0", args.ranks, ["--allreduce-bucket-mb", "0"],
                                                                       mpi_extra=["--mca", "btl", "tcp,self"]))]
    for label, r in rows:
        print(f"{model:6} {label:52} {r['tokens_per_second']:9.0f} {r['tokens_per_second'] / base['tokens_per_second']:6.2f} "
              f"{r['megabytes']:10.1f} {r['wait_ms']:8.1f}")
    for transport, a, b in [("shared memory", rows[1][1], rows[2][1]), ("TCP", rows[3][1], rows[4][1])]:
        hidden = 1 - a["wait_ms"] / b["wait_ms"] if b["wait_ms"] > 0 else float("nan")
        print(f"{model:6} share of the all-reduce hidden behind the backward, {transport}: {100 * hidden:.0f}% "
              f"({a['buckets']} buckets: {a['wait_ms']:.1f} ms waiting, against {b['wait_ms']:.1f} ms for one sum after it)")
shutil.rmtree(work, ignore_errors=True)
