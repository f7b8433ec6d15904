"""Query latency: retrieval and extractive answers, p50/p95, on a real store and a 100k-chunk store.

    python benchmarks/latency_bench.py --store /path/to/digests-store [--synthetic 100000] [-n 60]

- real store: questions are built from the stored stories' own titles (varied, answerable);
- synthetic store: the real chunks repeated with perturbed vectors and shuffled sentences up to
  --synthetic chunks (embedding 100k real chunks would take hours on 2 cores; the search machinery,
  which is what this measures, sees the same sizes and distributions);
- cold start: wall time of `python -m rag ask ...` in a fresh process on the real store, per embedder backend.
Targets (issue 3): retrieval p50 <= 40 ms and p95 <= 80 ms at 100k chunks; extractive answer p50 <= 150 ms;
first answer <= 10 s.
- briefs (issue 13): "What happened in AI in <month>?" for each of the store's newest --brief-months months,
  --brief-rounds times, end to end through NewsBot.ask (catalogue read, event grouping, composition,
  verification); target p50 <= 500 ms for a month of the digests. A year brief is timed beside it.
"""
from __future__ import annotations

import argparse
import os
import random
import shutil
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


def measure(bot, qs: list[str]) -> tuple[list[float], list[float], list[float]]:
    """Retrieval wall times, the query-embedding part of them, and extractive answer times."""
    ret, emb, ans = [], [], []
    for q in qs:
        t = time.perf_counter()
        r = bot.retriever.retrieve(q, k=10)
        ret.append(time.perf_counter() - t)
        emb.append(r.timings.get("embed_query", 0.0))
        a = bot.ask(q)
        ans.append(a.timings.get("total", 0.0) - a.timings.get("retrieve", 0.0))
    return ret, emb, ans


def report(label: str, ret: list[float], emb: list[float], ans: list[float]) -> str:
    rest = [r - e for r, e in zip(ret, emb)]
    return (f"{label}: retrieval p50 {pct(ret, 50):.0f} ms, p95 {pct(ret, 95):.0f} ms (targets 40 / 80 ms at 100k) "
            f"[query embedding p50 {pct(emb, 50):.0f} ms; search without it p50 {pct(rest, 50):.0f} ms, "
            f"p95 {pct(rest, 95):.0f} ms]; extractive answer (generate + verify) p50 {pct(ans, 50):.0f} ms, "
            f"p95 {pct(ans, 95):.0f} ms (target p50 150 ms)")


def brief_questions(store, months: int) -> tuple[list[str], str | None]:
    """One month brief per month with stories, newest first, and a brief of the newest full year."""
    seen: list[tuple[int, int]] = []
    years: dict[int, int] = {}
    for r in store.story_rows():
        key = (r.published_at.year, r.published_at.month)
        if key not in seen:
            seen.append(key)
        years[r.published_at.year] = years.get(r.published_at.year, 0) + 1
    from datetime import date
    qs = [f"What happened in AI in {date(y, m, 1).strftime('%B')} {y}?" for y, m in seen[:months]]
    full = sorted(y for y in years if (y, 12) in seen)
    return qs, (f"What were the biggest AI stories of {full[-1]}?" if full else None)


def measure_briefs(bot, qs: list[str], rounds: int) -> tuple[list[float], list[int]]:
    times, sizes = [], []
    for _ in range(rounds):
        for q in qs:
            t = time.perf_counter()
            a = bot.ask(q)
            times.append(time.perf_counter() - t)
            if "brief" not in a.flags:
                raise SystemExit(f"not answered as a brief: {q!r} -> {a.flags}")
            sizes.append(len(bot.store.story_rows_between(a.filters.since, a.filters.until)))
    return times, sizes


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
    """Through the store's own write path, so the synthetic chunks land in Chroma and the catalogue alike."""
    if not stories:
        return
    metas = dst.write_chunk_groups([(s, [c], v) for s, c, v in zip(stories, chunks, vecs)])
    dst.commit_stories([(s, 1, "syn") for s in stories], [], chunks={s.id: [c] for s, c in zip(stories, chunks)},
                       metas=metas)


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--store", type=Path, required=True, help="a built store (e.g. of the digests)")
    ap.add_argument("--synthetic", type=int, default=100_000, help="chunks in the synthetic store (0: skip)")
    ap.add_argument("-n", type=int, default=60, help="questions per store")
    ap.add_argument("--synthetic-dir", type=Path,
                    help="keep the synthetic store here and reuse it when it already holds --synthetic chunks "
                         "(building 100k chunks takes minutes; before/after runs should search the same store)")
    ap.add_argument("--no-cold", action="store_true", help="skip the cold-start measurement")
    ap.add_argument("--brief-months", type=int, default=12, help="newest months to brief (0: skip briefs)")
    ap.add_argument("--brief-rounds", type=int, default=3, help="times each month brief is asked")
    ap.add_argument("--only-briefs", action="store_true", help="measure the briefs only")
    ap.add_argument("--cold-backends", default="torch,onnx-int8",
                    help="embedder backends to measure the cold start with (the ONNX export must be cached)")
    args = ap.parse_args()

    from rag.pipeline import NewsBot
    from rag.settings import Settings
    from rag.store import NewsStore

    for backend in ([] if args.no_cold else args.cold_backends.split(",")):
        t0 = time.perf_counter()
        proc = subprocess.run([sys.executable, "-m", "rag", "ask", "What happened with OpenAI?", "--store",
                               str(args.store), "--json"], capture_output=True, text=True, cwd=ROOT,
                              env={**os.environ, "NEWSRAG_EMBED_BACKEND": backend})
        cold = time.perf_counter() - t0
        print(f"cold start to first answer (new process, python -m rag ask, {backend}): {cold:.1f}s  (target <= 10 s)"
              + ("" if proc.returncode == 0 else f"  [exit {proc.returncode}: {proc.stderr[-200:]}]"), flush=True)

    settings = Settings(store_dir=args.store)
    bot = NewsBot(settings)
    if args.brief_months:
        bqs, year_q = brief_questions(bot.store, args.brief_months)
        bot.ask(bqs[0])
        times, sizes = measure_briefs(bot, bqs, args.brief_rounds)
        print(f"month briefs ({len(bqs)} months of {min(sizes)}-{max(sizes)} stories, {args.brief_rounds} rounds): "
              f"p50 {pct(times, 50):.0f} ms, p95 {pct(times, 95):.0f} ms (target p50 <= 500 ms)", flush=True)
        if year_q:
            ytimes, ysizes = measure_briefs(bot, [year_q], args.brief_rounds)
            print(f"year brief ({year_q!r}, {ysizes[0]} stories): p50 {pct(ytimes, 50):.0f} ms", flush=True)
        if args.only_briefs:
            return 0
    qs = questions_from(bot.store, args.n)
    bot.ask(qs[0])
    print(report(f"real store ({bot.store.count_chunks()} chunks, {len(qs)} questions, {settings.embed_backend})",
                 *measure(bot, qs)), flush=True)

    if args.synthetic:
        with tempfile.TemporaryDirectory(prefix="newsrag-syn-") as tmp:
            path = args.synthetic_dir or Path(tmp) / "store"
            if args.synthetic_dir and (path / "catalog.sqlite").exists() \
                    and NewsStore(Settings(store_dir=path)).count_chunks() == args.synthetic:
                syn = Settings(store_dir=path)
                print(f"reusing synthetic store {path}")
            else:
                if args.synthetic_dir:
                    shutil.rmtree(path, ignore_errors=True)
                t = time.perf_counter()
                syn = synthetic_store(settings, args.synthetic, path)
                print(f"built synthetic store of {NewsStore(syn).count_chunks()} chunks in {time.perf_counter() - t:.0f}s")
            sbot = NewsBot(syn)
            sbot.ask(qs[0])
            sbot.embedder._one_cache.clear()   # the same questions were embedded (and cached) for the real store
            print(report(f"synthetic store ({args.synthetic} chunks)", *measure(sbot, qs)), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
