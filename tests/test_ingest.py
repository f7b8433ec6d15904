"""Ingest end to end with the real model and a real Chroma store: incremental, dedup, crash safety."""
from __future__ import annotations

import json
import os
import shutil
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest

from ingest.pipeline import ingest_paths
from rag.settings import Settings, packaged_minilm_path
from rag.store import NewsStore

ROOT = Path(__file__).resolve().parents[1]


def story_md(title: str, published: str, outlet: str, url: str, body: str, tags=("test",)) -> str:
    return (f'---\ntitle: "{title}"\npublished: {published}\nsources:\n  - outlet: {outlet}\n    url: {url}\n'
            f"tags: [{', '.join(tags)}]\n---\n{body}\n")


BODY_A = ("Orbital Robotics said on March 3, 2026 that its warehouse arm, the Kestrel 4, can now pick 1,200 "
          "parcels an hour, double the rate of the model it replaces. The company plans to ship the first 500 "
          "units to logistics firms in Germany and Japan before the end of the year. Chief executive Mara Lindqvist "
          "said the gain came from a new vision model trained on forty million labelled grasps, and that customers "
          "would pay a monthly fee instead of buying the hardware outright. Analysts at the firm's investor day "
          "asked whether the arm could handle soft packaging; the company said a gripper update is due in June.")
# the same story as syndicated by a second outlet: a new lead sentence and a few edited words
BODY_A_SYNDICATED = ("Warehouse automation start-up Orbital Robotics has a faster arm. Orbital Robotics said on March 3, "
                     "2026 that its warehouse arm, the Kestrel 4, can now pick 1,200 parcels an hour, double the rate of "
                     "the model it replaces. The company plans to ship the first 500 units to logistics firms in Germany "
                     "and Japan before the end of the year. Chief executive Mara Lindqvist said the gain came from a new "
                     "vision model trained on forty million labelled grasps, and that customers would pay a monthly fee "
                     "instead of buying the hardware outright. Analysts asked whether the arm could handle soft "
                     "packaging; the company said a gripper update is due in June.")
BODY_B = ("Harbor Labs released Tern-2, an open-weights speech model, on March 4, 2026. The model transcribes "
          "39 languages and runs on a single laptop GPU, according to the lab's technical report. Harbor Labs said "
          "Tern-2 cut word errors by a fifth on noisy call-centre audio compared with its predecessor and that the "
          "weights are published under a permissive licence. The lab, based in Lisbon, raised 40 million euros last "
          "autumn and employs about ninety researchers. Its founders previously worked on machine translation at a "
          "large search company and say they will release a smaller on-device version this summer.")


def two_story_folder(root: Path) -> Path:
    """root/news with the two made-up stories most ingest tests start from."""
    src = root / "news"
    src.mkdir()
    (src / "a.md").write_text(story_md("Orbital Robotics doubles arm speed", "2026-03-03", "Robot Report",
                                       "https://example.org/robot/orbital-kestrel-4", BODY_A, ("robotics",)))
    (src / "b.md").write_text(story_md("Harbor Labs opens Tern-2 speech model", "2026-03-04", "AI Wire",
                                       "https://example.org/ai/harbor-tern-2", BODY_B, ("models",)))
    return src


@pytest.fixture()
def workdir(tmp_path):
    src = two_story_folder(tmp_path)
    return tmp_path, src, Settings(store_dir=tmp_path / "store")


def test_incremental_reingest_embeds_only_what_changed(workdir):
    tmp, src, settings = workdir
    r1 = ingest_paths([src], settings, progress=False)
    assert (r1.new, r1.unchanged, r1.stories_total) == (2, 0, 2) and r1.chunks_embedded > 0
    r2 = ingest_paths([src], settings, progress=False)
    assert (r2.new, r2.unchanged, r2.chunks_embedded, r2.stories_total) == (0, 2, 0, 2)
    # change one story: only its chunks are embedded again, and its old text is gone
    (src / "b.md").write_text((src / "b.md").read_text().replace("39 languages", "41 languages"))
    r3 = ingest_paths([src], settings, progress=False)
    assert (r3.updated, r3.unchanged) == (1, 1)
    assert 0 < r3.chunks_embedded <= r1.chunks_embedded
    store = NewsStore(settings)
    ids, docs, _ = store.all_chunks()
    assert any("41 languages" in d for d in docs) and not any("39 languages" in d for d in docs)
    assert len(ids) == len(set(ids)) == store.count_chunks()
    assert chroma_ids(store) == sorted(ids)          # Chroma holds a vector for each catalogued chunk, no more
    # a story that disappeared from the re-read folder is removed, unless --keep-missing
    (src / "b.md").unlink()
    kept = ingest_paths([src], settings, progress=False, keep_missing=True)
    assert kept.removed == 0 and kept.stories_total == 2
    r4 = ingest_paths([src], settings, progress=False)
    assert r4.removed == 1 and r4.stories_total == 1
    assert all(m["story_id"] != "" for m in NewsStore(settings).all_chunks()[2])
    assert not any("Tern-2" in d for d in NewsStore(settings).all_chunks()[1])
    assert chroma_ids(NewsStore(settings)) == sorted(NewsStore(settings).all_chunks()[0])


def chroma_ids(store: NewsStore) -> list[str]:
    return sorted(store.collection.get(include=[])["ids"])


def test_store_of_schema_1_is_migrated_by_the_next_writer(workdir):
    """Stores built before chunk text moved into the catalogue kept it in Chroma's documents: a reader
    reads it from there and writes nothing; the next writer copies the text across once."""
    tmp, src, settings = workdir
    ingest_paths([src], settings, progress=False)
    store = NewsStore(settings, writable=True)
    ids, docs, metas = store.all_chunks()
    # rewind to schema 1: documents in Chroma, no chunk rows in the catalogue
    vecs = store.chunk_vectors(ids)
    store.collection.upsert(ids=ids, embeddings=[vecs[i] for i in ids], documents=docs, metadatas=metas)
    store._db.execute("DELETE FROM chunks")
    store.set_meta("schema", "1")
    store.close()
    reader = NewsStore(settings)
    src_rows = reader.get_sources([ids[0]])
    assert src_rows and src_rows[0].text == docs[0] and src_rows[0].title == metas[0]["title"]
    assert reader.meta("schema") == "1"
    reader.close()
    old = NewsStore(settings, writable=True)
    assert old.meta("schema") == "2"
    assert old.all_chunks()[:2] == (ids, docs)
    src_rows = old.get_sources([ids[0]])
    assert src_rows and src_rows[0].text == docs[0] and src_rows[0].title == metas[0]["title"]


def test_recovery_re_embeds_a_story_whose_rewrite_was_killed(workdir):
    """The state a kill leaves mid-rewrite of a changed story -- its id pending, Chroma already holding
    new vectors for its chunks, the catalogue still the old text -- built with the store's own calls
    (the real SIGKILL test is below; where exactly it lands cannot be chosen). The next ingest of its
    source must embed it again, so no chunk keeps a vector of text the store does not hold."""
    from rag.embedder import get_embedder

    tmp, src, settings = workdir
    ingest_paths([src], settings, progress=False)
    store = NewsStore(settings, writable=True)
    row = next(r for r in store.story_rows() if "Tern-2" in r.title)
    chunks = store.story_chunks(row.id)
    story = next(m for m in store.member_stories(row.id))
    store.mark_pending([row.id])
    junk = get_embedder(settings).embed(["An unrelated sentence about cooking pasta."] * len(chunks))
    store.write_chunk_groups([(story, chunks, junk)])
    store.close()                                    # "killed" before commit_stories
    again = ingest_paths([src], settings, progress=False)
    assert again.recovered == 1 and again.chunks_embedded >= len(chunks)
    store = NewsStore(settings)
    vecs = store.chunk_vectors([c.id for c in chunks])
    assert all(float(vecs[c.id] @ junk[0]) < 0.9 for c in chunks)


def test_unchanged_reingest_never_loads_the_model(workdir, monkeypatch):
    """Loading torch and the model is most of an unchanged re-ingest's time; nothing needs it then
    (a spy around the real rag.embedder.get_embedder counts the loads)."""
    import rag.embedder

    tmp, src, settings = workdir
    loads = []
    real = rag.embedder.get_embedder
    monkeypatch.setattr(rag.embedder, "get_embedder", lambda s: loads.append(s) or real(s))
    assert ingest_paths([src], settings, progress=False).chunks_embedded > 0 and len(loads) == 1
    again = ingest_paths([src], settings, progress=False)
    assert again.ok and again.unchanged == 2 and len(loads) == 1
    (src / "b.md").write_text((src / "b.md").read_text().replace("39 languages", "41 languages"))
    assert ingest_paths([src], settings, progress=False).chunks_embedded > 0 and len(loads) == 2


def test_declared_dimension_matches_the_loaded_model():
    from rag.embedder import declared_dimension, get_embedder

    assert declared_dimension(packaged_minilm_path()) == get_embedder(Settings()).dim == 384
    assert declared_dimension("/nonexistent/model") is None


def test_a_file_that_fails_to_load_keeps_its_stories(workdir):
    tmp, src, settings = workdir
    ingest_paths([src], settings, progress=False)
    (src / "b.md").write_text("---\ntitle: [broken\n---\nbody")
    r = ingest_paths([src], settings, progress=False)
    assert r.removed == 0 and r.stories_total == 2
    assert any("b.md" in s["path"] for s in r.skipped)


def test_near_duplicate_becomes_one_story_with_both_outlets(workdir):
    tmp, src, settings = workdir
    (src / "a2.md").write_text(story_md("Orbital's Kestrel 4 arm picks 1,200 parcels an hour", "2026-03-04",
                                        "Logistics Daily", "https://logistics.example.com/orbital-arm", BODY_A_SYNDICATED))
    r = ingest_paths([src], settings, progress=False)
    assert r.merged_duplicates == 1 and r.stories_total == 2, r
    rows = {row.title: row for row in NewsStore(settings).story_rows()}
    orbital = rows["Orbital Robotics doubles arm speed"]
    assert set(orbital.outlets) == {"Robot Report", "Logistics Daily"}
    assert "https://logistics.example.com/orbital-arm" in orbital.urls
    # the unrelated story stays its own story
    assert rows["Harbor Labs opens Tern-2 speech model"].outlets == ["AI Wire"]
    # and re-ingesting the same input changes nothing
    again = ingest_paths([src], settings, progress=False)
    assert (again.chunks_embedded, again.merged_duplicates, again.unchanged) == (0, 0, 3)


def test_chroma_holds_each_chunks_metadata_and_filters_on_it(workdir):
    """Read back from Chroma itself, not the catalogue: every key the store promises, a date range filter
    on the number, an outlet filter -- and a merged syndicated copy's outlet reaches Chroma without a
    re-embed."""
    tmp, src, settings = workdir
    ingest_paths([src], settings, progress=False)
    store = NewsStore(settings)
    got = store.collection.get(include=["metadatas"])
    by_id = dict(zip(got["ids"], got["metadatas"]))
    assert sorted(by_id) == sorted(store.all_chunks()[0])
    orbital = [m for m in by_id.values() if m["title"] == "Orbital Robotics doubles arm speed"]
    assert orbital and sorted(m["chunk_index"] for m in orbital) == list(range(len(orbital)))
    m = orbital[0]
    assert m["published_at"] == "2026-03-03" and isinstance(m["published_ts"], int)
    assert m["url"] == "https://example.org/robot/orbital-kestrel-4"
    assert json.loads(m["outlets_json"]) == ["Robot Report"] and json.loads(m["tags_json"]) == ["robotics"]
    assert m["story_id"] and all(x["story_id"] == m["story_id"] for x in orbital)
    # a range on the number keeps only March 4 (Tern-2); the outlet key keeps only Robot Report's story
    day4 = store.collection.get(where={"published_ts": {"$gte": m["published_ts"] + 1}}, include=["metadatas"])
    assert {x["title"] for x in day4["metadatas"]} == {"Harbor Labs opens Tern-2 speech model"}
    robot = store.collection.get(where={"o_robot_report": True}, include=["metadatas"])
    assert {x["title"] for x in robot["metadatas"]} == {"Orbital Robotics doubles arm speed"}
    store.close()
    (src / "a2.md").write_text(story_md("Orbital's Kestrel 4 arm picks 1,200 parcels an hour", "2026-03-04",
                                        "Logistics Daily", "https://logistics.example.com/orbital-arm", BODY_A_SYNDICATED))
    r = ingest_paths([src], settings, progress=False)
    assert r.merged_duplicates == 1 and r.chunks_embedded == 0, r
    merged = NewsStore(settings).collection.get(where={"o_logistics_daily": True}, include=["metadatas"])
    assert merged["ids"] and all(json.loads(x["outlets_json"]) == ["Robot Report", "Logistics Daily"]
                                 for x in merged["metadatas"])


def test_lexical_index_rebuild_reuses_only_what_did_not_change(workdir, monkeypatch):
    """The chunk copy beside BM25 must hold exactly Chroma's vectors and the catalogue's text. Unchanged
    chunks come from the previous copy, chunks an ingest just embedded from the ingest itself: only
    what neither has is read back from Chroma. A retitled story (same body, new embedded header) must
    not keep its old vector."""
    import numpy as np

    import ingest.pipeline
    from rag.lexical import LexicalIndex

    tmp, src, settings = workdir
    ingest_paths([src], settings, progress=False)
    asked: list[str] = []
    real = NewsStore.chunk_vectors
    monkeypatch.setattr(NewsStore, "chunk_vectors", lambda self, ids: (asked.extend(ids), real(self, ids))[1])

    def copy_matches_store() -> None:
        store = NewsStore(settings)
        lex = LexicalIndex.load(store)
        ids, docs, metas = store.all_chunks()
        assert lex.ids == ids
        vecs, stored = lex.vectors(ids), real(store, ids)
        assert all(np.allclose(vecs[c], stored[c], atol=1e-6) for c in ids)
        assert [lex.sources([c])[c].text for c in ids] == docs
        assert [h.chunk_id for h in lex.search("Tern-3 inference card", 1)] == \
            [c for c, m in zip(ids, metas) if "Tern-3" in m["title"]]

    # 1. an ingest that dies after committing, before publishing its snapshot (a fake failure: a real kill
    # cannot be timed to land exactly there); readers keep the old snapshot, the next ingest publishes
    # one from the old copy
    (src / "a.md").write_text((src / "a.md").read_text().replace("Orbital Robotics doubles arm speed",
                                                                 "Kestrel 4 arm doubles its picking rate"))
    (src / "c.md").write_text(story_md("Quarry Systems ships Tern-3 inference card", "2026-03-05", "Chip Desk",
                                       "https://example.org/chips/quarry-tern-3",
                                       "Quarry Systems began shipping its Tern-3 inference card to cloud customers on "
                                       "March 5, 2026. The card draws 75 watts and fits a standard server slot, the "
                                       "company said, and early buyers include two Nordic hosting firms."))

    def die(*a, **k):
        raise RuntimeError("killed before the index build")

    monkeypatch.setattr(ingest.pipeline, "build_lexical_index", die)
    r = ingest_paths([src], settings, progress=False)
    assert r.error and (r.new, r.updated, r.unchanged) == (1, 1, 1), r
    monkeypatch.undo()
    store = NewsStore(settings)
    assert LexicalIndex.load(store).generation < store.generation()   # still the last published one
    monkeypatch.setattr(NewsStore, "chunk_vectors", lambda self, ids: (asked.extend(ids), real(self, ids))[1])
    r = ingest_paths([src], settings, progress=False)
    assert not r.error and r.unchanged == 3 and r.chunks_embedded == 0
    copy_matches_store()
    ids = NewsStore(settings).all_chunks()[0]
    harbor = [c for c, m in zip(ids, NewsStore(settings).all_chunks()[2]) if m["title"].startswith("Harbor")]
    assert set(asked) == set(ids) - set(harbor)        # the retitled and the new story, not the unchanged one
    # 2. an ingest that finishes hands its own vectors to the index: nothing is read back from Chroma
    asked.clear()
    (src / "c.md").write_text((src / "c.md").read_text().replace("75 watts", "70 watts"))
    r = ingest_paths([src], settings, progress=False)
    assert r.updated == 1 and not r.error and asked == []
    copy_matches_store()


def test_exact_duplicate_is_skipped_with_its_reason(workdir):
    tmp, src, settings = workdir
    shutil.copy(src / "a.md", src / "copy-of-a.md")
    r = ingest_paths([src], settings, progress=False)
    assert r.stories_total == 2
    reasons = [s["reason"] for s in r.skipped]
    assert any("exact duplicate" in x for x in reasons), reasons


def test_opening_a_store_with_another_model_names_both_and_how_to_rebuild(workdir, tmp_path):
    tmp, src, settings = workdir
    ingest_paths([src], settings, progress=False)
    other = tmp_path / "my-minilm-copy"
    shutil.copytree(packaged_minilm_path(), other)
    r = ingest_paths([src], Settings(store_dir=settings.store_dir, embed_model=str(other)), progress=False)
    assert r.error and "all-MiniLM-L6-v2" in r.error and "my-minilm-copy" in r.error and "rebuild" in r.error
    from rag.pipeline import NewsBot
    from rag.store import ModelMismatchError
    with pytest.raises(ModelMismatchError):
        NewsBot(Settings(store_dir=settings.store_dir, embed_model=str(other)))


def run_cli(*args, env=None):
    return subprocess.run([sys.executable, "-m", "ingest", *map(str, args)], capture_output=True, text=True,
                          cwd=ROOT, env={**os.environ, **(env or {})}, timeout=600)


def test_cli_json_summary_and_exit_codes(workdir):
    tmp, src, settings = workdir
    (src / "notes.docx").write_bytes(b"PK\x03\x04 not a story")
    p = run_cli(src, tmp / "does-not-exist.md", "--store", settings.store_dir, "--json")
    assert p.returncode == 0, p.stderr
    d = json.loads(p.stdout)
    for key in ("stories_total", "new", "updated", "unchanged", "merged_duplicates", "chunks_embedded", "skipped"):
        assert key in d
    assert d["stories_total"] == 2 and d["new"] == 2
    paths = {Path(s["path"]).name: s["reason"] for s in d["skipped"]}
    assert "does-not-exist.md" in paths and "notes.docx" in paths
    # nothing usable at all: non-zero exit, with the reasons printed
    bad = tmp / "bad"
    bad.mkdir()
    (bad / "x.json").write_text("{not json")
    p = run_cli(bad, "--store", tmp / "store2")
    assert p.returncode == 1 and "x.json" in p.stdout


def _write_many(folder: Path, n: int) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    for i in range(n):
        body = (f"Test lab number {i} reported on day {i % 28 + 1} that its model Quill-{i} reached a score of "
                f"{50 + i % 40} on a reading benchmark. " * 3 +
                f"The team said the next version, Quill-{i + 1}, would be trained on {i + 3} billion tokens and "
                f"released to partners within {i % 11 + 2} weeks, pending a safety review by an outside group. " * 2)
        (folder / f"s{i:03d}.md").write_text(story_md(f"Lab {i} reports Quill-{i} benchmark result", f"2026-02-{i % 28 + 1:02d}",
                                                      "Test Wire", f"https://example.org/quill/{i}", body))


def _store_snapshot(store_dir: Path) -> tuple:
    s = NewsStore(Settings(store_dir=store_dir))
    ids, docs, metas = s.all_chunks()
    rows = sorted((r.id, r.title, r.chunk_count) for r in s.story_rows())
    assert chroma_ids(s) == sorted(ids)              # no orphan vector in Chroma, none missing
    return sorted(zip(ids, docs)), rows, len(ids)


def test_kill_9_mid_ingest_then_rerun_equals_a_clean_run(tmp_path):
    """A real subprocess killed with SIGKILL while it writes; the rerun must leave the clean-run store."""
    src = tmp_path / "many"
    _write_many(src, 160)
    killed = tmp_path / "killed"
    env = {**os.environ, "NEWSRAG_EMBED_BATCH_SIZE": "1"}     # groups of 64 chunks: several commits to kill between
    proc = subprocess.Popen([sys.executable, "-m", "ingest", str(src), "--store", str(killed), "--no-progress"],
                            cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 600
    written = 0
    while time.time() < deadline and proc.poll() is None:
        db = killed / "catalog.sqlite"
        if db.exists():
            try:
                con = sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=1)
                written = con.execute("SELECT COUNT(*) FROM stories").fetchone()[0]
                con.close()
            except sqlite3.Error:
                written = 0
        if written >= 20:
            break
        time.sleep(0.2)
    assert proc.poll() is None, "ingest finished before it could be killed; make the input bigger"
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    assert 0 < written < 160
    again = run_cli(src, "--store", killed, "--json", env={"NEWSRAG_EMBED_BATCH_SIZE": "1"})
    assert again.returncode == 0, again.stderr
    clean = tmp_path / "clean"
    assert run_cli(src, "--store", clean, "--json").returncode == 0
    k_chunks, k_rows, k_n = _store_snapshot(killed)
    c_chunks, c_rows, c_n = _store_snapshot(clean)
    assert k_rows == c_rows and len(k_rows) == 160
    assert k_chunks == c_chunks and k_n == c_n      # no duplicate or orphan chunks, none missing


def test_a_write_larger_than_chromas_max_batch_is_split(tmp_path):
    """Local Chroma refuses more than ~5,461 rows per write (llama-index's Chroma store trips on it with
    the whole digests). A group that big happens with a large NEWSRAG_EMBED_BATCH_SIZE; written here
    directly with random unit vectors, since embedding 5,500 chunks only to reach the limit costs minutes."""
    import numpy as np
    from datetime import date

    from rag.records import Chunk, SourceLink, Story

    store = NewsStore(Settings(store_dir=tmp_path / "store"), writable=True)
    store.bind_model("test-model", 8)
    n = store.max_batch() + 39
    story = Story(id="big", title="A very long story", text="x", published_at=date(2026, 1, 1),
                  sources=[SourceLink("Wire", "https://example.org/big")], tags=["t"], origin="test")
    chunks = [Chunk(id=f"big:{i}", story_id="big", index=i, text=f"part {i}", embed_text="", n_tokens=2)
              for i in range(n)]
    vecs = np.random.default_rng(0).standard_normal((n, 8)).astype(np.float32)
    store.write_chunk_groups([(story, chunks, vecs / np.linalg.norm(vecs, axis=1, keepdims=True))])
    assert store.collection.count() == n


def test_near_duplicate_windows_cover_each_new_story_and_merge_overlaps():
    """Near-duplicate matching reads only stored stories within near_duplicate_days of a new one."""
    from datetime import date

    from ingest.pipeline import _windows

    d = date(2026, 3, 10)
    assert _windows([d, date(2026, 3, 13), date(2026, 4, 30), d], 7) == [
        (date(2026, 3, 3), date(2026, 3, 20)), (date(2026, 4, 23), date(2026, 5, 7))]
    assert _windows([], 7) == []


def _chroma_engine_affinities() -> dict[int, set[int]]:
    from rag.store import _chroma_engine_threads

    return {tid: os.sched_getaffinity(tid) for tid in _chroma_engine_threads()}


@pytest.mark.skipif(not hasattr(os, "sched_setaffinity") or len(os.sched_getaffinity(0)) < 2,
                    reason="thread affinity needs Linux and at least two cores")
def test_chroma_writes_run_on_one_core_and_give_the_cores_back(workdir):
    """Chroma's engine threads hand each SQL statement between them; on one core the hand-offs skip the
    cross-core wake-ups (an upsert measured ~35% faster). The pin must hold during the ingest's upserts and
    be undone after them, or every later query would run on one core."""
    _, _, settings = workdir
    everything = os.sched_getaffinity(0)
    store = NewsStore(settings, writable=True)
    store.bind_model("test-model", 8)
    seen: list[dict[int, set[int]]] = []
    real_upsert = type(store.collection).upsert

    def watching_upsert(self, *a, **kw):
        seen.append(_chroma_engine_affinities())
        return real_upsert(self, *a, **kw)

    import numpy as np
    from datetime import date

    from rag.records import Chunk, SourceLink, Story

    story = Story(id="s1", title="Pinned write", text="x", published_at=date(2026, 1, 1),
                  sources=[SourceLink("Wire", "https://example.org/pin")], tags=["t"], origin="test")
    chunks = [Chunk(id=f"s1:{i}", story_id="s1", index=i, text=f"part {i}", embed_text="", n_tokens=2) for i in range(3)]
    vecs = np.eye(3, 8, dtype=np.float32)
    try:
        type(store.collection).upsert = watching_upsert
        store.write_chunk_groups([(story, chunks, vecs)])
    finally:
        type(store.collection).upsert = real_upsert
    assert seen and seen[0], "Chroma's engine threads were not found during the upsert"
    assert all(len(cpus) == 1 for cpus in seen[0].values()), seen[0]
    assert os.sched_getaffinity(0) == everything          # the caller's own thread is never pinned
    after = _chroma_engine_affinities()
    assert after and all(cpus == everything for cpus in after.values()), after
    assert store.collection.count() == 3
