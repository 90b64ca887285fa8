#!/usr/bin/env bash
# Split a corpus into pre-training and held-out documents, for MLM/NSP figures on text the model
# never trained on.
#
#   Corpora/split_documents.sh IN EVERY TRAIN_OUT HELDOUT_OUT
#
# IN is text in bert shards' format: documents separated by blank lines. Every EVERY-th document
# (the EVERY-th, 2·EVERY-th, ...) goes to HELDOUT_OUT, the others to TRAIN_OUT, in order, each
# followed by one blank line. Outputs are written under temporary names and renamed.
set -euo pipefail
[[ $# -eq 4 ]] || { echo "usage: $0 IN EVERY TRAIN_OUT HELDOUT_OUT" >&2; exit 2; }
in="$1" every="$2" train="$3" held="$4"
[[ -r "$in" ]] || { echo "split_documents.sh: $in: cannot read" >&2; exit 2; }
[[ "$every" =~ ^[1-9][0-9]*$ && "$every" -ge 2 ]] || { echo "split_documents.sh: EVERY must be an integer >= 2, is '$every'" >&2; exit 2; }
mkdir -p "$(dirname "$train")" "$(dirname "$held")"
LC_ALL=C awk -v every="$every" -v train="$train.tmp" -v held="$held.tmp" '
    BEGIN { RS = ""; ORS = "\n\n" }
    { if (NR % every == 0) print > held; else print > train }
    END { if (NR < every) { print "split_documents.sh: only " NR " documents, fewer than EVERY" > "/dev/stderr"; exit 2 } }
' "$in"
mv "$train.tmp" "$train"
mv "$held.tmp" "$held"
