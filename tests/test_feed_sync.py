"""Scheduled feed sync against a real HTTP server on 127.0.0.1: deadlines, conditional GET, backoff."""
from __future__ import annotations

import json
import subprocess
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from ingest.sync import FeedsFileError, load_feeds, parse_duration, start_background_sync, sync_once
from rag.interfaces.ui import freshness_line
from rag.settings import Settings
from rag.store import NewsStore

ROOT = Path(__file__).resolve().parents[1]

RSS = """<?xml version="1.0" encoding="utf-8"?>
<rss version="2.0"><channel><title>Loopback Wire</title><link>http://127.0.0.1/</link>
<item><title>Marlin Labs ships the Gannet-3 translation model</title><link>http://127.0.0.1/news/gannet-3</link>
<pubDate>Tue, 10 Mar 2026 09:00:00 GMT</pubDate><description>Marlin Labs released Gannet-3, a translation model
covering 61 languages, on March 10, 2026. The lab said it halves errors on legal documents compared with
Gannet-2 and runs on one server GPU. Marlin plans a smaller phone version for the autumn.</description></item>
<item><title>Pelican Robotics raises 80 million dollars</title><link>http://127.0.0.1/news/pelican</link>
<pubDate>Wed, 11 Mar 2026 09:00:00 GMT</pubDate><description>Pelican Robotics raised 80 million dollars on
March 11, 2026 to build kitchen robots for hospitals. The company said its first machines will serve meals
in three clinics in Lyon next spring, and that it employs sixty engineers.</description></item>
</channel></rss>"""


class FeedServer(BaseHTTPRequestHandler):
    requests: list[tuple[str, dict]] = []
    trickle_done: list[float] = []          # seconds from request to the client hanging up

    def log_message(self, *a):
        pass

    def do_GET(self):
        FeedServer.requests.append((self.path, dict(self.headers)))
        if self.path == "/good.xml":
            if self.headers.get("If-None-Match") == '"v1"':
                self.send_response(304)
                self.send_header("ETag", '"v1"')
                self.end_headers()
                return
            body = RSS.encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/rss+xml")
            self.send_header("ETag", '"v1"')
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)
        elif self.path == "/trickle.xml":       # a byte every 0.4 s: each read is quick, the whole is endless
            t0 = time.monotonic()
            self.send_response(200)
            self.send_header("Content-Type", "application/rss+xml")
            self.end_headers()
            try:
                for _ in range(150):
                    self.wfile.write(b" ")
                    self.wfile.flush()
                    time.sleep(0.4)
            except OSError:
                FeedServer.trickle_done.append(time.monotonic() - t0)
        else:
            self.send_response(500)
            self.end_headers()


@pytest.fixture()
def feed_server():
    FeedServer.requests, FeedServer.trickle_done = [], []
    server = ThreadingHTTPServer(("127.0.0.1", 0), FeedServer)
    server.daemon_threads = True
    t = threading.Thread(target=server.serve_forever, daemon=True)
    t.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


def _feeds_file(tmp_path: Path, base: str) -> Path:
    p = tmp_path / "feeds.yaml"
    p.write_text(f"""feeds:
  - url: {base}/good.xml
    outlet: Loopback Desk
    tags: [loopback, Models]
    interval: 30m
  - url: {base}/trickle.xml
  - url: {base}/broken.xml
    interval: 1h
""")
    return p


def test_a_sync_abandons_a_trickling_feed_ingests_the_others_then_asks_conditionally(tmp_path, feed_server):
    settings = Settings(store_dir=tmp_path / "store", feed_deadline=2.0, feed_timeout=1.0)
    feeds = load_feeds(_feeds_file(tmp_path, feed_server), 1800)
    assert [f.interval for f in feeds] == [1800, 1800, 3600]
    t = time.monotonic()
    r = sync_once(feeds, settings)
    assert r.fetched == [f"{feed_server}/good.xml"]
    assert set(r.failed) == {f"{feed_server}/trickle.xml", f"{feed_server}/broken.xml"}
    assert "longer than 2s" in r.failed[f"{feed_server}/trickle.xml"]
    assert "HTTP 500" in r.failed[f"{feed_server}/broken.xml"]
    assert r.ingest and r.ingest["new"] == 2 and not r.ingest["error"]
    time.sleep(0.5)
    assert FeedServer.trickle_done and FeedServer.trickle_done[0] <= 2 * settings.feed_deadline
    assert time.monotonic() - t < 120
    store = NewsStore(settings)
    rows = store.story_rows()
    assert {r.outlet for r in rows} == {"Loopback Desk"} and all({"loopback", "models"} <= set(r.tags) for r in rows)
    sync = store.stats()["sync"]
    assert sync["last_sync"] and set(sync["failing"]) == set(r.failed)
    line = freshness_line(store.stats())
    assert "feeds last synced" in line and f"{feed_server}/trickle.xml" in line
    # an unchanged feed costs one conditional request and no ingest; failing feeds wait for their backoff
    FeedServer.requests.clear()
    again = sync_once(feeds, settings, force=False, now=lambda: time.time() + 1900)
    assert again.not_modified == [f"{feed_server}/good.xml"] and again.ingest is None
    assert [p for p, _ in FeedServer.requests].count("/good.xml") == 1
    assert FeedServer.requests[[p for p, _ in FeedServer.requests].index("/good.xml")][1].get("If-None-Match") == '"v1"'
    state = json.loads((settings.store_dir / "sync.json").read_text())["feeds"]
    assert state[f"{feed_server}/broken.xml"]["failures"] == 2          # retried: the backoff (60 s) had passed
    assert state[f"{feed_server}/broken.xml"]["next_try"] - time.time() > 1900 + 100   # doubled to 120 s
    soon = sync_once(feeds, settings)              # nothing due right now
    assert soon.not_due == 3 and not soon.fetched and not soon.failed


def test_the_cli_syncs_a_feeds_file_once_and_refuses_a_broken_one(tmp_path, feed_server):
    good = tmp_path / "one.yaml"
    good.write_text(f"- url: {feed_server}/good.xml\n")
    p = subprocess.run([sys.executable, "-m", "ingest", "--feeds", str(good), "--store", str(tmp_path / "s")],
                       cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert p.returncode == 0, p.stderr
    assert "1 changed" in p.stdout and "new: 2" in p.stdout
    bad = tmp_path / "bad.yaml"
    bad.write_text("feeds:\n  - url: ftp://example.org/feed\n")
    p = subprocess.run([sys.executable, "-m", "ingest", "--feeds", str(bad), "--every", "30m"], cwd=ROOT,
                       capture_output=True, text=True, timeout=120)
    assert p.returncode == 2 and "feed 1" in p.stderr and "http(s) URL" in p.stderr


def test_the_background_sync_ingests_while_this_process_serves(tmp_path, feed_server):
    """The app's --sync-feeds: the schedule runs in a thread beside a NewsBot answering from the store."""
    from rag.pipeline import NewsBot

    settings = Settings(store_dir=tmp_path / "store")
    first = tmp_path / "first.yaml"
    first.write_text(f"- url: {feed_server}/good.xml\n")
    assert sync_once(load_feeds(first, 60), settings).ingest["new"] == 2
    bot = NewsBot(settings)
    both = tmp_path / "both.yaml"
    both.write_text(f"- url: {feed_server}/good.xml\n- url: {feed_server}/broken.xml\n")
    stop = threading.Event()
    t = start_background_sync(both, settings, 60, stop=stop)
    try:
        deadline = time.time() + 120
        while time.time() < deadline and not (bot.stats()["sync"] or {}).get("failing"):
            assert not bot.ask("Which translation model did Marlin Labs ship?").refused
            time.sleep(0.2)
    finally:
        stop.set()
        t.join(timeout=60)
    assert not t.is_alive()
    assert list(bot.stats()["sync"]["failing"]) == [f"{feed_server}/broken.xml"]


def test_feeds_file_and_duration_errors_say_what_is_wrong(tmp_path):
    f = tmp_path / "f.yaml"
    for text, msg in [("feeds: 3", "must hold a list"), ("- {url: 'http://a.b/x', colour: red}", "unknown key"),
                      ("- {url: 'http://a.b/x', interval: soon}", "not a duration"),
                      ("- http://a.b/x\n- http://a.b/x", "listed twice"), ("feeds: [", "not valid YAML")]:
        f.write_text(text)
        with pytest.raises(FeedsFileError, match=msg):
            load_feeds(f, 60)
    assert parse_duration("30m") == 1800 and parse_duration("2h") == 7200 and parse_duration(45) == 45
    with pytest.raises(ValueError):
        parse_duration("1s")
