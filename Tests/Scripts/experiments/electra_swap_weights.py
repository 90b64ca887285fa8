"""Put another run's ELECTRA weights into a BertKit ELECTRA checkpoint, so that `bert pretrain --resume`
trains BertKit's trainer from them (issue 26's mirror experiment: BertKit from the PyTorch control's
initial weights; `bert pretrain --objective electra` refuses `--init`).

    python3 Tests/Scripts/experiments/electra_swap_weights.py SOURCE CHECKPOINT [--only PREFIX ...]

SOURCE is a directory with model.safetensors (the discriminator) and generator/model.safetensors, in
BertKit's ELECTRA layout: a BertKit checkpoint or `torch_pretrain_control.py --max-steps 1`'s output.
CHECKPOINT is a step directory of a BertKit run (`bert pretrain --objective electra --save-every-steps 1
--stop-after-steps 1`, with the run's final --max-steps). Every tensor of CHECKPOINT's two files is
overwritten in place with SOURCE's tensor of the same name and shape; the generator's output matrix
`generator_lm_head.weight`, tied to the shared word embeddings (PyTorch writes it once), is set to SOURCE's
generator word embeddings. The optimizer's moments are kept (one update's at a learning rate of
lr/warm-up: negligible). `--only` limits the swap to tensors whose name starts with one of the prefixes
(to find which tensors matter). Needs numpy only.
"""
import argparse
import json
import os
import struct
import sys

import numpy as np


def read(path):
    """(header, data bytes offset, {name: float32 array}) of a safetensors file."""
    with open(path, "rb") as f:
        n = struct.unpack("<Q", f.read(8))[0]
        header = json.loads(f.read(n))
        data = f.read()
    tensors = {}
    for name, info in header.items():
        if name == "__metadata__":
            continue
        if info["dtype"] != "F32":
            sys.exit(f"{path}: {name} is {info['dtype']}; only F32 files are handled")
        a, b = info["data_offsets"]
        tensors[name] = np.frombuffer(data[a:b], dtype=np.float32).reshape(info["shape"])
    return header, 8 + n, tensors


def swap(source_file, target_file, only, tied=None):
    _, _, source = read(source_file)
    header, base, target = read(target_file)
    if tied is not None:
        source = dict(source)
        source.setdefault(tied[0], source[tied[1]])
    missing = [k for k in target if k not in source]
    if missing:
        sys.exit(f"{source_file}: lacks {', '.join(missing)}")
    swapped = 0
    with open(target_file + ".tmp", "wb") as out, open(target_file, "rb") as f:
        out.write(f.read())
        for name, info in header.items():
            if name == "__metadata__" or (only and not any(name.startswith(p) for p in only)):
                continue
            if source[name].shape != target[name].shape:
                sys.exit(f"{source_file}: {name} has shape {source[name].shape}, {target_file} {target[name].shape}")
            out.seek(base + info["data_offsets"][0])
            out.write(np.ascontiguousarray(source[name], dtype=np.float32).tobytes())
            swapped += 1
    os.replace(target_file + ".tmp", target_file)
    return swapped, len(target)


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("source")
    p.add_argument("checkpoint")
    p.add_argument("--only", nargs="*", default=[])
    a = p.parse_args()
    for sub, tied in [("", None), ("generator", ("generator_lm_head.weight", "electra.embeddings.word_embeddings.weight"))]:
        n, total = swap(os.path.join(a.source, sub, "model.safetensors"), os.path.join(a.checkpoint, sub, "model.safetensors"), a.only, tied)
        print(f"{os.path.join(a.checkpoint, sub, 'model.safetensors')}: {n} of {total} tensors from {a.source}")


if __name__ == "__main__":
    main()
