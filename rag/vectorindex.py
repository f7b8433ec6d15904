"""Dense search over a snapshot's vectors: exact for small stores, an inverted-file index for large ones.

A local store's readers search the published snapshot rather than Chroma (see NewsStore.dense_hits).
Exact search reads every vector per query: ~1.4 ms at 12k chunks, but ~16 ms at 100k on this 2-core
machine (linear, so ~160 ms at 1M by extrapolation). Above IVF_ABOVE chunks the snapshot therefore
also holds a coarse partition of the vectors (spherical k-means centroids and each cluster's rows), and
a query reads only the clusters nearest to it. The partition is built once and carried from snapshot to snapshot: a new snapshot reuses
the centroids and the assignment of every unchanged chunk, and only assigns the chunks an ingest
embedded. A filter that leaves few rows, or a probe that yields fewer hits than asked for, is answered
exactly instead. A snapshot with a partition stores its rows in cluster order, so a probed cluster is
one contiguous slice of the memory-mapped vectors.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

IVF_ABOVE = 50_000        # chunks above which a snapshot carries the partition
NPROBE_SHARE = 0.25       # share of the clusters a query reads: recall 0.988 of the exact top 20 (benchmarks/ivf_recall.py)
EXACT_BELOW = 20_000      # rows a filter leaves below which the exact scan is cheaper than probing
KMEANS_SAMPLE = 20_000
KMEANS_ROUNDS = 6


def _assign(vectors: np.ndarray, centroids: np.ndarray, step: int = 16_384) -> np.ndarray:
    out = np.empty(len(vectors), dtype=np.int32)
    for lo in range(0, len(vectors), step):
        out[lo:lo + step] = np.argmax(np.asarray(vectors[lo:lo + step]) @ centroids.T, axis=1)
    return out


def train_centroids(vectors: np.ndarray, seed: int = 0) -> np.ndarray:
    """Spherical k-means on a sample: about sqrt(N) unit centroids."""
    rng = np.random.default_rng(seed)
    k = max(16, int(np.sqrt(len(vectors))))
    sample = np.asarray(vectors[np.sort(rng.choice(len(vectors), min(KMEANS_SAMPLE, len(vectors)), replace=False))])
    cents = sample[rng.choice(len(sample), k, replace=False)].copy()
    for _ in range(KMEANS_ROUNDS):
        lab = _assign(sample, cents)
        sums = np.zeros_like(cents)
        np.add.at(sums, lab, sample)
        empty = ~sums.any(axis=1)
        sums[empty] = sample[rng.choice(len(sample), int(empty.sum()), replace=False)]
        cents = sums / np.maximum(np.linalg.norm(sums, axis=1, keepdims=True), 1e-12)
    return cents.astype(np.float32)


def partition_wanted(n_chunks: int) -> bool:
    return n_chunks > IVF_ABOVE


class Partition:
    """Centroids, and each cluster's rows as one contiguous slice [offsets[c], offsets[c + 1]) of the
    snapshot (whose rows are stored in cluster order)."""

    def __init__(self, centroids: np.ndarray, offsets: np.ndarray, ids: list[str]):
        self.centroids = np.asarray(centroids, dtype=np.float32)
        self.offsets = np.asarray(offsets, dtype=np.int64)
        self.ids = ids
        if len(self.offsets) != len(self.centroids) + 1 or self.offsets[-1] != len(ids):
            raise ValueError("partition does not cover the snapshot's rows")

    def save(self, d: Path) -> None:
        np.save(d / "ivf_centroids.npy", self.centroids)
        np.save(d / "ivf_offsets.npy", self.offsets)

    @classmethod
    def open(cls, d: Path, ids: list[str]) -> "Partition | None":
        if not (d / "ivf_centroids.npy").exists():
            return None
        try:
            return cls(np.load(d / "ivf_centroids.npy"), np.load(d / "ivf_offsets.npy"), ids)
        except (OSError, ValueError):
            return None

    def labels_by_id(self) -> dict[str, int]:
        labels = np.repeat(np.arange(len(self.centroids), dtype=np.int32), np.diff(self.offsets))
        return dict(zip(self.ids, labels.tolist()))

    def probe(self, q: np.ndarray) -> np.ndarray:
        """The clusters nearest to q."""
        k = len(self.centroids)
        n = max(1, int(round(k * NPROBE_SHARE)))
        return np.argpartition(-(self.centroids @ q), n - 1)[:n]


def partition_rows(vectors: np.ndarray, ids: list[str], prev: Partition | None,
                   reused: set[str]) -> tuple[Partition, np.ndarray]:
    """The partition of a new snapshot and the row order that makes its clusters contiguous. A chunk
    whose vector is the previous snapshot's (`reused`) keeps its cluster; only the rest are assigned,
    to the previous centroids (trained afresh when there are none)."""
    if prev is not None and prev.centroids.shape[1] == vectors.shape[1]:
        cents = prev.centroids
        old = prev.labels_by_id()
        labels = np.fromiter((old.get(c, -1) if c in reused else -1 for c in ids), dtype=np.int32, count=len(ids))
        todo = np.flatnonzero(labels < 0)
        if len(todo):
            labels[todo] = _assign(vectors[todo], cents)
    else:
        cents = train_centroids(vectors)
        labels = _assign(vectors, cents)
    order = np.argsort(labels, kind="stable")
    offsets = np.searchsorted(labels[order], np.arange(len(cents) + 1))
    return Partition(cents, offsets, [ids[i] for i in order]), order


def _scores(vectors: np.ndarray, q: np.ndarray) -> np.ndarray:
    """vectors @ q without BLAS: a matrix-vector product is memory-bound, and BLAS's threads waiting on
    each other on a busy 2-core machine made it 6 ms instead of 1 ms at 12k chunks (14 vs 32 ms at 100k)."""
    return np.einsum("ij,j->i", vectors, q, dtype=np.float32)


def top_rows(vectors: np.ndarray, q: np.ndarray, n: int, mask: np.ndarray | None,
             partition: Partition | None) -> list[tuple[int, float]]:
    """(row, cosine) of the n best rows a mask (1 = allowed) leaves."""
    rows = scores = None
    if partition is not None and (mask is None or np.count_nonzero(mask) >= EXACT_BELOW):
        near = partition.probe(q)
        off = partition.offsets
        rows = np.concatenate([np.arange(off[c], off[c + 1]) for c in near])
        scores = np.concatenate([_scores(vectors[off[c]:off[c + 1]], q) for c in near])
        if mask is not None:
            keep = mask[rows] > 0
            rows, scores = rows[keep], scores[keep]
        if len(rows) < n:
            rows = scores = None
    if rows is None:
        if mask is None:
            scores = _scores(vectors, q)
            rows = np.arange(len(scores))
        else:
            rows = np.flatnonzero(mask > 0)
            scores = _scores(vectors[rows], q) if len(rows) else np.zeros(0, np.float32)
    n = min(n, len(rows))
    if n <= 0:
        return []
    top = np.argpartition(-scores, n - 1)[:n]
    top = top[np.lexsort((rows[top], -scores[top]))]
    return [(int(rows[i]), float(scores[i])) for i in top]
