"""Soak: chat users answering from a store while a scheduled feed sync ingests new stories into it.

    python benchmarks/soak_bench.py --users 20 --seconds 120 --stories 500 --interval 15 [--chroma]

A local HTTP server on 127.0.0.1 publishes --stories made-up stories over the first 60% of the run,
spread over five feeds. A real `python -m ingest --feeds ... --every` process syncs them, and two
reader processes (NewsBots, --users threads between them) ask questions the whole time: about the
shipped corpus, and about every story released so far. Meanwhile a probe in each reader records when
each released story first becomes the top dense hit and the top BM25 hit for its own question; one
sync interval after the run each reader checks, without restarting, that all of them still are. With
--chroma the store's vectors live on a `chroma run` server. Prints failed answers (target 0), latency
p50/p95, how many new stories each reader could not find, and the slowest release-to-found delay.
"""
from __future__ import annotations

import argparse
import multiprocessing as mp
import os
import queue
import random
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass
from email.utils import format_datetime
from datetime import datetime, timezone
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

FEEDS = 5
SYLLABLES = "ka lo mi ren tu vas qe dor fin gal hu jex ny pol sar tem ul vy wex zo".split()
CORPUS_QUESTIONS = ["What did Nvidia announce about its chips?", "What is the EU AI Act?",
                    "What happened with OpenAI recently?", "Which company released a new open model?"]


def codename(i: int) -> str:
    rng = random.Random(i)
    return "".join(rng.choice(SYLLABLES) for _ in range(3)).capitalize() + f"-{i}"


def story(i: int) -> dict:
    name = codename(i)
    town = ["Tromso", "Lagos", "Hanoi", "Quito", "Perth", "Bergen", "Accra", "Lima"][i % 8]
    return {"i": i, "name": name, "question": f"What did the {town} lab announce about {name}?",
            "title": f"{town} lab unveils the {name} assistant",
            "text": f"A research lab in {town} unveiled {name}, an assistant model for field technicians, on "
                    f"March {i % 27 + 1}, 2026. The lab said {name} answers repair questions offline and was "
                    f"trained on {1000 + i} hours of recorded maintenance work."}


def rss(items: list[dict], k: int) -> bytes:
    body = "".join(
        f"<item><title>{s['title']}</title><link>http://127.0.0.1/soak/{s['i']}</link>"
        f"<pubDate>{format_datetime(datetime(2026, 3, s['i'] % 27 + 1, 9, tzinfo=timezone.utc))}</pubDate>"
        f"<description>{s['text']}</description></item>" for s in items)
    return (f'<?xml version="1.0"?><rss version="2.0"><channel><title>Soak Wire {k}</title>'
            f"<link>http://127.0.0.1/</link>{body}</channel></rss>").encode()


def serve_feeds(stories: list[dict], start: float, release_s: float) -> tuple[ThreadingHTTPServer, list]:
    released: list[int] = []

    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *a):
            pass

        def do_GET(self):
            k = int(self.path.strip("/").split(".")[0].removeprefix("feed"))
            upto = min(len(stories), int(len(stories) * (time.time() - start) / release_s) + 1)
            items = [s for s in stories[:upto] if s["i"] % FEEDS == k]
            etag = f'"{len(items)}"'
            if self.headers.get("If-None-Match") == etag:
                self.send_response(304)
                self.end_headers()
                return
            released[:] = [max(released[0] if released else 0, upto)]
            data = rss(items, k)
            self.send_response(200)
            self.send_header("ETag", etag)
            self.send_header("Content-Type", "application/rss+xml")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server, released


def released_at(i: int, n: int, start: float, release_s: float) -> float:
    """When story i of n first appears in its feed (serve_feeds releases them evenly over release_s)."""
    return start + release_s * i / n


def found(bot, s: dict, qvec) -> tuple[bool, bool]:
    """Whether story `s` is the top dense hit and the top BM25 hit for its own question, in the
    snapshot the bot serves right now."""
    lex = bot.retriever.lexical()
    top = bot.store.dense_hits(qvec, 1, snapshot=lex)
    hits = lex.search(s["question"], 1)
    ids = ([top[0][0]] if top else []) + ([hits[0].chunk_id] if hits else [])
    titles = {c: src.title for c, src in lex.sources(ids).items()}
    return (bool(top) and s["name"] in titles.get(top[0][0], ""),
            bool(hits) and s["name"] in titles.get(hits[0].chunk_id, ""))


def reader(store_dir: str, chroma_url: str, users: int, seconds: float, interval: float, start: float,
           release_s: float, stories: list[dict], out) -> None:
    os.environ["NEWSRAG_CHROMA_URL"] = chroma_url
    from rag.pipeline import NewsBot
    from rag.settings import Settings

    bot = NewsBot(Settings(store_dir=store_dir))
    lat, fails = [], []
    stop = time.time() + seconds

    def user(u: int) -> None:
        rng = random.Random(u)
        while time.time() < stop:
            released = int(len(stories) * (time.time() - start) / release_s)
            q = rng.choice(CORPUS_QUESTIONS) if rng.random() < 0.5 or released < 1 else \
                stories[rng.randrange(min(released, len(stories)))]["question"]
            t = time.perf_counter()
            try:
                bot.ask(q)
                lat.append(time.perf_counter() - t)
            except Exception as exc:  # noqa: BLE001 - every failure is what the soak counts
                fails.append(f"{type(exc).__name__}: {exc}"[:200])

    n = len(stories)
    qvecs: dict[int, object] = {}
    found_at: dict[int, float] = {}
    probe_rounds: list[float] = []

    def probe() -> None:
        """Beside the users, until one interval after they stop: when did each released story first
        become the top dense and BM25 hit? (The lag from its release is what the soak bounds.)"""
        while time.time() < stop + interval:
            t0 = time.time()
            for i, s in enumerate(stories):
                if i in found_at or released_at(i, n, start, release_s) > t0:
                    continue
                if i not in qvecs:
                    qvecs[i] = bot.embedder.embed_one(s["question"])
                if all(found(bot, s, qvecs[i])):
                    found_at[i] = time.time()
            probe_rounds.append(time.time() - t0)
            time.sleep(1)

    threads = [threading.Thread(target=user, args=(u,)) for u in range(users)] + [threading.Thread(target=probe)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    missing_dense = missing_bm25 = 0     # after the run and one more interval, no restart
    for i, s in enumerate(stories):
        dense, bm25 = found(bot, s, qvecs.get(i) if i in qvecs else bot.embedder.embed_one(s["question"]))
        missing_dense += not dense
        missing_bm25 += not bm25
    out.put({"lat": lat, "fails": fails, "missing_dense": missing_dense, "missing_bm25": missing_bm25,
             "lags": [found_at[i] - released_at(i, n, start, release_s) for i in sorted(found_at)],
             "probe_round": max(probe_rounds, default=0.0)})


@dataclass
class SoakResult:
    users: int
    readers: int
    seconds: float
    stories: int
    every: str
    chroma_url: str
    latencies: list[float]
    fails: list[str]
    missing: list[tuple[int, int]]       # (dense, BM25) new stories not the top hit, per reader
    lags: list[list[float]]              # per reader: seconds from each found story's release to found
    probe_round: float                   # the longest round of the readers' probes, seconds
    interval: float
    sync_log: str

    def sync_rounds(self) -> list[float]:
        """Seconds each round of the sync process took, from its printed summaries."""
        return [float(x) for x in re.findall(r"^sync: .*\((\d+(?:\.\d+)?)s\)$", self.sync_log, re.M)]

    def lag_bound(self) -> float:
        """The latest a story can be found when every sync keeps to its interval: one interval until
        the next read of its feed (or the round before it, if that ran longer), the round that ingests
        it, and one round of the reader's probe plus its 1 s pause."""
        longest = max(self.sync_rounds(), default=0.0)
        return self.interval + 2 * longest + 1 + self.probe_round + 1

    def percentile(self, q: float) -> float:
        import numpy as np
        return float(np.percentile(self.latencies, q)) if self.latencies else float("nan")

    def summary(self) -> str:
        return (f"{self.users} users in {self.readers} processes for {self.seconds:.0f}s, {self.stories} stories "
                f"synced every {self.every}{' (chroma server)' if self.chroma_url else ''}: "
                f"{len(self.latencies)} answers, {len(self.fails)} failed; p50 {1000 * self.percentile(50):.0f} ms, "
                f"p95 {1000 * self.percentile(95):.0f} ms; new stories not the top hit after one interval: "
                + ", ".join(f"dense {d}, BM25 {b}" for d, b in self.missing)
                + "; release to found by dense and BM25, the slowest: "
                + ", ".join(f"{max(lag, default=float('nan')):.1f}s ({len(lag)} found)" for lag in self.lags)
                + f" (sync interval {self.interval:g}s, longest sync round {max(self.sync_rounds(), default=0):.1f}s)")


def start_chroma(path: Path, log: Path | None = None) -> tuple[subprocess.Popen, str]:
    """A `chroma run` on a free 127.0.0.1 port, once its heartbeat answers (90 s at most); its console
    goes to `log` when given. RuntimeError says why it did not come up."""
    import httpx

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    chroma = shutil.which("chroma", path=str(Path(sys.executable).parent)) or shutil.which("chroma")
    if not chroma:
        raise RuntimeError("the `chroma` CLI (from the chromadb package) is not installed")
    with open(log or os.devnull, "w") as out:
        proc = subprocess.Popen([chroma, "run", "--path", str(path), "--host", "127.0.0.1", "--port", str(port)],
                                stdout=out, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    deadline = time.time() + 90
    while time.time() < deadline and proc.poll() is None:
        try:
            if httpx.get(f"{url}/api/v2/heartbeat", timeout=2).status_code == 200:
                return proc, url
        except httpx.HTTPError:
            time.sleep(0.3)
    exited = proc.poll() is not None
    stop_process(proc)
    tail = Path(log).read_text(errors="replace")[-2000:] if log else ""
    raise RuntimeError(("chroma run exited" if exited else "chroma run did not answer its heartbeat within 90 s")
                       + (f": {tail}" if tail else ""))


def stop_process(p: subprocess.Popen) -> None:
    p.terminate()
    try:
        p.wait(timeout=30)
    except subprocess.TimeoutExpired:
        p.kill()
        p.wait()


def run_soak(tmp: Path, *, users: int = 20, seconds: float = 120, stories: int = 500, interval: float = 15,
             readers: int = 2, chroma_url: str = "") -> SoakResult:
    """One soak in `tmp` (a fresh folder): the shipped corpus ingested, then `seconds` of chat from
    `readers` processes while `python -m ingest --feeds ... --every` syncs `stories` new stories. Used by
    main() and by tests/test_soak.py, which asserts on what main() prints."""
    import rag.offline  # noqa: F401
    from ingest.pipeline import ingest_paths
    from rag.settings import Settings

    settings = Settings(store_dir=tmp / "store", chroma_url=chroma_url)
    rep = ingest_paths([ROOT / "corpus"], settings, progress=False)
    if not rep.ok:
        raise RuntimeError(f"the corpus did not ingest: {rep.error}")
    made = [story(i) for i in range(stories)]
    start = time.time() + 20                          # readers and the sync process start meanwhile
    release_s = 0.6 * seconds
    server, _ = serve_feeds(made, start, release_s)
    sync = None
    procs: list = []
    try:
        base = f"http://127.0.0.1:{server.server_address[1]}"
        feeds = tmp / "feeds.yaml"
        feeds.write_text("feeds:\n" + "".join(f"  - url: {base}/feed{k}.xml\n" for k in range(FEEDS)))
        every = f"{int(interval)}s"
        with open(tmp / "sync.log", "w") as log:
            sync = subprocess.Popen([sys.executable, "-m", "ingest", "--feeds", str(feeds), "--every", every,
                                     "--store", str(settings.store_dir)], cwd=ROOT,
                                    env={**os.environ, "NEWSRAG_CHROMA_URL": chroma_url},
                                    stdout=log, stderr=subprocess.STDOUT)
        ctx = mp.get_context("spawn")
        out = ctx.Queue()
        procs = [ctx.Process(target=reader, args=(str(settings.store_dir), chroma_url, users // readers,
                                                  seconds + 20, interval + 5, start, release_s, made, out))
                 for _ in range(readers)]
        for r in procs:
            r.start()
        results, deadline = [], time.time() + seconds + 600
        while len(results) < readers:                 # a reader that died must not hang the caller
            try:
                results.append(out.get(timeout=5))
            except queue.Empty:
                if time.time() > deadline or sum(r.is_alive() for r in procs) < readers - len(results):
                    raise RuntimeError(f"{readers - len(results)} reader process(es) died or hung; exit codes "
                                       f"{[r.exitcode for r in procs]}") from None
        for r in procs:
            r.join(timeout=60)
    finally:
        for r in procs:
            if r.is_alive():
                r.terminate()
        if sync is not None:
            stop_process(sync)
        server.shutdown()
    return SoakResult(users=users, readers=readers, seconds=seconds, stories=stories, every=every,
                      chroma_url=chroma_url, latencies=[x for r in results for x in r["lat"]],
                      fails=[x for r in results for x in r["fails"]],
                      missing=[(r["missing_dense"], r["missing_bm25"]) for r in results],
                      lags=[r["lags"] for r in results], probe_round=max(r["probe_round"] for r in results),
                      interval=interval,
                      sync_log=(tmp / "sync.log").read_text(errors="replace"))


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--users", type=int, default=20)
    ap.add_argument("--seconds", type=float, default=120)
    ap.add_argument("--stories", type=int, default=500)
    ap.add_argument("--interval", type=float, default=15)
    ap.add_argument("--readers", type=int, default=2, help="reader processes")
    ap.add_argument("--chroma", action="store_true", help="vectors on a `chroma run` server")
    args = ap.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="soak-"))
    chroma = None
    try:
        chroma_url = ""
        if args.chroma:
            chroma, chroma_url = start_chroma(tmp / "chroma")
        result = run_soak(tmp, users=args.users, seconds=args.seconds, stories=args.stories,
                          interval=args.interval, readers=args.readers, chroma_url=chroma_url)
        print(result.summary())
        for f in result.fails[:5]:
            print("  failed:", f)
    finally:
        if chroma is not None:
            stop_process(chroma)
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
