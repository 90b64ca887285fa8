#!/usr/bin/env python3
"""Issue 26: the fortunes gains of the ELECTRA encoders (ours and the PyTorch control), pre-training seeds
42, 1, 2, 3, each fine-tuned with seeds 42, 1, 2, 3, 4, 5, over the random encoder with the same fine-tuning
seed (docs/results/2026-12-06.md §11.5, §13.5 and §14). Reads the *-eval.json files that `bert evaluate
--split test` wrote under out/ (paths below); prints a table row per pre-training seed and each side's mean
over its pre-training seeds with the standard error, and Welch's t of the difference.

Four more sides (§14):
- control-init: the PyTorch control started from BertKit's initial weights of pre-training seeds 42, 1, 2
  (`torch_pretrain_control.py --init`), printed also as pairs with ours of the same seed;
- init-ours, init-torch: no pre-training at all; each initialiser's weights (the checkpoint after one update
  at learning rate 0, pre-training seeds 42, 1, 2, 3) fine-tuned as the encoders are;
- control-torchinit-seed7: the control from torch's seed-42 initial weights loaded with --init, trained
  with --seed 7 (other masks, samples and data order, and a sampler stream apart from the weights' stream);
- init-ours-randpos: init-ours with its sinusoidal position table redrawn from normal(0, 0.02), as
  `--from-scratch` drew it before 2026-12-07 (numpy default_rng(seed)), paired with init-ours draw by draw.

And one from 2026-12-07 §2 (the mirror experiment):
- ours-from-torch: BertKit's trainer from the control's own initial weights of pre-training seeds 42, 1, 2
  (torch's draws, put into a BertKit step-1 checkpoint by electra_swap_weights.py, then --resume), --seed
  as the draw; paired with the control from the same draw;
- control-sampler: the control from its own draw, data order and masks of pre-training seeds 42 and 1, as
  `control`, but its generator's sampler seeded 1000 + seed (`--sampler-seed`) rather than with the seed
  whose stream drew the initial weights; paired with the control from the same draw.

--sinusoidal-baseline measures every gain against the baseline drawn with the sinusoidal position table
(out/e27-sinpos/, `bert finetune --from-scratch` since 2026-12-07) instead of the normal-draw one; the
differences between sides do not change.

    python3 Tests/Scripts/experiments/electra_seed_gains.py [--root .] [--sinusoidal-baseline]
"""
import argparse, json, math, os

FT = (42, 1, 2, 3, 4, 5)


def paths(sinusoidal_baseline=False):
    base = {42: 'out/electra/scratch-eval.json', 1: 'out/electra/scratch-seed1-eval.json', 2: 'out/electra/scratch-seed2-eval.json'}
    base.update({s: f'out/e26-more/scratch-seed{s}-eval.json' for s in (3, 4, 5)})
    if sinusoidal_baseline:
        base = {s: f'out/e27-sinpos/fortunes-seed{s}-eval.json' for s in FT}
    sides = {
        'ours': {42: {42: 'out/electra/classifier-eval.json', 1: 'out/electra/classifier-seed1-eval.json', 2: 'out/electra/classifier-seed2-eval.json'},
                 1: {s: f'out/electra-seed1/fortunes/classifier-seed{s}-eval.json' for s in (42, 1, 2)},
                 2: {s: f'out/electra-seed2/fortunes/classifier-seed{s}-eval.json' for s in (42, 1, 2)}, 3: {}},
        'control': {42: {s: f'out/electra-control-arms/fortunes/classifier-seed{s}-eval.json' for s in (42, 1, 2)},
                    1: {s: f'out/electra-control-seed1-arms/fortunes/classifier-seed{s}-eval.json' for s in (42, 1, 2)},
                    2: {s: f'out/electra-control-seed2-arms/fortunes/classifier-seed{s}-eval.json' for s in (42, 1, 2)}, 3: {}},
    }
    sides['control-init'] = {p: {s: f'out/e26-more/control-init{p}-seed{s}-eval.json' for s in FT} for p in (42, 1, 2)}
    sides['init-ours'] = {p: {} for p in (42, 1, 2, 3)}
    sides['init-torch'] = {p: {} for p in (42, 1, 2, 3)}
    sides['control-torchinit-seed7'] = {42: {s: f'out/e26-more/control-torchinit42-seed7-seed{s}-eval.json' for s in FT}}
    sides['init-ours-randpos'] = {p: {s: f'out/e26-more/init-ours-{p}-randpos-seed{s}-eval.json' for s in FT} for p in (42, 1, 2, 3)}
    sides['ours-from-torch'] = {p: {s: f'out/e27-mirror/ours-from-torch{p}-seed{s}-eval.json' for s in FT} for p in (42, 1, 2)}
    sides['control-sampler'] = {p: {s: f'out/e27-sampler/control-torch{p}-sampler{1000 + p}-seed{s}-eval.json' for s in FT} for p in (42, 1)}
    for side, pre in sides.items():
        for p, files in pre.items():
            for s in FT:
                files.setdefault(s, f'out/e26-more/{side}-{p}-seed{s}-eval.json')
    return base, sides


def welch(means, a, b):
    """Prints b − a with the standard error of the difference and Welch's t."""
    if a in means and b in means:
        (ma, sa), (mb, sb) = means[a], means[b]
        se = math.hypot(sa, sb)
        print(f'{b} − {a}: {mb - ma:+.1f} ± {se:.1f} (Welch t {(mb - ma) / se:.2f})')


def mean_se(xs):
    m = sum(xs) / len(xs)
    return m, math.sqrt(sum((x - m) ** 2 for x in xs) / (len(xs) - 1) / len(xs))


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument('--root', default='.')
    ap.add_argument('--sinusoidal-baseline', action='store_true')
    args = ap.parse_args()
    os.chdir(args.root)
    accuracy = lambda p: 100 * json.load(open(p))['accuracy']
    base, sides = paths(args.sinusoidal_baseline)
    means, gains_of = {}, {}
    for side, pre in sides.items():
        per = []
        for p, files in pre.items():
            missing = [f for f in files.values() if not os.path.exists(f)]
            if missing:
                print(f'{side} pre-training seed {p}: missing {missing[0]}')
                continue
            gains = [accuracy(files[s]) - accuracy(base[s]) for s in FT]
            gains_of[side, p] = gains
            m, se = mean_se(gains)
            per.append(m)
            print(f'| {side} | {p} | {m:+.1f} ± {se:.1f} | {", ".join(f"{g:+.1f}" for g in gains)} |')
        if len(per) > 1:
            m, se = mean_se(per)
            means[side] = (m, se)
            print(f'{side}: {m:+.1f} ± {se:.1f} over {len(per)} pre-training seeds')
    welch(means, 'ours', 'control')
    welch(means, 'init-ours', 'init-torch')
    welch(means, 'ours', 'ours-from-torch')
    mean_gain = lambda side, p: sum(gains_of[side, p]) / len(FT)
    # Differences between two arms of the same draw (pre-training seed), averaged over the draws both have.
    def same_draw(a, b, what):
        diffs = [mean_gain(a, p) - mean_gain(b, p) for p in (42, 1, 2, 3) if (a, p) in gains_of and (b, p) in gains_of]
        if len(diffs) == 1:
            print(f'{a} − {b} ({what}): {diffs[0]:+.1f}')
        elif diffs:
            m, se = mean_se(diffs)
            print(f'{a} − {b} ({what}): {m:+.1f} ± {se:.1f} ({", ".join(f"{x:+.1f}" for x in diffs)})')
    same_draw('init-ours', 'init-ours-randpos', 'the sinusoidal position table, same draw')
    # Init-matched pairs: the same initial weights trained by each implementation.
    pairs = []
    for p in (42, 1, 2):
        if ('ours', p) in gains_of and ('control-init', p) in gains_of:
            d = [c - o for c, o in zip(gains_of['control-init', p], gains_of['ours', p])]
            pairs.append(sum(d) / len(d))
            print(f'control-init − ours, pre-training seed {p}: {pairs[-1]:+.1f} ({", ".join(f"{x:+.1f}" for x in d)})')
    # What pre-training adds to its own initial weights: pre-trained minus untrained, same draw.
    for side, untrained in (('ours', 'init-ours'), ('control', 'init-torch'), ('control-init', 'init-ours'),
                            ('control-torchinit-seed7', 'init-torch'), ('ours-from-torch', 'init-torch'),
                            ('control-sampler', 'init-torch')):
        same_draw(side, untrained, 'what pre-training adds to the same draw')
    same_draw('control', 'ours-from-torch', "the two trainers from torch's draw")
    same_draw('control', 'control-sampler', "the control's sampler on the weights' stream, against its own")
    if len(pairs) > 1:
        m, se = mean_se([mean_gain('ours', p) for p in (42, 1, 2)][:len(pairs)])
        print(f'ours over the same {len(pairs)} pre-training seeds: {m:+.1f} ± {se:.1f}')
        m, se = mean_se(pairs)
        print(f'control-init − ours over {len(pairs)} init-matched pairs: {m:+.1f} ± {se:.1f} (paired t {m / se:.2f})')


if __name__ == '__main__':
    main()
