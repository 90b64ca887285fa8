#!/usr/bin/env bash
# Build BertKit's embedded default corpora from Debian packages.
#
#   Corpora/generated/en.txt        English prose (KJV + WEB Bibles): one sentence (verse) per
#                                   line, blank line between documents (chapters) - the input
#                                   format of google-research/bert create_pretraining_data.py
#   Corpora/generated/en-free.txt   the same text as free text: one paragraph (chapter) per line,
#                                   blank line between documents (for testing sentence splitting)
#   Corpora/generated/zh.txt        Chinese (fortunes-zh), same format as en.txt; a document is
#                                   one fortune entry
#   Corpora/generated/fortunes.tsv  English topic classification (fortunes): split<TAB>label<TAB>text
#
# Usage: Corpora/build.sh            (or: make corpus)
#        FORCE=1 Corpora/build.sh    rebuild even if the outputs exist
#        OUT_DIR=/some/dir Corpora/build.sh
#
# Needs Debian (apt-get) the first time: installs bible-kjv, bible-kjv-text, diatheke,
# sword-text-web, fortunes, fortunes-min, fortunes-zh (and python3) when missing.
# Output is deterministic: the same packages give the same bytes.
set -euo pipefail

SCRIPT_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
OUT_DIR="${OUT_DIR:-$SCRIPT_DIR/generated}"
FORCE="${FORCE:-0}"
FORTUNE_DIR=/usr/share/games/fortunes
WEB_MODULE=engWEB2015eb
MIN_CLASS_ENTRIES=50

export LC_ALL=C.UTF-8 LANG=C.UTF-8 PYTHONHASHSEED=0 PYTHONIOENCODING=utf-8 PYTHONUTF8=1

log() { printf '%s\n' "$*" >&2; }
die() { log "build.sh: error: $*"; exit 1; }

EN="$OUT_DIR/en.txt"
EN_FREE="$OUT_DIR/en-free.txt"
ZH="$OUT_DIR/zh.txt"
TSV="$OUT_DIR/fortunes.tsv"

# ---------------------------------------------------------------------------------------------
# summaries

summary_text() { # FILE: bytes, lines, documents (blank-line separated), non-blank lines
    local f="$1"
    awk -v name="$(basename "$f")" -v bytes="$(wc -c <"$f")" '
        NF { s++; if (!indoc) { d++; indoc = 1 } next }
        { indoc = 0 }
        END { printf "%s: %d bytes, %d lines, %d documents, %d non-blank lines\n", name, bytes, NR, d, s }
    ' "$f" >&2
}

summary_tsv() {
    local f="$1"
    awk -F'\t' -v name="$(basename "$f")" -v bytes="$(wc -c <"$f")" '
        NR > 1 { n[$1]++; if (!($2 in seen)) { seen[$2] = 1; k++ } }
        END { printf "%s: %d bytes, %d lines, %d rows (train %d, test %d), %d labels\n",
                     name, bytes, NR, NR - 1, n["train"], n["test"], k }
    ' "$f" >&2
}

need_build() { [[ "$FORCE" == 1 || ! -s "$1" ]]; }

if ! need_build "$EN" && ! need_build "$EN_FREE" && ! need_build "$ZH" && ! need_build "$TSV"; then
    log "corpora up to date in $OUT_DIR (FORCE=1 to rebuild)"
    summary_text "$EN"; summary_text "$EN_FREE"; summary_text "$ZH"; summary_tsv "$TSV"
    exit 0
fi

# ---------------------------------------------------------------------------------------------
# dependencies (installed only when missing)

missing=()
command -v python3 >/dev/null 2>&1 || missing+=(python3)
if need_build "$EN" || need_build "$EN_FREE"; then
    command -v bible >/dev/null 2>&1 || missing+=(bible-kjv)
    [[ -e /usr/lib/bible.data ]] || missing+=(bible-kjv-text)
    command -v diatheke >/dev/null 2>&1 || missing+=(diatheke)
    [[ -e /usr/share/sword/mods.d/$WEB_MODULE.conf ]] || missing+=(sword-text-web)
fi
if need_build "$ZH"; then
    for f in chinese tang300 song100; do
        [[ -f $FORTUNE_DIR/$f ]] || { missing+=(fortunes-zh); break; }
    done
fi
if need_build "$TSV"; then
    [[ -f $FORTUNE_DIR/cookie ]] || missing+=(fortunes)
    [[ -f $FORTUNE_DIR/fortunes ]] || missing+=(fortunes-min)
fi
if ((${#missing[@]})); then
    command -v apt-get >/dev/null 2>&1 || die "missing ${missing[*]} and no apt-get (needs Debian/Ubuntu)"
    SUDO=()
    if [[ $(id -u) -ne 0 ]]; then
        command -v sudo >/dev/null 2>&1 || die "missing ${missing[*]}; run as root or install them"
        SUDO=(sudo)
    fi
    log "installing: ${missing[*]}"
    export DEBIAN_FRONTEND=noninteractive
    "${SUDO[@]}" apt-get update -qq >&2
    "${SUDO[@]}" apt-get install -y -qq --no-install-recommends "${missing[@]}" >&2
fi

mkdir -p "$OUT_DIR"
TMP="$(mktemp -d "${TMPDIR:-/tmp}/bertkit-corpora.XXXXXX")"
trap 'rm -rf "$TMP"; rm -f "$OUT_DIR"/.*.tmp.$$' EXIT

publish() { # TMPFILE FINAL: atomic replace
    local tmp="$1" final="$2" staged
    [[ -s "$tmp" ]] || die "produced an empty $(basename "$final")"
    staged="$OUT_DIR/.$(basename "$final").tmp.$$"
    cp "$tmp" "$staged"
    mv -f "$staged" "$final"
}

# ---------------------------------------------------------------------------------------------
# English: King James Version (bible-kjv) + World English Bible (sword-text-web)

if need_build "$EN"; then
    # bible output: "Genesis 1" header line per chapter, then "  <n> <verse text>" per verse.
    bible -l100000 'gen1:1-rev22:21' >"$TMP/kjv.raw"
    # diatheke OSIS output: one verse per line, "<junk>Book C:V: <w>..</w> ...". The junk before
    # the reference is a psalm title that diatheke 1.9 keeps repeating on every later verse; the
    # plain (-f plain) format has the same leak plus wrapped poetry lines, so we use OSIS.
    diatheke -b "$WEB_MODULE" -l en -e UTF8 -f OSIS -k 'Gen 1:1-Rev 22:21' >"$TMP/web.osis"

    python3 - "$TMP/kjv.raw" "$TMP/web.osis" "$TMP/en.txt" <<'PY'
import re, sys

kjv_path, web_path, out_path = sys.argv[1:4]
docs = []  # list of (key, [sentences])

def add(key, sentence):
    if not sentence:
        return
    if not docs or docs[-1][0] != key:
        docs.append((key, []))
    docs[-1][1].append(sentence)

ws = re.compile(r'\s+')

# --- KJV
header = re.compile(r'^(\S.*?) (\d+)$')
verse = re.compile(r'^\s+(\d+) (.*)$')
key = None
n_kjv = 0
with open(kjv_path, encoding='utf-8') as f:
    for line in f:
        line = line.rstrip('\n')
        if not line.strip():
            continue
        m = header.match(line)
        if m:
            key = ('kjv', m.group(1), m.group(2))
            continue
        m = verse.match(line)
        if not m or key is None:
            sys.exit('unexpected line in bible output: %r' % line[:100])
        add(key, ws.sub(' ', m.group(2)).strip())
        n_kjv += 1

# --- WEB (OSIS)
ref = re.compile(r'(?:^|(?<=  )|(?<=>))'
                 r'((?:I{1,3} |IV )?[A-Z][A-Za-z]*(?: (?:of|and|the|[A-Z][A-Za-z]*|\(Greek\)))*)'
                 r' (\d+):(\d+): ')
glossary = 'The following words used in the World English Bible'
n_web = 0
with open(web_path, encoding='utf-8') as f:
    for line in f:
        line = line.rstrip('\n')
        if not line.strip() or re.fullmatch(r'\(\w+\)', line.strip()):
            continue  # trailing "(engWEB2015eb)"
        m = ref.search(line)
        if not m:
            sys.exit('unexpected line in diatheke output: %r' % line[:100])
        t = line[m.end():]
        i = t.find(glossary)            # the module appends its glossary to Rev 22:21
        if i >= 0:
            t = t[:i]
        t = re.sub(r'</w><w', '</w> <w', t)          # adjacent words tagged without a space
        t = re.sub(r'</?w(?: [^>]*)?>', '', t)       # word tags: drop, keeping the text as is
        t = re.sub(r'<[^>]*>', ' ', t)               # other markup (milestones, lines): a space
        t = t.replace('&lt;', '<').replace('&gt;', '>').replace('&quot;', '"').replace('&amp;', '&')
        t = re.sub(r'([,;:.!?])(?=[A-Za-z])', r'\1 ', t)  # "Christ,the" -> "Christ, the"
        t = re.sub(r'\b([a-z]+)(?=[A-Z][a-z])', r'\1 ', t)  # "ofZamoth" -> "of Zamoth"
        t = ws.sub(' ', t).strip()
        t = re.sub(r' ([,;:.!?])', r'\1', t)          # "word ," left by markup removal
        add(('web', m.group(1), m.group(2)), t)
        n_web += 1

if n_kjv < 30000 or n_web < 30000:
    sys.exit('too few verses: kjv=%d web=%d' % (n_kjv, n_web))
with open(out_path, 'w', encoding='utf-8', newline='\n') as out:
    out.write('\n\n'.join('\n'.join(s) for _, s in docs))
    out.write('\n')
PY
    publish "$TMP/en.txt" "$EN"
    EN_REBUILT=1
fi

if [[ ${EN_REBUILT:-0} == 1 ]] || need_build "$EN_FREE"; then
    # one line per document: its sentences joined with single spaces
    awk 'NF { p = (p == "" ? $0 : p " " $0); next }
         p != "" { printf "%s%s\n", (n++ ? "\n" : ""), p; p = "" }
         END { if (p != "") printf "%s%s\n", (n++ ? "\n" : ""), p }' "$EN" >"$TMP/en-free.txt"
    publish "$TMP/en-free.txt" "$EN_FREE"
fi

# ---------------------------------------------------------------------------------------------
# Chinese: fortunes-zh

if need_build "$ZH"; then
    python3 - "$FORTUNE_DIR" "$TMP/zh.txt" <<'PY'
import re, sys, unicodedata

fdir, out_path = sys.argv[1:3]
ansi = re.compile(r'\x1b\[[0-9;]*[A-Za-z]')
overstrike = re.compile(r'.\x08')
box = re.compile(r'[\u2500-\u257f]')
# sentence end: terminal punctuation plus any closing quotes/brackets
sent_end = re.compile(r'([。！？!?…]+[”’」』）)》]*)')
terminal = tuple('。！？!?…')
closers = '”’」』）)》"\''
continuing = tuple('，、；：,;:')

def width(s):
    return sum(2 if unicodedata.east_asian_width(c) in 'WF' else 1 for c in s)

def join(a, b):
    if a and b and a[-1].isascii() and a[-1].isalnum() and b[0].isascii() and b[0].isalnum():
        return a + ' ' + b
    return a + b

def entry_lines(entry):
    """Logical lines of one fortune: metadata dropped, hard-wrapped prose re-joined."""
    out, cur = [], None
    for raw in entry.split('\n'):
        line = re.sub(r'\s+', ' ', raw).strip()
        line = re.sub(r'^[*•●○] ', '', line)  # list bullets
        if (not line or line.startswith('--') or line.startswith('——')
                or line.startswith('作者') or box.search(line) or line[:2] in ('$ ', '# ')):
            if cur is not None:
                out.append(cur)
                cur = None
            continue
        line = re.sub(r'^题目[:：]\s*', '', line)
        if cur is None:
            cur = line
        else:
            cur = join(cur, line)
        # Re-join hard-wrapped text: a line continues on the next one when it ends inside a
        # sentence (after a comma-like mark), or ends without punctuation and is long (the source
        # wraps prose at ~64-79 columns). Short unpunctuated lines (titles, headings) stand alone.
        core = line.rstrip(closers)
        if core.endswith(terminal) or not (core.endswith(continuing) or width(raw.rstrip()) >= 60):
            out.append(cur)
            cur = None
    if cur is not None:
        out.append(cur)
    return out

docs = []
for name in ('chinese', 'tang300', 'song100'):
    with open('%s/%s' % (fdir, name), encoding='utf-8') as f:
        text = f.read()
    prev = None
    while prev != text:  # nested escapes such as "\x1b[;\x1b[34;1mm" need more than one pass
        prev, text = text, ansi.sub('', text)
    text = overstrike.sub('', text).replace('\x1b', '').replace('\r', '')
    for entry in re.split(r'\n%\n', '\n' + text + '\n'):
        sents = []
        for line in entry_lines(entry):
            for s in sent_end.sub(r'\1\n', line).split('\n'):
                s = s.strip()
                if s:
                    sents.append(s)
        if sents:
            docs.append(sents)

if len(docs) < 5000:
    sys.exit('too few Chinese documents: %d' % len(docs))
with open(out_path, 'w', encoding='utf-8', newline='\n') as out:
    out.write('\n\n'.join('\n'.join(s) for s in docs))
    out.write('\n')
PY
    publish "$TMP/zh.txt" "$ZH"
fi

# ---------------------------------------------------------------------------------------------
# English classification: fortunes categories (fortunes + fortunes-min; never off/)

if need_build "$TSV"; then
    # the category files of exactly these two packages, so other installed fortune packages
    # (fortunes-zh, fortunes-off, fortunes-bofh-excuses, ...) cannot change the output
    if command -v dpkg-query >/dev/null 2>&1; then
        dpkg-query -L fortunes fortunes-min | grep -E "^$FORTUNE_DIR/[a-z0-9-]+\$" | sort -u >"$TMP/cats"
    else
        find "$FORTUNE_DIR" -maxdepth 1 -type f -name '*.dat' | sed 's/\.dat$//' |
            grep -vE '/(chinese|tang300|song100)$' | sort -u >"$TMP/cats"
    fi
    [[ -s "$TMP/cats" ]] || die "no fortune category files found in $FORTUNE_DIR"

    python3 - "$TMP/cats" "$MIN_CLASS_ENTRIES" "$TMP/fortunes.tsv" <<'PY'
import hashlib, os, re, sys

cats_path, min_entries, out_path = sys.argv[1], int(sys.argv[2]), sys.argv[3]
paths = [p.strip() for p in open(cats_path, encoding='utf-8') if p.strip()]
overstrike = re.compile(r'.\x08')
ctrl = re.compile(r'[\x00-\x08\x0b-\x1f\x7f]')
rows, skipped = [], []
for path in sorted(paths, key=os.path.basename):
    label = os.path.basename(path)
    with open(path, encoding='utf-8', errors='replace') as f:
        text = f.read()
    text = overstrike.sub('', text)
    seen, entries = set(), []
    for e in re.split(r'\n%\n', '\n' + text + '\n'):
        e = ' '.join(ctrl.sub(' ', e).split())
        if e and e != '%' and e not in seen:
            seen.add(e)
            entries.append(e)
    if len(entries) < min_entries:
        skipped.append('%s(%d)' % (label, len(entries)))
        continue
    for e in entries:
        # ~80/20 split by a hash of the text (identical texts land in the same split)
        h = int(hashlib.md5(e.encode('utf-8')).hexdigest()[:8], 16)
        rows.append(('test' if h % 5 == 0 else 'train', label, e))
if skipped:
    print('fortunes.tsv: skipped categories with < %d entries: %s' % (min_entries, ' '.join(skipped)),
          file=sys.stderr)
with open(out_path, 'w', encoding='utf-8', newline='\n') as out:
    out.write('split\tlabel\ttext\n')
    for r in rows:
        out.write('\t'.join(r) + '\n')
PY
    publish "$TMP/fortunes.tsv" "$TSV"
fi

summary_text "$EN"; summary_text "$EN_FREE"; summary_text "$ZH"; summary_tsv "$TSV"
