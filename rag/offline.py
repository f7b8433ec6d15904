"""Make the whole stack offline-safe before any heavy library is imported.

Every library in our stack has a default that reaches the network (tiktoken encodings, Hugging Face hub
look-ups, ragas/gradio/chroma analytics, OpenAI as the implicit LLM). Importing this module first -- both
`rag` and `ingest` do so in their `__init__` -- closes each of those doors, so the product behaves the
same on a laptop with no network as in CI. Values already set by the user win (setdefault).
"""
from __future__ import annotations

import importlib.util
import os
from pathlib import Path


def _llama_index_tiktoken_cache() -> str | None:
    try:
        spec = importlib.util.find_spec("llama_index.core")
    except ModuleNotFoundError:
        return None
    if spec is None or spec.origin is None:
        return None
    cache = Path(spec.origin).parent / "_static" / "tiktoken_cache"
    return str(cache) if cache.is_dir() else None


def apply() -> None:
    defaults = {
        "HF_HUB_OFFLINE": "1",
        "TRANSFORMERS_OFFLINE": "1",
        "HF_DATASETS_OFFLINE": "1",
        "HF_HUB_DISABLE_TELEMETRY": "1",
        "RAGAS_DO_NOT_TRACK": "true",
        "GRADIO_ANALYTICS_ENABLED": "False",
        "ANONYMIZED_TELEMETRY": "False",
        "TOKENIZERS_PARALLELISM": "false",
        # A tripwire: anything that silently falls back to OpenAI fails fast on a closed loopback port.
        "OPENAI_BASE_URL": "http://127.0.0.1:9/v1",
        "OPENAI_API_KEY": "sk-offline-tripwire",
    }
    for key, value in defaults.items():
        os.environ.setdefault(key, value)
    cache = _llama_index_tiktoken_cache()
    if cache and not os.environ.get("TIKTOKEN_CACHE_DIR"):
        os.environ["TIKTOKEN_CACHE_DIR"] = cache
    # llama-index downloads NLTK data when NLTK_DATA points away from its bundled copy.
    if os.environ.get("NLTK_DATA", "").strip() == "":
        os.environ.pop("NLTK_DATA", None)


apply()
