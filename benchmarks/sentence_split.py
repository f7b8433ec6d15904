"""Sentence splitting on real digest text: rag.text.split_sentences against other splitters.

    python benchmarks/sentence_split.py                      # ours (and the pre-change rule)
    PYTHONPATH=/path/to/pysbd-and-syntok python benchmarks/sentence_split.py   # also pysbd, syntok

Every story summary of the Last Week in AI digests (../shared) is split by each splitter, and three
error signs are counted -- no gold labels exist for this text, so each count is of a pattern that is
wrong by construction:

* missed name starts: a sentence end followed by a lowercase-first name ("... in 2023. xAI raised",
  "... launch. iPhone sales") left inside one piece;
* abbreviation splits: a piece that ends in "Inc.", "Corp.", "Co.", "Ltd.", "U.S.", "Dr.", "Mr." ...
  while the next piece starts with a lowercase word or a digit ("Microsoft Corp. | has");
* mid-sentence starts: a piece that starts with a plain lowercase word (not a name like "xAI").

and the time to split all summaries. The digests' text is read at run time, never copied.
"""
from __future__ import annotations

import re
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from ingest.loaders.digests import parse_digest  # noqa: E402
from rag.text import _ABBREV, normalize_space, split_sentences  # noqa: E402

DIGESTS = ROOT.parent / "shared" / "data" / "lastweekinai-digests" / "digests"
_NAME_START = re.compile(r"[.!?][\"'”’)\]]*\s+[\"'“‘(]?[a-z]{1,5}[A-Z]\w*")
_OLD_END = re.compile(r"([.!?…][\"'”’)\]]*)\s+(?=[\"'“‘(\[]?[A-Z0-9$€£])")
_ABBR_TAIL = re.compile(r"\b(?:" + "|".join(re.escape(a) for a in sorted(_ABBREV, key=len, reverse=True))
                        + r")\.$", re.I)


def summaries() -> list[str]:
    out = []
    for path in sorted(DIGESTS.glob("*.md")):
        out += [s.text for s in parse_digest(path.read_text(encoding="utf-8", errors="replace"), str(path))]
    return out


def previous_rule(text: str) -> list[str]:
    """The splitter before lowercase-first names were allowed to start a sentence (for comparison)."""
    import rag.text as T
    saved = T._SENT_END
    T._SENT_END = _OLD_END
    try:
        return split_sentences(text)
    finally:
        T._SENT_END = saved


def splitters() -> dict:
    out = {"newsrag": split_sentences, "newsrag (previous rule)": previous_rule}
    try:
        import pysbd
        seg = pysbd.Segmenter(language="en", clean=False)
        out["pysbd"] = lambda t: [s.strip() for p in re.split(r"\n\s*\n", t) for s in seg.segment(normalize_space(p))
                                  if s.strip()]
    except ImportError:
        print("pysbd not installed: skipped", file=sys.stderr)
    try:
        import syntok.segmenter as sseg
        out["syntok"] = lambda t: ["".join(tok.spacing + tok.value for tok in sent).strip()
                                   for para in sseg.process(t) for sent in para]
    except ImportError:
        print("syntok not installed: skipped", file=sys.stderr)
    return out


def errors(pieces: list[str]) -> tuple[int, int, int]:
    missed = sum(len(_NAME_START.findall(p)) for p in pieces)
    abbr = sum(1 for a, b in zip(pieces, pieces[1:]) if _ABBR_TAIL.search(a) and re.match(r"[\"'“‘(]?[a-z0-9]", b)
               and not re.match(r"[a-z]{1,5}[A-Z]", b))
    mid = sum(1 for p in pieces[1:] if re.match(r"[\"'“‘(]?[a-z]", p) and not re.match(r"[\"'“‘(]?[a-z]{1,5}[A-Z]", p))
    return missed, abbr, mid


def main() -> int:
    if not DIGESTS.is_dir():
        print(f"digests not found at {DIGESTS}", file=sys.stderr)
        return 2
    texts = summaries()
    print(f"{len(texts)} digest story summaries")
    print(f"{'splitter':26s} {'sentences':>9s} {'missed name starts':>19s} {'abbrev. splits':>15s} "
          f"{'mid-sentence starts':>20s} {'seconds':>8s}")
    for name, split in splitters().items():
        t0 = time.perf_counter()
        outs = [split(t) for t in texts]
        dt = time.perf_counter() - t0
        tot = [0, 0, 0]
        for pieces in outs:
            for i, v in enumerate(errors(pieces)):
                tot[i] += v
        print(f"{name:26s} {sum(map(len, outs)):9d} {tot[0]:19d} {tot[1]:15d} {tot[2]:20d} {dt:8.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
