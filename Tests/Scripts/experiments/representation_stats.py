#!/usr/bin/env python3
"""Is a pre-trained encoder degenerate? Issue 10's diagnostics, computed by transformers (an independent
implementation) on BertKit checkpoints.

For each checkpoint directory (config.json, model.safetensors, vocab.txt; BertKit pre-training or
fine-tuning output, or any Hugging Face BERT), on the first N texts of a classification file:
  - cls_cosine:     mean pairwise cosine similarity of the last layer's [CLS] vectors across inputs
                    (1.0 = every input looks the same to the classifier)
  - pooled_cosine:  the same for the pooler output tanh(W h_CLS + b)
  - mean_cosine:    the same for the mean of the last layer over real tokens
  - attention_entropy[l]: mean entropy of layer l's attention rows over real tokens, divided by
                    log(number of real tokens) (1.0 = uniform attention, 0 = one-hot)
  - weight_rms[l]:  root mean square of each layer's dense weights (query, key, value, attention
                    output, intermediate, output); init gives initializer_range (0.02)
  - layernorm_gain[l]: mean |gamma| of the layer's two LayerNorms (init 1.0)
A checkpoint of the same config with random weights (`--random`) gives the baseline. An ELECTRA
discriminator (config.json model_type "electra", a BertKit `--objective electra` checkpoint or the PyTorch
control's) loads as transformers' ElectraModel, which has no pooler (pooled_cosine null).

Usage: python representation_stats.py --data FILE.tsv [--limit 200] [--max-length 128] [--random] CKPT...
Needs torch and transformers (Tests/Scripts/requirements-model.txt).
"""
import argparse
import csv
import json
import math
import sys

import torch
from transformers import AutoConfig, AutoModel, BertTokenizerFast


def texts(path, limit):
    out = []
    with open(path, encoding="utf-8") as f:
        for row in csv.DictReader(f, delimiter="\t", quoting=csv.QUOTE_NONE):
            out.append(row["text"])
            if len(out) == limit:
                break
    return out


def mean_pairwise_cosine(x):
    x = torch.nn.functional.normalize(x.double(), dim=-1)
    n = x.shape[0]
    s = x @ x.T
    return ((s.sum() - s.diagonal().sum()) / (n * (n - 1))).item()


def stats(model, tokenizer, inputs, max_length):
    model.eval()
    enc = tokenizer(inputs, padding=True, truncation=True, max_length=max_length, return_tensors="pt")
    with torch.no_grad():
        out = model(**enc, output_attentions=True)
    mask = enc["attention_mask"].double()
    lengths = mask.sum(1)
    last = out.last_hidden_state.double()
    mean = (last * mask[:, :, None]).sum(1) / lengths[:, None]
    entropies = []
    for att in out.attentions:  # (B, heads, T, T)
        p = att.double().clamp_min(1e-30)
        h = -(p * p.log()).sum(-1)  # (B, heads, T)
        norm = torch.log(lengths.clamp_min(2))[:, None, None]
        rows = mask[:, None, :].expand_as(h)
        entropies.append(((h / norm) * rows).sum().item() / rows.sum().item())
    rms, gains = [], []
    for layer in model.encoder.layer:
        ws = [layer.attention.self.query.weight, layer.attention.self.key.weight, layer.attention.self.value.weight,
              layer.attention.output.dense.weight, layer.intermediate.dense.weight, layer.output.dense.weight]
        rms.append([round(w.double().pow(2).mean().sqrt().item(), 4) for w in ws])
        gains.append(round(((layer.attention.output.LayerNorm.weight.abs().mean() + layer.output.LayerNorm.weight.abs().mean()) / 2).item(), 4))
    return {
        "cls_cosine": round(mean_pairwise_cosine(last[:, 0]), 4),
        "pooled_cosine": round(mean_pairwise_cosine(out.pooler_output), 4) if getattr(out, "pooler_output", None) is not None else None,
        "mean_cosine": round(mean_pairwise_cosine(mean), 4),
        "attention_entropy": [round(e, 4) for e in entropies],
        "weight_rms": rms,
        "layernorm_gain": gains,
        "word_embedding_rms": round(model.embeddings.word_embeddings.weight.double().pow(2).mean().sqrt().item(), 4),
    }


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", required=True)
    ap.add_argument("--limit", type=int, default=200)
    ap.add_argument("--max-length", type=int, default=128)
    ap.add_argument("--random", action="store_true", help="also report a random init of each checkpoint's config")
    ap.add_argument("checkpoints", nargs="+")
    a = ap.parse_args()
    inputs = texts(a.data, a.limit)
    torch.manual_seed(0)
    for ckpt in a.checkpoints:
        # from_pretrained reads DIR/vocab.txt (BERT defaults: lower case, accents stripped). The
        # constructor with vocab_file= silently gives a 5-token vocabulary in transformers 5.x (every
        # word [UNK]), so the size is checked against the config.
        tokenizer = BertTokenizerFast.from_pretrained(ckpt)
        vocab_size = AutoConfig.from_pretrained(ckpt).vocab_size
        if len(tokenizer) != vocab_size:
            sys.exit(f"{ckpt}/vocab.txt: the tokenizer has {len(tokenizer)} tokens, the config {vocab_size}")
        model = AutoModel.from_pretrained(ckpt, attn_implementation="eager")  # BertModel, or ElectraModel
        print(json.dumps({"checkpoint": ckpt, **stats(model, tokenizer, inputs, a.max_length)}))
        if a.random:
            config = AutoConfig.from_pretrained(ckpt)
            config._attn_implementation = "eager"  # attention probabilities are returned only by eager
            print(json.dumps({"checkpoint": ckpt + " (random init)", **stats(AutoModel.from_config(config), tokenizer, inputs, a.max_length)}))
        sys.stdout.flush()


if __name__ == "__main__":
    main()
