#!/usr/bin/env python3
"""Checks that transformers' BertForSequenceClassification, loading a directory written by
`bert finetune`, predicts what `bert predict` printed for the same file.

    python compare_predictions.py --checkpoint DIR --input FILE.tsv --predictions PRED.tsv [--max-length 128]

Tokenizes with tokenizers' BertWordPieceTokenizer (lowercase, truncation at --max-length; the oracle
bert tokenize matches exactly), runs the model in eval mode on CPU, and prints one JSON object:
rows, label agreement, the largest probability difference. Exit 1 when a label differs.
Needs torch and transformers (not part of CI)."""
import argparse
import csv
import json
import sys

import torch
from tokenizers import BertWordPieceTokenizer
from transformers import BertForSequenceClassification


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--checkpoint", required=True)
    ap.add_argument("--input", required=True, help="TSV with a header and a text column")
    ap.add_argument("--predictions", required=True, help="bert predict's TSV output")
    ap.add_argument("--max-length", type=int, default=128)
    ap.add_argument("--batch", type=int, default=64)
    args = ap.parse_args()
    torch.set_num_threads(2)
    model = BertForSequenceClassification.from_pretrained(args.checkpoint).eval()
    labels = [model.config.id2label[i] for i in range(model.config.num_labels)]
    tok = BertWordPieceTokenizer(f"{args.checkpoint}/vocab.txt", lowercase=True)
    tok.enable_truncation(args.max_length)
    with open(args.input, encoding="utf-8") as f:
        rows = list(csv.DictReader(f, delimiter="\t", quoting=csv.QUOTE_NONE))
    with open(args.predictions, encoding="utf-8") as f:
        ours = list(csv.DictReader(f, delimiter="\t", quoting=csv.QUOTE_NONE))
    assert len(rows) == len(ours), (len(rows), len(ours))
    agree, worst = 0, 0.0
    for start in range(0, len(rows), args.batch):
        chunk = rows[start:start + args.batch]
        enc = tok.encode_batch([r["text"] for r in chunk])
        width = max(len(e.ids) for e in enc)
        ids = torch.tensor([e.ids + [0] * (width - len(e.ids)) for e in enc])
        mask = torch.tensor([[1] * len(e.ids) + [0] * (width - len(e.ids)) for e in enc])
        with torch.no_grad():
            probs = torch.softmax(model(input_ids=ids, attention_mask=mask).logits, dim=-1)
        for k, p in enumerate(probs):
            mine = ours[start + k]
            if labels[int(p.argmax())] == mine["label"]:
                agree += 1
            for j, name in enumerate(labels):
                worst = max(worst, abs(float(p[j]) - float(mine["p_" + name])))
    print(json.dumps({"rows": len(rows), "same_label": agree, "max_probability_difference": worst}))
    return 0 if agree == len(rows) else 1


if __name__ == "__main__":
    sys.exit(main())
