"""Turn files, folders and feed URLs into Story records: the one place in ingest that touches disk or network.

Everything here is about getting bytes and deciding which pure parser gets them; every failure becomes a
`Skipped` with a reason a user can act on, never an exception, so one bad file cannot stop an ingest run.
`sources_seen` lists what was read successfully so the pipeline can tell "story removed from its source"
apart from "source unreadable this time" (a skipped source's stories must not be treated as deleted).
"""
from __future__ import annotations

import os
import re
import time
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Callable, Iterator, Sequence

import httpx

from ingest.loaders.base import LoadError, Stories
from ingest.loaders.digests import looks_like_digest, parse_digest
from ingest.loaders.feeds import parse_feed
from ingest.loaders.html import parse_html
from ingest.loaders.jsonrec import parse_json, parse_jsonl
from ingest.loaders.markdown import parse_markdown, split_front_matter
from ingest.loaders.plaintext import parse_text
from rag.records import Story
from rag.settings import Settings

__all__ = ["LoadError", "LoadResult", "Skipped", "SUPPORTED_EXTENSIONS", "load_paths", "parse_document",
           "parse_markdown_document"]

Parser = Callable[[str, str], Stories]


@dataclass
class Skipped:
    """A file, URL or single record that did not become a story, and why."""
    path: str
    reason: str


@dataclass
class LoadResult:
    stories: list[Story] = field(default_factory=list)
    skipped: list[Skipped] = field(default_factory=list)
    sources_seen: list[str] = field(default_factory=list)   # files/URLs read successfully


def parse_markdown_document(text: str, origin: str) -> Stories:
    """A Markdown file is a digest when it says so or carries two or more headlines, else one story."""
    fm = split_front_matter(text, salvage=True)
    if looks_like_digest(fm.meta, fm.body):
        return parse_digest(text, origin)
    return parse_markdown(text, origin)


PARSERS: dict[str, Parser] = {
    ".md": parse_markdown_document, ".markdown": parse_markdown_document,
    ".json": parse_json, ".jsonl": parse_jsonl, ".ndjson": parse_jsonl,
    ".html": parse_html, ".htm": parse_html,
    ".xml": parse_feed, ".rss": parse_feed, ".atom": parse_feed,
    ".txt": parse_text,
}
SUPPORTED_EXTENSIONS = tuple(sorted(PARSERS))


def parser_for(extension: str) -> Parser:
    """The parser for a file extension (with the dot); LoadError lists what is supported."""
    parser = PARSERS.get(extension.lower())
    if parser is None:
        shown = f"'{extension}'" if extension else "(no extension)"
        raise LoadError(f"unsupported file type {shown}: supported are {', '.join(SUPPORTED_EXTENSIONS)}")
    return parser


def parse_document(text: str, origin: str, extension: str) -> Stories:
    """Route decoded text to its parser by extension; pure, so callers with text in hand need no files."""
    return parser_for(extension)(text, origin)


# --- bytes to text -------------------------------------------------------------------------------------

def decode_text(data: bytes, encoding: str = "utf-8") -> str:
    """Text from bytes, or a LoadError saying why these bytes are not a text document we can read."""
    nul = data.find(b"\x00")
    if nul >= 0:
        raise LoadError(f"binary file: NUL byte at offset {nul} (expected UTF-8 text)")
    is_utf8 = encoding.lower().replace("_", "-") in ("utf-8", "utf8")
    try:
        text = data.decode("utf-8-sig" if is_utf8 else encoding)
    except UnicodeDecodeError as exc:
        name = "UTF-8" if is_utf8 else f"{encoding} (the declared encoding)"
        raise LoadError(f"not {name}: undecodable byte 0x{data[exc.start]:02x} at offset {exc.start}; "
                        "re-save the file as UTF-8") from None
    except LookupError:
        raise LoadError(f"unknown text encoding {encoding!r}") from None
    if not text.strip():
        raise LoadError("empty file")
    return text


def size_reason(size: int, limit: int) -> str:
    return (f"file too large: {size:,} bytes, over the {limit:,}-byte limit "
            "(raise NEWSRAG_MAX_FILE_BYTES to load it)")


# --- files ---------------------------------------------------------------------------------------------

def _is_folder_readme(name: str) -> bool:
    """README, README.md, readme.txt...: a folder's own documentation, not a story in it."""
    return name.split(".", 1)[0].lower() == "readme"


def _walk(directory: Path) -> Iterator[Path]:
    """Files under a folder in sorted order; hidden files and folders (dot names) and the folders'
    READMEs are left out (named as a path of their own, a README is read like any file)."""
    for root, dirs, files in os.walk(directory):
        dirs[:] = sorted(d for d in dirs if not d.startswith("."))
        for name in sorted(files):
            if not name.startswith(".") and not _is_folder_readme(name):
                yield Path(root) / name


def _expand(raw: str | Path) -> Iterator[Path | Skipped]:
    path = Path(raw).expanduser()
    if not path.exists():
        yield Skipped(str(raw), "path does not exist")
    elif path.is_dir():
        yield from _walk(path)
    else:
        yield path


def _read_file(path: Path, settings: Settings) -> str:
    parser_for(path.suffix)                                   # unsupported types fail before any read
    size = path.stat().st_size
    if size > settings.max_file_bytes:
        raise LoadError(size_reason(size, settings.max_file_bytes))
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise LoadError(f"cannot read file: {exc.strerror or exc}") from None
    return decode_text(data)


# --- URLs ----------------------------------------------------------------------------------------------

def is_url(raw: str | Path) -> bool:
    return isinstance(raw, str) and re.match(r"^https?://", raw.strip(), re.I) is not None


def sniff_extension(content_type: str, text: str) -> str:
    """Which parser a fetched document needs, from its Content-Type or, failing that, its first bytes."""
    ctype = content_type.split(";")[0].strip().lower()
    head = text.lstrip()[:2000].lower()
    if "rss" in ctype or "atom" in ctype:
        return ".xml"
    if "json" in ctype:
        return ".jsonl" if "ndjson" in ctype or "jsonl" in ctype else ".json"
    if "html" in ctype and "<rss" not in head and "<feed" not in head:
        return ".html"
    if re.search(r"<(rss|feed|rdf:rdf)\b", head):
        return ".xml"
    if head.startswith(("{", "[")):
        return ".json"
    if "<html" in head or "<!doctype html" in head or "<body" in head or "<article" in head:
        return ".html"
    if "xml" in ctype or head.startswith("<?xml"):
        return ".xml"
    if "markdown" in ctype:
        return ".md"
    return ".html" if head.startswith("<") else ".txt"


def _declared_charset(content_type: str, data: bytes) -> str:
    m = re.search(r"charset=[\"']?([\w.-]+)", content_type, re.I) or \
        re.search(rb"^\s*<\?xml[^>]*encoding=[\"']([\w.-]+)", data[:300], re.I)
    if not m:
        return "utf-8"
    value = m[1]
    return value.decode("ascii", "replace") if isinstance(value, bytes) else value


@dataclass
class Fetched:
    """A downloaded source, or `not_modified` when the server answered a conditional GET with 304."""
    text: str = ""
    extension: str = ""
    not_modified: bool = False
    etag: str = ""
    last_modified: str = ""


def http_timeout(settings: Settings) -> httpx.Timeout:
    """Per read, never longer than the whole download may take (NEWSRAG_FEED_DEADLINE)."""
    return httpx.Timeout(min(settings.feed_timeout, settings.feed_deadline))


def fetch_url(client: httpx.Client, url: str, settings: Settings, *, etag: str = "",
              last_modified: str = "", deadline_at: float | None = None) -> Fetched:
    """Download a URL within an overall deadline and size cap; LoadError names the network or HTTP problem.

    The per-read timeout alone let a server sending a byte every few seconds hold an ingest for minutes:
    the deadline is checked between reads, so a trickling source is dropped at most one read timeout
    (itself capped at the deadline) after it, and the other sources go on. With `etag`/`last_modified`
    from the last download the request is conditional: an unchanged feed answers 304 with no body.
    `deadline_at` (a time.monotonic() instant) ends it sooner, when several downloads share one deadline."""
    deadline = time.monotonic() + settings.feed_deadline
    if deadline_at is not None:
        deadline = min(deadline, deadline_at)
    headers = {}
    if etag:
        headers["If-None-Match"] = etag
    if last_modified:
        headers["If-Modified-Since"] = last_modified
    try:
        with client.stream("GET", url, headers=headers) as response:
            if response.status_code == 304 and headers:
                return Fetched(not_modified=True, etag=response.headers.get("etag", etag),
                               last_modified=response.headers.get("last-modified", last_modified))
            if response.status_code >= 400:
                raise LoadError(f"HTTP {response.status_code} {response.reason_phrase}".strip())
            declared = int(response.headers.get("content-length") or 0)
            if declared > settings.max_file_bytes:
                raise LoadError(size_reason(declared, settings.max_file_bytes))
            chunks, total = [], 0
            for chunk in response.iter_bytes():
                total += len(chunk)
                if total > settings.max_file_bytes:
                    raise LoadError(size_reason(total, settings.max_file_bytes) + " (download stopped)")
                if time.monotonic() > deadline:
                    raise LoadError(f"network error: the download took longer than {settings.feed_deadline:g}s "
                                    f"(NEWSRAG_FEED_DEADLINE; {total:,} bytes received); abandoned")
                chunks.append(chunk)
            content_type = response.headers.get("content-type", "")
            validators = (response.headers.get("etag", ""), response.headers.get("last-modified", ""))
    except httpx.TimeoutException:
        raise LoadError(f"network error: no response within {min(settings.feed_timeout, settings.feed_deadline):g}s "
                        "(NEWSRAG_FEED_TIMEOUT)") from None
    except httpx.ConnectError as exc:
        raise LoadError(f"network error: could not connect ({exc})") from None
    except httpx.InvalidURL as exc:
        raise LoadError(f"invalid URL: {exc}") from None
    except httpx.HTTPError as exc:
        raise LoadError(f"network error: {type(exc).__name__}: {exc}") from None
    data = b"".join(chunks)
    text = decode_text(data, _declared_charset(content_type, data))
    return Fetched(text, sniff_extension(content_type, text), etag=validators[0], last_modified=validators[1])


def _fetch(client: httpx.Client, url: str, settings: Settings) -> tuple[str, str]:
    """(text, extension) of a URL; LoadError names the network or HTTP problem."""
    got = fetch_url(client, url, settings)
    return got.text, got.extension


# --- the entry point -----------------------------------------------------------------------------------

def _collect(result: LoadResult, origin: str, load: Callable[[], Stories]) -> None:
    """Run one source's load, turning every failure into a Skipped; never lets an exception escape."""
    try:
        stories = load()
    except LoadError as exc:
        result.skipped.append(Skipped(origin, exc.reason))
        return
    except Exception as exc:  # noqa: BLE001 - a parser bug must cost one file, not the whole run
        result.skipped.append(Skipped(origin, f"could not parse ({type(exc).__name__}: {exc}); "
                                              "please report this file"))
        return
    result.sources_seen.append(origin)
    result.stories.extend(stories)
    result.skipped.extend(Skipped(origin, reason) for reason in stories.skipped)
    if not stories and not stories.skipped:
        result.skipped.append(Skipped(origin, "no stories found in the file"))


def _load_file(path: Path, origin: str, settings: Settings) -> Stories:
    return parse_document(_read_file(path, settings), origin, path.suffix)


def _load_url(client: httpx.Client, url: str, settings: Settings) -> Stories:
    text, extension = _fetch(client, url, settings)
    return parse_document(text, url, extension)


def load_paths(paths: Sequence[str | Path], settings: Settings) -> LoadResult:
    """Load every file, folder (recursively) and http(s) URL given, in order; see LoadResult."""
    result = LoadResult()
    seen: set[str] = set()
    with httpx.Client(timeout=http_timeout(settings), follow_redirects=True,
                      headers={"User-Agent": "newsrag-ingest/1.0"}) as client:
        for raw in paths:
            if is_url(raw):
                url = str(raw).strip()
                if url not in seen:
                    seen.add(url)
                    _collect(result, url, partial(_load_url, client, url, settings))
                continue
            for item in _expand(raw):
                if isinstance(item, Skipped):
                    result.skipped.append(item)
                    continue
                origin = str(item.resolve())
                if origin not in seen:
                    seen.add(origin)
                    _collect(result, origin, partial(_load_file, item, origin, settings))
    return result
