#!/usr/bin/env python3
"""Fixture for `bert predict` at the recorded length, checked by transformers (issue 30).

Writes Tests/Fixtures/predict/:

    classifier/        a small classifier made by `bert finetune` at --max-seq-length 24: config.json,
                       model.safetensors, vocab.txt and the tokenizer_config.json that records the length
                       (model_max_length 24) and the casing
    texts.txt          fortunes of the test split, one per line (most longer than 24 tokens)
    hf_predictions.tsv what transformers predicts for texts.txt, loading classifier/ as it is:
                       AutoTokenizer (which reads model_max_length from tokenizer_config.json) with
                       truncation=True and padding to each batch's longest, AutoModelForSequenceClassification
                       in eval mode, fp32; `bert predict`'s TSV (label, p_LABEL... with 6 decimals)
    README.md          how they were made, and how many labels change when the length is not the recorded one

How the classifier is made (any bert binary of this repository; the fixture does not depend on its
bytes, only on transformers agreeing with it): a 2,000-word vocabulary (`bert vocab`) and a 2-layer,
32-wide encoder (`bert finetune --from-scratch --config`) fine-tuned for 2 epochs on the train split of
Corpora/generated/fortunes.tsv (`make corpus`) at length 24, lr 1e-3, seed 7, 2 threads.
Texts whose top two probabilities under transformers are closer than 1e-3 are left out of texts.txt,
so that a label cannot flip on rounding noise between two correct implementations.

Usage (from the repository root, with torch and transformers from requirements-model.txt):

    /work/venv-torch/bin/python Tests/Scripts/make_predict_fixture.py --bert .build/release/bert \\
        --fortunes Corpora/generated/fortunes.tsv [--out Tests/Fixtures/predict] [--rows 300]
"""

from __future__ import annotations

import argparse
import csv
import json
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import torch
import transformers
from transformers import AutoModelForSequenceClassification, AutoTokenizer

LENGTH = 24
CONFIG = {"vocab_size": 2000, "hidden_size": 32, "num_hidden_layers": 2, "num_attention_heads": 2,
          "intermediate_size": 64, "max_position_embeddings": 64}


def run(cmd: list[str]) -> None:
    print("+", " ".join(cmd), file=sys.stderr, flush=True)
    subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL)


def predict(model, tokenizer, texts: list[str], max_length: int | None) -> list[list[float]]:
    out: list[list[float]] = []
    with torch.inference_mode():
        for i in range(0, len(texts), 32):
            enc = tokenizer(texts[i:i + 32], truncation=True, padding=True, return_tensors="pt",
                            **({"max_length": max_length} if max_length else {}))
            out += torch.softmax(model(**enc).logits.double(), dim=-1).tolist()
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--bert", required=True)
    ap.add_argument("--fortunes", required=True)
    ap.add_argument("--out", default="Tests/Fixtures/predict")
    ap.add_argument("--rows", type=int, default=300)
    args = ap.parse_args()
    torch.set_num_threads(2)
    out = Path(args.out)
    with tempfile.TemporaryDirectory() as tmp:
        t = Path(tmp)
        train, test = [], []
        with open(args.fortunes, newline="", encoding="utf-8") as f:
            for row in csv.DictReader(f, delimiter="\t", quoting=csv.QUOTE_NONE):
                (train if row["split"] == "train" else test if row["split"] == "test" else []).append(row["text"])
        (t / "train.txt").write_text("\n".join(train) + "\n", encoding="utf-8")
        run([args.bert, "vocab", "--input", str(t / "train.txt"), "--size", str(CONFIG["vocab_size"]), "--output", str(t / "vocab.txt")])
        vocab_size = sum(1 for _ in open(t / "vocab.txt", encoding="utf-8"))
        (t / "config.json").write_text(json.dumps(dict(CONFIG, vocab_size=vocab_size)), encoding="utf-8")
        run([args.bert, "finetune", "--from-scratch", "--config", str(t / "config.json"), "--vocab", str(t / "vocab.txt"),
             "--data", args.fortunes, "--output", str(t / "cls"), "--epochs", "2", "--max-seq-length", str(LENGTH),
             "--learning-rate", "1e-3", "--seed", "7", "--threads", "2", "--precision", "fp32"])
        if out.exists():
            shutil.rmtree(out)
        (out / "classifier").mkdir(parents=True)
        for name in ("config.json", "model.safetensors", "vocab.txt", "tokenizer_config.json"):
            shutil.copyfile(t / "cls" / name, out / "classifier" / name)  # follows the links to the best epoch
    recorded = json.loads((out / "classifier" / "tokenizer_config.json").read_text())
    assert recorded["model_max_length"] == LENGTH, recorded
    tokenizer = AutoTokenizer.from_pretrained(out / "classifier")
    assert tokenizer.model_max_length == LENGTH, tokenizer.model_max_length
    model = AutoModelForSequenceClassification.from_pretrained(out / "classifier").eval()
    labels = [model.config.id2label[i] for i in range(model.config.num_labels)]
    candidates = test[: args.rows * 2]
    probs = predict(model, tokenizer, candidates, None)
    kept = [(x, p) for x, p in zip(candidates, probs) if sorted(p)[-1] - sorted(p)[-2] >= 1e-3][: args.rows]
    texts = [x for x, _ in kept]
    probs = predict(model, tokenizer, texts, None)  # again over the kept rows only, in the fixture's batches
    longer = sum(1 for x in texts if len(tokenizer(x)["input_ids"]) > LENGTH)
    full = predict(model, tokenizer, texts, CONFIG["max_position_embeddings"])
    argmax = lambda p: max(range(len(p)), key=p.__getitem__)  # noqa: E731
    changed = sum(1 for a, b in zip(probs, full) if argmax(a) != argmax(b))
    (out / "texts.txt").write_text("\n".join(texts) + "\n", encoding="utf-8")
    with open(out / "hf_predictions.tsv", "w", encoding="utf-8") as f:
        f.write("\t".join(["label"] + ["p_" + x for x in labels]) + "\n")
        for p in probs:
            f.write("\t".join([labels[argmax(p)]] + [f"{v:.6f}" for v in p]) + "\n")
    readme = f"""# `bert predict` at the recorded length, as transformers predicts

Made by `Tests/Scripts/make_predict_fixture.py` (its docstring says how; rerun it to remake every file here)
with torch {torch.__version__} and transformers {transformers.__version__}.

- `classifier/`: a {CONFIG['num_hidden_layers']}-layer, {CONFIG['hidden_size']}-wide classifier of {len(labels)} labels
  (the fortunes topics) over a {vocab_size}-word vocabulary, fine-tuned by `bert finetune` at `--max-seq-length {LENGTH}`;
  its `tokenizer_config.json` records `model_max_length` {LENGTH} and `do_lower_case` {str(recorded.get('do_lower_case')).lower()}.
- `texts.txt`: {len(texts)} texts of the fortunes test split; {longer} of them are longer than {LENGTH} tokens.
- `hf_predictions.tsv`: transformers' predictions for them, loading `classifier/` as it is (AutoTokenizer read
  `model_max_length` {LENGTH} from `tokenizer_config.json`).

At the model's full {CONFIG['max_position_embeddings']} positions instead of the recorded {LENGTH}, transformers' label
changes for {changed} of the {len(texts)} texts: the test that reads this fixture fails if `bert predict`
does not use the recorded length.
"""
    (out / "README.md").write_text(readme, encoding="utf-8")
    print(json.dumps({"texts": len(texts), "longer_than_recorded": longer, "labels_changed_at_full_length": changed}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
