"""Export the local sentence-transformers model to ONNX (fp32 and dynamic int8), once, into a disk cache.

Nothing here downloads anything: the model is read from its folder with `local_files_only=True`, exported
with `torch.onnx.export` (the TorchScript exporter: the dynamo one needs `onnxscript`, and optimum pins an
older transformers), checked against torch on inputs of shapes it was not traced with, and quantized with
`onnxruntime.quantization.quantize_dynamic` (needs the `onnx` package).

The cache lives in `<cache root>/<model identity>-<hash of the model's files>/` (default root
`$XDG_CACHE_HOME/newsrag/onnx`, i.e. `~/.cache/newsrag/onnx`) and holds `model_fp32.onnx`,
`model_int8.onnx` and `manifest.json`. A build happens in a temporary folder beside it that is renamed into
place only once complete, so a reader never sees a half-written model; the manifest (written last, with a
sha256 per file) is what makes a folder valid, and a folder that fails that check is moved aside and rebuilt.
A lock file keeps two processes from exporting the same model at once (the loser reuses the winner's).
"""
from __future__ import annotations

import contextlib
import hashlib
import json
import os
import shutil
import tempfile
import time
import uuid
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np

MANIFEST = "manifest.json"
FORMAT_VERSION = 1        # bump when the graph's inputs/outputs or the build recipe (e.g. QUANTIZATION) change
FILES = {"fp32": "model_fp32.onnx", "int8": "model_int8.onnx"}
INPUT_NAMES = ("input_ids", "attention_mask", "token_type_ids")
OUTPUT_NAME = "token_embeddings"
OPSET = 17
# Dynamic int8 with one scale per output channel of each weight matrix. Per-tensor scales (the default)
# cost too much accuracy for MiniLM (mean cosine to fp32 0.955, min 0.927 on the corpus chunks); per-channel
# gives 0.993 / 0.988 at the same speed. Signed weights: unsigned ones were ~20% slower on AVX2 for no gain
# worth having (0.995), and reduce_range lowers accuracy without being faster here.
QUANTIZATION = {"weight_type": "QInt8", "per_channel": True, "reduce_range": False}
# the files that decide what the exported graph computes; README/data_config/.gitattributes do not
_SOURCE_SUFFIXES = (".json", ".safetensors", ".bin", ".txt", ".model")
_SKIP_SOURCES = {"data_config.json", "README.md", ".gitattributes"}

# probes for verifying an export: several lengths and a padded batch, none of them the traced shape
_PROBES = [
    "OpenAI released a new model.",
    "Nvidia's H100 chips remain scarce as cloud providers race to add capacity for training large "
    "language models, while regulators in the EU and US debate export controls and safety rules.",
    "x",
    "DeepMind's AlphaFold predicted the structure of nearly every known protein, and researchers say the "
    "database it produced has already changed how drug discovery and biology labs plan their experiments; "
    "critics note that predicted structures still need checking in the lab before anyone relies on them.",
]


class OnnxExportError(RuntimeError):
    """The model could not be exported, or its export does not reproduce torch's output."""


@dataclass(frozen=True)
class PoolingConfig:
    """What the sentence-transformers modules after the transformer do, read from the model folder."""
    mode: str                 # "mean" | "cls" | "max"
    normalize: bool
    max_seq_length: int
    do_lower_case: bool


def read_pooling_config(model_dir: str | Path) -> PoolingConfig:
    """Read modules.json and its Pooling config; refuse module stacks we do not reproduce (e.g. Dense)."""
    d = Path(model_dir)
    modules_file = d / "modules.json"
    if not modules_file.exists():
        raise OnnxExportError(f"{d} has no modules.json: not a sentence-transformers model folder")
    modules = json.loads(modules_file.read_text())
    kinds = [m.get("type", "").rsplit(".", 1)[-1] for m in modules]
    if not kinds or kinds[0] != "Transformer" or not set(kinds[1:]) <= {"Pooling", "Normalize"} \
            or "Pooling" not in kinds:
        raise OnnxExportError(f"{d}: module stack {kinds} is not Transformer+Pooling[+Normalize]; "
                              "use the torch backend for this model")
    pool = next(m for m in modules if m.get("type", "").endswith("Pooling"))
    cfg = json.loads((d / pool.get("path", "") / "config.json").read_text())
    modes = [name for key, name in (("pooling_mode_mean_tokens", "mean"), ("pooling_mode_cls_token", "cls"),
                                    ("pooling_mode_max_tokens", "max")) if cfg.get(key)]
    others = [k for k, v in cfg.items() if k.startswith("pooling_mode_") and v and k not in (
        "pooling_mode_mean_tokens", "pooling_mode_cls_token", "pooling_mode_max_tokens")]
    if len(modes) != 1 or others:
        raise OnnxExportError(f"{d}: pooling {cfg} is not exactly one of mean/cls/max; use the torch backend")
    sb = {}
    if (d / "sentence_bert_config.json").exists():
        sb = json.loads((d / "sentence_bert_config.json").read_text())
    max_len = int(sb.get("max_seq_length") or 0)
    try:
        max_pos = int(json.loads((d / "config.json").read_text()).get("max_position_embeddings") or 0)
    except (OSError, ValueError):
        max_pos = 0
    if not max_len:
        max_len = max_pos or 512
    elif max_pos:
        max_len = min(max_len, max_pos)
    return PoolingConfig(mode=modes[0], normalize="Normalize" in kinds, max_seq_length=max_len,
                         do_lower_case=bool(sb.get("do_lower_case", False)))


def pool(token_embeddings: np.ndarray, attention_mask: np.ndarray, mode: str) -> np.ndarray:
    """sentence-transformers' Pooling on numpy arrays: padding positions never count."""
    if mode == "cls":
        return token_embeddings[:, 0].astype(np.float32, copy=False)
    mask = attention_mask[..., None].astype(np.float32)
    if mode == "max":
        return np.where(mask > 0, token_embeddings, -1e9).max(axis=1).astype(np.float32, copy=False)
    summed = (token_embeddings * mask).sum(axis=1)
    return (summed / np.clip(mask.sum(axis=1), 1e-9, None)).astype(np.float32, copy=False)


def l2_normalize(v: np.ndarray) -> np.ndarray:
    return (v / np.clip(np.linalg.norm(v, axis=1, keepdims=True), 1e-12, None)).astype(np.float32, copy=False)


# ---------------------------------------------------------------------------------------------------
# cache location and identity

def default_cache_root() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "newsrag" / "onnx"


def _source_files(model_dir: Path) -> list[Path]:
    return sorted(p for p in model_dir.rglob("*") if p.is_file() and p.name not in _SKIP_SOURCES
                  and p.suffix in _SOURCE_SUFFIXES and ".cache" not in p.parts)


def model_fingerprint(model_dir: str | Path) -> str:
    """sha256 over the model's weights, configs and tokenizer files, plus the build recipe's version."""
    d = Path(model_dir)
    h = hashlib.sha256(f"newsrag-onnx-v{FORMAT_VERSION}-opset{OPSET}-{sorted(QUANTIZATION.items())}".encode())
    for p in _source_files(d):
        h.update(str(p.relative_to(d)).encode() + b"\0")
        with p.open("rb") as fh:
            for block in iter(lambda: fh.read(1 << 20), b""):
                h.update(block)
    return h.hexdigest()


def _file_sha256(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def cache_dir_for(model_dir: str | Path, identity: str, cache_root: str | Path | None = None,
                  fingerprint: str | None = None) -> Path:
    root = Path(cache_root) if cache_root else default_cache_root()
    safe = "".join(c if c.isalnum() or c in "-_." else "_" for c in identity) or "model"
    return root / f"{safe}-{(fingerprint or model_fingerprint(model_dir))[:16]}"


def validate_cache(d: Path) -> str | None:
    """None when `d` holds a complete build; otherwise why not (missing, partial, corrupt)."""
    mf = d / MANIFEST
    if not d.is_dir():
        return "absent"
    try:
        manifest = json.loads(mf.read_text())
    except FileNotFoundError:
        return "no manifest (partial build)"
    except (OSError, ValueError) as exc:
        return f"unreadable manifest: {exc}"
    if manifest.get("format") != FORMAT_VERSION:
        return f"format {manifest.get('format')} != {FORMAT_VERSION}"
    files = manifest.get("files") or {}
    if set(files) != set(FILES.values()):
        return f"manifest lists {sorted(files)}"
    for name, meta in files.items():
        p = d / name
        if not p.is_file():
            return f"{name} missing"
        if p.stat().st_size != meta.get("bytes"):
            return f"{name} has {p.stat().st_size} bytes, manifest says {meta.get('bytes')}"
        if _file_sha256(p) != meta.get("sha256"):
            return f"{name} checksum mismatch"
    return None


@contextlib.contextmanager
def _build_lock(path: Path):
    """An exclusive advisory lock (POSIX flock); elsewhere no lock, and the atomic rename still protects."""
    try:
        import fcntl
    except ImportError:  # pragma: no cover - not POSIX
        yield
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a+") as fh:
        fcntl.flock(fh.fileno(), fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh.fileno(), fcntl.LOCK_UN)


def _discard(d: Path) -> None:
    """Move a bad folder aside first (one rename, so no reader sees it half-deleted), then delete it."""
    if not d.exists():
        return
    trash = d.parent / f".trash-{d.name}-{uuid.uuid4().hex[:8]}"
    try:
        os.rename(d, trash)
    except OSError:
        return
    shutil.rmtree(trash, ignore_errors=True)


def ensure_onnx_model(model_path: str | Path, precision: str = "int8", *, identity: str | None = None,
                      cache_root: str | Path | None = None, log=None) -> Path:
    """The path of the cached ONNX file (`precision` "fp32" or "int8"), exporting it first if needed."""
    if precision not in FILES:
        raise ValueError(f"precision must be one of {sorted(FILES)}, not {precision!r}")
    model_dir = Path(model_path)
    if not model_dir.is_dir():
        raise OnnxExportError(f"ONNX export needs a local model folder; {model_path!r} is not one "
                              "(nothing is downloaded)")
    identity = identity or model_dir.name
    fingerprint = model_fingerprint(model_dir)
    target = cache_dir_for(model_dir, identity, cache_root, fingerprint)
    if validate_cache(target) is None:
        return target / FILES[precision]
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise OnnxExportError(f"cannot create the ONNX cache folder {target.parent}: {exc}; "
                              "pass another cache_dir") from exc
    with _build_lock(target.parent / f".{target.name}.lock"):
        why = validate_cache(target)           # another process may have built it while we waited
        if why is None:
            return target / FILES[precision]
        # we hold the lock, so any build folder for this target is left over from a killed process
        for stale in target.parent.glob(f".build-{target.name}-*"):
            shutil.rmtree(stale, ignore_errors=True)
        if why != "absent":
            if log:
                log(f"ONNX cache {target} is unusable ({why}); rebuilding")
            _discard(target)
        tmp = Path(tempfile.mkdtemp(prefix=f".build-{target.name}-", dir=target.parent))
        os.chmod(tmp, 0o755)                    # mkdtemp makes it private; the cache is shareable
        try:
            build(model_dir, tmp, identity=identity, fingerprint=fingerprint, log=log)
            try:
                os.rename(tmp, target)
            except OSError:
                if validate_cache(target) is not None:   # someone else's rename won but is bad: replace
                    _discard(target)
                    os.rename(tmp, target)
        finally:
            if tmp.exists():
                shutil.rmtree(tmp, ignore_errors=True)
    why = validate_cache(target)
    if why is not None:
        raise OnnxExportError(f"ONNX cache {target} is still unusable after a rebuild: {why}")
    return target / FILES[precision]


def quantized_onnx_dir(model_path: str | Path, *, cache_root: str | Path | None = None,
                       identity: str | None = None) -> Path:
    """The cache folder holding model_int8.onnx (and model_fp32.onnx) for a local model."""
    return ensure_onnx_model(model_path, "int8", identity=identity, cache_root=cache_root).parent


# ---------------------------------------------------------------------------------------------------
# the build itself

def _quantization_kwargs() -> dict:
    from onnxruntime.quantization import QuantType

    return {**QUANTIZATION, "weight_type": getattr(QuantType, QUANTIZATION["weight_type"])}


def build(model_dir: Path, out: Path, *, identity: str, fingerprint: str | None = None, log=None) -> dict:
    """Export fp32, verify it against torch, quantize to int8, verify that, and write the manifest last."""
    import onnxruntime as ort
    import torch
    from transformers import AutoModel, AutoTokenizer

    say = log or (lambda msg: None)
    try:
        import onnx  # noqa: F401  (quantize_dynamic needs it; fail before a minute of exporting)
    except ImportError as exc:
        raise OnnxExportError("the onnx-int8 backend needs the `onnx` package: pip install onnx==1.23.2") from exc
    t0 = time.perf_counter()
    pcfg = read_pooling_config(model_dir)
    tok = AutoTokenizer.from_pretrained(str(model_dir), local_files_only=True)
    model = AutoModel.from_pretrained(str(model_dir), local_files_only=True, attn_implementation="eager")
    model.eval()
    wrapper = _EncoderWrapper(model).eval()   # eval() on the wrapper too: export restores its mode afterwards

    fp32 = out / FILES["fp32"]
    sample = tok(["hello world", "a slightly longer sentence to pad the batch"], padding=True, return_tensors="pt")
    args = tuple(_token_type(sample, k) for k in INPUT_NAMES)
    say("exporting the embedding model to ONNX (once per model; about a minute on 2 cores)")
    with torch.no_grad(), warnings.catch_warnings():
        # the TorchScript exporter is deprecated in favour of dynamo (which needs onnxscript); it is what
        # we use on purpose, and its tracer warnings are about transformers' code paths we bypass
        warnings.simplefilter("ignore")
        torch.onnx.export(wrapper, args, str(fp32), input_names=list(INPUT_NAMES), output_names=[OUTPUT_NAME],
                          dynamic_axes={n: {0: "batch", 1: "sequence"} for n in (*INPUT_NAMES, OUTPUT_NAME)},
                          opset_version=OPSET, do_constant_folding=True, dynamo=False)
    export_s = time.perf_counter() - t0

    probe = tok(_PROBES, padding=True, truncation=True, max_length=pcfg.max_seq_length, return_tensors="pt")
    with torch.no_grad():
        ref_tokens = model(**{k: probe[k] for k in INPUT_NAMES if k in probe}).last_hidden_state.numpy()
    mask = probe["attention_mask"].numpy()
    ref = l2_normalize(pool(ref_tokens, mask, pcfg.mode))
    feed = {k: _token_type(probe, k).numpy() for k in INPUT_NAMES}

    so = ort.SessionOptions()
    so.intra_op_num_threads = 1
    got = ort.InferenceSession(str(fp32), so, providers=["CPUExecutionProvider"]).run(None, feed)[0]
    fp32_err = float(np.abs((got - ref_tokens) * mask[..., None]).max())
    if fp32_err > 1e-3:
        raise OnnxExportError(f"the ONNX export differs from torch by {fp32_err:.2e} (> 1e-3): not cached")

    say("quantizing the ONNX model to int8")
    from onnxruntime.quantization import quantize_dynamic

    int8 = out / FILES["int8"]
    quantize_dynamic(str(fp32), str(int8), **_quantization_kwargs())
    got8 = ort.InferenceSession(str(int8), so, providers=["CPUExecutionProvider"]).run(None, feed)[0]
    cos8 = (l2_normalize(pool(got8, mask, pcfg.mode)) * ref).sum(axis=1)
    if float(cos8.min()) < 0.9:
        raise OnnxExportError(f"the int8 model's embeddings disagree with torch (min cosine {cos8.min():.3f})")

    manifest = {
        "format": FORMAT_VERSION,
        "identity": identity,
        "source": str(model_dir),
        "source_sha256": fingerprint or model_fingerprint(model_dir),
        "pooling": pcfg.__dict__,
        "opset": OPSET,
        "inputs": list(INPUT_NAMES),
        "output": OUTPUT_NAME,
        "quantization": {"method": "onnxruntime.quantization.quantize_dynamic",
                         **{k: str(v) for k, v in QUANTIZATION.items()}},
        "verify": {"fp32_max_abs_diff": fp32_err, "int8_probe_cosine_min": float(cos8.min()),
                   "int8_probe_cosine_mean": float(cos8.mean())},
        "versions": _versions(),
        "built_at": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "build_seconds": round(time.perf_counter() - t0, 1),
        "export_seconds": round(export_s, 1),
        "files": {name: {"bytes": (out / name).stat().st_size, "sha256": _file_sha256(out / name)}
                  for name in FILES.values()},
    }
    tmp_manifest = out / (MANIFEST + ".tmp")
    tmp_manifest.write_text(json.dumps(manifest, indent=2))
    for name in FILES.values():
        _fsync(out / name)
    _fsync(tmp_manifest)
    os.replace(tmp_manifest, out / MANIFEST)
    say(f"ONNX models ready in {manifest['build_seconds']}s")
    return manifest


def _token_type(enc, key):
    """token_type_ids are all zeros for single texts; some tokenizers do not return them at all."""
    import torch

    if key in enc:
        return enc[key]
    return torch.zeros_like(enc["input_ids"])


def _fsync(path: Path) -> None:
    with contextlib.suppress(OSError):
        fd = os.open(path, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def _versions() -> dict:
    import importlib.metadata as md

    out = {}
    for pkg in ("torch", "transformers", "onnx", "onnxruntime"):
        with contextlib.suppress(md.PackageNotFoundError):
            out[pkg] = md.version(pkg)
    return out


def _make_wrapper_class():
    import torch

    class EncoderWrapper(torch.nn.Module):
        """BertModel's embeddings + encoder with the mask and positions computed from the inputs.

        transformers 5 builds the attention mask with shape-dependent Python that TorchScript tracing
        bakes in as constants; computing the additive mask here keeps every shape dynamic. Models that
        are not BERT-like (no .embeddings/.encoder) are called whole.
        """

        def __init__(self, model):
            super().__init__()
            self.model = model
            self.split = hasattr(model, "embeddings") and hasattr(model, "encoder")

        def forward(self, input_ids, attention_mask, token_type_ids):
            if not self.split:
                return self.model(input_ids=input_ids, attention_mask=attention_mask,
                                  token_type_ids=token_type_ids).last_hidden_state
            positions = torch.cumsum(torch.ones_like(input_ids), dim=1) - 1
            hidden = self.model.embeddings(input_ids=input_ids, token_type_ids=token_type_ids,
                                           position_ids=positions)
            additive = (1.0 - attention_mask[:, None, None, :].to(hidden.dtype)) * torch.finfo(hidden.dtype).min
            return self.model.encoder(hidden, attention_mask=additive).last_hidden_state

    return EncoderWrapper


def _EncoderWrapper(model):
    return _make_wrapper_class()(model)
