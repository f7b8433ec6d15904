"""Audit the shipped corpus: is every listed source the article the story's facts came from?

    python scripts/audit_corpus_sources.py            # one line per questionable source, exit 1 if any
    python scripts/audit_corpus_sources.py --all      # every source with its date and fact overlap

A reader who clicks a citation must land on the article that reports what the story says. For every
source URL of every corpus/*.md story, this looks the URL up in the Last Week in AI digests
(../shared/data/lastweekinai-digests), which give each linked article's headline, date and summary,
and checks two things:

* date: the article is not published after the story it supports. The article's date is the date in
  its URL when it has one; otherwise the article appeared at most DIGEST_LAG_DAYS before the digest
  issue that linked it, so only a digest issue later than the story by more than that is a violation.
* facts: the digest's headline and summary for that URL share the story's key facts: the story holds
  at least MIN_FACT_SHARE of the entry's terms, each weighted by its rarity across the digests (names
  and numbers weigh most). A source below that reports something else (another chip, another model).
  Links the digests list only as "related" carry no summary of their own: their facts go unchecked.

Sources the digests never linked cannot be checked here and are listed as such (not as failures).
tests/test_corpus.py runs the same checks.
"""
from __future__ import annotations

import argparse
import math
import sys
from dataclasses import dataclass
from datetime import date, timedelta
from functools import lru_cache
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from ingest.loaders.digests import date_in_url, digest_date_for, parse_digest  # noqa: E402
from ingest.loaders.markdown import split_front_matter  # noqa: E402
from rag.records import canonical_url  # noqa: E402
from rag.text import search_terms  # noqa: E402

CORPUS = ROOT / "corpus"
DIGESTS = ROOT.parent / "shared" / "data" / "lastweekinai-digests" / "digests"
DIGEST_LAG_DAYS = 14        # a weekly digest links articles of the past week or two
# Below this share of its digest entry's (rarity-weighted) terms, a source is about something else. Set
# from the whole corpus's distribution (python scripts/audit_corpus_sources.py --all): the clear
# mismatches (a Cerebras chip article under a Blackwell story, a QwQ-32B article under a Qwen3-Next
# story) sit at 0.08-0.11, and articles that report the story's event start near 0.2.
MIN_FACT_SHARE = 0.2


@dataclass
class DigestLink:
    url: str
    title: str
    summary: str
    issue: date                    # the digest issue that linked it
    url_date: date | None          # the date in the article's own URL, when it has one

    @property
    def latest_possible(self) -> date:
        return self.url_date or self.issue

    @property
    def earliest_possible(self) -> date:
        return self.url_date or self.issue - timedelta(days=DIGEST_LAG_DAYS)


@dataclass
class SourceCheck:
    story: str                     # corpus file name
    published: date
    outlet: str
    url: str
    link: DigestLink | None
    share: float | None = None     # fact_share(); None when the digests link it without a summary

    @property
    def after_story(self) -> bool:
        return self.link is not None and self.link.earliest_possible > self.published

    @property
    def off_topic(self) -> bool:
        return self.share is not None and self.share < MIN_FACT_SHARE

    @property
    def problems(self) -> list[str]:
        out = []
        if self.after_story:
            out.append(f"published after the story ({self.link.latest_possible} > {self.published})")
        if self.off_topic:
            out.append(f"reports something else: the story holds {self.share:.0%} of its digest entry's facts "
                       f"(\"{self.link.title[:80]}\")")
        return out


@lru_cache(maxsize=1)
def digest_links(folder: Path = DIGESTS) -> dict[str, DigestLink]:
    """Every article the digests link, by canonical URL; an article linked twice keeps its first entry
    whose summary is its own (a link listed under "Related" shares its parent's summary)."""
    links: dict[str, DigestLink] = {}
    for path in sorted(folder.glob("*.md")):
        text = path.read_text(encoding="utf-8", errors="replace")
        issue = digest_date_for(split_front_matter(text, salvage=True).meta, str(path))
        for story in parse_digest(text, str(path)):
            for i, src in enumerate(story.sources):
                key = canonical_url(src.url)
                if key in links and (i or links[key].summary):
                    continue
                links[key] = DigestLink(src.url, story.title if i == 0 else "", story.text if i == 0 else "",
                                        issue, date_in_url(src.url))
    return links


def corpus_stories(folder: Path = CORPUS) -> list[tuple[str, dict, str]]:
    out = []
    for path in sorted(folder.glob("*.md")):
        if path.name == "README.md":
            continue
        fm = split_front_matter(path.read_text(encoding="utf-8"))
        out.append((path.name, fm.meta, fm.body))
    return out


def entry_weights(links: dict[str, DigestLink]) -> dict[str, float]:
    """Rarity of each term over all digest entries: "Cerebras" and "waferscale" say what an article is
    about, "model" and "announce" do not."""
    df: dict[str, int] = {}
    for link in links.values():
        for t in set(search_terms(f"{link.title} {link.summary}")):
            df[t] = df.get(t, 0) + 1
    n = len(links) or 1
    return {t: math.log(n / (1 + c)) for t, c in df.items()}


def fact_share(link: DigestLink, story_terms: set[str], idf: dict[str, float]) -> float:
    """Rarity-weighted share of the digest entry's headline-and-summary terms that the story contains."""
    w = {t: max(idf.get(t, 0.0), 0.0) for t in set(search_terms(f"{link.title} {link.summary}"))}
    total = sum(w.values())
    return sum(v for t, v in w.items() if t in story_terms) / total if total else 0.0


def audit(corpus: Path = CORPUS, digests: Path = DIGESTS) -> list[SourceCheck]:
    links = digest_links(digests)
    idf = entry_weights(links)
    checks = []
    for name, meta, body in corpus_stories(corpus):
        terms = set(search_terms(f"{meta.get('title', '')} {body}"))
        for src in meta.get("sources") or []:
            link = links.get(canonical_url(str(src.get("url", ""))))
            c = SourceCheck(name, meta["published"], str(src.get("outlet", "")), str(src.get("url", "")), link)
            if link is not None and link.summary:
                c.share = fact_share(link, terms, idf)
            checks.append(c)
    return checks


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--all", action="store_true", help="print every source, not only questionable ones")
    args = ap.parse_args(argv)
    if not DIGESTS.is_dir():
        print(f"digests not found at {DIGESTS}", file=sys.stderr)
        return 2
    checks = audit()
    bad = [c for c in checks if c.problems]
    unknown = [c for c in checks if c.link is None]
    for c in checks:
        if args.all or c.problems:
            status = "; ".join(c.problems) or ("not in the digests" if c.link is None else "ok")
            date_txt = c.link.latest_possible if c.link else "?"
            share = "-" if c.share is None else f"{c.share:.2f}"
            print(f"{c.story}: {c.outlet} {c.url} [{date_txt}] share={share} -> {status}")
    print(f"{len(checks)} sources in {len({c.story for c in checks})} stories: {len(bad)} questionable, "
          f"{len(unknown)} not linked by any digest (unchecked)")
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
