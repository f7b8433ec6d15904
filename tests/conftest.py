"""Shared fixtures: offline environment, a real store built once from the shipped corpus."""
from __future__ import annotations

import os
import sys
from datetime import date
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import rag.offline  # noqa: E402,F401  (offline env before anything heavy)

SHARED = ROOT.parent / "shared"
DIGESTS_DIR = SHARED / "data" / "lastweekinai-digests" / "digests"
PINNED_TODAY = date(2026, 6, 1)   # "today" for every recency test: just after the newest corpus story


def pytest_configure(config):
    os.environ.setdefault("NEWSRAG_TODAY", PINNED_TODAY.isoformat())


@pytest.fixture(scope="session")
def corpus_store(tmp_path_factory):
    """A real Chroma store with the real MiniLM model over corpus/, built once per test session."""
    from ingest.pipeline import ingest_paths
    from rag.settings import Settings

    store = tmp_path_factory.mktemp("corpus_store")
    settings = Settings(store_dir=store, today=PINNED_TODAY)
    report = ingest_paths([ROOT / "corpus"], settings, progress=False)
    assert report.ok and report.stories_total > 0, report.error
    return settings


@pytest.fixture(scope="session")
def bot(corpus_store):
    from rag.pipeline import NewsBot

    return NewsBot(corpus_store)


def in_ci() -> bool:
    return os.environ.get("CI", "").strip().lower() == "true"


def require_shared(path: Path, what: str) -> Path:
    """`path` under ../shared, or a skip when it is absent -- a FAILURE under CI=true, where a missing
    data folder would otherwise turn the quality bar into a run that passes with nothing measured."""
    if not path.exists():
        if in_ci():
            pytest.fail(f"CI=true but {what} is absent ({path}): CI must provide ../shared", pytrace=False)
        pytest.skip(f"{what} is absent ({path})")
    return path


def require_digests() -> Path:
    return require_shared(DIGESTS_DIR, "../shared/data/lastweekinai-digests")


@pytest.fixture(scope="session")
def digests_dir() -> Path:
    return require_digests()


# Building the digests store (first run, no NEWSRAG_DIGESTS_STORE cache) takes ~20-40 minutes on 2 cores;
# pytest-timeout counts fixture setup against the first test that needs it. Shared by the quality bar
# (tests/test_quality.py) and the briefs (tests/test_briefs.py), so a session builds it once.
BUILD_TIMEOUT = 3600


@pytest.fixture(scope="session")
def digests_store(tmp_path_factory) -> Path:
    """NEWSRAG_DIGESTS_STORE: reused when it holds a built store, else built there (kept for next time);
    unset: built once per session in a temporary folder."""
    digests = require_digests()
    given = os.environ.get("NEWSRAG_DIGESTS_STORE")
    if given and (Path(given) / "catalog.sqlite").exists() and \
            ((Path(given) / "CURRENT").exists() or (Path(given) / "bm25").is_dir()):
        return Path(given)
    from ingest.pipeline import ingest_paths
    from rag.settings import Settings

    store = Path(given) if given else tmp_path_factory.mktemp("digests_store")
    report = ingest_paths([digests], Settings(store_dir=store), progress=False)
    assert report.ok and report.stories_total > 10_000, report.error
    return store


def copied_runs(questions: list[tuple[str, str]], n: int = 8) -> list[tuple[str, str]]:
    """(id, run) for every n-word run of a question that also occurs in the (unlicensed) digests: our
    questions may carry their facts, never their sentences."""
    import re

    def words(text: str) -> list[str]:
        return re.findall(r"[a-z0-9$%']+", text.lower())

    runs = set()
    for path in require_digests().glob("*.md"):
        w = words(re.sub(r"https?://\S+", " ", path.read_text(encoding="utf-8")))
        runs.update(" ".join(w[i:i + n]) for i in range(len(w) - n + 1))
    out = []
    for qid, question in questions:
        w = words(question)
        out += [(qid, " ".join(w[i:i + n])) for i in range(len(w) - n + 1) if " ".join(w[i:i + n]) in runs]
    return out
