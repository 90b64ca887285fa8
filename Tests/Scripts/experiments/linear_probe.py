#!/usr/bin/env python3
"""What a frozen encoder knows about a task: a linear probe per layer, by transformers.

For each checkpoint directory (config.json, model.safetensors, vocab.txt: BertKit pre-training output
or any Hugging Face BERT), every layer's hidden states (the embeddings = layer 0, then each Transformer
layer) are mean-pooled over the real tokens of each text of a classification file, standardised with
the train rows' mean and deviation, and a multinomial logistic regression (scikit-learn, L2, C) is fit
on the train rows and scored on the test rows. `--random` adds a randomly initialised encoder of each
checkpoint's config (torch.manual_seed(--seed)), the baseline a probe must beat for pre-training to
have learned something linearly useful.

It reads what fine-tuning cannot tell apart: fine-tuning moves every weight, so a pre-trained encoder
can fine-tune no better than a random one either because its features are useless or because the
fine-tuning forgets them. Output: one JSON object per (checkpoint, init, layer) on stdout.

Usage: python linear_probe.py --data FILE.tsv [--split-column split] [--max-length 128] [--C 0.1]
           [--random] [--threads 1] CKPT...
The file is a TSV with a header and columns text, label and split (train/test). Needs torch,
transformers and scikit-learn.
"""
import argparse
import csv
import json
import sys

import numpy as np
import torch
from sklearn.linear_model import LogisticRegression
from transformers import BertConfig, BertModel, BertTokenizerFast


def rows(path, split_column):
    train, test = [], []
    with open(path, encoding="utf-8") as f:
        for row in csv.DictReader(f, delimiter="\t", quoting=csv.QUOTE_NONE):
            (train if row[split_column] == "train" else test if row[split_column] == "test" else []).append(
                (row["text"], row["label"]))
    if not train or not test:
        sys.exit(f"{path}: needs rows with {split_column} train and test")
    return train, test


def features(model, tokenizer, texts, max_length, batch=64):
    """(layers + 1, N, H) mean-pooled hidden states over real tokens."""
    out = []
    with torch.no_grad():
        for i in range(0, len(texts), batch):
            b = tokenizer(texts[i:i + batch], truncation=True, max_length=max_length, padding=True, return_tensors="pt")
            o = model(**b, output_hidden_states=True)
            m = b["attention_mask"].unsqueeze(-1).float()
            out.append(torch.stack([(h * m).sum(1) / m.sum(1) for h in o.hidden_states]).numpy())
    return np.concatenate(out, axis=1)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", required=True)
    ap.add_argument("--split-column", default="split")
    ap.add_argument("--max-length", type=int, default=128)
    ap.add_argument("--C", type=float, default=0.1, help="inverse L2 strength (default: %(default)s)")
    ap.add_argument("--max-iter", type=int, default=300)
    ap.add_argument("--random", action="store_true", help="also probe a random init of each checkpoint's config")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("checkpoints", nargs="+")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    train, test = rows(args.data, args.split_column)
    for ck in args.checkpoints:
        # from_pretrained reads DIR/vocab.txt (BERT defaults: lower case, accents stripped). The
        # constructor with vocab_file= silently gives a 5-token vocabulary in transformers 5.x (every
        # word [UNK]), so the size is checked against the config.
        tokenizer = BertTokenizerFast.from_pretrained(ck)
        vocab_size = BertConfig.from_pretrained(ck).vocab_size
        if len(tokenizer) != vocab_size:
            sys.exit(f"{ck}/vocab.txt: the tokenizer has {len(tokenizer)} tokens, the config {vocab_size}")
        inits = [("trained", lambda: BertModel.from_pretrained(ck))]
        if args.random:
            def random_model():
                torch.manual_seed(args.seed)
                return BertModel(BertConfig.from_pretrained(ck))
            inits.append(("random", random_model))
        for name, make in inits:
            model = make().eval()
            xtr = features(model, tokenizer, [t for t, _ in train], args.max_length)
            xte = features(model, tokenizer, [t for t, _ in test], args.max_length)
            ytr, yte = [l for _, l in train], [l for _, l in test]
            for layer in range(xtr.shape[0]):
                mu, sd = xtr[layer].mean(0), xtr[layer].std(0) + 1e-6
                clf = LogisticRegression(C=args.C, max_iter=args.max_iter).fit((xtr[layer] - mu) / sd, ytr)
                print(json.dumps({"checkpoint": ck, "init": name, "layer": layer,
                                  "test_accuracy": round(clf.score((xte[layer] - mu) / sd, yte), 4),
                                  "train_accuracy": round(clf.score((xtr[layer] - mu) / sd, ytr), 4)}), flush=True)


if __name__ == "__main__":
    main()
