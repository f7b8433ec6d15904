"""Saved or fetched article pages: the article's own text and facts, without the site around it.

Publishers state their facts in machine-readable places (Open Graph, article:* meta, JSON-LD) more
reliably than in the visible page, so those are read first and the visible page is the fallback.
"""
from __future__ import annotations

import json
from typing import Any, Iterator
from urllib.parse import urljoin

from bs4 import BeautifulSoup, Tag

from ingest.loaders.base import LoadError, Stories, build_story, clean_tags, is_http, source_link, squash

NOISE_TAGS = ("script", "style", "noscript", "nav", "header", "footer", "aside", "form", "iframe", "svg",
              "button", "template", "select", "input")
BLOCK_TAGS = ("p", "h2", "h3", "h4", "h5", "li", "blockquote", "pre")
DATE_META = ("article:published_time", "og:published_time", "datepublished", "date", "pubdate",
             "publish-date", "publish_date", "dc.date", "dc.date.issued", "parsely-pub-date", "sailthru.date")


def _meta(soup: BeautifulSoup, *names: str) -> str:
    """First non-empty <meta> content whose property/name/itemprop is one of `names` (case-insensitive)."""
    wanted = {n.lower() for n in names}
    for tag in soup.find_all("meta"):
        key = (tag.get("property") or tag.get("name") or tag.get("itemprop") or "").lower()
        if key in wanted and (tag.get("content") or "").strip():
            return tag["content"].strip()
    return ""


def _json_ld(soup: BeautifulSoup) -> Iterator[dict[str, Any]]:
    """Every object in the page's JSON-LD blocks, @graph members included; unreadable blocks are ignored."""
    for script in soup.find_all("script", type=lambda t: t and "ld+json" in t.lower()):
        try:
            data = json.loads(script.string or "")
        except (json.JSONDecodeError, TypeError):
            continue
        stack = [data]
        while stack:
            item = stack.pop(0)
            if isinstance(item, list):
                stack.extend(item)
            elif isinstance(item, dict):
                yield item
                if isinstance(item.get("@graph"), list):
                    stack.extend(item["@graph"])


def _ld_value(soup: BeautifulSoup, key: str) -> Any:
    return next((obj[key] for obj in _json_ld(soup) if obj.get(key)), None)


def _title(soup: BeautifulSoup) -> str:
    h1 = soup.find("h1")
    for candidate in (_meta(soup, "og:title", "twitter:title"), _ld_value(soup, "headline"),
                      h1.get_text(" ", strip=True) if h1 else "",
                      soup.title.get_text(" ", strip=True) if soup.title else ""):
        if isinstance(candidate, str) and candidate.strip():
            return squash(candidate)
    return ""


def _published(soup: BeautifulSoup) -> str | None:
    found = _meta(soup, *DATE_META) or _ld_value(soup, "datePublished")
    if found:
        return str(found)
    time_tag = soup.find("time", attrs={"datetime": True})
    return time_tag["datetime"] if time_tag else None


def _url(soup: BeautifulSoup, origin: str) -> str:
    link = soup.find("link", rel=lambda r: r and "canonical" in ([r] if isinstance(r, str) else r))
    for candidate in ((link.get("href") if link else ""), _meta(soup, "og:url")):
        if candidate:
            return urljoin(origin, candidate) if is_http(origin) else candidate
    return origin if is_http(origin) else ""


def _author(soup: BeautifulSoup) -> Any:
    return _meta(soup, "author", "article:author", "parsely-author") or _ld_value(soup, "author")


def _text_length(tag: Tag) -> int:
    return len(tag.get_text(" ", strip=True))


def _main_container(soup: BeautifulSoup) -> Tag:
    """<article> or <main> when the page marks its content, else the block holding the most paragraph text."""
    articles = soup.find_all("article")
    if articles:
        return max(articles, key=_text_length)
    main = soup.find("main") or soup.find(attrs={"role": "main"})
    if main is not None:
        return main

    def density(tag: Tag) -> int:
        return sum(_text_length(p) for p in tag.find_all("p", recursive=False))

    blocks = soup.find_all(["div", "section", "td"])
    best = max(blocks, key=density, default=None)
    if best is not None and density(best) > 0:
        return best
    return soup.body or soup


def _paragraphs(container: Tag, title: str) -> str:
    leaves = [el for el in container.find_all(BLOCK_TAGS) if not el.find(BLOCK_TAGS)]
    texts = [squash(el.get_text(" ", strip=True)) for el in leaves] if leaves else \
        [squash(t) for t in container.get_text("\n").split("\n")]
    return "\n\n".join(t for t in texts if t and t != title)


def parse_html(text: str, origin: str) -> Stories:
    """One story from an article page; LoadError when the page has no readable article text."""
    soup = BeautifulSoup(text, "lxml")
    title = _title(soup)
    published = _published(soup)
    url = _url(soup, origin)
    site = _meta(soup, "og:site_name", "application-name")
    tags = clean_tags([t.get("content", "") for t in soup.find_all("meta", property="article:tag")]) or \
        clean_tags(_meta(soup, "keywords", "news_keywords"))
    author = _author(soup)
    for tag in soup.find_all(NOISE_TAGS):
        tag.decompose()
    body = _paragraphs(_main_container(soup), title)
    if not body:
        raise LoadError("empty body: no article text found in the page")
    sources = [source_link(url, site or None)] if is_http(url) else []
    return Stories([build_story(title=title or None, text=body, published=published, sources=sources,
                                origin=origin, tags=tags, author=author)])


def article_text(page: str, url: str) -> str:
    """The article of a linked page, for feed items that carry only a summary (a feed's
    `fetch_articles: true`), by trafilatura: a maintained extractor rather than parse_html's densest
    block. LoadError says why no article came out, so the sync keeps the summary and reports it."""
    try:
        import trafilatura
    except ImportError:
        raise LoadError("article extraction needs trafilatura: pip install '.[feeds]'") from None
    try:
        text = trafilatura.extract(page, url=url or None, include_comments=False, include_tables=False)
    except Exception as exc:  # noqa: BLE001 - a page that breaks the extractor costs its article only
        raise LoadError(f"article extraction failed ({type(exc).__name__})") from None
    if not text or not text.strip():
        raise LoadError("no article text found in the linked page")
    return text
