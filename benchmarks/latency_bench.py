"""Query latency: retrieval and extractive answers, p50/p95, on a real store and a 100k-chunk store.

    python benchmarks/latency_bench.py --store /path/to/digests-store [--synthetic 100000] [-n 60]

- real store: questions are built from the stored stories' own titles (varied, answerable);
- synthetic store: the real chunks repeated with perturbed vectors and shuffled sentences up to
  --synthetic chunks (embedding 100k real chunks would take hours on 2 cores; the search machinery,
  which is what this measures, sees the same sizes and distributions);
- cold start: wall time of `python -m rag ask ...` in a fresh process on the real store, per embedder backend.
Targets (issue 3): retrieval p50 <= 40 ms and p95 <= 80 ms at 100k chunks; extractive answer p50 <= 150 ms;
first answer <= 10 s.
- a million chunks (issue 14): target retrieval p95 <= 100 ms and process RSS <= 4 GB. Build the store
  once in the background, then measure it beside 100k in one quiet moment:
      python benchmarks/latency_bench.py --store S --synthetic 1000000 --synthetic-dir DIR1M --build-only
      python benchmarks/latency_bench.py --store S --synthetic 1000000 100000 \
          --synthetic-dir DIR1M DIR100K --skip-real -n 60
  The build writes 5,000 stories per write_chunk_groups/commit_stories and publishes one snapshot at the
  end, as one ingest of that many stories does; a stopped build resumes. `--reingest K` with
  --build-only then times one more ingest of K stories into the full store (the snapshot is rebuilt whole).
- briefs (issue 13): "What happened in AI in <month>?" for each of the store's newest --brief-months months,
  --brief-rounds times, end to end through NewsBot.ask (catalogue read, event grouping, composition,
  verification); target p50 <= 500 ms for a month of the digests. A year brief is timed beside it.
"""
from __future__ import annotations

import argparse
import os
import random
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


def report(label: str, ret: list[float], emb: list[float], ans: list[float],
           targets: str = "targets 40 / 80 ms at 100k") -> str:
    rest = [r - e for r, e in zip(ret, emb)]
    return (f"{label}: retrieval p50 {pct(ret, 50):.0f} ms, p95 {pct(ret, 95):.0f} ms ({targets}) "
            f"[query embedding p50 {pct(emb, 50):.0f} ms; search without it p50 {pct(rest, 50):.0f} ms, "
            f"p95 {pct(rest, 95):.0f} ms]; extractive answer (generate + verify) p50 {pct(ans, 50):.0f} ms, "
            f"p95 {pct(ans, 95):.0f} ms (target p50 150 ms)")


def filtered(bot, qs: list[str], outlet: str) -> str:
    """Retrieval narrowed to one outlet: the first such question also builds the snapshot's row lists."""
    from rag.records import Filters

    times = []
    for q in qs:
        t = time.perf_counter()
        bot.retriever.retrieve(q, k=10, filters=Filters(outlets=[outlet]))
        times.append(time.perf_counter() - t)
    return (f"filtered to the outlet {outlet!r}: first question {times[0] * 1000:.0f} ms, then p50 "
            f"{pct(times[1:], 50):.0f} ms, p95 {pct(times[1:], 95):.0f} ms")


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


def _status_mb() -> dict[str, float]:
    got = {}
    with open("/proc/self/status") as fh:
        for line in fh:
            if line.startswith(("VmRSS:", "VmHWM:", "RssAnon:", "RssFile:")):
                key, kb = line.split()[:2]
                got[key.rstrip(":")] = int(kb) / 1024
    return got


def rss_mb() -> tuple[float, float]:
    """(VmRSS, VmHWM) of this process in MB: resident now, and the peak since it started."""
    got = _status_mb()
    return got.get("VmRSS", 0.0), got.get("VmHWM", 0.0)


def rss_split() -> str:
    """Resident memory split into the process's own (anonymous) pages and mapped file pages (the
    snapshot's vectors and postings: page cache every reader process on the machine shares)."""
    got = _status_mb()
    return f"{got.get('RssAnon', 0.0):.0f} MB own + {got.get('RssFile', 0.0):.0f} MB mapped files"


def synthetic_ready(path: Path, n_chunks: int) -> bool:
    """The store holds n_chunks and its published snapshot is current."""
    from rag.lexical import lexical_index_is_fresh
    from rag.settings import Settings
    from rag.store import NewsStore

    if not (path / "catalog.sqlite").exists():
        return False
    store = NewsStore(Settings(store_dir=path))
    try:
        return store.count_chunks() == n_chunks and lexical_index_is_fresh(store)
    finally:
        store.close()


def synthetic_vectors(base: np.ndarray, copy: int) -> np.ndarray:
    """Copy number `copy` of the real vectors, each nudged off its original (the same every run, so a
    killed build resumes where it stopped and the publish can be given every vector it wrote)."""
    rng = np.random.default_rng(copy)
    v = base + rng.normal(0, 0.02, base.shape).astype(np.float32)
    return v / np.linalg.norm(v, axis=1, keepdims=True)


def synthetic_store(real_settings, n_chunks: int, path: Path, batch: int = 5000, reingest: int = 0):
    """Grow a copy of the real store's chunks to n_chunks with jittered vectors and reshuffled text,
    through the store's own write path (write_chunk_groups, commit_stories) and one snapshot publish at
    the end, as one ingest of that many chunks would. Resumes a build that was stopped: chunk i is the
    same chunk in every run, and the committed ones are skipped (the publish then reads their vectors
    back from Chroma, as after a killed ingest).

    `reingest` > 0 then times what one more ingest costs the full store: its last `reingest` stories
    are written again, and a snapshot is published with only their vectors fresh."""
    from rag.lexical import build_lexical_index, lexical_index_is_fresh
    from rag.settings import Settings
    from rag.store import NewsStore

    src = NewsStore(real_settings)
    ids, docs, metas = src.all_chunks()
    found = src.chunk_vectors(ids)
    keep = [i for i, c in enumerate(ids) if c in found]
    ids, docs, metas = [ids[i] for i in keep], [docs[i] for i in keep], [metas[i] for i in keep]
    base = np.stack([found[c] for c in ids])
    model = src.meta("embed_model")
    src.close()
    settings = Settings(store_dir=path)
    dst = NewsStore(settings, writable=True)
    dst.bind_model(model, base.shape[1])
    dst.recover()
    have = dst.count_chunks()
    t0, logged = time.perf_counter(), have
    fresh: dict[str, np.ndarray] = {}
    stories, chunks, vecs = [], [], []
    for copy in range((n_chunks + len(ids) - 1) // len(ids)):
        lo = copy * len(ids)
        if lo >= n_chunks:
            break
        cvecs = synthetic_vectors(base, copy)
        for j, (cid, doc, meta) in enumerate(zip(ids, docs, metas)):
            made = lo + j
            if made >= n_chunks:
                break
            if made < have:
                continue
            sid = f"syn{copy}-{cid.replace(':', '-')}"
            fresh[f"{sid}:0"] = cvecs[j]
            story, chunk = synthetic_chunk(copy, made, cid, doc, meta)
            stories.append(story)
            chunks.append(chunk)
            vecs.append(cvecs[j])
            if len(stories) >= batch:
                flush(dst, stories, chunks, vecs)
                stories, chunks, vecs = [], [], []
                if made + 1 - logged >= 50_000:
                    rate = (made + 1 - have) / (time.perf_counter() - t0)
                    print(f"  written {made + 1} chunks, {rate:.0f}/s, RSS {rss_mb()[0]:.0f} MB", flush=True)
                    logged = made + 1
    flush(dst, stories, chunks, vecs)
    written = time.perf_counter() - t0
    print(f"  wrote {n_chunks - have} chunks in {written:.0f}s (store now {dst.count_chunks()}); "
          f"RSS {rss_mb()[0]:.0f} MB", flush=True)
    if not lexical_index_is_fresh(dst):
        t = time.perf_counter()
        build_lexical_index(dst, fresh)
        print(f"  published the snapshot in {time.perf_counter() - t:.0f}s; RSS {rss_mb()[0]:.0f} MB, "
              f"peak {rss_mb()[1]:.0f} MB", flush=True)
    fresh.clear()
    if reingest:
        dst.close()
        _reingest(real_settings, settings, n_chunks, reingest, ids, docs, metas, base)
    else:
        dst.close()
    return settings


def _reingest(real_settings, settings, n_chunks: int, k: int, ids, docs, metas, base) -> None:
    """Write the store's last k synthetic stories again and publish: the per-ingest cost of a full store
    (the snapshot is rebuilt whole, so it grows with the store, not with the ingest)."""
    from rag.lexical import build_lexical_index
    from rag.store import NewsStore

    gc_collect()
    reset_peak_rss()
    t = time.perf_counter()
    dst = NewsStore(settings, writable=True)
    stories, chunks, vecs, fresh = [], [], [], {}
    for made in range(n_chunks - k, n_chunks):
        copy, j = divmod(made, len(ids))
        story, chunk = synthetic_chunk(copy, made, ids[j], docs[j], metas[j])
        v = synthetic_vectors(base[j:j + 1], copy)[0]     # (the copy's own noise differs; any vector will do)
        stories.append(story); chunks.append(chunk); vecs.append(v); fresh[chunk.id] = v
    flush(dst, stories, chunks, vecs)
    written = time.perf_counter() - t
    build_lexical_index(dst, fresh)
    dst.close()
    now, peak = rss_mb()
    print(f"  one more ingest of {k} stories into the {n_chunks}-chunk store: written in {written:.1f}s, "
          f"snapshot published in {time.perf_counter() - t - written:.0f}s; RSS {now:.0f} MB, peak during it "
          f"{peak:.0f} MB", flush=True)


def gc_collect() -> None:
    import gc
    gc.collect()


def reset_peak_rss() -> None:
    """Start VmHWM afresh (Linux: writing 5 to clear_refs), so a peak is this step's own."""
    try:
        with open("/proc/self/clear_refs", "w") as fh:
            fh.write("5")
    except OSError:
        pass


def synthetic_chunk(copy: int, made: int, cid: str, doc: str, meta: dict):
    """Synthetic story number `made`: copy `copy` of a real chunk, its sentences reshuffled, one chunk."""
    from datetime import date

    from rag.records import Chunk, SourceLink, Story
    from rag.text import split_sentences

    sid = f"syn{copy}-{cid.replace(':', '-')}"
    sents = split_sentences(doc)
    random.Random(made).shuffle(sents)
    story = Story(id=sid, title=meta["title"], text=" ".join(sents), published_at=date.fromisoformat(meta["published_at"]),
                  sources=[SourceLink(meta["outlet"], f"{meta['url']}#syn{copy}")], tags=[])
    return story, Chunk(f"{sid}:0", sid, 0, story.text, story.text, 0)


def flush(dst, stories, chunks, vecs):
    """Through the store's own write path, so the synthetic chunks land in Chroma and the catalogue alike:
    pending first, then Chroma, then the catalogue (as ingest.pipeline does)."""
    if not stories:
        return
    dst.mark_pending(s.id for s in stories)
    metas = dst.write_chunk_groups([(s, [c], v) for s, c, v in zip(stories, chunks, vecs)])
    dst.commit_stories([(s, 1, "syn") for s in stories], [], chunks={s.id: [c] for s, c in zip(stories, chunks)},
                       metas=metas)


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--store", type=Path, required=True, help="a built store (e.g. of the digests)")
    ap.add_argument("--synthetic", type=int, nargs="+", default=[100_000],
                    help="chunks in each synthetic store, measured in this order (0: none)")
    ap.add_argument("-n", type=int, default=60, help="questions per store")
    ap.add_argument("--synthetic-dir", type=Path, nargs="+", default=[],
                    help="keep each synthetic store here (one folder per --synthetic size, in order): a store "
                         "that holds fewer chunks is resumed, one that holds them all is reused (building 1M "
                         "chunks takes a long time; before/after runs should search the same store)")
    ap.add_argument("--build-only", action="store_true", help="build (or resume) the synthetic stores and stop")
    ap.add_argument("--reingest", type=int, default=0,
                    help="with --build-only: then write this many stories of each synthetic store again and "
                         "publish, timing one more ingest into a full store")
    ap.add_argument("--skip-real", action="store_true",
                    help="measure the synthetic stores only (no cold start, briefs or real-store figures), so "
                         "the process's RSS is the synthetic stores' own")
    ap.add_argument("--no-cold", action="store_true", help="skip the cold-start measurement")
    ap.add_argument("--brief-months", type=int, default=12, help="newest months to brief (0: skip briefs)")
    ap.add_argument("--brief-rounds", type=int, default=3, help="times each month brief is asked")
    ap.add_argument("--only-briefs", action="store_true", help="measure the briefs only")
    ap.add_argument("--cold-backends", default="torch,onnx-int8",
                    help="embedder backends to measure the cold start with (the ONNX export must be cached)")
    args = ap.parse_args()

    from rag.pipeline import NewsBot
    from rag.settings import Settings

    sizes = [n for n in args.synthetic if n > 0]
    if args.synthetic_dir and len(args.synthetic_dir) != len(sizes):
        ap.error("give one --synthetic-dir per --synthetic size")
    settings = Settings(store_dir=args.store)
    if args.build_only:
        for n, path in zip(sizes, args.synthetic_dir):
            t = time.perf_counter()
            synthetic_store(settings, n, path, reingest=args.reingest)
            print(f"synthetic store of {n} chunks at {path} ready in {time.perf_counter() - t:.0f}s", flush=True)
        return 0
    if args.skip_real:
        args.no_cold, args.brief_months = True, 0

    for backend in ([] if args.no_cold else args.cold_backends.split(",")):
        t0 = time.perf_counter()
        proc = subprocess.run([sys.executable, "-m", "rag", "ask", "What happened with OpenAI?", "--store",
                               str(args.store), "--json"], capture_output=True, text=True, cwd=ROOT,
                              env={**os.environ, "NEWSRAG_EMBED_BACKEND": backend})
        cold = time.perf_counter() - t0
        print(f"cold start to first answer (new process, python -m rag ask, {backend}): {cold:.1f}s  (target <= 10 s)"
              + ("" if proc.returncode == 0 else f"  [exit {proc.returncode}: {proc.stderr[-200:]}]"), flush=True)

    bot = NewsBot(settings)
    if args.brief_months:
        bqs, year_q = brief_questions(bot.store, args.brief_months)
        bot.ask(bqs[0])
        times, sizes_ = measure_briefs(bot, bqs, args.brief_rounds)
        print(f"month briefs ({len(bqs)} months of {min(sizes_)}-{max(sizes_)} stories, {args.brief_rounds} rounds): "
              f"p50 {pct(times, 50):.0f} ms, p95 {pct(times, 95):.0f} ms (target p50 <= 500 ms)", flush=True)
        if year_q:
            ytimes, ysizes = measure_briefs(bot, [year_q], args.brief_rounds)
            print(f"year brief ({year_q!r}, {ysizes[0]} stories): p50 {pct(ytimes, 50):.0f} ms", flush=True)
        if args.only_briefs:
            return 0
    qs = questions_from(bot.store, args.n)
    if not args.skip_real:
        bot.ask(qs[0])
        print(report(f"real store ({bot.store.count_chunks()} chunks, {len(qs)} questions, {settings.embed_backend})",
                     *measure(bot, qs)), flush=True)
    outlets = bot.store.stats()["outlets"]
    outlet = max(outlets, key=outlets.get) if outlets else None
    del bot

    with tempfile.TemporaryDirectory(prefix="newsrag-syn-") as tmp:
        for i, n in enumerate(sizes):
            path = args.synthetic_dir[i] if args.synthetic_dir else Path(tmp) / f"store-{n}"
            if synthetic_ready(path, n):      # then this process never opens Chroma: its RSS is a reader's
                syn = Settings(store_dir=path)
                print(f"reusing the synthetic store of {n} chunks at {path}", flush=True)
            else:
                t = time.perf_counter()
                syn = synthetic_store(settings, n, path)
                print(f"synthetic store of {n} chunks ready in {time.perf_counter() - t:.0f}s "
                      f"(RSS now {rss_mb()[0]:.0f} MB, so the RSS below includes the build)", flush=True)
            sbot = NewsBot(syn)
            t = time.perf_counter()
            sbot.ask(qs[0])
            first = time.perf_counter() - t
            loaded = rss_mb()[0]
            sbot.embedder._one_cache.clear()   # the same questions were embedded (and cached) before
            figures = measure(sbot, qs)
            now, peak = rss_mb()
            targets = "target p95 100 ms at 1M" if n >= 1_000_000 else "targets 40 / 80 ms at 100k"
            print(report(f"synthetic store ({n} chunks, {len(qs)} questions)", *figures, targets=targets)
                  + f"; first question (loads the snapshot) {first:.1f}s; process RSS after loading {loaded:.0f} MB, "
                    f"after the questions {now:.0f} MB ({rss_split()}), peak {peak:.0f} MB (target 4 GB at 1M); "
                    f"load average {os.getloadavg()[0]:.2f}", flush=True)
            if outlet:
                print("  " + filtered(sbot, qs[:20], outlet), flush=True)
            del sbot
    return 0


if __name__ == "__main__":
    sys.exit(main())
