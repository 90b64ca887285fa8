#!/usr/bin/env bash
# LAMB at a large batch against AdamW at a 4x smaller one, at the same number of instances (issue 13):
# mini on the Debian pipeline's shards, held-out MLM/NSP on its held-out shards.
#
#   Tests/Scripts/experiments/lamb_large_batch.sh BERT SHARDS HELDOUT_SHARDS OUT [INSTANCES]
#
# Runs (one thread each, side by side) AdamW batch 256 lr 1e-3 and LAMB batch 1024 (256 x 4) at lr 5e-3
# and 1e-2, for INSTANCES instances each (default 64000), then `bert evaluate` on HELDOUT_SHARDS.
set -euo pipefail
[[ $# -ge 4 ]] || { echo "usage: $0 BERT SHARDS HELDOUT_SHARDS OUT [INSTANCES]" >&2; exit 2; }
bert=$1 shards=$2 heldout=$3 out=$4 instances=${5:-64000}
mkdir -p "$out"
adam_steps=$((instances / 256)) lamb_steps=$(((instances + 1023) / 1024))
common=(pretrain --shards "$shards" --model mini --epochs 100 --threads 1 --overwrite --precision fp32)
"$bert" "${common[@]}" --output "$out/adamw256" --batch-size 256 --learning-rate 1e-3 \
    --warmup-steps $((adam_steps / 10)) --max-steps "$adam_steps" > "$out/adamw256.log" 2>&1 &
for lr in 5e-3 1e-2; do
    "$bert" "${common[@]}" --output "$out/lamb1024-$lr" --batch-size 256 --accumulate 4 --optimizer lamb \
        --learning-rate "$lr" --warmup-steps $((lamb_steps / 4)) --max-steps "$lamb_steps" > "$out/lamb1024-$lr.log" 2>&1 &
done
wait
for run in adamw256 lamb1024-5e-3 lamb1024-1e-2; do
    "$bert" evaluate --checkpoint "$out/$run/latest" --shards "$heldout" --precision fp32 --output "$out/$run-eval.json" > /dev/null
    echo "$run: $(cat "$out/$run-eval.json")"
done
