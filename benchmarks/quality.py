"""Retrieval and refusal quality of the real pipeline over a built store.

    python benchmarks/quality.py --store /work/digests-store
    python benchmarks/quality.py --store /tmp/corpus-store --corpus      # shipped corpus: false refusals only

Answerable questions (tests/data/dev_digests.jsonl) each name the one digest story that answers them;
we report where that story ranks in Retrieval.stories (hit@1, hit@5, MRR) and whether NewsBot refused.
Unanswerable questions are our own (tests/data/dev_refusal.jsonl) plus news-quiz questions read at run
time from ../shared (RealTime QA, RGB): their text is never copied into this repository. Quiz questions
that touch AI or tech companies are dropped by keyword, since the AI-news digests may answer those.

These development questions are in the question bank's train split (evals/bank/); the quality bar that
tests/test_quality.py asserts is measured on the bank's test split by `python -m evals.bank_report`.
"today" is pinned per question (default 2026-06-01) so time words ("last month", "this week") mean the
same thing on every run.
"""
from __future__ import annotations

import argparse
import hashlib
import json
import re
import statistics
import sys
import time
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path
from typing import Iterator

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

DATA = ROOT / "tests" / "data"
DEV_DIGESTS = DATA / "dev_digests.jsonl"
DEV_REFUSAL = DATA / "dev_refusal.jsonl"
SHARED = ROOT.parent / "shared" / "data"
DEFAULT_TODAY = date(2026, 6, 1)
REALTIMEQA_SAMPLE = 160

# Questions the shipped corpus/ answers (our own wording): asked of a corpus store they must not be refused.
CORPUS_QUESTIONS = [
    ("corpus-01", "Why did OpenAI initially hold back the full GPT-2 model?", "2026-06-01"),
    ("corpus-02", "How many transistors does Nvidia's H100 have?", "2026-06-01"),
    ("corpus-03", "Which companies stopped selling face recognition to police in 2020?", "2026-06-01"),
    ("corpus-04", "What did DeepMind's AlphaFold achieve at CASP14?", "2026-06-01"),
    ("corpus-05", "How much did Microsoft invest in OpenAI in 2023?", "2026-06-01"),
    ("corpus-06", "Why was Sam Altman fired by the OpenAI board?", "2026-06-01"),
    ("corpus-07", "What is Alibaba's Qwen3-Next?", "2026-06-01"),
    ("corpus-08", "What did Anthropic say about Chinese labs distilling Claude?", "2026-06-01"),
    ("corpus-09", "What did the jury decide in Musk's lawsuit against OpenAI?", "2026-06-01"),
    ("corpus-10", "What are the latest Gemini models from Google?", "2026-06-01"),
    ("corpus-11", "What did Google announce at I/O in May 2026?", "2026-06-01"),
    ("corpus-12", "How much did Nvidia pay for Groq?", "2026-06-01"),
    ("corpus-13", "What did the Pope's encyclical say about AI?", "2026-06-01"),
    ("corpus-14", "What did Meta announce about layoffs last month?", "2026-06-01"),
    ("corpus-15", "Compare Claude Opus 4.5 and Gemini 3", "2026-06-01"),
]

# News-quiz questions mentioning any of these could be about AI or tech news the digests cover.
TECH = re.compile(
    r"\b(a\.?i\.?|artificial|intelligen\w*|chat ?gpt|gpt|openai|chatbot\w*|bots?|robot\w*|algorithm\w*|"
    r"machine|learning|neural|deepfake\w*|autonomous|self-driving|driverless|automat\w*|tech\w*|software|"
    r"computer\w*|comput\w*|digital|internet|online|web\w*|apps?|cyber\w*|hack\w*|data|chips?|"
    r"semiconductor\w*|silicon|gpus?|smartphones?|iphone|android|social media|platform|streaming|"
    r"google|alphabet|apple|microsoft|amazon|meta|facebook|instagram|whatsapp|twitter|tweet\w*|x corp|"
    r"tiktok|bytedance|youtube|netflix|tesla|spacex|starlink|musk|zuckerberg|bezos|altman|nvidia|intel|"
    r"amd|ibm|samsung|huawei|baidu|alibaba|tencent|uber|lyft|waymo|anthropic|deepmind|gemini|bard|copilot|"
    r"siri|alexa|crypto\w*|bitcoin|blockchain|nft\w*|metaverse|virtual|drones?|satellite\w*|startup\w*|"
    r"silicon valley|elon|sam bankman|ftx|reddit|snapchat|linkedin|spotify|zoom|oracle|salesforce|"
    r"pixel|dell|hp|sony|nintendo|playstation|xbox|video games?|gaming|hollywood strike|writers guild|sag-aftra|"
    r"patent\w*|privacy|surveillance|facial|copyright\w*|deep ?seek|antitrust|ftc|screen\w*|device\w*)\b",
    re.I)


@dataclass
class Case:
    id: str
    question: str
    today: date = DEFAULT_TODAY
    gold_id: str | None = None          # the one story that answers it; None: unanswerable
    source: str = "own"


@dataclass
class Outcome:
    case: Case
    rank: int | None = None             # 1-based rank of the gold story in Retrieval.stories
    relevant: bool = False              # the retriever's gate
    refused: bool | None = None         # NewsBot's final answer
    top: list[str] = field(default_factory=list)
    seconds: float = 0.0
    timings: dict[str, float] = field(default_factory=dict)     # Retrieval.timings (seconds)


def read_jsonl(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


def load_answerable(path: Path = DEV_DIGESTS) -> list[Case]:

    return [Case(r["id"], r["question"], date.fromisoformat(r.get("today") or DEFAULT_TODAY.isoformat()),
                 gold_id=r["gold_id"], source="dev")
            for r in read_jsonl(path)]


def corpus_cases() -> list[Case]:
    return [Case(i, q, date.fromisoformat(t), source="corpus") for i, q, t in CORPUS_QUESTIONS]


def _stable_key(text: str) -> str:
    return hashlib.sha1(text.encode("utf-8")).hexdigest()


def realtimeqa_cases(shared: Path = SHARED, n: int = REALTIMEQA_SAMPLE) -> list[Case]:
    """A fixed sample of quiz questions without any AI/tech word, each asked on its quiz's date."""
    base = shared / "realtimeqa"
    if not base.is_dir():
        return []
    rows: dict[str, Case] = {}
    for path in sorted(base.rglob("*_qa.jsonl")):
        for r in read_jsonl(path):
            q = " ".join(str(r.get("question_sentence") or "").split())
            blob = " ".join([q, *map(str, r.get("choices") or []), re.sub(r"<[^>]+>", " ", str(r.get("evidence") or ""))])
            if len(q) < 15 or TECH.search(blob) or q.lower() in rows:
                continue
            try:
                y, m, d = (int(x) for x in str(r["question_date"]).split("/"))
                today = date(y, m, d)
            except (KeyError, ValueError):
                continue
            rows[q.lower()] = Case(f"rtqa-{r['question_id']}", q, today, source="realtimeqa")
    picked = sorted(rows.values(), key=lambda c: _stable_key(c.id))[:n]
    return sorted(picked, key=lambda c: c.id)


def rgb_cases(shared: Path = SHARED) -> list[Case]:
    path = shared / "rgb-en-fact" / "en_fact.json"
    if not path.exists():
        return []
    out = []
    for r in read_jsonl(path):
        q = " ".join(str(r.get("query") or "").split())
        blob = " ".join([q, str(r.get("answer") or ""), str(r.get("fakeanswer") or "")])
        if q and not TECH.search(blob):
            out.append(Case(f"rgb-{r['id']}", q, DEFAULT_TODAY, source="rgb"))
    return out


def load_unanswerable(path: Path = DEV_REFUSAL, shared: Path = SHARED,
                      n_realtimeqa: int = REALTIMEQA_SAMPLE) -> list[Case]:
    own = [Case(r["id"], r["question"], date.fromisoformat(r.get("today") or DEFAULT_TODAY.isoformat()),
                source="own-" + r.get("kind", "")) for r in read_jsonl(path)]
    return own + realtimeqa_cases(shared, n_realtimeqa) + rgb_cases(shared)


@contextmanager
def pinned_today(bot, day: date) -> Iterator[None]:
    """NewsBot reads "today" from its settings (shared with its retriever): pin it for one question."""
    old = bot.settings.today
    bot.settings.today = day
    try:
        yield
    finally:
        bot.settings.today = old


def run_case(bot, case: Case, *, ask: bool = True) -> Outcome:
    out = Outcome(case)
    with pinned_today(bot, case.today):
        t0 = time.perf_counter()
        r = bot.retriever.retrieve(case.question, today=case.today)
        out.seconds = time.perf_counter() - t0
        out.timings = dict(r.timings)
        ids = [s.story_id for s in r.stories]
        out.top = [f"{s.published_at} {s.title[:70]}" for s in r.stories[:3]]
        if case.gold_id is not None and case.gold_id in ids:
            out.rank = ids.index(case.gold_id) + 1
        out.relevant = r.relevant
        if ask:
            out.refused = bot.ask(case.question).refused
    return out


def summarise(answerable: list[Outcome], unanswerable: list[Outcome]) -> dict:
    def rate(xs: list[bool]) -> float | None:
        return round(sum(xs) / len(xs), 4) if xs else None

    gold = [o for o in answerable if o.case.gold_id is not None]
    secs = [o.seconds for o in answerable + unanswerable]
    fuse = [o.timings.get("fuse", 0.0) for o in answerable + unanswerable]
    out = {
        "answerable": len(answerable), "answerable_with_gold": len(gold), "unanswerable": len(unanswerable),
        "hit@1": rate([o.rank == 1 for o in gold]),
        "hit@5": rate([o.rank is not None and o.rank <= 5 for o in gold]),
        "hit@10": rate([o.rank is not None and o.rank <= 10 for o in gold]),
        "mrr": round(sum(1.0 / o.rank for o in gold if o.rank) / len(gold), 4) if gold else None,
        "gate_refusal": rate([not o.relevant for o in unanswerable]),
        "refusal": rate([bool(o.refused) for o in unanswerable if o.refused is not None]),
        "gate_false_refusal": rate([not o.relevant for o in answerable]),
        "false_refusal": rate([bool(o.refused) for o in answerable if o.refused is not None]),
        "retrieve_ms_mean": round(1000 * statistics.mean(secs), 1) if secs else None,
        "retrieve_ms_p95": round(1000 * sorted(secs)[int(0.95 * (len(secs) - 1))], 1) if secs else None,
        "retrieve_ms_median": round(1000 * statistics.median(secs), 1) if secs else None,
        "fuse_ms_median": round(1000 * statistics.median(fuse), 1) if fuse else None,   # fusion, gate, re-rank
    }
    by_source: dict[str, list[Outcome]] = {}
    for o in unanswerable:
        by_source.setdefault(o.case.source, []).append(o)
    out["refusal_by_source"] = {k: {"n": len(v), "refusal": rate([bool(o.refused) for o in v
                                                                   if o.refused is not None]),
                                    "gate_refusal": rate([not o.relevant for o in v])}
                                for k, v in sorted(by_source.items())}
    return out


def evaluate(bot, answerable: list[Case], unanswerable: list[Case], *, ask: bool = True,
             progress: bool = False) -> tuple[dict, list[Outcome], list[Outcome]]:
    a, u = [], []
    for i, c in enumerate(answerable + unanswerable):
        o = run_case(bot, c, ask=ask)
        (a if c in answerable else u).append(o)
        if progress and (i + 1) % 25 == 0:
            print(f"  {i + 1}/{len(answerable) + len(unanswerable)}", file=sys.stderr, flush=True)
    return summarise(a, u), a, u


def open_bot(store: Path):
    import rag.offline  # noqa: F401  (no hub access)
    from rag.pipeline import NewsBot
    from rag.settings import Settings

    return NewsBot(Settings(store_dir=store, today=DEFAULT_TODAY, generator="extractive"))


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--store", type=Path, required=True, help="a built store (digests, or corpus with --corpus)")
    ap.add_argument("--corpus", action="store_true",
                    help="the store holds the shipped corpus/: ask its own answerable questions instead")
    ap.add_argument("--shared", type=Path, default=SHARED, help="../shared/data (RealTime QA, RGB)")
    ap.add_argument("--realtimeqa", type=int, default=REALTIMEQA_SAMPLE, help="quiz questions to sample")
    ap.add_argument("--no-ask", action="store_true", help="retrieval gate only (no generation/verification)")
    ap.add_argument("--misses", action="store_true", help="list every miss and every wrong refusal/answer")
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args(argv)

    bot = open_bot(args.store)
    answerable = corpus_cases() if args.corpus else load_answerable()
    unanswerable = load_unanswerable(shared=args.shared, n_realtimeqa=args.realtimeqa)
    t0 = time.perf_counter()
    summary, a, u = evaluate(bot, answerable, unanswerable, ask=not args.no_ask, progress=not args.json)
    summary["seconds"] = round(time.perf_counter() - t0, 1)
    summary["store"] = str(args.store)
    summary["stories_in_store"] = bot.store.count_stories()
    summary["command"] = "python benchmarks/quality.py " + " ".join(argv if argv is not None else sys.argv[1:])
    if args.json:
        print(json.dumps(summary, indent=2))
    else:
        print(f"$ {summary['command']}")
        print(f"store: {args.store} ({summary['stories_in_store']} stories)")
        print(f"answerable: {summary['answerable']} (with a gold story: {summary['answerable_with_gold']})   "
              f"unanswerable: {summary['unanswerable']}")
        if summary["answerable_with_gold"]:
            print(f"hit@1 {summary['hit@1']:.3f}   hit@5 {summary['hit@5']:.3f}   hit@10 {summary['hit@10']:.3f}   "
                  f"MRR {summary['mrr']:.3f}")
        for key in ("refusal", "gate_refusal", "false_refusal", "gate_false_refusal"):
            if summary[key] is not None:
                print(f"{key}: {summary[key]:.3f}")
        for k, v in summary["refusal_by_source"].items():
            print(f"  {k:14s} n={v['n']:4d}  refusal={v['refusal']}  gate={v['gate_refusal']}")
        print(f"retrieve ms: median {summary['retrieve_ms_median']}  mean {summary['retrieve_ms_mean']}  "
              f"p95 {summary['retrieve_ms_p95']}  (fusion+gate median {summary['fuse_ms_median']})   "
              f"total {summary['seconds']}s")
    if args.misses:
        for o in a:
            if (o.case.gold_id and (o.rank is None or o.rank > 5)) or o.refused or not o.relevant:
                print(f"MISS {o.case.id} rank={o.rank} relevant={o.relevant} refused={o.refused} :: "
                      f"{o.case.question}\n      top: {o.top}")
        for o in u:
            if not o.refused or o.relevant:
                print(f"ANSWERED {o.case.id} relevant={o.relevant} refused={o.refused} :: {o.case.question}\n"
                      f"      top: {o.top}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
