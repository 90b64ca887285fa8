#!/usr/bin/env python3
"""Check that a checkpoint directory written by BertKit loads in Hugging Face transformers as it is.

The directory holds `config.json` and `model.safetensors` (and usually `vocab.txt`). The script loads
it with `BertForPreTraining.from_pretrained(DIR, output_loading_info=True)` (or
`BertForSequenceClassification` with --classifier), prints one JSON object on stdout:

    {"architecture": "BertForPreTraining", "directory": "...",
     "missing_keys": [...], "unexpected_keys": [...], "mismatched_keys": [[name, checkpoint_shape, model_shape], ...],
     "error_msgs": [...], "vocab": {"tokens": 99, "config_vocab_size": 99} | null,
     "ok": true,
     # with --run-batch:
     "batch": "Tests/Fixtures/model/tiny_batch.safetensors",
     "prediction_logits": [[[...]]], "seq_relationship_logits": [[...]]     (pre-training)
     "logits": [[...]]                                                       (--classifier)
     "loss": float                                                           (pre-training, when the batch has labels)
     # with --compare:
     "max_abs_diff": {"prediction_logits": ..., "seq_relationship_logits": ...}}

and exits 1 when a key is missing, unexpected or of the wrong shape, when loading reported errors,
when vocab.txt has more tokens than config.json's vocab_size, or when --compare finds a difference
above --tolerance; 2 on bad usage (directory or files missing). Loading messages go to stderr.

Examples (from the repository root):

    /work/venv-torch/bin/python Tests/Scripts/checks/check_hf_checkpoint.py checkpoints/run/epoch-0001
    /work/venv-torch/bin/python Tests/Scripts/checks/check_hf_checkpoint.py DIR --run-batch
    /work/venv-torch/bin/python Tests/Scripts/checks/check_hf_checkpoint.py DIR --run-batch \\
        --compare Tests/Fixtures/model/tiny_expected.safetensors        # DIR made from tiny_init
    /work/venv-torch/bin/python Tests/Scripts/checks/check_hf_checkpoint.py DIR --classifier --run-batch

The batch (--batch, default Tests/Fixtures/model/tiny_batch.safetensors) needs input_ids,
token_type_ids and attention_mask; labels and next_sentence_label are used when present
(pre-training only). Its ids must be below the checkpoint's vocab_size.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[3]
DEFAULT_BATCH = REPO / "Tests" / "Fixtures" / "model" / "tiny_batch.safetensors"


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("directory", type=Path, help="checkpoint directory (config.json, model.safetensors[, vocab.txt])")
    ap.add_argument("--classifier", action="store_true", help="load BertForSequenceClassification instead of BertForPreTraining")
    ap.add_argument("--run-batch", action="store_true", help="run the batch through the model and print its logits")
    ap.add_argument("--batch", type=Path, default=DEFAULT_BATCH, help="safetensors batch (default: %(default)s)")
    ap.add_argument("--compare", type=Path, help="safetensors file with expected logits (implies --run-batch)")
    ap.add_argument("--tolerance", type=float, default=1e-4, help="max |difference| allowed by --compare (default: %(default)s)")
    ap.add_argument("--double", action="store_true", help="run the batch in float64 (for --compare against float64 expectations)")
    args = ap.parse_args()

    d: Path = args.directory
    for needed in ("config.json", "model.safetensors"):
        if not (d / needed).is_file():
            print(f"{d / needed}: missing; give a checkpoint directory written by `bert pretrain` or `bert finetune`", file=sys.stderr)
            return 2
    if (args.run_batch or args.compare) and not args.batch.is_file():
        print(f"{args.batch}: batch file missing", file=sys.stderr)
        return 2

    import torch
    from safetensors.torch import load_file
    from transformers import BertForPreTraining, BertForSequenceClassification

    cls = BertForSequenceClassification if args.classifier else BertForPreTraining
    # ignore_mismatched_sizes: report wrong shapes in the loading info instead of raising.
    model, info = cls.from_pretrained(str(d), output_loading_info=True, ignore_mismatched_sizes=True)
    model.eval()

    def shape_list(x):
        return list(x) if x is not None else None

    mismatched = []
    for entry in sorted(info.get("mismatched_keys", []), key=str):
        if isinstance(entry, (tuple, list)) and len(entry) == 3:
            mismatched.append([entry[0], shape_list(entry[1]), shape_list(entry[2])])
        else:
            mismatched.append([str(entry), None, None])
    report = {
        "architecture": cls.__name__,
        "directory": str(d),
        "missing_keys": sorted(info.get("missing_keys", [])),
        "unexpected_keys": sorted(info.get("unexpected_keys", [])),
        "mismatched_keys": mismatched,
        "error_msgs": [str(m) for m in info.get("error_msgs", [])],
        "vocab": None,
    }
    failed = bool(report["missing_keys"] or report["unexpected_keys"] or mismatched or report["error_msgs"])

    vocab = d / "vocab.txt"
    if vocab.is_file():
        tokens = len(vocab.read_text(encoding="utf-8").splitlines())
        report["vocab"] = {"tokens": tokens, "config_vocab_size": model.config.vocab_size}
        if tokens > model.config.vocab_size:
            report["vocab"]["error"] = "vocab.txt has more tokens than config.json's vocab_size"
            failed = True

    if args.run_batch or args.compare:
        if args.double:
            model = model.double()
        batch = load_file(str(args.batch))
        report["batch"] = str(args.batch)
        kwargs = {k: batch[k] for k in ("input_ids", "token_type_ids", "attention_mask") if k in batch}
        with torch.no_grad():
            if args.classifier:
                out = model(**kwargs)
                report["logits"] = out.logits.tolist()
            else:
                if "labels" in batch and "next_sentence_label" in batch:
                    kwargs["labels"] = batch["labels"]
                    kwargs["next_sentence_label"] = batch["next_sentence_label"]
                out = model(**kwargs)
                report["prediction_logits"] = out.prediction_logits.tolist()
                report["seq_relationship_logits"] = out.seq_relationship_logits.tolist()
                if out.loss is not None:
                    report["loss"] = out.loss.item()
        if args.compare:
            expected = load_file(str(args.compare))
            names = ["logits"] if args.classifier else ["prediction_logits", "seq_relationship_logits", "loss"]
            diffs = {}
            for name in names:
                got = getattr(out, name, None)
                if name not in expected or got is None:
                    continue
                diffs[name] = (got.double() - expected[name].double().reshape(got.shape)).abs().max().item()
            report["max_abs_diff"] = diffs
            if not diffs or any(v > args.tolerance for v in diffs.values()):
                failed = True

    report["ok"] = not failed
    print(json.dumps(report))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
