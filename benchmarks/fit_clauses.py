"""Choose how long questions are split into searched windows (rag.calibration.CLAUSES).

    python benchmarks/fit_clauses.py --store DIGESTS_STORE --split dev

For each setting of a small grid, every multi-story question of the split (the bank's long
compositional questions) is retrieved with its windows, and the share with every gold story in the
top 10 is printed, beside the share of single-story answerable questions whose gold story stays first
(windows must not push the answering story down). Train or dev only: the test split is for reporting.
"""
from __future__ import annotations

import argparse
import sys
from datetime import date
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

# (min_words, width, stride, candidates); None = no windows
GRID = [None, (25, 14, 8, 40), (25, 14, 14, 40), (25, 14, 8, 30), (25, 14, 14, 30), (25, 14, 14, 20),
        (25, 10, 10, 30), (25, 18, 18, 30), (20, 14, 14, 30)]


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--store", type=Path, required=True)
    ap.add_argument("--split", choices=("train", "dev"), required=True)
    args = ap.parse_args(argv)

    import rag.offline  # noqa: F401
    from benchmarks.quality import open_bot, pinned_today
    from evals.bank import load_bank
    from rag.calibration import CLAUSES
    from rag.retrieval import clause_queries

    bot = open_bot(args.store)
    rows = [r for r in load_bank(args.split) if r["store"] == "digests" and r.get("answerable")]
    multi = [r for r in rows if len(r.get("gold_story_ids") or []) > 1]
    single = [r for r in rows if len(r.get("gold_story_ids") or []) == 1 and len(r["question"].split()) >= 20]
    print(f"{args.split}: {len(multi)} multi-story questions, {len(single)} single-story ones of 20+ words")
    for setting in GRID:
        top10 = first = 0
        for group in (multi, single):
            for r in group:
                today = date.fromisoformat(r.get("today") or "2026-06-01")
                clauses = [] if setting is None else clause_queries(
                    r["question"], min_words=setting[0], width=setting[1], stride=setting[2])
                if setting is not None:
                    CLAUSES["candidates"] = setting[3]
                with pinned_today(bot, today):
                    got = bot.retriever.retrieve(r["question"], today=today, clauses=clauses)
                ids = [s.story_id for s in got.stories[:10]]
                if group is multi:
                    top10 += all(g in ids for g in r["gold_story_ids"])
                else:
                    first += bool(ids) and ids[0] == r["gold_story_ids"][0]
        label = "no windows" if setting is None else "min_words=%d width=%d stride=%d candidates=%d" % setting
        single_txt = f"{first / len(single):.3f}" if single else "n/a (none in this split)"
        print(f"{label:48s} multi-story all gold in top 10 {top10 / max(1, len(multi)):.3f}   "
              f"single-story gold first {single_txt}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
