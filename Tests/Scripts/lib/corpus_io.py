"""Small helpers shared by the oracle scripts in Tests/Scripts/ (checks/ and bench/).

Not a test by itself. Import it from a script in a sibling folder of lib/:

    sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "lib"))
    from corpus_io import read_bytes, split_lines, decode_line

`read_bytes(path)` reads a file, decompressing `.zst` with the `zstd` command line tool (Python 3.11
has no zstd module and we keep requirements.txt to `tokenizers` only). `split_lines` splits on b"\\n"
only, exactly like the `bert tokenize` contract: a trailing "\\n" does not start an extra line, "\\r" is
kept as part of the line.
"""

from __future__ import annotations

import subprocess
from pathlib import Path


def read_bytes(path: str | Path) -> bytes:
    path = Path(path)
    if path.suffix == ".zst":
        return subprocess.run(["zstd", "-dc", str(path)], check=True, stdout=subprocess.PIPE).stdout
    return path.read_bytes()


def split_lines(data: bytes) -> list[bytes]:
    """Lines of `data` split on b"\\n" only; no empty last line for a trailing newline."""
    if not data:
        return []
    lines = data.split(b"\n")
    if data.endswith(b"\n"):
        lines.pop()
    return lines


def decode_line(raw: bytes) -> str:
    """UTF-8 decode with invalid bytes replaced by U+FFFD (the CLI contract)."""
    return raw.decode("utf-8", errors="replace")


def split_documents(data: bytes) -> list[list[bytes]]:
    """Documents of a one-sentence-per-line corpus: blank (whitespace-only) lines separate them."""
    docs: list[list[bytes]] = []
    cur: list[bytes] = []
    for line in split_lines(data):
        if line.strip():
            cur.append(line)
        elif cur:
            docs.append(cur)
            cur = []
    if cur:
        docs.append(cur)
    return docs
