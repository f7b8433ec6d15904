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


def not_modified(handler: BaseHTTPRequestHandler, etag: str) -> bool:
    """Answer 304 when the client already has `etag`."""
    if handler.headers.get("If-None-Match") != etag:
        return False
    handler.send_response(304)
    handler.send_header("ETag", etag)
    handler.end_headers()
    return True


def trickle(handler: BaseHTTPRequestHandler, ctype: str, writes: int) -> float | None:
    """Send a byte every 0.4 s, `writes` times; the seconds until the client hung up, None if it never did."""
    t0 = time.monotonic()
    handler.send_response(200)
    handler.send_header("Content-Type", ctype)
    handler.end_headers()
    try:
        for _ in range(writes):
            handler.wfile.write(b" ")
            handler.wfile.flush()
            time.sleep(0.4)
    except OSError:
        # A write after the client hung up still succeeds once (the kernel takes it and the peer
        # answers RST); the next one, a sleep later, fails. So the hang-up came at least one sleep
        # before this moment: subtracting it keeps the figure an upper bound of the client's time.
        return time.monotonic() - t0 - 0.4
    return None


class FeedServer(BaseHTTPRequestHandler):
    requests: list[tuple[str, dict]] = []
    trickle_done: list[float] = []          # seconds from request to the client hanging up

    def log_message(self, *a):
        pass

    def do_GET(self):
        FeedServer.requests.append((self.path, dict(self.headers)))
        if self.path == "/good.xml":
            if not_modified(self, '"v1"'):
                return
            body = RSS.encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/rss+xml")
            self.send_header("ETag", '"v1"')
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)
        elif self.path == "/trickle.xml":       # a byte every 0.4 s: each read is quick, the whole is endless
            done = trickle(self, "application/rss+xml", 150)
            if done is not None:
                FeedServer.trickle_done.append(done)
        else:
            self.send_response(500)
            self.end_headers()


def _serve(handler):
    """`handler` on a free 127.0.0.1 port in a thread: yields its base URL, then stops it."""
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


@pytest.fixture()
def feed_server():
    FeedServer.requests, FeedServer.trickle_done = [], []
    yield from _serve(FeedServer)


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
    waited = time.monotonic()
    while not FeedServer.trickle_done and time.monotonic() - waited < 10:   # the server notices on its next writes
        time.sleep(0.1)
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


# ---- fetch_articles: items that carry only a summary, pages on 127.0.0.1 written for this test ------

ARTICLE_RSS = """<?xml version="1.0" encoding="utf-8"?>
<rss version="2.0"><channel><title>Summary Wire</title><link>{base}/</link>
<item><title>Osprey Systems opens a chip design lab in Porto</title><link>{base}/news/osprey.html</link>
<pubDate>Mon, 16 Mar 2026 09:00:00 GMT</pubDate><description>Osprey Systems opened a chip lab.</description></item>
<item><title>Heron AI delays its Plover-5 model</title><link>{base}/news/heron.html</link>
<pubDate>Tue, 17 Mar 2026 09:00:00 GMT</pubDate><description>Heron AI delayed Plover-5 to the summer.</description></item>
<item><title>Kite Cloud cuts GPU prices</title><link>{base}/news/kite.html</link>
<pubDate>Wed, 18 Mar 2026 09:00:00 GMT</pubDate><description>Kite Cloud cut its GPU rental prices.</description></item>
<item><title>Egret Labs hires a safety chief</title><link>{base}/news/egret.html</link>
<pubDate>Thu, 19 Mar 2026 09:00:00 GMT</pubDate><description>Egret Labs named a new head of model safety.</description></item>
</channel></rss>"""

OSPREY_PAGE = """<!doctype html><html><head><title>Osprey Systems opens a chip design lab in Porto</title></head>
<body><nav><a href="/">Home</a> <a href="/chips">Chips</a> <a href="/subscribe">Subscribe to our newsletter</a></nav>
<header><p>Sign in to read more stories from the Loopback Gazette</p></header>
<article><h1>Osprey Systems opens a chip design lab in Porto</h1>
<p>Osprey Systems said on March 16, 2026 that it has opened a chip design laboratory in Porto, its first
outside North America, with ninety engineers working on inference accelerators for small data centres.</p>
<p>The company expects the first test chips from the lab, code-named Tagus, to come back from the foundry
late next year. Osprey said the accelerators are meant for regional cloud providers that cannot buy the
largest parts.</p>
<p>The Porto site will also host a training programme with two local universities, offering forty
places a year to graduate students in circuit design.</p></article>
<aside><p>Most read: ten gadgets we loved this week</p></aside>
<footer><p>Copyright Loopback Gazette. All rights reserved. Cookie settings.</p></footer></body></html>"""

SLOW_RSS = """<?xml version="1.0" encoding="utf-8"?>
<rss version="2.0"><channel><title>Slow Wire</title><link>{base}/</link>
<item><title>Slow page</title><link>{base}/news/trickle.html</link>
<pubDate>Mon, 16 Mar 2026 09:00:00 GMT</pubDate><description>A page that never finishes.</description></item>
<item><title>Osprey Systems opens a chip design lab in Porto</title><link>{base}/news/osprey.html</link>
<pubDate>Mon, 16 Mar 2026 09:00:00 GMT</pubDate><description>Osprey Systems opened a chip lab.</description></item>
</channel></rss>"""

EMPTY_PAGE = "<!doctype html><html><head><title>Egret</title></head><body><script>load()</script></body></html>"


class ArticleServer(BaseHTTPRequestHandler):
    hits: dict[str, int] = {}

    def log_message(self, *a):
        pass

    def do_GET(self):
        ArticleServer.hits[self.path] = ArticleServer.hits.get(self.path, 0) + 1
        base = f"http://127.0.0.1:{self.server.server_address[1]}"
        if self.path == "/feed.xml":
            body, ctype = ARTICLE_RSS.format(base=base).encode(), "application/rss+xml"
            if not_modified(self, '"f1"'):
                return
        elif self.path == "/slow.xml":                           # its first page trickles
            body, ctype = SLOW_RSS.format(base=base).encode(), "application/rss+xml"
        elif self.path == "/news/trickle.html":
            trickle(self, "text/html", 60)
            return
        elif self.path == "/news/osprey.html":
            body, ctype = OSPREY_PAGE.encode(), "text/html; charset=utf-8"
        elif self.path == "/news/kite.html":                     # past the size cap the test sets
            body, ctype = ("<html><body>" + "<p>padding text</p>" * 4000 + "</body></html>").encode(), "text/html"
        elif self.path == "/news/egret.html":
            body, ctype = EMPTY_PAGE.encode(), "text/html"
        else:
            self.send_response(404)
            self.end_headers()
            return
        self.send_response(200)
        self.send_header("Content-Type", ctype)
        self.send_header("ETag", '"f1"')
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


@pytest.fixture()
def article_server():
    ArticleServer.hits = {}
    yield from _serve(ArticleServer)


def test_fetch_articles_reads_the_linked_pages_keeps_summaries_that_fail_and_retries_them(tmp_path, article_server):
    from ingest.sync import ARTICLE_TRIES

    settings = Settings(store_dir=tmp_path / "store", max_file_bytes=30_000)
    feeds_file = tmp_path / "feeds.yaml"
    feeds_file.write_text(f"feeds:\n  - url: {article_server}/feed.xml\n    fetch_articles: true\n")
    feeds = load_feeds(feeds_file, 1800)
    assert feeds[0].fetch_articles
    r = sync_once(feeds, settings)
    assert r.ingest and r.ingest["new"] == 4 and not r.failed
    assert r.articles == 1
    base = f"{article_server}/news"
    assert set(r.article_failures) == {f"{base}/heron.html", f"{base}/kite.html", f"{base}/egret.html"}
    assert "HTTP 404" in r.article_failures[f"{base}/heron.html"]
    assert "too large" in r.article_failures[f"{base}/kite.html"]
    assert "no article text" in r.article_failures[f"{base}/egret.html"]
    assert "summary kept" in r.summary() and "articles: 1 fetched, 3 kept the summary" in r.summary()
    texts = {row.urls[0].rsplit("/", 1)[1]: row.text for row in NewsStore(settings).story_rows()}
    assert "code-named Tagus" in texts["osprey.html"] and "forty places" in texts["osprey.html"]
    for boilerplate in ("Subscribe", "Sign in", "Most read", "Copyright", "Cookie"):
        assert boilerplate not in texts["osprey.html"]
    assert texts["heron.html"] == "Heron AI delayed Plover-5 to the summer."        # the summary, kept
    # the next syncs read the feed again for the failed pages only; the stored article is not downloaded again
    for _ in range(ARTICLE_TRIES - 1):
        again = sync_once(feeds, settings, force=True)
        assert again.fetched == [f"{article_server}/feed.xml"] and again.articles == 0
        assert set(again.article_failures) == set(r.article_failures)
        assert again.ingest["new"] == 0 and again.ingest["updated"] == 0
    assert ArticleServer.hits["/news/osprey.html"] == 1
    assert ArticleServer.hits["/news/heron.html"] == ARTICLE_TRIES
    # out of tries: the summaries stay for good, and an unchanged feed costs one conditional request again
    last = sync_once(feeds, settings, force=True)
    assert last.not_modified == [f"{article_server}/feed.xml"] and not last.article_failures
    assert ArticleServer.hits["/news/heron.html"] == ARTICLE_TRIES


def test_a_feeds_pages_share_one_deadline_and_the_items_keep_their_summaries(tmp_path, article_server):
    settings = Settings(store_dir=tmp_path / "store", feed_deadline=2.0, feed_timeout=1.0)
    feeds_file = tmp_path / "feeds.yaml"
    feeds_file.write_text(f"- url: {article_server}/slow.xml\n  fetch_articles: true\n")
    t = time.monotonic()
    r = sync_once(load_feeds(feeds_file, 1800), settings)
    assert time.monotonic() - t < 2 * settings.feed_deadline + 30     # the trickle, then no more pages
    assert r.ingest["new"] == 2 and r.articles == 0
    assert "longer than 2s" in r.article_failures[f"{article_server}/news/trickle.html"]
    assert "not fetched" in r.article_failures[f"{article_server}/news/osprey.html"]
    assert "/news/osprey.html" not in ArticleServer.hits


def test_fetch_articles_must_be_a_yes_or_no(tmp_path):
    p = tmp_path / "feeds.yaml"
    p.write_text("feeds:\n  - url: https://example.org/rss\n    fetch_articles: sometimes\n")
    with pytest.raises(FeedsFileError, match="'fetch_articles' must be true or false"):
        load_feeds(p, 1800)
