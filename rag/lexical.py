"""BM25 over the same chunks as the vectors: the lexical half of hybrid retrieval.

Built at the end of an ingest that changed anything and saved beside the store, stamped with the
store's generation; queries load it once per process. A stale or missing index (e.g. after a killed
ingest) is rebuilt on first use instead of silently searching old text.
"""
from __future__ import annotations

import json
import threading
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from rag.records import Filters, date_to_ts
from rag.store import NewsStore, slug
from rag.text import search_terms

TOKENIZER_VERSION = 2   # bump when lexical_tokens changes: forces a rebuild of saved indexes


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
        return info["generation"] == store.generation() and info.get("tokenizer") == TOKENIZER_VERSION
    except (ValueError, KeyError):
        return False


def build_lexical_index(store: NewsStore) -> "LexicalIndex":
    import bm25s

    ids, docs, metas = store.all_chunks()
    titled = [f"{m['title']} {d}" for d, m in zip(docs, metas)]
    tokens = [lexical_tokens(t) or ["__empty__"] for t in titled]
    bm = bm25s.BM25()
    if tokens:
        bm.index(tokens, show_progress=False)
    d = _index_dir(store)
    tmp = d.with_name("bm25.tmp")
    import shutil
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    if tokens:
        bm.save(str(tmp))
    info = {"generation": store.generation(), "tokenizer": TOKENIZER_VERSION, "ids": ids,
            "ts": [int(m["published_ts"]) for m in metas],
            "outlets": [json.loads(m.get("outlets_json", "[]")) for m in metas],
            "tags": [json.loads(m.get("tags_json", "[]")) for m in metas]}
    (tmp / "chunks.json").write_text(json.dumps(info))
    shutil.rmtree(d, ignore_errors=True)
    tmp.rename(d)
    return LexicalIndex(bm if tokens else None, info)


@dataclass
class LexicalHit:
    chunk_id: str
    score: float


class LexicalIndex:
    def __init__(self, bm, info: dict):
        self.bm = bm
        self.ids: list[str] = info["ids"]
        self.generation = info["generation"]
        self.ts = np.asarray(info["ts"], dtype=np.int64)
        self.outlets = info["outlets"]
        self.tags = info["tags"]
        self._mask_cache: dict[tuple, np.ndarray] = {}
        self._lock = threading.Lock()

    @classmethod
    def load(cls, store: NewsStore) -> "LexicalIndex":
        import bm25s

        if not lexical_index_is_fresh(store):
            return build_lexical_index(store)
        d = _index_dir(store)
        info = json.loads((d / "chunks.json").read_text())
        bm = bm25s.BM25.load(str(d)) if info["ids"] else None
        return cls(bm, info)

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
