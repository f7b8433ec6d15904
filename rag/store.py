"""The news store: Chroma for chunk vectors, a SQLite catalogue of stories, a BM25 index beside them.

Why three parts: Chroma holds what is searched (chunk vectors and their metadata, for filtered search);
the catalogue holds the stories and their chunks' text, and what ingest needs to be incremental and
crash-safe (each input story's fingerprint, which merged story it belongs to, and a write-ahead list of
stories being rewritten); BM25 gives the lexical half of hybrid search, which Chroma lacks, and is built
once per change of the store rather than per query.

Chunk text lives in the catalogue, not in Chroma's documents: local Chroma writes every document into a
full-text index nothing here queries (lexical search is our BM25), and that cost ~40% of each upsert --
about a tenth of an ingest with the int8 embedder. The catalogue row is committed with its story, so
text and story never disagree.

Crash safety: before chunks of a story are written to Chroma its id goes into `pending` (committed);
its catalogue row and the removal from `pending` are committed together after Chroma has them. Opening
the store for writing replays `pending`, so a killed ingest leaves no orphan or duplicate chunks and
the next run redoes exactly the unfinished stories.

Concurrency: one writer at a time (an flock, see take_writer_lock), any number of readers. Readers
search the snapshot the last ingest published (rag.lexical), so what they see changes only when an
ingest has finished, never halfway through one.
"""
from __future__ import annotations

import json
import os
import re
import sqlite3
import threading
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import Any, Iterable

import numpy as np

from rag.records import Chunk, Filters, SourceLink, Source, Story, date_to_ts
from rag.settings import Settings

SCHEMA_VERSION = 2     # 2: chunk text in the catalogue's `chunks` table (1: in Chroma's documents)
CURRENT = "CURRENT"    # names the published snapshot readers search; replaced atomically by each ingest
SNAPSHOTS = "snapshots"
WRITER_LOCK = "writer.lock"
SYNC_STATE = "sync.json"   # the feed sync's record (ingest/sync.py): last sync, each feed's failures


class StoreError(Exception):
    """A problem with the store a user can act on; the message says how."""


class EmptyStoreError(StoreError):
    pass


class ModelMismatchError(StoreError):
    pass


def slug(value: str) -> str:
    return re.sub(r"[^a-z0-9]+", "_", value.lower()).strip("_")


@dataclass
class StoryRow:
    id: str
    title: str
    published_at: date
    outlets: list[str]
    urls: list[str]
    tags: list[str]
    text: str
    chunk_count: int

    @property
    def outlet(self) -> str:
        return self.outlets[0] if self.outlets else "unknown"

    @property
    def url(self) -> str:
        return self.urls[0] if self.urls else ""


def story_to_json(story: Story) -> str:
    return json.dumps({"id": story.id, "title": story.title, "text": story.text,
                       "published_at": story.published_at.isoformat(),
                       "sources": [[s.outlet, s.url] for s in story.sources], "tags": story.tags,
                       "origin": story.origin, "author": story.author}, ensure_ascii=False)


def story_from_json(raw: str) -> Story:
    d = json.loads(raw)
    return Story(id=d["id"], title=d["title"], text=d["text"], published_at=date.fromisoformat(d["published_at"]),
                 sources=[SourceLink(o, u) for o, u in d["sources"]], tags=d["tags"], origin=d["origin"],
                 author=d.get("author"))


def story_chunk_metadata(story: Story, chunks: list[Chunk]) -> list[dict[str, Any]]:
    """Each chunk's flat metadata, which Chroma can filter on: a boolean key per outlet and per tag, the
    date as a number. The story's part is built once, not once per chunk."""
    base: dict[str, Any] = {
        "story_id": story.id, "title": story.title, "chunk_index": 0,
        "published_at": story.published_at.isoformat(), "published_ts": date_to_ts(story.published_at),
        "outlet": story.outlet, "url": story.url,
        "outlets_json": json.dumps(story.outlets, ensure_ascii=False),
        "urls_json": json.dumps(story.urls, ensure_ascii=False),
        "tags_json": json.dumps(story.tags, ensure_ascii=False),
    }
    for o in story.outlets:
        base["o_" + slug(o)] = True
    for t in story.tags:
        base["t_" + slug(t)] = True
    return [{**base, "chunk_index": c.index} for c in chunks]


# Keys only the catalogue's copy keeps: Chroma is searched and filtered, never read for display, and every
# string key costs its upsert ~5% (outlets_json holds the outlet; the story's url is its first source).
_CATALOGUE_ONLY = ("outlet", "urls_json")


def chroma_metadata(meta: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in meta.items() if k not in _CATALOGUE_ONLY}


def source_from_hit(chunk_id: str, text: str, meta: dict[str, Any], score: float = 0.0) -> Source:
    return Source(chunk_id=chunk_id, story_id=meta["story_id"], title=meta["title"], text=text,
                  published_at=date.fromisoformat(meta["published_at"]),
                  outlets=json.loads(meta.get("outlets_json", "[]")), urls=json.loads(meta.get("urls_json", "[]")),
                  tags=json.loads(meta.get("tags_json", "[]")), chunk_index=int(meta.get("chunk_index", 0)),
                  score=score)


def dense_sources(hits: list[tuple[str, float]], sources: dict[str, Source]) -> list[Source]:
    """Dense hits in rank order as Sources carrying their cosine (hits without a source are dropped)."""
    out = []
    for cid, score in hits:
        src = sources.get(cid)
        if src is not None:
            src.score = src.dense_score = score
            out.append(src)
    return out


def chroma_where(filters: Filters | None) -> dict | None:
    if not filters or filters.is_empty():
        return None
    clauses: list[dict] = []
    if filters.since:
        clauses.append({"published_ts": {"$gte": date_to_ts(filters.since)}})
    if filters.until:
        clauses.append({"published_ts": {"$lte": date_to_ts(filters.until)}})
    for key, values in (("o_", filters.outlets), ("t_", filters.tags)):
        opts = [{key + slug(v): True} for v in values if slug(v)]
        if len(opts) == 1:
            clauses.append(opts[0])
        elif opts:
            clauses.append({"$or": opts})
    if not clauses:
        return None
    return clauses[0] if len(clauses) == 1 else {"$and": clauses}


# Chroma's local engine runs on tokio worker threads that hand every SQL statement to a SQLite worker
# thread and wait for the answer. Spread over two cores, each hand-off is a cross-core wake-up (an
# inter-processor interrupt, which a VM turns into an exit): perf put 42% of an upsert's time in the kernel,
# mostly in wake-ups and task switches. With those threads on one core the same upsert of 1,592 chunks
# took 0.92 s instead of 1.40 s (taskset -c 0, 4 runs each).
_CHROMA_THREAD_NAMES = ("tokio-rt-worker", "sqlx-sqlite-wor")


def _chroma_engine_threads() -> list[int]:
    out = []
    try:
        tids = os.listdir("/proc/self/task")
    except OSError:          # no /proc: nothing is pinned
        return out
    for tid in tids:
        try:
            with open(f"/proc/self/task/{tid}/comm") as fh:
                if fh.read().startswith(_CHROMA_THREAD_NAMES):
                    out.append(int(tid))
        except OSError:
            continue
    return out


def _set_affinity(tids: list[int], cpus: set[int]) -> None:
    for tid in tids:
        try:
            os.sched_setaffinity(tid, cpus)
        except OSError:      # the thread ended, or the system refuses: the write just runs spread out
            continue


@contextmanager
def chroma_threads_on_one_core():
    """Hold Chroma's engine threads on one core for a bulk write, then give them every core back.

    Only for writes: nothing else runs on those threads while the ingest waits for them, and queries keep
    every core. Threads Chroma starts during the write inherit the pin, so the release covers every
    engine thread alive at the end. A no-op off Linux and on one core."""
    try:
        allowed = os.sched_getaffinity(0)
    except (AttributeError, OSError):
        allowed = set()
    if len(allowed) < 2:
        yield
        return
    _set_affinity(_chroma_engine_threads(), {min(allowed)})
    try:
        yield
    finally:
        _set_affinity(_chroma_engine_threads(), allowed)


def take_writer_lock(store_dir: Path, wait: float) -> int:
    """An exclusive flock on store_dir/writer.lock, held until the store is closed (or the process dies:
    the kernel drops a dead process's flock, so a killed ingest never leaves the store locked).

    One writer at a time: a second ingest's recovery would otherwise delete the first one's in-flight
    chunks as "unfinished". Waits up to `wait` seconds, then refuses with the holder's pid."""
    import fcntl
    import time

    path = store_dir / WRITER_LOCK
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    deadline = time.monotonic() + max(wait, 0.0)
    while True:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            break
        except BlockingIOError:
            if time.monotonic() >= deadline:
                try:
                    holder = os.pread(fd, 32, 0).decode(errors="replace").strip() or "unknown"
                except OSError:
                    holder = "unknown"
                os.close(fd)
                raise StoreError(f"Another ingest (pid {holder}) is writing to the store at {store_dir}; waited "
                                 f"{wait:g}s. Let it finish, or wait longer with NEWSRAG_INGEST_LOCK_WAIT.") from None
            time.sleep(0.2)
    os.ftruncate(fd, 0)
    os.pwrite(fd, str(os.getpid()).encode(), 0)
    return fd


def stored_member_ids(store_dir: Path, origin: str) -> set[str]:
    """Ids of the input stories already stored from one origin (a feed URL), read from the catalogue
    without opening the store: no lock, no Chroma. The feed sync asks before it downloads the articles
    of a feed's items, so an item is fetched once, not at every sync."""
    path = Path(store_dir) / "catalog.sqlite"
    if not path.exists():
        return set()
    try:
        con = sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=30)
        try:
            return {m for (m,) in con.execute("SELECT member_id FROM members WHERE origin=?", (origin,))}
        finally:
            con.close()
    except sqlite3.Error:      # no catalogue yet (or not one of ours): nothing is stored
        return set()


class NewsStore:
    """Open with `NewsStore(settings)` to read; `writable=True` (ingest only) takes the store's writer lock,
    creates the store and replays unfinished writes.

    Readers never write: not the catalogue's schema, not Chroma's files, not the lexical index. What they
    search is the snapshot the last ingest published (see `snapshot_id`)."""

    def __init__(self, settings: Settings, *, writable: bool = False):
        self.settings = settings
        self.dir = Path(settings.store_dir)
        self.writable = writable
        self._lock_fd: int | None = None
        if not writable and not (self.dir / "catalog.sqlite").exists():
            raise EmptyStoreError(
                f"No news store at {self.dir}. Build one first: python -m ingest corpus --store {self.dir}")
        if writable:
            self.dir.mkdir(parents=True, exist_ok=True)
            self._lock_fd = take_writer_lock(self.dir, settings.ingest_lock_wait)
        try:
            self._db = sqlite3.connect(self.dir / "catalog.sqlite", check_same_thread=False, isolation_level=None,
                                       timeout=30)
            self._lock = threading.RLock()
            if writable:
                self._db.execute("PRAGMA journal_mode=WAL")
                self._db.execute("PRAGMA synchronous=NORMAL")
                self._create_schema()
            self._client = None
            self._collection = None
            self._count: tuple[int, int] | None = None    # (generation, chunks in Chroma)
            if writable:
                self._migrate()
        except BaseException:
            self._release_lock()
            raise

    @property
    def remote(self) -> bool:
        """Vectors on a `chroma run` server (NEWSRAG_CHROMA_URL) rather than in store_dir/chroma."""
        return bool(self.settings.chroma_url)

    def _chroma_client(self):
        """Opened on first use: a reader of a local store never opens Chroma's files at all."""
        if self._client is None:
            import chromadb
            from chromadb.config import Settings as ChromaSettings

            chroma_settings = ChromaSettings(anonymized_telemetry=False)
            if self.remote:
                from urllib.parse import urlparse

                url = urlparse(self.settings.chroma_url)
                if url.scheme not in ("http", "https") or not url.hostname:
                    raise StoreError(f"NEWSRAG_CHROMA_URL must look like http://host:port, "
                                     f"not {self.settings.chroma_url!r}")
                try:
                    self._client = chromadb.HttpClient(host=url.hostname, port=url.port or 8000,
                                                       ssl=url.scheme == "https", settings=chroma_settings)
                except Exception as exc:  # noqa: BLE001 - the server is down or is not Chroma
                    raise StoreError(f"Cannot reach the Chroma server at {self.settings.chroma_url} ({exc}). "
                                     f"Start it: chroma run --path DIR --port PORT") from None
            else:
                self._client = chromadb.PersistentClient(path=str(self.dir / "chroma"), settings=chroma_settings)
        return self._client

    # ---- schema and model identity ------------------------------------------------------------
    def _create_schema(self) -> None:
        with self._lock:
            self._db.executescript("""
            CREATE TABLE IF NOT EXISTS meta(key TEXT PRIMARY KEY, value TEXT);
            CREATE TABLE IF NOT EXISTS stories(id TEXT PRIMARY KEY, title TEXT, published_at TEXT,
                published_ts INTEGER, outlets TEXT, urls TEXT, tags TEXT, text TEXT, chunk_count INTEGER,
                text_hash TEXT);
            CREATE TABLE IF NOT EXISTS members(member_id TEXT PRIMARY KEY, story_id TEXT, origin TEXT,
                fingerprint TEXT, story_json TEXT);
            CREATE INDEX IF NOT EXISTS members_story ON members(story_id);
            CREATE INDEX IF NOT EXISTS members_origin ON members(origin);
            CREATE TABLE IF NOT EXISTS pending(story_id TEXT PRIMARY KEY);
            CREATE TABLE IF NOT EXISTS chunks(id TEXT PRIMARY KEY, story_id TEXT, idx INTEGER, text TEXT,
                meta TEXT);
            CREATE INDEX IF NOT EXISTS chunks_story ON chunks(story_id);
            """)

    def _migrate(self) -> None:
        """Schema 1 kept chunk text in Chroma's documents: copy it into the catalogue once."""
        if self.meta("embed_model") is None or int(self.meta("schema") or 1) >= SCHEMA_VERSION:
            return
        offset, rows = 0, []
        while True:
            got = self.collection.get(include=["documents", "metadatas"], limit=5000, offset=offset)
            if not got["ids"]:
                break
            rows += [(i, m["story_id"], int(m.get("chunk_index", 0)), d, json.dumps(m, ensure_ascii=False))
                     for i, d, m in zip(got["ids"], got["documents"], got["metadatas"])]
            offset += len(got["ids"])
        with self._lock:
            self._db.execute("BEGIN")
            self._db.executemany("INSERT OR REPLACE INTO chunks(id, story_id, idx, text, meta) VALUES(?,?,?,?,?)",
                                 rows)
            self._db.execute("INSERT OR REPLACE INTO meta(key, value) VALUES('schema', ?)", (str(SCHEMA_VERSION),))
            self._db.execute("COMMIT")

    def meta(self, key: str) -> str | None:
        row = self._db.execute("SELECT value FROM meta WHERE key=?", (key,)).fetchone()
        return row[0] if row else None

    def set_meta(self, key: str, value: str) -> None:
        with self._lock:
            self._db.execute("INSERT OR REPLACE INTO meta(key, value) VALUES(?, ?)", (key, value))

    def bind_model(self, name: str, dim: int) -> None:
        """Record the embedding model on first use; refuse a different one afterwards."""
        have_name, have_dim = self.meta("embed_model"), self.meta("embed_dim")
        if have_name is None:
            if not self.writable:
                raise EmptyStoreError(f"The store at {self.dir} has never been ingested into. "
                                      f"Build it: python -m ingest corpus --store {self.dir}")
            self.set_meta("embed_model", name)
            self.set_meta("embed_dim", str(dim))
            self.set_meta("schema", str(SCHEMA_VERSION))
            return
        if have_name != name or int(have_dim or 0) != dim:
            raise ModelMismatchError(
                f"The store at {self.dir} was built with the embedding model '{have_name}' (dimension "
                f"{have_dim}), but this run uses '{name}' (dimension {dim}). Either set "
                f"NEWSRAG_EMBED_MODEL back to the store's model, or rebuild the store for the new one: "
                f"delete {self.dir} and run python -m ingest <paths> --store {self.dir}")

    @property
    def collection(self):
        if self._collection is None:
            client = self._chroma_client()
            if self.writable:
                self._collection = client.get_or_create_collection(
                    self.settings.collection, embedding_function=None,
                    metadata={"hnsw:space": "cosine", "embed_model": self.meta("embed_model") or "",
                              "embed_dim": int(self.meta("embed_dim") or 0)})
            else:
                try:
                    self._collection = client.get_collection(self.settings.collection, embedding_function=None)
                except Exception as exc:  # noqa: BLE001 - chromadb raises NotFoundError or ValueError by version
                    where = self.settings.chroma_url or self.dir / "chroma"
                    raise StoreError(f"The vector collection '{self.settings.collection}' is missing from {where}: "
                                     f"re-run the ingest into this store ({type(exc).__name__}).") from None
        return self._collection

    def _legacy_schema(self) -> bool:
        """A schema-1 store a reader opened before any ingest migrated it: chunk text is in Chroma."""
        return self.meta("embed_model") is not None and int(self.meta("schema") or 1) < SCHEMA_VERSION

    # ---- catalogue reads ----------------------------------------------------------------------
    def members(self) -> dict[str, tuple[str, str, str]]:
        """member_id -> (story_id, origin, fingerprint) for every input story ever ingested."""
        return {m: (s, o, f) for m, s, o, f in
                self._db.execute("SELECT member_id, story_id, origin, fingerprint FROM members")}

    def member_stories(self, story_id: str) -> list[Story]:
        rows = self._db.execute("SELECT story_json FROM members WHERE story_id=?", (story_id,)).fetchall()
        return [story_from_json(r[0]) for r in rows]

    def story_rows(self) -> list[StoryRow]:
        rows = self._db.execute("SELECT id, title, published_at, outlets, urls, tags, text, chunk_count "
                                "FROM stories ORDER BY published_ts DESC, id").fetchall()
        return [StoryRow(r[0], r[1], date.fromisoformat(r[2]), json.loads(r[3]), json.loads(r[4]),
                         json.loads(r[5]), r[6], r[7]) for r in rows]

    def story_texts_between(self, since: date, until: date) -> list[tuple[str, date, str]]:
        """(id, published_at, text) of the stories published in [since, until]: what near-duplicate
        matching compares new stories with, without reading the whole catalogue."""
        rows = self._db.execute("SELECT id, published_at, text FROM stories WHERE published_ts BETWEEN ? AND ? "
                                "ORDER BY published_ts DESC, id",
                                (date_to_ts(since), date_to_ts(until))).fetchall()
        return [(r[0], date.fromisoformat(r[1]), r[2]) for r in rows]

    def story_rows_between(self, since: date | None, until: date | None, limit: int = -1) -> list[StoryRow]:
        """Every story published in [since, until] (an open side is unbounded), newest first, at most
        `limit` (-1: all): a brief of a period reads the whole period from the catalogue, not a top-k
        search's view of it."""
        lo = date_to_ts(since) if since else -(2 ** 62)
        hi = date_to_ts(until) if until else 2 ** 62
        rows = self._db.execute("SELECT id, title, published_at, outlets, urls, tags, text, chunk_count FROM stories "
                                "WHERE published_ts BETWEEN ? AND ? ORDER BY published_ts DESC, id LIMIT ?",
                                (lo, hi, int(limit))).fetchall()
        return [StoryRow(r[0], r[1], date.fromisoformat(r[2]), json.loads(r[3]), json.loads(r[4]),
                         json.loads(r[5]), r[6], r[7]) for r in rows]

    def story_rows_by_id(self, story_ids: Iterable[str]) -> list[StoryRow]:
        """The catalogue rows of these stories (unknown ids are left out), newest first."""
        ids, out = list(dict.fromkeys(story_ids)), []
        for lo in range(0, len(ids), 500):
            part = ids[lo:lo + 500]
            out += self._db.execute("SELECT id, title, published_at, outlets, urls, tags, text, chunk_count FROM "
                                    f"stories WHERE id IN ({','.join('?' * len(part))})", part).fetchall()
        rows = [StoryRow(r[0], r[1], date.fromisoformat(r[2]), json.loads(r[3]), json.loads(r[4]),
                         json.loads(r[5]), r[6], r[7]) for r in out]
        return sorted(rows, key=lambda r: (r.published_at, r.id), reverse=True)

    def story_row(self, story_id: str) -> StoryRow | None:
        r = self._db.execute("SELECT id, title, published_at, outlets, urls, tags, text, chunk_count "
                             "FROM stories WHERE id=?", (story_id,)).fetchone()
        return StoryRow(r[0], r[1], date.fromisoformat(r[2]), json.loads(r[3]), json.loads(r[4]),
                        json.loads(r[5]), r[6], r[7]) if r else None

    def story_hashes(self) -> dict[str, tuple[str, int]]:
        return {i: (h, n) for i, h, n in self._db.execute("SELECT id, text_hash, chunk_count FROM stories")}

    def count_stories(self) -> int:
        return self._db.execute("SELECT COUNT(*) FROM stories").fetchone()[0]

    def count_chunks(self) -> int:
        return int(self._db.execute("SELECT COALESCE(SUM(chunk_count), 0) FROM stories").fetchone()[0])

    def generation(self) -> int:
        return int(self.meta("generation") or 0)

    # ---- writes (ingest only) -----------------------------------------------------------------
    def recover(self) -> int:
        """Finish what a killed ingest left, for each story it marked pending: drop chunks its rewrite
        wrote beyond the committed ones; delete it outright when no member is left (a removal killed
        midway); else forget its hashes, so the next read of its sources re-merges and re-embeds it (a
        rewrite killed mid-upsert may have overwritten some of its committed vectors)."""
        pending = [r[0] for r in self._db.execute("SELECT story_id FROM pending")]
        orphans = []
        for sid in pending:
            have = self._db.execute("SELECT chunk_count FROM stories WHERE id=?", (sid,)).fetchone()
            members = self._db.execute("SELECT COUNT(*) FROM members WHERE story_id=?", (sid,)).fetchone()[0]
            if not members:
                orphans.append(sid)
                self._delete_chunks_from(sid, 0)
            else:
                self._delete_chunks_from(sid, have[0] if have else 0)
        if pending:
            with self._lock:
                self._db.execute("BEGIN")
                for table, key in (("stories", "id"), ("chunks", "story_id")):
                    self._db.executemany(f"DELETE FROM {table} WHERE {key}=?", [(s,) for s in orphans])
                self._db.executemany("UPDATE stories SET text_hash='' WHERE id=?", [(s,) for s in pending])
                self._db.executemany("UPDATE members SET fingerprint='' WHERE story_id=?", [(s,) for s in pending])
                self._db.execute("DELETE FROM pending")
                self._bump_generation()
                self._db.execute("COMMIT")
        return len(pending)

    def begin_rewrite(self, story_ids: Iterable[str], removed_members: Iterable[str] = ()) -> None:
        """Mark the stories about to be rewritten pending and drop the members that vanished from their
        sources, in one transaction (see recover)."""
        with self._lock:
            self._db.execute("BEGIN")
            self._db.executemany("INSERT OR IGNORE INTO pending(story_id) VALUES(?)", [(s,) for s in story_ids])
            self._db.executemany("DELETE FROM members WHERE member_id=?", [(m,) for m in removed_members])
            self._bump_generation()
            self._db.execute("COMMIT")

    def _delete_chunks_from(self, story_id: str, start: int) -> None:
        where = {"$and": [{"story_id": story_id}, {"chunk_index": {"$gte": start}}]} if start else {"story_id": story_id}
        self.collection.delete(where=where)

    def mark_pending(self, story_ids: Iterable[str]) -> None:
        with self._lock:
            self._db.execute("BEGIN")
            self._db.executemany("INSERT OR IGNORE INTO pending(story_id) VALUES(?)", [(s,) for s in story_ids])
            self._db.execute("COMMIT")

    def write_chunk_groups(self, groups: list[tuple[Story, list[Chunk], np.ndarray]]) -> dict[str, list[dict]]:
        """Write many stories' chunk vectors in one Chroma upsert (their text is committed with the story).

        Each upsert is a Chroma transaction costing ~30 ms however small it is; one per story made
        writing slower than embedding. Callers mark the stories pending first and commit them after, so
        a crash mid-upsert is recovered like any other (see recover()). Returns each story's chunk
        metadata, for commit_stories to keep in the catalogue without building it again."""
        ids, vecs, metas, by_story = [], [], [], {}
        ids_of = [story.id for story, _, _ in groups]
        old = {}
        for lo in range(0, len(ids_of), 500):
            part = ids_of[lo:lo + 500]
            old.update(self._db.execute(f"SELECT id, chunk_count FROM stories WHERE id IN ({','.join('?' * len(part))})",
                                        part).fetchall())
        for story, chunks, vectors in groups:
            if old.get(story.id, 0) > len(chunks):
                self._delete_chunks_from(story.id, len(chunks))
            ids += [c.id for c in chunks]
            vecs.append(np.asarray(vectors, dtype=np.float32).reshape(len(chunks), -1))
            by_story[story.id] = story_chunk_metadata(story, chunks)
            metas += [chroma_metadata(m) for m in by_story[story.id]]
        if ids:
            # Chroma refuses a write over its max batch (5,461 rows locally): llama-index's Chroma store
            # assumes 41,665 and fails on ~5.5k chunks. A crash between slices is recovered like any other.
            step = self.max_batch()
            allvecs = np.concatenate(vecs)
            with chroma_threads_on_one_core():
                for lo in range(0, len(ids), step):
                    self.collection.upsert(ids=ids[lo:lo + step], embeddings=allvecs[lo:lo + step],
                                           metadatas=metas[lo:lo + step])
        return by_story

    def max_batch(self) -> int:
        try:
            return max(1, int(self._chroma_client().get_max_batch_size()))
        except Exception:  # noqa: BLE001 - a client without the call: Chroma's smallest documented limit
            return 5461

    def update_chunk_metadata(self, story: Story) -> tuple[list[Chunk], list[dict[str, Any]]]:
        """New outlets merged into a story change its metadata, not its text: no re-embedding.

        Chroma's copy is updated here; pass the returned chunks and metadata to the commit_stories that
        follows, which rewrites the catalogue's without building the metadata again."""
        chunks = self.story_chunks(story.id)
        metas = story_chunk_metadata(story, chunks)
        if chunks:
            self.collection.update(ids=[c.id for c in chunks], metadatas=[chroma_metadata(m) for m in metas])
        return chunks, metas

    def story_chunks(self, story_id: str) -> list[Chunk]:
        """A stored story's chunks in order (embed_text and n_tokens are not stored)."""
        rows = self._db.execute("SELECT id, idx, text FROM chunks WHERE story_id=? ORDER BY idx", (story_id,))
        return [Chunk(cid, story_id, idx, text, "", 0) for cid, idx, text in rows.fetchall()]

    def commit_stories(self, stories: list[tuple[Story, int, str]], members: list[tuple[Story, str]],
                       chunks: dict[str, list[Chunk]] | None = None,
                       metas: dict[str, list[dict]] | None = None) -> None:
        """Atomically record merged stories (story, chunk_count, text_hash), their input members, and the
        chunks just written for them (story id -> chunks, and optionally their metadata as
        write_chunk_groups returned it; a story left out keeps its chunk texts and only has their
        metadata refreshed)."""
        chunks = chunks or {}
        metas = metas or {}
        rows = []
        for s, _, _ in stories:
            cs = chunks.get(s.id)
            if cs is None:
                cs = self.story_chunks(s.id)
            ms = metas.get(s.id) or story_chunk_metadata(s, cs)
            rows += [(c.id, s.id, c.index, c.text, json.dumps(m, ensure_ascii=False)) for c, m in zip(cs, ms)]
        with self._lock:
            self._db.execute("BEGIN")
            self._db.executemany("DELETE FROM chunks WHERE story_id=?", [(s.id,) for s, _, _ in stories])
            self._db.executemany("INSERT INTO chunks(id, story_id, idx, text, meta) VALUES(?,?,?,?,?)", rows)
            self._db.executemany(
                "INSERT OR REPLACE INTO stories(id, title, published_at, published_ts, outlets, urls, tags, "
                "text, chunk_count, text_hash) VALUES(?,?,?,?,?,?,?,?,?,?)",
                [(s.id, s.title, s.published_at.isoformat(), date_to_ts(s.published_at), json.dumps(s.outlets),
                  json.dumps(s.urls), json.dumps(s.tags), s.text, n, h) for s, n, h in stories])
            self._db.executemany("DELETE FROM pending WHERE story_id=?", [(s.id,) for s, _, _ in stories])
            self._db.executemany("INSERT OR REPLACE INTO members(member_id, story_id, origin, fingerprint, "
                                 "story_json) VALUES(?,?,?,?,?)",
                                 [(m.id, story_id, m.origin, m.fingerprint, story_to_json(m)) for m, story_id in members])
            self._bump_generation()
            self._db.execute("COMMIT")

    def delete_story(self, story_id: str) -> None:
        """Catalogue first, with a pending mark, so a kill between the two steps is replayed."""
        with self._lock:
            self._db.execute("BEGIN")
            self._db.execute("INSERT OR IGNORE INTO pending(story_id) VALUES(?)", (story_id,))
            self._db.execute("DELETE FROM stories WHERE id=?", (story_id,))
            self._db.execute("DELETE FROM members WHERE story_id=?", (story_id,))
            self._db.execute("DELETE FROM chunks WHERE story_id=?", (story_id,))
            self._bump_generation()
            self._db.execute("COMMIT")
        self._delete_chunks_from(story_id, 0)
        with self._lock:
            self._db.execute("DELETE FROM pending WHERE story_id=?", (story_id,))

    def _bump_generation(self) -> None:
        self._db.execute("INSERT OR REPLACE INTO meta(key, value) VALUES('generation', ?)",
                         (str(self.generation() + 1),))

    # ---- search -------------------------------------------------------------------------------
    def chunk_count(self) -> int:
        """Chroma's own count, remembered per store generation: asking Chroma costs 15-30 ms a query."""
        gen = self.generation()
        if self._count is None or self._count[0] != gen:
            self._count = (gen, self.collection.count())
        return self._count[1]

    def dense_search(self, vector: np.ndarray, n: int, filters: Filters | None = None) -> list[Source]:
        """Dense hits as Sources, read from Chroma (the retriever reads them from its own chunk copy)."""
        hits = self.dense_hits(vector, n, filters)
        return dense_sources(hits, {s.chunk_id: s for s in self.get_sources([c for c, _ in hits])})

    def dense_hits(self, vector: np.ndarray, n: int, filters: Filters | None = None,
                   snapshot: Any = None) -> list[tuple[str, float]]:
        """(chunk id, cosine) only.

        A local store is searched in the published snapshot's vectors (`snapshot`, a rag.lexical index),
        exactly: a reader's Chroma PersistentClient never sees another process's writes, and querying
        its stale HNSW while an ingest deletes rows failed answers with "Error finding id". A Chroma
        server (NEWSRAG_CHROMA_URL) is one process every replica asks, so it is queried directly; its
        hits newer than the reader's snapshot are read from the catalogue. Chroma is asked for ids and
        distances only: documents and metadata with the hits cost it more than the search (8 vs 3 ms)."""
        if snapshot is not None and not self.remote and snapshot.can_search_dense():
            return snapshot.dense_hits(vector, n, filters)
        total = self.chunk_count()
        if total == 0:
            return []
        res = self.collection.query(query_embeddings=[vector.tolist()], n_results=min(n, total),
                                    where=chroma_where(filters), include=["distances"])
        return [(cid, 1.0 - float(dist)) for cid, dist in zip(res["ids"][0], res["distances"][0])]

    def get_sources(self, chunk_ids: list[str]) -> list[Source]:
        if self._legacy_schema():
            got = self.collection.get(ids=list(chunk_ids), include=["documents", "metadatas"])
            by = {i: (d, m) for i, d, m in zip(got["ids"], got["documents"], got["metadatas"])}
            return [source_from_hit(c, *by[c]) for c in chunk_ids if c in by]
        by_id: dict[str, tuple[str, dict]] = {}
        for lo in range(0, len(chunk_ids), 500):
            part = chunk_ids[lo:lo + 500]
            rows = self._db.execute(f"SELECT id, text, meta FROM chunks WHERE id IN ({','.join('?' * len(part))})", part)
            by_id.update({i: (t, json.loads(m)) for i, t, m in rows.fetchall()})
        return [source_from_hit(c, *by_id[c]) for c in chunk_ids if c in by_id]

    def chunk_vectors(self, chunk_ids: list[str]) -> dict[str, np.ndarray]:
        """Stored vectors, so a lexical-only hit gets a dense score without re-embedding its text."""
        out: dict[str, np.ndarray] = {}
        for lo in range(0, len(chunk_ids), 5000):
            got = self.collection.get(ids=chunk_ids[lo:lo + 5000], include=["embeddings"])
            out.update({i: np.asarray(v, dtype=np.float32) for i, v in zip(got["ids"], got["embeddings"])})
        return out

    def chunk_rows(self) -> tuple[list[str], list[str], list[str]]:
        """(ids, texts, metadata as stored JSON) of every committed chunk, in story and chunk order."""
        rows = self._db.execute("SELECT id, text, meta FROM chunks ORDER BY story_id, idx").fetchall()
        return [r[0] for r in rows], [r[1] for r in rows], [r[2] for r in rows]

    def all_chunks(self) -> tuple[list[str], list[str], list[dict[str, Any]]]:
        """(ids, texts, metadatas) of every committed chunk."""
        ids, docs, raw = self.chunk_rows()
        return ids, docs, [json.loads(m) for m in raw]

    def stats(self) -> dict[str, Any]:
        rows = self._db.execute("SELECT outlets, tags, published_at FROM stories").fetchall()
        outlets: dict[str, int] = {}
        tags: dict[str, int] = {}
        newest = oldest = None
        for o, t, p in rows:
            for x in json.loads(o):
                outlets[x] = outlets.get(x, 0) + 1
            for x in json.loads(t):
                tags[x] = tags.get(x, 0) + 1
            newest = max(newest or p, p)
            oldest = min(oldest or p, p)
        return {"stories": len(rows), "chunks": self.count_chunks(), "outlets": outlets, "tags": tags,
                "newest": newest, "oldest": oldest, "embed_model": self.meta("embed_model"), "sync": self.sync_status()}

    def sync_status(self) -> dict[str, Any] | None:
        """The feed sync's last run and its failing feeds (None when feeds were never synced here)."""
        try:
            state = json.loads((self.dir / SYNC_STATE).read_text())
        except (OSError, ValueError):
            return None
        feeds = state.get("feeds") if isinstance(state, dict) else None
        if not isinstance(feeds, dict):
            return None
        failing = {u: str(f.get("last_error", ""))[:300] for u, f in feeds.items()
                   if isinstance(f, dict) and f.get("failures")}
        return {"last_sync": state.get("last_sync"), "feeds": len(feeds), "failing": failing}

    def close(self) -> None:
        self._db.close()
        self._release_lock()

    def _release_lock(self) -> None:
        if self._lock_fd is not None:
            os.close(self._lock_fd)          # closing the descriptor releases the flock
            self._lock_fd = None

    # ---- published snapshots ------------------------------------------------------------------
    def snapshot_id(self) -> str:
        """Name of the snapshot the last finished ingest published (store_dir/CURRENT), which is what
        readers search. A store from before snapshots has none until its next ingest: "legacy-" then
        stands for its old bm25/ folder (or, if that is stale, an index built in the reader's memory)."""
        try:
            name = (self.dir / CURRENT).read_text().strip()
        except FileNotFoundError:
            name = ""
        return name or "legacy-"

    def snapshot_dir(self, name: str) -> Path:
        return self.dir / "bm25" if name.startswith("legacy-") else self.dir / SNAPSHOTS / name

