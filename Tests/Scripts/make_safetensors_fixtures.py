#!/usr/bin/env python3
"""Write the safetensors fixtures for `SafetensorsTests` with the Python `safetensors` library.

Writes, under Tests/Fixtures/safetensors/:

- `python_mixed.safetensors`: one tensor of every dtype the Swift reader supports, written by
  `safetensors.torch.save_file(TENSORS, path, metadata={"format": "pt"})` (what transformers'
  `save_pretrained` passes). The values are the literals below; the Swift test repeats them.
- `python_plain.safetensors`: the four dtypes the Swift writer has typed initialisers for
  (F32, F64, I64, I32), written with `metadata=None` (no `__metadata__` entry).

Usage (from the repository root, with a venv made from Tests/Scripts/requirements-model.txt):

    /work/venv-torch/bin/python Tests/Scripts/make_safetensors_fixtures.py

The files are small and committed; the Swift tests never run Python.
"""

from __future__ import annotations

import math
from pathlib import Path

import safetensors
import torch
from safetensors.torch import save_file

OUT = Path(__file__).resolve().parents[1] / "Fixtures" / "safetensors"


def mixed() -> dict[str, torch.Tensor]:
    return {
        "f32.matrix": torch.tensor([[1.5, -2.25, 3.0], [0.1, 1e-30, -0.0]], dtype=torch.float32),
        "f32.scalar": torch.tensor(7.25, dtype=torch.float32),  # shape []
        "f32.empty": torch.zeros((0, 3), dtype=torch.float32),  # shape [0, 3], no bytes
        "f64.vector": torch.tensor([math.pi, -1e300, 2.0 ** -1074], dtype=torch.float64),
        # 6.0e-8 rounds to the smallest F16 subnormal 2^-24; 65504 is F16's largest finite value.
        "f16.vector": torch.tensor([1.0, -0.5, 6.0e-8, 65504.0, float("inf"), 0.333251953125], dtype=torch.float16),
        "bf16.vector": torch.tensor([1.0, -3.140625, 1e38, float("-inf")], dtype=torch.bfloat16),
        "i64.matrix": torch.tensor([[0, -1], [2**62, -(2**63)]], dtype=torch.int64),
        "i32.vector": torch.tensor([2**31 - 1, -(2**31), 5, -100], dtype=torch.int32),
        "i16.vector": torch.tensor([-32768, 32767], dtype=torch.int16),
        "i8.vector": torch.tensor([-128, 127, 0], dtype=torch.int8),
        "u8.vector": torch.tensor([0, 255, 17], dtype=torch.uint8),
        "bool.vector": torch.tensor([True, False, True], dtype=torch.bool),
    }


def plain() -> dict[str, torch.Tensor]:
    return {
        "weight": torch.arange(12, dtype=torch.float32).reshape(3, 4) / 8,
        "bias": torch.tensor([0.5, -0.25, 1e-3], dtype=torch.float64),
        "ids": torch.tensor([[101, 2023, 102], [101, 0, 102]], dtype=torch.int64),
        "count": torch.tensor([3], dtype=torch.int32),
    }


def main() -> None:
    OUT.mkdir(parents=True, exist_ok=True)
    save_file(mixed(), str(OUT / "python_mixed.safetensors"), metadata={"format": "pt"})
    save_file(plain(), str(OUT / "python_plain.safetensors"))
    print(f"wrote {OUT} with safetensors {safetensors.__version__}, torch {torch.__version__}")


if __name__ == "__main__":
    main()
