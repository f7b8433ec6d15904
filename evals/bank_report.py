"""Answerability and multi-story retrieval figures of the question bank, for one split.

    python -m evals.bank_report --split test --digests-store /work/stores/digests --corpus-store DIR

Asks every bank question of its store (digests or corpus) with the real NewsBot (extractive generator,
"today" pinned to the question's) and prints, per split:

  near_miss_refused        share of near-miss questions refused ("Llama 7" when the store has Llama 4)
  premise_false_refused    share of events the store never reports (between organisations it holds)
  quiz_refused             RealTime QA / RGB news-quiz questions without an AI word (read from ../shared)
  answerable_refused       plain answerable questions refused (generated and hand-written)
  compositional_refused    long (30-60 words) questions over two or three stories refused
  multi_story_top10        multi-story questions with every gold story among the top 10 retrieved

The README's quality section reports `--split test`; evals.calibrate fits on train and picks its
threshold on dev, so test is never tuned on.
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from datetime import date
from pathlib import Path

from evals.bank import BANK_DIR, load_bank, split_of

PLAIN = ("answerable", "answerable_versioned", "answerable_amount")


def quiz_rows(split: str) -> list[dict]:
    """News-quiz questions from ../shared (never copied into the repo), split by a hash of their id."""
    from benchmarks.quality import realtimeqa_cases, rgb_cases

    out = []
    for c in realtimeqa_cases() + rgb_cases():
        if split_of(c.id) == split:
            out.append({"id": c.id, "split": split, "store": "digests", "kind": "quiz", "question": c.question,
                        "answerable": False, "gold_story_ids": [], "today": c.today.isoformat()})
    return out


def bank_rows(split: str, *, bank: Path = BANK_DIR, quiz: bool = True) -> list[dict]:
    rows = load_bank(split, bank)
    return rows + (quiz_rows(split) if quiz else [])


def open_bots(digests_store: Path | None, corpus_store: Path | None) -> dict:
    from benchmarks.quality import open_bot

    bots = {}
    if digests_store:
        bots["digests"] = open_bot(digests_store)
    if corpus_store:
        bots["corpus"] = open_bot(corpus_store)
    return bots


def run_rows(bots: dict, rows: list[dict], *, ask: bool, progress: bool = True) -> list[dict]:
    """Per question: the decision's features, its probability, ranks of gold stories, and (ask) refused."""
    from benchmarks.quality import pinned_today

    out = []
    todo = [r for r in rows if r["store"] in bots]
    t0 = time.perf_counter()
    for i, row in enumerate(todo):
        bot = bots[row["store"]]
        today = date.fromisoformat(row.get("today") or "2026-06-01")
        with pinned_today(bot, today):
            r = bot.retriever.retrieve(row["question"], today=today)
            ids = [s.story_id for s in r.stories]
            res = {**row, "features": {k: v for k, v in r.answerability.items() if k != "p"},
                   "p": r.answerability.get("p", 0.0), "relevant": r.relevant,
                   "gold_ranks": [ids.index(g) + 1 if g in ids else None for g in row.get("gold_story_ids", [])]}
            if ask:
                res["refused"] = bool(bot.ask(row["question"]).refused)
        out.append(res)
        if progress and (i + 1) % 100 == 0:
            print(f"  {i + 1}/{len(todo)}  {time.perf_counter() - t0:.0f}s", file=sys.stderr, flush=True)
    return out


def _rate(xs: list[bool]) -> float | None:
    return round(sum(xs) / len(xs), 4) if xs else None


def summarise(results: list[dict]) -> dict:
    def refused(r: dict) -> bool:
        return r["refused"] if "refused" in r else not r["relevant"]

    def kind(*ks: str, answerable: bool | None = None) -> list[dict]:
        return [r for r in results if r["kind"] in ks and (answerable is None or r["answerable"] == answerable)]

    multi = [r for r in results if r["answerable"] and len(r.get("gold_story_ids") or []) >= 2]
    single = [r for r in results if r["answerable"] and len(r.get("gold_story_ids") or []) == 1]
    plain = kind(*PLAIN) + kind("handwritten", answerable=True)
    summary = {
        "near_miss_refused": _rate([refused(r) for r in kind("near_miss")]),
        "premise_false_refused": _rate([refused(r) for r in kind("premise_false")]),
        "quiz_refused": _rate([refused(r) for r in kind("quiz")]),
        "handwritten_unanswerable_refused": _rate([refused(r) for r in kind("handwritten", answerable=False)]),
        "answerable_refused": _rate([refused(r) for r in plain]),
        "compositional_refused": _rate([refused(r) for r in kind("compositional")]),
        "multi_story_top10": _rate([all(x is not None and x <= 10 for x in r["gold_ranks"]) for r in multi]),
        "single_story_top5": _rate([r["gold_ranks"][0] is not None and r["gold_ranks"][0] <= 5 for r in single]),
        "counts": {k: len(v) for k, v in {
            "near_miss": kind("near_miss"), "premise_false": kind("premise_false"), "quiz": kind("quiz"),
            "handwritten_unanswerable": kind("handwritten", answerable=False), "answerable": plain,
            "compositional": kind("compositional"), "multi_story": multi, "single_story": single}.items()},
        "by_store": {},
    }
    for store in sorted({r["store"] for r in results}):
        sub = [r for r in results if r["store"] == store]
        summary["by_store"][store] = {
            "near_miss_refused": _rate([refused(r) for r in sub if r["kind"] == "near_miss"]),
            "answerable_refused": _rate([refused(r) for r in sub if r["answerable"] and r["kind"] != "compositional"]),
            "compositional_refused": _rate([refused(r) for r in sub if r["kind"] == "compositional"]),
            "n": len(sub)}
    return summary


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--split", choices=("train", "dev", "test"), default="test")
    ap.add_argument("--digests-store", type=Path)
    ap.add_argument("--corpus-store", type=Path)
    ap.add_argument("--bank", type=Path, default=BANK_DIR)
    ap.add_argument("--no-ask", action="store_true", help="the retrieval decision only (no generation)")
    ap.add_argument("--limit", type=int, default=0, help="at most this many questions per kind (0: all)")
    ap.add_argument("--out", type=Path, help="write every question's result here (JSONL)")
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args(argv)
    if not args.digests_store and not args.corpus_store:
        ap.error("give --digests-store and/or --corpus-store")
    rows = bank_rows(args.split, bank=args.bank)
    if args.limit:
        kept, per = [], {}
        for r in rows:
            key = (r["store"], r["kind"], r["answerable"])
            if per.get(key, 0) < args.limit:
                per[key] = per.get(key, 0) + 1
                kept.append(r)
        rows = kept
    bots = open_bots(args.digests_store, args.corpus_store)
    t0 = time.perf_counter()
    results = run_rows(bots, rows, ask=not args.no_ask, progress=not args.json)
    summary = summarise(results)
    summary["split"] = args.split
    summary["seconds"] = round(time.perf_counter() - t0, 1)
    summary["command"] = "python -m evals.bank_report " + " ".join(argv if argv is not None else sys.argv[1:])
    if args.out:
        args.out.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in results), encoding="utf-8")
    print(json.dumps(summary, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
