"""A live store: one ingest writer beside running readers, crash safety of every kind of run, and the
near-duplicate index. Real processes, a real Chroma store and the real embedder throughout."""
from __future__ import annotations

import json
import os
import random
import signal
import sqlite3
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest

from ingest.pipeline import ingest_paths
from rag.settings import Settings
from rag.store import CURRENT, NewsStore

from tests.test_ingest import run_cli, story_md, two_story_folder

ROOT = Path(__file__).resolve().parents[1]


def quill_story(i: int, version: int = 0) -> str:
    """A made-up story about lab i (version > 0: the same story rewritten)."""
    body = (f"Test lab number {i} reported on day {i % 28 + 1} that its model Quill-{i} reached a score of "
            f"{50 + i % 40 + version} on a reading benchmark. " * 3 +
            f"The team said the next version, Quill-{i + 1}, would be trained on {i + 3 + version} billion tokens "
            f"and released to partners within {i % 11 + 2} weeks, pending a safety review by an outside group. " * 2)
    if version:
        body += f"A revised statement (revision {version}) added that the review board meets in week {i % 9 + 1}."
    return story_md(f"Lab {i} reports Quill-{i} benchmark result", f"2026-02-{i % 28 + 1:02d}", "Test Wire",
                    f"https://example.org/quill/{i}", body)


ZEPHYR = ("Nimbus Dynamics unveiled the Zephyr-9 weather foundation model on March 9, 2026. The model forecasts "
          "hail and lightning six hours ahead at one-kilometre resolution, and the company said three national "
          "meteorological offices in Chile, Kenya and Norway will test it through the southern winter. Nimbus "
          "trained Zephyr-9 on forty years of radar archives and says it runs on a single rack of accelerators.")


@pytest.fixture()
def small_store(tmp_path):
    src = two_story_folder(tmp_path)
    settings = Settings(store_dir=tmp_path / "store")
    r = ingest_paths([src], settings, progress=False)
    assert r.ok and r.new == 2, r
    return tmp_path, src, settings


def _tree(d: Path) -> dict[str, tuple[int, int]]:
    """Every file's size and mtime, except SQLite's WAL index files (-wal, -shm): any connection to a WAL
    database, read-only ones included, creates them for its locking; they hold no data of ours."""
    return {str(p.relative_to(d)): (p.stat().st_size, p.stat().st_mtime_ns) for p in sorted(d.rglob("*"))
            if p.is_file() and not p.name.endswith(("-wal", "-shm"))}


# ------------------------------------------------------------------------------ one writer, many readers

def test_a_running_bot_answers_while_another_process_ingests_then_finds_the_new_story(small_store):
    """Readers in threads of this process, the writer a real second process: no failed or wrong answer
    during the ingest, and afterwards the running bot finds the new story by dense and by BM25 search,
    with no restart."""
    from rag.pipeline import NewsBot

    tmp, src, settings = small_store
    bot = NewsBot(settings)
    before = bot.retriever.lexical().snapshot
    for i in range(120):
        (src / f"q{i:03d}.md").write_text(quill_story(i))
    (src / "zephyr.md").write_text(story_md("Nimbus Dynamics unveils Zephyr-9 weather model", "2026-03-09",
                                            "Climate Desk", "https://example.org/weather/zephyr-9", ZEPHYR))
    errors: list[str] = []
    answered = [0]
    stop = threading.Event()

    def ask_loop() -> None:
        while not stop.is_set():
            try:
                a = bot.ask("How many parcels an hour can the Kestrel 4 arm pick?")
                if a.refused or not any("Orbital" in s.title for s in a.sources):
                    errors.append(f"wrong answer: refused={a.refused} {[s.title for s in a.sources]}")
                answered[0] += 1
            except Exception as exc:  # noqa: BLE001 - every failure is what this test counts
                errors.append(f"{type(exc).__name__}: {exc}")

    threads = [threading.Thread(target=ask_loop) for _ in range(4)]
    for t in threads:
        t.start()
    env = {**os.environ, "NEWSRAG_EMBED_BATCH_SIZE": "1"}      # many small commits for the readers to run into
    try:
        p = subprocess.run([sys.executable, "-m", "ingest", str(src), "--store", str(settings.store_dir), "--json"],
                           cwd=ROOT, env=env, capture_output=True, text=True, timeout=600)
        during = answered[0]
        time.sleep(1.0)                                    # and answers after the new snapshot is published
    finally:
        stop.set()
        for t in threads:
            t.join()
    assert p.returncode == 0, p.stderr
    assert json.loads(p.stdout)["new"] == 121
    assert errors == [], errors[:5]
    assert during > 5 and answered[0] > during
    lex = bot.retriever.lexical()
    assert lex.snapshot != before and lex.snapshot == (settings.store_dir / CURRENT).read_text().strip()
    zephyr_chunks = {c for c, s in lex.sources(lex.ids).items() if "Zephyr" in s.title}
    assert zephyr_chunks
    qvec = bot.embedder.embed_one("weather model that forecasts hail and lightning")
    assert bot.store.dense_hits(qvec, 3, snapshot=lex)[0][0] in zephyr_chunks
    assert lex.search("Zephyr-9 hail forecasts", 3)[0].chunk_id in zephyr_chunks
    a = bot.ask("Which weather model did Nimbus Dynamics unveil?")
    assert not a.refused and "Zephyr" in a.sources[0].title


def test_readers_write_nothing_into_the_store(small_store):
    """Opening the store, answering, and reading a store with no published snapshot (one built before
    snapshots, whose old bm25/ folder is gone) leave every file of the store as it was."""
    from rag.lexical import LexicalIndex
    from rag.pipeline import NewsBot

    tmp, src, settings = small_store
    before = _tree(settings.store_dir)
    bot = NewsBot(settings)
    assert not bot.ask("What did Harbor Labs release?").refused
    assert _tree(settings.store_dir) == before
    # a pre-snapshot store: no CURRENT; the reader builds its index in memory, never in the store
    (settings.store_dir / CURRENT).unlink()
    before = _tree(settings.store_dir)
    store = NewsStore(settings)
    lex = LexicalIndex.load(store)
    assert lex.snapshot == "legacy-" and lex.search("Tern-2 speech", 1)
    assert lex.can_search_dense() and lex.dense_hits(bot.embedder.embed_one("speech model"), 1)
    assert _tree(settings.store_dir) == before


def test_a_second_ingest_waits_for_the_writer_then_says_who_holds_it(small_store):
    tmp, src, settings = small_store
    holder = NewsStore(settings, writable=True)
    try:
        t = time.perf_counter()
        p = run_cli(src, "--store", settings.store_dir, env={"NEWSRAG_INGEST_LOCK_WAIT": "1.5"})
        waited = time.perf_counter() - t
        assert p.returncode == 1
        assert f"Another ingest (pid {os.getpid()}) is writing to the store" in p.stdout
        assert waited >= 1.5
    finally:
        holder.close()
    assert run_cli(src, "--store", settings.store_dir).returncode == 0


def test_only_a_few_snapshots_are_kept(small_store):
    tmp, src, settings = small_store
    for i in range(5):
        (src / f"q{i}.md").write_text(quill_story(i))
        assert ingest_paths([src], settings, progress=False).new == 1
    snaps = sorted(p.name for p in (settings.store_dir / "snapshots").iterdir())
    current = (settings.store_dir / CURRENT).read_text().strip()
    assert len(snaps) == 3 and snaps[-1] == current
    assert not (settings.store_dir / "bm25").exists()


# --------------------------------------------------------------------------------------- crash safety

def _store_state(store_dir: Path) -> dict:
    """Everything a clean build decides: stories, chunk texts, Chroma's ids and vectors, the published
    snapshot's ids, vectors and BM25 ranking."""
    from rag.lexical import LexicalIndex

    s = NewsStore(Settings(store_dir=store_dir))
    ids, docs, _ = s.all_chunks()
    got = s.collection.get(include=["embeddings"])
    chroma = dict(zip(got["ids"], (np.asarray(v, dtype=np.float32) for v in got["embeddings"])))
    lex = LexicalIndex.load(s)
    assert sorted(lex.ids) == sorted(ids)
    snap_vecs = lex.vectors(ids)
    assert all(np.allclose(snap_vecs[c], chroma[c], atol=1e-5) for c in ids)
    queries = ["Quill-7 reading benchmark", "safety review outside group", "revised statement review board",
               "Harbor Labs Tern-2", "Kestrel parcels"]
    return {"stories": sorted((r.id, r.title, r.text, tuple(r.outlets), r.chunk_count) for r in s.story_rows()),
            "members": sorted((m, sid) for m, (sid, _, _) in s.members().items()),
            "chunks": sorted(zip(ids, docs)), "chroma_ids": sorted(chroma), "vectors": chroma,
            "bm25": [[(h.chunk_id, round(h.score, 4)) for h in lex.search(q, 5)] for q in queries]}


def _assert_same_store(a: dict, b: dict) -> None:
    for key in ("stories", "members", "chunks", "chroma_ids", "bm25"):
        assert a[key] == b[key], key
    assert all(np.allclose(a["vectors"][c], b["vectors"][c], atol=1e-5) for c in a["vectors"])


def _generation(store_dir: Path) -> int:
    try:
        con = sqlite3.connect(f"file:{store_dir / 'catalog.sqlite'}?mode=ro", uri=True, timeout=1)
        try:
            row = con.execute("SELECT value FROM meta WHERE key='generation'").fetchone()
        finally:
            con.close()
        return int(row[0]) if row else 0
    except sqlite3.Error:
        return -1


def test_kill_9_at_random_points_of_add_update_and_remove_runs_then_rerun_equals_a_clean_build(tmp_path):
    """Real SIGKILLs of `python -m ingest` at random commits of a run that removes, rewrites and adds
    stories, each killed run followed by another killed one, then a finishing run: the store must equal a
    clean build of the final input -- stories, members, chunks, Chroma's vectors, the published BM25."""
    seed = int(os.environ.get("NEWSRAG_KILL_SEED", random.randrange(1 << 30)))
    rng = random.Random(seed)
    src = tmp_path / "news"
    src.mkdir()
    for i in range(50):
        (src / f"q{i:03d}.md").write_text(quill_story(i))
    store = tmp_path / "killed"
    env = {"NEWSRAG_EMBED_BATCH_SIZE": "1"}                   # groups of 64 chunks: several commits per run
    assert run_cli(src, "--store", store, env=env).returncode == 0
    for i in range(0, 12):
        (src / f"q{i:03d}.md").unlink()                                   # removals
    for i in range(12, 30):
        (src / f"q{i:03d}.md").write_text(quill_story(i, version=1))      # updates (re-embedded)
    for i in range(50, 75):
        (src / f"q{i:03d}.md").write_text(quill_story(i))                # additions
    kills = []
    for _ in range(3):
        start = _generation(store)
        target = start + rng.randint(1, 14)
        proc = subprocess.Popen([sys.executable, "-m", "ingest", str(src), "--store", str(store), "--no-progress"],
                                cwd=ROOT, env={**os.environ, **env}, stdout=subprocess.DEVNULL,
                                stderr=subprocess.DEVNULL)
        deadline = time.time() + 300
        while time.time() < deadline and proc.poll() is None and _generation(store) < target:
            time.sleep(0.01)
        time.sleep(rng.uniform(0, 0.05))                      # land inside a write, not only between them
        if proc.poll() is None:
            os.kill(proc.pid, signal.SIGKILL)
            kills.append(_generation(store) - start)
        proc.wait()
    assert kills, f"every run finished before it could be killed (seed {seed})"
    done = run_cli(src, "--store", store, "--json", env=env)
    assert done.returncode == 0, done.stderr
    clean = tmp_path / "clean"
    assert run_cli(src, "--store", clean, env=env).returncode == 0
    killed_state, clean_state = _store_state(store), _store_state(clean)
    assert len(clean_state["stories"]) == 63
    try:
        _assert_same_store(killed_state, clean_state)
    except AssertionError as exc:
        raise AssertionError(f"{exc} (seed {seed}, killed after {kills} commits)") from None


def test_recovery_deletes_a_story_whose_removal_was_killed_midway(small_store):
    """The orphan window: a story whose last member is gone, killed before the story itself was deleted.
    Built with the store's own calls at exactly that point (the random SIGKILLs above may miss it)."""
    tmp, src, settings = small_store
    store = NewsStore(settings, writable=True)
    row = next(r for r in store.story_rows() if "Tern-2" in r.title)
    members = [m.id for m in store.member_stories(row.id)]
    store.begin_rewrite([row.id], members)
    store.close()                                                 # "killed" before delete_story
    (src / "b.md").unlink()
    r = ingest_paths([src], settings, progress=False)
    assert r.recovered == 1 and r.error is None
    store = NewsStore(settings)
    assert [x.title for x in store.story_rows()] == ["Orbital Robotics doubles arm speed"]
    assert not any(c.startswith(row.id) for c in store.collection.get(include=[])["ids"])


# ------------------------------------------------------------------------- dense search of large stores

def test_a_large_snapshot_is_partitioned_and_the_next_one_reuses_its_centroids(tmp_path, monkeypatch):
    """Above rag.vectorindex.IVF_ABOVE chunks (lowered here so a small store crosses it) a snapshot
    stores its rows in cluster order with the partition; queries read the nearest clusters and still
    find each story by its own title; the next ingest keeps the centroids and the clusters of unchanged
    chunks."""
    import rag.vectorindex
    from rag.embedder import get_embedder
    from rag.lexical import LexicalIndex

    monkeypatch.setattr(rag.vectorindex, "IVF_ABOVE", 40)
    src = tmp_path / "news"
    src.mkdir()
    for i in range(60):
        (src / f"q{i:03d}.md").write_text(quill_story(i))
    settings = Settings(store_dir=tmp_path / "store")
    assert ingest_paths([src], settings, progress=False).new == 60
    store = NewsStore(settings)
    lex = LexicalIndex.load(store)
    assert lex._partition is not None and len(lex.ids) > 40
    labels = lex._partition.labels_by_id()
    assert sorted(labels.values()) == [labels[c] for c in lex.ids]            # rows in cluster order
    emb = get_embedder(settings)
    titles = {r.id: r.title for r in store.story_rows()}
    for sid, title in list(titles.items())[:10]:
        exact = rag.vectorindex.top_rows(lex._vectors, emb.embed_one(title), 1, None, None)
        assert lex.dense_hits(emb.embed_one(title), 1)[0][0] == lex.ids[exact[0][0]]
    cents = lex._partition.centroids.copy()
    (src / "q060.md").write_text(quill_story(60))
    assert ingest_paths([src], settings, progress=False).new == 1
    lex2 = LexicalIndex.load(NewsStore(settings))
    assert np.array_equal(lex2._partition.centroids, cents)
    again = lex2._partition.labels_by_id()
    assert all(again[c] == labels[c] for c in labels)


def test_a_chunk_the_previous_snapshot_lacked_is_read_from_chroma_by_the_next_one(small_store):
    """The next snapshot reuses the previous one's vectors for unchanged chunks, read in blocks; a row
    that copy holds as zeros (a chunk Chroma lacked when it was built) is asked of Chroma instead."""
    from rag.lexical import LexicalIndex

    tmp, src, settings = small_store
    store = NewsStore(settings)
    d = store.snapshot_dir(store.snapshot_id())
    lex = LexicalIndex.load(store)
    victim = lex.ids[0]
    vectors = np.load(d / "vectors.npy")
    vectors[lex.rows([victim])[victim]] = 0.0
    np.save(d / "vectors.npy", vectors)
    (src / "q0.md").write_text(quill_story(0))
    assert ingest_paths([src], settings, progress=False).new == 1
    store = NewsStore(settings)
    lex = LexicalIndex.load(store)
    stored = store.chunk_vectors(lex.ids)
    got = lex.vectors(lex.ids)
    assert np.allclose(got[victim], stored[victim], atol=1e-6) and got[victim].any()
    assert all(np.allclose(got[c], stored[c], atol=1e-6) for c in lex.ids)


def test_a_reader_maps_the_snapshot_and_finds_rows_through_its_id_index(small_store):
    """A reader of a million-chunk snapshot holds neither the BM25 postings nor a dict of every chunk id
    in its own memory: the postings are memory-mapped and a chunk's row comes from the copy's index."""
    from rag.lexical import LexicalIndex, SavedBM25

    tmp, src, settings = small_store
    lex = LexicalIndex.load(NewsStore(settings))
    assert isinstance(lex.bm, SavedBM25) and isinstance(lex.bm.scores["data"], np.memmap)
    want = {c: i for i, c in enumerate(lex.ids)}
    assert lex.rows(lex.ids[::-1] + ["no-such-chunk:0"]) == want
    assert lex._rows is None


def test_a_new_tokenizer_retokenizes_but_keeps_the_previous_snapshots_vectors(small_store, monkeypatch):
    """A tokenizer change makes the next publish compute every chunk's terms again, but not read every
    vector back from Chroma: vectors do not depend on the tokenizer (a million of them would dominate
    the publish)."""
    import rag.lexical
    from rag.lexical import LexicalIndex

    tmp, src, settings = small_store
    monkeypatch.setattr(rag.lexical, "TOKENIZER_VERSION", rag.lexical.TOKENIZER_VERSION + 1)
    asked: list[str] = []
    real = NewsStore.chunk_vectors
    monkeypatch.setattr(NewsStore, "chunk_vectors", lambda self, ids: asked.extend(ids) or real(self, ids))
    (src / "q0.md").write_text(quill_story(0))
    assert ingest_paths([src], settings, progress=False).new == 1
    assert asked == []
    store = NewsStore(settings)
    info = json.loads((store.snapshot_dir(store.snapshot_id()) / "chunks.json").read_text())
    assert info["tokenizer"] == rag.lexical.TOKENIZER_VERSION
    lex = LexicalIndex.load(store)
    got, stored = lex.vectors(lex.ids), real(store, lex.ids)
    assert len(lex.ids) > 2 and all(np.allclose(got[c], stored[c], atol=1e-6) for c in lex.ids)
    quill = next(r.id for r in store.story_rows() if "Quill-0" in r.title)
    assert lex.search("Quill-0 reading benchmark", 1)[0].chunk_id.startswith(quill + ":")


def test_a_reader_serves_a_snapshot_an_older_tokenizer_indexed(small_store, monkeypatch, caplog):
    """After an upgrade that changes the tokenizer, a reader keeps serving the published snapshot (its
    vectors, and its terms for keyword search) with a warning, and builds nothing, until the next
    ingest republishes: a reader never writes, and rebuilding a large store in every app would not do."""
    import logging

    import rag.lexical
    from rag.lexical import LexicalIndex

    tmp, src, settings = small_store
    store = NewsStore(settings)
    snapshot = store.snapshot_id()
    monkeypatch.setattr(rag.lexical, "TOKENIZER_VERSION", rag.lexical.TOKENIZER_VERSION + 1)
    monkeypatch.setattr(LexicalIndex, "_in_memory", classmethod(lambda *a: pytest.fail("built in a reader")))
    with caplog.at_level(logging.WARNING, logger="rag.lexical"):
        lex = LexicalIndex.load(store)
    assert lex.snapshot == snapshot and lex.can_search_dense() and len(lex.ids) >= 2
    assert "indexed by tokenizer" in caplog.text
    assert lex.search(store.story_rows()[0].title, 1)
