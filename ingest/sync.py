"""Scheduled feed sync: `python -m ingest --feeds feeds.yaml --every 30m`, or in the app with --sync-feeds.

A feeds file lists the feeds to follow (YAML; `url` required, `outlet`, `tags` and `interval` optional):

    feeds:
      - url: https://example.org/ai/rss.xml
        outlet: Example AI Desk      # replaces the feed's own channel title as the stories' outlet
        tags: [industry]             # added to every story of this feed
        interval: 30m                # how often to read it (default: --every)
        fetch_articles: true         # items carry only a summary: read the page each item links to

Each sync downloads the feeds that are due, all at once, each with the overall deadline and size cap
of NEWSRAG_FEED_DEADLINE / NEWSRAG_MAX_FILE_BYTES, and asks conditionally (ETag / Last-Modified): an
unchanged feed costs one request and a 304. A failing feed is recorded with its reason and retried with
exponential backoff; it never holds up the others. Stories of every feed that changed go into one
ingest (the store's single writer, see rag.store), with keep-missing semantics: an item that rolled off
a feed stays in the store.

With `fetch_articles`, each new item's linked page is downloaded (one after another, all of a feed's
pages within one more NEWSRAG_FEED_DEADLINE, each page under the size cap) and its article extracted with
trafilatura; the article replaces the summary when it says more. An item whose page fails keeps its
summary, the reason is reported, and the page is tried again at the next syncs (ARTICLE_TRIES in all).
An item already stored is not downloaded again: it is left out of the ingest, which keeps it as stored.

Scheduling is a plain loop rather than APScheduler or cron: one job whose only state -- validators,
failures, next attempt per feed -- must live in the store directory anyway (the app's freshness line
reads it from there, in whichever process or replica serves it), so a scheduler library would add a
dependency and a second copy of that state for nothing. Cron works too: run the command without
--every (a sync reads only the feeds that are due).
"""
from __future__ import annotations

import importlib.util
import json
import logging
import os
import re
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Callable

import httpx

from ingest.loaders import LoadError, LoadResult, Skipped, fetch_url, http_timeout, parse_document
from ingest.loaders.base import clean_tags, squash, tidy_paragraphs
from ingest.loaders.html import article_text
from rag.records import SourceLink
from rag.settings import Settings
from rag.store import SYNC_STATE, stored_member_ids

log = logging.getLogger(__name__)

MAX_FEEDS = 500
ARTICLE_TRIES = 3            # syncs that try a failing article page before its summary is kept for good
RETRY_BASE = 60.0            # seconds before the first retry of a failing feed; doubles per failure
_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([smhd]?)\s*$", re.I)
_UNIT = {"": 1, "s": 1, "m": 60, "h": 3600, "d": 86400}


class FeedsFileError(ValueError):
    """A feeds file that cannot be used; the message names the entry and the problem."""


def parse_duration(value: Any) -> float:
    """"30m", "90s", "2h", "1d" or a number of seconds, at least 10 seconds."""
    m = _DURATION.match(str(value))
    if not m:
        raise ValueError(f"not a duration: {value!r} (write e.g. 30m, 90s, 2h)")
    seconds = float(m[1]) * _UNIT[m[2].lower()]
    if seconds < 10:
        raise ValueError(f"interval {value!r} is shorter than 10 seconds")
    return seconds


@dataclass
class FeedSpec:
    url: str
    outlet: str = ""
    tags: list[str] = field(default_factory=list)
    interval: float = 1800.0
    fetch_articles: bool = False


def load_feeds(path: Path, default_interval: float) -> list[FeedSpec]:
    import yaml

    try:
        raw = yaml.safe_load(Path(path).read_text(encoding="utf-8"))
    except OSError as exc:
        raise FeedsFileError(f"cannot read the feeds file {path}: {exc.strerror or exc}") from None
    except yaml.YAMLError as exc:
        raise FeedsFileError(f"the feeds file {path} is not valid YAML: {exc}") from None
    entries = raw.get("feeds") if isinstance(raw, dict) else raw
    if not isinstance(entries, list) or not entries:
        raise FeedsFileError(f"the feeds file {path} must hold a list of feeds under 'feeds:'")
    if len(entries) > MAX_FEEDS:
        raise FeedsFileError(f"the feeds file {path} lists {len(entries)} feeds; at most {MAX_FEEDS}")
    out, seen = [], set()
    for i, e in enumerate(entries, start=1):
        if isinstance(e, str):
            e = {"url": e}
        if not isinstance(e, dict):
            raise FeedsFileError(f"feed {i} in {path}: expected a mapping with a url, got {type(e).__name__}")
        url = str(e.get("url") or "").strip()
        if not re.match(r"^https?://[^\s/]+", url) or len(url) > 2000:
            raise FeedsFileError(f"feed {i} in {path}: 'url' must be an http(s) URL, got {url[:100]!r}")
        if url in seen:
            raise FeedsFileError(f"feed {i} in {path}: {url} is listed twice")
        seen.add(url)
        unknown = set(e) - {"url", "outlet", "tags", "interval", "fetch_articles"}
        if unknown:
            raise FeedsFileError(f"feed {i} in {path}: unknown key(s) {', '.join(sorted(unknown))} "
                                 f"(allowed: url, outlet, tags, interval, fetch_articles)")
        wants_articles = e.get("fetch_articles", False)
        if not isinstance(wants_articles, bool):
            raise FeedsFileError(f"feed {i} in {path}: 'fetch_articles' must be true or false, "
                                 f"got {str(wants_articles)[:40]!r}")
        if wants_articles and importlib.util.find_spec("trafilatura") is None:
            raise FeedsFileError(f"feed {i} in {path}: fetch_articles needs trafilatura, which is not "
                                 f"installed: pip install '.[feeds]'")
        try:
            interval = parse_duration(e["interval"]) if e.get("interval") is not None else default_interval
        except ValueError as exc:
            raise FeedsFileError(f"feed {i} in {path}: {exc}") from None
        out.append(FeedSpec(url=url, outlet=squash(str(e.get("outlet") or ""))[:200],
                            tags=clean_tags(e.get("tags"))[:20], interval=interval,
                            fetch_articles=wants_articles))
    return out


# ---- the state file in the store directory (read by the app's freshness line) -------------------

def read_state(store_dir: Path) -> dict:
    try:
        state = json.loads((Path(store_dir) / SYNC_STATE).read_text())
        return state if isinstance(state, dict) else {}
    except (OSError, ValueError):
        return {}


def write_state(store_dir: Path, state: dict) -> None:
    """Replaced by rename: a reader sees the old state or the new one."""
    Path(store_dir).mkdir(parents=True, exist_ok=True)
    tmp = Path(store_dir) / f"{SYNC_STATE}.{os.getpid()}.tmp"
    tmp.write_text(json.dumps(state, indent=1, sort_keys=True))
    os.replace(tmp, Path(store_dir) / SYNC_STATE)


def _iso(ts: float) -> str:
    return datetime.fromtimestamp(ts, timezone.utc).isoformat(timespec="seconds")


@dataclass
class SyncReport:
    fetched: list[str] = field(default_factory=list)        # downloaded and parsed
    not_modified: list[str] = field(default_factory=list)   # 304: nothing to do
    failed: dict[str, str] = field(default_factory=dict)    # url -> reason
    not_due: int = 0
    articles: int = 0                                        # linked articles that replaced a summary
    article_failures: dict[str, str] = field(default_factory=dict)   # page url -> why the summary stayed
    ingest: dict | None = None                               # the IngestReport, when anything was ingested
    seconds: float = 0.0

    def summary(self) -> str:
        parts = [f"sync: {len(self.fetched)} changed, {len(self.not_modified)} unchanged, "
                 f"{len(self.failed)} failing, {self.not_due} not due ({self.seconds:.1f}s)"]
        if self.ingest:
            r = self.ingest
            parts.append(f"  new: {r['new']}   updated: {r['updated']}   merged duplicates: {r['merged_duplicates']}"
                         f"   stories in store: {r['stories_total']}" + (f"   error: {r['error']}" if r["error"] else ""))
        if self.articles or self.article_failures:
            parts.append(f"  articles: {self.articles} fetched, {len(self.article_failures)} kept the summary")
        for url, reason in self.failed.items():
            parts.append(f"  failing: {url}: {reason}")
        for url, reason in list(self.article_failures.items())[:20]:
            parts.append(f"  summary kept: {url}: {reason}")
        return "\n".join(parts)


def _apply_spec(stories, spec: FeedSpec) -> None:
    for s in stories:
        if spec.outlet:
            s.sources = [SourceLink(spec.outlet, x.url) for x in s.sources]
        if spec.tags:
            s.tags = clean_tags(list(s.tags) + spec.tags)


def fetch_articles(stories, spec: FeedSpec, client: httpx.Client, settings: Settings,
                   tried: dict[str, int]) -> tuple[list, int, dict[str, str], dict[str, int]]:
    """Replace the summaries of a feed's new items by the articles they link to.

    Returns (stories to ingest, articles fetched, {page: reason the summary stayed}, {page: tries so far}
    for the pages to try again). Items already stored are left out -- the ingest keeps what it stored
    -- unless their page failed before and has tries left; all pages of the feed share one deadline."""
    stored = stored_member_ids(settings.store_dir, spec.url)
    deadline = time.monotonic() + settings.feed_deadline
    keep, fetched, failures, retry = [], 0, {}, {}
    for s in stories:
        link = s.url
        if s.id in stored and link not in tried:
            continue
        keep.append(s)
        if not link:
            continue
        left = deadline - time.monotonic()
        try:
            if left <= 0:
                raise LoadError(f"not fetched: the feed's pages took their {settings.feed_deadline:g}s "
                                "(NEWSRAG_FEED_DEADLINE)")
            got = fetch_url(client, link, settings, deadline_at=deadline)
            if got.extension != ".html":
                raise LoadError(f"the linked page is not HTML ({got.extension or 'unknown type'})")
            article = tidy_paragraphs(article_text(got.text, link))
            if len(article) <= len(s.text):
                raise LoadError(f"the extracted article ({len(article)} characters) says no more than the "
                                f"summary ({len(s.text)})")
        except LoadError as exc:
            failures[link] = exc.reason
            if tried.get(link, 0) + 1 < ARTICLE_TRIES:
                retry[link] = tried.get(link, 0) + 1
            s.notes.append(f"summary kept: {exc.reason}")
            continue
        s.text = article
        s.notes.append("article text read from the linked page")
        fetched += 1
    return keep, fetched, failures, retry


def sync_once(feeds: list[FeedSpec], settings: Settings, *, force: bool = False,
              now: Callable[[], float] = time.time) -> SyncReport:
    """Read the feeds that are due (all with `force`), ingest what changed, record the outcome."""
    from ingest.pipeline import ingest_loaded

    t0 = time.perf_counter()
    state = read_state(settings.store_dir)
    per_feed: dict[str, dict] = state.setdefault("feeds", {})
    start = now()
    due = [f for f in feeds if force or per_feed.get(f.url, {}).get("next_try", 0) <= start]
    report = SyncReport(not_due=len(feeds) - len(due))

    def fetch(spec: FeedSpec):
        have = per_feed.get(spec.url, {})
        # pages to try again: the feed is read even if unchanged
        retry = (have.get("article_retry") or {}) if spec.fetch_articles else {}
        try:
            got = fetch_url(client, spec.url, settings, etag="" if retry else have.get("etag", ""),
                            last_modified="" if retry else have.get("last_modified", ""))
            if got.not_modified:
                return spec, got, None, None
            stories = parse_document(got.text, spec.url, got.extension)
            articles = None
            if spec.fetch_articles:
                kept, *articles = fetch_articles(stories, spec, client, settings, retry)
                stories[:] = kept
            return spec, got, stories, articles
        except LoadError as exc:
            return spec, None, exc.reason, None
        except Exception as exc:  # noqa: BLE001 - a parser bug costs this feed, not the sync
            return spec, None, f"could not parse ({type(exc).__name__}: {exc})", None

    loaded = LoadResult()
    validators: dict[str, tuple[str, str]] = {}
    if due:
        with httpx.Client(timeout=http_timeout(settings), follow_redirects=True,
                          headers={"User-Agent": "newsrag-sync/1.0"}) as client, \
                ThreadPoolExecutor(max_workers=min(8, len(due)), thread_name_prefix="newsrag-feed") as pool:
            results = list(pool.map(fetch, due))
    else:
        results = []
    for spec, got, outcome, articles in results:
        entry = per_feed.setdefault(spec.url, {})
        entry["last_try"] = _iso(start)
        if isinstance(outcome, str):
            failures = int(entry.get("failures", 0)) + 1
            entry.update(failures=failures, last_error=outcome,
                         next_try=start + min(RETRY_BASE * 2 ** (failures - 1), 4 * spec.interval))
            report.failed[spec.url] = outcome
            continue
        entry.update(failures=0, last_error="", next_try=start + spec.interval, last_ok=_iso(start))
        if outcome is None:
            report.not_modified.append(spec.url)
            entry.update(etag=got.etag, last_modified=got.last_modified)
            continue
        if articles is not None:
            n, failures, retry = articles
            report.articles += n
            report.article_failures.update(failures)
            entry["article_retry"] = retry
        elif not spec.fetch_articles:
            entry.pop("article_retry", None)
        _apply_spec(outcome, spec)
        loaded.stories.extend(outcome)
        loaded.skipped.extend(Skipped(spec.url, reason) for reason in outcome.skipped)
        loaded.sources_seen.append(spec.url)
        validators[spec.url] = (got.etag, got.last_modified)
        report.fetched.append(spec.url)
    if loaded.stories:
        ing = ingest_loaded(loaded, list(validators), settings, keep_missing=True)
        report.ingest = ing.to_dict()
        if ing.error:      # nothing of these feeds is stored: forget their validators, read them again soon
            for url in validators:
                per_feed[url].update(failures=int(per_feed[url].get("failures", 0)) + 1,
                                     last_error=f"ingest failed: {ing.error}", next_try=start + RETRY_BASE)
                report.failed[url] = f"ingest failed: {ing.error}"
            validators = {}
    for url, (etag, modified) in validators.items():
        per_feed[url].update(etag=etag, last_modified=modified)
    known = {f.url for f in feeds}
    state["feeds"] = {u: v for u, v in per_feed.items() if u in known}
    state["last_sync"] = _iso(start)
    report.seconds = round(time.perf_counter() - t0, 3)
    write_state(settings.store_dir, state)
    return report


def run_every(feeds_path: Path, settings: Settings, every: float, *, stop: threading.Event | None = None,
              on_report: Callable[[SyncReport], None] | None = None) -> None:
    """Sync, then sleep until the next feed is due (at most `every`), until `stop` is set. The feeds file
    is read again each round, so editing it needs no restart; a broken edit is reported and the last
    good list kept."""
    stop = stop or threading.Event()
    feeds = load_feeds(feeds_path, every)
    while not stop.is_set():
        try:
            feeds = load_feeds(feeds_path, every)
        except FeedsFileError as exc:
            log.error("%s (keeping the previous list of %d feeds)", exc, len(feeds))
        try:
            report = sync_once(feeds, settings)
            if on_report:
                on_report(report)
        except Exception:  # noqa: BLE001 - a failed round must not end the schedule
            log.exception("feed sync failed; trying again next round")
        per_feed = read_state(settings.store_dir).get("feeds", {})
        next_due = min((per_feed.get(f.url, {}).get("next_try", 0) for f in feeds), default=time.time() + every)
        stop.wait(max(1.0, min(every, next_due - time.time())))


def start_background_sync(feeds_path: Path, settings: Settings, every: float,
                          stop: threading.Event | None = None) -> threading.Thread:
    """The app's --sync-feeds: the schedule in a daemon thread of the serving process (until `stop` is
    set). Checks the feeds file first, so a broken one stops the app's start with its message instead of
    failing silently."""
    load_feeds(feeds_path, every)
    t = threading.Thread(target=run_every, args=(feeds_path, settings, every),
                         kwargs={"on_report": lambda r: log.info("%s", r.summary()), "stop": stop},
                         name="newsrag-feed-sync", daemon=True)
    t.start()
    return t
