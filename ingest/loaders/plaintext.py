"""Plain-text stories: headline on the first line, optional `Key: value` lines, a blank line, the text.

A .txt file has no structure to fall back on, so unlike the other formats it must state its own title
(no first-sentence guess) and a date (in a header line or the file name); otherwise it is skipped.
"""
from __future__ import annotations

import re

from ingest.loaders.base import LoadError, Stories, build_story, clean_tags, date_from_name, is_http, source_link

MAX_TITLE_WORDS = 25
_HEADER = re.compile(r"^(published|date|source|url|link|outlet|tags|author|by)\s*:\s*(.+)$", re.I)


def parse_text(text: str, origin: str) -> Stories:
    """One story from a .txt file; LoadError explains which part of the layout above is missing."""
    lines = text.replace("\r\n", "\n").strip("\ufeff\n ").split("\n")
    title = lines[0].strip() if lines else ""
    rest = lines[1:]
    headers: dict[str, str] = {}
    while rest and (m := _HEADER.match(rest[0].strip())):
        headers[m[1].lower()] = m[2].strip()
        rest = rest[1:]
    separated = not rest or not rest[0].strip()
    if not title or len(title.split()) > MAX_TITLE_WORDS or not separated:
        raise LoadError("no title: put the headline alone on the first line, then a blank line, then the text")
    body = "\n".join(rest)
    published = headers.get("published") or headers.get("date")
    if not published and date_from_name(origin) is None:
        raise LoadError("no publication date: add a `Published: YYYY-MM-DD` line under the title "
                        "or a YYYY-MM-DD date in the file name")
    url = headers.get("url") or headers.get("link") or ""
    source = headers.get("source") or headers.get("outlet")
    if not is_http(url) and source and is_http(source):
        url, source = source, None
    sources = [source_link(url, source)] if is_http(url) else []
    return Stories([build_story(title=title, text=body, published=published, sources=sources, origin=origin,
                                tags=clean_tags(headers.get("tags")),
                                author=headers.get("author") or headers.get("by"))])
