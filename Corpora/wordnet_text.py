"""WordNet 3.0 glosses (Debian's wordnet-base) as pre-training text in bert shards' format.

Each synset becomes one line, "word, word: definition." followed by its quoted examples as
sentences; consecutive synsets of the same lexicographer file (noun.animal, verb.motion, ...) are
grouped GROUP to a document, so a document's sentences share a topic, and documents are separated
by blank lines. Output is deterministic: the same package gives the same bytes.

Usage: python3 wordnet_text.py WORDNET_DIR OUT [GROUP]
"""
import os
import re
import sys


def synsets(path):
    """Yields (lex_filenum, words, gloss) for each synset line of a WordNet data.* file."""
    with open(path, encoding="utf-8", errors="replace") as f:
        for line in f:
            if line.startswith("  "):  # licence header
                continue
            head, sep, gloss = line.partition(" | ")
            if not sep:
                continue
            fields = head.split()
            lex = int(fields[1])
            count = int(fields[3], 16)
            words = [fields[4 + 2 * i] for i in range(count)]
            words = [re.sub(r"\([a-z]+\)$", "", w).replace("_", " ") for w in words]
            yield lex, words, gloss.strip()


def sentences(words, gloss):
    """The synset as sentences: its words and definition, then each quoted example."""
    parts = [p.strip() for p in gloss.split(";") if p.strip()]
    definition = [p for p in parts if not p.startswith('"')]
    examples = [p.strip('"').strip() for p in parts if p.startswith('"')]
    head = ", ".join(dict.fromkeys(words))
    out = []
    if definition:
        text = "; ".join(definition)
        out.append(f"{head}: {text}{'' if text.endswith(('.', '!', '?')) else '.'}")
    for e in examples:
        e = e.strip('"').strip()
        if e:
            out.append(e[0].upper() + e[1:] + ("" if e.endswith(('.', '!', '?')) else "."))
    return out


def main():
    root, out = sys.argv[1], sys.argv[2]
    group = int(sys.argv[3]) if len(sys.argv) > 3 else 4
    docs = 0
    with open(out + ".tmp", "w", encoding="utf-8") as w:
        for pos in ("noun", "verb", "adj", "adv"):
            current, lines, n = None, [], 0
            for lex, words, gloss in synsets(os.path.join(root, f"data.{pos}")):
                if lex != current or n == group:
                    if lines:
                        w.write("\n".join(lines) + "\n\n")
                        docs += 1
                    current, lines, n = lex, [], 0
                lines.extend(sentences(words, gloss))
                n += 1
            if lines:
                w.write("\n".join(lines) + "\n\n")
                docs += 1
    os.replace(out + ".tmp", out)
    print(f"wordnet_text.py: {docs} documents -> {out}", file=sys.stderr)


if __name__ == "__main__":
    main()
