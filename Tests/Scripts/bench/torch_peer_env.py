"""How bench.py runs its PyTorch peers (bench_torch_pretrain.py, bench_torch_predict.py): the process
environment that measures PyTorch as a careful user would tune it on this CPU, and a probe of what
torch then actually uses. Not a benchmark by itself; bench.py imports it.

Preloads (LD_PRELOAD, in this order, before any LD_PRELOAD already set):
  - libfakeintel.so, ONLY when /proc/cpuinfo's flags list avx512f: MKL takes its generic path on
    non-Intel CPUs; this shim makes MKL dispatch on the CPU's features, so torch's fp32 matrix products
    use MKL's AVX-512 kernels. Compiled with $CC (default cc) into .build/bench/libfakeintel.so from
    ../shared/bench/fakeintel.c when that exists, else from Tests/Scripts/bench/fakeintel.c (ours, the same
    two functions), at every run. On a CPU without AVX-512 there is no AVX-512
    path to unlock and it is not preloaded (the notes say so).
  - tcmalloc, when /usr/lib/x86_64-linux-gnu/libtcmalloc_minimal.so.4 exists (Debian/Ubuntu package
    libtcmalloc-minimal4, optional: `apt-get install libtcmalloc-minimal4`); torch's many short-lived
    tensors allocate faster with it than with glibc's malloc.

The probe runs the torch Python once with that environment plus MKL_VERBOSE=1 and ONEDNN_VERBOSE=1:
an fp32 matmul (MKL prints its version and the code path it dispatched to, e.g. "Intel(R) Advanced
Vector Extensions 512 (Intel(R) AVX-512) enabled processors", or "Intel(R) Architecture processors"
for its generic path), a tensor converted to oneDNN's layout (oneDNN prints its version and ISA), then
torch's ATen CPU capability, whether torch sends bf16 matrix products to oneDNN's bf16 kernels
(torch.ops.mkldnn._is_mkldnn_bf16_supported), and which of the preloaded libraries are really mapped
into the process (/proc/self/maps). `PeerEnv.summary` is the one line the table's notes carry.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import subprocess
from dataclasses import dataclass, field
from pathlib import Path

TCMALLOC = Path("/usr/lib/x86_64-linux-gnu/libtcmalloc_minimal.so.4")

PROBE = r"""
import json, os, sys
import torch
out = {"torch": torch.__version__}
a = torch.randn(128, 128)
torch.mm(a, a)                      # MKL sgemm: MKL_VERBOSE prints its version and code path
try:
    torch.randn(8, 8).to_mkldnn()   # a oneDNN reorder: ONEDNN_VERBOSE prints its version and ISA
except Exception as e:
    out["to_mkldnn_error"] = repr(e)
try:
    out["aten_capability"] = torch.backends.cpu.get_cpu_capability()
except Exception:
    out["aten_capability"] = None
try:
    out["mkldnn_bf16"] = bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())
except Exception:
    out["mkldnn_bf16"] = None
out["mkl_available"] = torch.backends.mkl.is_available()
out["mkldnn_available"] = torch.backends.mkldnn.is_available()
maps = open("/proc/self/maps").read()
out["mapped"] = sorted({line.split()[-1] for line in maps.splitlines()
                        if ("tcmalloc" in line or "fakeintel" in line) and "/" in line})
out["ld_preload"] = os.environ.get("LD_PRELOAD", "")
sys.stdout.flush()
print("PROBE " + json.dumps(out), flush=True)
"""


def cpu_flags() -> set[str]:
    try:
        for line in open("/proc/cpuinfo"):
            if line.startswith("flags"):
                return set(line.split(":", 1)[1].split())
    except OSError:
        pass
    return set()


def fakeintel_source(repo: Path) -> Path:
    shared = repo.parent / "shared" / "bench" / "fakeintel.c"
    return shared if shared.is_file() else Path(__file__).resolve().parent / "fakeintel.c"


def build_fakeintel(src: Path, build_dir: Path, cc: str = "cc") -> Path:
    """Compile src into build_dir/libfakeintel.so (every run: it takes a few milliseconds, and the
    source may have switched between ../shared and ours)."""
    build_dir.mkdir(parents=True, exist_ok=True)
    lib = build_dir / "libfakeintel.so"
    cc = shlex.split(cc)
    tmp = build_dir / f"libfakeintel.so.tmp-{os.getpid()}"
    p = subprocess.run(cc + ["-shared", "-fPIC", "-O2", "-o", str(tmp), str(src)],
                       stdout=subprocess.PIPE, stderr=subprocess.STDOUT, timeout=120)
    if p.returncode != 0:
        tmp.unlink(missing_ok=True)
        raise RuntimeError(f"{' '.join(cc)} failed ({p.returncode}): {p.stdout.decode(errors='replace')[-300:]}")
    tmp.replace(lib)
    return lib


@dataclass
class PeerEnv:
    env: dict
    preloads: list[str] = field(default_factory=list)  # what we put in LD_PRELOAD
    notes: list[str] = field(default_factory=list)       # why something is not preloaded
    probe: dict = field(default_factory=dict)

    def summary(self) -> str:
        """One line for the table: preloads (checked in /proc/self/maps) and torch's capability line."""
        names = [Path(p).name for p in self.preloads]
        mapped = {Path(p).name for p in self.probe.get("mapped", [])}
        pre = "LD_PRELOAD=" + (":".join(names) if names else "(nothing)")
        if self.probe and names:
            missing = [n for n in names if not any(m.startswith(n.split(".so")[0]) for m in mapped)]
            pre += " (NOT mapped: " + ", ".join(missing) + ")" if missing else " (mapped)"
        parts = [pre] + self.notes
        p = self.probe
        if p.get("error"):
            parts.append(f"torch probe failed: {p['error']}")
        elif p:
            bf16 = {True: "yes", False: "no (torch's bf16 matmuls run its own slower code)",
                    None: "unknown"}[p.get("mkldnn_bf16")]
            parts.append(f"torch {p.get('torch')}: ATen {p.get('aten_capability')}, "
                         f"{p.get('mkl_version') or 'MKL ?'} on \"{p.get('mkl_path') or 'code path not printed'}\", "
                         f"{p.get('onednn_version') or 'oneDNN ?'} ISA {p.get('onednn_isa') or '?'}, "
                         f"oneDNN bf16 kernels {bf16}")
        return "; ".join(parts)


def parse_probe(stdout: str) -> dict:
    out: dict = {}
    for line in stdout.splitlines():
        if line.startswith("PROBE "):
            out.update(json.loads(line[6:]))
        elif line.startswith("MKL_VERBOSE") and "mkl_version" not in out and "Product build" in line:
            m = re.match(r"MKL_VERBOSE (.*?) Product build .*? architecture (.*?), Lnx", line)
            out["mkl_version"], out["mkl_path"] = (m.group(1), m.group(2)) if m else (line[12:80], None)
        elif line.startswith("onednn_verbose") or line.startswith("dnnl_verbose"):
            if m := re.search(r"info,(oneDNN v[\w.]+)", line):
                out["onednn_version"] = m.group(1)
            if m := re.search(r"isa:([^,\n]+)", line):
                out["onednn_isa"] = m.group(1).strip()
    return out


def prepare(torch_python: str, base_env: dict, repo: Path, build_dir: Path | None = None,
            probe: bool = True) -> PeerEnv:
    """The environment for the PyTorch peers, and (probe=True) what torch does in it."""
    env = dict(base_env)
    preloads: list[str] = []
    notes: list[str] = []
    if "avx512f" in cpu_flags():
        src = fakeintel_source(repo)
        try:
            preloads.append(str(build_fakeintel(src, build_dir or repo / ".build" / "bench", env.get("CC") or "cc")))
            notes.append(f"fakeintel built from {os.path.relpath(src, repo)}")
        except Exception as e:  # noqa: BLE001 -- best effort: run torch without it, and say so
            notes.append(f"no fakeintel: its build failed: {e}")
    else:
        notes.append("no fakeintel: no avx512f in /proc/cpuinfo, so no MKL AVX-512 path to unlock")
    if TCMALLOC.exists():
        preloads.append(str(TCMALLOC))
    else:
        notes.append(f"no tcmalloc: no {TCMALLOC} (optional package libtcmalloc-minimal4)")
    if preloads:
        env["LD_PRELOAD"] = ":".join(preloads + ([env["LD_PRELOAD"]] if env.get("LD_PRELOAD") else []))
    pe = PeerEnv(env, preloads, notes)
    if probe:
        penv = dict(env, MKL_VERBOSE="1", ONEDNN_VERBOSE="1")
        try:
            p = subprocess.run([torch_python, "-c", PROBE], env=penv, stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE, timeout=300)
            pe.probe = parse_probe(p.stdout.decode(errors="replace"))
            if p.returncode != 0 or "torch" not in pe.probe:
                pe.probe = {"error": f"exit status {p.returncode}: "
                                     f"{p.stderr.decode(errors='replace').strip().splitlines()[-1:]}"}
        except Exception as e:  # noqa: BLE001
            pe.probe = {"error": repr(e)}
    return pe


if __name__ == "__main__":  # a look at what bench.py would use: python torch_peer_env.py TORCH_PYTHON
    import sys
    pe = prepare(sys.argv[1] if len(sys.argv) > 1 else sys.executable, dict(os.environ),
                 Path(__file__).resolve().parents[3])
    print(json.dumps({"LD_PRELOAD": pe.env.get("LD_PRELOAD"), "probe": pe.probe}, indent=1))
    print(pe.summary())
