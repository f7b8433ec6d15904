"""Query latency: retrieval and extractive answers, p50/p95, on a real store and a 100k-chunk store.

    python benchmarks/latency_bench.py --store /path/to/digests-store [--synthetic 100000] [-n 60]

- real store: questions are built from the stored stories' own titles (varied, answerable);
- synthetic store: the real chunks repeated with perturbed vectors and shuffled sentences up to
  --synthetic chunks (embedding 100k real chunks would take hours on 2 cores; the search machinery,
  which is what this measures, sees the same sizes and distributions);
- cold start: wall time of `python -m rag ask ...` in a fresh process on the real store.
Targets (issue 3): retrieval p50 <= 40 ms and p95 <= 80 ms at 100k chunks; extractive answer p50 <= 150 ms;
first answer <= 10 s.
"""
from __future__ import annotations

import argparse
import random
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import rag.offline  # noqa: E402,F401


def pct(xs: list[float], p: float) -> float:
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(round(p / 100 * (len(xs) - 1))))] * 1000


def questions_from(store, n: int, seed: int = 7) -> list[str]:
    rows = store.story_rows()
    random.Random(seed).shuffle(rows)
    forms = ["What happened with {}?", "Tell me about {}", "What do we know about {}?", "{}: what was reported?"]
    out = []
    for i, r in enumerate(rows[:n]):
        words = [w for w in r.title.split() if len(w) > 3][:6]
        out.append(forms[i % len(forms)].format(" ".join(words) or r.title))
    return out


def measure(bot, qs: list[str]) -> tuple[list[float], list[float]]:
    ret, ans = [], []
    for q in qs:
        t = time.perf_counter()
        bot.retrieve(q, k=10)
        ret.append(time.perf_counter() - t)
        a = bot.ask(q)
        ans.append(a.timings.get("total", 0.0) - a.timings.get("retrieve", 0.0))
    return ret, ans


def synthetic_store(real_settings, n_chunks: int, path: Path):
    """Grow a copy of the real store's chunks to n_chunks with jittered vectors and reshuffled text."""
    from rag.lexical import build_lexical_index
    from rag.records import Chunk, SourceLink, Story
    from rag.settings import Settings
    from rag.store import NewsStore
    from rag.text import split_sentences

    src = NewsStore(real_settings)
    ids, docs, metas = src.all_chunks()
    vecs = src.chunk_vectors(ids)
    settings = Settings(store_dir=path)
    dst = NewsStore(settings, writable=True)
    dst.bind_model(src.meta("embed_model"), int(src.meta("embed_dim")))
    rng = np.random.default_rng(0)
    made, copy = 0, 0
    batch_s, batch_c, batch_v = [], [], []
    while made < n_chunks:
        for cid, doc, meta in zip(ids, docs, metas):
            if made >= n_chunks:
                break
            sents = split_sentences(doc)
            random.Random(made).shuffle(sents)
            v = vecs[cid] + rng.normal(0, 0.02, vecs[cid].shape).astype(np.float32)
            v /= np.linalg.norm(v)
            from datetime import date
            story = Story(id=f"syn{copy}-{cid.replace(':', '-')}", title=meta["title"], text=" ".join(sents),
                          published_at=date.fromisoformat(meta["published_at"]),
                          sources=[SourceLink(meta["outlet"], f"{meta['url']}#syn{copy}")], tags=[])
            chunk = Chunk(f"{story.id}:0", story.id, 0, story.text, story.text, 0)
            batch_s.append(story); batch_c.append(chunk); batch_v.append(v)
            made += 1
            if len(batch_s) >= 2000:
                flush(dst, batch_s, batch_c, batch_v)
                batch_s, batch_c, batch_v = [], [], []
        copy += 1
    flush(dst, batch_s, batch_c, batch_v)
    build_lexical_index(dst)
    return settings


def flush(dst, stories, chunks, vecs):
    from rag.store import chunk_metadata
    if not stories:
        return
    dst.collection.add(ids=[c.id for c in chunks], embeddings=np.stack(vecs).tolist(),
                       documents=[c.text for c in chunks],
                       metadatas=[chunk_metadata(s, c) for s, c in zip(stories, chunks)])
    dst.commit_stories([(s, 1, "syn") for s in stories], [])


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--store", type=Path, required=True, help="a built store (e.g. of the digests)")
    ap.add_argument("--synthetic", type=int, default=100_000, help="chunks in the synthetic store (0: skip)")
    ap.add_argument("-n", type=int, default=60, help="questions per store")
    args = ap.parse_args()

    from rag.pipeline import NewsBot
    from rag.settings import Settings
    from rag.store import NewsStore

    t0 = time.perf_counter()
    proc = subprocess.run([sys.executable, "-m", "rag", "ask", "What happened with OpenAI?", "--store", str(args.store),
                           "--json"], capture_output=True, text=True)
    cold = time.perf_counter() - t0
    print(f"cold start to first answer (new process, python -m rag ask): {cold:.1f}s  (target <= 10 s)"
          + ("" if proc.returncode == 0 else f"  [exit {proc.returncode}: {proc.stderr[-200:]}]"))

    settings = Settings(store_dir=args.store)
    bot = NewsBot(settings)
    qs = questions_from(bot.store, args.n)
    bot.ask(qs[0])
    ret, ans = measure(bot, qs)
    n_chunks = bot.store.count_chunks()
    print(f"real store ({n_chunks} chunks, {len(qs)} questions): retrieval p50 {pct(ret, 50):.0f} ms, "
          f"p95 {pct(ret, 95):.0f} ms; extractive answer (generate + verify) p50 {pct(ans, 50):.0f} ms, "
          f"p95 {pct(ans, 95):.0f} ms")

    if args.synthetic:
        with tempfile.TemporaryDirectory(prefix="newsrag-syn-") as tmp:
            t = time.perf_counter()
            syn = synthetic_store(settings, args.synthetic, Path(tmp) / "store")
            print(f"built synthetic store of {NewsStore(syn).count_chunks()} chunks in {time.perf_counter() - t:.0f}s")
            sbot = NewsBot(syn)
            sbot.ask(qs[0])
            ret, ans = measure(sbot, qs)
            print(f"synthetic store ({args.synthetic} chunks): retrieval p50 {pct(ret, 50):.0f} ms, p95 {pct(ret, 95):.0f} ms "
                  f"(targets 40 / 80 ms); extractive answer p50 {pct(ans, 50):.0f} ms (target 150 ms)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
