#!/usr/bin/env python3
"""Debian package descriptions and their archive sections: a corpus and a task the default pipeline
never sees (issue 10's check that the pre-training recipe carries over).

Reads Debian's own index files (bookworm main, amd64):
  Packages.xz        Package, Source, Section, Description-md5
  Translation-en.xz  Description-md5 -> Description-en (one-line summary + long description)

Writes:
  debian-sections.tsv   split<TAB>label<TAB>text: the section (admin, devel, games, libs, python,
                        science, ...) of a package from its English description. Split by source package
                        (a stable hash of its name: about 20% test), so the many binary packages of one
                        source never sit on both sides. Identical descriptions are kept once. Sections
                        with fewer than MIN_TRAIN train rows are dropped; each section keeps at most
                        MAX_TRAIN train and MAX_TRAIN // 4 test rows (chosen by a stable hash), so the
                        file stays small and fine-tuning cheap.
  debian-train.txt      the train rows' descriptions as documents (blank line between): text for
                        task-adaptive pre-training, never containing a test row.

Usage: debian_sections.py PACKAGES_XZ TRANSLATION_XZ OUT_DIR
Deterministic for given index files.
"""
import hashlib
import lzma
import sys

MIN_TRAIN = 150
MAX_TRAIN = 300


def stanzas(path):
    with lzma.open(path, "rt", encoding="utf-8", errors="replace") as f:
        fields, key = {}, None
        for line in f:
            line = line.rstrip("\n")
            if not line:
                if fields:
                    yield fields
                fields, key = {}, None
            elif line[0] in " \t" and key:
                fields[key] += "\n" + line
            else:
                key, _, value = line.partition(":")
                fields[key] = value.strip()
        if fields:
            yield fields


def description_text(value):
    """Summary line plus the long description as one line (paragraph dots dropped)."""
    lines = value.split("\n")
    parts = [lines[0].strip().rstrip(".") + "."]
    for line in lines[1:]:
        s = line.strip()
        if s and s != ".":
            parts.append(s)
    return " ".join(" ".join(parts).replace("\t", " ").split())


def stable(name, salt):
    return int(hashlib.sha256((salt + name).encode()).hexdigest()[:12], 16)


def main():
    packages, translations, out = sys.argv[1:4]
    texts = {}
    for st in stanzas(translations):
        if "Description-md5" in st and "Description-en" in st:
            texts[st["Description-md5"]] = description_text(st["Description-en"])
    rows, seen = [], set()
    for st in stanzas(packages):
        md5, section = st.get("Description-md5"), st.get("Section", "")
        text = texts.get(md5)
        if not text or not section or len(text.split()) < 8:
            continue
        section = section.split("/")[-1]
        source = st.get("Source", st["Package"]).split()[0]
        if text in seen:
            continue
        seen.add(text)
        split = "test" if stable(source, "split:") % 5 == 0 else "train"
        rows.append((split, section, text, st["Package"]))
    train_counts = {}
    for split, section, _, _ in rows:
        if split == "train":
            train_counts[section] = train_counts.get(section, 0) + 1
    kept = {s for s, n in train_counts.items() if n >= MIN_TRAIN}
    chosen = []
    for split in ("train", "test"):
        cap = MAX_TRAIN if split == "train" else MAX_TRAIN // 4
        for section in sorted(kept):
            group = [r for r in rows if r[0] == split and r[1] == section]
            group.sort(key=lambda r: stable(r[3], "pick:"))
            chosen += group[:cap]
    with open(f"{out}/debian-sections.tsv", "w", encoding="utf-8") as f:
        f.write("split\tlabel\ttext\n")
        for split, section, text, _ in chosen:
            f.write(f"{split}\t{section}\t{text}\n")
    with open(f"{out}/debian-train.txt", "w", encoding="utf-8") as f:
        for split, _, text, _ in chosen:
            if split == "train":
                f.write(text + "\n\n")
    n = {s: sum(1 for r in chosen if r[0] == s) for s in ("train", "test")}
    print(f"debian-sections.tsv: {len(kept)} sections, {n['train']} train, {n['test']} test rows", file=sys.stderr)


if __name__ == "__main__":
    main()
