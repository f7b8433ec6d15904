"""Hybrid, date-aware retrieval: dense (Chroma) + BM25, fused by reciprocal rank, then diversified.

Time words that scope a question become date filters ("last month", "news from March 2026", "since
2025"); dates and outlets that only describe the stories asked about ("the article CNBC published on
October 1 ... the one about November") rank those stories higher instead, since a filter built from a
description hides every other story the question needs. A filter that leaves nothing is relaxed, with
a notice. "latest"/"recent" re-order the relevant stories instead of filtering, so a latest-question
about an old topic still finds it. Diversity caps chunks per story and mixes outlets, so one story cannot
fill the context the generator sees. Whether the store answers at all is rag.answerability's decision.
"""
from __future__ import annotations

import logging
import math
import re
import threading
import time
from dataclasses import dataclass, field, replace
from datetime import date

import numpy as np

from rag.answerability import absent_things, answerability_features, load_calibration
from rag.calibration import CLAUSES
from rag.embedder import Embedder
from rag.lexical import LexicalIndex
from rag.records import Filters, Source
from rag.settings import Settings
from rag.store import NewsStore, dense_sources
from rag.text import request_terms, search_terms
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
    evidence: float = 0.0               # the relevance gate's score, >= 1 when relevant (see relevance())
    coverage: float = 0.0               # rarity-weighted share of the question's terms in its best story
    features: list[dict] = field(default_factory=list)   # per top story: dense, coverage, lexical (debugging)
    answerability: dict = field(default_factory=dict)    # the decision's features (rag.answerability)
    notices: list[str] = field(default_factory=list)     # e.g. a filter that emptied the results was relaxed
    absent: list[str] = field(default_factory=list)      # what the question names that no top story mentions


def describe_filters(f: Filters) -> str:
    parts = []
    if f.since and f.until:
        parts.append(f"from {f.since.isoformat()} to {f.until.isoformat()}")
    elif f.since:
        parts.append(f"since {f.since.isoformat()}")
    elif f.until:
        parts.append(f"up to {f.until.isoformat()}")
    if f.outlets:
        parts.append("from " + ", ".join(f.outlets))
    if f.tags:
        parts.append("tagged " + ", ".join(f.tags))
    return " ".join(parts) or "in the store"


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


class TermStats:
    """How rare each search term is in the store (chunk document frequency from the BM25 index).

    Coverage weighs the question's words by rarity: a story that holds the rare words of a question
    ("Fuyu-8B", "Rekognition") matters more than one holding its common ones ("announce", "model").
    A term the store has never seen gets the highest weight of all."""

    def __init__(self, lexical: LexicalIndex):
        self.generation = lexical.generation
        bm = lexical.bm
        if bm is None:
            self.n, self.vocab, self.df = 0, {}, np.zeros(0, dtype=np.int64)
        else:
            self.n = int(bm.scores["num_docs"])
            self.vocab = bm.vocab_dict
            self.df = np.diff(np.asarray(bm.scores["indptr"], dtype=np.int64))

    def idf(self, term: str) -> float:
        i = self.vocab.get(term)
        df = int(self.df[i]) if i is not None and i < len(self.df) else 0
        return math.log(1.0 + (self.n - df + 0.5) / (df + 0.5))

    def weights(self, query: str) -> dict[str, float]:
        """The question's terms by rarity, without the words of how it is asked (unless that is all)."""
        terms = list(dict.fromkeys(search_terms(query)))
        form = request_terms()
        return {t: self.idf(t) for t in ([t for t in terms if t not in form] or terms)}


def weighted_coverage(weights: dict[str, float], terms: set[str]) -> float:
    """Rarity-weighted share of the question's terms that a text contains (0..1).

    A hyphenated compound ("face-reading", "Qwen3-Next") is rare as written, so it weighs a lot, yet a
    story may write it apart ("reads faces", "Qwen3 Next"): it counts as present when all of its parts
    that are search terms are -- unless the story writes them into another compound: "Qwen3-Coder-Next"
    holds "Qwen3" and "Next" but is another model than "Qwen3-Next"."""
    total = sum(weights.values())
    if not total:
        return 0.0

    def present(t: str) -> bool:
        if t in terms:
            return True
        parts = [p for p in t.split("-") if p in weights] if "-" in t else []
        if not parts or not all(p in terms for p in parts):
            return False
        return not any("-" in u and all(p in u.split("-") for p in parts) for u in terms)

    return sum(w for t, w in weights.items() if present(t)) / total


def text_terms(text: str) -> frozenset[str]:
    return frozenset(search_terms(text))


def story_terms(ranked: list[Source], terms_of=text_terms) -> dict[str, set[str]]:
    """Search terms of each candidate story: its title, tags and every retrieved chunk of it.

    Terms are per word, so a story's terms are the union of its parts' terms; `terms_of` may therefore
    remember each text's terms (Retriever.cached_terms does) instead of re-tokenising the same chunks
    on every query."""
    out: dict[str, set[str]] = {}
    for s in ranked:
        have = out.get(s.story_id)
        if have is None:
            have = out[s.story_id] = set(terms_of(s.title)) | terms_of(" ".join(s.tags))
        have |= terms_of(s.text)
    return out


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


log = logging.getLogger(__name__)

RERANK_HEAD = 30            # fused candidates a configured cross-encoder re-orders
FEATURE_STORIES = 20        # candidate stories whose rarity-weighted coverage is computed
# 0.6, not 0.3: BM25's length normalisation buries a longer story holding the question's one rare name
# under short ones sharing common words.
CLAUSE_STORIES = 2          # of each clause's search, this many stories are woven into a long question's
GATE_STORIES = 5            # the answerability decision looks at this many top stories


def relevance(answerability: dict[str, float]) -> tuple[bool, float]:
    """(answerable?, probability) from the fitted decision in rag/calibration.json."""
    cal = load_calibration()
    p = cal.probability(answerability)
    return p >= cal.threshold, p


def boost_by_descriptors(ranked: list[Source], question: str, periods, rrf_k: int) -> list[Source]:
    """Rank up stories whose date falls in a period the question describes, or whose outlet it names.

    "the article CNBC published on October 1" is a description, not a scope: the story that matches it
    should rank first without every other story being filtered away."""
    from rag.answerability import period_match

    cal = load_calibration()
    q = question.lower()
    date_bonus = cal.date_boost / (rrf_k + 1)
    outlet_bonus = cal.outlet_boost / (rrf_k + 1)
    for s in ranked:
        if periods:
            s.score += date_bonus * period_match(periods, [s.published_at], slack_days=3)
        if any(len(o) >= 4 and o.lower() in q for o in s.outlets):
            s.score += outlet_bonus
    return sorted(ranked, key=lambda s: -s.score)


def boost_by_coverage(ranked: list[Source], features: list[dict], rrf_k: int) -> list[Source]:
    """Re-rank candidates by fused score plus a bonus for holding the question's rare words.

    RRF only sees ranks; among stories the two retrievers rank alike, the one that contains "Fuyu-8B"
    and "Adept" should beat the one that shares only "model" and "release"."""
    cal = load_calibration()
    cov = {f["story_id"]: (f["coverage"], f.get("title_coverage", 0.0)) for f in features}
    bonus = cal.coverage_boost / (rrf_k + 1)       # coverage 1.0 adds this share of a first place
    title_bonus = cal.title_boost / (rrf_k + 1)    # ... and a headline holding them all, this share
    for s in ranked:
        body, title = cov.get(s.story_id, (0.0, 0.0))
        s.score += bonus * body + title_bonus * title
    return sorted(ranked, key=lambda s: -s.score)


# "against" only in a comparing phrase: "Musk's lawsuit against OpenAI" asks about one thing, not two
_COMPARE = re.compile(r"\b(compare|compared|comparison|versus|vs\.?|difference between|differ from|"
                      r"(?:stack|stacks|stacked|measure|measures|pit|pits|pitted)\s+(?:up\s+)?against)\b", re.I)
_ENTITY = re.compile(r"\b[A-Z][A-Za-z0-9]*(?:[-.][A-Za-z0-9]+)*(?:'s|’s)?")
_VERSION = re.compile(r"\d+(?:\.\d+)*[A-Za-z]?(?:'s|’s)?")        # "4.5", "3", "4o" after a name
_NOT_ENTITY = {"what", "which", "who", "how", "when", "where", "why", "compare", "tell", "give", "show", "and",
               "the", "is", "are", "did", "does", "do", "i", "ai", "versus", "vs", "between", "latest", "recent",
               "can", "could", "should", "would", "will", "has", "have", "was", "were", "in", "on", "a", "an"}


def _entity_runs(question: str) -> list[str]:
    """Capitalised names with the names and version numbers right after them: "Claude Opus 4.5"."""
    runs: list[str] = []
    cur: list[str] = []
    for m in re.finditer(r"\S+", question):
        raw = m.group(0)
        word = raw.strip(",;:?!()[]\"“”'‘’.")
        is_name = bool(_ENTITY.fullmatch(word)) and re.sub(r"(?:'s|’s)$", "", word).lower() not in _NOT_ENTITY
        if is_name or (cur and _VERSION.fullmatch(word)):
            cur.append(word)
        else:
            if cur:
                runs.append(" ".join(cur))
            cur = []
        if cur and raw[-1] in ",;:?!)\"”":            # punctuation ends a name: "H100, H200 and B200"
            runs.append(" ".join(cur))
            cur = []
    if cur:
        runs.append(" ".join(cur))
    return [re.sub(r"(?:'s|’s)$", "", r) for r in runs]


def comparison_subjects(question: str) -> list[str]:
    """The things a "compare X and Y" / "X vs Y" question asks about, or [] for other questions.

    Answering a comparison from one search lets the better-covered subject crowd the other out, so
    each subject gets its own search (see Retriever.retrieve). A subject is a run of names with its
    version numbers ("Claude Opus 4.5", "Meta's Llama 4"), not each capitalised word."""
    if not _COMPARE.search(question) and not re.search(r"\b\w+(?:'s|’s)? and \w+(?:'s|’s)? (?:latest|new|newest)\b", question):
        return []
    subjects: list[str] = []
    for run in _entity_runs(question):
        if run.lower() not in {x.lower() for x in subjects}:
            subjects.append(run)
    return subjects if 2 <= len(subjects) <= 4 else []


def clause_queries(question: str, *, min_words: int | None = None, width: int | None = None,
                   stride: int | None = None) -> list[str]:
    """Word windows of a long question (consecutive or overlapping, as CLAUSES says), each searched on its own.

    A question of 30-60 words that describes two or three articles ("the report X published in May
    about A, and the later piece Y ran about B") is one vector and one bag of words: the article the
    question spends fewer words on drops out of the top results. Windows need no grammar of how such
    questions are put; one that straddles two descriptions costs a search and nothing else."""
    min_words = min_words or CLAUSES["min_words"]
    width = width or CLAUSES["width"]
    stride = stride or CLAUSES["stride"]
    words = question.split()
    if len(words) < min_words:
        return []
    starts = list(range(0, max(1, len(words) - width + stride), stride))
    return [" ".join(words[i:i + width]) for i in starts]


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
        self._terms: TermStats | None = None
        self._lock = threading.Lock()
        self._reranker = None
        self._terms_cache: dict[str, frozenset[str]] = {}

    def lexical(self) -> LexicalIndex:
        """The published snapshot, reloaded between questions when an ingest publishes a newer one."""
        current = self.store.snapshot_id()
        with self._lock:
            if self._lexical is None or self._lexical.snapshot != current:
                self._lexical = LexicalIndex.load(self.store)
                self._terms_cache = {}
            return self._lexical

    def cached_terms(self, text: str) -> frozenset[str]:
        """Search terms of a chunk text, remembered: candidates recur across questions, and stemming
        80 chunks per query cost more than the BM25 search itself."""
        hit = self._terms_cache.get(text)
        if hit is None:
            hit = text_terms(text)
            if len(self._terms_cache) >= 50_000:
                self._terms_cache = {}
            self._terms_cache[text] = hit
        return hit

    def term_stats(self) -> TermStats:
        lex = self.lexical()
        with self._lock:
            if self._terms is None or self._terms.generation != lex.generation:
                self._terms = TermStats(lex)
            return self._terms

    def _rerank(self, query: str, ranked: list[Source]) -> list[Source]:
        """Optional cross-encoder pass over the fused head, only when a local model path is configured.

        The new order is written back into the fused scores (as the RRF score of each new rank), since
        the coverage re-rank and diversity steps after it sort by score. A model that cannot be loaded
        is reported once and retrieval goes on without it: a rerank is a refinement, not a requirement."""
        if not self.settings.rerank_model or self._reranker is False:
            return ranked
        if self._reranker is None:
            try:
                from sentence_transformers import CrossEncoder
                self._reranker = CrossEncoder(self.settings.rerank_model, device="cpu", local_files_only=True)
            except Exception as exc:  # noqa: BLE001 - a bad path, not a cross-encoder, a broken file
                log.warning("rerank model %s could not be loaded (%s: %s); retrieving without rerank",
                            self.settings.rerank_model, type(exc).__name__, exc)
                self._reranker = False
                return ranked
        head = ranked[:RERANK_HEAD]
        scores = self._reranker.predict([(query, s.title + ". " + s.text) for s in head], show_progress_bar=False)
        order = np.argsort(-np.asarray(scores), kind="stable")
        out = [head[i] for i in order] + ranked[RERANK_HEAD:]
        for rank, s in enumerate(out):
            s.score = 1.0 / (self.settings.rrf_k + rank + 1)
        return out

    def _sources(self, lex: LexicalIndex, chunk_ids: list[str]) -> dict[str, Source]:
        """Sources from the index's chunk copy; Chroma is asked only for chunks written after it was built."""
        got = lex.sources(chunk_ids)
        late = [c for c in chunk_ids if c not in got]
        if late:
            got.update((s.chunk_id, s) for s in self.store.get_sources(late))
        return got

    def _dense(self, lex: LexicalIndex, qvec: np.ndarray, n: int, filters: Filters) -> list[Source]:
        hits = self.store.dense_hits(qvec, n, filters, snapshot=lex)
        return dense_sources(hits, self._sources(lex, [c for c, _ in hits]))

    def _lexical_sources(self, lex: LexicalIndex, hits: list, dense: list[Source]) -> list[Source]:
        """BM25 hits as Sources, in BM25 order; most of them are among the dense hits already."""
        have = {s.chunk_id: s for s in dense}
        fetched = self._sources(lex, [h.chunk_id for h in hits if h.chunk_id not in have])
        out = []
        for h in hits:
            d = have.get(h.chunk_id)
            src = replace(d, score=0.0, dense_score=None) if d is not None else fetched.get(h.chunk_id)
            if src is not None:
                src.lexical_score = h.score
                out.append(src)
        return out

    def story_features(self, query: str, ranked: list[Source], limit: int,
                       weights: dict[str, float] | None = None) -> list[dict]:
        """Per candidate story, in fused rank order: best dense cosine, best BM25 score, and the
        rarity-weighted share of the question's terms the story contains."""
        weights = self.term_stats().weights(query) if weights is None else weights
        heads = by_story(ranked)[:limit]
        keep = {s.story_id for s in heads}
        terms = story_terms([s for s in ranked if s.story_id in keep], self.cached_terms)
        dense: dict[str, float] = {}
        lex: dict[str, float] = {}
        for s in ranked:
            if s.story_id in keep:
                dense[s.story_id] = max(dense.get(s.story_id, -1.0), s.dense_score or 0.0)
                lex[s.story_id] = max(lex.get(s.story_id, 0.0), s.lexical_score or 0.0)
        return [{"story_id": s.story_id, "rank": i + 1, "dense": dense[s.story_id], "lexical": lex[s.story_id],
                 "coverage": weighted_coverage(weights, terms[s.story_id]),
                 "title_coverage": weighted_coverage(weights, set(self.cached_terms(s.title)))}
                for i, s in enumerate(heads)]

    def answerability(self, question: str, ranked: list[Source], top: list[dict], weights: dict[str, float],
                      intent: TimeIntent) -> tuple[dict[str, float], list[str]]:
        """The decision's features over the top stories (see rag.answerability.FEATURES), and what the
        question names that none of them mentions."""
        keep = {f["story_id"] for f in top}
        parts = [s for s in ranked if s.story_id in keep]
        text: dict[str, str] = {}
        for s in parts:
            text[s.story_id] = text.get(s.story_id, s.title) + " " + s.text
        head = {s.story_id: s for s in by_story(parts)}
        absent = absent_things(question, " ".join(text.values()) + " " + " ".join(
            o for s in head.values() for o in s.outlets))
        return answerability_features(
            question=question, story_feats=top, weights=weights,
            story_terms=story_terms(parts, self.cached_terms), story_text=text, n_docs=self.term_stats().n,
            periods=intent.periods, published={i: s.published_at for i, s in head.items()},
            outlets={i: s.outlets for i, s in head.items()}), absent

    def retrieve(self, question: str, *, k: int | None = None, filters: Filters | None = None,
                 today: date | None = None, clauses: list[str] | None = None) -> Retrieval:
        subjects = comparison_subjects(question)
        if not subjects:
            whole = self._retrieve(question, k=k, filters=filters, today=today)
            clauses = clause_queries(question) if clauses is None else clauses
            return self._with_clauses(whole, clauses, k=k, today=today) if clauses else whole
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
                         evidence=max(p.evidence for p in parts), coverage=max(p.coverage for p in parts),
                         features=[f for p in parts for f in p.features],
                         answerability=max((p.answerability for p in parts), key=lambda a: a.get("p", 0.0)),
                         absent=[a for p in parts for a in p.absent],
                         notices=[n for p in parts for n in p.notices if n not in first.notices] + first.notices,
                         timings={key: sum(p.timings.get(key, 0.0) for p in parts) for key in first.timings})

    def _with_clauses(self, whole: Retrieval, clauses: list[str], *, k: int | None, today: date | None) -> Retrieval:
        """The whole question's retrieval, with the best stories of each clause's own search woven in
        after its first story. Whether to answer stays the whole question's decision; the clauses only
        make sure each article a long question describes is among the stories and the context."""
        today = today or self.settings.today_date()
        k = k or self.settings.top_k
        intents = [replace(parse_time_intent(text, today), scoped=False) for text in clauses]   # describe, never filter
        self.embedder.warm([i.query.strip() or text for i, text in zip(intents, clauses)])
        parts = [self._search(text, intent, whole.filters, k=k, today=today, decide=False,
                              candidates=CLAUSES["candidates"]) for text, intent in zip(clauses, intents)]
        head = whole.stories[:1]
        stories = interleave([head] + [p.stories[:CLAUSE_STORIES] for p in parts] + [whole.stories[1:]],
                             max(len(whole.stories), 10 * k))
        rest = [s for s in whole.stories if s.story_id not in {x.story_id for x in stories}]
        context_ids = {s.story_id for s in whole.context}
        extra = [c for p in parts for c in p.context[:1] if c.story_id not in context_ids]
        context = interleave([whole.context[:1]] + [[c] for c in extra] + [whole.context[1:]], k + len(parts))
        timings = dict(whole.timings)
        timings["clauses"] = sum(p.timings.get("retrieve", 0.0) for p in parts)
        timings["retrieve"] = timings.get("retrieve", 0.0) + timings["clauses"]
        return replace(whole, stories=stories + rest, context=context, timings=timings)   # one source per story already

    def _retrieve(self, question: str, *, k: int | None = None, filters: Filters | None = None,
                  today: date | None = None) -> Retrieval:
        """Search within the question's scope; when that scope (the question's or the user's) leaves
        nothing that answers, search again without it and say so, instead of refusing silently."""
        today = today or self.settings.today_date()
        intent = parse_time_intent(question, today)
        scoped = combine_filters(filters, intent) if intent.scoped else replace(filters) if filters else Filters()
        r = self._search(question, intent, scoped, k=k, today=today)
        if r.relevant and r.stories:
            return r
        wider = [(replace(filters) if filters else Filters(), "the dates in the question")] if intent.scoped else []
        if filters is not None and not filters.is_empty() and not r.stories:
            wider.append((Filters(), "your filters"))
        for f, what in wider:
            if f == scoped:
                continue
            again = self._search(question, intent, f, k=k, today=today)
            if again.stories and (again.relevant or not r.stories):
                span = describe_filters(scoped)
                again.notices.append(f"No story {span} answers this, so I searched beyond {what}."
                                     if r.stories else f"No story matches {what} ({span}), so I searched beyond them.")
                for key, v in r.timings.items():
                    again.timings[key] = again.timings.get(key, 0.0) + v
                return again
        return r

    def _search(self, question: str, intent: TimeIntent, eff: Filters, *, k: int | None, today: date,
                decide: bool = True, candidates: int | None = None) -> Retrieval:
        """One search. `decide=False` (a long question's windows) ranks only: whether to answer is the
        whole question's decision, so its features are not computed; `candidates` narrows the fused
        pool when only the first few stories are wanted."""
        t0 = time.perf_counter()
        st = self.settings
        k = k or st.top_k
        query = intent.query.strip() or question
        n = candidates or max(st.candidates, 3 * k)
        qvec = self.embedder.embed_one(query)
        t1 = time.perf_counter()
        lex = self.lexical()
        dense = self._dense(lex, qvec, n, eff)
        t2 = time.perf_counter()
        lexical_hits = lex.search(query, n, eff)
        lex_sources = self._lexical_sources(lex, lexical_hits, dense)
        t3 = time.perf_counter()
        ranked = self._rerank(query, rrf_fuse([dense, lex_sources], st.rrf_k))
        missing = [s for s in ranked if s.dense_score is None]
        if missing:  # lexical-only hits get a dense score too: relevance and recency gates need it
            ids = [s.chunk_id for s in missing]
            vecs = lex.vectors(ids)
            if len(vecs) < len(ids):
                vecs.update(self.store.chunk_vectors([c for c in ids if c not in vecs]))
            for s in missing:
                v = vecs.get(s.chunk_id)
                s.dense_score = float(v @ qvec) if v is not None else 0.0
        best_dense = max((s.dense_score or 0.0 for s in ranked), default=0.0)
        weights = self.term_stats().weights(query)
        features = self.story_features(query, ranked, FEATURE_STORIES, weights=weights)
        ranked = boost_by_coverage(ranked, features, st.rrf_k)
        if not intent.scoped:
            ranked = boost_by_descriptors(ranked, question, intent.periods, st.rrf_k)
        order = {s.story_id: i for i, s in enumerate(by_story(ranked))}
        features = sorted(features, key=lambda f: order.get(f["story_id"], len(order)))
        for i, f in enumerate(features):
            f["rank"] = i + 1
        if decide:
            answerability, absent = self.answerability(question, ranked, features[:GATE_STORIES], weights, intent)
            relevant, evidence = relevance(answerability)
        else:
            answerability, absent, relevant, evidence = {"coverage_best": 0.0}, [], bool(ranked), 0.0
        answerability["p"] = evidence
        coverage = answerability["coverage_best"]
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
                         stories=stories, relevant=relevant, best_dense=best_dense, features=features,
                         evidence=evidence, coverage=coverage, answerability=answerability, absent=absent,
                         timings={"embed_query": t1 - t0, "dense": t2 - t1, "lexical": t3 - t2,
                                  "fuse": t4 - t3, "retrieve": t4 - t0})
