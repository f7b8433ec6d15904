"""Markdown stories with YAML front matter, and the Markdown helpers the digest parser shares.

Front matter is read tolerantly where real files are sloppy in harmless ways (a BOM, a wrapping
```markdown fence, body text glued to the closing `---`) and strictly where the YAML itself is broken,
because a half-read header would silently lose the date or the sources.
"""
from __future__ import annotations

import html as html_lib
import re
from dataclasses import dataclass
from typing import Any

import yaml

from ingest.loaders.base import LoadError, Stories, build_story, clean_tags, is_http, source_link
from rag.records import SourceLink

_YAML_LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)      # the C loader is ~10x faster, same rules
_FENCE = re.compile(r"^\s*```[\w-]*[ \t]*\n")
_OPEN = re.compile(r"^---[ \t]*\n")
_CLOSE = re.compile(r"^---[ \t]*(?:\n|$|(?=\S))", re.M)


@dataclass
class FrontMatter:
    meta: dict[str, Any]
    body: str
    has_front_matter: bool
    error: str | None = None          # set only when salvaging: what was wrong with the YAML


def split_front_matter(text: str, salvage: bool = False) -> FrontMatter:
    """Split `--- yaml ---` from the body; LoadError names the line and column of a YAML mistake.

    With `salvage`, broken YAML is read line by line instead, keeping every key that parses on its own;
    digests use this because their header carries nothing a broken excerpt line could take with it.
    """
    text = text.lstrip("\ufeff")
    first_yaml_line = 2                      # the line after the opening `---`, counted from 1
    fence = _FENCE.match(text)
    if fence and _OPEN.match(text[fence.end():]):
        text = text[fence.end():]
        text = re.sub(r"\n```\s*$", "\n", text)
        first_yaml_line += 1
    opening = _OPEN.match(text)
    if not opening:
        return FrontMatter({}, text, False)
    rest = text[opening.end():]
    close = _CLOSE.search(rest)
    if close is None:
        raise LoadError("malformed front matter: the `---` on line 1 is never closed by another `---`")
    raw, body = rest[:close.start()], rest[close.end():]
    try:
        meta = _load_yaml(raw, first_yaml_line)
    except LoadError as exc:
        if not salvage:
            raise
        return FrontMatter(_salvage(raw), body, True, exc.reason)
    return FrontMatter(meta, body, True)


def _load_yaml(raw: str, first_line: int) -> dict[str, Any]:
    try:
        meta = yaml.load(raw, Loader=_YAML_LOADER) if raw.strip() else {}
    except yaml.MarkedYAMLError as exc:
        raise LoadError("malformed front matter" + _yaml_where(exc, first_line)) from None
    except yaml.YAMLError as exc:
        raise LoadError(f"malformed front matter: {squash_error(exc)}") from None
    if meta is None:
        return {}
    if not isinstance(meta, dict):
        raise LoadError(f"malformed front matter: expected `key: value` lines, found a {type(meta).__name__}")
    return meta


def _yaml_where(exc: yaml.MarkedYAMLError, first_line: int) -> str:
    """' at line L, column C: problem (context from line L)', with lines counted in the whole file."""
    def at(mark: yaml.Mark) -> str:
        return f"line {mark.line + first_line}, column {mark.column + 1}"
    text = f" at {at(exc.problem_mark)}" if exc.problem_mark else ""
    text += f": {exc.problem or 'invalid YAML'}"
    if exc.context and exc.context_mark:
        text += f" ({exc.context} from {at(exc.context_mark)})"
    return text


def _salvage(raw: str) -> dict[str, Any]:
    """Top-level `key: value` lines that parse on their own (nested blocks are skipped)."""
    meta: dict[str, Any] = {}
    for line in raw.splitlines():
        if not re.match(r"^[A-Za-z_][\w-]*:", line):
            continue
        try:
            item = yaml.load(line, Loader=_YAML_LOADER)
        except yaml.YAMLError:
            continue
        if isinstance(item, dict):
            meta.update(item)
    return meta


def squash_error(exc: Exception) -> str:
    return " ".join(str(exc).split())[:200]


# --- Markdown to plain text ----------------------------------------------------------------------------

_HTML_BLOCKS = re.compile(r"<(script|style|iframe|figure|video|audio|noscript)\b.*?</\1\s*>", re.S | re.I)
_HTML_COMMENT = re.compile(r"<!--.*?-->", re.S)
_LIQUID = re.compile(r"\{%.*?%\}|\{\{.*?\}\}", re.S)
_LINK_TARGET = r"\((?:[^()\s]|\([^()]*\))*(?:\s+\"[^\"]*\")?\)"
_IMAGE = re.compile(r"!\[[^\]]*\]" + _LINK_TARGET)
_LINK = re.compile(r"\[([^\]]*)\]" + _LINK_TARGET)
_REF_LINK = re.compile(r"\[([^\]]+)\]\[[^\]]*\]")
_FOOTNOTE_MARK = re.compile(r"\[\^[^\]]+\]:?")
_TAG = re.compile(r"</?[A-Za-z][^>]*>")
_BOLD = re.compile(r"(\*\*|__)(?=\S)(.+?)(?<=\S)\1")
_ITALIC = re.compile(r"(?<![\w*])([*_])(?=\S)(.+?)(?<=\S)\1(?![\w*])")
_ESCAPE = re.compile(r"\\([\\`*_{}\[\]()#+\-.!|>])")
_LINE_MARKUP = re.compile(r"^[ \t]*(?:#{1,6}[ \t]*|>[ \t>]*|[*+-][ \t]+|\d+\.[ \t]+)", re.M)
_RULE = re.compile(r"^[ \t]*(?:-{3,}|\*{3,}|_{3,})[ \t]*$", re.M)


def markdown_inline_to_text(md: str) -> str:
    """Links reduced to their text, images and emphasis markers dropped: what a reader sees on one line."""
    text = _IMAGE.sub("", md)
    text = _LINK.sub(r"\1", text)
    text = _REF_LINK.sub(r"\1", text)
    text = _FOOTNOTE_MARK.sub("", text)
    text = _TAG.sub("", text)
    text = _BOLD.sub(r"\2", text)
    text = _ITALIC.sub(r"\2", text)
    text = _ESCAPE.sub(r"\1", text)
    return html_lib.unescape(text)


def markdown_to_text(md: str) -> str:
    """Plain paragraphs from Markdown, because the embedder and the citations should see prose, not syntax."""
    text = _HTML_COMMENT.sub("", md)
    text = _HTML_BLOCKS.sub("\n", text)
    text = _LIQUID.sub("", text)
    text = _RULE.sub("", text)
    text = re.sub(r"<(?:br|hr)\s*/?>", "\n\n", text, flags=re.I)
    text = _LINE_MARKUP.sub("", text)
    return markdown_inline_to_text(text)


# --- one story per file ---------------------------------------------------------------------------------

_H1 = re.compile(r"^[ \t]*#[ \t]+(.+?)[ \t#]*$", re.M)


def sources_from_meta(meta: dict[str, Any]) -> list[SourceLink]:
    """`sources:` as a list of {outlet, url} or of URLs, or flat `url`/`link` with `source`/`outlet` fields."""
    out: list[SourceLink] = []
    raw = meta.get("sources")
    if isinstance(raw, (str, dict)):
        raw = [raw]
    for item in raw or []:
        if isinstance(item, str) and is_http(item):
            out.append(source_link(item))
        elif isinstance(item, dict):
            url = str(item.get("url") or item.get("link") or item.get("href") or "")
            name = item.get("outlet") or item.get("name") or item.get("source")
            if is_http(url):
                out.append(source_link(url, str(name) if name else None))
    url = str(meta.get("url") or meta.get("link") or "")
    source = meta.get("source") or meta.get("outlet")
    if isinstance(source, dict):
        source = source.get("name")
    if not is_http(url) and isinstance(source, str) and is_http(source):
        url, source = source, None
    if is_http(url) and url not in [s.url for s in out]:
        out.insert(0, source_link(url, str(source) if source else None))
    return out


def first_h1(body: str) -> tuple[str, str]:
    """A leading `# Title` line is the title when the front matter has none; it is then cut from the text."""
    for line in body.splitlines():
        if not line.strip():
            continue
        m = _H1.match(line)
        if m:
            return markdown_inline_to_text(m[1]).strip(), body.replace(line, "", 1)
        break
    return "", body


def parse_markdown(text: str, origin: str) -> Stories:
    """One story from a Markdown file: front matter for the facts, the body (as plain text) for the text."""
    fm = split_front_matter(text)
    meta = fm.meta
    title = meta.get("title")
    body = fm.body
    if not (isinstance(title, str) and title.strip()):
        h1, body = first_h1(body)
        title = h1 or None
    published = next((meta[k] for k in ("published", "published_at", "date", "pubDate") if meta.get(k)), None)
    story = build_story(title=markdown_inline_to_text(title) if isinstance(title, str) else title,
                        text=markdown_to_text(body), published=published, sources=sources_from_meta(meta),
                        origin=origin, tags=clean_tags(meta.get("tags")), author=meta.get("author"))
    return Stories([story])
