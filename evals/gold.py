"""The gold sets: loading, validation and story-id bookkeeping.

A gold line (JSON object) has

    id, question, type, reference, must_include, gold_story_ids, today
    optional: conversation + turn (follow-up pairs), gold_files (corpus file stems the ids come from),
              gold_urls (digest headline URLs the ids come from), note

Story ids are never typed by hand. For corpus/ they are computed from `gold_files` with the real
loader (`ingest.loaders.load_paths`, which calls `rag.records.story_id_for` on the story's first
source URL); for the digests from `gold_urls` with `rag.records.story_id_for([url], ...)`, the id
the digest loader gives a headline. `python -m evals.gold fill` rewrites the ids;
`python -m evals.gold check` verifies ids, must_include strings and conversation pairs.
"""
from __future__ import annotations

import argparse
import json
import re
import sys
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path
from typing import Any

EVALS_DIR = Path(__file__).resolve().parent
PROJECT_ROOT = EVALS_DIR.parent
CORPUS_GOLD = EVALS_DIR / "gold.jsonl"
DIGESTS_GOLD = EVALS_DIR / "gold_digests.jsonl"
DEFAULT_DIGESTS_DIR = PROJECT_ROOT.parent / "shared" / "data" / "lastweekinai-digests" / "digests"

TYPES = ("fact", "number", "date", "who", "multi-story", "latest", "timeline", "follow-up", "unanswerable")
ANSWERABLE = tuple(t for t in TYPES if t != "unanswerable")


class GoldError(ValueError):
    """The gold file is malformed; the message names the line and the problem."""


@dataclass
class GoldItem:
    id: str
    question: str
    type: str
    reference: str
    must_include: list[str]
    gold_story_ids: list[str]
    today: date
    conversation: str | None = None
    turn: int | None = None
    gold_files: list[str] = field(default_factory=list)
    gold_urls: list[str] = field(default_factory=list)
    corpus: str = "corpus"          # "corpus" or "digests": which store the question is asked of
    note: str = ""
    absent_terms: list[str] = field(default_factory=list)   # unanswerable: terms the corpus must not contain

    @property
    def answerable(self) -> bool:
        return self.type != "unanswerable"


def _item(raw: dict[str, Any], where: str) -> GoldItem:
    for key in ("id", "question", "type", "reference", "must_include", "gold_story_ids"):
        if key not in raw:
            raise GoldError(f"{where}: missing field {key!r}")
    if raw["type"] not in TYPES:
        raise GoldError(f"{where}: type {raw['type']!r} is not one of {', '.join(TYPES)}")
    for key in ("must_include", "gold_story_ids"):
        if not isinstance(raw[key], list) or not all(isinstance(s, str) and s for s in raw[key]):
            raise GoldError(f"{where}: {key} must be a list of non-empty strings")
    if raw["type"] == "unanswerable":
        if raw["gold_story_ids"] or raw["must_include"]:
            raise GoldError(f"{where}: an unanswerable question has no gold stories and no must_include")
    else:
        if not raw["must_include"]:
            raise GoldError(f"{where}: an answerable question needs at least one must_include string")
    try:
        today = date.fromisoformat(raw.get("today") or "2026-06-01")
    except ValueError as exc:
        raise GoldError(f"{where}: today {raw.get('today')!r} is not YYYY-MM-DD") from exc
    return GoldItem(id=str(raw["id"]), question=str(raw["question"]), type=raw["type"],
                    reference=str(raw["reference"]), must_include=list(raw["must_include"]),
                    gold_story_ids=list(raw["gold_story_ids"]), today=today,
                    conversation=raw.get("conversation"), turn=raw.get("turn"),
                    gold_files=list(raw.get("gold_files") or []), gold_urls=list(raw.get("gold_urls") or []),
                    corpus=raw.get("corpus", "corpus"), note=raw.get("note", ""),
                    absent_terms=list(raw.get("absent_terms") or []))


def load_gold(path: str | Path) -> list[GoldItem]:
    """Read and validate a gold JSONL file; conversations come back with turn 1 before turn 2."""
    path = Path(path)
    if not path.is_file():
        raise GoldError(f"{path}: no such gold file")
    items: list[GoldItem] = []
    for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        if not line.strip():
            continue
        try:
            raw = json.loads(line)
        except json.JSONDecodeError as exc:
            raise GoldError(f"{path}:{n}: not JSON ({exc.msg})") from exc
        items.append(_item(raw, f"{path.name}:{n}"))
    ids = [i.id for i in items]
    dup = sorted({i for i in ids if ids.count(i) > 1})
    if dup:
        raise GoldError(f"{path}: duplicate ids {dup}")
    convs: dict[str, list[GoldItem]] = {}
    for it in items:
        if it.conversation:
            convs.setdefault(it.conversation, []).append(it)
    for cid, turns in convs.items():
        if sorted(t.turn or 0 for t in turns) != list(range(1, len(turns) + 1)) or len(turns) < 2:
            raise GoldError(f"{path}: conversation {cid} must have turns 1..n (n >= 2)")
        pos = [items.index(t) for t in sorted(turns, key=lambda t: t.turn)]
        if pos != sorted(pos):
            raise GoldError(f"{path}: conversation {cid} turns are out of order")
    return items


def corpus_kind(items: list[GoldItem]) -> str:
    kinds = {i.corpus for i in items}
    if len(kinds) != 1:
        raise GoldError(f"a gold file must target one corpus, found {sorted(kinds)}")
    return kinds.pop()


# ------------------------------------------------------------------------------- id bookkeeping

def corpus_story_ids(corpus_dir: Path) -> dict[str, Any]:
    """file stem -> Story, loaded by the real loader (so ids are exactly what ingest stores)."""
    from ingest.loaders import load_paths
    from rag.settings import Settings

    result = load_paths([corpus_dir], Settings())
    return {Path(s.origin).stem: s for s in result.stories}


def digest_story_id(url: str) -> str:
    from rag.records import story_id_for

    return story_id_for([url], "", "")


def fill_ids(path: Path, corpus_dir: Path) -> int:
    """Recompute gold_story_ids from gold_files / gold_urls; returns how many lines changed."""
    lines = [json.loads(l) for l in path.read_text(encoding="utf-8").splitlines() if l.strip()]
    stories = corpus_story_ids(corpus_dir) if any(l.get("gold_files") for l in lines) else {}
    changed = 0
    for raw in lines:
        if raw.get("gold_files"):
            missing = [f for f in raw["gold_files"] if f not in stories]
            if missing:
                raise GoldError(f"{raw['id']}: gold_files not in {corpus_dir}: {missing}")
            ids = [stories[f].id for f in raw["gold_files"]]
        elif raw.get("gold_urls"):
            ids = [digest_story_id(u) for u in raw["gold_urls"]]
        else:      # ids kept as they are (the committed digests set carries ids only, see check_digest_gold)
            ids = list(raw.get("gold_story_ids") or [])
        if ids != raw.get("gold_story_ids"):
            raw["gold_story_ids"] = ids
            changed += 1
    path.write_text("".join(json.dumps(l, ensure_ascii=False) + "\n" for l in lines), encoding="utf-8")
    return changed


def check_corpus_gold(items: list[GoldItem], corpus_dir: Path) -> list[str]:
    """Problems with a corpus gold set: ids that do not match files, must_include strings absent
    from every gold story, unanswerable questions whose key terms occur in the corpus."""
    from evals.metrics import normalize_for_match, story_context

    problems: list[str] = []
    stories = corpus_story_ids(corpus_dir)
    for it in items:
        want = [stories[f].id for f in it.gold_files if f in stories]
        if len(want) != len(it.gold_files):
            problems.append(f"{it.id}: some gold_files are not in {corpus_dir}")
        if want != it.gold_story_ids:
            problems.append(f"{it.id}: gold_story_ids {it.gold_story_ids} != ids of gold_files {want} "
                            "(run python -m evals.gold fill)")
        text = normalize_for_match(" ".join(
            story_context(stories[f].title, stories[f].text, stories[f].published_at, stories[f].outlets)
            for f in it.gold_files if f in stories))
        for s in it.must_include:
            if normalize_for_match(s) not in text:
                problems.append(f"{it.id}: must_include {s!r} is in none of its gold stories")
    everything = "\n".join(f"{s.title}\n{s.text}" for s in stories.values()).lower()
    for it in items:
        if it.type == "unanswerable":
            if not it.absent_terms:
                problems.append(f"{it.id}: an unanswerable question needs absent_terms to verify against the corpus")
            for term in it.absent_terms:
                if re.search(r"(?<![a-z0-9])" + re.escape(term.lower()) + r"(?![a-z0-9])", everything):
                    problems.append(f"{it.id}: absent term {term!r} occurs in the corpus: not unanswerable")
    return problems


def _shared_run(a: str, b: str, n: int = 8) -> str | None:
    """The first run of n words that text a shares with text b (case-insensitive), if any."""
    wa = re.findall(r"[a-z0-9']+", a.lower())
    grams = {" ".join(wa[i:i + n]) for i in range(len(wa) - n + 1)}
    wb = re.findall(r"[a-z0-9']+", b.lower())
    for i in range(len(wb) - n + 1):
        g = " ".join(wb[i:i + n])
        if g in grams:
            return g
    return None


def check_digest_gold(items: list[GoldItem], digests_dir: Path) -> list[str]:
    """Problems with the digests gold set: ids the digest loader does not produce (the committed set
    holds story ids, not the digests' URLs, which would carry their wording into the project), must_include strings absent from the gold stories, absent_terms that occur, and any
    8-word run a question or reference shares with its gold stories (the digests carry no licence)."""
    from ingest.loaders import load_paths
    from rag.settings import Settings

    from evals.metrics import normalize_for_match, story_context

    problems: list[str] = []
    stories: dict[str, list] = {}
    for s in load_paths([digests_dir], Settings()).stories:
        stories.setdefault(s.id, []).append(s)
    for it in items:
        if it.gold_urls and [digest_story_id(u) for u in it.gold_urls] != it.gold_story_ids:
            problems.append(f"{it.id}: gold_story_ids do not match story_id_for(gold_urls)")
        missing = [g for g in it.gold_story_ids if g not in stories]
        if missing:
            problems.append(f"{it.id}: gold stories not produced by the digest loader: {missing}")
        gold_text = "\n".join(f"{s.title}\n{s.text}" for g in it.gold_story_ids for s in stories.get(g, []))
        # what an answer may take from a story includes its date and outlets (see evals.metrics.story_context)
        norm = normalize_for_match("\n".join(story_context(s.title, s.text, s.published_at, s.outlets)
                                              for g in it.gold_story_ids for s in stories.get(g, [])))
        for m in it.must_include:
            if normalize_for_match(m) not in norm:
                problems.append(f"{it.id}: must_include {m!r} is in none of its gold stories")
        for own in (it.question, it.reference):
            run = _shared_run(own, gold_text)
            if run:
                problems.append(f"{it.id}: shares the 8-word run {run!r} with the digest text; write it in your own words")
    everything = "\n".join(f"{s.title}\n{s.text}" for v in stories.values() for s in v).lower()
    for it in items:
        for term in it.absent_terms:
            if re.search(r"(?<![a-z0-9])" + re.escape(term.lower()) + r"(?![a-z0-9])", everything):
                problems.append(f"{it.id}: absent term {term!r} occurs in the digests: not unanswerable")
        if it.type == "unanswerable" and not it.absent_terms:
            problems.append(f"{it.id}: an unanswerable question needs absent_terms")
    return problems


def main(argv: list[str] | None = None) -> int:
    import rag.offline  # noqa: F401

    ap = argparse.ArgumentParser(prog="python -m evals.gold", description=__doc__.split("\n")[0])
    ap.add_argument("action", choices=["fill", "check"])
    ap.add_argument("--gold", type=Path, default=CORPUS_GOLD)
    ap.add_argument("--corpus", type=Path, default=PROJECT_ROOT / "corpus")
    ap.add_argument("--digests", type=Path, default=DEFAULT_DIGESTS_DIR)
    a = ap.parse_args(argv)
    if a.action == "fill":
        print(f"{fill_ids(a.gold, a.corpus)} line(s) updated in {a.gold}")
        return 0
    items = load_gold(a.gold)
    if corpus_kind(items) == "corpus":
        problems = check_corpus_gold(items, a.corpus)
    elif a.digests.is_dir():
        problems = check_digest_gold(items, a.digests)
    else:
        print(f"{a.digests} is absent: digest gold ids not checked")
        problems = []
    for p in problems:
        print(p)
    print(f"{len(items)} questions, {len(problems)} problem(s)")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
