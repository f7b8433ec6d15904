"""The near-duplicate index finds exactly what comparing every pair in the time window finds."""
from __future__ import annotations

import os
import random
import time
from bisect import bisect_left, bisect_right
from datetime import date, timedelta

import pytest

from ingest.dedup import Candidate, NearDuplicateIndex, exact_key, near_duplicate_jaccard, shingles
from rag.settings import Settings
from tests.conftest import DIGESTS_DIR


class PairwiseScan:
    """The reference: every stored story in the window, compared one pair at a time, kept in date order
    (the index this project used before the inverted one)."""

    def __init__(self, jaccard: float, days: int):
        self.jaccard, self.days, self.items, self.ords = jaccard, days, [], []

    def add(self, cand: Candidate) -> None:
        i = bisect_right(self.ords, cand.published_at.toordinal())
        self.ords.insert(i, cand.published_at.toordinal())
        self.items.insert(i, cand)

    def match(self, published_at: date, sig, exclude=frozenset()):
        o = published_at.toordinal()
        lo, hi = bisect_left(self.ords, o - self.days), bisect_right(self.ords, o + self.days)
        best, best_j = None, 0.0
        for c in self.items[lo:hi]:
            if c.id not in exclude:
                j = near_duplicate_jaccard(sig, c.sig, jaccard=self.jaccard)
                if j is not None and (best is None or j > best_j):
                    best, best_j = c.id, j
        return best


def cluster(stories, index) -> dict[str, str]:
    """member id -> story id, as an ingest into an empty store assigns them."""
    out, keys = {}, set()
    for s in stories:
        key = exact_key(s)
        if key in keys or s.id in out:
            continue
        keys.add(key)
        sig = shingles(s.text)
        target = index.match(s.published_at, sig)
        if target is None:
            index.add(Candidate(s.id, s.published_at, sig))
            target = s.id
        out[s.id] = target
    return out


@pytest.mark.parametrize("scan_below", [0, 40, 10_000])   # postings only, both, pairwise only
def test_the_index_matches_the_pairwise_scan_on_random_near_copies(monkeypatch, scan_below):
    import ingest.dedup

    monkeypatch.setattr(ingest.dedup, "SCAN_BELOW", scan_below)
    rng = random.Random(7)
    words = [f"w{i}" for i in range(400)]
    base = [" ".join(rng.choice(words) for _ in range(rng.randint(5, 90))) for _ in range(150)]
    day0 = date(2026, 1, 1)
    index, ref = NearDuplicateIndex(0.55, 7), PairwiseScan(0.55, 7)
    for n in range(1200):
        text = rng.choice(base).split()
        for _ in range(rng.randint(0, len(text) // 3)):                  # edits, trims, rewritten leads
            text[rng.randrange(len(text))] = rng.choice(words)
        if rng.random() < 0.3:
            text = text[: rng.randint(1, len(text))]
        sig = shingles(" ".join(text))
        when = day0 + timedelta(days=rng.randint(0, 40))
        got, want = index.match(when, sig), ref.match(when, sig)
        assert got == want, n
        if got is None:
            for ix in (index, ref):
                ix.add(Candidate(f"s{n}", when, sig))
    assert len(index) < 1200                                              # some did merge


def test_the_digests_merge_the_same_106_near_duplicates_as_the_pairwise_scan():
    if not DIGESTS_DIR.is_dir():
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(f"CI=true but the digests are missing at {DIGESTS_DIR}")
        pytest.skip("../shared/data/lastweekinai-digests is absent")
    from ingest.loaders import load_paths

    settings = Settings()
    stories = load_paths([DIGESTS_DIR], settings).stories
    assert len(stories) > 11_000
    t = time.perf_counter()
    got = cluster(stories, NearDuplicateIndex(settings.near_duplicate_jaccard, settings.near_duplicate_days))
    index_s = time.perf_counter() - t
    want = cluster(stories, PairwiseScan(settings.near_duplicate_jaccard, settings.near_duplicate_days))
    assert got == want
    assert sum(1 for m, s in got.items() if m != s) == 106
    print(f"index {index_s:.2f}s for {len(stories)} stories")
