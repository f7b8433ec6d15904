"""JSON and JSON Lines exports of news records, under the field names scrapers and APIs commonly use.

Records are judged one by one: a bad item in a list or a bad JSONL line is reported with its position and
the rest still load, because one broken line in a 10,000-line export should not cost the other 9,999.
"""
from __future__ import annotations

import json
import re
from typing import Any

from ingest.loaders.base import LoadError, Stories, build_story, clean_tags, is_http, source_link
from ingest.loaders.feeds import html_to_text
from rag.records import SourceLink, Story

TEXT_FIELDS = ("text", "body", "content", "summary", "description")
URL_FIELDS = ("url", "link", "href")
DATE_FIELDS = ("published_at", "published", "date", "pubDate", "pub_date", "datePublished", "created_at")
CONTAINER_KEYS = ("items", "stories", "articles")


def _first(record: dict[str, Any], keys: tuple[str, ...]) -> Any:
    for key in keys:
        value = record.get(key)
        if value not in (None, "", [], {}):
            return value
    return None


def _text_of(value: Any) -> str:
    """Text fields are strings, lists of paragraphs, or {"text"/"value": ...} objects in the wild."""
    if isinstance(value, str):
        return value
    if isinstance(value, list):
        return "\n\n".join(_text_of(v) for v in value)
    if isinstance(value, dict):
        return _text_of(value.get("text") or value.get("value") or "")
    return "" if value is None else str(value)


# an HTML tag or comment -- not a bare "<" as in "a < b", which plain text may hold
_HTML_TAG = re.compile(r"<(?:[a-zA-Z][a-zA-Z0-9-]*(?:\s[^<>]*)?/?|/[a-zA-Z][a-zA-Z0-9-]*\s*|!--.*?--)>", re.S)


def _plain(text: str) -> str:
    """Scrapers often export the article body as HTML: keep its words, not its markup, as the Markdown
    and feed loaders do -- the `/ask` JSON would otherwise hand raw tags to every client."""
    return html_to_text(text) if _HTML_TAG.search(text or "") else text


def _sources(record: dict[str, Any]) -> list[SourceLink]:
    url = _first(record, URL_FIELDS)
    url = url if isinstance(url, str) else ""
    outlet = _first(record, ("source", "outlet", "publisher", "site_name"))
    if isinstance(outlet, dict):
        url = url or str(outlet.get("url") or "")
        outlet = outlet.get("name") or outlet.get("title")
    sources = [source_link(url, str(outlet) if outlet else None)] if is_http(url) else []
    for extra in record.get("sources") or []:
        if isinstance(extra, str) and is_http(extra):
            sources.append(source_link(extra))
        elif isinstance(extra, dict) and is_http(str(extra.get("url") or "")):
            sources.append(source_link(str(extra["url"]), extra.get("outlet") or extra.get("name")))
    return sources


def story_from_record(record: Any, origin: str) -> Story:
    """One record to a Story; LoadError says which required part is missing or malformed."""
    if not isinstance(record, dict):
        raise LoadError(f"expected an object with story fields, found a {type(record).__name__}")
    text = _plain(_text_of(_first(record, TEXT_FIELDS)))
    title = record.get("title") or record.get("headline")
    title = _plain(title) if isinstance(title, str) else title
    return build_story(title=title, text=text,
                       published=_first(record, DATE_FIELDS), sources=_sources(record), origin=origin,
                       tags=clean_tags(record.get("tags") or record.get("keywords")),
                       author=record.get("author") or record.get("byline"))


def records_in(document: Any) -> list[Any]:
    """The records of a JSON document: itself, its list, or the list under items/stories/articles."""
    if isinstance(document, list):
        return document
    if isinstance(document, dict):
        for key in CONTAINER_KEYS:
            if isinstance(document.get(key), list):
                return document[key]
        return [document]
    raise LoadError(f"JSON top level is a {type(document).__name__}; expected an object or a list of objects")


def _json_error(exc: json.JSONDecodeError, with_line: bool = True) -> str:
    where = f"line {exc.lineno}, column {exc.colno}" if with_line else f"column {exc.colno}"
    return f"malformed JSON at {where}: {exc.msg}"


def parse_json(text: str, origin: str) -> Stories:
    """Stories from one JSON document; items that fail are listed in `skipped` by their index."""
    try:
        document = json.loads(text)
    except json.JSONDecodeError as exc:
        raise LoadError(_json_error(exc)) from None
    records = records_in(document)
    result = Stories()
    for i, record in enumerate(records, start=1):
        try:
            result.append(story_from_record(record, origin))
        except LoadError as exc:
            result.skipped.append(f"item {i}: {exc.reason}" if len(records) > 1 else exc.reason)
    if len(records) == 1 and result.skipped:
        raise LoadError(result.skipped[0])
    return result


def parse_jsonl(text: str, origin: str) -> Stories:
    """Stories from JSON Lines, one record per line; bad lines are listed in `skipped` by line number."""
    result = Stories()
    for lineno, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            result.append(story_from_record(json.loads(line), origin))
        except json.JSONDecodeError as exc:
            result.skipped.append(f"line {lineno}: {_json_error(exc, with_line=False)}")
        except LoadError as exc:
            result.skipped.append(f"line {lineno}: {exc.reason}")
    return result
