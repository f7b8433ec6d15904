"""The default generator: an answer assembled from the sources' own sentences, no LLM.

Faithful by construction: every sentence it writes is a source sentence (optionally led by the date
and outlet it came from), so the small models that run offline cannot put words in a story's mouth.
It picks the sentences most relevant to the question, drops near-repeats (MMR), groups them per story
so the answer reads as a short news brief, and for timeline questions lists one dated event per story
in chronological order.
"""
from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from typing import Iterator

import numpy as np

from rag.embedder import Embedder
from rag.generators.base import GenerationRequest
from rag.records import Source
from rag.text import content_words, split_sentences, stems


def human_date(d: date) -> str:
    return f"{d.strftime('%B')} {d.day}, {d.year}"


@dataclass
class Candidate:
    n: int                 # 1-based source number
    pos: int               # sentence position inside the source
    text: str
    relevance: float
    vec: np.ndarray


class ExtractiveGenerator:
    name = "extractive"

    def __init__(self, embedder: Embedder, *, max_sentences: int = 6, max_timeline: int = 8,
                 min_relevance: float = 0.25, redundancy: float = 0.80):
        self.embedder = embedder
        self.max_sentences = max_sentences
        self.max_timeline = max_timeline
        self.min_relevance = min_relevance
        self.redundancy = redundancy

    # -- scoring ---------------------------------------------------------------------------------
    def _candidates(self, request: GenerationRequest, query: str) -> list[Candidate]:
        items: list[tuple[int, int, str]] = []
        for n, src in enumerate(request.sources, start=1):
            for pos, sent in enumerate(split_sentences(src.text)):
                if len(content_words(sent)) >= 3:
                    items.append((n, pos, sent))
        if not items:
            return []
        qvec = self.embedder.embed_one(query)
        vecs = self.embedder.embed([t for _, _, t in items])
        q_terms = set(stems(content_words(query)))
        out = []
        for (n, pos, text), v in zip(items, vecs):
            sem = float(v @ qvec)
            lex = (len(q_terms & set(stems(content_words(text)))) / len(q_terms)) if q_terms else 0.0
            lead = 0.03 if pos == 0 else 0.0   # news leads carry the who/what/when
            out.append(Candidate(n, pos, text, 0.7 * sem + 0.3 * lex + lead, v))
        return out

    def _mmr(self, cands: list[Candidate], limit: int, lam: float = 0.75) -> list[Candidate]:
        pool = sorted((c for c in cands if c.relevance >= self.min_relevance), key=lambda c: -c.relevance)
        chosen: list[Candidate] = []
        while pool and len(chosen) < limit:
            best, best_v = None, -9.0
            for c in pool[:50]:
                sim = max((float(c.vec @ d.vec) for d in chosen), default=0.0)
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
        cands = self._candidates(request, query)
        if not cands:
            return ""
        if request.timeline:
            return self._timeline(request, cands)
        chosen = self._mmr(cands, self.max_sentences)
        if not chosen:
            return ""
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
