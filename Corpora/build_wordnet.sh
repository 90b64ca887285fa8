#!/usr/bin/env bash
# Build the WordNet glosses corpus: general English definitions and example sentences, grouped by
# topic (WordNet's lexicographer files: noun.animal, noun.food, verb.motion, ...).
#
#   Corpora/generated/wordnet.txt   one synset per line ("word, word: definition." then its quoted
#                                   examples as sentences), 4 consecutive synsets of one
#                                   lexicographer file to a document, blank line between documents
#
# Source: Debian's wordnet-base package (WordNet 3.0, Princeton's WordNet licence), installed with
# apt-get when missing. See Corpora/wordnet_text.py. Output is deterministic.
#
# Usage: Corpora/build_wordnet.sh   (FORCE=1 rebuilds; OUT_DIR=... writes elsewhere)
set -euo pipefail
SCRIPT_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
OUT_DIR="${OUT_DIR:-$SCRIPT_DIR/generated}"
WORDNET_DIR=/usr/share/wordnet
OUT="$OUT_DIR/wordnet.txt"
[[ "${FORCE:-0}" == 1 || ! -s "$OUT" ]] || exit 0
missing=()
command -v python3 >/dev/null 2>&1 || missing+=(python3)
[[ -r "$WORDNET_DIR/data.noun" ]] || missing+=(wordnet-base)
if ((${#missing[@]})); then
    command -v apt-get >/dev/null 2>&1 || { echo "build_wordnet.sh: missing ${missing[*]} and no apt-get (needs Debian/Ubuntu)" >&2; exit 1; }
    SUDO=()
    if [[ $(id -u) -ne 0 ]]; then
        command -v sudo >/dev/null 2>&1 || { echo "build_wordnet.sh: missing ${missing[*]}; run as root or install them" >&2; exit 1; }
        SUDO=(sudo)
    fi
    echo "installing: ${missing[*]}" >&2
    export DEBIAN_FRONTEND=noninteractive
    "${SUDO[@]}" apt-get update -qq >&2
    "${SUDO[@]}" apt-get install -y -qq --no-install-recommends "${missing[@]}" >&2
fi
mkdir -p "$OUT_DIR"
python3 "$SCRIPT_DIR/wordnet_text.py" "$WORDNET_DIR" "$OUT" 4
