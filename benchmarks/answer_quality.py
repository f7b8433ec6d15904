"""What the answers say: key fact present, first citation on the gold story, "latest" led by the newest.

    python benchmarks/answer_quality.py --store DIGESTS_STORE --gold evals/bank/test.jsonl --only-store digests --split test
    python benchmarks/answer_quality.py --store CORPUS_STORE --gold evals/bank/test.jsonl --only-store corpus --split test

For every answerable question of a gold file (evals/gold.py format, or lines with question +
gold_story_ids / gold_id and optional must_include) the real NewsBot answers, extractive generator,
"today" pinned per question, follow-ups asked with their conversation's earlier turns. Reported:

* key fact: every must_include string occurs in the answer (evals.metrics.normalize_for_match on
  both sides), over answered questions and over all answerable ones (a refusal counts as a miss);
* first citation gold: the first [n] in the answer cites a gold story (timelines excluded: they are
  chronological by design);
* latest lead: for "latest"/"most recent" questions, the first cited story is at least as new as the
  newest gold story;
* citations outside sources: cited stories missing from the answer's `sources` (the JSON contract
  says 0).

The split label is printed with every figure: numbers are only honest on a split nothing was tuned on.
"""
from __future__ import annotations

import argparse
import json
import re
import statistics
import sys
import time
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

LATEST = re.compile(r"\b(latest|most recent|newest|recently)\b", re.I)
_MARKER = re.compile(r"\[(\d{1,3})\]")


@dataclass
class Question:
    id: str
    question: str
    gold: list[str]
    must_include: list[str] = field(default_factory=list)
    type: str = ""
    today: date = date(2026, 6, 1)
    conversation: str | None = None


def load_questions(path: Path, store: str | None = None, every: int = 1) -> list[Question]:
    """Answerable questions of a gold file or a bank split (evals/bank/*.jsonl: `store` picks the
    questions asked of that store, "digests" or "corpus"); `every` keeps every n-th (a sample)."""
    out = []
    for i, line in enumerate(l for l in path.read_text(encoding="utf-8").splitlines() if l.strip()):
        raw = json.loads(line)
        if i % every or (store and raw.get("store", raw.get("corpus", store)) != store):
            continue
        gold = list(raw.get("gold_story_ids") or ([raw["gold_id"]] if raw.get("gold_id") else []))
        if raw.get("type") == "unanswerable" or raw.get("answerable") is False or not gold:
            continue
        out.append(Question(str(raw.get("id", len(out))), raw["question"], gold, list(raw.get("must_include") or []),
                            raw.get("type") or raw.get("kind", ""), date.fromisoformat(raw.get("today") or "2026-06-01"),
                            raw.get("conversation")))
    return out


def first_cited(answer) -> str | None:
    by_n = {c.n: c.story_id for c in answer.citations}
    for m in _MARKER.finditer(answer.text):
        sid = by_n.get(int(m.group(1)))
        if sid:
            return sid
    return None


def evaluate(bot, questions: list[Question]) -> tuple[dict, list[dict]]:
    from evals.metrics import normalize_for_match

    rows = []
    history: dict[str, list[tuple[str, str]]] = {}
    for q in questions:
        bot.settings.today = q.today
        hist = history.get(q.conversation, []) if q.conversation else []
        t0 = time.perf_counter()
        a = bot.ask(q.question, history=hist or None)
        dt = time.perf_counter() - t0
        if q.conversation:
            history.setdefault(q.conversation, []).append((q.question, a.text))
        text = normalize_for_match(a.text)
        dates = {s.story_id: s.published_at for s in a.sources}
        for c in a.citations:
            dates.setdefault(c.story_id, c.published_at)
        first = first_cited(a)
        gold_dates = [bot.store.story_row(g).published_at for g in q.gold if bot.store.story_row(g) is not None]
        listed = {s.story_id for s in a.sources}
        rows.append({
            "id": q.id, "question": q.question, "type": q.type, "refused": a.refused, "seconds": dt,
            "key_fact": bool(q.must_include) and all(normalize_for_match(m) in text for m in q.must_include),
            "has_key_fact": bool(q.must_include),
            "first_gold": first in set(q.gold), "first": first,
            "latest": bool(q.type == "latest" or LATEST.search(q.question)) and q.type != "timeline",
            "latest_ok": bool(first and gold_dates and dates.get(first) and dates[first] >= max(gold_dates)),
            "outside": sorted({c.story_id for c in a.citations} - listed),
            "timeline": q.type == "timeline",
            "answer": a.text,
        })
    return summarise(rows), rows


def _rate(xs: list[bool]) -> float | None:
    return round(sum(xs) / len(xs), 3) if xs else None


def summarise(rows: list[dict]) -> dict:
    answered = [r for r in rows if not r["refused"]]
    facts = [r for r in rows if r["has_key_fact"]]
    firsts = [r for r in answered if not r["timeline"]]
    latest = [r for r in answered if r["latest"]]
    return {
        "questions": len(rows), "refused": sum(r["refused"] for r in rows),
        "key_fact_answered": _rate([r["key_fact"] for r in facts if not r["refused"]]),
        "key_fact_all": _rate([r["key_fact"] for r in facts]),
        "first_citation_gold": _rate([r["first_gold"] for r in firsts]),
        "latest_lead_newest": _rate([r["latest_ok"] for r in latest]), "latest_questions": len(latest),
        "citations_outside_sources": sum(len(r["outside"]) for r in rows),
        "answer_p50_ms": round(1000 * statistics.median([r["seconds"] for r in rows]), 1) if rows else None,
    }


def open_bot(store: Path):
    import rag.offline  # noqa: F401
    from rag.pipeline import NewsBot
    from rag.settings import Settings

    return NewsBot(Settings(store_dir=store, generator="extractive"))


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--store", type=Path, required=True)
    ap.add_argument("--gold", type=Path, action="append", required=True, help="gold JSONL (repeatable)")
    ap.add_argument("--split", required=True, help="which split these questions are (train/dev/test): printed")
    ap.add_argument("--only-store", choices=("digests", "corpus"),
                    help="bank files: only the questions asked of this store")
    ap.add_argument("--misses", action="store_true", help="list every question that misses a target")
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args(argv)
    bot = open_bot(args.store)
    questions = [q for g in args.gold for q in load_questions(g, args.only_store)]
    summary, rows = evaluate(bot, questions)
    summary = {"split": args.split, "gold": [str(g) for g in args.gold], "store": args.only_store or "", **summary}
    if args.json:
        print(json.dumps({"summary": summary, "rows": rows}, indent=1, default=str))
        return 0
    if args.misses:
        for r in rows:
            bad = [k for k, ok in (("refused", not r["refused"]), ("key fact", r["key_fact"] or not r["has_key_fact"]),
                                   ("first citation", r["first_gold"] or r["timeline"] or r["refused"]),
                                   ("latest", r["latest_ok"] or not r["latest"] or r["refused"])) if not ok]
            if bad:
                print(f"- {r['id']} [{', '.join(bad)}] {r['question']}\n    {r['answer'][:300]!r}")
    for k, v in summary.items():
        print(f"{k:28s} {v}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
