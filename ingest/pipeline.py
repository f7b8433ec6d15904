"""Ingest: load stories -> drop exact duplicates -> merge near-duplicates -> chunk -> embed -> store.

Incremental by construction: every input story ("member") is remembered with its fingerprint, so a
re-run embeds only what is new or changed, and a story that vanished from a re-ingested source is
removed from the store (unless `keep_missing`). Near-duplicates join an existing story as extra
sources; when that leaves the story's text unchanged only its metadata is rewritten.
"""
from __future__ import annotations

import sys
import threading
import time
from dataclasses import asdict, dataclass, field
from datetime import date, timedelta
from pathlib import Path
from typing import Callable, Sequence

import numpy as np

from ingest.chunking import chunk_stories
from ingest.dedup import Candidate, NearDuplicateIndex, exact_key, merge_members, shingles
from ingest.loaders import LoadResult, Skipped, load_paths
from rag.embedder import LazyEmbedder
from rag.lexical import build_lexical_index, lexical_index_is_fresh
from rag.records import Story, content_hash
from rag.settings import Settings
from rag.store import NewsStore, StoreError
from rag.untrusted import instruction_reason, instruction_sentences


@dataclass
class IngestReport:
    stories_total: int = 0
    new: int = 0
    updated: int = 0
    unchanged: int = 0
    merged_duplicates: int = 0
    removed: int = 0
    chunks_embedded: int = 0
    chunks_total: int = 0
    skipped: list[dict] = field(default_factory=list)
    # sentences of this run's new or changed stories written as instructions to an AI (rag.untrusted):
    # stored with their story, never quoted in an answer nor counted as support
    instruction_like: list[dict] = field(default_factory=list)
    recovered: int = 0
    seconds: float = 0.0
    embed_model: str = ""
    store: str = ""
    error: str | None = None

    @property
    def ok(self) -> bool:
        """Failed only when the store failed, or when input was given and nothing in it could be used."""
        if self.error:
            return False
        used = self.new + self.updated + self.unchanged + self.merged_duplicates + self.removed
        return used > 0 or not self.skipped

    def to_dict(self) -> dict:
        return asdict(self)


def _text_hash(story: Story) -> str:
    return content_hash(story.title, story.published_at.isoformat(), story.text)


def _covered(origin: str, inputs: list[str]) -> bool:
    for p in inputs:
        if origin == p or origin.startswith(p.rstrip("/") + "/"):
            return True
    return False


def _normalise_inputs(paths: Sequence[str | Path]) -> list[str]:
    out = []
    for p in paths:
        s = str(p)
        out.append(s if s.startswith(("http://", "https://")) else str(Path(s).resolve()))
    return out


class _Progress:
    """A progress bar on stderr showing stories/s and chunks/s; silent when stderr is not a terminal."""

    def __init__(self, total: int, enabled: bool):
        self.bar = None
        self.t0 = time.perf_counter()
        self.chunks = 0
        if enabled and total:
            from tqdm import tqdm
            self.bar = tqdm(total=total, unit="story", file=sys.stderr, dynamic_ncols=True, desc="ingest")

    def update(self, stories: int, chunks: int) -> None:
        self.chunks += chunks
        if self.bar:
            self.bar.update(stories)
            dt = max(time.perf_counter() - self.t0, 1e-9)
            self.bar.set_postfix_str(f"{self.bar.n / dt:.1f} stories/s, {self.chunks / dt:.1f} chunks/s")

    def close(self) -> None:
        if self.bar:
            self.bar.close()


def ingest_paths(paths: Sequence[str | Path], settings: Settings | None = None, *, keep_missing: bool = False,
                 progress: bool = True, on_event: Callable[[str], None] | None = None) -> IngestReport:
    """Ingest files, folders and feed URLs into the store; never raises for bad input."""
    settings = settings or Settings()
    t0 = time.perf_counter()
    say = on_event or (lambda msg: None)
    say("reading sources")
    loaded: LoadResult = load_paths(paths, settings)
    return ingest_loaded(loaded, _normalise_inputs(paths), settings, keep_missing=keep_missing, progress=progress,
                         on_event=on_event, started=t0)


def ingest_loaded(loaded: LoadResult, inputs: list[str], settings: Settings, *, keep_missing: bool = False,
                  progress: bool = False, on_event: Callable[[str], None] | None = None,
                  started: float | None = None) -> IngestReport:
    """Ingest stories already loaded from `inputs` (normalised paths and URLs; with keep_missing=False a
    story of theirs that is no longer in `loaded` is removed). Never raises for bad input."""
    t0 = started if started is not None else time.perf_counter()
    report = IngestReport(store=str(settings.store_dir))
    say = on_event or (lambda msg: None)
    report.skipped = [asdict(s) for s in loaded.skipped]
    store = None
    try:
        embedder = LazyEmbedder(settings)         # loaded only if something needs embedding
        report.embed_model = embedder.name
        store = NewsStore(settings, writable=True)   # waits for, or refuses beside, another ingest
        store.bind_model(embedder.name, embedder.dim)
        report.recovered = store.recover()
        _ingest(loaded, store, embedder, settings, report, inputs, keep_missing, progress, say)
        report.stories_total = store.count_stories()
        report.chunks_total = store.count_chunks()
    except StoreError as exc:
        report.error = str(exc)
    except Exception as exc:  # the store or model failed: report it, the CLI turns it into exit 1
        report.error = f"{type(exc).__name__}: {exc}"
    finally:
        if store is not None:
            store.close()                         # releases the writer lock
    report.seconds = round(time.perf_counter() - t0, 3)
    return report


def instruction_findings(stories: Sequence[Story]) -> list[dict]:
    """Each instruction-like sentence (title included) of `stories`, with its story, for the report."""
    out = []
    for s in stories:
        for sent in [*(t for t in [s.title] if instruction_reason(t)), *instruction_sentences(s.text)]:
            out.append({"story_id": s.id, "title": s.title, "path": s.origin, "reason": instruction_reason(sent),
                        "sentence": sent[:300]})
    return out


def _ingest(loaded: LoadResult, store: NewsStore, embedder, settings: Settings, report: IngestReport,
            inputs: list[str], keep_missing: bool, progress: bool, say) -> None:
    known = store.members()                       # member_id -> (story_id, origin, fingerprint)
    # 1. exact duplicates inside this run, and classification against the store
    seen_keys: dict[str, Story] = {}
    seen_ids: dict[str, Story] = {}
    fresh: list[Story] = []                       # new or changed members
    present: set[str] = set()
    for s in loaded.stories:
        key = exact_key(s)
        first = seen_ids.get(s.id) or seen_keys.get(key)
        if first is not None:
            report.skipped.append(asdict(Skipped(s.origin, f"exact duplicate of '{first.title}' "
                                                 f"({first.origin}); same {'URL' if first.id == s.id else 'text'}")))
            continue
        seen_ids[s.id] = s
        seen_keys[key] = s
        present.add(s.id)
        have = known.get(s.id)
        if have and have[2] == s.fingerprint:
            report.unchanged += 1
        else:
            fresh.append(s)

    report.instruction_like = instruction_findings(fresh)

    # 2. members that vanished from a source this run re-read
    # A source that failed to load this run (malformed, unreachable) keeps its stories: bad input loses nothing.
    vanished: list[str] = []
    if not keep_missing:
        failed = {Path(s.path).resolve().as_posix() if not s.path.startswith(("http://", "https://")) else s.path
                  for s in loaded.skipped}
        for mid, (_, origin, _) in known.items():
            if mid not in present and _covered(origin, inputs) and origin not in failed:
                vanished.append(mid)

    if not fresh and not vanished and store.generation() and lexical_index_is_fresh(store):
        return

    # 3. assign fresh members to stories (existing, or new clusters) by near-duplicate matching
    affected: dict[str, list[Story]] = {}         # story_id -> its members after this run
    member_story = {mid: sid for mid, (sid, _, _) in known.items()}
    index = NearDuplicateIndex(settings.near_duplicate_jaccard, settings.near_duplicate_days)
    # only stored stories inside some fresh story's time window can be its near-duplicate
    for since, until in _windows([s.published_at for s in fresh], settings.near_duplicate_days):
        for sid, published_at, text in store.story_texts_between(since, until):
            index.add(Candidate(sid, published_at, shingles(text)))
    removed_members = set(vanished)

    def members_of(story_id: str) -> list[Story]:
        if story_id not in affected:
            affected[story_id] = [m for m in store.member_stories(story_id) if m.id not in removed_members]
        return affected[story_id]

    for mid in vanished:
        members_of(member_story[mid])
    new_story_ids: set[str] = set()
    for s in fresh:
        sig = shingles(s.text)
        if s.id in member_story:                   # changed member stays in its story
            sid = member_story[s.id]
            ms = members_of(sid)
            ms[:] = [m for m in ms if m.id != s.id] + [s]
            report.updated += 1
            continue
        target = index.match(s.published_at, sig)
        if target is not None:
            members_of(target).append(s)
            report.merged_duplicates += 1
        else:
            affected[s.id] = [s]
            new_story_ids.add(s.id)
            index.add(Candidate(s.id, s.published_at, sig))
            report.new += 1

    # 4. rewrite affected stories: delete emptied ones, re-embed changed text, else metadata only
    stored = store.story_hashes()
    # Every story this run rewrites is marked pending in the same transaction that drops its vanished
    # members: a kill anywhere after it leaves marks that the next run's recovery repairs, never a
    # story whose members are gone and which nothing marks (which a kill between the two used to leave).
    if affected or vanished:
        store.begin_rewrite(affected, vanished)
    to_embed: list[tuple[Story, list[Story]]] = []
    for sid, ms in affected.items():
        if not ms:
            store.delete_story(sid)
            report.removed += 1
            continue
        merged = merge_members(sid, ms)
        have = stored.get(sid)
        if have and have[0] == _text_hash(merged):
            chunks, metas = store.update_chunk_metadata(merged)
            store.commit_stories([(merged, have[1], have[0])], [(m, sid) for m in ms], chunks={sid: chunks},
                                 metas={sid: metas})
        else:
            to_embed.append((merged, ms))
    fresh_vectors = _embed_and_write(to_embed, store, embedder, settings, report, progress, say)
    say("building the lexical index")
    build_lexical_index(store, fresh_vectors)


def _windows(dates: list[date], days: int) -> list[tuple[date, date]]:
    """The date ranges within `days` of any of `dates`, overlapping ranges merged."""
    out: list[list[date]] = []
    for d in sorted(set(dates)):
        lo, hi = d - timedelta(days=days), d + timedelta(days=days)
        if out and lo <= out[-1][1]:
            out[-1][1] = max(out[-1][1], hi)
        else:
            out.append([lo, hi])
    return [(lo, hi) for lo, hi in out]


def _embed_and_write(work: list[tuple[Story, list[Story]]], store: NewsStore, embedder, settings: Settings,
                     report: IngestReport, progress: bool, say) -> dict[str, np.ndarray]:
    """Embed and store the stories; returns chunk id -> vector, so the lexical index's chunk copy
    need not read them back from Chroma."""
    written: dict[str, np.ndarray] = {}
    if not work:
        return written
    say(f"embedding {len(work)} stories")
    # Longest stories first: each group then holds chunks of like length, and the embedder, which sorts and
    # pads within a call, pads about as little as one call over everything would (on the digests, groups
    # in file order padded to 1.8% more word pieces, 5% more attention work, than one sorted call).
    work = sorted(work, key=lambda sm: -(len(sm[0].title) + len(sm[0].text)))
    # The lexical index built after this needs bm25s, whose import (scipy) costs ~0.5 s: done in the
    # background now, it runs between the embedder's calls instead of after them.
    threading.Thread(target=_import_bm25s, name="newsrag-import-bm25s", daemon=True).start()
    bar = _Progress(len(work), progress)
    batch: list[tuple[Story, list[Story], list, list]] = []    # story, members, chunks, encodings
    n_chunks = 0
    # Big groups let the embedder sort by length and pad little, and each Chroma upsert has a fixed cost:
    # 2,048 chunks per group measured ~15% more chunks/s than 512. Each group is committed atomically.
    target = max(settings.embed_batch_size * 64, 64)

    def flush() -> None:
        nonlocal batch, n_chunks
        if not batch:
            return
        store.mark_pending(s.id for s, _, _, _ in batch)
        texts = [c.embed_text for _, _, cs, _ in batch for c in cs]
        vecs = embedder.embed(texts, encodings=[e for _, _, _, es in batch for e in es])
        groups, pos = [], 0
        for story, _, chunks, _ in batch:
            groups.append((story, chunks, vecs[pos:pos + len(chunks)]))
            written.update(zip((c.id for c in chunks), vecs[pos:pos + len(chunks)]))
            pos += len(chunks)
        metas = store.write_chunk_groups(groups)
        store.commit_stories([(s, len(cs), _text_hash(s)) for s, _, cs, _ in batch],
                             [(m, s.id) for s, ms, _, _ in batch for m in ms],
                             chunks={s.id: cs for s, _, cs, _ in batch}, metas=metas)
        report.chunks_embedded += len(texts)
        bar.update(len(batch), len(texts))
        batch, n_chunks = [], 0

    # chunked a few hundred stories at a time: the tokenizer batches them across cores
    step = max(settings.embed_batch_size * 8, 8)
    for lo in range(0, len(work), step):
        part = work[lo:lo + step]
        chunked = chunk_stories([s for s, _ in part], budget=settings.chunk_tokens,
                                min_tokens=settings.chunk_min_tokens, max_embed_tokens=embedder.max_seq_length,
                                tokenize=embedder.tokenize)
        for (story, members), (chunks, encodings) in zip(part, chunked):
            batch.append((story, members, chunks, encodings))
            n_chunks += len(chunks)
            if n_chunks >= target:
                flush()
    flush()
    bar.close()
    return written


def _import_bm25s() -> None:
    try:
        import bm25s  # noqa: F401
    except Exception:  # noqa: BLE001 - build_lexical_index reports a real import failure itself
        pass
