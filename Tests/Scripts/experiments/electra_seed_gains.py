#!/usr/bin/env python3
"""Issue 26: the fortunes gains of the ELECTRA encoders (ours and the PyTorch control), pre-training seeds
42, 1, 2, 3, each fine-tuned with seeds 42, 1, 2, 3, 4, 5, over the random encoder with the same fine-tuning
seed (docs/results/2026-12-06.md §11.5 and §13.5). Reads the *-eval.json files that `bert evaluate --split
test` wrote under out/ (paths below); prints a table row per pre-training seed and each side's mean over
its pre-training seeds with the standard error, and Welch's t of the difference.

    python3 Tests/Scripts/experiments/electra_seed_gains.py [--root .]
"""
import argparse, json, math, os

FT = (42, 1, 2, 3, 4, 5)


def paths():
    base = {42: 'out/electra/scratch-eval.json', 1: 'out/electra/scratch-seed1-eval.json', 2: 'out/electra/scratch-seed2-eval.json'}
    base.update({s: f'out/e26-more/scratch-seed{s}-eval.json' for s in (3, 4, 5)})
    sides = {
        'ours': {42: {42: 'out/electra/classifier-eval.json', 1: 'out/electra/classifier-seed1-eval.json', 2: 'out/electra/classifier-seed2-eval.json'},
                 1: {s: f'out/electra-seed1/fortunes/classifier-seed{s}-eval.json' for s in (42, 1, 2)},
                 2: {s: f'out/electra-seed2/fortunes/classifier-seed{s}-eval.json' for s in (42, 1, 2)}, 3: {}},
        'control': {42: {s: f'out/electra-control-arms/fortunes/classifier-seed{s}-eval.json' for s in (42, 1, 2)},
                    1: {s: f'out/electra-control-seed1-arms/fortunes/classifier-seed{s}-eval.json' for s in (42, 1, 2)},
                    2: {s: f'out/electra-control-seed2-arms/fortunes/classifier-seed{s}-eval.json' for s in (42, 1, 2)}, 3: {}},
    }
    for side, pre in sides.items():
        for p, files in pre.items():
            for s in FT:
                files.setdefault(s, f'out/e26-more/{side}-{p}-seed{s}-eval.json')
    return base, sides


def mean_se(xs):
    m = sum(xs) / len(xs)
    return m, math.sqrt(sum((x - m) ** 2 for x in xs) / (len(xs) - 1) / len(xs))


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument('--root', default='.')
    args = ap.parse_args()
    os.chdir(args.root)
    accuracy = lambda p: 100 * json.load(open(p))['accuracy']
    base, sides = paths()
    means = {}
    for side, pre in sides.items():
        per = []
        for p, files in pre.items():
            missing = [f for f in files.values() if not os.path.exists(f)]
            if missing:
                print(f'{side} pre-training seed {p}: missing {missing[0]}')
                continue
            gains = [accuracy(files[s]) - accuracy(base[s]) for s in FT]
            m, se = mean_se(gains)
            per.append(m)
            print(f'| {side} | {p} | {m:+.1f} ± {se:.1f} | {", ".join(f"{g:+.1f}" for g in gains)} |')
        if len(per) > 1:
            m, se = mean_se(per)
            means[side] = (m, se)
            print(f'{side}: {m:+.1f} ± {se:.1f} over {len(per)} pre-training seeds')
    if len(means) == 2:
        (mo, so), (mc, sc) = means['ours'], means['control']
        se = math.hypot(so, sc)
        print(f'control − ours: {mc - mo:+.1f} ± {se:.1f} (Welch t {(mc - mo) / se:.2f})')


if __name__ == '__main__':
    main()
