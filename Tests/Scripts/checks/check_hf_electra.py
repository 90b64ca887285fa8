#!/usr/bin/env python3
"""Check that an ELECTRA checkpoint written by `bert pretrain --objective electra` loads in transformers.

DIR is the discriminator (ElectraForPreTraining); DIR/generator the generator (ElectraForMaskedLM).
Prints one JSON object: for each model its missing, unexpected and mismatched keys, and whether the
generator's LM head is tied to the shared word embeddings; with --batch (a safetensors file with
input_ids, token_type_ids, attention_mask, masked_positions, masked_labels and replacements, such as
Tests/Fixtures/model/electra_batch.safetensors) also the generator's MLM loss and the discriminator's
RTD loss on it. Exits 1 when a key is missing, unexpected or mismatched.

    /work/venv-torch/bin/python Tests/Scripts/checks/check_hf_electra.py checkpoints/run/latest [--batch FILE]
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("directory", type=Path)
    ap.add_argument("--batch", type=Path)
    args = ap.parse_args()
    d: Path = args.directory
    for needed in (d / "config.json", d / "model.safetensors", d / "generator" / "config.json", d / "generator" / "model.safetensors"):
        if not needed.is_file():
            print(f"{needed}: missing; give a checkpoint of bert pretrain --objective electra", file=sys.stderr)
            return 2
    import torch
    from safetensors.torch import load_file
    from transformers import ElectraForMaskedLM, ElectraForPreTraining

    report, failed = {"directory": str(d)}, False
    disc, info_d = ElectraForPreTraining.from_pretrained(str(d), output_loading_info=True)
    gen, info_g = ElectraForMaskedLM.from_pretrained(str(d / "generator"), output_loading_info=True)
    for role, info in (("discriminator", info_d), ("generator", info_g)):
        entry = {k: sorted(map(str, info.get(k, []))) for k in ("missing_keys", "unexpected_keys", "mismatched_keys")}
        report[role] = entry
        failed = failed or any(entry.values())
    same = torch.equal(gen.electra.embeddings.word_embeddings.weight, disc.electra.embeddings.word_embeddings.weight)
    report["shared_word_embeddings_equal"] = same
    report["generator_head_tied"] = gen.generator_lm_head.weight.data_ptr() == gen.electra.embeddings.word_embeddings.weight.data_ptr()
    failed = failed or not same
    if args.batch:
        b = load_file(str(args.batch))
        ids, types, mask = b["input_ids"], b["token_type_ids"], b["attention_mask"]
        flat = b["masked_positions"]
        labels = torch.full_like(ids, -100).reshape(-1)
        labels[flat] = b["masked_labels"]
        disc_ids = ids.clone().reshape(-1)
        disc_ids[flat] = b["replacements"]
        original = ids.clone().reshape(-1)
        original[flat] = b["masked_labels"]
        with torch.no_grad():
            g = gen(input_ids=ids, token_type_ids=types, attention_mask=mask, labels=labels.reshape(ids.shape))
            r = disc(input_ids=disc_ids.reshape(ids.shape), token_type_ids=types, attention_mask=mask,
                     labels=(disc_ids != original).long().reshape(ids.shape))
        report["mlm_loss"], report["rtd_loss"] = g.loss.item(), r.loss.item()
    report["ok"] = not failed
    print(json.dumps(report, sort_keys=True))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
