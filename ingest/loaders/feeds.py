"""RSS 2.0 and Atom feeds: one story per item, the channel's title as the outlet.

The XML is checked for well-formedness before feedparser sees it. feedparser quietly recovers from broken
XML and may return half a feed; a skip that names the line and column is more useful than that.
"""
from __future__ import annotations

import re
import time
from datetime import date
from typing import Any

import feedparser
from bs4 import BeautifulSoup
from lxml import etree

from ingest.loaders.base import LoadError, Stories, build_story, clean_tags, is_http, source_link, squash
from rag.records import Story

FEED_ROOTS = ("rss", "feed", "rdf")
_XML_DECL = re.compile(r"^\s*<\?xml[^>]*\?>", re.I)


def check_xml(text: str) -> str:
    """The root element's local name; LoadError with line and column when the XML is not well formed.

    The XML declaration is blanked, not cut, so lines and columns count as in the file; an error inside
    an entity's expansion (an "XML bomb") has no place in the file, so none is given."""
    parser = etree.XMLParser(resolve_entities=False, no_network=True, huge_tree=False)
    blanked = _XML_DECL.sub(lambda m: re.sub(r"[^\n]", "", m.group(0)), text, count=1)
    try:
        root = etree.fromstring(blanked.encode("utf-8"), parser=parser)
    except etree.XMLSyntaxError as exc:
        message = re.sub(r",? line \d+, column \d+.*$", "", str(exc.msg or exc)).strip()
        if re.search(r"amplification|entity reference loop|entities? .*(?:too|exceed)", message, re.I):
            raise LoadError("malformed XML: its entities expand past the safety limit (an XML bomb); "
                            "entities are never expanded") from None
        line, column = exc.position if exc.position else (exc.lineno, 0)
        raise LoadError(f"malformed XML at line {line}, column {column}: {message}") from None
    return etree.QName(root).localname.lower()


_DOCTYPE = re.compile(r"<!DOCTYPE\s+[^\[>]*(?:\[(?P<subset>.*?)\]\s*)?>", re.S | re.I)
_ENTITY_DECL = re.compile(r"<!ENTITY\s+(?P<name>[\w.-]+)\s+(?P<kind>SYSTEM|PUBLIC)?", re.I)


def drop_declared_entities(text: str) -> str:
    """The document without its DOCTYPE and without references to the entities it declared.

    Such entities are never resolved (an external one would read a local file or the network, an
    internal one can be a bomb), and feedparser would otherwise keep the reference as literal text
    ("&amp;xxe") in the story. Character references and the five XML entities are untouched."""
    m = _DOCTYPE.search(text)
    if not m:
        return text
    names = {d.group("name") for d in _ENTITY_DECL.finditer(m.group("subset") or "")}
    text = text[:m.start()] + "\n" * m.group(0).count("\n") + text[m.end():]
    for name in names - {"amp", "lt", "gt", "quot", "apos"}:
        text = text.replace(f"&{name};", "")
    return text


def html_to_text(fragment: str) -> str:
    """Feed summaries are HTML fragments; the chunker wants their words, paragraph breaks kept."""
    if "<" not in (fragment or ""):
        return fragment or ""
    soup = BeautifulSoup(fragment, "lxml")
    for tag in soup.find_all(("script", "style", "iframe", "img")):
        tag.decompose()
    for br in soup.find_all("br"):
        br.replace_with("\n")
    blocks = soup.find_all(("p", "li", "blockquote", "h2", "h3", "h4", "div"))
    if blocks:
        for block in blocks:
            block.insert_after("\n\n")
    return soup.get_text()


def _entry_date(entry: Any) -> date | None:
    for key in ("published_parsed", "updated_parsed", "created_parsed"):
        parsed = entry.get(key)
        if isinstance(parsed, time.struct_time):
            return date(parsed.tm_year, parsed.tm_mon, parsed.tm_mday)
    return None


def _entry_text(entry: Any) -> str:
    """The longest of the full content and the summary: feeds put the article in either, or both."""
    candidates = [c.get("value", "") for c in entry.get("content") or []]
    candidates.append(entry.get("summary") or "")
    texts = [html_to_text(c) for c in candidates]
    return max(texts, key=lambda t: len(t.strip()), default="")


def story_from_entry(entry: Any, outlet: str, origin: str) -> Story:
    link = entry.get("link") or ""
    sources = [source_link(link, outlet or None)] if is_http(link) else []
    title = squash(html_to_text(entry.get("title") or "")) or None
    return build_story(title=title, text=_entry_text(entry),
                       published=_entry_date(entry) or entry.get("published") or entry.get("updated"),
                       sources=sources, origin=origin,
                       tags=clean_tags([t.get("term") for t in entry.get("tags") or []]),
                       author=entry.get("author"))


def parse_feed(text: str, origin: str) -> Stories:
    """Stories from an RSS or Atom document; items that fail are listed in `skipped` by position and title."""
    root = check_xml(text)
    if root not in FEED_ROOTS:
        raise LoadError(f"not an RSS or Atom feed: the root element is <{root}>, expected <rss> or <feed>")
    parsed = feedparser.parse(drop_declared_entities(text))
    outlet = squash(html_to_text(parsed.feed.get("title") or ""))
    result = Stories()
    for i, entry in enumerate(parsed.entries, start=1):
        try:
            result.append(story_from_entry(entry, outlet, origin))
        except LoadError as exc:
            label = squash(entry.get("title") or "")[:60]
            result.skipped.append(f"item {i}" + (f" ({label!r})" if label else "") + f": {exc.reason}")
    if not parsed.entries:
        raise LoadError("feed has no items")
    return result
