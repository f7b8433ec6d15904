"""Many stories dated in one week: the ingest must stay near the embedder's own time (target: the whole
ingest <= 2x the time spent embedding its chunks), which the pairwise near-duplicate scan was not.

    python benchmarks/same_week_bench.py --stories 20000

Stories are made at run time from the digests in ../shared (each 4-8 sentences drawn from the whole
pool, so stories share sentences and the near-duplicate check has real work), all dated in one week,
written as JSONL files and ingested into a fresh store. The embedder's share is measured inside the
run (wall time in embed and tokenize), as benchmarks/ingest_bench.py does.
"""
from __future__ import annotations

import argparse
import json
import random
import sys
import tempfile
import time
from datetime import date, timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import rag.offline  # noqa: E402,F401

DIGESTS = ROOT.parent / "shared" / "data" / "lastweekinai-digests" / "digests"


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--stories", type=int, default=20_000)
    args = ap.parse_args()
    import ingest.dedup as dedup
    from ingest.loaders import load_paths
    from ingest.pipeline import ingest_paths
    from rag.embedder import get_embedder
    from rag.settings import Settings
    from rag.text import split_sentences

    pool = [s for st in load_paths([DIGESTS], Settings()).stories for s in split_sentences(st.text) if len(s) > 40]
    rng = random.Random(0)
    with tempfile.TemporaryDirectory() as tmp:
        src = Path(tmp) / "week"          # JSONL files of 4,000 stories: each under the loader's file-size cap
        src.mkdir()
        for i in range(args.stories):
            with (src / f"part-{i // 4000:03d}.jsonl").open("a") as fh:
                sents = rng.sample(pool, rng.randint(4, 8))
                fh.write(json.dumps({"title": " ".join(sents[0].split()[:10]) + f" ({i})", "text": " ".join(sents),
                                     "published": (date(2026, 3, 2) + timedelta(days=i % 7)).isoformat(),
                                     "url": f"https://example.org/week/{i}", "outlet": "Bench Wire"}) + "\n")
        settings = Settings(store_dir=Path(tmp) / "store")
        emb = get_embedder(settings)
        spent = {"embedder": 0.0, "near-duplicates": 0.0}

        def timed(fn, key):
            def wrapper(*a, **kw):
                t0 = time.perf_counter()
                try:
                    return fn(*a, **kw)
                finally:
                    spent[key] += time.perf_counter() - t0
            return wrapper
        emb.embed, emb.tokenize = timed(emb.embed, "embedder"), timed(emb.tokenize, "embedder")
        Index = dedup.NearDuplicateIndex
        Index.match, Index.add = timed(Index.match, "near-duplicates"), timed(Index.add, "near-duplicates")
        t = time.perf_counter()
        rep = ingest_paths([src], settings, progress=False)
        total = time.perf_counter() - t
    assert rep.error is None, rep.error
    assert rep.new and spent["embedder"] > 0, (rep.new, rep.skipped[:3], spent)
    print(f"{args.stories} stories in one week: {rep.new} new, {rep.merged_duplicates} merged, "
          f"{rep.chunks_embedded} chunks; ingest {total:.1f}s, of which embedder {spent['embedder']:.1f}s and "
          f"near-duplicate matching {spent['near-duplicates']:.1f}s; ingest / embedder "
          f"{total / spent['embedder']:.2f}x (target <= 2x)")


if __name__ == "__main__":
    main()
