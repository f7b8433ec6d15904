"""False positives of the instruction-like sentence detector (rag.untrusted) on real news.

    python benchmarks/untrusted_fp.py ../shared/data/lastweekinai-digests/digests [--show 20]

Every story the loaders read from the given paths is split into sentences and each sentence (and the
title) is checked. Real news reports on prompt injection and quotes chatbots, but it is never itself
addressed to the model reading it, so every flagged sentence in a news corpus is a false positive:
the count must stay near zero (tests/test_hostile.py holds the gate). The detector was written before
this script was run on the digests; nothing in it was tuned on what the script printed.
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from ingest.loaders import load_paths  # noqa: E402
from ingest.pipeline import instruction_findings  # noqa: E402
from rag.settings import Settings  # noqa: E402
from rag.text import split_sentences  # noqa: E402
from rag.untrusted import printable  # noqa: E402


def measure(paths: list[str]) -> dict:
    loaded = load_paths(paths, Settings())
    t0 = time.perf_counter()
    found = instruction_findings(loaded.stories)
    seconds = time.perf_counter() - t0
    sentences = sum(len(split_sentences(s.text)) + 1 for s in loaded.stories)
    return {"stories": len(loaded.stories), "sentences": sentences, "flagged_sentences": len(found),
            "flagged_stories": len({f["story_id"] for f in found}), "detect_seconds": round(seconds, 2),
            "flagged": found}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("paths", nargs="+")
    ap.add_argument("--show", type=int, default=20, help="print this many flagged sentences")
    args = ap.parse_args(argv)
    out = measure(args.paths)
    flagged = out.pop("flagged")
    print(json.dumps(out))
    for f in flagged[: args.show]:
        print(printable(f"- [{f['reason']}] {Path(f['path']).name}: {f['sentence'][:200]}"))
    return 0


if __name__ == "__main__":
    sys.exit(main())
