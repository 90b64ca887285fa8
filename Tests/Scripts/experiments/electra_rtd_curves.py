#!/usr/bin/env python3
"""Issue 26: how far an ELECTRA discriminator has left its base rate, from the runs' metrics.jsonl.

For each run, the mean over windows of --window updates (the runs log at different intervals) of:
  - rtd_loss, the discriminator's binary cross-entropy on real tokens;
  - base, the cross-entropy of the best constant answer, H(q) with q the window's share of replaced
    tokens (q = 1 - rtd_accuracy while the discriminator says "original" everywhere, recall 0);
  - margin = base - rtd_loss, what the discriminator has learned, in nats per token;
  - rtd_recall and the generator's mlm_accuracy.
q is estimated from rtd_accuracy, so the base is exact only while recall and false positives are near 0
(the runs of docs/results/2026-12-06.md §14 up to update 3,000).

    python3 Tests/Scripts/experiments/electra_rtd_curves.py NAME=RUN_DIR [NAME=RUN_DIR ...] [--upto 3000]
"""
import argparse, json, math, os


def windows(rows, width, upto):
    out = {}
    for end in range(width, upto + 1, width):
        sel = [r for r in rows if end - width < r['step'] <= end]
        if sel:
            out[end] = {k: sum(r[k] for r in sel) / len(sel)
                        for k in ('rtd_loss', 'rtd_recall', 'rtd_accuracy', 'mlm_accuracy')}
    return out


def entropy(q):
    return -(q * math.log(q) + (1 - q) * math.log(1 - q))


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument('runs', nargs='+', help='NAME=DIR, DIR holding metrics.jsonl')
    ap.add_argument('--window', type=int, default=250)
    ap.add_argument('--upto', type=int, default=3000)
    ap.add_argument('--every', type=int, default=1000, help='print every this many updates')
    args = ap.parse_args()
    print('| run | update | RTD loss | base | margin | recall | generator MLM |')
    print('|---|---|---|---|---|---|---|')
    for spec in args.runs:
        name, _, directory = spec.partition('=')
        path = os.path.join(directory, 'metrics.jsonl')
        rows = [json.loads(line) for line in open(path) if line.strip()]
        if not rows or 'rtd_loss' not in rows[0]:
            raise SystemExit(f'{path}: no rtd_loss field; is this an --objective electra run?')
        for end, v in windows(rows, args.window, args.upto).items():
            if end % args.every:
                continue
            base = entropy(1 - v['rtd_accuracy'])
            print(f"| {name} | {end} | {v['rtd_loss']:.3f} | {base:.3f} | {base - v['rtd_loss']:.3f} | "
                  f"{100 * v['rtd_recall']:.1f}% | {100 * v['mlm_accuracy']:.1f}% |")


if __name__ == '__main__':
    main()
