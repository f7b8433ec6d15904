"""The embedder with the real packaged model: token counts, chunk limits, and the ONNX int8 backend.

The ONNX tests export the model once into a temporary cache for the whole session (about a minute on two
cores) and never touch ~/.cache; the corruption tests rebuild in their own copies of that cache.
"""
from __future__ import annotations

import json
import shutil
from concurrent.futures import ThreadPoolExecutor
from datetime import date
from pathlib import Path

import numpy as np
import pytest

from ingest.chunking import chunk_story
from rag.records import SourceLink, Story
from rag.settings import Settings, packaged_minilm_path

ROOT = Path(__file__).resolve().parents[1]

pytest.importorskip("onnxruntime")


def _corpus_texts(n: int = 60) -> list[str]:
    """Real chunk texts (headline + date + body) and headlines from the shipped corpus."""
    from ingest.loaders import load_paths

    settings = Settings()
    stories = load_paths([ROOT / "corpus"], settings).stories
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(packaged_minilm_path(), local_files_only=True)
    count = lambda t: len(tok(t)["input_ids"])  # noqa: E731
    texts: list[str] = []
    for s in stories[: n // 3]:
        texts.append(s.title)
        texts.extend(c.embed_text for c in chunk_story(s, budget=settings.chunk_tokens,
                                                       min_tokens=settings.chunk_min_tokens,
                                                       max_embed_tokens=256, embed_len=count)[:2])
    return texts[:n]


@pytest.fixture(scope="module")
def torch_embedder():
    from rag.embedder import Embedder

    return Embedder(packaged_minilm_path(), backend="torch")


@pytest.fixture(scope="module")
def onnx_cache(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("onnx_cache")


@pytest.fixture(scope="module")
def int8_embedder(onnx_cache):
    from rag.embedder import Embedder

    return Embedder(packaged_minilm_path(), backend="onnx-int8", cache_dir=onnx_cache)


@pytest.fixture(scope="module")
def texts():
    return _corpus_texts()


def long_story(n_sentences: int = 80, *, run_on: bool = False) -> Story:
    """A story far longer than the model's window; `run_on` makes it one sentence with no full stop."""
    words = ("Researchers at the Meridian Institute said the new accelerator cut the cost of training a "
             "seven-billion-parameter language model by forty percent compared with last year's chips, and "
             "regulators in Brussels asked for details about its energy use and export licensing")
    body = (" ".join([words] * n_sentences)) if run_on else " ".join(f"{words} (report {i})." for i in range(n_sentences))
    return Story(title="Meridian Institute accelerator cuts training cost", text=body, published_at=date(2026, 3, 1),
                 sources=[SourceLink("Example Wire", "https://example.org/meridian")])


# --- token counting and chunk limits ------------------------------------------------------------

def test_count_tokens_matches_the_models_tokenizer(torch_embedder):
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(packaged_minilm_path(), local_files_only=True)
    long_text = " ".join(["Nvidia's H100 shipments doubled, analysts said."] * 60)
    for text in ["", "x", "OpenAI's GPT-4o, released 2024-05-13, costs $5/1M tokens.", long_text]:
        expected = len(tok(text, add_special_tokens=True)["input_ids"])
        assert torch_embedder.count_tokens(text) == expected
    # counting never truncates: the long text is well over the model's window
    assert torch_embedder.count_tokens(long_text) > torch_embedder.max_seq_length
    assert torch_embedder.max_seq_length == 256


def test_count_tokens_is_the_same_for_the_onnx_backend(torch_embedder, int8_embedder, texts):
    assert int8_embedder.max_seq_length == torch_embedder.max_seq_length
    assert int8_embedder.dim == torch_embedder.dim == 384
    for t in texts[:10] + [" ".join(texts)]:
        assert int8_embedder.count_tokens(t) == torch_embedder.count_tokens(t)


@pytest.mark.parametrize("budget,run_on", [(160, False), (2000, False), (2000, True)])
def test_no_chunk_exceeds_the_models_window(torch_embedder, budget, run_on):
    """Chunking must split anything the embedder would silently cut, even with a huge tiktoken budget."""
    story = long_story(run_on=run_on)
    assert torch_embedder.count_tokens(story.text) > 4 * torch_embedder.max_seq_length
    chunks = chunk_story(story, budget=budget, min_tokens=40, max_embed_tokens=torch_embedder.max_seq_length,
                         embed_len=torch_embedder.count_tokens)
    assert len(chunks) >= 5
    for c in chunks:
        assert torch_embedder.count_tokens(c.embed_text) <= torch_embedder.max_seq_length, c.id
    # nothing was dropped: every word of the story is in some chunk, in order
    assert " ".join(c.text for c in chunks).split() == story.text.split()


@pytest.mark.parametrize("backend", ["torch", "onnx-int8"])
def test_ingest_chunking_hands_its_encodings_to_the_embedder(torch_embedder, int8_embedder, backend):
    """Ingest tokenizes each chunk once: the encodings that proved a chunk fits are the ones embedded.
    They must count what count_tokens counts, keep every chunk inside the window, and embed exactly as
    the texts would on their own."""
    from ingest.chunking import chunk_stories

    emb = torch_embedder if backend == "torch" else int8_embedder
    stories = [long_story(run_on=False), long_story(run_on=True)]
    out = chunk_stories(stories, budget=160, min_tokens=40, max_embed_tokens=emb.max_seq_length,
                        tokenize=emb.tokenize)
    texts = [c.embed_text for chunks, _ in out for c in chunks]
    encodings = [e for _, encs in out for e in encs]
    assert len(texts) == len(encodings) >= 10
    for t, e in zip(texts, encodings):
        assert len(e) == emb.count_tokens(t) <= emb.max_seq_length
    np.testing.assert_allclose(emb.embed(texts, encodings=encodings), emb.embed(texts), atol=1e-5)
    with pytest.raises(ValueError, match="encodings for"):
        emb.embed(texts, encodings=encodings[:-1])


# --- the ONNX int8 backend -------------------------------------------------------------------------

def test_int8_embeddings_are_normalised_and_agree_with_fp32(torch_embedder, int8_embedder, texts):
    ref = torch_embedder.embed(texts)
    got = int8_embedder.embed(texts)
    assert got.dtype == np.float32 and got.shape == ref.shape == (len(texts), 384)
    np.testing.assert_allclose(np.linalg.norm(got, axis=1), 1.0, atol=1e-5)
    cos = (ref * got).sum(axis=1)
    assert cos.min() >= 0.95, f"min cosine {cos.min():.4f}"
    assert cos.mean() >= 0.98, f"mean cosine {cos.mean():.4f}"
    # results come back in input order (inputs are sorted by length internally and put back); int8
    # activations are quantized per batch, so a text's vector depends slightly on its batch-mates
    rev = int8_embedder.embed(texts[::-1])[::-1]
    assert (rev * got).sum(axis=1).min() > 0.99
    np.testing.assert_array_equal(int8_embedder.embed(texts), got)     # the same batch: bit-identical
    one = int8_embedder.embed_one(texts[3])
    assert float(one @ got[3]) > 0.97 and float(one @ ref[3]) > 0.95
    assert int8_embedder.embed([]).shape == (0, 384)


def test_int8_keeps_nearest_neighbours(torch_embedder, int8_embedder, texts):
    """Each headline's nearest chunk is the same under fp32 and int8 for nearly all headlines."""
    a, b = torch_embedder.embed(texts), int8_embedder.embed(texts)
    nn_a = np.argsort(-(a @ a.T), axis=1)[:, 1]
    nn_b = np.argsort(-(b @ b.T), axis=1)[:, 1]
    assert (nn_a == nn_b).mean() >= 0.9


def test_onnx_fp32_equals_torch(torch_embedder, onnx_cache, texts):
    from rag.embedder import Embedder

    fp32 = Embedder(packaged_minilm_path(), backend="onnx", cache_dir=onnx_cache)
    cos = (torch_embedder.embed(texts) * fp32.embed(texts)).sum(axis=1)
    assert cos.min() > 0.9999
    assert fp32.name == torch_embedder.name == "all-MiniLM-L6-v2"


def test_int8_identity_is_recorded(int8_embedder):
    from rag.embedder import IDENTITY_SUFFIX

    assert int8_embedder.name == "all-MiniLM-L6-v2" + IDENTITY_SUFFIX["onnx-int8"]
    manifest = json.loads((int8_embedder.onnx_path.parent / "manifest.json").read_text())
    assert manifest["identity"] == "all-MiniLM-L6-v2"
    assert manifest["pooling"]["mode"] == "mean" and manifest["pooling"]["normalize"] is True


def test_export_is_cached_not_redone(int8_embedder, onnx_cache, monkeypatch):
    import rag.onnx_export as ox
    from rag.embedder import Embedder

    path = int8_embedder.onnx_path
    assert path.parent.parent == onnx_cache and path.name == "model_int8.onnx"
    assert path.parent.name.startswith("all-MiniLM-L6-v2-")
    before = {p.name: p.stat().st_mtime_ns for p in path.parent.iterdir()}

    def no_build(*a, **k):
        raise AssertionError("the cached export was rebuilt")

    monkeypatch.setattr(ox, "build", no_build)
    again = Embedder(packaged_minilm_path(), backend="onnx-int8", cache_dir=onnx_cache)
    assert again.onnx_path == path
    assert {p.name: p.stat().st_mtime_ns for p in path.parent.iterdir()} == before
    # no build leftovers beside the cache folder
    assert not [p for p in onnx_cache.iterdir() if p.name.startswith((".build-", ".trash-"))]


def _copy_cache(src_root: Path, dst_root: Path) -> Path:
    shutil.copytree(src_root, dst_root, ignore=shutil.ignore_patterns(".*.lock"))
    (folder,) = [p for p in dst_root.iterdir() if p.is_dir() and not p.name.startswith(".")]
    return folder


@pytest.mark.parametrize("damage", ["truncated_model", "missing_manifest"])
def test_corrupt_or_partial_cache_is_detected_and_rebuilt(int8_embedder, torch_embedder, onnx_cache, tmp_path,
                                                          texts, damage, monkeypatch):
    import rag.onnx_export as ox
    from rag.embedder import Embedder

    root = tmp_path / "cache"
    folder = _copy_cache(onnx_cache, root)
    assert ox.validate_cache(folder) is None
    if damage == "truncated_model":       # e.g. a disk filled up, or a copy interrupted
        data = (folder / "model_int8.onnx").read_bytes()
        (folder / "model_int8.onnx").write_bytes(data[: len(data) // 2])
        assert "bytes" in ox.validate_cache(folder)
    else:                                 # e.g. a build killed before it finished (no manifest yet)
        (folder / "manifest.json").unlink()
        assert "partial" in ox.validate_cache(folder)
        # ... and left its temporary build folder behind
        (root / f".build-{folder.name}-killed").mkdir()
        (root / f".build-{folder.name}-killed" / "model_fp32.onnx").write_bytes(b"half")
    builds = []
    real_build = ox.build

    def counting_build(*a, **k):
        builds.append(1)
        return real_build(*a, **k)

    monkeypatch.setattr(ox, "build", counting_build)
    # two constructions at once: one rebuilds, the other waits for it and reuses the result
    with ThreadPoolExecutor(2) as pool:
        made = list(pool.map(lambda _: Embedder(packaged_minilm_path(), backend="onnx-int8", cache_dir=root),
                             range(2)))
    assert len(builds) == 1
    rebuilt = made[0]
    assert rebuilt.onnx_path.parent == folder == made[1].onnx_path.parent
    assert ox.validate_cache(folder) is None
    cos = (torch_embedder.embed(texts[:12]) * rebuilt.embed(texts[:12])).sum(axis=1)
    assert cos.min() >= 0.95
    assert not [p for p in root.iterdir() if p.name.startswith((".build-", ".trash-"))]


def test_onnx_backend_refuses_a_non_local_model(tmp_path):
    from rag.embedder import Embedder

    with pytest.raises(ValueError, match="local model folder"):
        Embedder("sentence-transformers/all-MiniLM-L6-v2", backend="onnx-int8", cache_dir=tmp_path)
    with pytest.raises(ValueError, match="backend"):
        Embedder(packaged_minilm_path(), backend="tensorrt")


def test_get_embedder_builds_the_int8_backend_from_settings(onnx_cache, monkeypatch):
    from rag import embedder as emb_mod

    monkeypatch.setattr(emb_mod, "_CACHE", {})
    monkeypatch.setenv("XDG_CACHE_HOME", str(onnx_cache.parent / "xdg"))
    # reuse the session's export: point the default cache root at a copy of it
    _copy_cache(onnx_cache, onnx_cache.parent / "xdg" / "newsrag" / "onnx")
    e = emb_mod.get_embedder(Settings(embed_backend="onnx-int8"))
    assert e.backend == "onnx-int8"
    assert e.onnx_path.is_relative_to(onnx_cache.parent / "xdg")
    assert emb_mod.get_embedder(Settings(embed_backend="onnx-int8")) is e


def test_a_model_the_export_refuses_falls_back_to_torch(tmp_path, monkeypatch, caplog):
    """Pooling that concatenates mean and max (valid for sentence-transformers, not reproduced by our ONNX
    path): the default int8 backend must not make such a model unusable."""
    import json
    import shutil

    from rag import embedder as emb_mod

    model = tmp_path / "minilm-meanmax"
    shutil.copytree(packaged_minilm_path(), model)
    pooling = model / "1_Pooling" / "config.json"
    cfg = json.loads(pooling.read_text())
    cfg["pooling_mode_max_tokens"] = True
    pooling.write_text(json.dumps(cfg))
    monkeypatch.setattr(emb_mod, "_CACHE", {})
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    with caplog.at_level("WARNING"):
        e = emb_mod.get_embedder(Settings(embed_model=str(model), embed_backend="onnx-int8"))
    assert e.backend == "torch" and e.dim == 768 == emb_mod.declared_dimension(str(model))
    assert "using torch" in caplog.text and "pooling" in caplog.text
    assert e.embed(["Nvidia unveiled a new chip"]).shape == (1, 768)
