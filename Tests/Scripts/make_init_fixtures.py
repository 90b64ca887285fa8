#!/usr/bin/env python3
"""Fixtures for `bert pretrain --init` (issue 29): small models written by transformers' save_pretrained
in the four layouts a public BERT comes in, and transformers' pre-training losses on one batch.

Writes Tests/Fixtures/init/:

    vocab.txt                  a 1,000-word uncased WordPiece vocabulary (`bert vocab --size 1000` on
                               Tests/Fixtures/text/en_sample.txt.zst); every model below uses it
    pretraining/               BertForPreTraining, F32 ("bert." names, MLM transform, NSP, pooler)
    bert_model/                BertModel, F32 (no "bert." prefix, no heads: they are initialised by --init)
    masked_lm/                 BertForMaskedLM, F16 (no pooler, no NSP head)
    classifier/                BertForSequenceClassification (3 labels), BF16 (pooler; classifier ignored)
                               each with config.json, model.safetensors, vocab.txt and the
                               tokenizer_config.json that BertTokenizer.save_pretrained writes (do_lower_case
                               true, model_max_length transformers' "none")
    batch.safetensors          one pre-training batch (I64): input_ids, token_type_ids, attention_mask
                               (4 × 24, one sequence padded), masked_positions (row-major flat indices),
                               masked_labels, next_sentence_labels
    expected.json              transformers' losses on that batch (eval mode, fp32): for pretraining/ the
                               MLM loss (mean cross-entropy over the masked positions) and the NSP loss;
                               for masked_lm/ the MLM loss of its weights widened to fp32 (exactly what
                               --init loads from F16)
    README.md                  how they were made

The models share one tiny configuration (hidden 32, 2 layers, 4 heads, intermediate 37, 64 positions)
and one seed; each is initialised by transformers, then every parameter gets N(0, 0.05) noise (so the
losses depend on every tensor, heads included). Deterministic on one machine and set of versions.

Usage (from the repository root, with torch and transformers from requirements-model.txt):

    /work/venv-torch/bin/python Tests/Scripts/make_init_fixtures.py --bert .build/release/bert [--out Tests/Fixtures/init]
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
from pathlib import Path

import torch
import torch.nn.functional as F
import transformers
from safetensors.torch import save_file
from transformers import (BertConfig, BertForMaskedLM, BertForPreTraining, BertForSequenceClassification, BertModel,
                          BertTokenizer)

CONFIG = dict(hidden_size=32, num_hidden_layers=2, num_attention_heads=4, intermediate_size=37, max_position_embeddings=64,
              type_vocab_size=2, hidden_act="gelu", hidden_dropout_prob=0.1, attention_probs_dropout_prob=0.1,
              initializer_range=0.02, layer_norm_eps=1e-12, pad_token_id=0)


def noisy(model: torch.nn.Module, seed: int) -> torch.nn.Module:
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for _, p in model.named_parameters():
            p.add_(torch.randn(p.shape, generator=g) * 0.05)
    return model


def save(model: torch.nn.Module, tokenizer: BertTokenizer, out: Path, dtype: torch.dtype) -> None:
    vocab = out.parent / "vocab.txt"
    out.mkdir(parents=True)
    model.to(dtype).save_pretrained(out, safe_serialization=True)
    tokenizer.save_pretrained(out)
    shutil.copyfile(vocab, out / "vocab.txt")  # transformers 5 writes tokenizer.json; public BERTs ship vocab.txt
    (out / "tokenizer.json").unlink(missing_ok=True)  # not read by BertKit; 22 KB a copy
    model.float()


def losses(model: BertForPreTraining | BertForMaskedLM, batch: dict) -> dict:
    model.eval()
    with torch.no_grad():
        kw = {k: batch[k] for k in ("input_ids", "token_type_ids", "attention_mask")}
        out = model(**kw)
        logits = out.prediction_logits if isinstance(model, BertForPreTraining) else out.logits
        flat = logits.reshape(-1, logits.shape[-1])[batch["masked_positions"]]
        result = {"mlm_loss": F.cross_entropy(flat.double(), batch["masked_labels"]).item()}
        if isinstance(model, BertForPreTraining):
            result["nsp_loss"] = F.cross_entropy(out.seq_relationship_logits.double(), batch["next_sentence_labels"]).item()
    return result


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--bert", required=True)
    ap.add_argument("--out", default="Tests/Fixtures/init")
    args = ap.parse_args()
    torch.set_num_threads(2)
    out = Path(args.out)
    if out.exists():
        shutil.rmtree(out)
    out.mkdir(parents=True)
    subprocess.run([args.bert, "vocab", "--input", "Tests/Fixtures/text/en_sample.txt.zst", "--size", "1000",
                    "--output", str(out / "vocab.txt")], check=True, stdout=subprocess.DEVNULL)
    tokenizer = BertTokenizer(str(out / "vocab.txt"), do_lower_case=True)
    vocab_size = len(tokenizer.get_vocab())
    config = BertConfig(vocab_size=vocab_size, **CONFIG)
    torch.manual_seed(20261206)
    pretraining = noisy(BertForPreTraining(config), 1)
    save(pretraining, tokenizer, out / "pretraining", torch.float32)
    save(noisy(BertModel(config), 2), tokenizer, out / "bert_model", torch.float32)
    masked_lm = noisy(BertForMaskedLM(config), 3)
    save(masked_lm, tokenizer, out / "masked_lm", torch.float16)
    masked_lm = BertForMaskedLM.from_pretrained(out / "masked_lm", dtype=torch.float32)  # the F16 values, widened
    classifier_config = BertConfig(vocab_size=vocab_size, num_labels=3, **CONFIG)
    save(noisy(BertForSequenceClassification(classifier_config), 4), tokenizer, out / "classifier", torch.bfloat16)

    g = torch.Generator().manual_seed(7)
    b, t = 4, 24
    ids = torch.randint(5, vocab_size, (b, t), generator=g)
    ids[:, 0] = tokenizer.cls_token_id
    types = torch.zeros(b, t, dtype=torch.long)
    types[:, t // 2:] = 1
    mask = torch.ones(b, t, dtype=torch.long)
    mask[3, 17:] = 0
    ids[3, 17:] = 0
    types[3, 17:] = 0
    positions = torch.tensor([s * t + p for s in range(b) for p in (2, 5, 9, 13, 16)], dtype=torch.long)
    labels = torch.randint(5, vocab_size, (len(positions),), generator=g)
    batch = {"input_ids": ids, "token_type_ids": types, "attention_mask": mask, "masked_positions": positions,
             "masked_labels": labels, "next_sentence_labels": torch.tensor([0, 1, 1, 0])}
    save_file({k: v.contiguous() for k, v in batch.items()}, str(out / "batch.safetensors"))
    expected = {"pretraining": losses(pretraining, batch), "masked_lm": losses(masked_lm, batch),
                "torch": torch.__version__, "transformers": transformers.__version__}
    (out / "expected.json").write_text(json.dumps(expected, indent=1, sort_keys=True) + "\n")
    names = {d: sorted(json.loads((out / d / "config.json").read_text()).get("architectures") or []) for d in
             ("pretraining", "bert_model", "masked_lm", "classifier")}
    (out / "README.md").write_text(f"""# Fixtures for `bert pretrain --init`

Made by `Tests/Scripts/make_init_fixtures.py` (its docstring says what each file is and how to remake
them) with torch {torch.__version__} and transformers {transformers.__version__}: four small models written by
`save_pretrained` (architectures {names}), one batch, and transformers' MLM and NSP losses on it
(`expected.json`). The Swift tests load each directory as `--init` does and compare the losses.
""")
    print(json.dumps(expected))
    return 0


if __name__ == "__main__":
    sys.exit(main())
