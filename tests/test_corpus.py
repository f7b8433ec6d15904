"""The shipped corpus: well-formed, big enough, and written in our own words.

The digests in ../shared carry no licence, so the corpus may share facts, dates and URLs with them but
never a sentence. The licence check mirrors the repository's before-stop hook (any 10-word run shared
with a digest fails) except that it leaves out URLs, which the hook also counts: long URLs split into
ten or more words and match the digest that cited them. Run as a script (`python tests/test_corpus.py`) to see every offending run.
"""
from __future__ import annotations

import os
import re
import sys
import zlib
from datetime import date
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
CORPUS = ROOT / "corpus"
DIGESTS = ROOT.parent / "shared" / "data" / "lastweekinai-digests"
SHINGLE = 10


def _story_files() -> list[Path]:
    return sorted(p for p in CORPUS.glob("*.md") if p.name != "README.md")


def _split(path: Path) -> tuple[dict, str]:
    raw = path.read_text(encoding="utf-8")
    m = re.match(r"^---\n(.*?)\n---\n(.*)$", raw, re.S)
    assert m, f"{path.name}: no YAML front matter"
    return yaml.safe_load(m.group(1)), m.group(2)


def _words(text: str) -> list[str]:
    return re.findall(r"[a-z0-9$%']+", text.lower())


_URL = re.compile(r"https?://\S+")


def _shingles(text: str) -> dict[int, str]:
    w = _words(text)
    return {zlib.crc32(" ".join(w[i:i + SHINGLE]).encode()): " ".join(w[i:i + SHINGLE])
            for i in range(len(w) - SHINGLE + 1)}


def test_corpus_has_enough_well_formed_stories():
    files = _story_files()
    assert len(files) >= 150, f"corpus has {len(files)} stories, needs >= 150"
    problems = []
    for path in files:
        meta, body = _split(path)
        n_words = len(body.split())
        if not meta.get("title"):
            problems.append(f"{path.name}: no title")
        if not isinstance(meta.get("published"), date):
            problems.append(f"{path.name}: published is not an ISO date")
        sources = meta.get("sources") or []
        if not sources or not all(isinstance(s, dict) and s.get("outlet") and
                                  str(s.get("url", "")).startswith("http") for s in sources):
            problems.append(f"{path.name}: sources must be a list of {{outlet, url}}")
        if not isinstance(meta.get("tags"), list) or not meta["tags"]:
            problems.append(f"{path.name}: tags must be a non-empty list")
        if not 100 <= n_words <= 300:
            problems.append(f"{path.name}: body has {n_words} words (100-300)")
    assert not problems, "\n".join(problems)


def test_every_story_has_its_own_main_url():
    """The main (first) URL is a story's identity at ingest: two stories sharing it would collapse into one."""
    firsts: dict[str, str] = {}
    clashes = []
    for path in _story_files():
        meta, _ = _split(path)
        url = (meta.get("sources") or [{}])[0].get("url")
        if url in firsts:
            clashes.append(f"{path.name} and {firsts[url]} both lead with {url}")
        firsts[url] = path.name
    assert not clashes, "\n".join(clashes)


def _digest_shingles() -> set[int]:
    ref: set[int] = set()
    for p in DIGESTS.rglob("*.md"):
        if p.name != "SOURCE.md":
            ref |= set(_shingles(p.read_text(encoding="utf-8", errors="ignore")))
    return ref


def copied_runs() -> dict[str, list[str]]:
    ref = _digest_shingles()
    out = {}
    for path in _story_files():
        # Source URLs are facts we are allowed to carry over; only our own prose is compared.
        sh = _shingles(_URL.sub(" ", path.read_text(encoding="utf-8")))
        hits = [run for h, run in sh.items() if h in ref]
        if hits:
            out[path.name] = hits
    return out


@pytest.mark.usefixtures("digests_dir")      # conftest: skipped when absent, a failure under CI=true
def test_corpus_shares_no_sentence_with_the_unlicensed_digests():
    bad = copied_runs()
    assert not bad, "corpus text copied from the digests:\n" + "\n".join(
        f"{name}: {runs[:3]}" for name, runs in bad.items())


def _source_audit():
    """The audit of every corpus source against the digest entry for its URL (scripts/audit_corpus_sources.py)."""
    if not DIGESTS.is_dir():
        if os.environ.get("CI") == "true":
            pytest.fail("../shared/data/lastweekinai-digests is absent under CI")
        pytest.skip("../shared/data/lastweekinai-digests is absent")
    sys.path.insert(0, str(ROOT / "scripts"))
    import audit_corpus_sources
    return audit_corpus_sources


def test_no_source_is_published_after_its_story():
    """A reader who clicks a source must find an article that existed when the story was reported."""
    audit = _source_audit()
    checks = audit.audit()
    dated = [c for c in checks if c.link is not None]
    assert len(dated) >= 300, f"only {len(dated)} corpus sources found in the digests: the lookup is broken"
    late = [f"{c.story}: {c.url} ({c.link.latest_possible} > {c.published})" for c in checks if c.after_story]
    assert not late, "sources published after their story:\n" + "\n".join(late)


def test_each_source_reports_the_story_s_facts():
    """Each source's digest summary shares the story's key facts (names, numbers, rare terms)."""
    audit = _source_audit()
    checks = [c for c in audit.audit() if c.share is not None]
    assert len(checks) >= 200, f"only {len(checks)} sources with a digest summary: the lookup is broken"
    off = [f"{c.story}: {c.url} shares {c.share:.0%} (\"{c.link.title[:70]}\")" for c in checks if c.off_topic]
    assert not off, "sources that report something else:\n" + "\n".join(off)


def test_the_source_audit_catches_a_wrong_source():
    """Negative control: the check must fail a chip story that cites another company's chip article."""
    audit = _source_audit()
    links = audit.digest_links()
    cerebras = links[audit.canonical_url("https://spectrum.ieee.org/cerebras-chip-cs3")]
    meta, body = _split(CORPUS / "2024-03-18-nvidia-unveils-blackwell-b200.md")
    terms = set(audit.search_terms(f"{meta['title']} {body}"))
    idf = audit.entry_weights(links)
    assert audit.fact_share(cerebras, terms, idf) < audit.MIN_FACT_SHARE
    verge = links[audit.canonical_url(meta["sources"][0]["url"])]
    assert audit.fact_share(verge, terms, idf) >= audit.MIN_FACT_SHARE
    later = audit.SourceCheck("x.md", date(2025, 9, 12), "TechCrunch", "https://techcrunch.com/2025/09/17/x",
                              audit.DigestLink("u", "t", "s", date(2025, 9, 22), date(2025, 9, 17)))
    assert later.after_story


if __name__ == "__main__":
    if not DIGESTS.is_dir():
        sys.exit("digests absent")
    bad = copied_runs()
    for name, runs in sorted(bad.items()):
        print(f"{name}: {len(runs)} shared 10-word runs")
        for r in runs[:5]:
            print("   ", r)
    print(f"{len(_story_files())} story files; {len(bad)} with copied runs")
    sys.exit(1 if bad else 0)
