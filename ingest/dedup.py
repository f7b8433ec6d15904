"""Exact and near-duplicate detection between stories.

Syndicated copies of one story differ by a rewritten lead, a changed headline or a trimmed tail. Word
3-shingle Jaccard catches small edits; containment catches a copy that is a trimmed version of the
other; both only count between stories published within a few days of each other, because the same
wording about a *new* event weeks later is a new story (e.g. a weekly "model X tops the leaderboard").
"""
from __future__ import annotations

import re
from bisect import bisect_left, bisect_right
from dataclasses import dataclass
from datetime import date

from rag.records import Story, content_hash

_WORD = re.compile(r"[a-z0-9]+")


def shingles(text: str, n: int = 3) -> frozenset[int]:
    """Hashes of the text's word n-grams (hashes of word tuples: no n-gram string is ever built)."""
    w = _WORD.findall((text or "").lower())
    if len(w) < n:
        return frozenset({hash(tuple(w))}) if w else frozenset()
    return frozenset(map(hash, zip(*(w[i:] for i in range(n)))))


def exact_key(story: Story) -> str:
    """Same words in the same order, whatever the spacing, case or punctuation."""
    return content_hash(" ".join(_WORD.findall(story.title.lower())), " ".join(_WORD.findall(story.text.lower())))


def similarity(a: frozenset[int], b: frozenset[int]) -> tuple[float, float]:
    """(Jaccard, containment of the smaller in the larger)."""
    if not a or not b:
        return 0.0, 0.0
    inter = len(a & b)      # the union's size follows from it: no second set is built
    return inter / (len(a) + len(b) - inter), inter / min(len(a), len(b))


def near_duplicate_jaccard(a: frozenset[int], b: frozenset[int], *, jaccard: float) -> float | None:
    """The pair's Jaccard when they are near-duplicates, else None: one set intersection per pair."""
    j, c = similarity(a, b)
    return j if j >= jaccard or (c >= 0.8 and min(len(a), len(b)) >= 30) else None


@dataclass
class Candidate:
    id: str
    published_at: date
    sig: frozenset[int]


class NearDuplicateIndex:
    """Stories sorted by date, so a new story is only compared with those inside the time window."""

    def __init__(self, jaccard: float, days: int):
        self.jaccard = jaccard
        self.days = days
        self._items: list[Candidate] = []
        self._ords: list[int] = []

    def add(self, cand: Candidate) -> None:
        o = cand.published_at.toordinal()
        i = bisect_right(self._ords, o)
        self._ords.insert(i, o)
        self._items.insert(i, cand)

    def match(self, published_at: date, sig: frozenset[int], exclude: set[str] = frozenset()) -> str | None:
        o = published_at.toordinal()
        lo, hi = bisect_left(self._ords, o - self.days), bisect_right(self._ords, o + self.days)
        best, best_j = None, 0.0
        for cand in self._items[lo:hi]:
            if cand.id in exclude:
                continue
            j = near_duplicate_jaccard(sig, cand.sig, jaccard=self.jaccard)
            if j is not None:
                if best is None or j > best_j:
                    best, best_j = cand.id, j
        return best


def merge_members(story_id: str, members: list[Story]) -> Story:
    """One story from its syndicated copies: the earliest copy's words, every outlet's link."""
    ordered = sorted(members, key=lambda s: (s.published_at, -len(s.text), s.id))
    lead = ordered[0]
    sources, seen = [], set()
    for m in ordered:
        for s in m.sources:
            if s.url not in seen:
                seen.add(s.url)
                sources.append(s)
    tags: list[str] = []
    for m in ordered:
        tags += [t for t in m.tags if t not in tags]
    return Story(id=story_id, title=lead.title, text=lead.text, published_at=lead.published_at,
                 sources=sources, tags=tags, origin=lead.origin, author=lead.author)
