"""Embedder backends side by side in one run: torch fp32 vs ONNX fp32 vs ONNX int8 on real chunk texts.

Prints, for the corpus/ stories chunked exactly as ingest chunks them:
  - speed: chunks/s (wall clock) and CPU ms/chunk per backend, measured in interleaved rounds (the order
    rotates every round) with ratios to torch fp32 computed within each round and then the median taken,
    so a busy, shared machine slows every contender alike;
  - agreement: cosine between torch fp32 and each ONNX backend's embedding of the same text (mean/p1/min);
  - retrieval: for each story, query = its title, rank all chunks by cosine; hit@1/hit@5 (a chunk of that
    story ranked first / in the top five) per backend, for mixed stores (fp32 chunks queried with int8 and
    the reverse, i.e. what a shared model identity allows), on the chunks as stored (headline + date + body)
    and on bodies alone (harder: the headline is not in the text), plus top-1 / top-5 neighbour agreement.

    /work/venv/bin/python benchmarks/embedder_bench.py [--rounds 3] [--threads 0] [--batch-size 32]
        [--cache-dir DIR] [--cold-export] [--torch-batches 16,64]

The ONNX models are exported once into the usual cache (~/.cache/newsrag/onnx); --cold-export times a fresh
export into a temporary folder instead.
"""
from __future__ import annotations

import argparse
import os
import resource
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import rag.offline  # noqa: E402,F401

import numpy as np  # noqa: E402


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def build_chunks(count_tokens, max_len: int):
    from ingest.chunking import chunk_story
    from ingest.loaders import load_paths
    from rag.settings import Settings

    settings = Settings()
    stories = load_paths([ROOT / "corpus"], settings).stories
    chunks = []
    for s in stories:
        for c in chunk_story(s, budget=settings.chunk_tokens, min_tokens=settings.chunk_min_tokens,
                             max_embed_tokens=max_len, embed_len=count_tokens):
            chunks.append(c)
    return stories, chunks


def timed(embedder, texts):
    c0, w0 = time.process_time(), time.perf_counter()
    vecs = embedder.embed(texts)
    return vecs, time.perf_counter() - w0, time.process_time() - c0


def hits(q: np.ndarray, docs: np.ndarray, doc_story: np.ndarray, story_ids: list[str]) -> tuple[float, float, np.ndarray]:
    """hit@1, hit@5 of each query's story among the chunks, and the top-5 chunk indices per query."""
    sims = q @ docs.T
    top = np.argsort(-sims, axis=1, kind="stable")[:, :5]
    h1 = np.mean([doc_story[t[0]] == sid for t, sid in zip(top, story_ids)])
    h5 = np.mean([sid in set(doc_story[t]) for t, sid in zip(top, story_ids)])
    return float(h1), float(h5), top


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--rounds", type=int, default=3, help="interleaved timing rounds (median is reported)")
    ap.add_argument("--threads", type=int, default=0, help="threads per backend (0 = torch default / all cores)")
    ap.add_argument("--batch-size", type=int, default=32)
    ap.add_argument("--limit", type=int, default=0, help="use at most this many chunk texts for timing (0 = all)")
    ap.add_argument("--cache-dir", type=Path, default=None, help="ONNX cache root (default ~/.cache/newsrag/onnx)")
    ap.add_argument("--cold-export", action="store_true", help="export into a fresh temporary cache and time it")
    ap.add_argument("--torch-batches", default="", help="extra torch contenders at these batch sizes, e.g. 8,64")
    args = ap.parse_args()

    import onnxruntime
    import torch

    from rag.embedder import Embedder, available_cores
    from rag.settings import packaged_minilm_path

    path = packaged_minilm_path()
    tmp_cache = Path(tempfile.mkdtemp(prefix="newsrag-onnx-bench-")) if args.cold_export else None
    cache = tmp_cache or args.cache_dir
    print(f"machine: {available_cores()} cores, load average {os.getloadavg()[0]:.1f}; torch {torch.__version__} "
          f"(threads {args.threads or torch.get_num_threads()}), onnxruntime {onnxruntime.__version__}")

    contenders: dict[str, Embedder] = {}
    t = time.perf_counter()
    contenders["torch fp32"] = Embedder(path, backend="torch", batch_size=args.batch_size, threads=args.threads)
    load_torch = time.perf_counter() - t
    t = time.perf_counter()
    contenders["onnx int8"] = Embedder(path, backend="onnx-int8", batch_size=args.batch_size, threads=args.threads,
                                       cache_dir=cache)
    load_int8 = time.perf_counter() - t
    contenders["onnx fp32"] = Embedder(path, backend="onnx", batch_size=args.batch_size, threads=args.threads,
                                       cache_dir=cache)
    for bs in [int(x) for x in args.torch_batches.split(",") if x.strip()]:
        e = Embedder(path, backend="torch", batch_size=bs, threads=args.threads)
        e._impl = contenders["torch fp32"]._impl          # the same model, only the batch size differs
        contenders[f"torch fp32 bs{bs}"] = e
    onnx_dir = contenders["onnx int8"].onnx_path.parent
    sizes = {p.name: p.stat().st_size / 1e6 for p in onnx_dir.glob("*.onnx")}
    print(f"load: torch {load_torch:.1f}s, onnx-int8 {load_int8:.1f}s"
          f"{' (includes a cold export + quantization)' if args.cold_export else ''}; ONNX cache {onnx_dir}")
    print("model files: " + ", ".join(f"{k} {v:.0f} MB" for k, v in sorted(sizes.items())))

    ref = contenders["torch fp32"]
    stories, chunks = build_chunks(ref.count_tokens, ref.max_seq_length)
    texts = [c.embed_text for c in chunks]
    timing_texts = texts[: args.limit] if args.limit else texts
    n_tok = [ref.count_tokens(t) for t in timing_texts]
    print(f"texts: {len(timing_texts)} chunk texts from {len(stories)} corpus stories, "
          f"{statistics.mean(n_tok):.0f} word pieces on average (max {max(n_tok)}), batch size {args.batch_size}")

    for e in contenders.values():                       # warm-up: first-call allocations, thread pools
        e.embed(timing_texts[:8])

    names = list(contenders)
    wall: dict[str, list[float]] = {n: [] for n in names}
    cpu: dict[str, list[float]] = {n: [] for n in names}
    vecs: dict[str, np.ndarray] = {}
    for r in range(args.rounds):
        order = names[r % len(names):] + names[: r % len(names)]
        for n in order:
            v, w, c = timed(contenders[n], timing_texts)
            wall[n].append(w)
            cpu[n].append(c)
            vecs.setdefault(n, v)
        print(f"  round {r + 1}: " + ", ".join(f"{n} {len(timing_texts) / wall[n][-1]:.1f}/s" for n in names),
              flush=True)

    print("\nspeed (median over rounds; ratios are per-round ratios to torch fp32, then the median)")
    print(f"  {'backend':<18}{'chunks/s':>10}{'x torch':>9}{'CPU ms/chunk':>14}{'x torch (CPU)':>15}")
    base = "torch fp32"
    for n in names:
        ratio_w = statistics.median(wall[base][i] / wall[n][i] for i in range(args.rounds))
        ratio_c = statistics.median(cpu[base][i] / cpu[n][i] for i in range(args.rounds))
        print(f"  {n:<18}{len(timing_texts) / statistics.median(wall[n]):>10.1f}{ratio_w:>8.2f}x"
              f"{1000 * statistics.median(cpu[n]) / len(timing_texts):>14.1f}{ratio_c:>14.2f}x")

    # --- agreement and retrieval quality on all chunk texts (not timed) -----------------------------
    full = {n: (vecs[n] if len(timing_texts) == len(texts) else contenders[n].embed(texts))
            for n in ("torch fp32", "onnx fp32", "onnx int8")}
    print("\nagreement with torch fp32 (cosine of the same text's embeddings)")
    for n in ("onnx fp32", "onnx int8"):
        cos = (full["torch fp32"] * full[n]).sum(axis=1)
        norms = np.linalg.norm(full[n], axis=1)
        print(f"  {n:<10} mean {cos.mean():.4f}  p1 {np.percentile(cos, 1):.4f}  min {cos.min():.4f}  "
              f"(norms {norms.min():.4f}..{norms.max():.4f})")

    titles = [s.title for s in stories]
    story_ids = [s.id for s in stories]
    doc_story = np.array([c.story_id for c in chunks])
    bodies = [c.text for c in chunks]
    q = {n: contenders[n].embed(titles) for n in ("torch fp32", "onnx int8")}
    b = {n: contenders[n].embed(bodies) for n in ("torch fp32", "onnx int8")}
    d = {"torch fp32": full["torch fp32"], "onnx int8": full["onnx int8"]}
    print(f"\nretrieval: {len(titles)} title queries over {len(chunks)} chunks (hit@1 / hit@5)")
    print(f"  {'queries -> chunks':<30}{'as stored':>16}{'bodies only':>16}")
    tops = {}
    for qn, dn in [("torch fp32", "torch fp32"), ("onnx int8", "onnx int8"),
                   ("onnx int8", "torch fp32"), ("torch fp32", "onnx int8")]:
        h1, h5, top = hits(q[qn], d[dn], doc_story, story_ids)
        g1, g5, btop = hits(q[qn], b[dn], doc_story, story_ids)
        tops[(qn, dn)] = (top, btop)
        print(f"  {qn + ' -> ' + dn:<30}{h1:>9.3f} / {h5:.3f}{g1:>9.3f} / {g5:.3f}")
    for label, k in (("as stored", 0), ("bodies only", 1)):
        ta, tb = tops[("torch fp32", "torch fp32")][k], tops[("onnx int8", "onnx int8")][k]
        same1 = np.mean(ta[:, 0] == tb[:, 0])
        overlap5 = np.mean([len(set(x) & set(y)) / 5 for x, y in zip(ta, tb)])
        print(f"  neighbour agreement fp32 vs int8 ({label}): top-1 same {same1:.3f}, top-5 overlap {overlap5:.3f}")
    print(f"\npeak RSS: {peak_rss_mb():.0f} MB")
    if tmp_cache:
        shutil.rmtree(tmp_cache, ignore_errors=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
