"""The default generator: an answer assembled from the sources' own sentences, no LLM.

Faithful by construction: every sentence it writes is a source sentence (optionally led by the date
and outlet it came from), so the small models that run offline cannot put words in a story's mouth.

Answer first: the opening sentence is the one that best answers the question -- scored by the question's
rare words, the story's retrieval rank and dense score, whether it holds what the question asks for (an
amount for "how much", a person for "who", a date for "when") and, when COMPOSITION gives it weight, its
cosine to the question (one batched call of the embedder retrieval already loaded, over a small pool). The answering story keeps a few
following sentences of context; another story is added only when its best sentence scores within a
fixed share of the best one (COMPOSITION["other_story_bar"]), so weakly related stories stay out. A
sentence that leans on the one before it ("It also ...", "The funding, led by ...") brings that one
along or is not used. "Latest" questions lead with the newest story that is still relevant, and a
comparison gets a sentence about each of its subjects. Timeline questions list one dated event per
story in chronological order.
"""
from __future__ import annotations

import math
import re
from dataclasses import dataclass, replace
from datetime import date
from typing import Iterator

from rag.answerability import norm_text, question_names
from rag.calibration import COMPOSITION
from rag.embedder import Embedder
from rag.generators.base import GenerationRequest
from rag.text import numbers, search_terms, split_sentences
from rag.untrusted import is_instruction_like


def human_date(d: date) -> str:
    return f"{d.strftime('%B')} {d.day}, {d.year}"




@dataclass
class Candidate:
    n: int                 # 1-based source number
    pos: int               # sentence position inside the source
    text: str
    relevance: float
    terms: frozenset[str]  # stemmed search terms: what near-repeats are measured on
    rank_part: float = 0.0  # the share of `relevance` that comes from the story's rank, not the sentence
    content: float = 0.0    # relevance without rank_part: how well the sentence itself answers


def terms_of(text: str) -> frozenset[str]:
    """Stemmed search terms with typographic apostrophes folded: a headline's "Tesla’s" is the
    question's "Tesla's" (the stemmer drops an ASCII possessive only)."""
    return frozenset(search_terms(text.replace("’", "'")))


def term_overlap(a: frozenset[str], b: frozenset[str]) -> float:
    """Cosine of two sentences as sets of stemmed terms (1.0 = same words).

    Near-repeats in news are the same sentence syndicated with small edits, which share almost all
    their terms; measuring them lexically keeps redundancy checks free of model calls.
    """
    if not a or not b:
        return 0.0
    return len(a & b) / math.sqrt(len(a) * len(b))


# -- question types and the sentences that answer them -------------------------------------------
_MONTH = (r"(?:January|February|March|April|May|June|July|August|September|October|November|December|"
          r"Jan\.|Feb\.|Aug\.|Sept?\.|Oct\.|Nov\.|Dec\.)")
_KINDS = [
    ("amount", re.compile(r"\bhow (?:much|many|large|big|long|fast)\b|\bwhat (?:was|is|were|are) the "
                          r"(?:price|cost|valuation|amount|size|number|value|score)\b|\bwhat percentage\b", re.I)),
    ("date", re.compile(r"\bwhen\b|\b(?:what|which) (?:date|day|year|month)\b|\bon what date\b|\bwhat time\b", re.I)),
    ("person", re.compile(r"\bwho(?:m|se)?\b", re.I)),
    ("place", re.compile(r"\bwhere\b|\b(?:which|what) (?:city|country|state|region)\b", re.I)),
]
_AMOUNT = re.compile(r"[$€£¥]\s?\d|\d(?:[\d,.]*\d)?\s?(?:%|percent|per cent|billion|million|trillion|"
                     r"thousand|bn\b|gigabytes?|GB\b|TB\b|parameters|tokens|times|x\b|megawatts?|petaflops?)", re.I)
_DATE = re.compile(rf"\b{_MONTH}(?:\s+\d{{1,2}})?(?:,?\s+(?:19|20)\d\d)?\b|\b(?:19|20)\d\d\b|"
                   r"\b(?:Monday|Tuesday|Wednesday|Thursday|Friday|Saturday|Sunday)\b")
_PERSON = re.compile(r"(?<![.!?]\s)\b[A-Z][a-z]+(?:\s[A-Z]\.)?\s[A-Z][a-z]+(?:-[A-Z][a-z]+)?\b|"
                     r"\b(?:chief executive|CEO|founder|co-founder|president|chairman|director|judge|head of)\b")
_PLACE = re.compile(r"\b(?:in|at|from|near) (?:the )?[A-Z][a-z]+")


def question_kind(question: str) -> str | None:
    """What the question asks for: "amount", "date", "person", "place" or None (what/why/how)."""
    for kind, rx in _KINDS:
        if rx.search(question):
            return kind
    return None


def answers_kind(sentence: str, kind: str | None) -> bool:
    if kind == "amount":
        return bool(_AMOUNT.search(sentence)) or bool(numbers(re.sub(r"\b(?:19|20)\d\d\b", "", sentence)))
    if kind == "date":
        return bool(_DATE.search(sentence))
    if kind == "person":
        return any(not re.fullmatch(_MONTH + r".*", m.group(0)) for m in _PERSON.finditer(sentence))
    if kind == "place":
        return bool(_PLACE.search(sentence))
    return False


# A sentence that only makes sense after the one before it: a pronoun or connective at its start, or
# "The <thing>" pointing back at something just named ("The funding, led by ...", "The company said").
_LEANS = re.compile(
    r"^[\"'“‘(]*(?:(?i:it|its|it's|they|their|them|this|that|these|those|he|she|his|her|also|but|and|or|so|"
    r"yet|still|however|meanwhile|instead|besides|moreover|furthermore|additionally|likewise|similarly|such|"
    r"both|neither|either|another|then|there|here|in addition|as a result|by contrast|at the same time|"
    r"even so)\b|The [a-z]+\b)")


def leans_on_previous(sentence: str) -> bool:
    return bool(_LEANS.match(sentence))


class StoryText(list):
    """A source's sentences as (text, search terms); `starts_story` when the text begins at the story's
    first sentence (its first chunk), so that sentence has nothing before it to lean on but the headline."""

    def __init__(self, sentences: list[tuple[str, frozenset[str]]], starts_story: bool):
        super().__init__(sentences)
        self.starts_story = starts_story


class ExtractiveGenerator:
    name = "extractive"

    def __init__(self, embedder: Embedder | None = None, *, max_sentences: int = 6, max_timeline: int = 10,
                 min_relevance: float = 0.25, redundancy: float = 0.70, pool_size: int = 8,
                 per_story_pool: int = 3, lead_sentences: int = 4, max_stories: int = 3,
                 calibration: dict | None = None):
        """`embedder`: when given, the sentence pool (`pool_size` sentences, at most `per_story_pool`
        from one story) is scored by cosine to the question in one batched call."""
        self.embedder = embedder
        self.max_sentences = max_sentences
        self.max_timeline = max_timeline
        self.min_relevance = min_relevance
        self.redundancy = redundancy
        self.pool_size = pool_size
        self.per_story_pool = per_story_pool
        self.lead_sentences = lead_sentences
        self.max_stories = max_stories
        self.cal = {**COMPOSITION, **(calibration or {})}

    # -- scoring ---------------------------------------------------------------------------------
    def usable(self, sentence: str, terms: frozenset[str]) -> bool:
        """Whether a source sentence may be quoted at all (the one place to filter candidates): not a
        fragment, and not written as an instruction to an AI (rag.untrusted), which a story may carry but
        an answer must never repeat as fact."""
        return len(terms) >= 3 and not is_instruction_like(sentence)

    def _sentences(self, request: GenerationRequest) -> list[StoryText]:
        return [StoryText([(s, terms_of(s)) for s in split_sentences(src.text)], src.chunk_index == 0)
                for src in request.sources]

    def _score_all(self, request: GenerationRequest, query: str,
                   sents: list[list[tuple[str, frozenset[str]]]]) -> list[Candidate]:
        """Score every usable source sentence without the model.

        Score: IDF-weighted share of the question's terms in the sentence (rare terms -- names, products
        -- say more than "model" or "release"), the chunk's own dense similarity to the question (stored
        at ingest and already computed by retrieval, so it costs nothing here), and a small bonus for a
        story's lead sentence (news leads carry the who/what/when).
        """
        items = [(n, pos, text, terms) for n, story in enumerate(sents, start=1)
                 for pos, (text, terms) in enumerate(story) if self.usable(text, terms)]
        if not items:
            return []
        q_terms = set(terms_of(query))
        df = {t: sum(1 for *_, terms in items if t in terms) for t in q_terms}
        idf = {t: math.log(1 + len(items) / (1 + df[t])) for t in q_terms}
        total = sum(idf.values()) or 1.0
        best_dense = max((s.dense_score or 0.0) for s in request.sources) or 1.0
        c = self.cal
        out = []
        for n, pos, text, terms in items:
            src = request.sources[n - 1]
            lex = sum(w for t, w in idf.items() if t in terms) / total
            prior = max(src.dense_score or 0.0, 0.0) / best_dense
            lead = 1.0 if pos == 0 and src.chunk_index == 0 else 0.0
            score = c["lexical"] * lex + c["prior"] * prior + c["rank"] / n + c["lead"] * lead
            out.append(Candidate(n, pos, text, score, terms, rank_part=c["rank"] / n))
        out.sort(key=lambda x: -x.relevance)
        return out

    def _candidates(self, request: GenerationRequest, query: str, per_story: int = 0) -> list[Candidate]:
        """The timeline's pool: every story's best few sentences by the model-free score."""
        scored = self._score_all(request, query, self._sentences(request))
        taken: dict[int, int] = {}
        pool = []
        for c in scored:
            if taken.get(c.n, 0) < per_story:
                taken[c.n] = taken.get(c.n, 0) + 1
                pool.append(c)
        return pool

    def _final_scores(self, pool: list[Candidate], query: str, kind: str | None) -> None:
        """Blend in the sentence's cosine to the question and the question-type cue, in place."""
        c = self.cal
        cos = [0.0] * len(pool)
        if self.embedder is not None and pool and c["semantic"] > 0:
            qvec = self.embedder.embed_one(query)   # cached: retrieval embedded the same query
            vecs = self.embedder.embed([x.text for x in pool])
            cos = [float(v @ qvec) for v in vecs]
        for x, s in zip(pool, cos):
            x.relevance = ((1 - c["semantic"]) * x.relevance + c["semantic"] * s
                           + (c["cue"] if answers_kind(x.text, kind) else 0.0))
            x.content = x.relevance - (1 - c["semantic"]) * x.rank_part

    def _pool(self, scored: list[Candidate]) -> list[Candidate]:
        taken: dict[int, int] = {}
        pool = []
        for x in scored:
            if len(pool) >= self.pool_size:
                break
            if taken.get(x.n, 0) < self.per_story_pool:
                taken[x.n] = taken.get(x.n, 0) + 1
                pool.append(replace(x))
        return pool

    # -- writing ---------------------------------------------------------------------------------
    def compose(self, request: GenerationRequest, query: str | None = None) -> str:
        query = query or request.question
        if request.timeline:
            cands = self._candidates(request, query, per_story=2)
            return self._timeline(request, cands) if cands else ""
        sents = self._sentences(request)
        scored = self._score_all(request, query, sents)
        if not scored:
            return ""
        pool = self._pool(scored)
        self._final_scores(pool, query, question_kind(request.question))
        pool = [x for x in pool if self._quote(x.pos, sents[x.n - 1])]   # a leaning sentence needs its antecedent
        if not pool:
            return ""
        pool.sort(key=lambda x: -x.relevance)
        best_by_story: dict[int, Candidate] = {}
        for x in pool:
            best_by_story.setdefault(x.n, x)
        top = max(x.content for x in pool)
        lead = pool[0]
        if request.recency:   # lead with the newest story that still answers
            lead = self._newest_relevant(request, query, sents, scored, best_by_story) or lead

        ranked = [x.pos for x in pool if x.n == lead.n]
        ranked += [x.pos for x in scored if x.n == lead.n and x.pos not in ranked]
        paras: list[tuple[int, list[int]]] = [(lead.n, self._lead_positions(lead, sents[lead.n - 1], ranked))]
        used = [frozenset(sents[lead.n - 1][p][1]) for p in paras[0][1]]
        others = [x for x in best_by_story.values() if x.n != lead.n
                  and x.content >= self.cal["other_story_bar"] * top]
        if request.recency:
            others.sort(key=lambda x: request.sources[x.n - 1].published_at, reverse=True)
        budget = self.max_sentences - len(paras[0][1])
        for x in others:
            if len(paras) >= self.max_stories or budget <= 0:
                break
            if max((term_overlap(x.terms, u) for u in used), default=0.0) >= self.redundancy:
                continue
            pos = self._quote(x.pos, sents[x.n - 1])
            paras.append((x.n, pos))
            used += [sents[x.n - 1][p][1] for p in pos]
            budget -= len(pos)
        paras += self._comparison_subjects(request, scored, sents, paras)
        return "\n\n".join(self._paragraph(request, n, [sents[n - 1][p][0] for p in pos]) for n, pos in paras)

    def _newest_relevant(self, request: GenerationRequest, query: str, sents: list[StoryText],
                         scored: list[Candidate], best: dict[int, Candidate]) -> Candidate | None:
        """The best quotable sentence of the newest story that is about what the question asks.

        Judged per story, not per sentence: a story about "Tesla's robotaxi" may never repeat "Tesla"
        in its best sentence, while a newer story about another company's robotaxi shares only the
        common word. Story relevance = half the rarity-weighted share of the question's terms in its
        headline and text, half its dense score relative to the best; a story is relevant when it
        reaches recency_bar of the best story's."""
        q_terms = set(terms_of(query))
        if not q_terms:
            return None
        df = {t: sum(1 for st in sents if any(t in terms for _, terms in st)) for t in q_terms}
        idf = {t: math.log(1 + len(sents) / (1 + df[t])) for t in q_terms}
        total = sum(idf.values()) or 1.0
        best_dense = max((s.dense_score or 0.0) for s in request.sources) or 1.0
        rel = {}
        for n, src in enumerate(request.sources, start=1):
            terms = set(terms_of(src.title)).union(*(t for _, t in sents[n - 1]))
            lex = sum(w for t, w in idf.items() if t in terms) / total
            rel[n] = 0.5 * lex + 0.5 * max(src.dense_score or 0.0, 0.0) / best_dense
        top = max(rel.values())
        # "What is new in G7?": the newest story must name G7 when any story does, however close its
        # wording comes otherwise
        names = [f" {norm_text(x).strip()} " for x in question_names(query)]
        holds = {n: sum(x in norm_text(f"{src.title} {src.text}") for x in names)
                 for n, src in enumerate(request.sources, start=1)}
        most = max(holds.values(), default=0)
        for n in sorted(rel, key=lambda n: request.sources[n - 1].published_at, reverse=True):
            if rel[n] < self.cal["recency_bar"] * top or holds[n] < most:
                continue
            hit = best.get(n) or next((x for x in scored if x.n == n and self._quote(x.pos, sents[n - 1])), None)
            if hit is not None:
                return hit
        return None

    def _quote(self, pos: int, story: list[tuple[str, frozenset[str]]]) -> list[int]:
        """The positions to quote for sentence `pos`: itself, led by the one or two sentences it leans on
        ("It also ..."); [] when what it leans on is not in this text or may not be quoted."""
        start = pos
        while leans_on_previous(story[start][0]):
            if start == 0 and getattr(story, "starts_story", False):
                break          # a story's first sentence leans on its headline ("The company said ...")
            if start == 0 or pos - start >= 2 or not self.usable(*story[start - 1]):
                return []
            start -= 1
        return list(range(start, pos + 1))

    def _lead_positions(self, lead: Candidate, story: list[tuple[str, frozenset[str]]], ranked: list[int]) -> list[int]:
        """The answering sentence first (with what it leans on), then the story's next best sentences
        (`ranked`: best first) up to `lead_sentences` in all, in reading order: the answer, then the
        details around it that a reader needs (who, how much, when)."""
        head = self._quote(lead.pos, story)
        extra: list[int] = []
        for i in ranked:
            if len(head) + len(extra) >= self.lead_sentences:
                break
            if i in head or (leans_on_previous(story[i][0]) and i - 1 not in extra and i - 1 not in head):
                continue
            extra.append(i)
        extra.sort()
        # a leaning sentence must directly follow what it leans on in the answer as written
        out = head[:]
        for i in extra:
            if leans_on_previous(story[i][0]) and out[-1] != i - 1:
                continue
            out.append(i)
        return out

    def _comparison_subjects(self, request: GenerationRequest, scored: list[Candidate],
                             sents: list[list[tuple[str, frozenset[str]]]],
                             paras: list[tuple[int, list[int]]]) -> list[tuple[int, list[int]]]:
        """A comparison names two or more subjects; each gets its best sentence if none covers it yet."""
        from rag.retrieval import comparison_subjects   # same layer; imported late to keep this module light

        subjects = comparison_subjects(request.question)
        extra: list[tuple[int, list[int]]] = []
        shown = [sents[n - 1][p][1] for n, pos in paras for p in pos]
        for subj in subjects:
            want = set(terms_of(subj))
            if not want or any(want <= s for s in shown):
                continue
            hit = next((x for x in scored if want <= x.terms and self._quote(x.pos, sents[x.n - 1])), None)
            if hit is None:
                continue
            pos = self._quote(hit.pos, sents[hit.n - 1])
            done = next((p for p in paras + extra if p[0] == hit.n), None)
            if done is not None:
                done[1].extend(p for p in pos if p not in done[1])
            else:
                extra.append((hit.n, pos))
            shown += [sents[hit.n - 1][p][1] for p in pos]
        return extra

    def _paragraph(self, request: GenerationRequest, n: int, texts: list[str]) -> str:
        src = request.sources[n - 1]
        lead = f"On {human_date(src.published_at)}, {src.outlet} reported: "
        return lead + " ".join(f"{t} [{n}]" for t in texts)

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
