"""Newsletter digests (Skynet Today / Last Week in AI style): one Markdown file, many stories.

The format drifted over eight years, so one digest may mix layouts; each line is classified on its own:

  heading-link   `#### [headline](url)`, optional byline, `Related:` / `More on this:` bullets, paragraphs
  heading-quote  `### headline` then `> Outlet, ["title"](url)` quote lines, then paragraphs (2018-2019)
  bullet         `* [title](url) - summary` (2019-2021 "News" sections)
  paragraph      `[title](url) - "summary"` or `[title](url). summary` (2022+ "Other News")

Sections that are not news (podcast, memes, videos, tweets) are dropped wholesale, as are links without a
summary: a bare link gives retrieval nothing to match and the reader nothing to read.
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import date, timedelta
from typing import Any

from ingest.loaders.base import (LoadError, NO_DATE_REASON, Stories, build_story, date_from_name, is_http,
                                 parse_date, source_link, squash)
from ingest.loaders.markdown import markdown_inline_to_text, markdown_to_text, split_front_matter
from ingest.outlets import outlet_from_url
from rag.records import Story, canonical_url

URL_DATE_WINDOW_DAYS = 31

_URL = r"(https?://[^\s()<>]+(?:\([^\s()<>]*\)[^\s()<>]*)*)"
_LINK = re.compile(r"\[((?:[^\[\]]|\[[^\[\]]*\])+)\]\(\s*" + _URL + r"(?:\s+\"[^\"]*\")?\s*\)")
_LINK_AT_START = re.compile(r"^" + _LINK.pattern + r"(.*)$")
_HEADING = re.compile(r"^(#{1,6})[ \t]*(.*?)[ \t#]*$")
_BULLET = re.compile(r"^[ \t]*[*+-][ \t]+(.*)$")
_QUOTE_WITH_LINK = re.compile(r"^[ \t]*>[ \t]*(.*?)" + _LINK.pattern)
_RELATED = re.compile(r"^[ \t*_]*(related|more on this|see also)\b[^:\n]{0,20}:[ \t*_]*$", re.I)
_BYLINE = re.compile(r"^[ \t]*\*\*([^*]+(?:\*(?!\*)[^*]*)*)\*\*[ \t]*$")
_SUMMARY_SEP = re.compile(r"^[ \t]*(?:[-\u2013\u2014:]|\.(?=\s))[ \t]*")
_RULE = re.compile(r"^[ \t]*(?:<hr\s*/?>|-{3,}|\*{3,}|_{3,})[ \t]*$", re.I)
_IMAGE_LINE = re.compile(r"^[ \t]*!\[")
_HTML_BLOCK = re.compile(r"<(figure|script|iframe|blockquote|div|video)\b.*?</\1\s*>", re.S | re.I)
_BROKEN_LINK_TEXT = re.compile(r"\[([^\]\n]*)\n[ \t]*\]\(")
_GLUED_HEADING = re.compile(r"(?<=[^\s#])(?=#{2,6} )")
_URL_DATE = re.compile(r"[/-](20\d\d)[/-](\d{1,2})[/-](\d{1,2})(?=[/.\-_]|$)")

_NOT_NEWS = re.compile(
    r"podcast|meme|video|tweet|goof|favou?rite|subscribe|sponsor|newsletter|this year|"
    r"ai-generated|trends across|^title$|^toc$|^editorials$|^briefs$", re.I)
_BLURB = re.compile(r"that['’]s all for this week|if you are not subscribed|feel free to subscribe|"
                    r"subscribe below|copyright (?:©|\(c\)|漏)|all rights reserved", re.I)
_SECTION_NAME = re.compile(
    r"^(?:ai )?(?:advances|business|concerns|hype|policy|analysis|research|applications|expert opinions|"
    r"explainers|overviews|news|top news|other news|mini[- ]?briefs|tools|fun|worries|the hype|the panic|"
    r"the good (?:stuff|coverage))\b", re.I)
_PLACEHOLDER = re.compile(r"^\W*(no summary available|one paragraph summary|summary|tbd|todo)\W*$", re.I)

LAYOUTS = ("heading-link", "heading-quote", "bullet", "paragraph")


@dataclass
class DigestEntry:
    """One headline as found in the digest, before it becomes a Story; `layout` says which form it had."""
    layout: str
    title: str
    url: str
    section: str
    line: int                                   # 1-based line in the body (after the front matter)
    related: list[str] = field(default_factory=list)
    lines: list[str] = field(default_factory=list)
    author: str | None = None
    related_mode: bool = False

    @property
    def text(self) -> str:
        paras = markdown_to_text("\n".join(self.lines)).split("\n\n")
        kept = [p for p in paras if p.strip() and not _BLURB.search(p) and not _PLACEHOLDER.match(p)]
        return "\n\n".join(kept).strip()


@dataclass
class _Section:
    level: int
    name: str
    dropped: bool


def _prepare(body: str) -> list[str]:
    """Undo the formatting accidents that would split one construct over two lines or glue two together."""
    body = _HTML_BLOCK.sub(lambda m: "\n" * m[0].count("\n"), body)
    body = _BROKEN_LINK_TEXT.sub(lambda m: f"[{m[1]}](", body)
    lines = []
    for line in body.split("\n"):
        if line.lstrip().startswith("#"):
            lines.extend(_GLUED_HEADING.split(line))
        else:
            lines.append(line)
    return lines


def _next_content(lines: list[str], i: int) -> int:
    j = i + 1
    while j < len(lines) and not lines[j].strip():
        j += 1
    return j


def _author_from(text: str) -> str | None:
    """'Jane Doe, The Verge' -> 'Jane Doe': bylines in old digests put the outlet last."""
    plain = squash(markdown_inline_to_text(text)).strip(" -–—")
    parts = [p.strip() for p in plain.split(",") if p.strip()]
    return ", ".join(parts[:-1]) if len(parts) >= 2 else None


class _Walker:
    """Reads a digest body line by line; the only state is the open entry and the section stack."""

    def __init__(self, lines: list[str]) -> None:
        self.lines = lines
        self.sections: list[_Section] = []
        self.entries: list[DigestEntry] = []
        self.current: DigestEntry | None = None

    @property
    def section(self) -> _Section | None:
        return self.sections[-1] if self.sections else None

    @property
    def dropping(self) -> bool:
        return bool(self.section and self.section.dropped)

    def open(self, entry: DigestEntry) -> None:
        self.close()
        if not self.dropping and is_http(entry.url):
            self.current = entry

    def close(self) -> None:
        if self.current is not None:
            self.entries.append(self.current)
        self.current = None

    def pop_sections(self, level: int) -> None:
        """Headings at `level` or deeper end the sections opened at that depth: they are siblings, not parents."""
        while self.sections and self.sections[-1].level >= level:
            self.sections.pop()

    def push_section(self, level: int, name: str) -> None:
        self.close()
        self.pop_sections(level)
        inherited = bool(self.sections and self.sections[-1].dropped)
        self.sections.append(_Section(level, name, inherited or bool(_NOT_NEWS.search(name))))

    def entry(self, layout: str, title: str, url: str, line: int) -> DigestEntry:
        name = self.section.name if self.section else ""
        return DigestEntry(layout=layout, title=title, url=url, section=name, line=line + 1)

    def run(self) -> list[DigestEntry]:
        i = 0
        while i < len(self.lines):
            i = self.step(i)
        self.close()
        return self.entries

    def step(self, i: int) -> int:
        line = self.lines[i]
        heading = _HEADING.match(line)
        if heading and heading[1]:
            return self.on_heading(i, len(heading[1]), heading[2])
        if self.dropping:
            return i + 1
        if _RULE.match(line):
            self.close()
        elif _IMAGE_LINE.match(line):
            pass                                                                # images carry no text
        elif (quote := _QUOTE_WITH_LINK.match(line)) and self.current is None:
            self.open(self.entry("heading-quote", quote[2], quote[3], i))      # a quote line under a section
            if self.current is not None:
                self.current.author = _author_from(quote[1].rstrip(" -–—"))
        elif _RELATED.match(line):
            if self.current is not None:
                self.current.related_mode = True
        elif (bullet := _BULLET.match(line)) and (link := _LINK_AT_START.match(bullet[1].strip())):
            self.on_bullet(i, link)
        elif (para := _LINK_AT_START.match(line.strip())) and self._starts_paragraph_entry(para[3]):
            self.open(self.entry("paragraph", para[1], para[2], i))
            self._add_summary(_SUMMARY_SEP.sub("", para[3], count=1))
        elif (byline := _BYLINE.match(line)) and self.current is not None and not self.current.lines:
            self.current.author = self.current.author or _author_from(byline[1])
        elif self.current is not None and line.strip():
            self.current.lines.append(line)
            self.current.related_mode = False
        elif self.current is not None:
            self.current.lines.append("")
        return i + 1

    def _starts_paragraph_entry(self, rest: str) -> bool:
        """A link opening a line starts a story only outside a headline story, and only with a summary marker."""
        in_story = self.current is not None and self.current.layout in ("heading-link", "heading-quote")
        return not in_story and bool(_SUMMARY_SEP.match(rest) or not rest.strip())

    def _add_summary(self, summary: str) -> None:
        if self.current is not None and summary.strip():
            self.current.lines.append(summary.strip())

    def on_heading(self, i: int, level: int, content: str) -> int:
        link = _LINK_AT_START.match(content.strip())
        if link:
            self.close()
            self.pop_sections(level)
            self.open(self.entry("heading-link", link[1], link[2], i))
            return i + 1
        if level >= 5 and self.current is not None and not self.current.lines:
            self.current.author = self.current.author or _author_from(content)      # '##### Jane Doe, Wired'
            return i + 1
        j = _next_content(self.lines, i)
        quote = _QUOTE_WITH_LINK.match(self.lines[j]) if j < len(self.lines) else None
        is_section = bool(_NOT_NEWS.search(content) or _SECTION_NAME.match(content.strip()))
        if quote and content.strip() and not self.dropping_at(level) and not is_section:
            self.close()
            self.pop_sections(level)
            return self.on_quoted_headline(i, j, content)
        self.push_section(level, squash(markdown_inline_to_text(content)))
        return i + 1

    def dropping_at(self, level: int) -> bool:
        """Whether a heading at `level` still sits inside a dropped section."""
        return any(s.dropped and s.level < level for s in self.sections)

    def on_quoted_headline(self, i: int, j: int, content: str) -> int:
        entry = self.entry("heading-quote", content, "", i)
        while j < len(self.lines) and (quote := _QUOTE_WITH_LINK.match(self.lines[j])):
            if not entry.url:
                entry.url = quote[3]
                entry.author = _author_from(quote[1].rstrip(" -–—"))
            else:
                entry.related.append(quote[3])
            j += 1
        self.open(entry)
        return j

    def on_bullet(self, i: int, link: re.Match[str]) -> None:
        rest = link[3]
        summary = _SUMMARY_SEP.sub("", rest, count=1) if _SUMMARY_SEP.match(rest) else ""
        cur = self.current
        if cur is not None and (cur.related_mode or (cur.layout.startswith("heading") and not summary.strip())):
            if is_http(link[2]):
                cur.related.append(link[2])
            return
        if not summary.strip():
            self.close()                 # a bare link: not a story, and it ends the previous one
            return
        self.open(self.entry("bullet", link[1], link[2], i))
        self._add_summary(summary)


def digest_entries(body: str) -> list[DigestEntry]:
    """Every headline in a digest body, in order, with its layout: the parser's raw findings."""
    return _Walker(_prepare(body)).run()


def looks_like_digest(meta: dict[str, Any], body: str) -> bool:
    """A digest says so in its categories, or shows it by carrying two or more headlines."""
    cats = meta.get("categories") or meta.get("category") or []
    cats = [cats] if isinstance(cats, str) else cats if isinstance(cats, list) else []
    if any(str(c).strip().lower() in ("digest", "digests") for c in cats):
        return True
    return len(digest_entries(body)) >= 2


def date_in_url(url: str) -> date | None:
    """A full /YYYY/MM/DD/ or /YYYY-MM-DD/ date in a link: the article's own day, when the site puts it there."""
    for m in _URL_DATE.finditer(url or ""):
        try:
            return date(int(m[1]), int(m[2]), int(m[3]))
        except ValueError:
            continue
    return None


def story_date(url: str, digest_date: date) -> date:
    """The article's date from its URL when it is plausible for this issue, else the issue's date.

    Plausible means within a month before the issue: digests cover the past week or two, so an older URL
    date is an archive link and a later one is a typo; both would mis-date the story.
    """
    found = date_in_url(url)
    if found and digest_date - timedelta(days=URL_DATE_WINDOW_DAYS) <= found <= digest_date:
        return found
    return digest_date


def clean_title(title: str, url: str) -> str:
    """Headline text without markup, wrapping quotes, or a trailing ' - Outlet' the link already tells us."""
    text = squash(markdown_inline_to_text(title)).strip()
    if len(text) > 2 and text[0] in "\"“'‘" and text[-1] in "\"”'’":
        text = text[1:-1].strip()
    outlet = outlet_from_url(url)
    for sep in (" - ", " – ", " — ", " | "):
        if outlet and text.lower().endswith((sep + outlet).lower()):
            return text[: -len(sep + outlet)].rstrip()
    return text


def digest_date_for(meta: dict[str, Any], origin: str) -> date:
    """The issue's date: front matter when it has one (most digests do not), else the YYYY-MM-DD-N.md name."""
    for key in ("date", "published", "published_at"):
        found = parse_date(meta.get(key))
        if found:
            return found
    found = date_from_name(origin)
    if found is None:
        raise LoadError(NO_DATE_REASON + " (or name the digest YYYY-MM-DD-N.md)")
    return found


def entry_to_story(entry: DigestEntry, digest_date: date, origin: str) -> Story:
    """A Story for one headline; LoadError (empty body) when the headline came without a summary."""
    sources = [source_link(entry.url)]
    seen = {canonical_url(entry.url)}
    for url in entry.related:
        key = canonical_url(url)
        if key not in seen and is_http(url):
            seen.add(key)
            sources.append(source_link(url))
    tags = [t for t in (entry.section.lower().strip(), "digest") if t]
    return build_story(title=clean_title(entry.title, entry.url), text=entry.text,
                       published=story_date(entry.url, digest_date), sources=sources, origin=origin,
                       tags=tags, author=entry.author)


def _merge(into: Story, other: Story) -> None:
    """The same link twice in one issue is one story: keep the first, add what the repeat knew extra."""
    have = {canonical_url(s.url) for s in into.sources}
    into.sources.extend(s for s in other.sources if canonical_url(s.url) not in have)
    into.tags.extend(t for t in other.tags if t not in into.tags)
    if len(other.text) > len(into.text):
        into.text = other.text


def parse_digest(text: str, origin: str) -> Stories:
    """All stories in one digest; headlines without a summary are left out, repeats within it merged."""
    fm = split_front_matter(text, salvage=True)
    issue = digest_date_for(fm.meta, origin)
    notes = [f"front matter partly unreadable, other keys kept ({fm.error})"] if fm.error else []
    by_url: dict[str, Story] = {}
    result = Stories()
    for entry in digest_entries(fm.body):
        try:
            story = entry_to_story(entry, issue, origin)
        except LoadError:
            continue                     # a headline without a summary: not a story (see module docstring)
        story.notes.extend(notes)
        key = canonical_url(story.url)
        if key in by_url:
            _merge(by_url[key], story)
            continue
        by_url[key] = story
        result.append(story)
    return result
