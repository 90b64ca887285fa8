#!/usr/bin/env python3
"""What two pre-training runs fed their models, side by side: `bert pretrain --record-batches` recordings
(BertKit) and `torch_pretrain_control.py --record-batches` ones (the control; `--dry-run` for its batches and
masks without training). Both trainers are meant to draw their data order, dynamic masks and ELECTRA samples
from the same distributions; this checks that they do.

    python3 Tests/Scripts/experiments/trace_stats.py --shards SHARDS --vocab VOCAB NAME=TRACE [NAME=TRACE ...]

For each recording, one column:
  - coverage: updates, epochs (updates per epoch from the shards' instance count and the batch size), how many
    of the shards' instances each epoch visits (rows matched to `bert inspect SHARDS --json` by their ids with the
    masked labels put back), visits per instance;
  - masks: masked positions per row against the target min(P, max(1, round(len * p))), the share of rows that hit
    it, the 80/10/10 split ([MASK] / kept / another id), how the other ids spread (mean id / (V - 1), the
    share that are special tokens), where masks fall (mean relative position, the share at the first and last
    real positions after [CLS] and before the last [SEP]), and how often one instance gets the same mask set
    in two epochs;
  - batches: mean padded length, the share of padding, the padded length's correlation between consecutive
    batches;
  - samples (ELECTRA): the share equal to the original, over the first, middle and last thirds of the updates.
"""
from __future__ import annotations

import argparse
import json
import math
import subprocess
from collections import Counter, defaultdict
from pathlib import Path

import numpy as np


def instances(bert: str, shards: Path) -> dict[tuple, int]:
    out = subprocess.run([bert, "inspect", str(shards), "--json", "--limit", "0"], check=True, capture_output=True, text=True).stdout
    index: dict[tuple, int] = {}
    for k, line in enumerate(out.splitlines()):
        index.setdefault(tuple(json.loads(line)["input_ids"]), k)
    return index


def stats(trace: Path, known: dict[tuple, int], instances_total: int, vocab: list[str], p: float, cap: int) -> dict:
    special = {i for i, t in enumerate(vocab) if t.startswith("[") and t.endswith("]")}
    mask_id, cls_id, sep_id = vocab.index("[MASK]"), vocab.index("[CLS]"), vocab.index("[SEP]")
    v = len(vocab)
    batch_size = None
    updates = 0
    visits: dict[int, list[int]] = defaultdict(list)  # instance -> epochs
    masks_seen: dict[tuple[int, int], frozenset] = {}
    repeated = pairs = 0
    unknown = 0
    rows_n = hit_target = 0
    masked_per_row = []
    split = Counter()
    other_ids = []
    rel_positions = []
    at_first = at_last = masked_total = 0
    padded = []
    pad_share = []
    sampled_same = defaultdict(lambda: [0, 0])  # third -> [same, masked]
    lines = []
    with open(trace) as f:
        for line in f:
            r = json.loads(line)
            b, t = r["batch_size"], r["seq_length"]
            if batch_size is None:
                batch_size = b
            updates = max(updates, r["step"])
            lines.append((r["step"], b, t))
            ids = np.array(r["input_ids"]).reshape(b, t)
            att = np.array(r["attention_mask"]).reshape(b, t)
            pos = np.array(r["masked_positions"])
            lab = np.array(r["masked_labels"])
            original = ids.copy().reshape(-1)
            original[pos] = lab
            original = original.reshape(b, t)
            padded.append(t)
            pad_share.append(1 - att.sum() / (b * t))
            per_row = defaultdict(list)
            for q, l in zip(pos, lab):
                per_row[int(q) // t].append((int(q) % t, int(l)))
            epochs_per = math.ceil(instances_total / batch_size)
            epoch = (r["step"] - 1) // epochs_per
            for i in range(b):
                n = int(att[i].sum())
                key = tuple(int(x) for x in original[i, :n])
                k = known.get(key)
                if k is None:
                    unknown += 1
                    continue
                visits[k].append(epoch)
                ms = per_row.get(i, [])
                target = min(cap, max(1, round(n * p)))
                rows_n += 1
                hit_target += len(ms) == target
                masked_per_row.append(len(ms))
                last_sep = max(j for j in range(n) if original[i, j] == sep_id)
                for j, l in ms:
                    x = int(ids[i, j])
                    kind = "mask" if x == mask_id else "kept" if x == l else "other"
                    split[kind] += 1
                    if kind == "other":
                        other_ids.append(x)
                    rel_positions.append(j / max(1, n - 1))
                    at_first += j == 1
                    at_last += j == last_sep - 1
                    masked_total += 1
                s = frozenset(j for j, _ in ms)
                prev = masks_seen.get((k, 0))
                if prev is not None:
                    pairs += 1
                    repeated += prev == s
                else:
                    masks_seen[(k, 0)] = s
            if "samples" in r:
                third = min(2, 3 * (r["step"] - 1) // max(1, 9500))
                smp = np.array(r["samples"])
                sampled_same[third][0] += int((smp == lab).sum())
                sampled_same[third][1] += len(lab)
    epochs_per = math.ceil(instances_total / batch_size)
    full_epochs = updates // epochs_per
    per_epoch = Counter()
    for k, es in visits.items():
        for e in set(es):
            if e < full_epochs:
                per_epoch[e] += 1
    counts = np.array([len(es) for es in visits.values()])
    pt = np.array(padded, dtype=float)
    out = {
        "updates": updates, "batch": batch_size, "full epochs": full_epochs,
        "rows not among the shards' instances": unknown,
        "instances visited per full epoch (min, max)": (min(per_epoch.values(), default=0), max(per_epoch.values(), default=0)),
        "visits per instance (mean, min, max)": (round(float(counts.mean()), 3), int(counts.min()), int(counts.max())),
        "masked per row (mean)": round(float(np.mean(masked_per_row)), 4),
        "rows at the target count": round(hit_target / max(1, rows_n), 4),
        "[MASK] / kept / other": tuple(round(split[k] / max(1, masked_total), 4) for k in ("mask", "kept", "other")),
        "other ids: mean / (V-1)": round(float(np.mean(other_ids)) / (v - 1), 4) if other_ids else None,
        "other ids: special tokens": round(sum(x in special for x in other_ids) / max(1, len(other_ids)), 5),
        "mask position: mean relative": round(float(np.mean(rel_positions)), 4),
        "mask at the first position after [CLS]": round(at_first / max(1, masked_total), 5),
        "mask at the position before the last [SEP]": round(at_last / max(1, masked_total), 5),
        "same mask set in a later epoch": round(repeated / max(1, pairs), 5),
        "padded length (mean)": round(float(pt.mean()), 2),
        "padding share": round(float(np.mean(pad_share)), 4),
        "padded length, lag-1 correlation": round(float(np.corrcoef(pt[:-1], pt[1:])[0, 1]), 4) if len(pt) > 2 else None,
    }
    for third in sorted(sampled_same):
        same, n = sampled_same[third]
        out[f"samples equal to the original, third {third + 1}"] = round(same / max(1, n), 4)
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--shards", type=Path, required=True)
    ap.add_argument("--bert", default=".build/release/bert")
    ap.add_argument("traces", nargs="+", help="NAME=FILE")
    args = ap.parse_args()
    index = json.loads((args.shards / "index.json").read_text())
    params = index["parameters"]
    vocab = (args.shards / "vocab.txt").read_text(encoding="utf-8").splitlines()
    known = instances(args.bert, args.shards)
    results = {}
    for spec in args.traces:
        name, _, path = spec.partition("=")
        results[name] = stats(Path(path), known, index["total_instances"], vocab, params["masked_lm_prob"],
                              params["max_predictions_per_seq"])
    keys = list(dict.fromkeys(k for r in results.values() for k in r))
    print("| statistic | " + " | ".join(results) + " |")
    print("|---|" + "---|" * len(results))
    for k in keys:
        print(f"| {k} | " + " | ".join(str(r.get(k, "-")) for r in results.values()) + " |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
