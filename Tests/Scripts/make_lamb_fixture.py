#!/usr/bin/env python3
"""LAMB fixture for Tests/TrainingTests/LAMBTests.swift (Tests/Fixtures/optimizer/lamb.safetensors).

The reference is NVIDIA's BERT optimizer: apex's FusedLAMB with use_nvlamb=False, as
NVIDIA/DeepLearningExamples' PyTorch run_pretraining.py builds it (betas 0.9/0.999, eps 1e-6, weight
decay 0.01 except biases and LayerNorm, bias correction on, grad averaging on), written out in PyTorch
float64 from apex's multi_tensor_lamb kernel:

    m = b1 m + (1 - b1) g;  v = b2 v + (1 - b2) g^2
    u = (m / (1 - b1^t)) / (sqrt(v / (1 - b2^t)) + eps) + wd p
    r = ||p|| / ||u|| when wd != 0 and both norms > 0, else 1   (use_nvlamb=False: no ratio for wd = 0)
    p = p - lr r u

(FusedLAMB's own max_grad_norm clipping is the trainer's global-norm clipping in BertKit, and is not
part of the optimizer step here.)

The written-out code is first checked against an independent implementation, torch_optimizer.Lamb
(jettify/pytorch-optimizer), where the two define the same algorithm: no bias correction (debias=False),
weight decay and trust ratio on every tensor, no clamp. Then the fixture is made with NVIDIA's settings:
four tensors (a decayed matrix, a decayed vector, a no-decay bias, and a decayed tensor that starts at
zero, whose ratio is 1), six steps with given gradients and learning rates.

Usage: python3 Tests/Scripts/make_lamb_fixture.py OUT.safetensors   (needs torch, torch-optimizer, safetensors)
"""
import math
import sys

import torch
from safetensors.torch import save_file

torch.manual_seed(0)
B1, B2, EPS, WD = 0.9, 0.999, 1e-6, 0.01


def nvidia_lamb_step(params, grads, state, lr, decays, bias_correction=True):
    state["t"] += 1
    t = state["t"]
    ratios = []
    for i, (p, g) in enumerate(zip(params, grads)):
        m, v = state["m"][i], state["v"][i]
        m.mul_(B1).add_(g, alpha=1 - B1)
        v.mul_(B2).addcmul_(g, g, value=1 - B2)
        c1 = 1 - B1 ** t if bias_correction else 1.0
        c2 = 1 - B2 ** t if bias_correction else 1.0
        wd = WD if decays[i] else 0.0
        u = (m / c1) / ((v / c2).sqrt() + EPS) + wd * p
        pn, un = p.norm().item(), u.norm().item()
        r = pn / un if wd != 0 and pn > 0 and un > 0 else 1.0
        ratios.append(r)
        p.sub_(lr * r * u)
    return ratios


def new_state(params):
    return {"t": 0, "m": [torch.zeros_like(p) for p in params], "v": [torch.zeros_like(p) for p in params]}


shapes = [(5, 7), (7,), (7,), (3, 4)]
decays = [True, True, False, True]
init = [torch.randn(s, dtype=torch.float64) * 0.5 for s in shapes]
init[3].zero_()  # a decayed tensor at zero: ||p|| = 0, ratio 1
steps = 6
grads = [[torch.randn(s, dtype=torch.float64) * 0.1 for s in shapes] for _ in range(steps)]
lrs = [1e-2 * (k + 1) / steps for k in range(steps)]

# 1. The written-out LAMB against torch_optimizer.Lamb where both define the same algorithm.
import torch_optimizer

ours = [p.clone() for p in init[:3]]
theirs = [torch.nn.Parameter(p.clone()) for p in init[:3]]
opt = torch_optimizer.Lamb(theirs, lr=1.0, betas=(B1, B2), eps=EPS, weight_decay=WD, clamp_value=1e30, debias=False)
state = new_state(ours)
for k in range(steps):
    nvidia_lamb_step(ours, grads[k][:3], state, lrs[k], [True] * 3, bias_correction=False)
    for group in opt.param_groups:
        group["lr"] = lrs[k]
    for p, g in zip(theirs, grads[k][:3]):
        p.grad = g.clone()
    opt.step()
worst = max((a - b.detach()).abs().max().item() for a, b in zip(ours, theirs))
assert worst < 1e-12, f"written-out LAMB differs from torch_optimizer.Lamb by {worst}"
print(f"written-out LAMB = torch_optimizer.Lamb (no bias correction, all decayed): max difference {worst:.2e}")

# 2. The fixture, with NVIDIA's settings.
params = [p.clone() for p in init]
state = new_state(params)
tensors = {}
for i, p in enumerate(init):
    tensors[f"init.{i}"] = p.clone()
for k in range(steps):
    ratios = nvidia_lamb_step(params, grads[k], state, lrs[k], decays)
    for i in range(len(shapes)):
        tensors[f"grad.{k}.{i}"] = grads[k][i].clone()
        tensors[f"param.{k}.{i}"] = params[i].clone()
    tensors[f"ratio.{k}"] = torch.tensor(ratios, dtype=torch.float64)
for i in range(len(shapes)):
    tensors[f"exp_avg.{i}"] = state["m"][i].clone()
    tensors[f"exp_avg_sq.{i}"] = state["v"][i].clone()
tensors["lr"] = torch.tensor(lrs, dtype=torch.float64)
tensors["decay"] = torch.tensor([1.0 if d else 0.0 for d in decays], dtype=torch.float64)
save_file({k: v.contiguous() for k, v in tensors.items()}, sys.argv[1],
          metadata={"reference": "apex FusedLAMB (use_nvlamb=False), written out in float64; checked against torch_optimizer.Lamb",
                    "torch": torch.__version__, "torch_optimizer": torch_optimizer.__version__})
print(f"wrote {sys.argv[1]}: {len(shapes)} tensors, {steps} steps; ratios of the last step {ratios}")
