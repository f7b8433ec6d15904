"""The default generator: an answer assembled from the sources' own sentences, no LLM.

Faithful by construction: every sentence it writes is a source sentence (optionally led by the date
and outlet it came from), so the small models that run offline cannot put words in a story's mouth.
It picks the sentences most relevant to the question, drops near-repeats (MMR), groups them per story
so the answer reads as a short news brief, and for timeline questions lists one dated event per story
in chronological order.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import date
from typing import Iterator

from rag.embedder import Embedder
from rag.generators.base import GenerationRequest
from rag.records import Source
from rag.text import search_terms, split_sentences
from rag.untrusted import is_instruction_like


def quotable(sentences: list[str]) -> list[tuple[int, str]]:
    """(position, sentence) of the sentences an answer may quote: not those written as instructions to an
    AI (rag.untrusted), which a story may carry but an answer must never repeat as fact."""
    return [(i, s) for i, s in enumerate(sentences) if not is_instruction_like(s)]


def human_date(d: date) -> str:
    return f"{d.strftime('%B')} {d.day}, {d.year}"


@dataclass
class Candidate:
    n: int                 # 1-based source number
    pos: int               # sentence position inside the source
    text: str
    relevance: float
    terms: frozenset[str]  # stemmed search terms: what near-repeats are measured on


def term_overlap(a: frozenset[str], b: frozenset[str]) -> float:
    """Cosine of two sentences as sets of stemmed terms (1.0 = same words).

    Near-repeats in news are the same sentence syndicated with small edits, which share almost all
    their terms; measuring them lexically keeps redundancy checks free of model calls.
    """
    if not a or not b:
        return 0.0
    return len(a & b) / math.sqrt(len(a) * len(b))


class ExtractiveGenerator:
    name = "extractive"

    def __init__(self, embedder: Embedder | None = None, *, max_sentences: int = 5, max_timeline: int = 10,
                 min_relevance: float = 0.25, redundancy: float = 0.70, focus: float = 0.75,
                 pool_size: int = 8, semantic_pool: int = 0, lead_sentences: int = 3):
        """`semantic_pool`: when set, the pool is that many of the best lexical candidates, re-ranked
        by cosine to the question in one batched model call. Off by default: on a busy 2-core CPU one
        call of a few sentences took 0.2-2 s, many times the answer's budget, while relevance is already
        carried by the chunk's retrieval score and the question's rare terms in the sentence."""
        self.embedder = embedder
        self.focus = focus
        self.pool_size = pool_size
        self.semantic_pool = semantic_pool if embedder is not None else 0
        self.lead_sentences = lead_sentences
        self.max_sentences = max_sentences
        self.max_timeline = max_timeline
        self.min_relevance = min_relevance
        self.redundancy = redundancy

    # -- scoring ---------------------------------------------------------------------------------
    def _candidates(self, request: GenerationRequest, query: str, per_story: int = 0) -> list[Candidate]:
        """Score every source sentence without the model, then keep the pool worth choosing from.

        Score: IDF-weighted share of the question's terms in the sentence (rare terms -- names, products
        -- say more than "model" or "release"), the chunk's own dense similarity to the question (stored
        at ingest and already computed by retrieval, so it costs nothing here), and a small bonus for a
        story's lead sentence (news leads carry the who/what/when).
        """
        items: list[tuple[int, int, str, frozenset[str]]] = []
        for n, src in enumerate(request.sources, start=1):
            for pos, sent in quotable(split_sentences(src.text)):
                terms = frozenset(search_terms(sent))
                if len(terms) >= 3:
                    items.append((n, pos, sent, terms))
        if not items:
            return []
        q_terms = set(search_terms(query))
        df = {t: sum(1 for *_, terms in items if t in terms) for t in q_terms}
        idf = {t: math.log(1 + len(items) / (1 + df[t])) for t in q_terms}
        total = sum(idf.values()) or 1.0
        best_dense = max((s.dense_score or 0.0) for s in request.sources) or 1.0
        scored = []
        for n, pos, text, terms in items:
            lex = sum(w for t, w in idf.items() if t in terms) / total
            prior = max(request.sources[n - 1].dense_score or 0.0, 0.0) / best_dense
            scored.append(Candidate(n, pos, text, 0.55 * lex + 0.35 * prior + (0.1 if pos == 0 else 0.0), terms))
        scored.sort(key=lambda c: -c.relevance)
        if per_story:  # timelines want every story's best sentences, not the globally best few
            taken: dict[int, int] = {}
            pool = []
            for c in scored:
                if taken.get(c.n, 0) < per_story:
                    taken[c.n] = taken.get(c.n, 0) + 1
                    pool.append(c)
        else:
            pool = scored[: self.semantic_pool or self.pool_size]
            if self.semantic_pool:
                self._rerank(pool, query)
        return pool

    def _rerank(self, pool: list[Candidate], query: str) -> None:
        qvec = self.embedder.embed_one(query)   # cached: retrieval embedded the same query
        vecs = self.embedder.embed([c.text for c in pool])
        for c, v in zip(pool, vecs):
            c.relevance = 0.5 * c.relevance + 0.5 * float(v @ qvec)

    def _mmr(self, cands: list[Candidate], limit: int, lam: float = 0.75) -> list[Candidate]:
        if not cands:
            return []
        top = max(c.relevance for c in cands)
        floor = max(self.min_relevance, self.focus * top)   # stay on the stories that answer best
        pool = sorted((c for c in cands if c.relevance >= floor), key=lambda c: -c.relevance)
        chosen: list[Candidate] = []
        while pool and len(chosen) < limit:
            best, best_v = None, -9.0
            for c in pool:
                sim = max((term_overlap(c.terms, d.terms) for d in chosen), default=0.0)
                if sim >= self.redundancy:
                    continue
                v = lam * c.relevance - (1 - lam) * sim
                if v > best_v:
                    best, best_v = c, v
            if best is None:
                break
            pool.remove(best)
            chosen.append(best)
        return chosen

    # -- writing ---------------------------------------------------------------------------------
    def compose(self, request: GenerationRequest, query: str | None = None) -> str:
        query = query or request.question
        cands = self._candidates(request, query, per_story=2 if request.timeline else 0)
        if not cands:
            return ""
        if request.timeline:
            return self._timeline(request, cands)
        chosen = self._mmr(cands, self.max_sentences)
        if not chosen:
            return ""
        chosen = self._fill_lead_story(request, query, chosen)
        # group per story, stories in order of their best sentence (or newest first for "latest")
        groups: dict[int, list[Candidate]] = {}
        for c in chosen:
            groups.setdefault(c.n, []).append(c)
        order = list(groups)
        if request.recency:
            order.sort(key=lambda n: request.sources[n - 1].published_at, reverse=True)
        paras = []
        for n in order:
            src = request.sources[n - 1]
            sents = sorted(groups[n], key=lambda c: c.pos)
            lead = f"On {human_date(src.published_at)}, {src.outlet} reported: "
            body = " ".join(f"{c.text} [{n}]" for c in sents)
            paras.append(lead + body)
        return "\n\n".join(paras)

    def _fill_lead_story(self, request: GenerationRequest, query: str, chosen: list[Candidate]) -> list[Candidate]:
        """The story that answers best gets a few sentences of context, not one orphan line."""
        lead_n = chosen[0].n
        have = {c.pos for c in chosen if c.n == lead_n}
        if len(have) >= self.lead_sentences:
            return chosen
        sents = split_sentences(request.sources[lead_n - 1].text)
        q_terms = set(search_terms(query))
        order = sorted((i for i, _ in quotable(sents) if i not in have),
                       key=lambda i: (-len(q_terms & set(search_terms(sents[i]))), i))
        extra = [Candidate(lead_n, i, sents[i], 0.0, frozenset(search_terms(sents[i])))
                 for i in order[: self.lead_sentences - len(have)] if len(search_terms(sents[i])) >= 3]
        return chosen + extra

    def _timeline(self, request: GenerationRequest, cands: list[Candidate]) -> str:
        best: dict[int, Candidate] = {}
        for c in cands:
            if c.relevance >= self.min_relevance and (c.n not in best or c.relevance > best[c.n].relevance):
                best[c.n] = c
        picked = sorted(best.values(), key=lambda c: -c.relevance)[: self.max_timeline]
        picked.sort(key=lambda c: (request.sources[c.n - 1].published_at, c.n))
        lines = []
        for c in picked:
            src = request.sources[c.n - 1]
            lines.append(f"- {src.published_at.isoformat()} ({src.outlet}): {c.text} [{c.n}]")
        return "\n".join(lines)

    def generate(self, request: GenerationRequest) -> Iterator[str]:
        text = self.compose(request)
        for i, para in enumerate(text.split("\n")):
            yield ("\n" if i else "") + para
