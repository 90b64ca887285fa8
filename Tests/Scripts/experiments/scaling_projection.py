#!/usr/bin/env python3
"""Projected data-parallel scaling of `mpirun -np N bert pretrain` (README, issue 13), from a ring
all-reduce cost model:

    T_comm(N) = 2 (N − 1)/N · S / B  +  2 (N − 1) · α · ⌈S / bucket⌉
    T_update(N) ≈ t_c + max(0, T_comm(N) − o · t_b)          (one machine: t_c)
    efficiency = t_c / T_update,  speed-up = N · efficiency

S: gradient bytes (fp32, 4 per parameter); B: link bandwidth per machine (bytes/s); α: per-message
latency; t_c: compute time of one update on one machine; t_b ≈ 2/3 t_c its backward; o: the share of the
all-reduce that overlaps the backward (0 = none, 1 = all of it, bounded by the backward's length).

t_c comes from measured throughput: tokens per update / (tokens/s on 2 cores × cores/2 × scaling),
with the per-core rate measured here (make bench) and `--core-scaling` the share of linear scaling
assumed from 2 to 32 cores.
"""
import argparse
import math

p = argparse.ArgumentParser()
p.add_argument("--cores", type=int, default=32)
p.add_argument("--tokens-per-update", type=int, default=32 * 128, help="each machine's share of the global batch")
p.add_argument("--core-scaling", type=float, default=0.75)
p.add_argument("--alpha-us", type=float, default=50.0)
p.add_argument("--overlap", type=float, default=0.5)
args = p.parse_args()

# model: (parameters, tokens/s measured on 2 cores here, bucket MiB)
models = {
    # mini: measured 5.1k tokens/s on 2 threads (README, make bench), 5.48M parameters with an 8k vocabulary.
    "mini": (5.48e6, 5100.0, 4),
    # base: 110M parameters; its rate on 2 cores scaled from mini's by training FLOPs per token
    # (≈ 6 × non-embedding parameters: 85M against 3.1M), i.e. 5.1k / 27 ≈ 190 tokens/s.
    "base": (110e6, 190.0, 25),
}
print(f"{args.cores}-core machines, {args.tokens_per_update} tokens per machine per update, α = {args.alpha_us:.0f} µs, "
      f"overlap o = {args.overlap}, {args.core_scaling:.0%} of linear scaling from 2 to {args.cores} cores")
print(f"{'model':5} {'link':>8} {'t_c ms':>7} " + " ".join(f"{'N=' + str(n):>17}" for n in (8, 32, 128)))
for name, (params, rate2, bucket_mb) in models.items():
    s = 4 * params
    rate = rate2 * args.cores / 2 * args.core_scaling
    tc = args.tokens_per_update / rate
    tb = 2 / 3 * tc
    for gbps in (10, 25):
        b = gbps * 1e9 / 8
        cells = []
        for n in (8, 32, 128):
            comm = 2 * (n - 1) / n * s / b + 2 * (n - 1) * args.alpha_us * 1e-6 * math.ceil(s / (bucket_mb * 2**20))
            t = tc + max(0.0, comm - args.overlap * tb)
            eff = tc / t
            cells.append(f"{n * eff:6.1f}× ({100 * eff:3.0f}%)")
        print(f"{name:5} {gbps:>5} Gb/s {1000 * tc:7.0f} " + " ".join(f"{c:>17}" for c in cells))
