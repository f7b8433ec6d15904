"""Typed records handed from stage to stage: Story -> Chunk -> Source -> Answer with Citations.

Each stage of the pipeline takes and returns these, never loose dicts, so a newcomer can follow one
story from a Markdown file to a cited sentence in the chat. Stories carry day-precision dates because
that is what news sources publish; `published_ts` (UTC midnight, seconds) is the number Chroma filters on.
"""
from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass, field
from datetime import date, datetime, timezone
from typing import Any, Iterable
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

_TRACKING_PARAMS = re.compile(r"^(utm_|fbclid$|gclid$|mc_cid$|mc_eid$|ref$|ref_src$|cmpid$|ncid$|sr_share$)")


def canonical_url(url: str) -> str:
    """The form of a URL two outlets' copies of one link share: no tracking params, fragment, www or slash."""
    url = (url or "").strip()
    if not url:
        return ""
    parts = urlsplit(url)
    host = parts.netloc.lower()
    if host.startswith("www."):
        host = host[4:]
    query = urlencode([(k, v) for k, v in parse_qsl(parts.query, keep_blank_values=True)
                       if not _TRACKING_PARAMS.match(k.lower())])
    path = parts.path.rstrip("/") or ""
    scheme = "https" if parts.scheme in ("http", "https") else parts.scheme
    return urlunsplit((scheme, host, path, query, ""))


def content_hash(*parts: str) -> str:
    h = hashlib.sha256()
    for p in parts:
        h.update((p or "").encode("utf-8"))
        h.update(b"\x1f")
    return h.hexdigest()


def date_to_ts(d: date) -> int:
    """UTC midnight of a date in seconds: the numeric form Chroma range filters compare."""
    return int(datetime(d.year, d.month, d.day, tzinfo=timezone.utc).timestamp())


@dataclass(frozen=True)
class SourceLink:
    """One outlet's report of a story: who published it and where."""
    outlet: str
    url: str


@dataclass
class Story:
    """One news story, normalised from whatever format it arrived in."""
    title: str
    text: str
    published_at: date
    sources: list[SourceLink]
    tags: list[str] = field(default_factory=list)
    origin: str = ""                 # file path or feed URL the story was read from
    author: str | None = None
    id: str = ""                     # filled by __post_init__ when empty
    notes: list[str] = field(default_factory=list)  # fallbacks applied while loading (e.g. title inferred)

    def __post_init__(self) -> None:
        if not self.id:
            self.id = story_id_for(self.urls, self.title, self.text)

    @property
    def urls(self) -> list[str]:
        return [s.url for s in self.sources if s.url]

    @property
    def outlets(self) -> list[str]:
        seen: list[str] = []
        for s in self.sources:
            if s.outlet and s.outlet not in seen:
                seen.append(s.outlet)
        return seen

    @property
    def url(self) -> str:
        return self.urls[0] if self.urls else ""

    @property
    def outlet(self) -> str:
        return self.outlets[0] if self.outlets else "unknown"

    @property
    def fingerprint(self) -> str:
        """Changes whenever anything we store about the story changes: drives incremental re-ingest."""
        return content_hash(self.title, self.text, self.published_at.isoformat(),
                            "|".join(f"{s.outlet}>{s.url}" for s in self.sources), "|".join(self.tags))


def story_id_for(urls: Iterable[str], title: str, text: str) -> str:
    """Stable id: from the canonical main URL when there is one, else from the content."""
    for u in urls:
        cu = canonical_url(u)
        if cu:
            return "u" + hashlib.sha1(cu.encode("utf-8")).hexdigest()[:16]
    return "h" + content_hash(title.strip().lower(), text.strip())[:16]


@dataclass(frozen=True)
class Chunk:
    """A piece of one story sized for the embedder; `embed_text` is what the model actually sees."""
    id: str
    story_id: str
    index: int
    text: str
    embed_text: str
    n_tokens: int


@dataclass
class Source:
    """A retrieved chunk with the story it belongs to: what answers are built from and cite."""
    chunk_id: str
    story_id: str
    title: str
    text: str
    published_at: date
    outlets: list[str]
    urls: list[str]
    tags: list[str]
    chunk_index: int
    score: float = 0.0
    dense_score: float | None = None
    lexical_score: float | None = None

    @property
    def outlet(self) -> str:
        return self.outlets[0] if self.outlets else "unknown"

    @property
    def url(self) -> str:
        return self.urls[0] if self.urls else ""

    def to_dict(self) -> dict[str, Any]:
        return {"story_id": self.story_id, "chunk_id": self.chunk_id, "title": self.title,
                "outlet": self.outlet, "outlets": list(self.outlets), "url": self.url,
                "urls": list(self.urls), "published_at": self.published_at.isoformat(),
                "tags": list(self.tags), "score": round(float(self.score), 6), "text": self.text}


@dataclass
class Citation:
    """A [n] marker resolved to the story and the exact snippet that supports the cited sentence."""
    n: int
    story_id: str
    title: str
    outlet: str
    url: str
    published_at: date
    snippet: str
    sentence: str = ""            # the answer sentence this citation supports
    support: float = 0.0          # verification score of sentence vs snippet

    def to_dict(self) -> dict[str, Any]:
        return {"n": self.n, "story_id": self.story_id, "title": self.title, "outlet": self.outlet,
                "url": self.url, "published_at": self.published_at.isoformat(), "snippet": self.snippet,
                "sentence": self.sentence, "support": round(float(self.support), 4)}


@dataclass
class Filters:
    """What the user narrowed the search to; the date bounds are inclusive."""
    since: date | None = None
    until: date | None = None
    outlets: list[str] = field(default_factory=list)
    tags: list[str] = field(default_factory=list)

    def is_empty(self) -> bool:
        return not (self.since or self.until or self.outlets or self.tags)


@dataclass
class Answer:
    """What the bot says, with everything a user or a test needs to check it."""
    question: str
    text: str
    citations: list[Citation] = field(default_factory=list)
    sources: list[Source] = field(default_factory=list)
    refused: bool = False
    grounded_ratio: float = 0.0
    generator: str = "extractive"
    flags: list[str] = field(default_factory=list)      # e.g. "fallback:llm-unreachable", "unsupported:2"
    notices: list[str] = field(default_factory=list)    # human-readable notes shown with the answer
    related: list[Source] = field(default_factory=list)  # nearest stories offered on refusal, not support
    unsupported_sentences: list[str] = field(default_factory=list)
    timings: dict[str, float] = field(default_factory=dict)
    standalone_question: str = ""
    filters: Filters | None = None


def story_entry(src: Source) -> dict[str, Any]:
    """A retrieved story as the JSON contract lists it (one entry per story)."""
    return {"story_id": src.story_id, "title": src.title, "outlet": src.outlet, "outlets": list(src.outlets),
            "url": src.url, "published_at": src.published_at.isoformat(), "score": round(float(src.score), 6)}


def answer_to_dict(a: Answer) -> dict[str, Any]:
    """The JSON contract of `python -m rag ask --json`, `batch` and the app's /ask endpoint."""
    f = a.filters
    return {
        "question": a.question,
        "standalone_question": a.standalone_question or a.question,
        "answer": a.text,
        "refused": a.refused,
        "citations": [c.to_dict() for c in a.citations],
        "sources": [story_entry(s) for s in a.sources],
        "related": [story_entry(s) for s in a.related],
        "grounded_ratio": round(float(a.grounded_ratio), 4),
        "unsupported_sentences": list(a.unsupported_sentences),
        "generator": a.generator,
        "flags": list(a.flags),
        "notices": list(a.notices),
        "filters": None if f is None else {
            "since": f.since.isoformat() if f.since else None, "until": f.until.isoformat() if f.until else None,
            "outlets": list(f.outlets), "tags": list(f.tags)},
        "timings": {k: round(v * 1000, 2) for k, v in a.timings.items()},  # milliseconds
    }
