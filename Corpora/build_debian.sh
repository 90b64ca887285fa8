#!/usr/bin/env bash
# Build the Debian-descriptions corpus and task (a corpus and task the default pipeline never sees):
#
#   Corpora/generated/debian/debian-sections.tsv   split<TAB>label<TAB>text: a package's archive section
#                                                  (admin, devel, games, python, science, ...) from its
#                                                  English description; split by source package
#   Corpora/generated/debian/debian-train.txt      the train rows' descriptions, one document each
#
# Downloads Debian's index files for bookworm main (Packages.xz for the sections, Translation-en.xz for
# the long descriptions) from the Debian archive (DEBIAN_MIRROR, default http://deb.debian.org/debian)
# and checks each against the sha256 in the release's InRelease file. See Corpora/debian_sections.py.
#
# Usage: Corpora/build_debian.sh   (FORCE=1 rebuilds; OUT_DIR=... writes elsewhere)
set -euo pipefail
SCRIPT_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
OUT_DIR="${OUT_DIR:-$SCRIPT_DIR/generated/debian}"
MIRROR="${DEBIAN_MIRROR:-http://deb.debian.org/debian}"
DIST=bookworm
[[ "${FORCE:-0}" == 1 || ! -s "$OUT_DIR/debian-sections.tsv" || ! -s "$OUT_DIR/debian-train.txt" ]] || exit 0
command -v python3 >/dev/null || { echo "build_debian.sh: needs python3 (apt-get install python3)" >&2; exit 1; }
mkdir -p "$OUT_DIR"
fetch() { # URL FILE
    if command -v curl >/dev/null; then curl -fsSL -o "$2.tmp" "$1"; else python3 -c "import sys,urllib.request; urllib.request.urlretrieve(sys.argv[1], sys.argv[2])" "$1" "$2.tmp"; fi
    mv "$2.tmp" "$2"
}
fetch "$MIRROR/dists/$DIST/InRelease" "$OUT_DIR/InRelease"
for f in main/binary-amd64/Packages.xz main/i18n/Translation-en.xz; do
    name=$(basename "$f")
    fetch "$MIRROR/dists/$DIST/$f" "$OUT_DIR/$name"
    want=$(awk -v f="$f" '/^SHA256:/ { s = 1; next } /^[A-Za-z]/ { s = 0 } s && $3 == f { print $1 }' "$OUT_DIR/InRelease")
    got=$(sha256sum "$OUT_DIR/$name" | cut -d' ' -f1)
    [[ -n "$want" && "$want" == "$got" ]] || { echo "build_debian.sh: $OUT_DIR/$name: sha256 $got, InRelease lists '$want'" >&2; exit 1; }
done
python3 "$SCRIPT_DIR/debian_sections.py" "$OUT_DIR/Packages.xz" "$OUT_DIR/Translation-en.xz" "$OUT_DIR"
