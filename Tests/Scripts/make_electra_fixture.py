#!/usr/bin/env python3
"""Reference fixture for BertKit's ELECTRA objective, from transformers' two Electra models in float64.

Writes Tests/Fixtures/model/:

    electra_init.safetensors      every parameter of both models, float32, under BertKit's training names
                                  (the discriminator's as transformers names them; the generator's under
                                  "generator."; the shared embeddings once)
    electra_batch.safetensors     the batch (int64): input_ids, token_type_ids, attention_mask,
                                  masked_positions (flat b*T+t, increasing), masked_labels, replacements
    electra_keys.json             the state_dict keys and shapes of both transformers models (what a BertKit
                                  ELECTRA checkpoint must hold: checkpoint model.safetensors and
                                  generator/model.safetensors), without the position_ids buffers
    electra_expected.safetensors  float64: mlm_loss, rtd_loss, loss = mlm + 50 * rtd, the generator's
                                  logits at the masked positions (M, V), the discriminator's logits (B, T)
                                  and the gradient of `loss` for every parameter ("grad.NAME")

The models: ElectraForPreTraining (the discriminator: vocab 99, embedding and hidden size 32, 2 layers,
4 heads, intermediate 37, 16 positions, gelu, no dropout) and ElectraForMaskedLM (the generator: the
same but hidden size 16, 2 heads, intermediate 19, and embedding_size 32, so it has an
`embeddings_project` 32 -> 16), as `bert pretrain --objective electra --generator-size 0.5` builds
them. They share one embeddings module (word, position and token-type tables and their LayerNorm), as
ELECTRA does, and the generator's LM head weight is the word table. The generator reads the masked
input; the discriminator reads it with `replacements` at the masked positions (two of them equal to the
original token, so not replaced); its labels are 1 where its input differs from the original. No
sampling happens here: BertKit's model takes the same replacements, so the check covers everything
but the draw (whose statistics `ElectraTests.testSampling` checks).

Usage (the venv outside the repository; see make_model_fixtures.py):

    /work/venv-torch/bin/python Tests/Scripts/make_electra_fixture.py [--out Tests/Fixtures/model]
"""

from __future__ import annotations

import argparse
import json
import math
from pathlib import Path

import torch
from safetensors.torch import save_file
from transformers import ElectraConfig, ElectraForMaskedLM, ElectraForPreTraining

REPO = Path(__file__).resolve().parents[2]
SEED = 2026
WEIGHT = 50.0  # ELECTRA's lambda

COMMON = dict(vocab_size=99, embedding_size=32, num_hidden_layers=2, max_position_embeddings=16, type_vocab_size=2,
              hidden_act="gelu", hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0, layer_norm_eps=1e-12,
              initializer_range=0.02, pad_token_id=0)
DISCRIMINATOR = dict(COMMON, hidden_size=32, num_attention_heads=4, intermediate_size=37)
GENERATOR = dict(COMMON, hidden_size=16, num_attention_heads=2, intermediate_size=19)

PAD, CLS, SEP, MASK = 0, 2, 3, 4
INPUT_IDS = [
    [CLS, 17, MASK, SEP, 45, 46, SEP],
    [CLS, 50, 61, MASK, SEP, 88, SEP],
    [CLS, MASK, SEP, 33, SEP, PAD, PAD],
]
TOKEN_TYPE_IDS = [[0, 0, 0, 0, 1, 1, 1], [0, 0, 0, 0, 0, 1, 1], [0, 0, 0, 1, 1, 0, 0]]
ATTENTION_MASK = [[1] * 7, [1] * 7, [1, 1, 1, 1, 1, 0, 0]]
# (row, position, original token, replacement)
MASKED = [(0, 2, 23, 23), (0, 5, 46, 70), (1, 1, 50, 12), (1, 3, 72, 72), (1, 5, 88, 5), (2, 1, 9, 60), (2, 3, 98, 33)]


def our_name(prefix: str, name: str) -> str | None:
    """BertKit's training name of a transformers parameter; None for the generator's shared ones."""
    if prefix == "":
        return name
    if name.startswith("electra.embeddings.") or name == "generator_lm_head.weight":
        return None  # the discriminator's embeddings / the tied word table
    return "generator." + name


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", default=str(REPO / "Tests/Fixtures/model"))
    out = Path(ap.parse_args().out)
    torch.manual_seed(SEED)
    disc = ElectraForPreTraining(ElectraConfig(**DISCRIMINATOR))
    gen = ElectraForMaskedLM(ElectraConfig(**GENERATOR))
    gen.electra.embeddings = disc.electra.embeddings
    gen.generator_lm_head.weight = disc.electra.embeddings.word_embeddings.weight
    for model in (disc, gen):
        model.config._attn_implementation = "eager"
        with torch.no_grad():  # noise so that no gradient is trivially small (see make_model_fixtures.py)
            for name, p in model.named_parameters():
                if model is gen and our_name("g", name) is None:
                    continue
                if "bias" in name or "LayerNorm" in name:
                    p.add_(torch.randn_like(p) * 0.1)
                elif p.dim() == 2 and "embeddings." not in name:
                    p.add_(torch.randn_like(p) / math.sqrt(p.shape[1]))
    params: dict[str, torch.nn.Parameter] = {}
    for prefix, model in (("", disc), ("generator.", gen)):
        for name, p in model.named_parameters():
            ours = our_name(prefix, name)
            if ours is not None:
                params[ours] = p
    with torch.no_grad():  # the reference runs on exactly the float32 values the fixture stores
        for p in params.values():
            p.copy_(p.float().double())
    disc.double().eval()
    gen.double().eval()
    assert gen.electra.embeddings is disc.electra.embeddings
    assert gen.generator_lm_head.weight is disc.electra.embeddings.word_embeddings.weight

    ids = torch.tensor(INPUT_IDS)
    types = torch.tensor(TOKEN_TYPE_IDS)
    mask = torch.tensor(ATTENTION_MASK)
    labels = torch.full_like(ids, -100)
    original = ids.clone()
    disc_ids = ids.clone()
    for row, pos, orig, rep in MASKED:
        labels[row, pos] = orig
        original[row, pos] = orig
        disc_ids[row, pos] = rep
    is_replaced = (disc_ids != original).long()
    g = gen(input_ids=ids, token_type_ids=types, attention_mask=mask, labels=labels)
    d = disc(input_ids=disc_ids, token_type_ids=types, attention_mask=mask, labels=is_replaced)
    loss = g.loss + WEIGHT * d.loss
    loss.backward()

    t = ids.shape[1]
    flat = [row * t + pos for row, pos, _, _ in MASKED]
    expected = {
        "mlm_loss": g.loss.detach().reshape(1), "rtd_loss": d.loss.detach().reshape(1), "loss": loss.detach().reshape(1),
        "generator_logits": g.logits.detach().reshape(-1, 99)[flat].contiguous(),
        "discriminator_logits": d.logits.detach().contiguous(),
    }
    for name, p in params.items():
        assert p.grad is not None and p.grad.abs().max().item() > 1e-4 or name.endswith("key.bias"), name
        expected["grad." + name] = p.grad.detach().clone().contiguous()
    out.mkdir(parents=True, exist_ok=True)
    save_file({n: p.detach().float().contiguous() for n, p in params.items()}, str(out / "electra_init.safetensors"))
    save_file({
        "input_ids": ids, "token_type_ids": types, "attention_mask": mask,
        "masked_positions": torch.tensor(flat), "masked_labels": torch.tensor([o for _, _, o, _ in MASKED]),
        "replacements": torch.tensor([r for _, _, _, r in MASKED]),
    }, str(out / "electra_batch.safetensors"))
    save_file(expected, str(out / "electra_expected.safetensors"))
    keys = {role: {k: list(v.shape) for k, v in model.state_dict().items() if not k.endswith("position_ids")}
            for role, model in (("discriminator", disc), ("generator", gen))}
    (out / "electra_keys.json").write_text(json.dumps(keys, indent=1, sort_keys=True) + "\n")
    print(f"mlm {g.loss.item():.6f} rtd {d.loss.item():.6f} loss {loss.item():.6f}; {len(params)} tensors")


if __name__ == "__main__":
    main()
