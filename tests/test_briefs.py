"""Briefs of a period and overviews of a topic (rag.briefs), on the shipped corpus and on the digests.

The digests half needs a built digests store at NEWSRAG_DIGESTS_STORE (read-only; e.g. /work/stores/digests)
and fails under CI=true when it is missing. Its period questions come from tests/data/brief_questions.jsonl:
the "dev" phrasings are the ones the intent rules were written against, the "test" ones were written
beside them and never tuned on; both must pass.
"""
from __future__ import annotations

import json
import os
import re
from datetime import date, timedelta
from pathlib import Path

import numpy as np
import pytest

from rag.briefs import Event, group_events, plan_brief, rank_events
from rag.pipeline import NewsBot, QuestionError
from rag.records import answer_to_dict
from rag.settings import Settings
from rag.store import StoryRow

ROOT = Path(__file__).resolve().parents[1]
QUESTIONS = [json.loads(line) for line in (ROOT / "tests" / "data" / "brief_questions.jsonl").read_text().splitlines()
             if line.strip()]
DIGESTS_TODAY = date(2026, 5, 27)   # a Wednesday two days after the newest digest: this week and last week hold stories
D = date


# ---------------------------------------------------------------------------------------------- intent

@pytest.mark.parametrize("question, kind, since, until, topic", [
    ("What happened in AI this week?", "brief", D(2026, 5, 25), D(2026, 5, 27), ""),
    ("Summarize this month's AI news", "brief", D(2026, 5, 1), D(2026, 5, 27), ""),
    ("Give me the main AI headlines from March 2026", "brief", D(2026, 3, 1), D(2026, 3, 31), ""),
    ("Catch me up on AI news from January 2025", "brief", D(2025, 1, 1), D(2025, 1, 31), ""),
    ("What were the biggest AI stories of 2024?", "brief", D(2024, 1, 1), D(2024, 12, 31), ""),
    ("AI chip news this month", "brief", D(2026, 5, 1), D(2026, 5, 27), "chip"),
    ("Tell me about Qwen", "overview", None, None, "Qwen"),
    ("What's going on with Nvidia?", "overview", None, None, "Nvidia"),
    ("Catch me up on the OpenAI lawsuit", "overview", None, None, "OpenAI lawsuit"),
])
def test_brief_and_overview_questions_are_recognised(question, kind, since, until, topic):
    plan = plan_brief(question, DIGESTS_TODAY)
    assert plan is not None, question
    assert (plan.kind, plan.since, plan.until, plan.topic) == (kind, since, until, topic)


@pytest.mark.parametrize("question", [
    "What happened with OpenAI last month?",            # a narrower question about a period: answered as usual
    "What did Alibaba announce about Qwen3-Next?",
    "How many parameters does Qwen3-Next have?",
    "What happened in the Bartz case?",
    "Timeline of the Musk v. OpenAI lawsuit",
])
def test_narrow_questions_are_not_briefs(question):
    assert plan_brief(question, DIGESTS_TODAY) is None


# ---------------------------------------------------------------------------------------------- events

def _row(i: int, day: date, title: str, outlets: list[str]) -> StoryRow:
    return StoryRow(f"s{i}", title, day, outlets, [f"https://{o.lower().replace(' ', '')}.example/{i}" for o in outlets],
                    [], f"{title}. Body of story {i}.", 1)


def test_events_join_close_reports_and_rank_by_coverage():
    rng = np.random.default_rng(0)
    a, b, c = (v / np.linalg.norm(v) for v in rng.normal(size=(3, 16)))
    noisy = a + 0.05 * rng.normal(size=16)
    rows = [_row(0, D(2026, 3, 2), "Nvidia unveils Rubin GPUs", ["TechCrunch", "The Verge"]),
            _row(1, D(2026, 3, 3), "Nvidia details Rubin chips at GTC", ["Wired"]),
            _row(2, D(2026, 3, 25), "Nvidia unveils Rubin GPUs again", ["Reuters"]),   # same words, weeks later
            _row(3, D(2026, 3, 4), "EU delays AI Act rules", ["Politico"]),
            _row(4, D(2026, 3, 5), "Startup raises money", ["TechCrunch"])]
    vecs = np.stack([a, noisy / np.linalg.norm(noisy), a, b, c]).astype(np.float32)
    events = rank_events(group_events(rows, vecs))
    assert [sorted(s.id for s in e.stories) for e in events][0] == ["s0", "s1"]
    assert events[0].coverage == 2 + 3 and events[0].stories[0].id == "s0"     # the most widely carried report leads
    assert len(events) == 4                                                    # s2 is its own, later event
    # equal coverage: the newer event first
    assert [e.stories[0].id for e in events[1:]] == ["s2", "s4", "s3"]


# ---------------------------------------------------------------------------------------------- corpus

def _cited_story_ids(a) -> list[str]:
    return list(dict.fromkeys(c.story_id for c in sorted(a.citations, key=lambda c: a.text.find(f"[{c.n}]"))))


def test_a_month_brief_on_the_corpus_is_streamed_verified_and_cited(bot):
    events = list(bot.stream("What happened in AI last month?"))
    final = events[-1]["answer"]
    streamed = "".join(e["text"] for e in events if e["type"] == "text")
    assert streamed == final.text and len([e for e in events if e["type"] == "text"]) >= 5
    assert "brief" in final.flags and not final.refused
    assert final.grounded_ratio == 1.0 and not final.unsupported_sentences
    cited = {c.story_id for c in final.citations}
    assert len(cited) >= 5
    assert all(D(2026, 5, 1) <= c.published_at <= D(2026, 5, 31) for c in final.citations)
    # every story in the period is considered: the most widely covered one (the Musk v. OpenAI verdict,
    # four outlets) leads, though the question names nothing about it
    d = answer_to_dict(final)
    assert d["flags"][0] == "brief" and d["filters"]["since"] == "2026-05-01" and d["citations"]
    lines = [ln for ln in final.text.splitlines() if ln.startswith("- ")]
    assert 5 <= len(lines) <= 10
    for ln in lines:
        assert re.match(r"- [A-Z][a-z]+ \d{1,2}, 2026 · [^:]+: .+ \[\d+\]\.?$", ln), ln


def test_every_outlet_of_an_event_is_cited(bot):
    a = bot.ask("What were the biggest AI stories of 2025?")
    assert "brief" in a.flags and len([ln for ln in a.text.splitlines() if ln.startswith("- ")]) >= 8
    numbers = {c.n: c for c in a.citations}
    for ln in a.text.splitlines():
        n = int(re.findall(r"\[(\d+)\]", ln)[-1])
        src = a.sources[n - 1]
        assert n in numbers and all(o in ln for o in src.outlets), (ln, src.outlets)


def test_overview_leads_with_the_newest_story_that_names_the_topic(bot):
    rows = bot.store.story_rows()
    for topic in ("Qwen", "Anthropic", "Nvidia", "DeepSeek"):
        named = [r for r in rows if re.search(rf"\b{topic}\b", f"{r.title} {r.text}", re.I)]
        third = sorted({r.published_at for r in named}, reverse=True)[:3][-1]
        newest = {r.id for r in named if r.published_at >= third}
        a = bot.ask(f"Tell me about {topic}")
        assert "overview" in a.flags and not a.refused, topic
        assert _cited_story_ids(a)[0] in newest, (topic, a.text[:300])
        dates = [c.published_at for c in a.citations]
        assert a.text.startswith("# Latest") and "# Key milestones" in a.text
        ms = a.text.split("# Key milestones")[1]
        ms_dates = [a.sources[int(n) - 1].published_at for n in re.findall(r"^- .*\[(\d+)\]", ms, re.M)]
        assert ms_dates == sorted(ms_dates) and dates


def test_an_empty_period_is_said_plainly(bot):
    a = bot.ask("What happened in AI in January 2019?")
    assert a.refused and "brief" in a.flags and "no stories" in a.text and not a.citations


def test_brief_method_for_the_api(corpus_store):
    b = NewsBot(Settings(store_dir=corpus_store.store_dir, today=D(2026, 6, 1)))
    a = b.brief("last month")
    assert "brief" in a.flags and len({c.story_id for c in a.citations}) >= 5
    assert all(D(2026, 5, 1) <= c.published_at <= D(2026, 5, 31) for c in a.citations)
    with pytest.raises(QuestionError, match="not a period"):
        b.brief("purple elephants")


# ---------------------------------------------------------------------------------------------- digests

@pytest.fixture(scope="module")
def digests_bot():
    path = os.environ.get("NEWSRAG_DIGESTS_STORE", "")
    if not path or not (Path(path) / "catalog.sqlite").exists():
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail("NEWSRAG_DIGESTS_STORE must name a built digests store on CI")
        pytest.skip("NEWSRAG_DIGESTS_STORE is not set to a built digests store")
    return NewsBot(Settings(store_dir=path, today=DIGESTS_TODAY))


@pytest.mark.parametrize("item", QUESTIONS, ids=[f"{q['split']}:{q['question']}" for q in QUESTIONS])
def test_digests_period_questions_get_a_cited_brief(digests_bot, item):
    since, until = D.fromisoformat(item["since"]), D.fromisoformat(item["until"])
    a = digests_bot.ask(item["question"])
    assert not a.refused and "brief" in a.flags, (item, a.text[:300])
    assert (a.filters.since, a.filters.until) == (since, until)
    cited = {c.story_id for c in a.citations}
    assert len(cited) >= 5, a.text
    assert all(since <= c.published_at <= until for c in a.citations)
    events = [ln for ln in a.text.splitlines() if ln.startswith("- ")]
    assert len(events) >= item.get("min_events", 5)
    assert a.grounded_ratio >= 0.99


def _reference_top_events(bot, since: date, until: date, k: int = 3) -> list[set[str]]:
    """The month's most-covered events, derived directly from the data: each story with every story of
    the month within 4 days whose first chunk is nearly the same (cosine >= 0.8), ranked by stories
    plus distinct outlets, ties to the newer. No grouping rule of rag.briefs is used."""
    rows = bot.store.story_rows_between(since, until)
    lex = bot.retriever.lexical()
    got = lex.vectors([f"{r.id}:0" for r in rows])
    keep = [r for r in rows if f"{r.id}:0" in got]
    vecs = np.stack([got[f"{r.id}:0"] for r in keep])
    vecs /= np.linalg.norm(vecs, axis=1, keepdims=True)
    sims = vecs @ vecs.T
    scored = []
    for i, r in enumerate(keep):
        members = [keep[j] for j in range(len(keep))
                   if sims[i, j] >= 0.8 and abs((keep[j].published_at - r.published_at).days) <= 4]
        outlets = {o for m in members for o in m.outlets}
        scored.append((len(members) + len(outlets), r.published_at, {m.id for m in members}))
    scored.sort(key=lambda x: (x[0], x[1]), reverse=True)
    return [s[2] for s in scored[:k]]


def test_digests_top_event_is_among_the_most_covered(digests_bot):
    months = [D(2025, m, 1) for m in range(1, 13)] + [D(2026, m, 1) for m in (1, 2, 3, 5)]
    hits, misses = 0, []
    for start in months:
        end = (start.replace(day=28) + timedelta(days=4)).replace(day=1) - timedelta(days=1)
        a = digests_bot.ask(f"What happened in AI in {start.strftime('%B %Y')}?")
        assert "brief" in a.flags and not a.refused
        first = a.sources[int(re.findall(r"\[(\d+)\]", a.text.splitlines()[0])[0]) - 1].story_id
        top = _reference_top_events(digests_bot, start, end)
        if any(first in ev for ev in top):
            hits += 1
        else:
            misses.append((start.isoformat(), a.text.splitlines()[0][:120]))
    assert hits / len(months) >= 0.8, misses


OVERVIEW_TOPICS = ["Qwen", "DeepSeek", "Anthropic", "Nvidia", "Mistral", "Gemini", "Llama", "Copilot", "Grok",
                   "Midjourney"]


@pytest.mark.parametrize("topic", OVERVIEW_TOPICS)
def test_digests_overview_opens_with_one_of_the_newest_stories(digests_bot, topic):
    rows = digests_bot.store.story_rows_between(None, DIGESTS_TODAY)
    named = [r for r in rows if re.search(rf"\b{topic}\b", f"{r.title} {r.text}", re.I)]
    third = sorted({r.published_at for r in named}, reverse=True)[:3][-1]
    newest = {r.id for r in named if r.published_at >= third}
    for q in (f"Tell me about {topic}", f"What's going on with {topic}?", f"Catch me up on {topic}"):
        a = digests_bot.ask(q)
        assert "overview" in a.flags and not a.refused, q
        assert _cited_story_ids(a)[0] in newest, (q, a.text.splitlines()[:2])
