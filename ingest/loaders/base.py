"""What every parser shares: the error it raises, the story builder that applies the fallbacks, and the
small text/date helpers. Kept free of I/O so each parser stays a pure function of (text, origin).

The fallbacks live here, in one place, so a JSON record and a Markdown file with the same gap (no title,
no date) get the same treatment and the same note in `Story.notes`.
"""
from __future__ import annotations

import re
from datetime import date, datetime, timedelta, timezone
from email.utils import parsedate_to_datetime
from pathlib import PurePath
from typing import Any, Iterable

from ingest.outlets import outlet_from_url
from rag.records import SourceLink, Story

TITLE_FALLBACK_WORDS = 12
NO_DATE_REASON = "no publication date: add `published: YYYY-MM-DD`"


class LoadError(ValueError):
    """Input we cannot turn into a story; `reason` is shown to the user as is, so it says what to fix."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class Stories(list[Story]):
    """A parser's stories, plus why single records inside the document were left out.

    A list so callers that only want stories use it as one; `skipped` exists so one bad JSONL line or feed
    item is reported on its own instead of sinking the whole file.
    """

    def __init__(self, stories: Iterable[Story] = (), skipped: Iterable[str] = ()) -> None:
        super().__init__(stories)
        self.skipped: list[str] = list(skipped)


# --- dates ---------------------------------------------------------------------------------------------

_ISO_DATE = re.compile(r"^(\d{4})-(\d{1,2})-(\d{1,2})")
_NAME_DATE = re.compile(r"(?<!\d)(\d{4})-(\d{1,2})-(\d{1,2})(?!\d)")
_TEXT_FORMATS = ("%B %d, %Y", "%b %d, %Y", "%d %B %Y", "%d %b %Y", "%Y/%m/%d", "%B %d %Y", "%b. %d, %Y")


def _valid(y: int, m: int, d: int) -> date | None:
    try:
        found = date(y, m, d)
    except ValueError:
        return None
    return found if 1900 <= found.year <= 2100 else None


def parse_date(value: Any) -> date | None:
    """Day of publication from the shapes feeds and exports really use; None when it is not a date.

    Time-zone offsets are ignored on purpose: the day a publisher printed is the day readers search for.
    """
    if value is None or isinstance(value, bool):
        return None
    if isinstance(value, datetime):
        return value.date()
    if isinstance(value, date):
        return value
    if isinstance(value, (int, float)):
        seconds = value / 1000 if value > 1e11 else value          # epoch milliseconds from JS exports
        try:
            return datetime.fromtimestamp(seconds, tz=timezone.utc).date()
        except (OverflowError, OSError, ValueError):
            return None
    text = str(value).strip()
    if not text:
        return None
    m = _ISO_DATE.match(text)
    if m:
        return _valid(int(m[1]), int(m[2]), int(m[3]))
    try:
        return parsedate_to_datetime(text).date()                  # RFC 2822, as in RSS pubDate
    except (TypeError, ValueError, IndexError):
        pass
    for fmt in _TEXT_FORMATS:
        try:
            return datetime.strptime(text, fmt).date()
        except ValueError:
            continue
    return None


def date_from_name(origin: str) -> date | None:
    """A YYYY-MM-DD date in the file name: how dated exports and digests are usually named.

    A day just past the month's end (2021-2-29) is a naming typo for the following day; rolling it over
    keeps the file instead of losing it to a date that cannot exist.
    """
    name = PurePath(origin).name if origin and "://" not in origin else ""
    for m in _NAME_DATE.finditer(name):
        y, mo, d = int(m[1]), int(m[2]), int(m[3])
        found = _valid(y, mo, d)
        if found is None and 1 <= mo <= 12 and 29 <= d <= 31 and _valid(y, mo, 1):
            found = date(y, mo, 1) + timedelta(days=d - 1)
        if found:
            return found
    return None


# --- text ----------------------------------------------------------------------------------------------

_WS = re.compile(r"[ \t\u00a0]+")
_SENTENCE_END = re.compile(r"(?<=[.!?])[\"')\]]*\s")


def squash(text: str) -> str:
    """One line, single spaces: for titles and other one-line fields."""
    return " ".join((text or "").split())


def tidy_paragraphs(text: str) -> str:
    """Paragraphs separated by one blank line, lines inside a paragraph joined: what the chunker expects."""
    paras = [squash(p) for p in re.split(r"\n\s*\n", text or "")]
    return "\n\n".join(p for p in paras if p)


def first_sentence_title(text: str, words: int = TITLE_FALLBACK_WORDS) -> str:
    """The first sentence cut to a headline's length: better than no title for a listing or a citation."""
    flat = squash(text)
    sentence = _SENTENCE_END.split(flat, maxsplit=1)[0]
    parts = sentence.split()
    if len(parts) > words:
        return " ".join(parts[:words]).rstrip(",;:") + "…"
    return sentence


def clean_tags(value: Any) -> list[str]:
    """Tags as a list, comma string or single value become lower-case, de-duplicated strings."""
    if value is None:
        return []
    items = value.split(",") if isinstance(value, str) else value if isinstance(value, (list, tuple)) else [value]
    out: list[str] = []
    for item in items:
        if isinstance(item, dict):
            item = item.get("name") or item.get("term") or item.get("label") or ""
        tag = squash(str(item)).lower()
        if tag and tag not in out:
            out.append(tag)
    return out


def is_http(url: str) -> bool:
    return bool(re.match(r"^https?://[^\s/]+", url or "", re.I))


def source_link(url: str, outlet: str | None = None) -> SourceLink:
    """A source whose outlet falls back to the name derived from the link's host."""
    url = (url or "").strip()
    name = squash(outlet or "") or (outlet_from_url(url) if url else "")
    return SourceLink(outlet=name or "unknown", url=url)


# --- the story builder ---------------------------------------------------------------------------------

def build_story(*, title: Any, text: str, published: Any, sources: list[SourceLink], origin: str,
                tags: Iterable[str] = (), author: Any = None, notes: Iterable[str] = ()) -> Story:
    """Apply the shared fallbacks and checks, then make the Story; raises LoadError saying what is missing."""
    body = tidy_paragraphs(text)
    if not body:
        raise LoadError("empty body: no story text found")
    notes = list(notes)
    headline = squash(str(title)) if title is not None and not isinstance(title, (dict, list)) else ""
    if not headline:
        headline = first_sentence_title(body)
        notes.append("title inferred from the first sentence (no title given)")
    published_at = parse_date(published)
    if published_at is None:
        published_at = date_from_name(origin)
        if published_at is None:
            if published not in (None, ""):
                raise LoadError(f"unreadable publication date {str(published)[:40]!r}: use YYYY-MM-DD")
            raise LoadError(NO_DATE_REASON)
        given = f" ({str(published)[:40]!r} was unreadable)" if published not in (None, "") else ""
        notes.append(f"date taken from the file name{given}")
    who = squash(str(author)) if author and not isinstance(author, (dict, list)) else None
    if isinstance(author, dict):
        who = squash(str(author.get("name") or "")) or None
    elif isinstance(author, list):
        who = ", ".join(squash(str(a.get("name") if isinstance(a, dict) else a)) for a in author) or None
    return Story(title=headline, text=body, published_at=published_at, sources=[s for s in sources if s.url],
                 tags=list(tags), origin=origin, author=who, notes=notes)
