"""BM25 over the same chunks as the vectors, published as immutable snapshots readers search.

Each ingest that changed anything builds a new snapshot folder (store_dir/snapshots/<name>) and then
swaps the store's CURRENT pointer to it with an atomic rename: a reader loads whichever snapshot CURRENT
names and keeps it until CURRENT changes, so it never sees a half-built index, and two processes never
build into the same folder (readers never build into the store at all). The previous snapshots stay a
while for readers still loading them, then the next ingest deletes them.

A snapshot holds BM25's score matrix and, in BM25's row order, a read-only copy of every chunk (text
and metadata in a small SQLite file, vectors in a memory-mapped .npy). Turning a BM25 hit into a
Source, giving a lexical-only hit its dense score, and the dense search itself of a local store then
read this copy: Chroma's gets by id cost 15-20 ms each per query on a 12k-chunk store, and a reader's
Chroma client does not see another process's writes (see NewsStore.dense_hits). Memory-mapping keeps
opening a snapshot cheap: only the rows a query touches are read, and every reader process on a
machine shares the pages.
"""
from __future__ import annotations

import json
import logging
import os
import shutil
import sqlite3
import threading
import time
from sys import intern
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from rag.records import Filters, Source, date_to_ts
from rag.store import CURRENT, SNAPSHOTS, NewsStore, slug, source_from_hit
from rag.text import search_terms
from rag.vectorindex import Partition, partition_rows, partition_wanted, top_rows

TOKENIZER_VERSION = 4   # bump when lexical_tokens changes: forces a rebuild of saved indexes
INDEX_FORMAT = 4        # bump when the files saved beside BM25 change: forces a rebuild as well (4: terms)
KEEP_SNAPSHOTS = 3      # the current one and two before it, for readers still loading those

log = logging.getLogger(__name__)


def lexical_tokens(text: str) -> list[str]:
    return search_terms(text)


def _index_dir(store: NewsStore) -> Path:
    """The folder of the snapshot readers search now."""
    return store.snapshot_dir(store.snapshot_id())


def _info(d: Path, any_tokenizer: bool = False) -> dict | None:
    """A snapshot's chunks.json, if this code can read it (`any_tokenizer`: whatever tokenizer made its
    terms, for reusing what does not depend on them -- vectors and the partition)."""
    try:
        info = json.loads((d / "chunks.json").read_text())
    except (OSError, ValueError):
        return None
    if (not any_tokenizer and info.get("tokenizer") != TOKENIZER_VERSION) or info.get("format") != INDEX_FORMAT \
            or "generation" not in info:
        return None
    return info


def lexical_index_is_fresh(store: NewsStore) -> bool:
    """The published snapshot holds the catalogue as it is now (a writer's question: after a killed
    ingest the catalogue is ahead of it, and the next ingest publishes again)."""
    info = _info(_index_dir(store))
    return info is not None and info["generation"] == store.generation()


def _previous_copy(d: Path) -> tuple[dict[str, tuple[int, str | None, int]], np.ndarray | None, dict | None]:
    """What the last saved index held per chunk id -- (hash of its text and meta JSON, lexical terms, row)
    -- its vectors, and its chunks.json.

    A hash, not the text and metadata themselves: at a million chunks those held twice (here and in
    the catalogue's rows) cost the ingest ~1 GB. The terms are None when another tokenizer made them:
    the vectors are still good, and reading a million of them back from Chroma after a tokenizer change
    would cost more than the whole rest of the publish. Empty when there is no copy or it was saved in
    another format."""
    try:
        info = _info(d, any_tokenizer=True)
        if info is None:
            return {}, None, None
        same_terms = info.get("tokenizer") == TOKENIZER_VERSION
        db = sqlite3.connect(f"file:{d / 'chunks.sqlite'}?mode=ro", uri=True)
        try:
            prev = {cid: (hash((text, meta)), terms if same_terms else None, row)
                    for row, cid, text, meta, terms in db.execute("SELECT row, id, text, meta, terms FROM chunks")}
        finally:
            db.close()
        vectors = np.load(d / "vectors.npy", mmap_mode="r")
        if vectors.shape[0] != len(prev) or len(info["ids"]) != len(prev):
            return {}, None, None
    except (OSError, sqlite3.Error, ValueError, KeyError, TypeError):
        return {}, None, None
    return prev, vectors, info


def _build(store: NewsStore, prev_dir: Path | None, fresh_vectors: dict[str, np.ndarray] | None):
    """BM25, its terms and the chunk copy for the whole catalogue, in memory.

    Incremental where it is safe to be: a chunk whose text and metadata (title and date, hence the text
    it was embedded as) equal the last copy's keeps that copy's lexical terms and vector, and
    `fresh_vectors` (what this ingest just embedded) saves reading those back from Chroma. Adding a
    story to the 12k-story digests store rebuilt in 2.8 s when every chunk was re-tokenized and its
    vector re-read from Chroma."""
    import bm25s

    generation = store.generation()   # read first: chunks written after it make the index stale, not wrong
    ids, docs, raw_metas = store.chunk_rows()
    prev, prev_vectors, prev_info = _previous_copy(prev_dir) if prev_dir is not None else ({}, None, None)
    fresh_vectors = fresh_vectors or {}
    vectors = np.zeros((len(ids), int(store.meta("embed_dim") or 0)), dtype=np.float32)
    tokens: list[list[str]] = []
    from_chroma: list[int] = []
    from_prev: list[tuple[int, int]] = []   # (row, the previous copy's row) of unchanged chunks
    reused: set[str] = set()           # chunks whose vector is the previous copy's
    # each chunk's metadata is parsed once and only what the snapshot keeps is held: a million parsed
    # metadata dicts held at once cost ~1.5 GB of the writer's memory
    ts: list[int] = []
    outlets: list[list[str]] = []
    tags: list[list[str]] = []
    for row, (cid, text, raw) in enumerate(zip(ids, docs, raw_metas)):
        meta = json.loads(raw)
        ts.append(int(meta["published_ts"]))
        outlets.append(json.loads(meta.get("outlets_json", "[]")))
        tags.append(json.loads(meta.get("tags_json", "[]")))
        old = prev.get(cid)
        same = old is not None and old[0] == hash((text, raw))
        # one string object per distinct term: a million chunks' ~35 terms each as separate strings
        # held ~2 GB, interned they are pointers into the vocabulary
        terms = old[1] if same else None
        tokens.append([intern(t) for t in (terms.split(" ") if terms is not None else
                                           lexical_tokens(f"{meta['title']} {text}") or ["__empty__"])])
        v = fresh_vectors.get(cid)
        if v is not None:
            vectors[row] = v
        elif same and prev_vectors is not None:
            from_prev.append((row, old[2]))
        else:
            from_chroma.append(row)   # (a chunk Chroma lacks, which a repaired crash can leave, stays zeros)
    # read from the mapped previous vectors in blocks: row by row cost ~25 us a chunk, all at once a
    # second copy of every vector
    for lo in range(0, len(from_prev), 65_536):
        rows, prev_rows = (np.asarray(x, dtype=np.int64) for x in zip(*from_prev[lo:lo + 65_536]))
        got = np.asarray(prev_vectors[prev_rows])
        have = got.any(axis=1)         # a zero row is a chunk that copy lacked: ask Chroma for it
        vectors[rows[have]] = got[have]
        reused.update(ids[r] for r in rows[have].tolist())
        from_chroma += rows[~have].tolist()
    if from_chroma:
        found = store.chunk_vectors([ids[r] for r in from_chroma])
        for r in from_chroma:
            v = found.get(ids[r])
            if v is not None:
                vectors[r] = v
    partition = None
    if partition_wanted(len(ids)):
        prev_part = Partition.open(prev_dir, prev_info["ids"]) if prev_info else None
        partition, order = partition_rows(vectors, ids, prev_part, reused)
        # rows in cluster order: a probed cluster is one contiguous slice of the vectors
        ids, docs, raw_metas, tokens, ts, outlets, tags = (
            [xs[i] for i in order] for xs in (ids, docs, raw_metas, tokens, ts, outlets, tags))
    else:
        order = None
    bm = bm25s.BM25()
    if tokens:
        bm.index(tokens, show_progress=False)
    info = {"generation": generation, "tokenizer": TOKENIZER_VERSION, "format": INDEX_FORMAT, "ids": ids,
            "ts": ts, "outlets": outlets, "tags": tags}
    # the vectors stay in catalogue order with the permutation beside them: reordering here would hold
    # a second copy of them all (1.5 GB at a million chunks); the writer permutes them block by block
    return bm if tokens else None, info, (docs, raw_metas, tokens, partition), (vectors, order)


def _in_order(vectors: np.ndarray, order: np.ndarray | None) -> np.ndarray:
    return vectors if order is None else vectors[order]


def _save_vectors(path: Path, vectors: np.ndarray, order: np.ndarray | None, step: int = 65_536) -> None:
    """vectors[order] written to a .npy file a block at a time, never whole in memory."""
    if order is None:
        np.save(path, vectors)
        return
    out = np.lib.format.open_memmap(path, mode="w+", dtype=vectors.dtype, shape=vectors.shape)
    for lo in range(0, len(order), step):
        out[lo:lo + step] = vectors[order[lo:lo + step]]
    out.flush()
    del out


def _fsync_dir(d: Path) -> None:
    try:
        fd = os.open(d, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def build_lexical_index(store: NewsStore, fresh_vectors: dict[str, np.ndarray] | None = None) -> "LexicalIndex":
    """Build a new snapshot of the whole store and publish it (the writer's call; see the module docstring).

    The folder is written under a temporary name, renamed into store_dir/snapshots, and only then does
    CURRENT, replaced by rename, name it: a reader sees the old snapshot or the new one, never a mix. A
    store from before snapshots is migrated here: its bm25/ folder seeds the new snapshot and is removed."""
    if not store.writable:
        raise RuntimeError("only the ingest (a writable store) publishes snapshots; readers load them")
    prev_dir = _index_dir(store)
    bm, info, (docs, raw_metas, tokens, partition), (vectors, order) = _build(store, prev_dir, fresh_vectors)
    root = store.dir / SNAPSHOTS
    root.mkdir(exist_ok=True)
    name = f"{time.time_ns():020d}-g{info['generation']}"
    tmp = root / f"{name}.tmp"
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir()
    if bm is not None:
        bm.save(str(tmp))
    _save_vectors(tmp / "vectors.npy", vectors, order)
    del vectors
    with sqlite3.connect(tmp / "chunks.sqlite") as db:
        db.execute("CREATE TABLE chunks(row INTEGER PRIMARY KEY, id TEXT UNIQUE, text TEXT, meta TEXT, terms TEXT)")
        db.executemany("INSERT INTO chunks VALUES(?,?,?,?,?)",
                       ((i, c, t, m, " ".join(ts)) for i, (c, t, m, ts)
                        in enumerate(zip(info["ids"], docs, raw_metas, tokens))))
        db.execute("CREATE TABLE info(generation INTEGER)")
        db.execute("INSERT INTO info VALUES(?)", (info["generation"],))
    db.close()
    (tmp / "chunks.json").write_text(json.dumps(info))
    if partition is not None:
        partition.save(tmp)
    for f in tmp.iterdir():      # durable before anything names it
        with open(f, "rb") as fh:
            os.fsync(fh.fileno())
    final = root / name
    tmp.rename(final)
    _fsync_dir(root)
    pointer = store.dir / f"{CURRENT}.tmp"
    with open(pointer, "w") as fh:
        fh.write(name + "\n")
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(pointer, store.dir / CURRENT)
    _fsync_dir(store.dir)
    _prune_snapshots(store, name)
    return LexicalIndex(bm, info, final, snapshot=name)


def _prune_snapshots(store: NewsStore, current: str) -> None:
    """Delete all but the newest KEEP_SNAPSHOTS snapshots, unfinished ones of killed ingests, and the
    pre-snapshot bm25/ folder. A reader that loaded a deleted snapshot keeps working: its files stay
    open (SQLite) or mapped (vectors) until it moves on."""
    root = store.dir / SNAPSHOTS
    names = sorted((p.name for p in root.iterdir() if p.is_dir() and not p.name.endswith(".tmp")), reverse=True)
    keep = set(names[:KEEP_SNAPSHOTS]) | {current}
    for p in root.iterdir():
        if p.name not in keep:
            shutil.rmtree(p, ignore_errors=True)
    for legacy in (store.dir / "bm25", store.dir / "bm25.tmp"):
        shutil.rmtree(legacy, ignore_errors=True)


class SavedBM25:
    """A saved bm25s index, scored without importing bm25s.

    Importing bm25s imports scipy.sparse, ~0.8 s of a cold start on a loaded 2-core machine, while a
    query only needs the score matrix bm25s precomputed at build time: a query's scores are the sum of
    its terms' columns. Indexes needing more (bm25s' BM25L/BM25+ keep a non-occurrence array) are
    loaded with bm25s itself (see LexicalIndex.load)."""

    def __init__(self, d: Path):
        params = json.loads((d / "params.index.json").read_text())
        self.vocab_dict: dict[str, int] = json.loads((d / "vocab.index.json").read_text(encoding="utf-8"))
        # the postings memory-mapped, like the vectors: a query reads only its terms' slices, and the
        # reader processes of a machine share the pages (~0.3 GB at a million chunks, read at every load)
        self.scores = {"data": np.load(d / "data.csc.index.npy", mmap_mode="r"),
                       "indices": np.load(d / "indices.csc.index.npy", mmap_mode="r"),
                       "indptr": np.load(d / "indptr.csc.index.npy"), "num_docs": int(params["num_docs"])}
        self.dtype = np.dtype(params.get("dtype", "float32"))

    @staticmethod
    def can_read(d: Path) -> bool:
        return not (d / "nonoccurrence_array.index.npy").exists() and (d / "params.index.json").exists()

    def get_scores(self, tokens: list[str], weight_mask: np.ndarray | None = None) -> np.ndarray:
        data, indices, indptr = self.scores["data"], self.scores["indices"], self.scores["indptr"]
        scores = np.zeros(self.scores["num_docs"], dtype=self.dtype)
        for t in tokens:
            i = self.vocab_dict.get(t)
            if i is not None:   # a term's postings name each document once, so += is bm25s' np.add.at
                scores[indices[indptr[i]:indptr[i + 1]]] += data[indptr[i]:indptr[i + 1]]
        if weight_mask is not None:
            scores *= weight_mask
        return scores


@dataclass
class LexicalHit:
    chunk_id: str
    score: float


class LexicalIndex:
    """One loaded snapshot: BM25, the chunk copy and its vectors (see the module docstring)."""

    def __init__(self, bm, info: dict, directory: Path | None = None, *, snapshot: str = "",
                 vectors: np.ndarray | None = None):
        self.bm = bm
        self.snapshot = snapshot
        self.ids: list[str] = info["ids"]
        self.generation = info["generation"]
        self.ts = np.asarray(info["ts"], dtype=np.int64)
        self.outlets = info["outlets"]
        self.tags = info["tags"]
        self._mask_cache: dict[tuple, np.ndarray] = {}
        self._by_slug: dict[str, dict[str, np.ndarray]] = {}
        self._lock = threading.Lock()
        self._rows: dict[str, int] | None = None
        self.dir = directory
        self._db: sqlite3.Connection | None = None
        self._vectors: np.ndarray | None = vectors
        self._partition: Partition | None = None
        if directory is not None:
            self._open_copy(directory)

    def _open_copy(self, d: Path) -> None:
        """Open the chunk copy now, and only if it is the one saved with this BM25: an ingest in another
        process may replace the folder at any time, and a copy opened later could be a newer one whose
        rows no longer line up with self.ids. Without a matching copy every lookup goes to Chroma."""
        try:
            db = sqlite3.connect(f"file:{d / 'chunks.sqlite'}?mode=ro", uri=True, check_same_thread=False)
            vectors = np.load(d / "vectors.npy", mmap_mode="r")
            if db.execute("SELECT generation FROM info").fetchone()[0] != self.generation \
                    or vectors.shape[0] != len(self.ids):
                db.close()
                return
        except (OSError, sqlite3.Error, ValueError, TypeError):
            return
        self._db, self._vectors = db, vectors
        self._partition = Partition.open(d, self.ids)

    @classmethod
    def load(cls, store: NewsStore) -> "LexicalIndex":
        """The snapshot CURRENT names, read-only. An ingest may publish a newer one and delete this one
        while it loads: then CURRENT is read again."""
        for _ in range(5):
            name = store.snapshot_id()
            d = store.snapshot_dir(name)
            info = _info(d)
            if info is None and (older := _info(d, any_tokenizer=True)) is not None:
                # indexed by an older tokenizer: its vectors and most of its terms still serve, and
                # rebuilding a million chunks in a reader is not an option; the next ingest republishes
                log.warning("snapshot %s of %s was indexed by tokenizer %s (this code: %s); keyword search "
                            "may miss a few terms until the next ingest", name, store.dir,
                            older.get("tokenizer"), TOKENIZER_VERSION)
                info = older
            if info is None or (name.startswith("legacy-") and info["generation"] != store.generation()):
                if name.startswith("legacy-") or not (store.dir / CURRENT).exists():
                    return cls._in_memory(store, name)
                continue                    # pruned under us: a newer snapshot is published
            try:
                bm = None
                if info["ids"]:
                    if SavedBM25.can_read(d):
                        bm = SavedBM25(d)
                    else:
                        import bm25s
                        bm = bm25s.BM25.load(str(d))
                index = cls(bm, info, d, snapshot=name)
            except (OSError, ValueError) as exc:
                log.info("snapshot %s went away while loading (%s); reading CURRENT again", name, exc)
                continue
            if index._db is not None or not info["ids"]:
                return index
            if name.startswith("legacy-"):
                return cls._in_memory(store, name)
        raise RuntimeError(f"could not load a published snapshot of {store.dir} (CURRENT keeps moving or "
                           f"names a missing folder); re-run the ingest to publish one")

    @classmethod
    def _in_memory(cls, store: NewsStore, name: str) -> "LexicalIndex":
        """A store no ingest has published a snapshot of since snapshots exist (or whose old bm25/ folder
        is stale): build one in this process's memory only, and never into the store -- the next ingest
        publishes the real one. Its chunk text then comes from the catalogue."""
        log.warning("the store at %s has no current snapshot; building the lexical index in memory "
                    "(re-run the ingest once to publish one)", store.dir)
        legacy = store.dir / "bm25"
        bm, info, _, (vectors, order) = _build(store, legacy if legacy.is_dir() else None, None)
        return cls(bm, info, None, snapshot=name, vectors=_in_order(vectors, order))

    # ---- dense search over the snapshot's vectors (a local store; see NewsStore.dense_hits) -----
    def can_search_dense(self) -> bool:
        return self._vectors is not None and self._vectors.shape[0] == len(self.ids)

    def dense_hits(self, vector: np.ndarray, n: int, filters: Filters | None = None) -> list[tuple[str, float]]:
        """Top-n cosine over the snapshot's unit vectors, among the rows a filter allows: exact up to
        rag.vectorindex.IVF_ABOVE chunks (where Chroma's HNSW found 0.993 of the exact top 20 on the
        digests), by the snapshot's partition above it."""
        if not self.ids:
            return []
        q = np.asarray(vector, dtype=np.float32)
        return [(self.ids[r], s) for r, s in top_rows(self._vectors, q, n, self._mask(filters), self._partition)]

    # ---- the chunk copy beside BM25 (see the module docstring) ---------------------------------
    def rows(self, chunk_ids: list[str]) -> dict[str, int]:
        """Rows of these chunk ids, from the chunk copy's id index when there is one: a dict of every id
        would cost each reader ~0.3 s and ~0.1 GB per million chunks for the few a query asks about."""
        if self._db is not None:
            out: dict[str, int] = {}
            for lo in range(0, len(chunk_ids), 500):
                part = list(chunk_ids[lo:lo + 500])
                with self._lock:
                    out.update(self._db.execute(f"SELECT id, row FROM chunks WHERE id IN ({','.join('?' * len(part))})",
                                                part).fetchall())
            return out
        with self._lock:
            if self._rows is None:
                self._rows = {c: i for i, c in enumerate(self.ids)}
        return {c: self._rows[c] for c in chunk_ids if c in self._rows}

    def sources(self, chunk_ids: list[str]) -> dict[str, Source]:
        """Sources of the chunks this index holds (an id it lacks is simply absent from the result)."""
        if self._db is None or not chunk_ids:
            return {}
        with self._lock:
            got = self._db.execute(f"SELECT id, text, meta FROM chunks WHERE id IN ({','.join('?' * len(chunk_ids))})",
                                   list(chunk_ids)).fetchall()
        return {c: source_from_hit(c, t, json.loads(m)) for c, t, m in got}

    def vectors(self, chunk_ids: list[str]) -> dict[str, np.ndarray]:
        if self._vectors is None:
            return {}
        return {c: np.asarray(self._vectors[r], dtype=np.float32) for c, r in self.rows(chunk_ids).items()}

    def _rows_by_slug(self, field: str) -> dict[str, np.ndarray]:
        """The rows of each outlet (or tag), by its slug: built once per snapshot on the first filter by
        it, so a filter costs the rows it matches. Testing every row's names per new filter cost ~1 s
        a query at a million chunks."""
        with self._lock:
            got = self._by_slug.get(field)
        if got is None:
            names: dict[str, str] = {}
            rows: dict[str, list[int]] = {}
            for r, have in enumerate(getattr(self, field)):
                for x in have:
                    key = names.get(x)
                    if key is None:
                        key = names[x] = slug(x)
                    rows.setdefault(key, []).append(r)
            got = {k: np.unique(np.asarray(v, dtype=np.int64)) for k, v in rows.items()}
            with self._lock:
                self._by_slug[field] = got
        return got

    def _mask(self, filters: Filters | None) -> np.ndarray | None:
        if not filters or filters.is_empty():
            return None
        key = (filters.since, filters.until, tuple(filters.outlets), tuple(filters.tags))
        with self._lock:
            if key in self._mask_cache:
                return self._mask_cache[key]
        m = np.ones(len(self.ids), dtype=np.float32)
        if filters.since:
            m *= self.ts >= date_to_ts(filters.since)
        if filters.until:
            m *= self.ts <= date_to_ts(filters.until)
        for field, want in (("outlets", filters.outlets), ("tags", filters.tags)):
            if want:
                by = self._rows_by_slug(field)
                hit = np.zeros(len(self.ids), dtype=np.float32)
                for w in {slug(w) for w in want}:
                    if w in by:
                        hit[by[w]] = 1.0
                m *= hit
        with self._lock:
            if len(self._mask_cache) > 64:
                self._mask_cache.clear()
            self._mask_cache[key] = m
        return m

    def search(self, query: str, n: int, filters: Filters | None = None) -> list[LexicalHit]:
        if self.bm is None:
            return []
        toks = [t for t in lexical_tokens(query) if t in self.bm.vocab_dict]
        if not toks:
            return []
        scores = self.bm.get_scores(toks, weight_mask=self._mask(filters))
        n = min(n, len(scores))
        top = np.argpartition(-scores, n - 1)[:n]
        top = top[np.argsort(-scores[top])]
        return [LexicalHit(self.ids[i], float(scores[i])) for i in top if scores[i] > 0]
