#!/usr/bin/env bash
# Golden outputs for behaviour-preserving refactors (issue 11).
#
#   Tests/Scripts/checks/golden_outputs.sh BERT_BINARY OUT_DIR      run every job, write OUT_DIR/manifest.sha256
#   Tests/Scripts/checks/golden_outputs.sh --compare A.sha256 B.sha256   exit 1 and list the files that differ
#
# Jobs (small, about a minute on 2 cores):
#   bert vocab on corpus_en (../shared/data/corpus_en.txt.zst, else the embedded Corpora/generated/en.txt);
#   bert shards on its first 3000 lines: static, dynamic and whole-word masking;
#   bert pretrain, tiny, 50 updates on the static shards (checkpoint files and metrics; timing fields removed);
#   bert finetune, 1 epoch from that checkpoint, on 1200 rows of a classification file;
#   bert predict with the classifier on 200 rows.
#
# The manifest lists a SHA-256 per output file. JSON files are hashed after the fields that vary from run
# to run are removed: wall-clock times ("seconds", "tokens_per_second", "examples_per_second"), absolute
# paths ("output", "source") and hashes of input paths and mtimes ("inputs_sha256", and
# "shards_index_sha256", which hashes an index.json holding it). TensorBoard event files are skipped.
# Float results depend on the OpenBLAS kernel in use, so compare manifests from one machine and one
# OPENBLAS_CORETYPE setting; the thread count does not matter (results do not depend on it).
set -euo pipefail

if [[ "${1:-}" == "--compare" ]]; then
    [[ $# -eq 3 ]] || { echo "usage: $0 --compare A.sha256 B.sha256" >&2; exit 2; }
    if diff <(sort -k2 "$2") <(sort -k2 "$3"); then
        echo "golden outputs: identical ($(wc -l < "$2") files)"
        exit 0
    fi
    echo "golden outputs: DIFFER (lines above: < $2, > $3)" >&2
    exit 1
fi

[[ $# -eq 2 ]] || { echo "usage: $0 BERT_BINARY OUT_DIR | --compare A.sha256 B.sha256" >&2; exit 2; }
bert=$(realpath "$1")
out=$2
root=$(cd "$(dirname "$0")/../../.." && pwd)
[[ -x "$bert" ]] || { echo "$0: $1 is not an executable bert binary" >&2; exit 2; }
rm -rf "$out"
mkdir -p "$out/in"
out=$(realpath "$out")

# Inputs: the ../shared file (zstd) when it is there, else the embedded one.
input() {  # input SHARED_ZST EMBEDDED DEST
    if [[ -f "$1" ]]; then zstd -dc "$1" > "$3"
    elif [[ -f "$2" ]]; then cp "$2" "$3"
    else echo "$0: neither $1 nor $2: run 'make corpus' (or put ../shared beside the repository)" >&2; exit 2
    fi
}
input "$root/../shared/data/corpus_en.txt.zst" "$root/Corpora/generated/en.txt" "$out/in/corpus.txt"
input "$root/../shared/data/classification_en.tsv.zst" "$root/Corpora/generated/fortunes.tsv" "$out/in/all.tsv"
head -n 3000 "$out/in/corpus.txt" > "$out/in/small.txt"
head -n 1201 "$out/in/all.tsv" > "$out/in/train.tsv"
{ head -n 1 "$out/in/all.tsv"; tail -n 200 "$out/in/all.tsv"; } > "$out/in/predict.tsv"

# Every path below is relative to OUT_DIR, because outputs record their inputs' paths.
cd "$out"
export OMP_NUM_THREADS=1
run() { echo "+ bert $*" >> commands.log; "$bert" "$@" >> commands.log 2>&1; }

run vocab --input "$out/in/corpus.txt" --size 4000 --output "$out/vocab.txt" --threads 2
run shards --input "$out/in/small.txt" --vocab "$out/vocab.txt" --output "$out/shards-static" --dupe-factor 2 --threads 2
run shards --input "$out/in/small.txt" --vocab "$out/vocab.txt" --output "$out/shards-dynamic" --dupe-factor 1 \
    --dynamic-masking --masked-lm-prob 0.3 --max-predictions 40 --threads 2
run shards --input "$out/in/small.txt" --vocab "$out/vocab.txt" --output "$out/shards-wwm" --dupe-factor 1 \
    --whole-word-mask --sentence-split icu --threads 2
run pretrain --shards "$out/shards-static" --output "$out/pretrain" --model tiny --batch-size 16 --max-steps 50 \
    --warmup-steps 5 --dropout 0.1 --threads 2
run pretrain --shards "$out/shards-dynamic" --output "$out/pretrain-dynamic" --model tiny --batch-size 16 --max-steps 20 \
    --warmup-steps 5 --threads 2
run finetune --checkpoint "$out/pretrain/latest" --data "$out/in/train.tsv" --output "$out/classifier" --epochs 1 \
    --batch-size 16 --max-seq-length 64 --dropout 0.1 --threads 2
run predict --checkpoint "$out/classifier" --input "$out/in/predict.tsv" --output "$out/predictions.jsonl" --threads 2
run evaluate --checkpoint "$out/pretrain/latest" --shards "$out/shards-static" --limit 200 --output "$out/evaluate-shards.json"

# The manifest: every output file, timing fields removed where a file has them.
rm -rf in
find . -type f ! -name manifest.sha256 ! -name commands.log ! -name 'events.out.tfevents*' \
    ! -path './*/.tokenized/*' | LC_ALL=C sort | while read -r f; do
    case "$f" in
    *.json | *.jsonl)
        python3 -c 'import json, sys
VOLATILE = ("seconds", "tokens_per_second", "examples_per_second", "inputs_sha256", "shards_index_sha256", "output", "source")
def clean(v):
    if isinstance(v, dict):
        return {k: clean(x) for k, x in v.items() if k not in VOLATILE}
    return [clean(x) for x in v] if isinstance(v, list) else v
text = open(sys.argv[1]).read()
rows = [json.loads(l) for l in text.splitlines() if l.strip()] if sys.argv[1].endswith("l") else [json.loads(text)]
for r in rows: print(json.dumps(clean(r), sort_keys=True))' "$f" | sha256sum | sed "s|  -|  $f|" ;;
    *) sha256sum "$f" ;;
    esac
done > manifest.sha256
echo "golden outputs: $(wc -l < manifest.sha256) files in $out/manifest.sha256"
