"""Scale-out: the store's vectors on a real `chroma run` server on 127.0.0.1 (NEWSRAG_CHROMA_URL), the
catalogue and the published snapshots in the store directory, an ingest in another process."""
from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from benchmarks.soak_bench import start_chroma, stop_process
from ingest.pipeline import ingest_paths
from rag.settings import Settings
from rag.store import NewsStore, StoreError
from tests.test_ingest import story_md, two_story_folder
from tests.test_live_store import ZEPHYR, quill_story

ROOT = Path(__file__).resolve().parents[1]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def chroma_cli() -> str:
    found = shutil.which("chroma", path=str(Path(sys.executable).parent)) or shutil.which("chroma")
    if not found:
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail("CI=true but the `chroma` CLI (from the chromadb package) is not installed")
        pytest.skip("the `chroma` CLI is not installed")
    return found


@pytest.fixture()
def chroma_server(tmp_path):
    """A real Chroma server, stopped (by its own pid) after the test."""
    chroma_cli()
    try:
        proc, url = start_chroma(tmp_path / "chroma-server", log=tmp_path / "chroma.log")
    except RuntimeError as exc:
        pytest.fail(str(exc))
    yield url
    stop_process(proc)


def test_a_store_on_a_chroma_server_serves_and_ingests_at_once(tmp_path, chroma_server):
    from rag.pipeline import NewsBot

    src = two_story_folder(tmp_path)
    settings = Settings(store_dir=tmp_path / "store", chroma_url=chroma_server)
    r = ingest_paths([src], settings, progress=False)
    assert r.ok and r.new == 2, r
    assert not (settings.store_dir / "chroma").exists()              # vectors live on the server only
    assert (settings.store_dir / "catalog.sqlite").exists() and (settings.store_dir / "CURRENT").exists()
    bot = NewsBot(settings)
    assert bot.store.remote
    for i in range(40):
        (src / f"q{i:03d}.md").write_text(quill_story(i))
    (src / "zephyr.md").write_text(story_md("Nimbus Dynamics unveils Zephyr-9 weather model", "2026-03-09",
                                            "Climate Desk", "https://example.org/weather/zephyr-9", ZEPHYR))
    errors: list[str] = []
    stop = threading.Event()

    def ask_loop() -> None:
        while not stop.is_set():
            try:
                a = bot.ask("How many parcels an hour can the Kestrel 4 arm pick?")
                if a.refused:
                    errors.append("refused")
            except Exception as exc:  # noqa: BLE001 - every failure is what this test counts
                errors.append(f"{type(exc).__name__}: {exc}")

    threads = [threading.Thread(target=ask_loop) for _ in range(3)]
    for t in threads:
        t.start()
    try:
        p = subprocess.run([sys.executable, "-m", "ingest", str(src), "--store", str(settings.store_dir), "--json"],
                           cwd=ROOT, env={**os.environ, "NEWSRAG_CHROMA_URL": chroma_server,
                                          "NEWSRAG_EMBED_BATCH_SIZE": "1"},
                           capture_output=True, text=True, timeout=600)
    finally:
        stop.set()
        for t in threads:
            t.join()
    assert p.returncode == 0, p.stderr
    assert json.loads(p.stdout)["new"] == 41
    assert errors == [], errors[:5]
    qvec = bot.embedder.embed_one("weather model that forecasts hail and lightning")
    lex = bot.retriever.lexical()
    top = bot.store.dense_hits(qvec, 3, snapshot=lex)                 # asked of the server
    assert top[0][0].startswith(next(r.id for r in bot.store.story_rows() if "Zephyr" in r.title))
    a = bot.ask("Which weather model did Nimbus Dynamics unveil?")
    assert not a.refused and "Zephyr" in a.sources[0].title


def test_an_unreachable_chroma_server_is_a_clear_store_error(tmp_path):
    settings = Settings(store_dir=tmp_path / "store", chroma_url=f"http://127.0.0.1:{_free_port()}")
    r = ingest_paths([ROOT / "corpus"], settings, progress=False)
    assert r.error and "Chroma server" in r.error and "chroma run" in r.error
    with pytest.raises(StoreError, match="must look like http://host:port"):
        NewsStore(Settings(store_dir=tmp_path / "s2", chroma_url="localhost:8000"), writable=True).collection
