#!/usr/bin/env python3
"""Reference fixtures for the Swift BERT model, from Hugging Face transformers (PyTorch, CPU).

Writes Tests/Fixtures/model/:

    tiny_config.json          the config.json that `save_pretrained` writes for the tiny model
    tiny_init.safetensors     every parameter, float32, BertForPreTraining state_dict names (no tied aliases)
    tiny_batch.safetensors    one batch, int64: input_ids, token_type_ids, attention_mask, labels, next_sentence_label
    tiny_expected.safetensors float64: logits, losses, gradients, hidden states, and 10 AdamW steps
    README.md                 how they were made and every convention (generated from this script: edit here)

so that the Swift tests can check forward, backward and the optimizer against an independent
implementation without PyTorch. Everything is deterministic (torch.manual_seed, CPU, float64 for the
expected values); rerunning with the same versions rewrites identical files.

Usage (from the repository root; the venv lives outside the repository):

    python3 -m venv /work/venv-torch && /work/venv-torch/bin/pip install -r Tests/Scripts/requirements-model.txt
    /work/venv-torch/bin/python Tests/Scripts/make_model_fixtures.py [--out Tests/Fixtures/model]
"""

from __future__ import annotations

import argparse
import json
import math
import shutil
import sys
import tempfile
from pathlib import Path

import numpy
import safetensors
import torch
import torch.nn.functional as F
import transformers
from safetensors.torch import save_file
from transformers import BertConfig, BertForPreTraining

REPO = Path(__file__).resolve().parents[2]
SEED = 12345

CONFIG = dict(
    vocab_size=99,
    hidden_size=32,
    num_hidden_layers=2,
    num_attention_heads=4,
    intermediate_size=37,
    max_position_embeddings=16,
    type_vocab_size=2,
    hidden_act="gelu",
    hidden_dropout_prob=0.0,
    attention_probs_dropout_prob=0.0,
    layer_norm_eps=1e-12,
    initializer_range=0.02,
)

# Special ids of the toy vocabulary (a trained BertKit vocabulary puts them at 0-4 too).
PAD, UNK, CLS, SEP, MASK = 0, 1, 2, 3, 4
NOISE_STD = 0.1  # added to every bias and LayerNorm parameter after Hugging Face's init
# Added to every nn.Linear weight (not to the embeddings, so not to the tied decoder): N(0, 1/sqrt(fan_in)),
# so that attention scores and the residual branches are not ~0 and every gradient is sizeable.

# The batch: 3 sequences of length 7. Row 2 is padded (its last two positions). Masked positions hold
# [MASK], a random token or the original token (80/10/10 style); `labels` holds the original id there
# and -100 elsewhere. next_sentence_label: 0 = B follows A, 1 = B is random.
INPUT_IDS = [
    [CLS, 17, MASK, SEP, 45, 46, SEP],   # labels at 2 (original 23) and 5 (46, left unchanged)
    [CLS, 50, 61, MASK, SEP, 88, SEP],   # labels at 1 (50, unchanged), 3 (72), 5 (88, unchanged)
    [CLS, MASK, SEP, 33, SEP, PAD, PAD],  # labels at 1 (9) and 3 (replaced: original 98, input 33)
]
TOKEN_TYPE_IDS = [
    [0, 0, 0, 0, 1, 1, 1],
    [0, 0, 0, 0, 0, 1, 1],
    [0, 0, 0, 1, 1, 0, 0],
]
ATTENTION_MASK = [
    [1, 1, 1, 1, 1, 1, 1],
    [1, 1, 1, 1, 1, 1, 1],
    [1, 1, 1, 1, 1, 0, 0],
]
LABELS = [
    [-100, -100, 23, -100, -100, 46, -100],
    [-100, 50, -100, 72, -100, 88, -100],
    [-100, 9, -100, 98, -100, -100, -100],
]
NEXT_SENTENCE_LABEL = [0, 1, 0]

# google-research/bert's AdamW (optimization.py), written out: no bias correction.
BASE_LR, WARMUP, TOTAL_STEPS = 1e-2, 2, 10
BETA1, BETA2, EPS, WEIGHT_DECAY, CLIP_NORM = 0.9, 0.999, 1e-6, 0.01, 1.0


def check_batch() -> None:
    for row in range(3):
        for pos in range(7):
            label, mask, tok = LABELS[row][pos], ATTENTION_MASK[row][pos], INPUT_IDS[row][pos]
            assert (tok == PAD) == (mask == 0), "PAD exactly at padding"
            if label != -100:
                assert mask == 1 and tok not in (PAD, CLS, SEP), "masked positions are real tokens"
        assert 2 <= sum(l != -100 for l in LABELS[row]) <= 3
    assert set(NEXT_SENTENCE_LABEL) == {0, 1}


def lr_at(k: int) -> float:
    """transformers' get_linear_schedule_with_warmup, evaluated at update index k."""
    if k < WARMUP:
        return BASE_LR * k / WARMUP
    return BASE_LR * max(0.0, (TOTAL_STEPS - k) / (TOTAL_STEPS - WARMUP))


def decays(name: str) -> bool:
    return "bias" not in name and "LayerNorm" not in name


def seeded_model(model_class, config: BertConfig):
    """`model_class(config)` with Hugging Face's init (normal(0, 0.02), zero biases, LN 1/0, PAD row 0)
    from SEED, then noise on every bias and LayerNorm parameter and on the dense weights, so that no
    gradient is trivially zero; the eager attention path (plain softmax(QK^T/sqrt(d) + mask))."""
    torch.manual_seed(SEED)
    model = model_class(config)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if "bias" in name or "LayerNorm" in name:
                p.add_(torch.randn_like(p) * NOISE_STD)
            elif p.dim() == 2 and "embeddings" not in name:
                p.add_(torch.randn_like(p) / math.sqrt(p.shape[1]))
    model.config._attn_implementation = "eager"
    return model.eval()


def make_model() -> BertForPreTraining:
    return seeded_model(BertForPreTraining, BertConfig(**CONFIG))


def batch_tensors() -> dict[str, torch.Tensor]:
    return {
        "input_ids": torch.tensor(INPUT_IDS, dtype=torch.int64),
        "token_type_ids": torch.tensor(TOKEN_TYPE_IDS, dtype=torch.int64),
        "attention_mask": torch.tensor(ATTENTION_MASK, dtype=torch.int64),
        "labels": torch.tensor(LABELS, dtype=torch.int64),
        "next_sentence_label": torch.tensor(NEXT_SENTENCE_LABEL, dtype=torch.int64),
    }


def forward(model: BertForPreTraining, batch: dict[str, torch.Tensor]):
    out = model(
        input_ids=batch["input_ids"],
        token_type_ids=batch["token_type_ids"],
        attention_mask=batch["attention_mask"],
        labels=batch["labels"],
        next_sentence_label=batch["next_sentence_label"],
        output_hidden_states=True,
    )
    mlm = F.cross_entropy(out.prediction_logits.reshape(-1, CONFIG["vocab_size"]), batch["labels"].reshape(-1), ignore_index=-100)
    nsp = F.cross_entropy(out.seq_relationship_logits, batch["next_sentence_label"])
    assert abs(out.loss.item() - (mlm + nsp).item()) < 1e-12
    return out, mlm, nsp


def record_gradients(model, expected: dict) -> float:
    """Every parameter's float64 gradient into expected["grad.NAME"]. The key bias adds the same q.b_k
    to every score of a query row; softmax cancels it, so its gradient is zero in exact arithmetic
    (here ~1e-17: rounding); every other tensor must have a gradient large enough to test. Returns
    the smallest per-tensor max |gradient| (key biases left out), for the README."""
    weak = []
    for n, p in model.named_parameters():
        expected[f"grad.{n}"] = p.grad.detach().clone()
        if n.endswith("attention.self.key.bias"):
            assert p.grad.abs().max().item() < 1e-15, n
        elif p.grad.abs().max().item() < 1e-3:
            weak.append(n)
    assert not weak, {n: model.get_parameter(n).grad.abs().max().item() for n in weak}
    return min(p.grad.abs().max().item() for n, p in model.named_parameters() if "key.bias" not in n)


def google_adamw_steps(train, init: dict, loss_of, expected: dict) -> tuple[list, list, list]:
    """TOTAL_STEPS updates of google-research/bert's AdamW (no bias correction, decoupled weight decay
    except biases and LayerNorm, global-norm clipping, linear warm-up then decay) on one batch, in
    float64 from `init`. `loss_of(model)` runs the forward pass and returns the loss. Stores the
    per-step losses, learning rates and gradient norms and the final parameters in `expected`
    ("step_*", "final.NAME"); returns (losses, lrs, norms)."""
    with torch.no_grad():
        for n, p in train.named_parameters():
            p.copy_(init[n].double())
    m = {n: torch.zeros_like(p) for n, p in train.named_parameters()}
    v = {n: torch.zeros_like(p) for n, p in train.named_parameters()}
    losses, lrs, norms = [], [], []
    for k in range(TOTAL_STEPS):
        train.zero_grad(set_to_none=True)
        loss = loss_of(train)
        loss.backward()
        losses.append(loss.item())
        grads = {n: p.grad.detach().clone() for n, p in train.named_parameters()}
        norm = math.sqrt(sum(float((g * g).sum()) for g in grads.values()))
        norms.append(norm)
        scale = CLIP_NORM / max(norm, CLIP_NORM)
        lr = lr_at(k)
        lrs.append(lr)
        with torch.no_grad():
            for n, p in train.named_parameters():
                g = grads[n] * scale
                m[n] = BETA1 * m[n] + (1 - BETA1) * g
                v[n] = BETA2 * v[n] + (1 - BETA2) * g * g
                update = m[n] / (v[n].sqrt() + EPS)
                if decays(n):
                    update = update + WEIGHT_DECAY * p
                p.sub_(lr * update)
    expected["step_losses"] = torch.tensor(losses, dtype=torch.float64)
    expected["step_lr"] = torch.tensor(lrs, dtype=torch.float64)
    expected["step_grad_norm"] = torch.tensor(norms, dtype=torch.float64)
    for n, p in train.named_parameters():
        expected[f"final.{n}"] = p.detach().clone()
    assert all(t.dtype == torch.float64 for t in expected.values())
    assert losses[0] == losses[1] == expected["loss"].item(), "lr_0 = 0: the first update moves nothing"
    for n in init:
        if n.endswith("attention.self.key.bias"):
            assert (expected[f"final.{n}"] - init[n].double()).abs().max().item() < 1e-13, n
    return losses, lrs, norms


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", type=Path, default=REPO / "Tests" / "Fixtures" / "model")
    args = ap.parse_args()
    out_dir: Path = args.out
    out_dir.mkdir(parents=True, exist_ok=True)
    torch.use_deterministic_algorithms(True)
    check_batch()

    model = make_model()
    # Parameters as the model holds them: named_parameters() lists each tied parameter once, under
    # its first name (bert.embeddings.word_embeddings.weight, cls.predictions.bias).
    params = dict(model.named_parameters())
    state = model.state_dict()
    aliases = {k: n for k in state for n, p in params.items() if k not in params and state[k].data_ptr() == p.data_ptr()}
    assert aliases == {
        "cls.predictions.decoder.weight": "bert.embeddings.word_embeddings.weight",
        "cls.predictions.decoder.bias": "cls.predictions.bias",
    }, aliases
    init = {n: p.detach().to(torch.float32).contiguous().clone() for n, p in params.items()}

    # config.json exactly as save_pretrained writes it (float32 model, before .double()).
    with tempfile.TemporaryDirectory() as tmp:
        model.save_pretrained(tmp)
        shutil.copy(Path(tmp) / "config.json", out_dir / "tiny_config.json")
        # save_pretrained drops the tied aliases too: the init file has exactly its keys.
        with safetensors.safe_open(str(Path(tmp) / "model.safetensors"), "pt") as f:
            assert sorted(f.keys()) == sorted(init), "tiny_init names differ from save_pretrained's"
    save_file(init, str(out_dir / "tiny_init.safetensors"), metadata={"format": "pt"})
    batch = batch_tensors()
    save_file(batch, str(out_dir / "tiny_batch.safetensors"), metadata={"format": "pt"})

    # ---- Forward and backward in float64 from the float32 init.
    model = model.double()
    out, mlm, nsp = forward(model, batch)
    out.loss.backward()
    expected: dict[str, torch.Tensor] = {
        "prediction_logits": out.prediction_logits.detach(),
        "seq_relationship_logits": out.seq_relationship_logits.detach(),
        "loss": out.loss.detach().reshape(()),
        "mlm_loss": mlm.detach().reshape(()),
        "nsp_loss": nsp.detach().reshape(()),
        "pooled_output": model.bert.pooler(out.hidden_states[-1]).detach(),
    }
    for i, h in enumerate(out.hidden_states):
        expected[f"hidden_states.{i}"] = h.detach()
    min_grad = record_gradients(model, expected)

    # ---- 10 steps of google-research/bert's AdamW on the same batch, float64.
    losses, lrs, norms = google_adamw_steps(make_model().double(), init, lambda t: forward(t, batch)[0].loss, expected)
    save_file({k: t.contiguous() for k, t in expected.items()}, str(out_dir / "tiny_expected.safetensors"),
              metadata={"format": "pt"})  # one key only: the library writes several in hash order, varying per run

    # float32 forward of the same model, for the README's note on tolerances.
    f32 = make_model()
    with torch.no_grad():
        for n, p in f32.named_parameters():
            p.copy_(init[n])
    o32, _, _ = forward(f32, batch)
    f32_diff = (o32.prediction_logits.double() - expected["prediction_logits"]).abs().max().item()

    write_readme(out_dir, init, expected, losses, lrs, norms, f32_diff, min_grad)
    sizes = {p.name: p.stat().st_size for p in sorted(out_dir.iterdir())}
    print(json.dumps(sizes, indent=1))
    print(f"total {sum(sizes.values())} bytes; loss {losses[0]:.6f} -> {losses[-1]:.6f}; float32 logits max |diff| {f32_diff:.2e}")


def write_readme(out_dir: Path, init, expected, losses, lrs, norms, f32_diff, min_grad) -> None:
    n_params = sum(t.numel() for t in init.values())
    param_rows = "\n".join(
        f"| `{n}` | {list(t.shape)} | {'yes' if decays(n) else 'no'} |" for n, t in init.items()
    )
    other = [k for k in expected if not k.startswith(("grad.", "final."))]
    other_rows = "\n".join(f"| `{k}` | {list(expected[k].shape)} |" for k in other)
    loss_line = ", ".join(f"{l:.6f}" for l in losses)
    lr_line = ", ".join(f"{l:g}" for l in lrs)
    norm_line = ", ".join(f"{x:.4f}" for x in norms)
    text = f"""# Model fixtures (Hugging Face transformers as the reference)

Generated by `Tests/Scripts/make_model_fixtures.py`; do not edit (this README is written by the
script too: change the script and rerun it). They let the Swift tests check BertKit's model, its
gradients and its optimizer against transformers' `BertForPreTraining` without PyTorch in CI.

Made with torch {torch.__version__}, transformers {transformers.__version__}, safetensors {safetensors.__version__},
numpy {numpy.__version__}, Python {sys.version.split()[0]}, on CPU:

```
python3 -m venv /work/venv-torch && /work/venv-torch/bin/pip install -r Tests/Scripts/requirements-model.txt
/work/venv-torch/bin/python Tests/Scripts/make_model_fixtures.py
```

(Any venv outside the repository will do; it is several GB. Rerunning with the same versions rewrites
byte-identical files.)

| file | dtype | what |
|---|---|---|
| `tiny_config.json` | | the `config.json` `save_pretrained` wrote for the model (extra keys such as `dtype`, `tie_word_embeddings`, `use_cache` included) |
| `tiny_init.safetensors` | F32 | the initial parameters: {len(init)} tensors, {n_params} values |
| `tiny_batch.safetensors` | I64 | one batch of 3 sequences of length 7 |
| `tiny_expected.safetensors` | F64 | outputs, losses and gradients at the initial point; 10 optimizer steps |

## Model

`BertForPreTraining(BertConfig(vocab_size=99, hidden_size=32, num_hidden_layers=2, num_attention_heads=4,
intermediate_size=37, max_position_embeddings=16, type_vocab_size=2, hidden_act="gelu" (erf),
hidden_dropout_prob=0, attention_probs_dropout_prob=0, layer_norm_eps=1e-12, initializer_range=0.02))`,
built after `torch.manual_seed({SEED})`, so with Hugging Face's init: normal(0, 0.02) weights and
embeddings, zero biases, LayerNorm weight 1 / bias 0, and row 0 (`pad_token_id`) of the word embeddings
zero. With those values alone the attention scores are ~0 and the query/key gradients ~1e-5, so,
drawing from the same seeded stream in `named_parameters()` order, the script then adds N(0, {NOISE_STD}) to
every parameter whose name contains `bias` or `LayerNorm`, and N(0, 1/√fan_in) to every other 2-D
parameter outside the embeddings (all `nn.Linear` weights: attention, FFN, pooler, MLM transform, NSP).
The embeddings (and so the tied decoder) stay at HF's 0.02 init. The result, float32, is
`tiny_init.safetensors`; the script asserts that every gradient's largest entry is above 1e-3 (the
smallest is {min_grad:.3f}), except the attention key biases (below). Attention is transformers' `eager` path: scores + (1 − mask) ×
finfo(dtype).min, so padded keys get exactly zero probability.

### Parameter names and shapes (`tiny_init.safetensors`; the same names follow `grad.` and `final.`)

Linear weights are `[out, in]` (PyTorch's layout: y = x Wᵀ + b). "decay" says whether AdamW's weight
decay applies (the name contains neither `bias` nor `LayerNorm`).

| name | shape | decay |
|---|---|---|
{param_rows}

**Tied weights.** The MLM decoder is tied: `cls.predictions.decoder.weight` *is*
`bert.embeddings.word_embeddings.weight` ([99, 32]) and `cls.predictions.decoder.bias` *is*
`cls.predictions.bias` ([99]). PyTorch's `state_dict()` lists both aliases (48 keys), but they are not
separate tensors, `named_parameters()` lists 46 and `save_pretrained` writes 46 (the script checks that
its names are exactly these), so the aliases are not in these files. A checkpoint written by BertKit
should likewise hold the 46 names above; transformers re-ties the decoder when loading (a file that also
holds the two aliases, as older transformers versions wrote, loads without complaint too: checked with
transformers {transformers.__version__}).

## Batch (`tiny_batch.safetensors`, all I64)

Ids: 0 [PAD], 2 [CLS], 3 [SEP], 4 [MASK]; other ids are ordinary tokens.

| tensor | shape | value |
|---|---|---|
| `input_ids` | [3, 7] | `{INPUT_IDS}` |
| `token_type_ids` | [3, 7] | `{TOKEN_TYPE_IDS}` |
| `attention_mask` | [3, 7] | `{ATTENTION_MASK}` (row 2 padded at its last 2 positions) |
| `labels` | [3, 7] | `{LABELS}` (−100 = not predicted) |
| `next_sentence_label` | [3] | `{NEXT_SENTENCE_LABEL}` (0 = B follows A, 1 = random B) |

Masked positions (7 in all, 2 or 3 per row) are never [CLS], [SEP] or padding; they hold [MASK] (3 of
them), the original token (3: row 0 position 5, row 1 positions 1 and 5) or a replacement (row 2
position 3: 33 for 98). [PAD] (id 0) appears only at padded positions, so nn.Embedding's
`padding_idx=0` (which gives row 0 no gradient from the lookup) makes no difference here: padded
positions get zero gradient anyway.

## Expected values (`tiny_expected.safetensors`, all F64)

Computed with `model.double()` starting from the float32 parameters of `tiny_init.safetensors`, in eval
mode (dropout is 0, so training mode gives the same values). Scalars have shape `[]` (0-dimensional, one element).

| tensor | shape |
|---|---|
{other_rows}
| `grad.<name>` | the parameter's shape, one per parameter above |
| `final.<name>` | the parameter's shape, one per parameter above |

- `prediction_logits`: MLM logits at every position, padded ones included (B × T × vocab).
- `loss` = `mlm_loss` + `nsp_loss` (what transformers returns as `loss`). `mlm_loss`: mean cross-entropy
  over the 7 positions whose label is not −100; `nsp_loss`: mean cross-entropy over the 3 sequences.
- `hidden_states.0` is the embedding output (after LayerNorm), `hidden_states.{{1,2}}` the outputs of
  encoder layers 1 and 2; `pooled_output` = tanh(dense(hidden_states.2[:, 0])).
- `grad.<name>`: d`loss`/d parameter. The tied decoder's gradient is reported once, on
  `grad.bert.embeddings.word_embeddings.weight`, as PyTorch accumulates it (lookup + decoder); likewise
  `grad.cls.predictions.bias` is the decoder bias gradient. Rows 7–15 of the position embeddings have
  zero gradient (sequences are 7 long).
- `grad.bert.encoder.layer.{{0,1}}.attention.self.key.bias` is zero in exact arithmetic (the key bias
  adds q·b_k to every score of a query's row, which softmax cancels); the stored values are float64
  rounding noise (below 1e-15). Compare them with an absolute tolerance only. In the optimizer steps Adam's
  ε = 1e-6 swamps such gradients, so the key biases stay at their initial values (to within 1e-13 here; a
  float32 implementation's noise moves them by ~1e-6 at most).

### 10 optimizer steps (`step_losses`, `step_lr`, `step_grad_norm`, `final.<name>`)

google-research/bert's AdamW (optimization.py) written out in the script, float64, same batch every
step, for k = 0 … 9:

1. `loss_k` and gradients g by autograd at the current parameters (`step_losses[k]` = `loss_k`).
2. Global-norm clipping over all 46 parameters (the tied weight counted once): ‖g‖₂ is
   `step_grad_norm[k]` (before clipping); g ← g · 1.0 / max(‖g‖₂, 1.0).
3. `lr_k` = 1e-2 · k / 2 for k < 2, else 1e-2 · max(0, (10 − k) / (10 − 2)) (transformers'
   `get_linear_schedule_with_warmup` at update index k; so `lr_0` = 0: the first update moves nothing,
   but the moments accumulate). `step_lr[k]` = `lr_k`.
4. m ← 0.9 m + 0.1 g; v ← 0.999 v + 0.001 g² (m, v start at 0; no bias correction);
   update = m / (√v + 1e-6); if the name contains neither `bias` nor `LayerNorm`: update += 0.01 · param;
   param ← param − lr_k · update.

`final.<name>` holds the parameters after the 10th update.

This run: step_losses = [{loss_line}];
step_lr = [{lr_line}]; step_grad_norm = [{norm_line}].

## Checking a checkpoint written by BertKit

`Tests/Scripts/check_hf_checkpoint.py DIR` loads `DIR` (config.json, model.safetensors[, vocab.txt]) with
`BertForPreTraining.from_pretrained(DIR, output_loading_info=True)` and prints the missing, unexpected
and mismatched keys as JSON, exiting 1 if there are any; `--run-batch` also prints the logits for
`tiny_batch.safetensors`, `--compare tiny_expected.safetensors` checks them (for a checkpoint made from
`tiny_init.safetensors`), and `--classifier` does the same for `BertForSequenceClassification`.
`tiny_config.json` + `tiny_init.safetensors` renamed to `config.json` + `model.safetensors` pass it,
with logits within 2.4e-7 of the float64 values (float32) or 1e-15 (`--double`).

## Tolerances

Expected values are float64; a float32 implementation differs by rounding. transformers' own float32
forward of the same parameters differs from the float64 logits by at most {f32_diff:.1e}; compare
float32 results with a relative tolerance around 1e-4 (gradients, especially small ones, need an
absolute floor too).
"""
    (out_dir / "README.md").write_text(text)


if __name__ == "__main__":
    main()
