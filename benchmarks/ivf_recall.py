"""Recall and latency of the snapshot's dense search (rag/vectorindex.py): exact vs the partition.

    python benchmarks/ivf_recall.py --store <digests store> --chunks 100000 --queries 300

The store's real chunk vectors are repeated with small noise up to --chunks (as latency_bench's
synthetic store does); the queries are 300 story titles embedded by the store's model. Recall is the
share of the exact top 20 the partition returns (Chroma's HNSW: 0.993 on the digests, README).
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import rag.offline  # noqa: E402,F401


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--store", required=True)
    ap.add_argument("--chunks", type=int, default=100_000)
    ap.add_argument("--queries", type=int, default=300)
    args = ap.parse_args()
    from rag.embedder import get_embedder
    from rag.lexical import LexicalIndex
    from rag.settings import Settings
    from rag.store import NewsStore
    from rag.vectorindex import partition_rows, top_rows

    settings = Settings(store_dir=args.store)
    store = NewsStore(settings)
    lex = LexicalIndex.load(store)
    base = np.asarray(lex._vectors, dtype=np.float32)
    rng = np.random.default_rng(0)
    reps = []
    while sum(len(r) for r in reps) < args.chunks:
        v = base + (rng.normal(0, 0.02, base.shape).astype(np.float32) if reps else 0)
        reps.append(v / np.linalg.norm(v, axis=1, keepdims=True))
    vecs = np.concatenate(reps)[: args.chunks]
    ids = [f"c{i}" for i in range(len(vecs))]
    rows = store.story_rows()
    titles = [r.title for r in rng.choice(np.array(rows, dtype=object), args.queries, replace=False)]
    qs = get_embedder(settings).embed(titles)
    # the real store as it is: its snapshot's exact search against its Chroma collection (HNSW), alternating
    snap, chroma, agree = side_by_side(qs, lambda q: [c for c, _ in lex.dense_hits(q, 20)],
                                       lambda q: [c for c, _ in store.dense_hits(q, 20)])
    print(f"real store, {len(lex.ids)} chunks: snapshot (exact) p50/p95 {snap}; Chroma HNSW p50/p95 {chroma}; "
          f"Chroma's share of the exact top 20 {agree:.3f}")
    t = time.perf_counter()
    part, order = partition_rows(vecs, ids, None, set())
    vecs = vecs[order]                        # as a snapshot stores them: clusters contiguous
    build_s = time.perf_counter() - t
    exact, ivf, recall = side_by_side(qs, lambda q: [r for r, _ in top_rows(vecs, q, 20, None, None)],
                                      lambda q: [r for r, _ in top_rows(vecs, q, 20, None, part)])
    print(f"{len(vecs)} chunks, {len(part.centroids)} clusters, partition built in {build_s:.1f}s; "
          f"exact p50/p95 {exact}; partition p50/p95 {ivf}; recall of the exact top 20 {recall:.3f}")


def side_by_side(qs, reference, other) -> tuple[str, str, float]:
    """Both searches per query, alternating: their p50/p95 and the other's share of the reference's hits."""
    ref_t, other_t, share = [], [], []
    for q in qs:
        t = time.perf_counter()
        a = reference(q)
        ref_t.append(time.perf_counter() - t)
        t = time.perf_counter()
        b = other(q)
        other_t.append(time.perf_counter() - t)
        share.append(len(set(a) & set(b)) / max(len(a), 1))

    def ms(xs) -> str:
        return f"{1000 * np.percentile(xs, 50):.1f}/{1000 * np.percentile(xs, 95):.1f} ms"
    return ms(ref_t), ms(other_t), float(np.mean(share))

if __name__ == "__main__":
    main()
