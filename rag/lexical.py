"""BM25 over the same chunks as the vectors: the lexical half of hybrid retrieval.

Built at the end of an ingest that changed anything and saved beside the store, stamped with the
store's generation; queries load it once per process. A stale or missing index (e.g. after a killed
ingest) is rebuilt on first use instead of silently searching old text.

Beside BM25 the index keeps a read-only copy of every chunk (text and metadata in a small SQLite file,
vectors in a memory-mapped .npy), in BM25's row order. Turning a BM25 hit into a Source, and giving a
lexical-only hit its dense score, then costs a primary-key read and an array row instead of Chroma
gets by id, which cost 15-20 ms each per query on a 12k-chunk store and grow with it. Memory-mapping
keeps opening the index cheap: only the rows a query touches are read.
"""
from __future__ import annotations

import json
import shutil
import sqlite3
import threading
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from rag.records import Filters, Source, date_to_ts
from rag.store import NewsStore, slug, source_from_hit
from rag.text import search_terms

TOKENIZER_VERSION = 2   # bump when lexical_tokens changes: forces a rebuild of saved indexes
INDEX_FORMAT = 4        # bump when the files saved beside BM25 change: forces a rebuild as well (4: terms)


def lexical_tokens(text: str) -> list[str]:
    return search_terms(text)


def _index_dir(store: NewsStore) -> Path:
    return store.dir / "bm25"


def lexical_index_is_fresh(store: NewsStore) -> bool:
    meta = _index_dir(store) / "chunks.json"
    if not meta.exists():
        return False
    try:
        info = json.loads(meta.read_text())
        return (info["generation"] == store.generation() and info.get("tokenizer") == TOKENIZER_VERSION
                and info.get("format") == INDEX_FORMAT)
    except (ValueError, KeyError):
        return False


def _previous_copy(d: Path) -> tuple[dict[str, tuple[str, str, str, int]], np.ndarray | None]:
    """What the last saved index held per chunk id: (text, meta JSON, lexical terms, row), and its vectors.

    Empty when there is no copy or it was saved by another format or tokenizer."""
    try:
        info = json.loads((d / "chunks.json").read_text())
        if info.get("format") != INDEX_FORMAT or info.get("tokenizer") != TOKENIZER_VERSION:
            return {}, None
        db = sqlite3.connect(f"file:{d / 'chunks.sqlite'}?mode=ro", uri=True)
        try:
            rows = db.execute("SELECT row, id, text, meta, terms FROM chunks").fetchall()
        finally:
            db.close()
        vectors = np.load(d / "vectors.npy", mmap_mode="r")
        if vectors.shape[0] != len(rows):
            return {}, None
    except (OSError, sqlite3.Error, ValueError, KeyError, TypeError):
        return {}, None
    return {cid: (text, meta, terms, row) for row, cid, text, meta, terms in rows}, vectors


def build_lexical_index(store: NewsStore, fresh_vectors: dict[str, np.ndarray] | None = None) -> "LexicalIndex":
    """Rebuild BM25 and the chunk copy for the whole store.

    Incremental where it is safe to be: a chunk whose text and metadata (title and date, hence the text
    it was embedded as) equal the last copy's keeps that copy's lexical terms and vector, and
    `fresh_vectors` (what this ingest just embedded) saves reading those back from Chroma. Adding a
    story to the 12k-story digests store rebuilt in 2.8 s when every chunk was re-tokenized and its
    vector re-read from Chroma."""
    import bm25s

    generation = store.generation()   # read first: chunks written after it make the index stale, not wrong
    ids, docs, raw_metas = store.chunk_rows()
    metas = [json.loads(m) for m in raw_metas]
    d = _index_dir(store)
    prev, prev_vectors = _previous_copy(d)
    fresh_vectors = fresh_vectors or {}
    vectors = np.zeros((len(ids), int(store.meta("embed_dim") or 0)), dtype=np.float32)
    tokens: list[list[str]] = []
    from_chroma: list[int] = []
    for row, (cid, text, raw, meta) in enumerate(zip(ids, docs, raw_metas, metas)):
        old = prev.get(cid)
        same = old is not None and old[0] == text and old[1] == raw
        tokens.append(old[2].split(" ") if same else lexical_tokens(f"{meta['title']} {text}") or ["__empty__"])
        v = fresh_vectors.get(cid)
        if v is None and same and prev_vectors is not None and prev_vectors[old[3]].any():
            v = prev_vectors[old[3]]
        if v is None:
            from_chroma.append(row)   # (a chunk Chroma lacks, which a repaired crash can leave, stays zeros)
        else:
            vectors[row] = v
    if from_chroma:
        found = store.chunk_vectors([ids[r] for r in from_chroma])
        for r in from_chroma:
            v = found.get(ids[r])
            if v is not None:
                vectors[r] = v
    bm = bm25s.BM25()
    if tokens:
        bm.index(tokens, show_progress=False)
    tmp = d.with_name("bm25.tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    if tokens:
        bm.save(str(tmp))
    np.save(tmp / "vectors.npy", vectors)
    with sqlite3.connect(tmp / "chunks.sqlite") as db:
        db.execute("CREATE TABLE chunks(row INTEGER PRIMARY KEY, id TEXT UNIQUE, text TEXT, meta TEXT, terms TEXT)")
        db.executemany("INSERT INTO chunks VALUES(?,?,?,?,?)",
                       ((i, c, t, m, " ".join(ts)) for i, (c, t, m, ts) in enumerate(zip(ids, docs, raw_metas, tokens))))
        db.execute("CREATE TABLE info(generation INTEGER)")
        db.execute("INSERT INTO info VALUES(?)", (generation,))
    db.close()
    info = {"generation": generation, "tokenizer": TOKENIZER_VERSION, "format": INDEX_FORMAT, "ids": ids,
            "ts": [int(m["published_ts"]) for m in metas],
            "outlets": [json.loads(m.get("outlets_json", "[]")) for m in metas],
            "tags": [json.loads(m.get("tags_json", "[]")) for m in metas]}
    (tmp / "chunks.json").write_text(json.dumps(info))
    shutil.rmtree(d, ignore_errors=True)
    tmp.rename(d)
    return LexicalIndex(bm if tokens else None, info, d)


class SavedBM25:
    """A saved bm25s index, scored without importing bm25s.

    Importing bm25s imports scipy.sparse, ~0.8 s of a cold start on a loaded 2-core machine, while a
    query only needs the score matrix bm25s precomputed at build time: a query's scores are the sum of
    its terms' columns. Indexes needing more (bm25s' BM25L/BM25+ keep a non-occurrence array) are
    loaded with bm25s itself (see LexicalIndex.load)."""

    def __init__(self, d: Path):
        params = json.loads((d / "params.index.json").read_text())
        self.vocab_dict: dict[str, int] = json.loads((d / "vocab.index.json").read_text(encoding="utf-8"))
        self.scores = {"data": np.load(d / "data.csc.index.npy"), "indices": np.load(d / "indices.csc.index.npy"),
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
    def __init__(self, bm, info: dict, directory: Path | None = None):
        self.bm = bm
        self.ids: list[str] = info["ids"]
        self.generation = info["generation"]
        self.ts = np.asarray(info["ts"], dtype=np.int64)
        self.outlets = info["outlets"]
        self.tags = info["tags"]
        self._mask_cache: dict[tuple, np.ndarray] = {}
        self._lock = threading.Lock()
        self._rows: dict[str, int] | None = None
        self.dir = directory
        self._db: sqlite3.Connection | None = None
        self._vectors: np.ndarray | None = None
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

    @classmethod
    def load(cls, store: NewsStore) -> "LexicalIndex":
        if not lexical_index_is_fresh(store):
            return build_lexical_index(store)
        d = _index_dir(store)
        info = json.loads((d / "chunks.json").read_text())
        bm = None
        if info["ids"]:
            if SavedBM25.can_read(d):
                bm = SavedBM25(d)
            else:
                import bm25s
                bm = bm25s.BM25.load(str(d))
        return cls(bm, info, d)

    # ---- the chunk copy beside BM25 (see the module docstring) ---------------------------------
    def rows(self, chunk_ids: list[str]) -> dict[str, int]:
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
        for want, have in ((filters.outlets, self.outlets), (filters.tags, self.tags)):
            if want:
                ws = {slug(w) for w in want}
                m *= np.fromiter((any(slug(x) in ws for x in h) for h in have), dtype=bool, count=len(have))
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
