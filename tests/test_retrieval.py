"""Hybrid retrieval over the real corpus store: exact names, filters, time words, diversity, comparisons,
and the relevance gate that decides between answering and refusing."""
from __future__ import annotations

from dataclasses import replace
from datetime import date

import numpy as np
import pytest

from benchmarks.quality import CORPUS_QUESTIONS
from conftest import PINNED_TODAY
from rag.records import Filters, Source
from rag.retrieval import (TermStats, comparison_subjects, diversify, merge_story_chunks, story_terms,
                           weighted_coverage)
from rag.text import search_terms

GENERIC = "What new AI models and chips were announced?"


def _retrieve(bot, question, **kw):
    kw.setdefault("today", PINNED_TODAY)
    return bot.retriever.retrieve(question, **kw)


def _dense_only_stories(bot, query: str, filters: Filters | None = None) -> list[Source]:
    seen, out = set(), []
    for s in bot.store.dense_search(bot.embedder.embed_one(query), 40, filters):
        if s.story_id not in seen:
            seen.add(s.story_id)
            out.append(s)
    return out


# ---------------------------------------------------------------------------------------------- hybrid

def test_hybrid_finds_an_exact_name_that_dense_alone_ranks_low(bot):
    q = "Bartz"      # the plaintiff's name in the authors' case against Anthropic: BM25 knows it, MiniLM does not
    dense = _dense_only_stories(bot, q)
    assert all("Bartz" not in s.text for s in dense[:3]), [s.title for s in dense[:3]]
    r = _retrieve(bot, "What happened in the Bartz case?")
    assert "Bartz" in r.stories[0].text, [s.title for s in r.stories[:3]]
    # Whether to answer it is the learned decision's (rag/calibration.json), measured on the bank's test
    # split rather than pinned on this question; the learned decision refuses this one (see the README).


@pytest.mark.parametrize("question, needle", [
    ("What is Alpamayo?", "Alpamayo"),
    ("Tell me about SuperGrok Heavy", "SuperGrok Heavy"),
    ("What did the RAISE Act require?", "RAISE Act"),
    ("What is Antigravity?", "Antigravity"),
])
def test_exact_names_are_found_and_count_as_relevant(bot, question, needle):
    r = _retrieve(bot, question)
    assert r.relevant, (question, r.evidence, r.features[:3])
    assert needle.lower() in (r.stories[0].title + " " + r.stories[0].text).lower()


# ---------------------------------------------------------------------------------------------- filters

@pytest.mark.parametrize("filters, check", [
    (Filters(since=date(2025, 1, 1), until=date(2025, 6, 30)),
     lambda s: date(2025, 1, 1) <= s.published_at <= date(2025, 6, 30)),
    (Filters(outlets=["TechCrunch"]), lambda s: "TechCrunch" in s.outlets),
    (Filters(tags=["nvidia"]), lambda s: "nvidia" in s.tags),
    (Filters(since=date(2026, 1, 1), outlets=["The Verge"]),
     lambda s: s.published_at >= date(2026, 1, 1) and "The Verge" in s.outlets),
])
def test_every_returned_story_respects_the_filters(bot, filters, check):
    r = _retrieve(bot, GENERIC, filters=filters)
    assert r.stories, "the filter should still match some corpus stories"
    bad = [(s.title, s.published_at, s.outlets, s.tags) for s in r.stories + r.context if not check(s)]
    assert not bad


def test_an_outlet_or_tag_filter_allows_exactly_the_chunks_naming_it(bot):
    """The snapshot finds a filter's rows through its per-outlet and per-tag row lists: the rows allowed
    are exactly those whose story names one of the filter's outlets (or tags), however they are spelt."""
    from rag.store import slug

    lex = bot.retriever.lexical()
    for f in (Filters(outlets=["TechCrunch"]), Filters(outlets=["the verge", "TechCrunch"]), Filters(tags=["nvidia"]),
              Filters(outlets=["No Such Outlet"]), Filters(outlets=["TechCrunch"], tags=["nvidia"])):
        want = np.ones(len(lex.ids), dtype=bool)
        for names, have in ((f.outlets, lex.outlets), (f.tags, lex.tags)):
            if names:
                ws = {slug(w) for w in names}
                want &= np.array([any(slug(x) in ws for x in h) for h in have])
        assert np.array_equal(lex._mask(f) > 0, want), f
    assert (lex._mask(Filters(outlets=["TechCrunch"])) > 0).sum() > 0


def test_question_time_bounds_narrow_the_user_filter_and_never_widen_it(bot):
    r = _retrieve(bot, "What did OpenAI announce in 2025?", filters=Filters(since=date(2025, 6, 1)))
    assert (r.filters.since, r.filters.until) == (date(2025, 6, 1), date(2025, 12, 31))
    assert all(date(2025, 6, 1) <= s.published_at <= date(2025, 12, 31) for s in r.stories)


# ---------------------------------------------------------------------------------------------- time words

def test_last_month_becomes_date_bounds(bot):
    r = _retrieve(bot, "What did Google announce last month?", today=date(2026, 6, 1))
    assert (r.filters.since, r.filters.until) == (date(2026, 5, 1), date(2026, 5, 31))
    assert r.stories and all(date(2026, 5, 1) <= s.published_at <= date(2026, 5, 31) for s in r.stories)
    assert "Google" in r.stories[0].title


def test_named_month_becomes_date_bounds(bot):
    r = _retrieve(bot, "What happened with xAI in March 2026?")
    assert (r.filters.since, r.filters.until) == (date(2026, 3, 1), date(2026, 3, 31))
    assert r.stories and all(s.published_at.strftime("%Y-%m") == "2026-03" for s in r.stories)
    assert "xAI" in r.stories[0].title


def test_latest_puts_the_newest_relevant_stories_first(bot):
    plain = _retrieve(bot, "What Claude models has Anthropic released?")
    latest = _retrieve(bot, "What is the latest Claude model from Anthropic?")
    assert latest.intent.recency and not plain.intent.recency
    top = latest.stories[:3]
    assert all("Claude" in s.title or "Anthropic" in s.title for s in top), [s.title for s in top]
    assert [s.published_at for s in top] == sorted((s.published_at for s in top), reverse=True)
    assert top[0].published_at >= plain.stories[0].published_at
    assert top[0].published_at >= date(2026, 1, 1)


def test_recent_with_a_pinned_today_ignores_stories_after_it(bot):
    r = _retrieve(bot, "What are the most recent Nvidia chips?", filters=Filters(until=date(2024, 6, 30)),
                  today=date(2024, 6, 30))
    assert r.intent.recency
    assert r.stories and all(s.published_at <= date(2024, 6, 30) for s in r.stories)
    assert r.stories[0].published_at >= date(2024, 1, 1), r.stories[0].title   # Blackwell (March 2024)


# ---------------------------------------------------------------------------------------------- diversity

def _src(story: str, i: int, score: float, outlet: str = "A") -> Source:
    return Source(chunk_id=f"{story}:{i}", story_id=story, title=story, text=f"{story} chunk {i}",
                  published_at=date(2025, 1, 1), outlets=[outlet], urls=[], tags=[], chunk_index=i, score=score)


def test_diversify_caps_chunks_per_story():
    ranked = [_src("big", i, 1.0 - i * 0.01) for i in range(6)] + [_src(f"s{i}", 0, 0.5 - i * 0.01, f"O{i}")
                                                                     for i in range(5)]
    chosen = diversify(ranked, 6, 2)
    assert sum(s.story_id == "big" for s in chosen) == 2
    merged = merge_story_chunks(chosen)
    assert len({s.story_id for s in merged}) == len(merged)
    assert next(s for s in merged if s.story_id == "big").text == "big chunk 0 big chunk 1"


def test_context_holds_each_story_once_and_several_stories(bot):
    r = _retrieve(bot, "What did the EU AI Act require?")
    ids = [s.story_id for s in r.context]
    assert len(ids) == len(set(ids)) and len(ids) >= 3
    cap = bot.settings.max_chunks_per_story
    for s in r.context:     # a merged source joins at most `cap` of its story's chunks
        row = bot.store.story_row(s.story_id)
        chunks = bot.store.get_sources([f"{s.story_id}:{i}" for i in range(row.chunk_count)])
        assert 1 <= sum(c.text in s.text for c in chunks) <= cap


# ---------------------------------------------------------------------------------------------- comparison

def test_comparison_subjects_are_whole_names():
    assert comparison_subjects("Compare Claude Opus 4.5 and Gemini 3") == ["Claude Opus 4.5", "Gemini 3"]
    assert comparison_subjects("Nvidia vs AMD chips") == ["Nvidia", "AMD"]
    assert comparison_subjects("How does Gemini stack up against GPT-5?") == ["Gemini", "GPT-5"]
    assert comparison_subjects("What did the jury decide in Musk's lawsuit against OpenAI?") == []
    assert comparison_subjects("What did OpenAI release?") == []


def test_comparison_retrieves_stories_for_each_subject(bot):
    r = _retrieve(bot, "Compare Claude Opus 4.5 and Gemini 3")
    titles = [s.title for s in r.context]
    assert any("Opus 4.5" in t for t in titles), titles
    assert any("Gemini 3" in t for t in titles), titles
    assert r.relevant


def test_comparison_of_chip_makers_covers_both(bot):
    r = _retrieve(bot, "How do Nvidia and AMD compare on AI chips?")
    text = [s.title + " " + s.text for s in r.context]
    assert any("AMD" in t for t in text) and any("Nvidia" in t for t in text)


# ---------------------------------------------------------------------------------------------- relevance gate

@pytest.mark.parametrize("question", [
    "What's the best way to grow tomatoes on a balcony?",
    "Who won the 1998 FIFA World Cup final?",
    "How do I get red wine stains out of a carpet?",
    "What did OpenAI announce about a toaster?",
    "What sourdough bread recipe did Google Gemini publish?",
])
def test_off_topic_and_near_miss_questions_are_not_relevant(bot, question):
    r = _retrieve(bot, question)
    assert not r.relevant, (question, r.evidence, r.features[:3])
    assert bot.ask(question).refused


@pytest.mark.parametrize("question", [
    "Write a long and detailed account, in at least ten paragraphs, of what Alibaba announced about Qwen3-Next.",
    "Please list everything you know about the jury verdict in Musk's lawsuit against OpenAI.",
])
def test_how_the_answer_should_look_does_not_count_against_relevance(bot, question):
    """Words about the answer's form ("write", "detailed", "paragraphs") are not what the question is
    about: a story need not contain them to answer it. (Known gap: "Give me a brief summary, in bullet
    points, of Nvidia's deal for Groq." is refused by the learned decision, whose bank holds no
    answer-format phrasing yet; see the README's quality section.)"""
    r = _retrieve(bot, question)
    assert r.relevant, (question, r.evidence, r.features[:3])


@pytest.mark.parametrize("qid, question, today", CORPUS_QUESTIONS, ids=[c[0] for c in CORPUS_QUESTIONS])
def test_answerable_corpus_questions_are_not_refused(bot, qid, question, today):
    r = _retrieve(bot, question, today=date.fromisoformat(today))
    assert r.relevant, (question, r.evidence, r.features[:3])
    assert not bot.ask(question).refused


def test_rarity_weights_favour_rare_terms(bot):
    stats = TermStats(bot.retriever.lexical())
    w = stats.weights("What did OpenAI announce about a toaster?")
    assert w["toaster"] > w["openai"] > 0          # never seen in the store: the heaviest word
    assert weighted_coverage(w, {"openai", "announc"}) < 0.5
    assert weighted_coverage(w, set(w)) == pytest.approx(1.0)


def test_retrieval_reports_its_timings(bot):
    r = _retrieve(bot, "What is Alibaba's Qwen3-Next?")
    assert {"embed_query", "dense", "lexical", "fuse", "retrieve"} <= set(r.timings)
    assert all(v >= 0 for v in r.timings.values())


def test_retrieval_embeds_only_the_question(bot, monkeypatch):
    """Fusion, the relevance gate and the re-rank work on stored vectors: one model call per search
    (a spy around the real embedder; speed itself is measured in benchmarks/latency_bench.py)."""
    calls = []
    real = type(bot.embedder).embed

    def spy(self, texts):
        calls.append(list(texts))
        return real(self, texts)

    monkeypatch.setattr(type(bot.embedder), "embed", spy)
    _retrieve(bot, "What did Alibaba announce about Qwen3-Next this spring?")
    assert len(calls) == 1 and len(calls[0]) == 1, calls
    calls.clear()
    _retrieve(bot, "Compare Nvidia and AMD chips")
    assert sum(len(c) for c in calls) <= 3, calls     # the question and one search per subject


# ---------------------------------------------------------------------------------------------- chunk copy

def _fields(s: Source) -> tuple:
    return (s.chunk_id, s.story_id, s.title, s.text, s.published_at, s.outlets, s.urls, s.tags, s.chunk_index)


def test_the_lexical_index_chunk_copy_matches_chroma(bot):
    """Retrieval reads chunk texts, metadata and vectors from the copy beside BM25 instead of Chroma:
    the copy must say exactly what Chroma says."""
    lex = bot.retriever.lexical()
    ids = lex.ids[::7]
    copy = lex.sources(ids)
    assert [_fields(copy[c]) for c in ids] == [_fields(s) for s in bot.store.get_sources(ids)]
    vecs, stored = lex.vectors(ids), bot.store.chunk_vectors(ids)
    assert all(np.allclose(vecs[c], stored[c], atol=1e-6) for c in ids)
    assert lex.sources(["no-such-chunk:0"]) == {} and lex.vectors(["no-such-chunk:0"]) == {}


def test_chunks_missing_from_the_copy_are_read_from_chroma(bot, monkeypatch):
    """A chunk written after the index was built (a concurrent ingest) still becomes a full Source."""
    q = "What happened in the Bartz case?"
    want = _retrieve(bot, q)
    lex = bot.retriever.lexical()
    monkeypatch.setattr(lex, "sources", lambda ids: {})
    monkeypatch.setattr(lex, "vectors", lambda ids: {})
    got = _retrieve(bot, q)
    assert [_fields(s) for s in got.stories] == [_fields(s) for s in want.stories]
    assert [s.score for s in got.stories] == pytest.approx([s.score for s in want.stories])
    assert (got.relevant, got.evidence) == (want.relevant, pytest.approx(want.evidence))


def test_story_terms_from_cached_parts_equal_terms_of_the_whole_story(bot):
    ranked = _retrieve(bot, "What did the EU AI Act require?").context + _retrieve(bot, "Nvidia H200").context
    parts: dict[str, list[str]] = {}
    for s in ranked:
        parts.setdefault(s.story_id, [s.title, " ".join(s.tags)]).append(s.text)
    whole = {sid: set(search_terms(" ".join(p))) for sid, p in parts.items()}
    assert story_terms(ranked, bot.retriever.cached_terms) == whole
    assert story_terms(ranked) == whole


def test_an_index_saved_in_an_older_format_is_rebuilt(corpus_store, tmp_path):
    """A reader finding a snapshot of an older format builds its index in memory (never into the store);
    the next ingest publishes one in the current format."""
    import json
    import shutil

    from ingest.pipeline import ingest_paths
    from rag.lexical import LexicalIndex, lexical_index_is_fresh
    from rag.store import NewsStore

    shutil.copytree(corpus_store.store_dir, tmp_path / "store")
    settings = corpus_store.model_copy(update={"store_dir": tmp_path / "store"})
    store = NewsStore(settings)
    d = store.snapshot_dir(store.snapshot_id())
    info = json.loads((d / "chunks.json").read_text())
    info.pop("format")                                  # what an index saved before the chunk copy looks like
    (d / "chunks.json").write_text(json.dumps(info))
    (d / "chunks.sqlite").unlink()
    assert not lexical_index_is_fresh(store)
    (store.dir / "CURRENT").unlink()                    # as a store from before snapshots
    lex = LexicalIndex.load(store)
    assert not lexical_index_is_fresh(store)            # the reader wrote nothing
    assert lex.search("Nvidia", 3) and len(lex.vectors(lex.ids[:3])) == 3
    assert ingest_paths([settings.corpus_dir], settings, progress=False).ok
    assert lexical_index_is_fresh(store)
    lex = LexicalIndex.load(store)
    assert len(lex.sources(lex.ids[:3])) == 3 and len(lex.vectors(lex.ids[:3])) == 3


def test_the_saved_bm25_scores_like_bm25s(bot):
    import bm25s

    from rag.lexical import SavedBM25, lexical_tokens

    lex = bot.retriever.lexical()
    assert isinstance(lex.bm, SavedBM25)
    ref = bm25s.BM25.load(str(lex.dir))
    assert lex.bm.vocab_dict == ref.vocab_dict and lex.bm.scores["num_docs"] == ref.scores["num_docs"]
    mask = (lex.ts >= lex.ts[len(lex.ts) // 2]).astype(np.float32)
    for q in ["Nvidia H200 H200 chips", "What happened in the Bartz case?", "Qwen3-Next 80B", "EU AI Act"]:
        toks = [t for t in lexical_tokens(q) if t in ref.vocab_dict]
        assert np.allclose(lex.bm.get_scores(toks), ref.get_scores(toks), rtol=1e-6, atol=1e-6)
        assert np.allclose(lex.bm.get_scores(toks, weight_mask=mask), ref.get_scores(toks, weight_mask=mask),
                           rtol=1e-6, atol=1e-6)


def test_a_chunk_copy_from_another_build_is_not_used(corpus_store, tmp_path):
    """An ingest in another process can swap the index folder between reading chunks.json and opening
    the copy; rows of a newer copy would not line up with the ids read, so such a copy is ignored."""
    import json
    import shutil
    import sqlite3

    from rag.lexical import LexicalIndex

    shutil.copytree(corpus_store.store_dir, tmp_path / "store")
    d = tmp_path / "store" / "snapshots" / (tmp_path / "store" / "CURRENT").read_text().strip()
    info = json.loads((d / "chunks.json").read_text())
    assert LexicalIndex(None, info, d).sources(info["ids"][:2])
    with sqlite3.connect(d / "chunks.sqlite") as db:
        db.execute("UPDATE info SET generation = generation + 1")
    db.close()
    stale = LexicalIndex(None, info, d)
    assert stale.sources(info["ids"][:2]) == {} and stale.vectors(info["ids"][:2]) == {}


# ---------------------------------------------------------------------------------------------- rerank

@pytest.fixture(scope="module")
def cross_encoder_dir(tmp_path_factory):
    """A real sentence-transformers CrossEncoder made offline from the packaged MiniLM. Its scoring head
    is untrained (no cross-encoder ships offline), so its order is arbitrary but real: the test checks
    that retrieval follows whatever the model scores, which is the plumbing a trained model relies on."""
    import logging

    from sentence_transformers import CrossEncoder

    from rag.settings import packaged_minilm_path

    logging.getLogger("sentence_transformers").setLevel(logging.ERROR)
    path = tmp_path_factory.mktemp("cross-encoder")
    CrossEncoder(packaged_minilm_path(), num_labels=1, device="cpu", local_files_only=True).save(str(path))
    return path


def test_configured_cross_encoder_orders_the_fused_head(bot, cross_encoder_dir):
    from sentence_transformers import CrossEncoder

    from rag.retrieval import RERANK_HEAD, Retriever

    settings = bot.settings.model_copy(update={"rerank_model": str(cross_encoder_dir)})
    rr = Retriever(bot.store, bot.embedder, settings)
    query = "Nvidia chips"
    fused = bot.retriever.retrieve(query, today=PINNED_TODAY)   # warm the lexical index
    assert fused.stories
    ranked = rr._rerank(query, [replace(s) for s in fused.stories[:40]])
    model = CrossEncoder(str(cross_encoder_dir), device="cpu", local_files_only=True)
    head = ranked[:RERANK_HEAD]
    scores = model.predict([(query, s.title + ". " + s.text) for s in head], show_progress_bar=False)
    assert list(scores) == sorted(scores, reverse=True)          # the head is in the model's order
    assert [s.score for s in ranked] == sorted((s.score for s in ranked), reverse=True)   # and stays so
    r = rr.retrieve(query, today=PINNED_TODAY)                    # the whole path runs with it
    assert r.stories and r.context


def test_a_rerank_model_that_cannot_load_is_reported_and_skipped(bot, tmp_path, caplog):
    from rag.retrieval import Retriever

    settings = bot.settings.model_copy(update={"rerank_model": str(tmp_path / "no-such-model")})
    rr = Retriever(bot.store, bot.embedder, settings)
    with caplog.at_level("WARNING"):
        r = rr.retrieve("What is Alibaba's Qwen3-Next?", today=PINNED_TODAY)
    assert r.relevant and r.stories
    assert "could not be loaded" in caplog.text and "without rerank" in caplog.text


def test_a_compound_counts_when_the_story_writes_it_apart():
    w = {"face-read": 10.0, "face": 3.0, "read": 4.0, "deepscor": 9.0}
    assert weighted_coverage(w, {"deepscor", "face", "read"}) == pytest.approx(1.0)     # "reads faces"
    assert weighted_coverage(w, {"deepscor", "read"}) == pytest.approx(13 / 26)         # half a compound is not it
    assert weighted_coverage({"qwen3-next": 8.0, "qwen3": 5.0, "next": 1.0}, {"qwen3"}) == pytest.approx(5 / 14)


def test_a_dollar_amount_is_one_term_however_it_is_written():
    from rag.text import money_terms

    for written in ("$25M", "$25 M", "$25 million", "$25mn", "US$25 million"):
        assert money_terms(f"Acme raised {written} from investors") == ["usd25m"], written
    assert money_terms("a $1.50 billion deal, then $1,500 and $6 B") == ["usd1.5b", "usd1500", "usd6b"]
    assert money_terms("$25 more") == ["usd25"]          # a unit letter must end the word
    assert "usd25m" in search_terms("What was the $25 M deal involving Captions?")


def test_how_a_question_is_asked_is_not_what_it_is_about():
    from rag.text import request_terms

    wrapped = "Briefly, in two or three sentences: what has AMD announced about its MI300 chips?"
    topic = [t for t in search_terms(wrapped) if t not in request_terms()]
    assert topic == search_terms("AMD MI300 chips")


def test_a_compound_name_is_not_held_by_another_compound_of_its_parts():
    from rag.retrieval import weighted_coverage

    weights = {t: 1.0 for t in search_terms("Qwen3-Next")}
    assert weighted_coverage(weights, set(search_terms("Alibaba released Qwen3-Next-80B-A3B"))) == 1.0
    assert weighted_coverage(weights, set(search_terms("the Qwen3 model, next to its rivals"))) == 1.0
    assert weighted_coverage(weights, set(search_terms("it released Qwen3-Coder-Next"))) < 1.0
