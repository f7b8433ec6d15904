"""Hybrid, date-aware retrieval: dense (Chroma) + BM25, fused by reciprocal rank, then diversified.

Time words in the question become date filters ("last month", "in March 2026", "since 2025") or a
recency ordering ("latest", "recent"); a latest-question about an old topic still finds it, because
recency re-orders the relevant stories instead of filtering. Diversity caps chunks per story and mixes
outlets, so one story cannot fill the context the generator sees.
"""
from __future__ import annotations

import re
import time
from dataclasses import dataclass, field, replace
from datetime import date

import numpy as np

from rag.embedder import Embedder
from rag.lexical import LexicalIndex
from rag.records import Filters, Source
from rag.settings import Settings
from rag.store import NewsStore
from rag.text import search_terms
from rag.timeparse import TimeIntent, parse_time_intent


@dataclass
class Retrieval:
    question: str
    query: str                          # what was searched (time words removed)
    intent: TimeIntent
    filters: Filters                    # user filters combined with the question's time bounds
    context: list[Source]               # diversified chunks for the generator, in answer order
    stories: list[Source]               # one entry per story (its best chunk), rank order
    relevant: bool                      # False: nothing in the store answers this
    best_dense: float = 0.0
    timings: dict[str, float] = field(default_factory=dict)


def combine_filters(user: Filters | None, intent: TimeIntent) -> Filters:
    """The narrower of the user's date range and the question's own."""
    f = replace(user) if user else Filters()
    if intent.since and (f.since is None or intent.since > f.since):
        f.since = intent.since
    if intent.until and (f.until is None or intent.until < f.until):
        f.until = intent.until
    return f


def rrf_fuse(rankings: list[list[Source]], k: int) -> list[Source]:
    """Reciprocal rank fusion: robust to the two retrievers' incomparable score scales."""
    fused: dict[str, Source] = {}
    scores: dict[str, float] = {}
    for ranking in rankings:
        for rank, src in enumerate(ranking):
            scores[src.chunk_id] = scores.get(src.chunk_id, 0.0) + 1.0 / (k + rank + 1)
            have = fused.get(src.chunk_id)
            if have is None:
                fused[src.chunk_id] = src
            else:
                have.dense_score = have.dense_score if have.dense_score is not None else src.dense_score
                have.lexical_score = have.lexical_score if have.lexical_score is not None else src.lexical_score
    out = sorted(fused.values(), key=lambda s: -scores[s.chunk_id])
    for s in out:
        s.score = scores[s.chunk_id]
    return out


def query_coverage(query: str, source: Source) -> float:
    """Share of the question's content words found in a chunk (title included)."""
    q = set(search_terms(query))
    if not q:
        return 0.0
    have = set(search_terms(source.title + " " + source.text))
    return len(q & have) / len(q)


def diversify(ranked: list[Source], k: int, per_story: int) -> list[Source]:
    """At most `per_story` chunks of a story; among the rest, prefer outlets not yet shown."""
    chosen: list[Source] = []
    per: dict[str, int] = {}
    outlets: dict[str, int] = {}
    pool = list(ranked)
    while pool and len(chosen) < k:
        best_i, best_v = None, -1.0
        for i, s in enumerate(pool[: 4 * k]):
            if per.get(s.story_id, 0) >= per_story:
                continue
            v = s.score * (0.93 ** outlets.get(s.outlet, 0)) * (0.85 ** per.get(s.story_id, 0))
            if v > best_v:
                best_i, best_v = i, v
        if best_i is None:
            break
        s = pool.pop(best_i)
        chosen.append(s)
        per[s.story_id] = per.get(s.story_id, 0) + 1
        outlets[s.outlet] = outlets.get(s.outlet, 0) + 1
    return chosen


def merge_story_chunks(chosen: list[Source]) -> list[Source]:
    """One numbered source per story: its chosen chunks joined in reading order.

    Citations name stories, so two chunks of one story must not become [1] and [5]."""
    groups: dict[str, list[Source]] = {}
    for s in chosen:
        groups.setdefault(s.story_id, []).append(s)
    out = []
    for parts in groups.values():
        parts = sorted(parts, key=lambda p: p.chunk_index)
        head = max(parts, key=lambda p: p.score)
        out.append(replace(head, chunk_id=parts[0].chunk_id, chunk_index=parts[0].chunk_index,
                           text=" ".join(p.text for p in parts),
                           dense_score=max((p.dense_score or 0.0) for p in parts)))
    return out


def by_story(ranked: list[Source]) -> list[Source]:
    seen: set[str] = set()
    out = []
    for s in ranked:
        if s.story_id not in seen:
            seen.add(s.story_id)
            out.append(s)
    return out


_COMPARE = re.compile(r"\b(compare|compared|comparison|versus|vs\.?|difference between|differ from|against)\b", re.I)
_ENTITY = re.compile(r"\b[A-Z][A-Za-z0-9]*(?:[-.][A-Za-z0-9]+)*(?:'s|’s)?")
_NOT_ENTITY = {"what", "which", "who", "how", "when", "where", "why", "compare", "tell", "give", "show", "and",
               "the", "is", "are", "did", "does", "do", "i", "ai", "versus", "vs", "between", "latest", "recent"}


def comparison_subjects(question: str) -> list[str]:
    """The things a "compare X and Y" / "X vs Y" question asks about, or [] for other questions.

    Answering a comparison from one search lets the better-covered subject crowd the other out, so
    each subject gets its own search (see Retriever.retrieve)."""
    if not _COMPARE.search(question) and not re.search(r"\b\w+(?:'s|’s)? and \w+(?:'s|’s)? (?:latest|new|newest)\b", question):
        return []
    subjects: list[str] = []
    for m in _ENTITY.finditer(question):
        word = re.sub(r"(?:'s|’s)$", "", m.group(0))
        if word.lower() in _NOT_ENTITY or word in subjects:
            continue
        subjects.append(word)
    return subjects if 2 <= len(subjects) <= 4 else []


def interleave(lists: list[list[Source]], limit: int) -> list[Source]:
    out: list[Source] = []
    seen: set[str] = set()
    for i in range(max((len(x) for x in lists), default=0)):
        for lst in lists:
            if i < len(lst) and lst[i].story_id not in seen and len(out) < limit:
                seen.add(lst[i].story_id)
                out.append(lst[i])
    return out


class Retriever:
    def __init__(self, store: NewsStore, embedder: Embedder, settings: Settings):
        self.store = store
        self.embedder = embedder
        self.settings = settings
        self._lexical: LexicalIndex | None = None
        self._reranker = None

    def lexical(self) -> LexicalIndex:
        gen = self.store.generation()
        if self._lexical is None or self._lexical.generation != gen:
            self._lexical = LexicalIndex.load(self.store)
        return self._lexical

    def _rerank(self, query: str, ranked: list[Source]) -> list[Source]:
        """Optional cross-encoder pass, only when a local model path is configured."""
        if not self.settings.rerank_model:
            return ranked
        if self._reranker is None:
            from sentence_transformers import CrossEncoder
            self._reranker = CrossEncoder(self.settings.rerank_model, device="cpu", local_files_only=True)
        head = ranked[:30]
        scores = self._reranker.predict([(query, s.title + ". " + s.text) for s in head])
        order = np.argsort(-np.asarray(scores))
        return [head[i] for i in order] + ranked[30:]

    def retrieve(self, question: str, *, k: int | None = None, filters: Filters | None = None,
                 today: date | None = None) -> Retrieval:
        subjects = comparison_subjects(question)
        if not subjects:
            return self._retrieve(question, k=k, filters=filters, today=today)
        # one search per subject: "Nvidia's latest chips" and "AMD's latest chips", then interleave
        others = [re.escape(x) for x in subjects]
        parts = []
        for subj in subjects:
            rest = re.sub("|".join(rf"\b{o}(?:'s|’s)?\b" for o in others), " ", question)
            rest = _COMPARE.sub(" ", rest)
            rest = re.sub(r"\b(and|or|with|between)\b", " ", rest, flags=re.I)
            parts.append(self._retrieve(f"{subj} {' '.join(rest.split())}", k=k, filters=filters, today=today))
        k = k or self.settings.top_k
        first = parts[0]
        per = max(2, k // len(parts))
        context = interleave([p.context[:per] for p in parts if p.relevant] or [p.context[:per] for p in parts], k)
        return Retrieval(question=question, query=" | ".join(p.query for p in parts), intent=first.intent,
                         filters=first.filters, context=context,
                         stories=interleave([p.stories for p in parts], 10 * k),
                         relevant=any(p.relevant for p in parts), best_dense=max(p.best_dense for p in parts),
                         timings={key: sum(p.timings.get(key, 0.0) for p in parts) for key in first.timings})

    def _retrieve(self, question: str, *, k: int | None = None, filters: Filters | None = None,
                  today: date | None = None) -> Retrieval:
        t0 = time.perf_counter()
        st = self.settings
        k = k or st.top_k
        today = today or st.today_date()
        intent = parse_time_intent(question, today)
        query = intent.query.strip() or question
        eff = combine_filters(filters, intent)
        n = max(st.candidates, 3 * k)
        qvec = self.embedder.embed_one(query)
        t1 = time.perf_counter()
        dense = self.store.dense_search(qvec, n, eff)
        t2 = time.perf_counter()
        lexical_hits = self.lexical().search(query, n, eff)
        lex_sources = self.store.get_sources([h.chunk_id for h in lexical_hits])
        for src, hit in zip(lex_sources, lexical_hits):
            src.lexical_score = hit.score
        t3 = time.perf_counter()
        ranked = self._rerank(query, rrf_fuse([dense, lex_sources], st.rrf_k))
        missing = [s for s in ranked if s.dense_score is None]
        if missing:  # lexical-only hits get a dense score too: relevance and recency gates need it
            vecs = self.store.chunk_vectors([s.chunk_id for s in missing])
            for s in missing:
                v = vecs.get(s.chunk_id)
                s.dense_score = float(v @ qvec) if v is not None else 0.0
        best_dense = max((s.dense_score or 0.0 for s in ranked), default=0.0)
        top_cov = max((query_coverage(query, s) for s in ranked[:5]), default=0.0)
        relevant = bool(ranked) and best_dense >= st.min_relevance and (top_cov > 0 or best_dense >= 0.55)
        if intent.recency and ranked:
            gate = max(st.min_relevance, best_dense - 0.15)
            hot = [s for s in ranked if (s.dense_score or 0) >= gate]
            cold = [s for s in ranked if (s.dense_score or 0) < gate]
            hot.sort(key=lambda s: (s.published_at, s.score), reverse=True)
            ranked = hot + cold
            for i, s in enumerate(ranked):  # the new order is the ranking diversify() works from
                s.score = 1.0 / (st.rrf_k + i + 1)
        if intent.timeline:  # one event per story, from every relevant story we can show
            gate = max(st.min_relevance, best_dense - 0.2)
            ranked = [s for s in ranked if (s.dense_score or 0) >= gate] or ranked
            context = diversify(ranked, max(k, 12), 1)
        else:
            context = diversify(ranked, k, st.max_chunks_per_story)
        context = merge_story_chunks(context)
        if intent.timeline:
            context.sort(key=lambda s: (s.published_at, s.chunk_index))
        stories = by_story(ranked)
        t4 = time.perf_counter()
        return Retrieval(question=question, query=query, intent=intent, filters=eff, context=context,
                         stories=stories, relevant=relevant, best_dense=best_dense,
                         timings={"embed_query": t1 - t0, "dense": t2 - t1, "lexical": t3 - t2,
                                  "fuse": t4 - t3, "retrieve": t4 - t0})
