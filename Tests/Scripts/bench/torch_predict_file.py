#!/usr/bin/env python3
"""The transformers side of `make bench-predict`: classify a plain-text file (one text per line) with a
model directory, as a transformers user would, the whole process timed by the caller (imports and model
load included, as `bert predict`'s own load is).

    python torch_predict_file.py DIR TEXTS.txt OUT.tsv [--threads 2] [--batch-size 32] [--bf16]

AutoTokenizer.from_pretrained(DIR) (which reads model_max_length from DIR/tokenizer_config.json) and
AutoModelForSequenceClassification.from_pretrained(DIR) in eval mode; for each batch of --batch-size
lines in file order: tokenizer(batch, padding=True, truncation=True, return_tensors="pt") (padding to
the batch's longest, truncation at the recorded length), the model under torch.inference_mode() (and
torch.autocast("cpu", dtype=torch.bfloat16) with --bf16), softmax. Writes `bert predict`'s TSV (label,
p_LABEL..., 6 decimals) so the labels can be compared; prints one JSON line (rows, the length used,
seconds after imports, load seconds) on stderr.
"""

import argparse
import json
import sys
import time

t0 = time.perf_counter()
import torch  # noqa: E402
from transformers import AutoModelForSequenceClassification, AutoTokenizer  # noqa: E402


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("directory")
    ap.add_argument("texts")
    ap.add_argument("output")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--batch-size", type=int, default=32)
    ap.add_argument("--bf16", action="store_true")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    t1 = time.perf_counter()
    tokenizer = AutoTokenizer.from_pretrained(args.directory)
    model = AutoModelForSequenceClassification.from_pretrained(args.directory).eval()
    labels = [model.config.id2label[i] for i in range(model.config.num_labels)]
    t2 = time.perf_counter()
    with open(args.texts, encoding="utf-8") as f:
        texts = [line.rstrip("\n") for line in f]
    with open(args.output, "w", encoding="utf-8") as out, torch.inference_mode():
        out.write("\t".join(["label"] + ["p_" + x for x in labels]) + "\n")
        for i in range(0, len(texts), args.batch_size):
            batch = tokenizer(texts[i:i + args.batch_size], padding=True, truncation=True, return_tensors="pt")
            if args.bf16:
                with torch.autocast("cpu", dtype=torch.bfloat16):
                    logits = model(**batch).logits
            else:
                logits = model(**batch).logits
            for p in torch.softmax(logits.float(), dim=-1).tolist():
                best = max(range(len(p)), key=p.__getitem__)
                out.write("\t".join([labels[best]] + [f"{v:.6f}" for v in p]) + "\n")
    t3 = time.perf_counter()
    print(json.dumps({"rows": len(texts), "model_max_length": tokenizer.model_max_length, "import_s": t1 - t0,
                      "load_s": t2 - t1, "predict_s": t3 - t2}), file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
