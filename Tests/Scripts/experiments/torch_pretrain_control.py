#!/usr/bin/env python3
"""PyTorch control for `bert pretrain`: the same recipe, run by transformers' BertForPreTraining.

What it is for. BertKit's pre-training must pay at least as much as PyTorch's with the same recipe:
for every recipe tried with `bert pretrain`, run this script with the same shards, model and options,
fine-tune both results the same way (`bert finetune --checkpoint DIR ...`) and compare. A BertKit
recipe that only looks good because BertKit's trainer has a bug, or that is worse than what the
textbook implementation gets from the same data, shows up here.

Data: the instances of a BertKit shard directory, exactly as `bert pretrain` sees them, read from
`BERT inspect SHARDS --json --limit 0` (one JSON object per line with input_ids, segment_ids,
masked_lm_positions, masked_lm_labels, next_sentence_label). The JSON stream is parsed line by line,
but the instances are then held in memory, packed into flat arrays (token ids as uint16 when the
vocabulary allows, a segment-A length per instance, masked positions and labels, NSP labels): about 2
bytes per token plus 4 per masked position, so ~30 MB for 100k instances of 128 tokens. Holding them is
what makes a per-epoch shuffle of the whole set possible.

Masking. Statically masked shards (index.json "parameters": "dynamic_masking" false): the stored masks,
the same every epoch, as in BertKit. Dynamically masked shards ("dynamic_masking" true, made by `bert
shards --dynamic-masking`): inspect shows the instances unmasked (masked_lm_positions/labels empty; an
instance that has some is refused), and the control masks each batch as it is made, as BertKit's
ShardLoader does with its Masker (Sources/PretrainingData/{ShardLoader,InstanceBuilder}.swift), with the
settings of index.json's "parameters": "masked_lm_prob" (p), "max_predictions_per_seq" (P) and
"whole_word_mask":
  - candidates: every position of the instance whose token is neither [CLS] nor [SEP] (by id; padding
    is never a candidate);
  - target: min(P, max(1, round_half_even(length * p))), length = the instance's tokens, [CLS] and [SEP]s
    included (Python's round of the float64 product, as Swift's .toNearestOrEven);
  - without whole words: min(target, candidates) positions chosen uniformly at random without
    replacement (the candidates ordered by i.i.d. uniform keys, the first ones taken: the same
    distribution as the Masker's lazy Fisher-Yates shuffle); each chosen position independently becomes
    [MASK] with probability 0.8, keeps its token with 0.1, becomes a uniformly random id in 0..V-1 (any
    token, specials included, possibly the same one) with 0.1;
  - with whole words: the candidates are grouped into words (a candidate whose token starts with "##"
    joins the word of the position right before it when that position is a candidate too); the words
    are visited in a uniformly random order (numpy permutation) until the target is reached, and a word
    that would take the count past the target is skipped, so the count can fall short of it; the
    80/10/10 draw is made once per word (every piece [MASK], every piece kept, or every piece a random
    id drawn per piece), as BertKit does (google-research/bert draws per piece);
  - labels: the original ids at the chosen positions, ascending within an instance.
Random numbers: one numpy Generator per epoch, default_rng([seed, epoch, 0x4D41534B]) ("MASK"), drawn
from batch by batch in the epoch's order, so every epoch sees new masks and a run is reproducible;
BertKit seeds a generator per (seed, epoch, shard, record): the same distribution, not the same masks.
Memory: masks exist only in the batch being made (nothing per instance is stored for them).

Model: transformers' BertForPreTraining (decoder tied to the word embeddings, its bias tied to
cls.predictions.bias), from
  --model tiny|mini|small|medium|base   BertKit's presets (BertConfig.preset in
                                        Sources/BertModel/BertConfig.swift): tiny L2 H128 A2, mini L4 H256 A4
                                        (the default, as in `bert pretrain`), small L4 H512 A8, medium L8 H512 A8,
                                        base L12 H768 A12; intermediate 4H, gelu (erf), dropout 0.1/0.1,
                                        512 positions, 2 token types, init range 0.02, LayerNorm eps 1e-12;
  --config FILE                         a Hugging Face config.json (missing keys take bert-base's values,
                                        as in BertKit; vocab_size must equal vocab.txt's size);
  --init DIR                            config.json and model.safetensors of a checkpoint (a BertKit
                                        checkpoint or this script's output): start from those weights;
                                        with --objective electra, a BertKit ELECTRA checkpoint (the
                                        discriminator, and its generator/ beside it).
then, as `bert pretrain` does: --dropout D sets hidden and attention dropout, pad_token_id = the id of
[PAD] in SHARDS/vocab.txt, max_position_embeddings = max(config's, the shards' max_seq_length).
Initialisation (without --init): transformers' _init_weights under torch.manual_seed(--seed): normal(0,
initializer_range) weights and embeddings, the [PAD] row zeroed, zero biases, LayerNorm 1/0 -- the same
distributions as BertKit's initialize(seed:), not the same numbers.
--sinusoidal-positions (as `bert pretrain --sinusoidal-positions`, Encoder.sinusoidalPositions through
BertForPreTraining.initializePositionsSinusoidally): after that initialisation, every row t of the
position embeddings (all max_position_embeddings rows; the [PAD] id plays no part here) is set to
  [t, 2k]   = float32(sin(t * 10000^(-2k/H)) * initializer_range * sqrt(2)),
  [t, 2k+1] = float32(cos(t * 10000^(-2k/H)) * initializer_range * sqrt(2)),   k = 0 ..< H/2,
  [t, H-1]  = 0 when H is odd,
computed in float64 with the C library's pow/sin/cos (Python's math module), as the Swift does, so the
tensor is BertKit's to the bit (checked: equal in all 512 x 128 values to the position embeddings of a
`bert pretrain --model tiny --sinusoidal-positions --max-steps 1` checkpoint); sin and cos have
variance 1/2, hence sqrt(2): the root mean square is the initializer's std. Ignored with --init (the checkpoint's position embeddings are used as they are; a
BertKit --max-steps 1 checkpoint of a --sinusoidal-positions run already holds them).
For the same initial weights, give BertKit's first checkpoint: `bert pretrain ... --max-steps 1` trains
one update at learning rate 0 (the first warm-up step), so OUTPUT/step-00000001 (or epoch-0001 when one
batch is the whole epoch) holds its initialisation; pass it as --init (its Adam moments are not used).

Recipe (mirrors `bert pretrain`'s options and Sources/Training/{Pretrainer,AdamW}.swift):
  - --epochs, --batch-size, --accumulate (micro-batches per update; each micro-batch's MLM and NSP losses
    weighted by its share of the update's masked positions and sequences, so the gradient is that of
    one batch holding them all; an update never spans two epochs), --max-steps (at most this many
    updates in all; the schedule decays to 0 there);
  - updates = min(ceil(ceil(instances / batch) / accumulate) * epochs, --max-steps); the last batch of an
    epoch may be smaller (no drop_last);
  - batches: the epoch's order (see the data order below) cut into consecutive batches; each batch
    padded to its longest instance. With --group-by-length (as `bert pretrain --group-by-length`,
    ShardLoader's groupWindowBatches = 64): the epoch's order is cut into windows of 64 * batch
    instances (the last window may be shorter); each window is sorted by length, shortest first, ties
    kept in window order (a stable sort: Swift's sort by (length, index)); cut into batches from the
    start; its full batches are handed out in the order of numpy's default_rng([seed, epoch,
    0x47524F5550 ("GROUP"), window]).permutation, and a smaller batch (only the epoch's last window has
    one: the window's longest instances) comes after them, so it stays the epoch's last; every batch is
    padded to its longest instance (BertKit too pads to the longest with the flag). Micro-batches of an
    update are consecutive batches of that sequence, as in BertKit;
  - learning rate of update k (from 0): lr * k / max(1, W) for k < W, else
    lr * max(0, (updates - k) / max(1, updates - W)), W = --warmup-steps or max(1, updates // 10)
    (BertKit's LinearSchedule = transformers' get_linear_schedule_with_warmup; update 0 has rate 0);
  - loss = mean MLM cross-entropy over the batch's masked positions (the hidden states at
    masked_lm_positions are gathered before the MLM head, as NVIDIA's BERT and BertKit do; checked once,
    on the first 8 instances of the first batch in eval mode, against transformers' own loss with labels
    -100 elsewhere)
    + mean NSP cross-entropy; a batch without masked positions has MLM loss 0;
  - global-norm clipping: norm = sqrt(sum of squares) over all gradients (summed in float64); when
    norm > --max-grad-norm, every gradient is scaled by max_norm / norm (tf.clip_by_global_norm;
    torch's clip_grad_norm_ divides by norm + 1e-6 instead);
  - AdamW as google-research/bert's AdamWeightDecayOptimizer, exactly as AdamW.swift, per element in
    float32: m = b1 m + (1 - b1) g; v = b2 v + (1 - b2) g^2; u = m / (sqrt(v) + eps) (with
    --bias-correction: (m c1) / (sqrt(v c2) + eps), c1 = 1/(1 - b1^t), c2 = 1/(1 - b2^t)); u += wd p where
    decay applies (the decay uses p before the update and is added to the Adam step, not to the
    gradient); p -= lr u. b1 0.9, b2 0.999, eps 1e-6, --weight-decay 0.01 on every parameter whose name
    contains neither "bias" nor "LayerNorm"/"layer_norm" (so the word, position and token-type
    embeddings decay; biases, LayerNorms and cls.predictions.bias do not). --bias-correction gives
    torch.optim.AdamW's algorithm (p (1 - lr wd) - lr m^/(sqrt(v^) + eps) is the same update), but
    with eps 1e-6 as BertKit keeps it, not torch's default 1e-8 (--self-test checks it against
    torch.optim.AdamW(eps=1e-6));
  - --seed: torch.manual_seed (initialisation, dropout), the data order, the length-grouping order and
    the dynamic masks.

Output (OUT): config.json + model.safetensors (BertForPreTraining.save_pretrained: `bert.`-prefixed
encoder names, cls.* heads; the tied decoder is not stored) + vocab.txt copied from SHARDS, which
`bert finetune --checkpoint OUT` loads; metrics.jsonl with BertKit's keys and windows (a row every
--log-every-steps updates and at the last: step, epoch (from 0), loss (mean of the window's update
losses), mlm_loss and nsp_loss (means over the window's masked positions / sequences), mlm_accuracy,
nsp_accuracy, learning_rate (of the row's update), gradient_norm (mean over the window, before
clipping), tokens_per_second (real tokens), seconds); control.json with the settings, the resolved
config, versions and the first-batch loss check. With --save-epochs also OUT/epoch-NNNN after each
complete epoch (same files).

How it differs from `bert pretrain`, on purpose or by nature:
  - data order: instances shuffled per epoch by numpy's default_rng([seed, epoch]) over the whole set;
    BertKit visits shards in a seeded order and shuffles records within each shard with its own
    SeededGenerator, so the batches differ (same instances per epoch, same batch sizes; with
    --group-by-length the same procedure on a different order, so batches of the same length profile);
  - random numbers: initial weights (torch's normal vs BertKit's SplitMix64 + Box-Muller), dropout
    masks (torch's generator vs BertKit's per-site streams) and dynamic MLM masks (numpy's generator
    per epoch vs BertKit's per-instance streams) are different numbers from the same distributions;
    --init fixes the first, --dropout 0 removes the second; the third stays (static shards remove it);
  - padding: each batch is padded to its longest instance (BertKit pads to max_seq_length without
    --group-by-length, to the longest with it); with the attention mask this changes no result beyond
    rounding;
  - kernels: PyTorch's (oneDNN/MKL or OpenBLAS GEMMs, transformers' default attention implementation,
    fused CPU cross-entropy) vs BertKit's own; float32 both, so results agree to rounding only, and
    rounding differences grow over training;
  - no checkpoints of optimizer state, no resume, no TensorBoard events; the model is written at the end
    (and per epoch with --save-epochs), never at --save-every-steps;
  - --max-grad-norm must be positive (BertKit's clipGlobalNorm with 0 would zero every gradient);
  - threads: --threads (default 2) for torch.set_num_threads; BertKit defaults to all cores.

Usage (from the repository root; the venv has torch 2.15 / transformers 5.23, see
Tests/Scripts/requirements-model.txt):

    /work/venv-torch/bin/python Tests/Scripts/experiments/torch_pretrain_control.py \\
        --bert .build/release/bert --shards SHARDS --output OUT \\
        [--model mini | --config config.json | --init BERTKIT_CHECKPOINT] \\
        [--epochs 1] [--batch-size 32] [--accumulate 1] [--learning-rate 1e-4] [--warmup-steps W] \\
        [--weight-decay 0.01] [--bias-correction] [--max-grad-norm 1.0] [--dropout D] [--seed 42] \\
        [--group-by-length] [--sinusoidal-positions] \\
        [--max-steps N] [--log-every-steps 10] [--threads 2] [--save-epochs] [--overwrite]
    /work/venv-torch/bin/python Tests/Scripts/experiments/torch_pretrain_control.py --self-test

(--self-test, without data or bert, in seconds: the optimizer against torch.optim.AdamW and the float64
formula, the schedule, the gathered loss against transformers', clipping; and on synthetic batches the
dynamic masking -- per instance exactly min(target, candidates) positions, half-even targets and the
cap, never [CLS]/[SEP]/padding, labels the original ids, nothing else changed, 80/10/10 within 0.01 and
every candidate position chosen equally often within 15% -- whole words (only whole words, at most the
target, every word left out would overshoot, one draw per word), the length grouping and the sinusoids.)

then, for both runs, `bert finetune --checkpoint OUT --data TSV ...`. The same recipe in BertKit:

    bert pretrain --shards SHARDS --output RUN --model mini --epochs 1 --batch-size 32 ...   (same options)

BertKit's current default recipe, on shards made with `bert shards --dynamic-masking`, and its control:

    bert pretrain --shards SHARDS --output RUN --group-by-length --sinusoidal-positions --dropout 0 ...
    torch_pretrain_control.py --shards SHARDS --output OUT --group-by-length --sinusoidal-positions --dropout 0 ...

Checking the mirroring itself: with one batch holding every instance (data order then only changes
summation order), no dropout and BertKit's initial weights, both trainers must give the same metrics
to rounding. On 1111 instances of 64 tokens (tiny shards of Tests/Fixtures/text/en_sample.txt.zst,
a config of H32 L2 A2 I37), 3 updates with --learning-rate 1e-3 --warmup-steps 0 --max-grad-norm 0.5
--bias-correction --weight-decay 0.1 (BertKit --batch-size 1111, this script --batch-size 556
--accumulate 2, so the accumulation weighting is checked too), losses agreed to 4e-6 and gradient norms
to 1e-6 (clipping active) at every update:

    bert pretrain --shards S --config C --batch-size 8 --max-steps 1 --dropout 0 --threads 1 --output INIT
    bert pretrain --shards S --config C --batch-size 1111 --epochs 3 --dropout 0 --log-every-steps 1 ... --output BK
    torch_pretrain_control.py --shards S --init INIT/step-00000001 --batch-size 556 --accumulate 2 --epochs 3 \
        --dropout 0 --log-every-steps 1 ... --output PT

Replaying a BertKit run exactly (--replay FILE). `bert pretrain ... --record-batches FILE` writes every
micro-batch as BertKit's model saw it: the padded ids after masking, token types, attention mask, masked
positions and labels, and with --objective electra the generator's samples. With --replay FILE --init
RUN0/step-00000001 (a `--stop-after-steps 1 --save-every-steps 1` run of the same seed and schedule: its
initial weights) --max-steps N (the recorded run's updates), this script trains on those micro-batches in
their order, takes BertKit's samples instead of drawing its own, and skips `bert inspect`, its own order and
its own masks. What is left between the two runs is the arithmetic: the two trainers from one start on the
same batches, masks and samples, so that their losses (--log-every-steps 1) and their weights
(--save-every-steps K on both sides) show the first update where they part. The 30-update smoke check
(tiny, the ELECTRA pipeline's recipe): per-update loss, MLM, RTD and gradient norm agree to 2e-6 relative.

--bert defaults to $BERT, else `bert` on PATH, else .build/release/bert. Exit status 0 on success, 1 on a
failed check or a failure of `bert inspect`, 2 on bad usage.
"""

from __future__ import annotations

import argparse
import array
import hashlib
import json
import math
import os
import platform
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

REPO = Path(__file__).resolve().parents[3]

# BertConfig.preset(_:vocabSize:): (layers, hidden, heads); intermediate 4 * hidden; other fields bert-base's.
PRESETS = {
    "tiny": (2, 128, 2),
    "mini": (4, 256, 4),
    "small": (4, 512, 8),
    "medium": (8, 512, 8),
    "base": (12, 768, 12),
}
# BertConfig's defaults (bert-base-uncased), which also fill the keys a config.json leaves out.
BERT_DEFAULTS = dict(
    vocab_size=30522, hidden_size=768, num_hidden_layers=12, num_attention_heads=12, intermediate_size=3072,
    hidden_act="gelu", hidden_dropout_prob=0.1, attention_probs_dropout_prob=0.1, max_position_embeddings=512,
    type_vocab_size=2, initializer_range=0.02, layer_norm_eps=1e-12, pad_token_id=0,
)
BETA1, BETA2, EPSILON = 0.9, 0.999, 1e-6
GROUP_WINDOW_BATCHES = 64  # `bert pretrain --group-by-length`: ShardLoader.Options.groupWindowBatches
MASK_STREAM, GROUP_STREAM = 0x4D41534B, 0x47524F5550  # "MASK", "GROUP": tags of the numpy seeds


class UsageError(Exception):
    pass


def log(*a) -> None:
    print(*a, file=sys.stderr, flush=True)


# ---------------------------------------------------------------------------------------------------
# Vocabulary, config
# ---------------------------------------------------------------------------------------------------

def read_vocab(path: Path) -> list[str]:
    """vocab.txt as Vocabulary.parse reads it: lines split at \\n, trailing white space dropped."""
    data = path.read_bytes().decode("utf-8")
    lines = data.split("\n")
    if data.endswith("\n"):
        lines.pop()
    tokens = [t.rstrip() for t in lines]
    for special in ("[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"):
        if special not in tokens:
            raise UsageError(f"{path}: the vocabulary has no {special} token")
    return tokens


def resolve_config(args, vocab: list[str], max_seq_length: int):
    """transformers.BertConfig as `bert pretrain` resolves its model (Pretrain.swift)."""
    from transformers import BertConfig

    source = args.init / "config.json" if args.init else args.config
    if source is not None:
        try:
            raw = json.loads(Path(source).read_text())
        except (OSError, ValueError) as e:
            raise UsageError(f"{source}: cannot read model config ({e})")
        if not isinstance(raw, dict):
            raise UsageError(f"{source}: not a JSON object")
        fields = dict(BERT_DEFAULTS)
        fields.update({k: raw[k] for k in BERT_DEFAULTS if k in raw})
        allowed_type = "electra" if args.init and args.objective == "electra" else "bert"
        if raw.get("model_type", "bert") != allowed_type:
            raise UsageError(f"{source}: model_type {raw.get('model_type')!r} is not \"{allowed_type}\"")
        if raw.get("position_embedding_type", "absolute") != "absolute":
            raise UsageError(f"{source}: only position_embedding_type \"absolute\" is supported")
        if fields["vocab_size"] != len(vocab):
            raise UsageError(f"{source}: vocab_size {fields['vocab_size']} but vocab.txt has {len(vocab)} tokens; they must match")
        name = str(source)
    else:
        if args.model not in PRESETS:
            raise UsageError(f"unknown model preset {args.model!r}; use one of {', '.join(PRESETS)} or --config FILE")
        l, h, a = PRESETS[args.model]
        fields = dict(BERT_DEFAULTS, vocab_size=len(vocab), hidden_size=h, num_hidden_layers=l, num_attention_heads=a,
                      intermediate_size=4 * h)
        name = f"--model {args.model}"
    if args.dropout is not None:
        fields["hidden_dropout_prob"] = args.dropout
        fields["attention_probs_dropout_prob"] = args.dropout
    fields["pad_token_id"] = vocab.index("[PAD]")
    fields["max_position_embeddings"] = max(fields["max_position_embeddings"], max_seq_length)
    if fields["hidden_act"] not in ("gelu", "gelu_new", "gelu_pytorch_tanh", "relu"):
        raise UsageError(f"{name}: hidden_act {fields['hidden_act']!r} is not supported by BertKit")
    if fields["hidden_size"] % fields["num_attention_heads"] != 0:
        raise UsageError(f"{name}: num_attention_heads {fields['num_attention_heads']} does not divide hidden_size")
    config = BertConfig(**fields, architectures=["BertForPreTraining"])
    return config, name


# ---------------------------------------------------------------------------------------------------
# Instances
# ---------------------------------------------------------------------------------------------------

class Instances:
    """All instances of a shard set in flat arrays (see the module docstring)."""

    def __init__(self, ids, id_offsets, segment_a, positions, labels, mask_offsets, nsp):
        self.ids = ids                    # (tokens,) uint16 or int32
        self.id_offsets = id_offsets      # (N + 1,) int64
        self.segment_a = segment_a        # (N,) int32: tokens in [CLS] A [SEP]
        self.positions = positions        # (masked,) int32
        self.labels = labels              # (masked,) int32
        self.mask_offsets = mask_offsets  # (N + 1,) int64
        self.nsp = nsp                    # (N,) int8

    def __len__(self) -> int:
        return len(self.segment_a)

    @property
    def max_length(self) -> int:
        return int(np.diff(self.id_offsets).max()) if len(self) else 0


def find_bert(explicit: str | None) -> str:
    if explicit:
        return explicit
    if os.environ.get("BERT"):
        return os.environ["BERT"]
    found = shutil.which("bert")
    if found:
        return found
    built = REPO / ".build" / "release" / "bert"
    if built.exists():
        return str(built)
    raise UsageError("no bert binary: give --bert PATH (or set BERT, or build .build/release/bert)")


def read_instances(bert: str, shards: Path, vocab_size: int) -> Instances:
    """Streams `bert inspect SHARDS --json --limit 0` into flat arrays."""
    ids = array.array("H" if vocab_size <= 65536 else "i")
    id_offsets = array.array("q", [0])
    segment_a = array.array("i")
    positions = array.array("i")
    labels = array.array("i")
    mask_offsets = array.array("q", [0])
    nsp = array.array("b")
    cmd = [bert, "inspect", str(shards), "--json", "--limit", "0"]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, text=True, bufsize=1 << 20)
    assert proc.stdout is not None
    n = 0
    try:
        for line in proc.stdout:
            d = json.loads(line)
            tok = d["input_ids"]
            seg = d["segment_ids"]
            a = seg.index(1) if 1 in seg else len(seg)
            if len(seg) != len(tok) or sum(seg) != len(seg) - a:
                raise RuntimeError(f"instance {n}: segment_ids are not 0...0 1...1 over the tokens")
            pos, lab = d["masked_lm_positions"], d["masked_lm_labels"]
            if len(pos) != len(lab) or any(not 0 <= p < len(tok) for p in pos):
                raise RuntimeError(f"instance {n}: masked_lm_positions/labels do not fit the instance")
            ids.extend(tok)
            id_offsets.append(len(ids))
            segment_a.append(a)
            positions.extend(pos)
            labels.extend(lab)
            mask_offsets.append(len(positions))
            nsp.append(int(d["next_sentence_label"]))
            n += 1
    except BaseException:
        proc.kill()
        proc.wait()
        raise
    rc = proc.wait()
    if rc != 0:
        raise RuntimeError(f"{' '.join(cmd)} exited with status {rc}")
    return Instances(
        np.frombuffer(ids, dtype=np.uint16 if ids.typecode == "H" else np.int32),
        np.frombuffer(id_offsets, dtype=np.int64), np.frombuffer(segment_a, dtype=np.int32),
        np.frombuffer(positions, dtype=np.int32), np.frombuffer(labels, dtype=np.int32),
        np.frombuffer(mask_offsets, dtype=np.int64), np.frombuffer(nsp, dtype=np.int8))


def make_batch(data: Instances, indices: np.ndarray, masker: "Masker | None" = None,
               rng: np.random.Generator | None = None) -> dict[str, torch.Tensor]:
    """Instances `indices`, padded to the longest of them (ids 0 and attention 0 on padding); with a
    masker (dynamic masking), masked here with `rng` instead of with the stored masks."""
    b = len(indices)
    starts, ends = data.id_offsets[indices], data.id_offsets[indices + 1]
    t = int((ends - starts).max())
    input_ids = np.zeros((b, t), dtype=np.int64)
    token_type = np.zeros((b, t), dtype=np.int64)
    attention = np.zeros((b, t), dtype=np.int64)
    rows, pos, lab = [], [], []
    for i, k in enumerate(indices):
        s, e = starts[i], ends[i]
        n = e - s
        input_ids[i, :n] = data.ids[s:e]
        attention[i, :n] = 1
        token_type[i, data.segment_a[k]:n] = 1
        ms, me = data.mask_offsets[k], data.mask_offsets[k + 1]
        rows.append(np.full(me - ms, i, dtype=np.int64))
        pos.append(data.positions[ms:me].astype(np.int64))
        lab.append(data.labels[ms:me].astype(np.int64))
    if masker is not None:
        assert rng is not None
        rows_, pos_, lab_ = masker.mask(input_ids, (ends - starts).astype(np.int64), rng)
        rows, pos, lab = [rows_], [pos_], [lab_]
    return {
        "input_ids": torch.from_numpy(input_ids),
        "token_type_ids": torch.from_numpy(token_type),
        "attention_mask": torch.from_numpy(attention),
        "masked_rows": torch.from_numpy(np.concatenate(rows)),
        "masked_positions": torch.from_numpy(np.concatenate(pos)),
        "masked_labels": torch.from_numpy(np.concatenate(lab)),
        "next_sentence_label": torch.from_numpy(data.nsp[indices].astype(np.int64)),
    }


def record_line(step: int, micro: int, batch: dict, samples) -> str:
    """One line of `bert pretrain --record-batches`'s format for a make_batch dict."""
    b, t = batch["input_ids"].shape
    row = {"step": step, "micro": micro, "batch_size": int(b), "seq_length": int(t),
           "input_ids": batch["input_ids"].flatten().tolist(), "token_type_ids": batch["token_type_ids"].flatten().tolist(),
           "attention_mask": batch["attention_mask"].flatten().tolist(),
           "masked_positions": (batch["masked_rows"] * t + batch["masked_positions"]).tolist(),
           "masked_labels": batch["masked_labels"].tolist()}
    if samples is not None:
        row["samples"] = samples.tolist()
    return json.dumps(row, separators=(",", ":")) + "\n"


def replay_updates(path: Path, accumulate: int):
    """--replay: the micro-batches of `bert pretrain --record-batches FILE`, an update at a time (consecutive
    lines with the same step), as make_batch's dicts with BertKit's samples."""
    def batch(row: dict) -> dict:
        b, t = row["batch_size"], row["seq_length"]
        pos = torch.tensor(row["masked_positions"], dtype=torch.int64)
        out = {
            "input_ids": torch.tensor(row["input_ids"], dtype=torch.int64).view(b, t),
            "token_type_ids": torch.tensor(row["token_type_ids"], dtype=torch.int64).view(b, t),
            "attention_mask": torch.tensor(row["attention_mask"], dtype=torch.int64).view(b, t),
            "masked_rows": pos // t, "masked_positions": pos % t,
            "masked_labels": torch.tensor(row["masked_labels"], dtype=torch.int64),
            "next_sentence_label": torch.zeros(b, dtype=torch.int64),
        }
        if "samples" in row:
            out["samples"] = torch.tensor(row["samples"], dtype=torch.int64)
        return out

    step, micros = None, []
    with open(path) as f:
        for number, line in enumerate(f, 1):
            row = json.loads(line)
            if step is not None and row["step"] != step:
                yield step, micros
                micros = []
            if step is not None and row["step"] not in (step, step + 1):
                raise UsageError(f"{path}:{number}: step {row['step']} after step {step} (a resumed or cut recording?)")
            step = row["step"]
            micros.append(batch(row))
            if len(micros) > accumulate:
                raise UsageError(f"{path}:{number}: more than --accumulate {accumulate} micro-batches in step {step}")
    if micros:
        yield step, micros


class Masker:
    """BertKit's Masker (InstanceBuilder.swift) for dynamically masked shards, a batch at a time (see the
    module docstring: candidates, target, whole words, 80/10/10)."""

    def __init__(self, vocab: list[str], masked_lm_prob: float, max_predictions: int, whole_word: bool):
        self.mask_id, self.cls_id, self.sep_id = (vocab.index(t) for t in ("[MASK]", "[CLS]", "[SEP]"))
        self.vocab_size = len(vocab)
        self.continuation = np.array([t.startswith("##") for t in vocab], dtype=bool)  # (V,)
        self.masked_lm_prob = float(masked_lm_prob)
        self.max_predictions = int(max_predictions)
        self.whole_word = bool(whole_word)

    def targets(self, lengths: np.ndarray) -> np.ndarray:
        """Masker.predictionCount: min(P, max(1, round_half_even(length * p))) per length."""
        rounded = np.rint(lengths.astype(np.float64) * self.masked_lm_prob).astype(np.int64)
        return np.minimum(self.max_predictions, np.maximum(1, rounded))

    def mask(self, input_ids: np.ndarray, lengths: np.ndarray, rng: np.random.Generator):
        """Masks the (B, T) padded `input_ids` in place (row i's tokens are its first lengths[i]); returns
        (rows, positions, labels), int64, ascending by (row, position)."""
        if self.whole_word:
            return self._mask_words(input_ids, lengths, rng)
        b, t = input_ids.shape
        col = np.arange(t)
        candidate = (col[None, :] < lengths[:, None]) & (input_ids != self.cls_id) & (input_ids != self.sep_id)
        keys = rng.random((b, t))
        keys[~candidate] = 2.0                                        # after every candidate
        order = np.argsort(keys, axis=1, kind="stable")               # candidates in a uniform random order
        count = np.minimum(self.targets(lengths), candidate.sum(axis=1))
        chosen = np.zeros((b, t), dtype=bool)
        take = col[None, :] < count[:, None]
        chosen[np.nonzero(take)[0], order[take]] = True
        rows, positions = np.nonzero(chosen)                          # row-major: ascending
        labels = input_ids[rows, positions].copy()
        r = rng.random(len(rows))
        masked, randomized = r < 0.8, r >= 0.9                        # 0.8 <= r < 0.9 keeps the token
        input_ids[rows[masked], positions[masked]] = self.mask_id
        input_ids[rows[randomized], positions[randomized]] = rng.integers(0, self.vocab_size, int(randomized.sum()))
        return rows.astype(np.int64), positions.astype(np.int64), labels.astype(np.int64)

    def _mask_words(self, input_ids: np.ndarray, lengths: np.ndarray, rng: np.random.Generator):
        """Whole-word masking (Masker.maskGroups with wholeWord), one instance at a time."""
        rows, positions, labels = [], [], []
        targets = self.targets(lengths)
        for i in range(input_ids.shape[0]):
            tokens = input_ids[i, :lengths[i]]                        # a view: masked in place
            cand = np.nonzero((tokens != self.cls_id) & (tokens != self.sep_id))[0]
            joins = self.continuation[tokens[cand]]                   # a "##" piece ...
            joins[1:] &= cand[1:] == cand[:-1] + 1                    # ... right after a candidate
            joins[:1] = False
            first = np.nonzero(~joins)[0]
            starts = cand[first]                                      # word w: starts[w] ..< starts[w] + sizes[w]
            sizes = np.diff(np.append(first, len(cand)))
            target, count, spans = int(targets[i]), 0, []
            for w in rng.permutation(len(starts)):
                if count >= target:
                    break
                size = int(sizes[w])
                if count + size > target:
                    continue                                          # would overshoot: skipped
                span = np.arange(starts[w], starts[w] + size)
                spans.append((int(starts[w]), span, tokens[span].copy()))
                count += size
                if rng.random() < 0.8:
                    tokens[span] = self.mask_id
                elif rng.random() >= 0.5:                             # else kept
                    tokens[span] = rng.integers(0, self.vocab_size, size)
            spans.sort(key=lambda x: x[0])
            for _, span, lab in spans:
                rows.append(np.full(len(span), i, dtype=np.int64))
                positions.append(span.astype(np.int64))
                labels.append(lab.astype(np.int64))
        if not rows:
            return (np.zeros(0, dtype=np.int64),) * 3
        return np.concatenate(rows), np.concatenate(positions), np.concatenate(labels)


def epoch_batches(order: np.ndarray, lengths: np.ndarray, batch_size: int, window_batches: int, seed: int,
                  epoch: int) -> list[np.ndarray]:
    """The epoch's batches (arrays of instance indices) from its order: consecutive slices, or with
    window_batches > 0 ShardLoader's length grouping (see the module docstring)."""
    if window_batches == 0:
        return [order[i:i + batch_size] for i in range(0, len(order), batch_size)]
    window = window_batches * batch_size
    batches = []
    for w, start in enumerate(range(0, len(order), window)):
        part = order[start:start + window]
        part = part[np.argsort(lengths[part], kind="stable")]        # shortest first, ties in window order
        full = len(part) - len(part) % batch_size
        groups = [part[j:j + batch_size] for j in range(0, full, batch_size)]
        shuffle = np.random.default_rng([seed, epoch, GROUP_STREAM, w]).permutation(len(groups))
        batches.extend(groups[j] for j in shuffle)
        if full < len(part):
            batches.append(part[full:])                               # the smaller batch stays last
    return batches


def sinusoidal_positions(positions: int, hidden: int, std: float) -> np.ndarray:
    """Encoder.sinusoidalPositions: (positions, hidden) float32, in float64 with libm's pow/sin/cos."""
    out = np.zeros((positions, hidden), dtype=np.float32)
    scale = std * math.sqrt(2.0)  # sin and cos have variance 1/2
    omegas = [math.pow(10000.0, -2.0 * k / hidden) for k in range(hidden // 2)]
    for t in range(positions):
        row = out[t]
        for k, omega in enumerate(omegas):
            angle = float(t) * omega
            row[2 * k] = math.sin(angle) * scale
            row[2 * k + 1] = math.cos(angle) * scale
    return out  # an odd last column stays 0


# ---------------------------------------------------------------------------------------------------
# Model, loss
# ---------------------------------------------------------------------------------------------------

def forward(model, batch) -> dict:
    """MLM at the masked positions only (gathered before the head) and NSP; means, counts, correct."""
    out = model.bert(input_ids=batch["input_ids"], token_type_ids=batch["token_type_ids"],
                     attention_mask=batch["attention_mask"])
    seq, pooled = out.last_hidden_state, out.pooler_output
    rows = seq[batch["masked_rows"], batch["masked_positions"]]     # (M, H)
    mlm_logits = model.cls.predictions(rows)                        # (M, V)
    nsp_logits = model.cls.seq_relationship(pooled)                 # (B, 2)
    m = rows.shape[0]
    mlm = F.cross_entropy(mlm_logits, batch["masked_labels"], reduction="sum") / max(1, m)
    nsp = F.cross_entropy(nsp_logits, batch["next_sentence_label"])
    with torch.no_grad():
        mlm_correct = int((mlm_logits.argmax(-1) == batch["masked_labels"]).sum())
        nsp_correct = int((nsp_logits.argmax(-1) == batch["next_sentence_label"]).sum())
    return dict(mlm=mlm, nsp=nsp, mlm_count=m, nsp_count=pooled.shape[0], mlm_correct=mlm_correct, nsp_correct=nsp_correct)


class ElectraPair(torch.nn.Module):
    """--objective electra: transformers' ElectraForPreTraining (the discriminator, `config`'s shape,
    embedding_size = hidden_size) and ElectraForMaskedLM (the generator: the same depth at
    --generator-size of the hidden size, heads and intermediate size, rounded as BertKit's
    ElectraForPreTraining.generatorConfig does), sharing one embeddings module; the generator's LM head
    is the word table."""

    def __init__(self, config, generator_size: float):
        super().__init__()
        from transformers import ElectraConfig, ElectraForMaskedLM, ElectraForPreTraining
        keys = ("vocab_size", "num_hidden_layers", "hidden_act", "hidden_dropout_prob", "attention_probs_dropout_prob",
                "max_position_embeddings", "type_vocab_size", "initializer_range", "layer_norm_eps", "pad_token_id")
        common = {k: getattr(config, k) for k in keys}
        common["embedding_size"] = config.hidden_size
        self.disc = ElectraForPreTraining(ElectraConfig(**common, hidden_size=config.hidden_size, num_attention_heads=config.num_attention_heads,
                                                        intermediate_size=config.intermediate_size))
        g = max(1, math.floor(config.hidden_size * generator_size + 0.5))
        heads = max(1, math.floor(config.num_attention_heads * generator_size + 0.5))
        while g % heads:
            heads -= 1
        self.gen = ElectraForMaskedLM(ElectraConfig(**common, hidden_size=g, num_attention_heads=heads,
                                                    intermediate_size=max(1, math.floor(config.intermediate_size * generator_size + 0.5))))
        self.gen.electra.embeddings = self.disc.electra.embeddings
        self.gen.generator_lm_head.weight = self.disc.electra.embeddings.word_embeddings.weight


def forward_electra(pair: ElectraPair, batch, sampler: torch.Generator, weight: float) -> dict:
    """ELECTRA's step: the generator's MLM at the masked positions (gathered before its head), a token
    drawn at each from its softmax (no gradient), the discriminator on the batch with the samples in
    place, binary cross-entropy over the real tokens (transformers' ElectraForPreTraining loss)."""
    ids, tt, mask = batch["input_ids"], batch["token_type_ids"], batch["attention_mask"]
    seq = pair.gen.electra(input_ids=ids, token_type_ids=tt, attention_mask=mask).last_hidden_state
    rows = seq[batch["masked_rows"], batch["masked_positions"]]
    logits = pair.gen.generator_lm_head(pair.gen.generator_predictions(rows))
    labels = batch["masked_labels"]
    m = rows.shape[0]
    mlm = F.cross_entropy(logits, labels, reduction="sum") / max(1, m)
    with torch.no_grad():
        if "samples" in batch:  # --replay: the samples BertKit drew
            sampled = batch["samples"]
        else:
            sampled = torch.multinomial(F.softmax(logits.float(), dim=-1), 1, generator=sampler).squeeze(1)
        disc_ids = ids.clone()
        disc_ids[batch["masked_rows"], batch["masked_positions"]] = sampled
        replaced = torch.zeros_like(ids, dtype=torch.float32)
        replaced[batch["masked_rows"], batch["masked_positions"]] = (sampled != labels).float()
    d = pair.disc(input_ids=disc_ids, token_type_ids=tt, attention_mask=mask).logits
    active = mask == 1
    rtd = F.binary_cross_entropy_with_logits(d[active], replaced[active])
    with torch.no_grad():
        mlm_correct = int((logits.argmax(-1) == labels).sum())
        says = d[active] > 0
        truth = replaced[active] == 1
        rtd_correct = int((says == truth).sum())
    return dict(mlm=mlm, nsp=weight * rtd, mlm_count=m, nsp_count=int(active.sum()), mlm_correct=mlm_correct, nsp_correct=rtd_correct,
                rtd=float(rtd.detach()), replaced=int(truth.sum()), detected=int((says & truth).sum()),
                sampled_original=int((sampled == labels).sum()), samples=sampled)


def stock_loss(model, batch) -> torch.Tensor:
    """transformers' own loss: the MLM head at every position, labels -100 off the masked ones."""
    labels = torch.full_like(batch["input_ids"], -100)
    labels[batch["masked_rows"], batch["masked_positions"]] = batch["masked_labels"]
    return model(input_ids=batch["input_ids"], token_type_ids=batch["token_type_ids"],
                 attention_mask=batch["attention_mask"], labels=labels,
                 next_sentence_label=batch["next_sentence_label"]).loss


def head_of_batch(batch, n: int) -> dict:
    """The first n instances of a batch."""
    keep = batch["masked_rows"] < n
    out = {k: batch[k][:n] for k in ("input_ids", "token_type_ids", "attention_mask", "next_sentence_label")}
    out.update({k: batch[k][keep] for k in ("masked_rows", "masked_positions", "masked_labels")})
    return out


def check_gathered_loss(model, batch, rows: int = 8) -> dict:
    """Eval mode (no dropout), on the batch's first `rows` instances (transformers' loss runs the MLM
    head at every position: B x T x V logits): the gathered loss must equal transformers' loss."""
    batch = head_of_batch(batch, rows)
    was_training = model.training
    model.eval()
    with torch.no_grad():
        ours = forward(model, batch)
        ours_loss = float(ours["mlm"] + ours["nsp"])
        stock = float(stock_loss(model, batch))
    model.train(was_training)
    diff = abs(ours_loss - stock)
    ok = ours["mlm_count"] > 0 and diff <= 1e-5 * max(1.0, abs(stock))
    return dict(gathered=ours_loss, transformers=stock, abs_diff=diff, instances=int(batch["input_ids"].shape[0]),
                masked_positions=ours["mlm_count"], ok=ok)


def check_ties(model) -> None:
    p = model.cls.predictions
    if p.decoder.weight.data_ptr() != model.bert.embeddings.word_embeddings.weight.data_ptr():
        raise RuntimeError("cls.predictions.decoder.weight is not tied to the word embeddings")
    if p.decoder.bias is None or p.decoder.bias.data_ptr() != p.bias.data_ptr():
        raise RuntimeError("cls.predictions.decoder.bias is not tied to cls.predictions.bias")


def load_init(model, directory: Path) -> dict:
    """Weights of a checkpoint directory (names with or without `bert.`); all but the tied decoder needed."""
    from safetensors.torch import load_file

    tensors = load_file(str(directory / "model.safetensors"))
    own = model.state_dict()
    state, unexpected = {}, []
    for name, t in tensors.items():
        key = name if name in own else "bert." + name if "bert." + name in own else None
        if key is None:
            unexpected.append(name)
            continue
        if tuple(own[key].shape) != tuple(t.shape):
            raise UsageError(f"{directory}: tensor {name} has shape {list(t.shape)}, the model needs {list(own[key].shape)}")
        state[key] = t
    result = model.load_state_dict(state, strict=False)
    allowed = {"cls.predictions.decoder.weight", "cls.predictions.decoder.bias"}
    missing = [k for k in result.missing_keys if k not in allowed and not k.endswith(("position_ids", "token_type_ids"))]
    if missing:
        raise UsageError(f"{directory}/model.safetensors lacks {', '.join(missing[:5])}{' ...' if len(missing) > 5 else ''}")
    unexpected = [k for k in unexpected if not k.endswith(("position_ids", "token_type_ids"))]
    return dict(directory=str(directory), tensors=len(state), ignored=unexpected)


def load_electra_init(pair, directory: Path) -> dict:
    """An ELECTRA pair from a BertKit `--objective electra` checkpoint: the discriminator from
    DIR/model.safetensors, the generator from DIR/generator/model.safetensors (transformers' names in
    both; the shared embeddings come from the discriminator's file). Every tensor of both models is needed."""
    from safetensors.torch import load_file

    loaded = 0
    for module, path in ((pair.disc, directory / "model.safetensors"), (pair.gen, directory / "generator" / "model.safetensors")):
        if not path.is_file():
            raise UsageError(f"{path}: missing (an ELECTRA --init needs the discriminator and its generator/)")
        tensors = load_file(str(path))
        own = module.state_dict()
        state = {}
        for name, t in tensors.items():
            if name.startswith("electra.embeddings.") and module is pair.gen:
                continue  # shared with the discriminator, loaded from its file
            if name not in own:
                raise UsageError(f"{path}: unexpected tensor {name}")
            if tuple(own[name].shape) != tuple(t.shape):
                raise UsageError(f"{path}: tensor {name} has shape {list(t.shape)}, the model needs {list(own[name].shape)}")
            state[name] = t
        result = module.load_state_dict(state, strict=False)
        missing = [k for k in result.missing_keys if not k.endswith(("position_ids", "token_type_ids"))
                   and not (module is pair.gen and (k.startswith("electra.embeddings.") or k == "generator_lm_head.weight"))]
        if missing:
            raise UsageError(f"{path} lacks {', '.join(missing[:5])}{' ...' if len(missing) > 5 else ''}")
        loaded += len(state)
    return dict(directory=str(directory), tensors=loaded, ignored=[])


def decays(name: str) -> bool:
    """ParameterEntry.decay: not biases, not LayerNorm."""
    return not ("bias" in name or "LayerNorm" in name or "layer_norm" in name)


# ---------------------------------------------------------------------------------------------------
# Optimizer, schedule, clipping (AdamW.swift)
# ---------------------------------------------------------------------------------------------------

class BertAdamW:
    """AdamW.swift's update, per parameter tensor, in float32 (see the module docstring)."""

    def __init__(self, named_params, weight_decay: float, bias_correction: bool):
        self.params = [(p, weight_decay if decays(n) else 0.0) for n, p in named_params]
        self.m = [torch.zeros_like(p) for p, _ in self.params]
        self.v = [torch.zeros_like(p) for p, _ in self.params]
        self.bias_correction = bias_correction
        self.steps = 0

    @torch.no_grad()
    def step(self, lr: float) -> None:
        self.steps += 1
        c1 = 1 / (1 - BETA1 ** self.steps) if self.bias_correction else 1.0
        c2 = 1 / (1 - BETA2 ** self.steps) if self.bias_correction else 1.0
        for (p, wd), m, v in zip(self.params, self.m, self.v):
            g = p.grad if p.grad is not None else torch.zeros_like(p)
            m.mul_(BETA1).add_(g, alpha=1 - BETA1)
            v.mul_(BETA2).addcmul_(g, g, value=1 - BETA2)
            if self.bias_correction:
                update = (m * c1) / ((v * c2).sqrt_().add_(EPSILON))
            else:
                update = m / (v.sqrt().add_(EPSILON))
            if wd:
                update.add_(p, alpha=wd)
            p.add_(update, alpha=-lr)


def learning_rate(k: int, base: float, warmup: int, total: int) -> float:
    """LinearSchedule.rate(at:) for update k (from 0)."""
    if k < warmup:
        return base * k / max(1, warmup)
    return base * max(0.0, (total - k) / max(1, total - warmup))


@torch.no_grad()
def clip_global_norm(params, max_norm: float) -> float:
    """clipGlobalNorm: the norm before clipping; scales by max_norm / norm when norm > max_norm."""
    grads = [p.grad for p in params if p.grad is not None]
    norm = math.sqrt(sum(float(g.double().square().sum()) for g in grads))
    if norm > max_norm:
        scale = max_norm / norm
        for g in grads:
            g.mul_(scale)
    return norm


# ---------------------------------------------------------------------------------------------------
# Self-test
# ---------------------------------------------------------------------------------------------------

def self_test() -> int:
    """Checks the pieces against torch/transformers on small random inputs; no data, a second of CPU."""
    from transformers import BertConfig, BertForPreTraining, get_linear_schedule_with_warmup

    failures = []
    # 1. --bias-correction = torch.optim.AdamW(eps=1e-6) with the same groups.
    torch.manual_seed(0)
    ps = [torch.nn.Parameter(torch.randn(50)), torch.nn.Parameter(torch.randn(7, 3))]
    qs = [torch.nn.Parameter(p.detach().clone()) for p in ps]
    ours = BertAdamW([("w.weight", ps[0]), ("b.bias", ps[1])], weight_decay=0.01, bias_correction=True)
    ref = torch.optim.AdamW([{"params": [qs[0]], "weight_decay": 0.01}, {"params": [qs[1]], "weight_decay": 0.0}],
                            lr=1e-3, betas=(BETA1, BETA2), eps=EPSILON)
    for k in range(10):
        lr = 1e-3 * (k + 1) / 10
        grads = [torch.randn_like(p) for p in ps]
        for p, q, g in zip(ps, qs, grads):
            p.grad, q.grad = g.clone(), g.clone()
        for group in ref.param_groups:
            group["lr"] = lr
        ours.step(lr)
        ref.step()
    diff = max(float((p - q).detach().abs().max()) for p, q in zip(ps, qs))
    print(json.dumps({"check": "bias_correction_vs_torch_adamw", "max_abs_diff": diff}))
    if diff > 1e-6:
        failures.append("bias correction")
    # 2. no bias correction = the formula in float64.
    torch.manual_seed(1)
    p = torch.nn.Parameter(torch.randn(40))
    p64, m64, v64 = p.detach().double().clone(), torch.zeros(40, dtype=torch.float64), torch.zeros(40, dtype=torch.float64)
    opt = BertAdamW([("x.weight", p)], weight_decay=0.01, bias_correction=False)
    for k in range(10):
        g = torch.randn(40)
        p.grad = g.clone()
        opt.step(1e-3)
        g64 = g.double()
        m64 = BETA1 * m64 + (1 - BETA1) * g64
        v64 = BETA2 * v64 + (1 - BETA2) * g64 * g64
        p64 = p64 - 1e-3 * (m64 / (v64.sqrt() + EPSILON) + 0.01 * p64)
    diff = float((p.detach().double() - p64).abs().max())
    print(json.dumps({"check": "bert_adamw_vs_float64_formula", "max_abs_diff": diff}))
    if diff > 1e-5:
        failures.append("BERT AdamW")
    # 3. schedule = get_linear_schedule_with_warmup.
    worst = 0.0
    for warmup, total in [(0, 10), (1, 1), (3, 10), (10, 10), (12, 10), (100, 1000)]:
        opt = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=2e-4)
        sched = get_linear_schedule_with_warmup(opt, warmup, total)
        for k in range(total + 2):
            worst = max(worst, abs(opt.param_groups[0]["lr"] - learning_rate(k, 2e-4, warmup, total)))
            opt.step()
            sched.step()
    print(json.dumps({"check": "schedule_vs_get_linear_schedule_with_warmup", "max_abs_diff": worst}))
    if worst > 1e-12:
        failures.append("schedule")
    # 4. gathered loss = transformers' loss, with padding and a row without masks.
    torch.manual_seed(2)
    cfg = BertConfig(vocab_size=50, hidden_size=16, num_hidden_layers=2, num_attention_heads=2, intermediate_size=24,
                     max_position_embeddings=16)
    model = BertForPreTraining(cfg)
    check_ties(model)
    ids = [[2, 5, 6, 3, 7, 8, 3], [2, 9, 3, 10, 3], [2, 11, 3, 12, 13, 3]]
    data = Instances(
        np.array(sum(ids, []), dtype=np.uint16), np.cumsum([0] + [len(x) for x in ids]).astype(np.int64),
        np.array([4, 3, 3], dtype=np.int32), np.array([1, 5, 2], dtype=np.int32), np.array([40, 41, 42], dtype=np.int32),
        np.array([0, 2, 3, 3], dtype=np.int64), np.array([0, 1, 1], dtype=np.int8))
    for rows in (3, 1):  # the whole batch (a row without masks, padding), and its head
        check = check_gathered_loss(model, make_batch(data, np.arange(3)), rows=rows)
        print(json.dumps({"check": "gathered_loss_vs_transformers", **check}))
        if not check["ok"]:
            failures.append("gathered loss")
    # 5. clipping = tf.clip_by_global_norm.
    p = torch.nn.Parameter(torch.zeros(2))
    p.grad = torch.tensor([3.0, 4.0])
    norm = clip_global_norm([p], 1.0)
    ok = abs(norm - 5) < 1e-9 and torch.allclose(p.grad, torch.tensor([0.6, 0.8]))
    print(json.dumps({"check": "clip_global_norm", "norm": norm, "clipped": p.grad.tolist(), "ok": ok}))
    if not ok:
        failures.append("clipping")
    # 6-9. dynamic masking, length grouping, sinusoids.
    failures += check_masking() + check_whole_words() + check_grouping() + check_sinusoids()
    if failures:
        log("self-test failed: " + ", ".join(failures))
        return 1
    log("self-test passed")
    return 0


def synthetic_vocab(size: int, continuation_every: int = 0) -> list[str]:
    """[PAD] [UNK] [CLS] [SEP] [MASK] then words (every continuation_every-th a "##" piece)."""
    words = [f"##w{i}" if continuation_every and i % continuation_every == 0 else f"w{i}" for i in range(size - 5)]
    return ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"] + words


def synthetic_batch(rng: np.random.Generator, lengths: list[int], vocab_size: int) -> np.ndarray:
    """[CLS] A [SEP] B [SEP] rows of random non-special ids, padded with 0."""
    ids = np.zeros((len(lengths), max(lengths)), dtype=np.int64)
    for i, n in enumerate(lengths):
        ids[i, :n] = rng.integers(5, vocab_size, n)
        ids[i, 0], ids[i, n - 1] = 2, 3
        if n >= 5:
            ids[i, rng.integers(2, n - 2)] = 3
    return ids


def check_masking() -> list[str]:
    """Masker without whole words on synthetic batches: per instance exactly min(target, candidates)
    positions (target with half-even rounding and the max_predictions cap), never [CLS]/[SEP]/padding,
    labels = the original ids, nothing else changed, 80/10/10 and uniform positions within tolerance."""
    failures = []
    vocab = synthetic_vocab(5000)
    rng = np.random.default_rng(7)
    worst_count = 0
    for prob, cap in ((0.15, 20), (0.5, 20), (0.9, 80)):
        m = Masker(vocab, prob, cap, whole_word=False)
        # 10 -> 1.5 -> 2, 30 -> 4.5 -> 4, 50 -> 7.5 -> 8 (half to even); 3: one candidate; 128: the cap.
        lengths = [3, 4, 10, 30, 50, 64, 128, 7, 20] * 20
        ids = synthetic_batch(rng, lengths, len(vocab))
        before = ids.copy()
        rows, pos, lab = m.mask(ids, np.array(lengths), rng)
        lens = np.array(lengths)
        candidates = ((ids != 2) & (ids != 3) & (np.arange(ids.shape[1])[None, :] < lens[:, None])).sum(1)
        expected = np.minimum(m.targets(lens), candidates)
        got = np.bincount(rows, minlength=len(lengths))
        worst_count = max(worst_count, int(np.abs(got - expected).max()))
        ascending = bool(np.all(np.diff(rows * 1000 + pos) > 0))
        special = bool(np.isin(before[rows, pos], (2, 3)).any() or (pos >= lens[rows]).any())
        changed = ids != before
        outside = changed.copy()
        outside[rows, pos] = False
        if (got != expected).any() or not ascending or special or outside.any() or (lab != before[rows, pos]).any():
            failures.append(f"masking counts/positions (prob {prob})")
    for prob, cap, n, want in ((0.15, 20, 10, 2), (0.15, 20, 30, 4), (0.15, 20, 50, 8), (0.15, 20, 128, 19),
                               (0.15, 20, 200, 20), (0.15, 20, 2, 1), (0.5, 20, 64, 20)):
        if int(Masker(vocab, prob, cap, False).targets(np.array([n]))[0]) != want:
            failures.append(f"masking target for length {n}")
    # Proportions and uniformity: 4000 instances of 40 tokens ([CLS] A [SEP] B [SEP], 37 candidates, 6 chosen).
    m = Masker(vocab, 0.15, 20, whole_word=False)
    ids = np.zeros((4000, 40), dtype=np.int64)
    ids[:] = rng.integers(5, len(vocab), (4000, 40))
    ids[:, 0], ids[:, 20], ids[:, 39] = 2, 3, 3
    before = ids.copy()
    rows, pos, lab = m.mask(ids, np.full(4000, 40), rng)
    after = ids[rows, pos]
    masked = float(np.mean(after == m.mask_id))
    kept = float(np.mean(after == lab))
    randomized = 1.0 - masked - kept
    per_position = np.bincount(pos, minlength=40)
    spread = per_position[np.r_[1:20, 21:39]]
    uniform = float(np.abs(spread / spread.mean() - 1).max())
    ok = bool(len(rows) == 4000 * 6 and abs(masked - 0.8) < 0.01 and abs(kept - 0.1) < 0.01 and abs(randomized - 0.1) < 0.01
              and per_position[[0, 20, 39]].sum() == 0 and uniform < 0.15)
    print(json.dumps({"check": "dynamic_masking", "count_abs_diff": worst_count, "positions": len(rows), "mask": masked,
                      "keep": kept, "random": randomized, "position_spread": uniform, "ok": ok and not failures}))
    if not ok:
        failures.append("masking proportions")
    return failures


def check_whole_words() -> list[str]:
    """Masker with whole words: the chosen positions are whole words, at most the target, and every word
    left out would overshoot it; each word all [MASK] or none; a piece after [CLS] starts a word."""
    vocab = synthetic_vocab(3000, continuation_every=3)  # a third of the ids are "##" pieces
    m = Masker(vocab, 0.15, 20, whole_word=True)
    piece = np.array([t.startswith("##") for t in vocab])
    rng = np.random.default_rng(8)
    lengths = [3, 9, 20, 40, 64, 128] * 100
    ids = synthetic_batch(rng, lengths, len(vocab))
    ids[:, 1] = np.where(rng.random(len(lengths)) < 0.5, 5, ids[:, 1])  # "##w0" right after [CLS]
    before = ids.copy()
    rows, pos, lab = m.mask(ids, np.array(lengths), rng)
    bad, short, total_words, mixed = 0, 0, 0, 0
    for i, n in enumerate(lengths):
        toks = before[i, :n]
        chosen = set(pos[rows == i].tolist())
        # words as the docstring defines them
        words, cur = [], None
        for j in range(n):
            if toks[j] in (2, 3):
                cur = None
                continue
            if cur is not None and piece[toks[j]] and cur[-1] == j - 1:
                cur.append(j)
            else:
                cur = [j]
                words.append(cur)
        target = int(m.targets(np.array([n]))[0])
        count = len(chosen)
        for w in words:
            inside = [j in chosen for j in w]
            if any(inside) and not all(inside):
                bad += 1
            if not any(inside) and count + len(w) <= target:
                bad += 1  # a word that fitted was left out
            if all(inside):
                total_words += 1
                masks = [ids[i, j] == m.mask_id for j in w]
                mixed += any(masks) and not all(masks)
        short += count < target
        bad += count > target or any(toks[j] in (2, 3) for j in chosen)
    ok = bad == 0 and mixed == 0 and (lab == before[rows, pos]).all()
    print(json.dumps({"check": "dynamic_whole_word_masking", "violations": bad, "mixed_words": mixed, "words": total_words,
                      "short_of_target": short, "ok": bool(ok)}))
    return [] if ok else ["whole-word masking"]


def check_grouping() -> list[str]:
    """epoch_batches: without a window, consecutive slices; with one, each window's batches are the
    stable length sort cut into slices, full ones permuted, the epoch's smaller batch last."""
    rng = np.random.default_rng(9)
    n, b, wb = 103, 4, 3
    lengths = rng.integers(3, 30, n)
    order = rng.permutation(n)
    plain = epoch_batches(order, lengths, b, 0, 1, 0)
    ok = np.array_equal(np.concatenate(plain), order) and [len(x) for x in plain] == [4] * 25 + [3]
    grouped = epoch_batches(order, lengths, b, wb, 1, 0)
    ok &= sorted(np.concatenate(grouped).tolist()) == list(range(n)) and [len(x) for x in grouped] == [4] * 25 + [3]
    at = 0
    for start in range(0, n, wb * b):
        part = order[start:start + wb * b]
        part = part[np.argsort(lengths[part], kind="stable")]
        slices = [part[j:j + b].tolist() for j in range(0, len(part), b)]
        got = [x.tolist() for x in grouped[at:at + len(slices)]]
        full = [x for x in slices if len(x) == b]
        ok &= sorted(got[:len(full)]) == sorted(full) and got[len(full):] == slices[len(full):]
        at += len(slices)
    other_epoch = epoch_batches(order, lengths, b, wb, 1, 1)  # seeded by epoch
    ok &= [x.tolist() for x in other_epoch] != [x.tolist() for x in grouped]
    print(json.dumps({"check": "group_by_length", "batches": len(grouped), "ok": bool(ok)}))
    return [] if ok else ["length grouping"]


def check_sinusoids() -> list[str]:
    """sinusoidal_positions against numpy's vectorised formula, its first row, an odd width, and its root
    mean square: exactly std (sin^2 + cos^2 = 1 per pair)."""
    table = sinusoidal_positions(512, 128, 0.02)
    t = np.arange(512, dtype=np.float64)[:, None]
    angle = t * np.power(10000.0, -2.0 * np.arange(64) / 128)[None, :]
    ref = np.zeros((512, 128))
    ref[:, 0::2], ref[:, 1::2] = np.sin(angle) * 0.02 * math.sqrt(2), np.cos(angle) * 0.02 * math.sqrt(2)
    odd = sinusoidal_positions(4, 5, 0.02)
    diff = float(np.abs(table - ref).max())
    rms = float(np.sqrt(np.mean(table.astype(np.float64) ** 2)))
    ok = (diff < 1e-8 and np.array_equal(table[0], np.tile(np.float32([0, 0.02 * math.sqrt(2)]), 64))
          and not odd[:, 4].any() and odd[:, :4].any() and abs(rms - 0.02) < 1e-6)
    print(json.dumps({"check": "sinusoidal_positions", "max_abs_diff": diff, "rms": rms, "ok": bool(ok)}))
    return [] if ok else ["sinusoidal positions"]


# ---------------------------------------------------------------------------------------------------
# Training
# ---------------------------------------------------------------------------------------------------

def write_model(model, vocab_path: Path, directory: Path) -> None:
    """save_pretrained (config.json, model.safetensors) + vocab.txt, files readable by all; for ELECTRA the
    discriminator there and the generator in generator/, as BertKit's ELECTRA checkpoints."""
    if isinstance(model, ElectraPair):
        write_model(model.disc, vocab_path, directory)
        write_model(model.gen, vocab_path, directory / "generator")
        return
    model.save_pretrained(str(directory), safe_serialization=True)
    shutil.copyfile(vocab_path, directory / "vocab.txt")
    for name in ("config.json", "model.safetensors", "vocab.txt"):
        os.chmod(directory / name, 0o644)


def save_model(model, vocab_path: Path, directory: Path) -> None:
    """write_model into a temporary sibling, then renamed to `directory`."""
    tmp = directory.with_name(directory.name + ".tmp")
    if tmp.exists():
        shutil.rmtree(tmp)
    write_model(model, vocab_path, tmp)
    if directory.exists():
        shutil.rmtree(directory)
    tmp.rename(directory)


def train(args) -> int:
    torch.set_num_threads(args.threads)
    try:
        torch.set_num_interop_threads(1)
    except RuntimeError:
        pass
    from transformers import BertForPreTraining
    import transformers

    transformers.utils.logging.disable_progress_bar()

    shards: Path = args.shards
    index_path, vocab_path = shards / "index.json", shards / "vocab.txt"
    if not index_path.is_file() or not vocab_path.is_file():
        raise UsageError(f"{shards}: not a shard directory (index.json and vocab.txt needed)")
    index = json.loads(index_path.read_text())
    params = index["parameters"]
    vocab = read_vocab(vocab_path)
    if hashlib.sha256(vocab_path.read_bytes()).hexdigest() != index["vocab_sha256"]:
        raise UsageError(f"{vocab_path}: not the vocabulary the shards were built with (sha256 differs from index.json)")
    if index["vocab_size"] != len(vocab):
        raise UsageError(f"{shards}: index.json says {index['vocab_size']} tokens, vocab.txt has {len(vocab)}")
    out: Path = args.output
    if out.exists() and any(out.iterdir()):
        if not args.overwrite:
            raise UsageError(f"{out}: exists and is not empty; give --overwrite to replace it")
        shutil.rmtree(out)
    config, config_name = resolve_config(args, vocab, params["max_seq_length"])
    masker = None
    if params.get("dynamic_masking"):
        try:
            masker = Masker(vocab, params["masked_lm_prob"], params["max_predictions_per_seq"], params["whole_word_mask"])
        except KeyError as e:
            raise UsageError(f"{index_path}: dynamic masking, but no parameter {e} to mask with")
        if not 0 < masker.masked_lm_prob <= 1 or masker.max_predictions < 1:
            raise UsageError(f"{index_path}: masked_lm_prob {masker.masked_lm_prob}, max_predictions_per_seq "
                             f"{masker.max_predictions}: nothing to mask with")

    bert = find_bert(args.bert)
    started = time.time()
    if args.replay:
        if not (args.init and args.max_steps):
            raise UsageError("--replay needs --init (the recorded run's step-00000001) and --max-steps (its updates)")
        log(f"replaying {args.replay}: BertKit's batches, masks and samples")
        data = Instances(np.zeros(1, np.uint16), np.array([0, 1]), np.zeros(1, np.int64), np.zeros(0, np.uint8),
                         np.zeros(0, np.int64), np.array([0, 0]), np.zeros(1, np.uint8))
        masker = None
    else:
        log(f"reading instances: {bert} inspect {shards} --json --limit 0")
        data = read_instances(bert, shards, len(vocab))
    if not args.replay and len(data) != index["total_instances"]:
        raise RuntimeError(f"read {len(data)} instances, index.json promises {index['total_instances']}")
    if len(data) == 0:
        raise RuntimeError(f"{shards}: no instances")
    if masker is not None and len(data.positions):
        raise RuntimeError(f"{shards}: index.json says dynamic masking, but inspect shows {len(data.positions)} stored masked positions")
    masking = (f"dynamic masking (masked_lm_prob {masker.masked_lm_prob}, max_predictions_per_seq {masker.max_predictions}, "
               f"whole words {'on' if masker.whole_word else 'off'})" if masker else f"{len(data.positions)} masked positions")
    log(f"{len(data)} instances, {len(data.ids)} tokens, {masking} "
        f"({time.time() - started:.1f}s, {(data.ids.nbytes + data.positions.nbytes * 2) / 2**20:.1f} MiB held)")
    if data.max_length > config.max_position_embeddings:
        raise RuntimeError(f"instances of up to {data.max_length} tokens, the model has {config.max_position_embeddings} positions")

    torch.manual_seed(args.seed)
    electra = args.objective == "electra"
    model = ElectraPair(config, args.generator_size) if electra else BertForPreTraining(config)
    sampler = torch.Generator().manual_seed(args.seed if args.sampler_seed is None else args.sampler_seed)
    if args.init:
        init_info = load_electra_init(model, args.init) if electra else load_init(model, args.init)
    else:
        init_info = None
    if args.sinusoidal_positions:
        if args.init:
            log("--sinusoidal-positions ignored: the position embeddings come from --init")
        else:
            table = sinusoidal_positions(config.max_position_embeddings, config.hidden_size, config.initializer_range)
            with torch.no_grad():
                (model.disc.electra if electra else model.bert).embeddings.position_embeddings.weight.copy_(torch.from_numpy(table))
    if not electra:
        check_ties(model)
    model.train()
    named = [(n, p) for n, p in model.named_parameters()]  # each tied tensor once
    n_params = sum(p.numel() for _, p in named)
    optimizer = BertAdamW(named, args.weight_decay, args.bias_correction)
    all_params = [p for _, p in named]

    batches_per_epoch = (index["total_instances"] + args.batch_size - 1) // args.batch_size
    updates_per_epoch = (batches_per_epoch + args.accumulate - 1) // args.accumulate
    total = updates_per_epoch * args.epochs
    if args.max_steps is not None:
        total = min(total, args.max_steps)
    warmup = args.warmup_steps if args.warmup_steps is not None else max(1, total // 10)
    log(f"torch_pretrain_control: {config_name} (L{config.num_hidden_layers} H{config.hidden_size} "
        f"A{config.num_attention_heads} I{config.intermediate_size}, {n_params / 1e6:.2f}M parameters), {len(data)} instances, "
        f"{total} updates (batch {args.batch_size} x {args.accumulate}), warm-up {warmup}, {args.threads} threads"
        f"{', grouped by length' if args.group_by_length else ''}"
        f"{', sinusoidal positions' if args.sinusoidal_positions and not args.init else ''}")

    out.mkdir(parents=True, exist_ok=True)
    settings = {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items()}
    if args.config or args.init:
        settings["model"] = None  # the preset's default does not apply
    control = {
        "settings": settings, "bert": bert, "config_source": config_name, "config": config.to_dict(),
        "instances": len(data), "total_steps": total, "warmup_steps": warmup, "parameters": n_params,
        "init": init_info, "attn_implementation": getattr(config, "_attn_implementation", None),
        "masking": {"dynamic": True, "masked_lm_prob": masker.masked_lm_prob, "max_predictions_per_seq": masker.max_predictions,
                    "whole_word_mask": masker.whole_word} if masker else {"dynamic": False},
        "group_window_batches": GROUP_WINDOW_BATCHES if args.group_by_length else 0,
        "sinusoidal_positions": bool(args.sinusoidal_positions and not args.init),
        "versions": {"torch": torch.__version__, "transformers": transformers.__version__, "numpy": np.__version__,
                     "python": platform.python_version()},
    }
    metrics = open(out / "metrics.jsonl", "w")
    step = 0
    window = dict(loss=0.0, mlm_sum=0.0, nsp_sum=0.0, mlm_correct=0, mlm_count=0, nsp_correct=0, nsp_count=0,
                  tokens=0, updates=0, norm=0.0)
    window_start = time.time()
    train_start = time.time()
    checked = False
    lengths = np.diff(data.id_offsets)

    def own_updates():
        """(epoch, micro-batches, whether the epoch ends with them), from this script's order and masks."""
        for epoch in range(args.epochs):
            order = np.random.default_rng([args.seed, epoch]).permutation(len(data))
            chunks = epoch_batches(order, lengths, args.batch_size, GROUP_WINDOW_BATCHES if args.group_by_length else 0,
                                   args.seed, epoch)
            mask_rng = np.random.default_rng([args.seed, epoch, MASK_STREAM]) if masker else None
            at = 0
            while at < len(chunks):
                micros = [make_batch(data, idx, masker, mask_rng) for idx in chunks[at:at + args.accumulate]]
                at += len(micros)
                yield epoch, micros, at >= len(chunks)

    def replayed_updates():
        for number, (recorded, micros) in enumerate(replay_updates(args.replay, args.accumulate), 1):
            if recorded != number:
                raise UsageError(f"{args.replay}: update {number} is recorded as step {recorded}")
            yield 0, micros, False

    recording = open(str(args.record_batches) + ".tmp", "w") if args.record_batches else None
    if args.dry_run and not args.record_batches:
        raise UsageError("--dry-run writes the batches to --record-batches FILE: give it")
    if args.dry_run:  # only the batches and masks, no model
        for epoch, micros, _ in own_updates():
            if step >= total:
                break
            step += 1
            for k, b in enumerate(micros):
                recording.write(record_line(step, k, b, None))
        recording.close()
        os.replace(str(args.record_batches) + ".tmp", args.record_batches)
        log(f"--dry-run: wrote {step} updates' batches to {args.record_batches}")
        return 0
    for epoch, micros, epoch_ends in (replayed_updates() if args.replay else own_updates()):
        if step >= total:
            break
        if not checked and not electra:
            check = check_gathered_loss(model, micros[0])
            control["first_batch_loss_check"] = check
            log(f"first batch, {check['instances']} instances, eval mode: gathered loss {check['gathered']:.6f}, transformers' loss "
                f"{check['transformers']:.6f}, |diff| {check['abs_diff']:.2e}")
            if not check["ok"]:
                raise RuntimeError("the gathered MLM loss differs from transformers' loss on the first batch")
            checked = True
        masked_in_update = sum(int(b["masked_labels"].numel()) for b in micros)
        sequences_in_update = sum(int(b["input_ids"].shape[0]) for b in micros)
        # the second loss is a mean over sequences (NSP) or, for electra, over real tokens (RTD)
        second_in_update = sum(int(b["attention_mask"].sum()) for b in micros) if electra else sequences_in_update
        for p in all_params:
            p.grad = None
        step_loss = 0.0
        for micro, b in enumerate(micros):
            o = forward_electra(model, b, sampler, args.discriminator_weight) if electra else forward(model, b)
            if recording:
                recording.write(record_line(step + 1, micro, b, o.get("samples")))
            mlm_share = 1.0 if len(micros) == 1 else o["mlm_count"] / max(1, masked_in_update)
            nsp_share = 1.0 if len(micros) == 1 else o["nsp_count"] / second_in_update
            loss = mlm_share * o["mlm"] + nsp_share * o["nsp"]
            if not torch.isfinite(loss):
                raise RuntimeError(f"non-finite loss at update {step + 1}")
            loss.backward()
            mlm_v, nsp_v = float(o["mlm"].detach()), float(o["nsp"].detach())
            step_loss += mlm_share * mlm_v + nsp_share * nsp_v
            window["mlm_sum"] += mlm_v * o["mlm_count"]
            window["nsp_sum"] += nsp_v * o["nsp_count"]
            window["mlm_correct"] += o["mlm_correct"]
            window["mlm_count"] += o["mlm_count"]
            window["nsp_correct"] += o["nsp_correct"]
            window["nsp_count"] += o["nsp_count"]
            window["tokens"] += int(b["attention_mask"].sum())
            if electra:
                for k in ("replaced", "detected", "sampled_original"):
                    window[k] = window.get(k, 0) + o[k]
        norm = clip_global_norm(all_params, args.max_grad_norm)
        lr = learning_rate(step, args.learning_rate, warmup, total)
        optimizer.step(lr)
        step += 1
        window["loss"] += step_loss
        window["updates"] += 1
        window["norm"] += norm
        if args.save_every_steps and step % args.save_every_steps == 0:
            save_model(model, vocab_path, out / f"step-{step:08d}")
        if step % args.log_every_steps == 0 or step == total:
            now = time.time()
            row = {
                "step": step, "epoch": epoch, "loss": window["loss"] / window["updates"],
                "mlm_loss": window["mlm_sum"] / max(1, window["mlm_count"]),
                "nsp_loss": window["nsp_sum"] / max(1, window["nsp_count"]),
                "mlm_accuracy": window["mlm_correct"] / max(1, window["mlm_count"]),
                "nsp_accuracy": window["nsp_correct"] / max(1, window["nsp_count"]),
                "learning_rate": lr, "gradient_norm": window["norm"] / window["updates"],
                "tokens_per_second": window["tokens"] / max(1e-9, now - window_start),
                "seconds": now - train_start,
            }
            if electra:  # the second loss is RTD (λ·BCE in the sums), its accuracy over real tokens
                row["rtd_loss"] = row.pop("nsp_loss") / args.discriminator_weight
                row["rtd_accuracy"] = row.pop("nsp_accuracy")
                row["rtd_recall"] = window.get("detected", 0) / max(1, window.get("replaced", 0))
                row["sampled_original"] = window.get("sampled_original", 0) / max(1, window["mlm_count"])
            metrics.write(json.dumps(row, sort_keys=True) + "\n")
            metrics.flush()
            log(f"step {step}/{total} epoch {epoch} loss {row['loss']:.4f} (mlm {row['mlm_loss']:.4f} "
                f"{'rtd' if electra else 'nsp'} {row.get('rtd_loss', row.get('nsp_loss')):.4f}) mlm acc {row['mlm_accuracy']:.3f} lr {lr:.3e} |g| {row['gradient_norm']:.3f} "
                f"{row['tokens_per_second']:.0f} tok/s")
            window = {k: 0 if isinstance(v, int) else 0.0 for k, v in window.items()}
            window_start = time.time()
        if epoch_ends and args.save_epochs:
            save_model(model, vocab_path, out / f"epoch-{epoch + 1:04d}")
    if args.replay and step < total:
        raise UsageError(f"{args.replay}: {step} updates recorded, --max-steps is {total}")
    if recording:
        recording.close()
        os.replace(str(args.record_batches) + ".tmp", args.record_batches)
    metrics.close()
    write_model(model, vocab_path, out)
    control["steps"] = step
    control["train_seconds"] = time.time() - train_start
    (out / "control.json").write_text(json.dumps(control, indent=2, sort_keys=True, default=str) + "\n")
    log(f"wrote {out} ({step} updates, {time.time() - train_start:.1f}s)")
    print(out)
    return 0


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--shards", type=Path, help="shard directory made by bert shards (index.json, shards, vocab.txt)")
    ap.add_argument("--output", type=Path, help="output directory: config.json, model.safetensors, vocab.txt, metrics.jsonl")
    ap.add_argument("--bert", help="the bert binary (default: $BERT, bert on PATH, .build/release/bert)")
    model = ap.add_mutually_exclusive_group()
    model.add_argument("--model", default="mini", help="BertKit preset: tiny, mini, small, medium, base (default: %(default)s)")
    model.add_argument("--config", type=Path, help="a Hugging Face BERT config.json instead of a preset")
    model.add_argument("--init", type=Path, help="start from this checkpoint directory's config.json and model.safetensors")
    ap.add_argument("--epochs", type=int, default=1)
    ap.add_argument("--batch-size", type=int, default=32)
    ap.add_argument("--accumulate", type=int, default=1, help="micro-batches per update (default: %(default)s)")
    ap.add_argument("--learning-rate", type=float, default=1e-4)
    ap.add_argument("--objective", choices=("mlm-nsp", "electra"), default="mlm-nsp",
                    help="BERT's MLM + NSP, or ELECTRA's replaced-token detection (as bert pretrain --objective)")
    ap.add_argument("--generator-size", type=float, default=0.25, help="ELECTRA's generator width fraction (default: %(default)s)")
    ap.add_argument("--discriminator-weight", type=float, default=50.0, help="ELECTRA's lambda (default: %(default)s)")
    ap.add_argument("--warmup-steps", type=int, help="warm-up updates (default: max(1, 10%% of all updates))")
    ap.add_argument("--weight-decay", type=float, default=0.01, help="not on biases and LayerNorm (default: %(default)s)")
    ap.add_argument("--bias-correction", action="store_true", help="Adam bias correction (torch.optim.AdamW's; BERT has none)")
    ap.add_argument("--max-grad-norm", type=float, default=1.0)
    ap.add_argument("--dropout", type=float, help="hidden and attention dropout (overrides the config)")
    ap.add_argument("--seed", type=int, default=42,
                    help="initialisation, dropout, data order and dynamic masks (default: %(default)s)")
    ap.add_argument("--sampler-seed", type=int, default=None,
                    help="with --objective electra: the seed of the generator's multinomial sampler (default: --seed, "
                         "which is also the stream of the initial weights without --init; another value "
                         "decouples the samples from the weights, docs/results/2026-12-06.md §14.4)")
    ap.add_argument("--group-by-length", action="store_true",
                    help="as bert pretrain's: windows of 64 batches sorted by length, batches in a seeded order")
    ap.add_argument("--sinusoidal-positions", action="store_true",
                    help="start the position embeddings as BertKit's scaled sinusoids (ignored with --init)")
    ap.add_argument("--max-steps", type=int, help="at most this many updates in all (the schedule decays to 0 there)")
    ap.add_argument("--log-every-steps", type=int, default=10)
    ap.add_argument("--threads", type=int, default=2, help="torch.set_num_threads (default: %(default)s)")
    ap.add_argument("--replay", type=Path,
                    help="train on the micro-batches of `bert pretrain --record-batches FILE` (its batches, masks and, for electra, "
                         "samples) instead of this script's own; needs --init and --max-steps")
    ap.add_argument("--record-batches", type=Path,
                    help="write every micro-batch (and, for electra, the samples) as `bert pretrain --record-batches` does")
    ap.add_argument("--dry-run", action="store_true",
                    help="with --record-batches: write this script's batches and masks (no samples) for --max-steps updates, train nothing")
    ap.add_argument("--save-every-steps", type=int, help="also write OUT/step-NNNNNNNN every N updates (model only)")
    ap.add_argument("--save-epochs", action="store_true", help="also write OUTPUT/epoch-NNNN after each complete epoch")
    ap.add_argument("--overwrite", action="store_true", help="replace a non-empty OUTPUT")
    ap.add_argument("--self-test", action="store_true",
                    help="check optimizer, schedule, clipping and loss against torch, masking, grouping, sinusoids; no data")
    args = ap.parse_args()
    try:
        if args.self_test:
            torch.set_num_threads(min(args.threads, 2))
            return self_test()
        if args.shards is None or args.output is None:
            raise UsageError("--shards and --output are required")
        for name in ("epochs", "batch_size", "accumulate", "log_every_steps", "threads"):
            if getattr(args, name) < 1:
                raise UsageError(f"--{name.replace('_', '-')} must be at least 1")
        if not args.learning_rate > 0:
            raise UsageError("--learning-rate must be positive")
        if args.seed < 0:
            raise UsageError("--seed must not be negative")
        if args.max_steps is not None and args.max_steps < 1:
            raise UsageError("--max-steps must be at least 1")
        if args.warmup_steps is not None and args.warmup_steps < 0:
            raise UsageError("--warmup-steps must not be negative")
        if not args.max_grad_norm > 0:
            raise UsageError("--max-grad-norm must be positive")
        if args.objective == "electra" and args.accumulate != 1:
            raise UsageError("--objective electra runs with --accumulate 1 here")
        if args.dropout is not None and not 0 <= args.dropout < 1:
            raise UsageError("--dropout must be in [0, 1)")
        if args.init is not None and not (args.init / "model.safetensors").is_file():
            raise UsageError(f"{args.init}: no model.safetensors")
        return train(args)
    except UsageError as e:
        log(f"torch_pretrain_control: {e}")
        return 2
    except RuntimeError as e:
        log(f"torch_pretrain_control: {e}")
        return 1


if __name__ == "__main__":
    sys.exit(main())
