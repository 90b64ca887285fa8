#!/usr/bin/env python3
"""`make bench`: one markdown table, every row measured in this run, with a ratio against a peer
where there is one (Hugging Face `tokenizers`; PyTorch transformers for the training and predict rows,
best-effort, when --torch-python / $TORCH_PYTHON names a Python with torch and transformers). The same
rows go to --json-out (default out/bench.json).

Rows:
  1. Tokenizer, 1 thread: `BIN tokenize --vocab V --ids --threads 1 < corpus.txt > /dev/null`, best of 3
     wall times (the corpus is decompressed to a temp file first). MB/s = raw input bytes / 1e6 / s;
     tokens/s uses the number of ids ours prints ([CLS]/[SEP] included), counted once from a run
     writing to a file. Peer: `BertWordPieceTokenizer(V, lowercase=True).encode_batch(lines)` in a
     subprocess with RAYON_NUM_THREADS=1, best of 2, file reading and decoding not timed
     (bench_hf_tokenizer.py --worker). Ratio: our MB/s / HF MB/s.
  2. Tokenizer, N threads (--threads, default 2): the same with `--threads N` / RAYON_NUM_THREADS=N,
     then our scaling (N-thread MB/s / 1-thread MB/s) as its own row, HF's scaling beside it.
  3. Start-up: `printf 'hello\\n' | BIN tokenize --vocab V --ids`, best of 5: the fixed cost inside 1-2.
  4. Vocabulary training, uncased, --size 30000: `BIN vocab --input FILE --size 30000 --output TMP`,
     best of 2, vs `BertWordPieceTokenizer(lowercase=True).train([FILE], vocab_size=30000)` with the
     trainer's defaults in a subprocess (all threads), best of 2; ratio of wall times. Then quality:
     vocab_compare.py (both trained on 9/10 of the documents) gives WordPiece tokens per whitespace
     word on the held-out 1/10; ratio ours/HF, target <= 1.02.
  6. Shards: `BIN shards --input corpus --vocab V --output TMP --threads N` with the defaults, one fresh
     output (and tokenized cache) per run, best of 5: MB/s of raw text to finished shards, peak RSS;
     then the same on 4 copies of the corpus concatenated (peak RSS must stay flat). No peer: the
     reference (google-research/bert's create_pretraining_data.py) needs TensorFlow.
  7. Training (group `training`): `BIN benchmark-train --model P --threads N` for tiny, mini, small
     (--presets; batch 32, seq 128, 20 masked positions per sequence, vocabulary 30522): tokens/s of
     whole steps (forward, backward, clipping, AdamW), useful GFLOP/s (standard BERT with MLM at the
     masked positions) and executed GFLOP/s (minus the pruned rows of the last layer), each as a share
     of the sgemm peak measured in the same process; beside PyTorch transformers (bench_torch_pretrain.py:
     stock BertForPreTraining and a tuned variant with MLM logits only at masked positions) when
     --torch-python (or $TORCH_PYTHON) has torch. Then each preset again with `--precision bf16`: ratio
     to PyTorch's tuned step under torch.autocast("cpu", bfloat16) with fp32 weights and AdamW
     (bench_torch_pretrain.py's bf16 variant), to our fp32, and share of the bf16 peak; on a CPU without
     bf16 units bert refuses it (exit 2): the row reads "not measured" with bert's reason and still
     gives PyTorch's bf16 tokens/s. Where torch has no oneDNN bf16 kernels (its bf16 step is then
     several times slower than its fp32) the bf16 variant runs 1 warm-up and 3 timed steps (2 with
     --quick).
  7b. ELECTRA (group `electra`): `BIN benchmark-train --objective electra --model P` (generator at 1/4
     of the width, λ 50, same batches) beside bench_torch_pretrain.py's electra variant (transformers'
     ElectraForMaskedLM + ElectraForPreTraining sharing their embeddings, head at the masked rows,
     torch.multinomial samples); the notes give our ELECTRA step's cost in our MLM + NSP steps, same run.
  8. Predict (group `predict`): `BIN predict --checkpoint C --input FILE --threads N --precision P
     --batch-size 32 --max-seq-length 128` for each preset, fp32 and bf16 (bf16 refused with exit 2
     on a CPU without bf16 units: "not measured", PyTorch's figure still given). C is a randomly
     initialised classifier of the preset's shape made in the run by `bert finetune --from-scratch
     --config P --vocab V --epochs 1` on a 16-row TSV (14 train, 2 dev; no pre-training checkpoint
     needed; the weights do not change the speed). FILE: the corpus's first --predict-rows non-empty
     lines (default 2048, 512 with --quick) as JSONL {"text": line}. sentences/s = (rows − rows/4) /
     (wall(rows) − wall(rows/4)), each wall the best of 3 runs (2 with --quick): process start-up and
     checkpoint load cancel out; the row also gives rows / wall(rows) with start-up included and the
     start-up estimate. Peer (bench_torch_predict.py): transformers' BertForSequenceClassification and
     BertTokenizerFast loaded from C (HF format), torch.inference_mode(), same rows, batch 32, max length
     128, padding to each batch's longest (as bert predict), tokenization timed, model load not, best
     of 3 in-process passes (1 with --quick); bf16 = the forward under torch.autocast("cpu", bfloat16),
     on the first rows/8 rows where torch has no bf16 kernels. Its probabilities are compared with ours
     (labels agreeing, max |Δp|) as a check that both did the same work.

     The PyTorch peers run with LD_PRELOAD set by torch_peer_env.py: tcmalloc
     (/usr/lib/x86_64-linux-gnu/libtcmalloc_minimal.so.4, optional package libtcmalloc-minimal4) when
     present, and, only when /proc/cpuinfo lists avx512f, libfakeintel.so (built into .build/bench/ from
     ../shared/bench/fakeintel.c, else Tests/Scripts/bench/fakeintel.c), which puts MKL on its AVX-512 path on
     non-Intel CPUs. A probe run of torch with MKL_VERBOSE/ONEDNN_VERBOSE gives the capability line
     every PyTorch row's notes carry (and printed under the table): the preloads found mapped in
     /proc/self/maps, what is not preloaded and why, ATen's CPU capability, MKL's dispatched code path,
     oneDNN's ISA and whether torch uses oneDNN's bf16 kernels. Each PyTorch row also gives its CPU/wall.
  5. Bounded memory: peak RSS (GNU `/usr/bin/time -f %M`; without it os.wait4's ru_maxrss, an upper
     bound that includes this Python process's RSS at spawn) and throughput of
     `BIN tokenize --vocab V --ids` fed a --long-line-bytes stream (default 1 GiB) of "word " with NO
     newline from a writer thread, stdout to /dev/null; and the peak RSS of the same command on the
     corpus, to show memory does not grow with the input.

--quick: the first 2 MB of the corpus (cut at a line end), a 64 MiB long line, one run of each (two
for the predict walls), fewer training steps and predict rows.
--only GROUP[,GROUP]: tokenize, vocab, memory, shards, training, predict. --presets tiny[,mini,small]:
the presets of the training and predict rows.
The load average (/proc/loadavg) is read at the start and the end and printed under the table: this
machine may be shared, and CPU seconds / wall seconds shows whether threads really ran in parallel.
Progress and errors go to stderr; exit status 1 when a measurement failed (its row says FAILED),
or with --strict when the vocabulary quality target is missed.

Usage (from the repository root; `make bench` runs it with OPENBLAS_CORETYPE unset):

    .venv/bin/python Tests/Scripts/bench/bench.py --bert .build/release/bert \\
        --vocab Tests/Fixtures/tokenizer/bert-base-uncased-vocab.txt \\
        --input ../shared/data/corpus_en.txt.zst --threads 2 [--quick] [--long-line-bytes N] \\
        [--only training,predict] [--presets tiny] [--predict-rows N] [--torch-python /path/to/python]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import threading
import time
import traceback
from dataclasses import dataclass
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
# corpus_io from Tests/Scripts/lib/, vocab_compare (`make vocab-quality`, also run below) from checks/.
sys.path.insert(0, str(HERE.parent / "lib"))
sys.path.insert(0, str(HERE.parent / "checks"))
import torch_peer_env  # noqa: E402
from corpus_io import read_bytes, split_lines  # noqa: E402
from vocab_compare import bert_command  # noqa: E402

import tokenizers  # noqa: E402

QUICK_CORPUS_BYTES = 2_000_000
QUICK_LONG_LINE_BYTES = 64 << 20
MAX_RATIO = 1.02
REPO = HERE.parents[2]
PRESETS = ("tiny", "mini", "small")
KNOWN_PRESETS = PRESETS + ("minilm",)  # minilm: MiniLM-L6-H384, the shape continued pre-training meets; not run by default
GROUPS = ("tokenize", "vocab", "memory", "shards", "training", "electra", "predict")
PREDICT_ROWS, QUICK_PREDICT_ROWS = 2048, 512  # the small input of the difference is a quarter of these
PREDICT_BATCH, PREDICT_MAX_LENGTH = 32, 128


class BenchError(Exception):
    pass


def log(msg: str) -> None:
    print(f"[bench] {msg}", file=sys.stderr, flush=True)


def loadavg() -> str:
    try:
        return Path("/proc/loadavg").read_text().strip()
    except OSError:
        return " ".join(f"{x:.2f}" for x in os.getloadavg())


def load1() -> float:
    return round(os.getloadavg()[0], 2)


def child_env(**overrides: str) -> dict:
    """The environment for timed children: no OPENBLAS_CORETYPE, no inherited RAYON_NUM_THREADS."""
    env = {k: v for k, v in os.environ.items() if k not in ("OPENBLAS_CORETYPE", "RAYON_NUM_THREADS")}
    env.update(overrides)
    return env


def probe_gnu_time() -> str | None:
    """/usr/bin/time if it is GNU time and `-f %M -o FILE` works, else None."""
    path = "/usr/bin/time"
    if not os.access(path, os.X_OK):
        return None
    with tempfile.NamedTemporaryFile() as f:
        try:
            p = subprocess.run([path, "-f", "%M", "-o", f.name, "true"], stdout=subprocess.DEVNULL,
                               stderr=subprocess.DEVNULL, timeout=30)
            return path if p.returncode == 0 and f.read().decode().strip().splitlines()[-1].isdigit() else None
        except Exception:  # noqa: BLE001
            return None


GNU_TIME = probe_gnu_time()
RSS_SOURCE = ("GNU /usr/bin/time -f %M (bert forked from time, not from this Python process)" if GNU_TIME else
              "os.wait4 ru_maxrss: an UPPER BOUND, it includes this Python process's RSS at spawn "
              "(ru_maxrss survives exec; no /usr/bin/time here)")


@dataclass
class Measure:
    wall: float
    cpu: float  # user + system seconds of the child (all its threads)
    maxrss_mib: float  # the child's peak RSS (see RSS_SOURCE)
    rc: int
    stderr: str
    feed_error: str | None = None


def run_measured(cmd: list[str], *, stdin=None, stdout=subprocess.DEVNULL, feed=None, env=None) -> Measure:
    """Run cmd; wall time from spawn to exit, CPU time from os.wait4. Peak RSS from GNU time when there
    is one: a child spawned straight from Python inherits Python's RSS high-water mark in ru_maxrss
    (it is kept across exec), and RUSAGE_CHILDREN's ru_maxrss is a maximum over all children, so
    neither gives bert's own peak. `feed`: an iterable of byte chunks written to its stdin from a
    thread (then stdin is closed)."""
    errf = tempfile.TemporaryFile()
    rssf = tempfile.NamedTemporaryFile(prefix="rss-") if GNU_TIME else None
    feed_error: list[str] = []

    def writer(pipe, chunks):
        try:
            for chunk in chunks:
                pipe.write(chunk)
        except BrokenPipeError:
            feed_error.append("stdin closed by bert before the input was all written (broken pipe)")
        except Exception as e:  # noqa: BLE001
            feed_error.append(f"writer thread: {e!r}")
        finally:
            try:
                pipe.close()
            except BrokenPipeError:
                pass

    full = [GNU_TIME, "-f", "%M", "-o", rssf.name] + cmd if rssf else cmd
    t0 = time.perf_counter()
    proc = subprocess.Popen(full, stdin=subprocess.PIPE if feed is not None else stdin, stdout=stdout,
                            stderr=errf, env=env or child_env(), bufsize=0)
    thread = None
    if feed is not None:
        thread = threading.Thread(target=writer, args=(proc.stdin, feed), daemon=True)
        thread.start()
    _, status, ru = os.wait4(proc.pid, 0)
    wall = time.perf_counter() - t0
    proc.returncode = os.waitstatus_to_exitcode(status)
    if thread is not None:
        thread.join()
    errf.seek(0)
    stderr = errf.read().decode("utf-8", errors="replace")
    errf.close()
    maxrss_kib = ru.ru_maxrss
    if rssf:
        text = rssf.read().decode("utf-8", errors="replace").strip()
        rssf.close()
        last = text.splitlines()[-1] if text else ""
        if last.isdigit():
            maxrss_kib = int(last)
        else:
            stderr += f"\n/usr/bin/time: {text}"
            if proc.returncode == 0:
                raise BenchError(f"{cmd[0]}: could not read peak RSS from /usr/bin/time: {text!r}")
    return Measure(wall, ru.ru_utime + ru.ru_stime, maxrss_kib / 1024, proc.returncode, stderr,
                   feed_error[0] if feed_error else None)


def check(m: Measure, what: str) -> Measure:
    if m.rc != 0 or m.feed_error:
        why = f"exit status {m.rc}" if m.rc != 0 else m.feed_error
        if m.rc < 0:
            why += f" (killed by signal {-m.rc})"
        raise BenchError(f"{what}: {why}\n{m.stderr[-2000:]}".rstrip())
    return m


def best_of(n: int, fn) -> tuple[Measure, list[Measure]]:
    runs = [fn() for _ in range(max(1, n))]
    return min(runs, key=lambda m: m.wall), runs


def run_json(cmd: list[str], what: str, env: dict) -> dict:
    """Run a Python helper that prints one JSON object as its last stdout line."""
    proc = subprocess.run(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    out = proc.stdout.decode("utf-8", errors="replace")
    if proc.returncode != 0:
        raise BenchError(f"{what}: exit status {proc.returncode}\n{out[-1500:]}"
                         f"{proc.stderr.decode('utf-8', errors='replace')[-2000:]}".rstrip())
    last = [line for line in out.splitlines() if line.startswith("{")]
    if not last:
        raise BenchError(f"{what}: no JSON in its output\n{out[-1500:]}")
    return json.loads(last[-1])


# ----------------------------------------------------------------------------------------------------
# formatting

def fmt_s(s: float) -> str:
    return f"{s * 1000:.1f} ms" if s < 1 else f"{s:.2f} s"


def fmt_rate(mb_s: float, tok_s: float | None = None) -> str:
    out = f"{mb_s:.2f} MB/s"
    if tok_s is not None:
        out += f", {tok_s / 1e6:.2f} M tok/s"
    return out


def cell(text) -> str:
    return "—" if text is None or text == "" else str(text).replace("|", "\\|").replace("\n", " ")


class Table:
    def __init__(self):
        self.rows: list[dict] = []
        self.failed: list[str] = []

    def add(self, name: str, ours, peer=None, ratio=None, notes="", **data) -> dict:
        row = {"benchmark": name, "ours": ours, "peer": peer, "ratio": ratio, "notes": notes,
               "load_1min": load1(), **data}
        self.rows.append(row)
        return row

    def fail(self, name: str, err: Exception) -> None:
        lines = [line for line in str(err).splitlines() if line.strip()] or [repr(err)]
        msg = lines[0] + (f" — {lines[-1].strip()}" if len(lines) > 1 else "")
        self.failed.append(name)
        log(f"FAILED: {name}: {err}")
        if not isinstance(err, BenchError):
            traceback.print_exc(file=sys.stderr)
        self.add(name, "FAILED", None, None, msg[:300], error=str(err))

    def markdown(self, peer_name: str) -> str:
        lines = [f"| # | Benchmark | Ours (bert) | Peer ({peer_name}) | Ours/peer | Notes |",
                 "|---|---|---|---|---|---|"]
        for i, r in enumerate(self.rows, 1):
            lines.append(f"| {i} | {cell(r['benchmark'])} | {cell(r['ours'])} | {cell(r['peer'])} | "
                         f"{cell(r['ratio'])} | {cell(r['notes'])} |")
        return "\n".join(lines)


# ----------------------------------------------------------------------------------------------------
# benchmarks

class Bench:
    def __init__(self, args, work: Path):
        self.args = args
        self.work = work
        self.bert = bert_command(args.bert)
        self.vocab = args.vocab
        self.table = Table()
        self.quick = args.quick
        self.reps = (lambda n: 1) if args.quick else (lambda n: n)
        self.tok1: dict | None = None
        self.tokn: dict | None = None
        self.quality_ok = True
        self.presets = args.presets
        self._peer_env: torch_peer_env.PeerEnv | None = None
        self.torch_versions: dict = {}

    def peer_env(self) -> torch_peer_env.PeerEnv:
        """The PyTorch peers' environment (preloads) and the probe of torch in it, made once per run."""
        if self._peer_env is None:
            log("PyTorch peers: preloads and a probe of torch's MKL/oneDNN")
            self._peer_env = torch_peer_env.prepare(self.args.torch_python, child_env(), REPO)
            log(f"PyTorch peers: {self._peer_env.summary()}")
        return self._peer_env

    # -- input ---------------------------------------------------------------------------------------
    def prepare_corpus(self) -> None:
        raw = read_bytes(self.args.input)
        if self.quick:
            cut = raw.rfind(b"\n", 0, QUICK_CORPUS_BYTES)
            raw = raw[:cut + 1] if cut >= 0 else raw[:QUICK_CORPUS_BYTES]
        self.corpus = self.work / "corpus.txt"
        self.corpus.write_bytes(raw)
        self.corpus_bytes = len(raw)
        self.corpus_lines = len(split_lines(raw))
        label = Path(self.args.input).name
        self.corpus_label = f"{label}{' (first 2 MB)' if self.quick else ''}, {self.corpus_bytes / 1e6:.1f} MB"
        log(f"corpus {self.args.input} -> {self.corpus}: {self.corpus_bytes} bytes, {self.corpus_lines} lines")

    def tokenize_cmd(self, threads: int | None) -> list[str]:
        cmd = self.bert + ["tokenize", "--vocab", self.vocab, "--ids"]
        return cmd + (["--threads", str(threads)] if threads else [])

    def count_ids(self, threads: int) -> int:
        out_path = self.work / "ids.txt"
        with open(self.corpus, "rb") as fin, open(out_path, "wb") as fout:
            check(run_measured(self.tokenize_cmd(threads), stdin=fin, stdout=fout), "bert tokenize (counting run)")
        data = out_path.read_bytes()
        out_path.unlink()
        nlines = data.count(b"\n")
        if nlines != self.corpus_lines:
            raise BenchError(f"bert tokenize printed {nlines} lines for {self.corpus_lines} input lines")
        return len(data.split())

    # -- rows 1-2 -----------------------------------------------------------------------------------
    def hf_encode(self, threads: int) -> dict:
        cmd = [sys.executable, str(HERE / "bench_hf_tokenizer.py"), "--worker", "--vocab", self.vocab,
               "--input", str(self.corpus), "--repeat", str(self.reps(2)), "--limit", "0"]
        env = child_env(RAYON_NUM_THREADS=str(threads), TOKENIZERS_PARALLELISM="true")
        r = run_json(cmd, f"HF encode_batch (RAYON_NUM_THREADS={threads})", env)
        # the worker counts WordPiece tokens without [CLS]/[SEP]; ours counts every id it prints
        r["ids"] = r["tokens"] + 2 * self.corpus_lines
        return r

    def ours_encode(self, threads: int) -> tuple[Measure, list[Measure]]:
        def once():
            with open(self.corpus, "rb") as fin:
                return check(run_measured(self.tokenize_cmd(threads), stdin=fin),
                             f"bert tokenize --threads {threads}")
        return best_of(self.reps(3), once)

    def tokenizer_row(self, threads: int) -> dict:
        name = f"Tokenize {self.corpus_label}, {threads} thread{'s' if threads > 1 else ''}"
        log(f"{name}: ours")
        best, runs = self.ours_encode(threads)
        mb_s = self.corpus_bytes / 1e6 / best.wall
        tok_s = self.ids / best.wall
        log(f"{name}: HF encode_batch, RAYON_NUM_THREADS={threads}")
        hf = self.hf_encode(threads)
        hf_mb_s = self.corpus_bytes / 1e6 / hf["seconds"]
        hf_tok_s = hf["ids"] / hf["seconds"]
        notes = [f"best of {len(runs)} / {self.reps(2)}",
                 f"CPU/wall ours {best.cpu / best.wall:.2f}, HF {hf['cpu_seconds'] / hf['seconds']:.2f}",
                 f"peak RSS {best.maxrss_mib:.0f} MiB"]
        if hf["ids"] != self.ids:
            notes.append(f"TOKEN COUNTS DIFFER: ours {self.ids} ids, HF {hf['ids']}")
            log(f"warning: token counts differ: ours {self.ids} ids, HF {hf['ids']} (run make parity)")
        result = {"seconds": best.wall, "mb_per_s": mb_s, "tokens_per_s": tok_s, "cpu_seconds": best.cpu,
                  "maxrss_mib": best.maxrss_mib, "all_seconds": [m.wall for m in runs]}
        self.table.add(name, f"{fmt_s(best.wall)}: {fmt_rate(mb_s, tok_s)}",
                       f"{fmt_s(hf['seconds'])}: {fmt_rate(hf_mb_s, hf_tok_s)}",
                       f"{mb_s / hf_mb_s:.2f}× (MB/s; >1 = ours faster)", "; ".join(notes),
                       threads=threads, ours_data=result,
                       peer_data={**hf, "mb_per_s": hf_mb_s, "tokens_per_s": hf_tok_s},
                       bytes=self.corpus_bytes, ids=self.ids)
        return {"ours": result, "hf": {**hf, "mb_per_s": hf_mb_s}}

    def scaling_row(self, n: int) -> None:
        ours = self.tokn["ours"]["mb_per_s"] / self.tok1["ours"]["mb_per_s"]
        hf = self.tokn["hf"]["mb_per_s"] / self.tok1["hf"]["mb_per_s"]
        cpu = self.tokn["ours"]["cpu_seconds"] / self.tokn["ours"]["seconds"]
        # HF's times exclude Python and tokenizer start-up; subtract ours (row 3) for the like-for-like figure.
        steady = ""
        su = getattr(self, "startup_seconds", None)
        if su is not None and self.tokn["ours"]["seconds"] > su:
            st = (self.tok1["ours"]["seconds"] - su) / (self.tokn["ours"]["seconds"] - su)
            steady = f"; {st:.2f}× without the {1000 * su:.0f} ms start-up (HF's times exclude its start-up)"
        self.table.add(f"Tokenizer scaling, {n} threads ÷ 1 thread (MB/s)", f"{ours:.2f}×", f"{hf:.2f}×",
                       f"{ours / hf:.2f}", f"ideal {n:.2f}×; ours used {cpu:.2f} cores at {n} threads "
                       f"(CPU s / wall s){steady}; see the load average below",
                       ours_data={"scaling": ours}, peer_data={"scaling": hf})

    # -- row 3 ---------------------------------------------------------------------------------------
    def startup_row(self) -> None:
        name = "Tokenizer start-up: printf 'hello\\n' | bert tokenize --vocab V --ids"
        log(name)
        probe = self.work / "hello.ids"
        with open(probe, "wb") as fout:
            check(run_measured(self.tokenize_cmd(None), feed=[b"hello\n"], stdout=fout), "bert tokenize (hello)")
        got = probe.read_text().split()
        best, runs = best_of(self.reps(5), lambda: check(
            run_measured(self.tokenize_cmd(None), feed=[b"hello\n"]), "bert tokenize (hello)"))
        self.startup_seconds = best.wall
        share = ""
        if self.tok1:
            share = f"{100 * best.wall / self.tok1['ours']['seconds']:.1f}% of the 1-thread corpus time; "
        self.table.add(name, fmt_s(best.wall), None, None,
                       f"{share}best of {len(runs)}; default threads; peak RSS {best.maxrss_mib:.0f} MiB; "
                       f"output {' '.join(got)}",
                       ours_data={"seconds": best.wall, "all_seconds": [m.wall for m in runs],
                                  "maxrss_mib": best.maxrss_mib, "output": got})

    # -- row 4 ---------------------------------------------------------------------------------------
    def vocab_train_row(self) -> None:
        size = self.args.size
        name = f"Vocabulary training, uncased, size {size}, {self.corpus_label}"
        log(f"{name}: ours")
        out = self.work / "ours-vocab.txt"
        cmd = self.bert + ["vocab", "--input", str(self.corpus), "--size", str(size), "--output", str(out)]
        best, runs = best_of(self.reps(2), lambda: check(run_measured(cmd), "bert vocab"))
        with open(out, encoding="utf-8") as f:
            ours_size = sum(1 for _ in f)
        log(f"{name}: HF (all threads)")
        code = (
            "import json, sys, time\n"
            "from tokenizers import BertWordPieceTokenizer\n"
            "path, size, reps = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])\n"
            "secs, cpus = [], []\n"
            "for _ in range(reps):\n"
            "    tok = BertWordPieceTokenizer(lowercase=True)\n"
            "    t0, c0 = time.perf_counter(), time.process_time()\n"
            "    tok.train([path], vocab_size=size, show_progress=False)\n"
            "    secs.append(time.perf_counter() - t0); cpus.append(time.process_time() - c0)\n"
            "i = min(range(reps), key=secs.__getitem__)\n"
            "print(json.dumps({'seconds': secs[i], 'cpu_seconds': cpus[i], 'all_seconds': secs,\n"
            "                  'vocab_size': tok.get_vocab_size()}))\n"
        )
        hf = run_json([sys.executable, "-c", code, str(self.corpus), str(size), str(self.reps(2))],
                      "HF BertWordPieceTokenizer.train", child_env())
        self.table.add(name, f"{fmt_s(best.wall)} ({ours_size} tokens)",
                       f"{fmt_s(hf['seconds'])} ({hf['vocab_size']} tokens)",
                       f"{best.wall / hf['seconds']:.2f} (time; <1 = ours faster)",
                       f"best of {len(runs)} / {len(hf['all_seconds'])}; all threads; CPU/wall ours "
                       f"{best.cpu / best.wall:.2f}, HF {hf['cpu_seconds'] / hf['seconds']:.2f}; "
                       f"ours peak RSS {best.maxrss_mib:.0f} MiB; HF timed inside train() only",
                       ours_data={"seconds": best.wall, "all_seconds": [m.wall for m in runs],
                                  "cpu_seconds": best.cpu, "maxrss_mib": best.maxrss_mib, "vocab_size": ours_size},
                       peer_data=hf)

    def vocab_quality_row(self) -> bool:
        size = self.args.size
        name = f"Vocabulary quality: WordPiece tokens per word, held-out 1/10 of documents (size {size})"
        log(f"{name}: vocab_compare.py")
        cmd = [sys.executable, str(HERE.parent / "checks" / "vocab_compare.py"), "--bert", self.args.bert, "--input",
               str(self.corpus), "--size", str(size), "--json", "--max-ratio", "1e9"]
        r = run_json(cmd, "vocab_compare.py", child_env())
        rows = {row["vocab"]: row for row in r["rows"]}
        hf, ours = rows["hf"], rows["ours"]
        ratio = ours["tokens_per_word"] / hf["tokens_per_word"]
        ok = ratio <= MAX_RATIO
        self.table.add(name, f"{ours['tokens_per_word']:.4f} (unk {ours['unk_percent']:.3f}%)",
                       f"{hf['tokens_per_word']:.4f} (unk {hf['unk_percent']:.3f}%)",
                       f"{ratio:.4f} ({'PASS' if ok else 'FAIL'}: target <= {MAX_RATIO})",
                       f"both trained on the other 9/10 (vocab_compare.py): ours {ours['train_seconds']:.2f} s, "
                       f"HF {hf['train_seconds']:.2f} s; {hf['words']} held-out words; sizes "
                       f"{ours['vocab_size']} / {hf['vocab_size']}",
                       ours_data=ours, peer_data=hf, target=MAX_RATIO, passed=ok)
        return ok

    # -- row 5 ---------------------------------------------------------------------------------------
    def long_line_check(self) -> None:
        """Correctness of the long-line path on a small input: one output line, words + 2 ids."""
        words = 200_000
        out = self.work / "longline.ids"
        with open(out, "wb") as fout:
            check(run_measured(self.tokenize_cmd(None), feed=[b"word " * words], stdout=fout),
                  "bert tokenize (1 MB line check)")
        data = out.read_bytes()
        out.unlink()
        ids = data.split()
        nlines = data.count(b"\n")
        if nlines != 1 or len(ids) != words + 2 or len(set(ids[1:-1])) != 1:
            raise BenchError(f"1 MB line without newline: got {nlines} lines, {len(ids)} ids "
                             f"(expected 1 line, {words + 2} ids)")

    def memory_rows(self) -> None:
        n = self.args.long_line_bytes
        size_label = f"{n / (1 << 30):.4g} GiB" if n >= 1 << 30 else f"{n / (1 << 20):.4g} MiB"
        name = f"Bounded memory: peak RSS, {size_label} \"word \" stream with no newline"
        log(f"{name} (checking a 1 MB line first)")
        self.long_line_check()

        def chunks():
            block = b"word " * (1 << 20)  # 5 MiB
            left = n
            while left > 0:
                piece = block if left >= len(block) else block[:left]
                yield piece
                left -= len(piece)

        m = check(run_measured(self.tokenize_cmd(None), feed=chunks()), f"bert tokenize ({size_label} line)")
        mb_s = n / 1e6 / m.wall
        self.table.add(name, f"{m.maxrss_mib:.1f} MiB peak RSS; {fmt_s(m.wall)}: {fmt_rate(mb_s, (n / 5 + 2) / m.wall)}",
                       None, None,
                       f"bert tokenize --vocab V --ids (default threads), stdin from a writer thread, stdout "
                       f"/dev/null; CPU/wall {m.cpu / m.wall:.2f}; 1 MB line check: 1 line, words+2 ids",
                       ours_data={"bytes": n, "seconds": m.wall, "mb_per_s": mb_s, "maxrss_mib": m.maxrss_mib,
                                  "cpu_seconds": m.cpu})
        self.long = m

        log("peak RSS on the corpus")
        with open(self.corpus, "rb") as fin:
            c = check(run_measured(self.tokenize_cmd(None), stdin=fin), "bert tokenize (corpus, default threads)")
        mb_s = self.corpus_bytes / 1e6 / c.wall
        self.table.add(f"Bounded memory: peak RSS, {self.corpus_label} (same command)",
                       f"{c.maxrss_mib:.1f} MiB peak RSS; {fmt_s(c.wall)}: {fmt_rate(mb_s)}", None, None,
                       f"{n / self.corpus_bytes:.0f}× more input in the row above costs "
                       f"{m.maxrss_mib - c.maxrss_mib:+.1f} MiB",
                       ours_data={"bytes": self.corpus_bytes, "seconds": c.wall, "mb_per_s": mb_s,
                                  "maxrss_mib": c.maxrss_mib, "cpu_seconds": c.cpu})

    # -- row 6: shards --------------------------------------------------------------------------------
    def shards_once(self, corpus: Path, tag: str) -> Measure:
        out = self.work / f"shards-{tag}"
        if out.exists():
            subprocess.run(["rm", "-rf", str(out)], check=True)
        cmd = self.bert + ["shards", "--input", str(corpus), "--vocab", self.args.vocab, "--output", str(out),
                           "--threads", str(self.args.threads)]
        m = check(run_measured(cmd), f"bert shards ({tag})")
        index = json.loads((out / "index.json").read_text())
        m.instances = index["total_instances"]
        m.compressed = sum(s["compressed_bytes"] for s in index["shards"])
        subprocess.run(["rm", "-rf", str(out)], check=True)
        return m

    def shards_rows(self) -> None:
        n = self.args.threads
        name = f"Shards, defaults (dupe 10, seq 128), {n} threads, {self.corpus_label}"
        log(name)
        best, runs = best_of(self.reps(5), lambda: self.shards_once(self.corpus, "corpus"))
        mb_s = self.corpus_bytes / 1e6 / best.wall
        self.table.add(name, f"{fmt_s(best.wall)}: {mb_s:.2f} MB/s of raw text; {best.maxrss_mib:.0f} MiB peak RSS",
                       None, None,
                       f"raw text to finished shards (tokenize, pairs, masks, zstd, sha256, fsync), fresh cache; "
                       f"{best.instances} instances, {best.compressed / 1e6:.1f} MB compressed; CPU/wall "
                       f"{best.cpu / best.wall:.2f}; best of {len(runs)}; target >= 15 MB/s",
                       ours_data={"seconds": best.wall, "mb_per_s": mb_s, "maxrss_mib": best.maxrss_mib,
                                  "cpu_seconds": best.cpu, "instances": best.instances})
        big = self.work / "corpus-x4.txt"
        with open(big, "wb") as f:
            data = self.corpus.read_bytes()
            for _ in range(4):
                f.write(data)
                if not data.endswith(b"\n\n"):
                    f.write(b"\n\n")
        log("Shards on 4 copies of the corpus")
        m = self.shards_once(big, "x4")
        big_bytes = big.stat().st_size
        big.unlink()
        self.table.add(f"Shards, 4 copies of {self.corpus_label} concatenated",
                       f"{fmt_s(m.wall)}: {big_bytes / 1e6 / m.wall:.2f} MB/s; {m.maxrss_mib:.0f} MiB peak RSS", None, None,
                       f"4× the input costs {m.maxrss_mib - best.maxrss_mib:+.0f} MiB of peak RSS "
                       f"(flat = bounded); {m.instances} instances; target < 1 GiB",
                       ours_data={"seconds": m.wall, "bytes": big_bytes, "maxrss_mib": m.maxrss_mib, "instances": m.instances})

    # -- row 7: training ------------------------------------------------------------------------------
    def torch_json(self, script: str, args: list[str], what: str, env_extra: dict | None = None) -> dict:
        """Run a PyTorch peer script with the peers' environment; its stdout is one JSON document."""
        pe = self.peer_env()
        cmd = [self.args.torch_python, str(HERE / script)] + args
        proc = subprocess.run(cmd, env={**pe.env, **(env_extra or {})}, stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, timeout=3600)
        if proc.returncode != 0:
            raise BenchError(f"{what}: exit status {proc.returncode}: {proc.stderr.decode(errors='replace')[-1500:]}")
        r = json.loads(proc.stdout.decode())  # one (indented) JSON document
        self.torch_versions = {"torch": r.get("torch"), "transformers": r.get("transformers")}
        return r

    def torch_bf16_kernels(self) -> bool | None:
        return self.peer_env().probe.get("mkldnn_bf16") if self.args.torch_python else None

    def torch_rows(self) -> dict:
        """PyTorch transformers on the same shapes (stock, tuned, bf16 autocast), when --torch-python
        names a Python with torch; {"error": why} when it could not be measured."""
        if not self.args.torch_python:
            return {}
        args = ["--threads", str(self.args.threads), "--presets", ",".join(self.presets),
                "--variants", "stock,tuned,bf16"]
        if self.quick:
            args += ["--steps", "3"]
        if self.torch_bf16_kernels() is False:  # torch's own bf16 code: several times slower than its fp32
            args += ["--bf16-warmup", "1", "--bf16-steps", "2" if self.quick else "3"]
        log("PyTorch pre-training peer (bench_torch_pretrain.py)")
        try:
            r = self.torch_json("bench_torch_pretrain.py", args, "bench_torch_pretrain.py")
        except Exception as e:  # noqa: BLE001 -- best effort: our rows go on without the peer
            log(f"PyTorch rows unavailable: {e}")
            return {"error": str(e).strip().splitlines()[-1][:200] if str(e).strip() else repr(e)}
        out = {}
        for row in r.get("rows", []):
            out[(row["preset"], row["variant"])] = row
        out["sgemm"] = (r.get("sgemm_start") or {}).get("gflops")
        out["version"] = r.get("torch") or r.get("torch_version") or (r.get("versions") or {}).get("torch")
        return out

    def torch_missing(self, result: dict, what: str) -> str:
        """Why a PyTorch figure is absent, for the notes."""
        if not self.args.torch_python:
            return f"PyTorch {what} not measured (--torch-python / $TORCH_PYTHON not set)"
        return f"PyTorch {what} not measured: {result.get('error', 'no row')}"

    def training_rows(self) -> None:
        n = self.args.threads
        torch = self.torch_rows()
        for preset in self.presets:
            name = f"Pre-training step, {preset}, batch 32 × seq 128, 20 masked/seq, {n} threads"
            log(name)
            cmd = self.bert + ["benchmark-train", "--model", preset, "--threads", str(n),
                               "--steps", "3" if self.quick else "8"]
            r = run_json(cmd, f"bert benchmark-train --model {preset}", child_env())
            tuned = torch.get((preset, "tuned"))
            stock = torch.get((preset, "stock"))
            peer = f"{tuned['tokens_per_s']:.0f} tok/s tuned, {stock['tokens_per_s']:.0f} stock" if tuned and stock else None
            ratio = f"{r['tokens_per_second'] / tuned['tokens_per_s']:.2f}× tuned PyTorch" if tuned else None
            self.table.add(name, f"{r['tokens_per_second']:.0f} tok/s ({r['seconds_per_step'] * 1000:.0f} ms/step)", peer, ratio,
                           f"fwd+bwd+clip+AdamW on synthetic batches, median of {len(r['all_seconds'])}; useful "
                           f"{r['useful_gflops']:.0f} GFLOP/s = {100 * r['fraction_of_peak']:.0f}% of the sgemm peak "
                           f"({r['sgemm_peak_gflops']:.0f} GFLOP/s, 1024³, same process); executed (last layer "
                           f"pruned to the rows the heads read) {r['executed_gflops']:.0f} GFLOP/s = "
                           f"{100 * r['executed_fraction_of_peak']:.0f}%"
                           + (f"; PyTorch {torch.get('version')}, median of {tuned['timed_steps']} steps, CPU/wall "
                              f"{tuned['cpu_per_wall']:.2f} tuned; {self.peer_env().summary()}"
                              if tuned else "; " + self.torch_missing(torch, "training")),
                           ours_data=r, peer_data={"tuned": tuned, "stock": stock} if tuned else None)
            self.bf16_row(preset, n, r, torch)

    def bf16_row(self, preset: str, n: int, fp32: dict, torch: dict) -> None:
        """The same step with --precision bf16: ratio to PyTorch's tuned step under bf16 autocast (fp32
        weights and AdamW), to our fp32, and share of the bf16 peak (twice fp32's on CPUs with bf16
        units); where the CPU has none, bert refuses (exit 2), the row says why and still gives
        PyTorch's bf16 figure."""
        name = f"Pre-training step, {preset}, bf16 mixed precision, {n} threads"
        log(name)
        peer = torch.get((preset, "bf16"))
        tuned = torch.get((preset, "tuned"))
        if peer:
            peer_cell = f"{peer['tokens_per_s']:.0f} tok/s bf16 autocast ({peer['seconds_per_step'] * 1000:.0f} ms/step)"
            peer_notes = (f"PyTorch: the tuned step under torch.autocast(\"cpu\", bfloat16), fp32 weights and AdamW, "
                          f"median of {peer['timed_steps']} steps after {peer['warmup_steps']}, CPU/wall "
                          f"{peer['cpu_per_wall']:.2f}"
                          + (f", {peer['tokens_per_s'] / tuned['tokens_per_s']:.2f}× its fp32 tuned step" if tuned else "")
                          + f"; {self.peer_env().summary()}")
        else:
            peer_cell, peer_notes = None, self.torch_missing(torch, "bf16")
        cmd = self.bert + ["benchmark-train", "--model", preset, "--threads", str(n), "--precision", "bf16",
                           "--steps", "3" if self.quick else "8"]
        env = child_env()
        env.pop("BERTKIT_BF16_REFERENCE", None)
        p = subprocess.run(cmd, capture_output=True, text=True, env=env)
        if p.returncode == 2:
            reason = p.stderr.strip().splitlines()[-1] if p.stderr.strip() else "refused"
            self.table.add(name, "not measured", peer_cell, None, f"bert refuses bf16 here (exit 2): {reason}; {peer_notes}",
                           peer_data=peer)
            return
        if p.returncode != 0:
            raise RuntimeError(f"bert benchmark-train --precision bf16 failed ({p.returncode}): {p.stderr[-500:]}")
        r = json.loads(p.stdout)
        peak = 2 * r["sgemm_peak_gflops"]
        vs_fp32 = f"{r['tokens_per_second'] / fp32['tokens_per_second']:.2f}× our fp32"
        ratio = f"{r['tokens_per_second'] / peer['tokens_per_s']:.2f}× PyTorch bf16 autocast" if peer else vs_fp32
        self.table.add(name, f"{r['tokens_per_second']:.0f} tok/s ({r['seconds_per_step'] * 1000:.0f} ms/step)", peer_cell,
                       ratio,
                       (f"{vs_fp32}; " if peer else "")
                       + f"useful {r['useful_gflops']:.0f} GFLOP/s = {100 * r['useful_gflops'] / peak:.0f}% of the bf16 peak "
                       f"(taken as 2 × the fp32 sgemm peak, {peak:.0f} GFLOP/s); {peer_notes}", ours_data=r, peer_data=peer)

    def electra_rows(self) -> None:
        """ELECTRA's step (`benchmark-train --objective electra`: generator at 1/4 of the width, λ 50)
        beside transformers' ElectraForMaskedLM + ElectraForPreTraining of the same shapes, sharing their
        embeddings, head only at the masked rows, samples by torch.multinomial (bench_torch_pretrain.py's
        electra variant); and the ratio of our ELECTRA step to our MLM + NSP step in the same run."""
        n = self.args.threads
        torch = {}
        if self.args.torch_python:
            args = ["--threads", str(n), "--presets", ",".join(self.presets), "--variants", "electra"]
            if self.quick:
                args += ["--steps", "3"]
            try:
                r = self.torch_json("bench_torch_pretrain.py", args, "bench_torch_pretrain.py (electra)")
                torch = {row["preset"]: row for row in r.get("rows", [])}
                torch["version"] = r.get("torch")
            except Exception as e:  # noqa: BLE001 -- best effort
                torch = {"error": str(e).strip().splitlines()[-1][:200] if str(e).strip() else repr(e)}
        for preset in self.presets:
            name = f"ELECTRA pre-training step, {preset} (generator 1/4), batch 32 × seq 128, 20 masked/seq, {n} threads"
            log(name)
            steps = "3" if self.quick else "8"
            r = run_json(self.bert + ["benchmark-train", "--model", preset, "--threads", str(n), "--steps", steps,
                                      "--objective", "electra"], f"bert benchmark-train --objective electra --model {preset}", child_env())
            bert = run_json(self.bert + ["benchmark-train", "--model", preset, "--threads", str(n), "--steps", steps],
                            f"bert benchmark-train --model {preset}", child_env())
            peer = torch.get(preset)
            self.table.add(name, f"{r['tokens_per_second']:.0f} tok/s ({r['seconds_per_step'] * 1000:.0f} ms/step)",
                           f"{peer['tokens_per_s']:.0f} tok/s" if peer else None,
                           f"{r['tokens_per_second'] / peer['tokens_per_s']:.2f}× PyTorch ELECTRA" if peer else None,
                           f"an ELECTRA step costs {bert['tokens_per_second'] / r['tokens_per_second']:.2f}× our MLM + NSP step "
                           f"({bert['tokens_per_second']:.0f} tok/s, same run); useful {r['useful_gflops']:.0f} GFLOP/s = "
                           f"{100 * r['fraction_of_peak']:.0f}% of the sgemm peak"
                           + (f"; PyTorch {torch.get('version')}, median of {peer['timed_steps']} steps, CPU/wall "
                              f"{peer['cpu_per_wall']:.2f}; {self.peer_env().summary()}" if peer else "; " + self.torch_missing(torch, "ELECTRA")),
                           ours_data={"electra": r, "mlm_nsp": bert}, peer_data=peer)

    # -- row 8: bert predict ---------------------------------------------------------------------------
    def make_classifier(self, preset: str, data: Path) -> Path:
        """A randomly initialised sequence classifier of the preset's shape: `bert finetune --from-scratch
        --config PRESET --vocab V` for 1 epoch on a 16-row file (no pre-training checkpoint needed);
        its weights are near their initialisation, which does not change the speed."""
        out = self.work / "predict" / f"classifier-{preset}"
        cmd = self.bert + ["finetune", "--from-scratch", "--config", preset, "--vocab", self.vocab, "--data", str(data),
                           "--output", str(out), "--epochs", "1", "--threads", str(self.args.threads),
                           "--precision", "fp32", "--seed", "42"]
        check(run_measured(cmd), f"bert finetune --from-scratch --config {preset}")
        for f in ("config.json", "model.safetensors", "vocab.txt"):
            if not (out / f).exists():
                raise BenchError(f"bert finetune wrote no {out / f}")
        return out

    def predict_inputs(self) -> tuple[Path, Path, Path, list[str]]:
        """The corpus's first non-empty lines as `bert predict` input (JSONL, {"text": line}): the big
        file and its first quarter; and a 16-row labelled file for make_classifier."""
        d = self.work / "predict"
        d.mkdir(parents=True, exist_ok=True)
        want = self.args.predict_rows or (QUICK_PREDICT_ROWS if self.quick else PREDICT_ROWS)
        texts = []
        for raw in split_lines(self.corpus.read_bytes()):
            line = raw.decode("utf-8", errors="replace").strip()
            if line:
                texts.append(line)
                if len(texts) == want:
                    break
        if len(texts) < 8:
            raise BenchError(f"{self.corpus}: only {len(texts)} non-empty lines for the predict rows")
        big, small = d / "rows.jsonl", d / "rows-quarter.jsonl"
        for path, rows in ((big, texts), (small, texts[:len(texts) // 4])):
            path.write_text("".join(json.dumps({"text": t}, ensure_ascii=False) + "\n" for t in rows), encoding="utf-8")
        train = d / "train.tsv"
        train.write_text("split\tlabel\ttext\n" + "".join(
            f"{'dev' if i >= 14 else 'train'}\t{'ab'[i % 2]}\t{t.replace(chr(9), ' ')}\n" for i, t in enumerate(texts[:16])),
            encoding="utf-8")
        return big, small, train, texts

    def predict_cmd(self, checkpoint: Path, inp: Path, precision: str) -> list[str]:
        return self.bert + ["predict", "--checkpoint", str(checkpoint), "--input", str(inp),
                            "--threads", str(self.args.threads), "--precision", precision,
                            "--batch-size", str(PREDICT_BATCH), "--max-seq-length", str(PREDICT_MAX_LENGTH)]

    def torch_predict(self, checkpoints: dict, big: Path, rows: int) -> dict:
        """bench_torch_predict.py over the same file and checkpoints; {(preset, precision): row}, or
        {"error": why}."""
        if not self.args.torch_python:
            return {}
        probs = self.work / "predict" / "torch-probs"
        args = ["--input", str(big), "--threads", str(self.args.threads), "--batch-size", str(PREDICT_BATCH),
                "--max-length", str(PREDICT_MAX_LENGTH), "--precisions", "fp32,bf16",
                "--repeats", str(self.reps(3)), "--probs-dir", str(probs)]
        for preset, path in checkpoints.items():
            args += ["--checkpoint", f"{preset}={path}"]
        if self.torch_bf16_kernels() is False:  # torch's own bf16 code: several times slower
            args += ["--bf16-rows", str(max(PREDICT_BATCH, rows // 8))]
        log("PyTorch predict peer (bench_torch_predict.py)")
        try:
            r = self.torch_json("bench_torch_predict.py", args, "bench_torch_predict.py",
                                {"RAYON_NUM_THREADS": str(self.args.threads), "TOKENIZERS_PARALLELISM": "true"})
        except Exception as e:  # noqa: BLE001 -- best effort
            log(f"PyTorch predict rows unavailable: {e}")
            return {"error": str(e).strip().splitlines()[-1][:200] if str(e).strip() else repr(e)}
        out = {}
        for row in r["rows"]:
            prec = "fp32" if row["precision"] == "fp32" else "bf16"
            row["probs_file"] = str(probs / f"{row['preset']}-{prec}.tsv")
            out[(row["preset"], prec)] = row
        return out

    @staticmethod
    def compare_probs(ours: Path, theirs: Path) -> str:
        """Agreement of two `bert predict` TSVs over their common first rows."""
        a = ours.read_text().splitlines()[1:]
        b = theirs.read_text().splitlines()[1:]
        k = min(len(a), len(b))
        diff, same = 0.0, 0
        for x, y in zip(a[:k], b[:k]):
            xs, ys = x.split("\t"), y.split("\t")
            same += xs[0] == ys[0]
            diff = max(diff, max(abs(float(u) - float(v)) for u, v in zip(xs[1:], ys[1:])))
        return f"vs ours: labels agree on {same}/{k} rows, max |Δp| {diff:.1e}"

    def predict_rows(self) -> None:
        n = self.args.threads
        big, small, train, texts = self.predict_inputs()
        rows, rows_small = len(texts), len(texts) // 4
        hf = tokenizers.BertWordPieceTokenizer(self.vocab, lowercase=True)
        hf.enable_truncation(PREDICT_MAX_LENGTH)
        lengths = [len(e.ids) for e in hf.encode_batch(texts)]
        padded = sum(max(lengths[i:i + PREDICT_BATCH]) * len(lengths[i:i + PREDICT_BATCH])
                     for i in range(0, rows, PREDICT_BATCH))
        shape = (f"the first {rows} non-empty lines of {Path(self.args.input).name} as JSONL, {sum(lengths) / rows:.1f} "
                 f"tokens per row ([CLS]/[SEP] included; {padded / rows:.1f} with padding to each batch's longest)")
        checkpoints = {}
        for preset in self.presets:
            log(f"predict: a random {preset} classifier (bert finetune --from-scratch)")
            checkpoints[preset] = self.make_classifier(preset, train)
        torch = self.torch_predict(checkpoints, big, rows)
        for preset in self.presets:
            for precision in ("fp32", "bf16"):
                name = (f"Predict (bert predict), {preset}, {precision}, batch {PREDICT_BATCH}, "
                        f"max length {PREDICT_MAX_LENGTH}, {n} threads")
                try:
                    self.predict_row(name, preset, precision, checkpoints[preset], big, small, rows, rows_small,
                                     shape, torch)
                except Exception as e:  # noqa: BLE001 -- one row fails, the others go on
                    self.table.fail(name, e)

    def predict_row(self, name: str, preset: str, precision: str, checkpoint: Path, big: Path, small: Path,
                    rows: int, rows_small: int, shape: str, torch: dict) -> None:
        log(name)
        peer = torch.get((preset, precision))
        peer_fp32 = torch.get((preset, "fp32"))
        out = self.work / "predict" / f"ours-{preset}-{precision}.tsv"
        with open(out, "wb") as fout:  # the first run: row count, agreement, page cache
            first = run_measured(self.predict_cmd(checkpoint, big, precision), stdout=fout)
        peer_cell, peer_notes = None, self.torch_missing(torch, f"{precision} predict")
        if peer:
            kind = "bf16 autocast" if precision == "bf16" else "fp32"
            peer_cell = f"{peer['sentences_per_s']:.1f} sentences/s {kind}"
            peer_notes = (f"PyTorch: transformers BertForSequenceClassification and {peer['tokenizer']} "
                          f"(fast: {peer['tokenizer_is_fast']}) loaded from the same directory (load "
                          f"{peer['load_seconds']:.1f} s, not timed), {peer['attn_implementation']} attention, "
                          f"torch.inference_mode()"
                          + (", torch.autocast(\"cpu\", bfloat16), fp32 weights" if precision == "bf16" else "")
                          + f", tokenization timed; {peer['rows']} rows, best of {len(peer['all_seconds'])} "
                          f"in-process passes after a 2-batch warm-up (start-up excluded by construction), CPU/wall "
                          f"{peer['cpu_per_wall']:.2f}")
            if precision == "bf16" and peer_fp32:
                peer_notes += f", {peer['sentences_per_s'] / peer_fp32['sentences_per_s']:.2f}× its fp32"
            peer_notes += f"; {self.peer_env().summary()}"
        if first.rc == 2 and precision == "bf16":
            reason = first.stderr.strip().splitlines()[-1] if first.stderr.strip() else "refused"
            self.table.add(name, "not measured", peer_cell, None,
                           f"bert refuses bf16 here (exit 2): {reason}; {peer_notes}", peer_data=peer)
            return
        check(first, f"bert predict --precision {precision} ({preset})")
        got = out.read_bytes().count(b"\n") - 1
        if got != rows:
            raise BenchError(f"bert predict printed {got} rows for {rows} input rows")
        once = lambda inp, what: check(run_measured(self.predict_cmd(checkpoint, inp, precision)), what)  # noqa: E731
        reps = max(2, self.reps(3))  # a difference of two walls: one run each is too noisy even for --quick
        b, b_runs = best_of(reps, lambda: once(big, f"bert predict ({rows} rows)"))
        s, s_runs = best_of(reps, lambda: once(small, f"bert predict ({rows_small} rows)"))
        if b.wall <= s.wall:
            raise BenchError(f"bert predict: {rows} rows took {b.wall:.3f} s, not more than {rows_small} rows "
                             f"({s.wall:.3f} s): the machine is too noisy for the difference")
        rate = (rows - rows_small) / (b.wall - s.wall)
        startup = s.wall - rows_small / rate
        ratio = None
        if peer:
            ratio = f"{rate / peer['sentences_per_s']:.2f}× PyTorch {'bf16 autocast' if precision == 'bf16' else 'fp32'}"
            peer_notes += "; " + self.compare_probs(out, Path(peer["probs_file"]))
        self.table.add(name, f"{rate:.1f} sentences/s", peer_cell, ratio,
                       f"bert predict --precision {precision} on {shape}; sentences/s = ({rows} − {rows_small}) rows / "
                       f"(wall({rows}) − wall({rows_small})), best of {len(b_runs)} each, so process start-up and "
                       f"checkpoint load (≈{startup:.2f} s) cancel out; {rows} / wall({rows}) with start-up "
                       f"= {rows / b.wall:.1f}/s; CPU/wall {b.cpu / b.wall:.2f}; peak RSS {b.maxrss_mib:.0f} MiB; "
                       f"randomly initialised classifier (bert finetune --from-scratch, 1 epoch on 14 rows); "
                       f"{peer_notes}",
                       ours_data={"sentences_per_s": rate, "rows": rows, "rows_small": rows_small,
                                  "seconds": b.wall, "seconds_small": s.wall, "startup_seconds": startup,
                                  "all_seconds": [m.wall for m in b_runs], "all_seconds_small": [m.wall for m in s_runs],
                                  "cpu_seconds": b.cpu, "maxrss_mib": b.maxrss_mib},
                       peer_data=peer)

    # -- all ----------------------------------------------------------------------------------------
    def section(self, name: str, fn, group: str) -> None:
        if self.args.only and group not in self.args.only:
            return
        try:
            fn()
        except Exception as e:  # noqa: BLE001 -- report and go on with the other rows
            self.table.fail(name, e)

    def run(self) -> None:
        n = self.args.threads
        self.prepare_corpus()
        if not self.args.only or "tokenize" in self.args.only:
            self.ids = self.count_ids(max(n, 1))
            log(f"ours prints {self.ids} ids for {self.corpus_lines} lines")

        def tok1():
            self.tok1 = self.tokenizer_row(1)

        def tokn():
            self.tokn = self.tokenizer_row(n)

        self.section("Tokenize, 1 thread", tok1, "tokenize")
        if n > 1:
            self.section(f"Tokenize, {n} threads", tokn, "tokenize")
        self.section("Tokenizer start-up", self.startup_row, "tokenize")
        if n > 1 and self.tok1 and self.tokn:
            self.section("Tokenizer scaling", lambda: self.scaling_row(n), "tokenize")
        self.section("Vocabulary training", self.vocab_train_row, "vocab")

        def quality():
            self.quality_ok = self.vocab_quality_row()

        self.section("Vocabulary quality", quality, "vocab")
        self.section("Bounded memory", self.memory_rows, "memory")
        self.section("Shards", self.shards_rows, "shards")
        self.section("Training", self.training_rows, "training")
        self.section("ELECTRA", self.electra_rows, "electra")
        self.section("Predict", self.predict_rows, "predict")


def bert_version(cmd: list[str]) -> str:
    try:
        p = subprocess.run(cmd + ["--version"], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, timeout=30)
        return p.stdout.decode(errors="replace").strip()
    except Exception as e:  # noqa: BLE001
        return f"unknown ({e})"


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--bert", required=True, help="the bert binary (or a command line, see parity.py)")
    ap.add_argument("--vocab", required=True, help="uncased vocab.txt for the tokenizer rows")
    ap.add_argument("--input", required=True, help="the corpus (.zst allowed)")
    ap.add_argument("--threads", type=int, default=2, help="thread count for the multi-threaded row")
    ap.add_argument("--size", type=int, default=30000, help="vocabulary size for the training rows")
    ap.add_argument("--long-line-bytes", type=int, default=None,
                    help=f"size of the no-newline stream (default 1 GiB, {QUICK_LONG_LINE_BYTES >> 20} MiB with --quick)")
    ap.add_argument("--quick", action="store_true", help="first 2 MB of the corpus, 64 MiB long line, single runs")
    ap.add_argument("--only", type=lambda v: {g for g in v.split(",") if g}, default=None,
                    help=f"comma-separated row groups to run: {', '.join(GROUPS)} (default: all)")
    ap.add_argument("--presets", type=lambda v: [p for p in v.split(",") if p], default=list(PRESETS),
                    help=f"model presets of the training and predict rows (default: {','.join(PRESETS)})")
    ap.add_argument("--predict-rows", type=int, default=None,
                    help=f"corpus lines for the predict rows (default {PREDICT_ROWS}, {QUICK_PREDICT_ROWS} with --quick)")
    ap.add_argument("--json-out", type=Path, default=Path("out/bench.json"))
    ap.add_argument("--keep", type=Path, default=None, help="keep the temporary files in DIR")
    ap.add_argument("--strict", action="store_true", help="exit 1 when the vocabulary quality target is missed")
    ap.add_argument("--torch-python", default=os.environ.get("TORCH_PYTHON"),
                    help="a Python with torch and transformers for the PyTorch training and predict rows "
                         "(default $TORCH_PYTHON)")
    args = ap.parse_args()
    if args.only is not None and (not args.only or args.only - set(GROUPS)):
        ap.error(f"--only: unknown row group(s) {', '.join(sorted(args.only - set(GROUPS))) or '(none given)'} "
                 f"(have {', '.join(GROUPS)})")
    if not args.presets or set(args.presets) - set(KNOWN_PRESETS):
        ap.error(f"--presets: choose from {', '.join(KNOWN_PRESETS)}")
    if args.predict_rows is not None and args.predict_rows < 8:
        ap.error("--predict-rows must be >= 8")
    if args.long_line_bytes is None:
        args.long_line_bytes = QUICK_LONG_LINE_BYTES if args.quick else 1 << 30
    if args.long_line_bytes <= 0:
        ap.error("--long-line-bytes must be positive")
    if args.threads < 1:
        ap.error("--threads must be >= 1")
    for p in (args.vocab, args.input):
        if not os.path.isfile(p):
            ap.error(f"no such file: {p}")
    if len(bert_command(args.bert)) == 1 and not os.access(bert_command(args.bert)[0], os.X_OK):
        ap.error(f"not an executable: {args.bert} (build it with `make build`)")
    if "OPENBLAS_CORETYPE" in os.environ:
        log(f"note: OPENBLAS_CORETYPE={os.environ['OPENBLAS_CORETYPE']} is set here; it is removed for the "
            "timed children (make bench unsets it)")

    load_start = loadavg()
    started = time.time()
    tmp = tempfile.TemporaryDirectory(prefix="bench-")
    work = args.keep or Path(tmp.name)
    work.mkdir(parents=True, exist_ok=True)
    bench = Bench(args, work)
    fatal = None
    try:
        bench.run()
    except Exception as e:  # noqa: BLE001 -- e.g. the corpus could not be read or counted
        fatal = e
        bench.table.fail("set-up (corpus, id count)", e)
    load_end = loadavg()

    peer = f"HF tokenizers {tokenizers.__version__}"
    if bench.torch_versions.get("torch"):
        peer += f"; PyTorch {bench.torch_versions['torch']}, transformers {bench.torch_versions.get('transformers')}"
    print(bench.table.markdown(peer))
    print()
    if bench._peer_env is not None:
        print(f"PyTorch peers: {bench._peer_env.summary()}. ")
    print(f"Load average (1/5/15 min, runnable/total, last pid): start {load_start}; end {load_end}; "
          f"{os.cpu_count()} cores. ")
    print(f"Mode: {'--quick' if args.quick else 'full'}; bert: {bert_version(bench.bert)}; "
          f"wall {time.time() - started:.0f} s for the whole run.")
    print(f"Peak RSS: {RSS_SOURCE}.")

    doc = {"rss_source": RSS_SOURCE, "mode": "quick" if args.quick else "full", "bert": args.bert, "bert_version": bert_version(bench.bert),
           "vocab": args.vocab, "input": args.input, "threads": args.threads, "size": args.size,
           "long_line_bytes": args.long_line_bytes, "peer": peer, "python": platform.python_version(),
           "cpu_count": os.cpu_count(), "loadavg_start": load_start, "loadavg_end": load_end,
           "started_unix": started, "failed": bench.table.failed, "presets": args.presets,
           "torch_python": args.torch_python, "torch_versions": bench.torch_versions,
           "torch_peer": None if bench._peer_env is None else {
               "ld_preload": bench._peer_env.env.get("LD_PRELOAD"), "preloads": bench._peer_env.preloads,
               "notes": bench._peer_env.notes, "probe": bench._peer_env.probe, "summary": bench._peer_env.summary()},
           "rows": bench.table.rows}
    try:
        args.json_out.parent.mkdir(parents=True, exist_ok=True)
        args.json_out.write_text(json.dumps(doc, indent=1, ensure_ascii=False) + "\n")
        log(f"wrote {args.json_out}")
    except OSError as e:
        log(f"could not write {args.json_out}: {e}")
        return 1
    if fatal is not None or bench.table.failed:
        log(f"failed: {', '.join(bench.table.failed)}")
        return 1
    if args.strict and not bench.quality_ok:
        log("vocabulary quality target missed (--strict)")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
