"""Pure HTML/format helpers for the chat UI (app.py): no gradio, no I/O, so each piece is unit-testable.

Safety rules every function here keeps:
* every piece of story data (title, body, snippet, outlet, URL, tag) and every user string is passed
  through `esc` before it enters markup -- the stories are untrusted input;
* a URL becomes a link only when `safe_url` accepts it (http/https with a host, no whitespace or
  control characters); anything else (`javascript:`, `data:`, relative paths) is shown as plain text;
* links to outside pages carry target="_blank" rel="noopener noreferrer".
The chatbot component sanitises the HTML again in the browser; this module does not rely on it.
"""
from __future__ import annotations

import html
import itertools
import re
import uuid
from collections import Counter
from datetime import date, timedelta
from typing import Any, Iterable, Mapping, Sequence
from urllib.parse import urlsplit

from rag.limits import parse_day  # noqa: F401  (one date rule for every interface; the app imports it here)

_ids = itertools.count(1)
_PREFIX = uuid.uuid4().hex[:6]

TIMELINE_LINE = re.compile(r"^\s*[-*•]\s*(\d{4}-\d{2}-\d{2})\b\s*(.*)$")
MARKER = re.compile(r"\[(\d{1,3}(?:\s*,\s*\d{1,3})*)\]")
_CONTROL = re.compile(r"[\x00-\x20\x7f-\x9f]")
_WORD = re.compile(r"[A-Za-z0-9][A-Za-z0-9'’\-.]*")
_SENT_SPLIT = re.compile(r"(?<=[.!?…])[\"'”’)\]]*\s+")


def esc(value: Any) -> str:
    """HTML-escape anything (quotes included, so the result is safe inside attributes too)."""
    return html.escape("" if value is None else str(value), quote=True)


def new_message_id() -> str:
    """A DOM id prefix unique in this process, so anchors of two answers never collide."""
    return f"nr{_PREFIX}{next(_ids)}"


# --------------------------------------------------------------------------------------- links

def safe_url(url: Any) -> str | None:
    """The URL when it is an absolute http(s) URL with a host, else None (never a script/data URL)."""
    if not isinstance(url, str):
        return None
    u = url.strip()
    if not u or _CONTROL.search(u) or "\\" in u:
        return None
    try:
        parts = urlsplit(u)
    except ValueError:
        return None
    if parts.scheme.lower() not in ("http", "https") or not parts.netloc or parts.netloc.startswith("@"):
        return None
    try:
        parts.port  # noqa: B018 - raises on a malformed port
    except ValueError:
        return None
    return u


def link(url: Any, text: Any, cls: str = "") -> str:
    """<a> to an outside page when the URL is safe; otherwise the (escaped) text alone."""
    ok = safe_url(url)
    label = esc(text)
    klass = f' class="{esc(cls)}"' if cls else ""
    if ok is None:
        return f"<span{klass}>{label}</span>"
    return f'<a{klass} href="{esc(ok)}" target="_blank" rel="noopener noreferrer">{label}</a>'


def url_line(url: Any) -> str:
    """The URL itself, shown in a source card: a link when safe, plain text (marked unsafe) when not."""
    if not url:
        return '<span class="nr-url nr-url-none">no link</span>'
    if safe_url(url) is None:
        return f'<span class="nr-url nr-url-unsafe" title="not an http(s) link">{esc(url)}</span>'
    return link(url, url, "nr-url")


# ------------------------------------------------------------------------------ answer text

def is_timeline(text: str) -> bool:
    """A timeline answer: at least two non-empty lines, all of them "- YYYY-MM-DD ..."."""
    lines = [ln for ln in (text or "").splitlines() if ln.strip()]
    return len(lines) >= 2 and all(TIMELINE_LINE.match(ln) for ln in lines)


def _norm(s: str) -> str:
    return " ".join(s.split())


def _find_spans(line: str, sentences: Iterable[str]) -> list[tuple[int, int]]:
    """Character spans of `sentences` inside `line` (exact match first, then whitespace-insensitive)."""
    spans: list[tuple[int, int]] = []
    for s in sentences:
        s = (s or "").strip()
        if len(s) < 3:
            continue
        i = line.find(s)
        if i < 0:
            pat = r"\s+".join(re.escape(w) for w in s.split())
            m = re.search(pat, line)
            if not m:
                continue
            spans.append((m.start(), m.end()))
        else:
            spans.append((i, i + len(s)))
    spans.sort()
    merged: list[tuple[int, int]] = []
    for a, b in spans:
        if merged and a < merged[-1][1]:
            continue
        merged.append((a, b))
    return merged


def _markers_html(escaped: str, msg_id: str, known: set[int]) -> str:
    """Turn [n] / [n, m] in already-escaped text into anchors to the answer's source cards."""
    def repl(m: re.Match) -> str:
        nums = [int(x) for x in re.findall(r"\d+", m.group(1))]
        if not nums or not all(n in known for n in nums):
            return m.group(0)
        return "".join(f'<a class="nr-cite" href="#{msg_id}-s{n}" title="source {n}">[{n}]</a>' for n in nums)
    return MARKER.sub(repl, escaped)


def inline_html(line: str, msg_id: str, known: set[int], unsupported: Sequence[str] = ()) -> str:
    """One line of answer text: escaped, citations linked, unsupported sentences visibly marked."""
    out: list[str] = []
    pos = 0
    for a, b in _find_spans(line, unsupported):
        out.append(_markers_html(esc(line[pos:a]), msg_id, known))
        out.append('<span class="nr-unverified" title="No source supports this sentence">'
                   f'{_markers_html(esc(line[a:b]), msg_id, known)}</span>'
                   '<span class="nr-badge nr-badge-unverified">unverified</span>')
        pos = b
    out.append(_markers_html(esc(line[pos:]), msg_id, known))
    return "".join(out)


def body_html(text: str, msg_id: str, known: set[int], unsupported: Sequence[str] = ()) -> str:
    """Paragraphs, or a dated list when the answer is a timeline."""
    text = text or ""
    if is_timeline(text):
        items = []
        for ln in text.splitlines():
            m = TIMELINE_LINE.match(ln)
            if not m:
                continue
            day, rest = m.group(1), m.group(2)
            items.append(f'<li><time class="nr-tl-date" datetime="{esc(day)}">{esc(day)}</time> '
                         f'<span class="nr-tl-text">{inline_html(rest, msg_id, known, unsupported)}</span></li>')
        return f'<ol class="nr-timeline">{"".join(items)}</ol>'
    paras = [p for p in re.split(r"\n\s*\n", text) if p.strip()]
    out = []
    for p in paras:
        lines = [inline_html(ln, msg_id, known, unsupported) for ln in p.splitlines() if ln.strip()]
        out.append(f'<p>{"<br>".join(lines)}</p>')
    return "".join(out)


_EVENT_LINE = re.compile(r"^(?P<indent>\s*)[-*•]\s+(?:(?P<day>[A-Z][a-z]+ \d{1,2}, \d{4}) · (?P<outlets>[^:]*):\s+)?(?P<rest>.*)$")


def is_brief(d: Mapping[str, Any]) -> bool:
    """A brief or overview answer (rag.briefs): flagged so, whatever its text looks like."""
    return any(f in ("brief", "overview") for f in (d.get("flags") or []))


def brief_html(text: str, msg_id: str, known: set[int], unsupported: Sequence[str] = ()) -> str:
    """Events as a list: each event's date and outlets, its lead sentence, and the other stories that
    reported it nested under it; "# " lines (an overview's "Latest", "Key milestones") as headings."""
    out: list[str] = []
    open_list = open_item = open_sub = False

    def close(level: str) -> None:
        nonlocal open_list, open_item, open_sub
        if open_sub:
            out.append("</ul>")
            open_sub = False
        if level in ("item", "list") and open_item:
            out.append("</li>")
            open_item = False
        if level == "list" and open_list:
            out.append("</ol>")
            open_list = False

    for ln in (text or "").splitlines():
        if not ln.strip():
            continue
        if ln.startswith("#"):
            close("list")
            out.append(f'<div class="nr-brief-head">{esc(ln.lstrip("#").strip())}</div>')
            continue
        m = _EVENT_LINE.match(ln)
        if not m:
            close("list")
            out.append(f"<p>{inline_html(ln, msg_id, known, unsupported)}</p>")
            continue
        head = ""
        if m["day"]:
            head = (f'<time class="nr-ev-date">{esc(m["day"])}</time> '
                    f'<span class="nr-ev-outlets">{esc(m["outlets"])}</span> ')
        body = f'{head}<span class="nr-ev-text">{inline_html(m["rest"], msg_id, known, unsupported)}</span>'
        if m["indent"] and open_item:
            if not open_sub:
                out.append('<ul class="nr-ev-also">')
                open_sub = True
            out.append(f"<li>{body}</li>")
            continue
        close("item")
        if not open_list:
            out.append('<ol class="nr-brief">')
            open_list = True
        out.append(f'<li class="nr-event">{body}')
        open_item = True
    close("list")
    return "".join(out)


# ------------------------------------------------------------------------------ source cards

def _words(s: str) -> set[str]:
    return {w.lower().strip(".'’-") for w in _WORD.findall(s or "") if len(w) > 2}


def snippet_html(snippet: str, sentence: str) -> str:
    """The supporting snippet, escaped, with the part that matches the cited sentence in <mark>."""
    snippet = _norm(snippet or "")
    if not snippet:
        return ""
    sentence = _norm(MARKER.sub(" ", sentence or ""))
    if sentence:
        # the sentence itself, or without an attribution lead ("On May 2, 2026, CNBC reported: ...")
        for cand in (sentence, sentence.split(": ", 1)[1] if ": " in sentence else ""):
            core = _norm(cand).rstrip(".!?… ")
            i = snippet.find(core) if len(core) >= 12 else -1
            if i >= 0:
                j = i + len(core)
                return f"{esc(snippet[:i])}<mark>{esc(snippet[i:j])}</mark>{esc(snippet[j:])}"
    parts = [p for p in _SENT_SPLIT.split(snippet) if p.strip()]
    if not parts:
        return esc(snippet)
    target = _words(sentence)
    best, best_score = 0, -1.0
    for k, p in enumerate(parts):
        pw = _words(p)
        score = len(pw & target) / (len(pw) ** 0.5 or 1.0) if target else 0.0
        if score > best_score:
            best, best_score = k, score
    out, pos = [], 0
    for k, p in enumerate(parts):
        i = snippet.find(p, pos)
        if i < 0:  # cannot locate: fall back to a simple joined rendering
            return " ".join(f"<mark>{esc(q)}</mark>" if n == best else esc(q) for n, q in enumerate(parts))
        out.append(esc(snippet[pos:i]))
        out.append(f"<mark>{esc(p)}</mark>" if k == best else esc(p))
        pos = i + len(p)
    out.append(esc(snippet[pos:]))
    return "".join(out)


def source_card(c: Mapping[str, Any], msg_id: str) -> str:
    """One citation as a card: number, title (link), outlet, date, URL, snippet with <mark>."""
    n = int(c.get("n", 0))
    day = str(c.get("published_at") or "")
    return (f'<div class="nr-card" id="{msg_id}-s{n}">'
            f'<div class="nr-card-head"><span class="nr-card-n">[{n}]</span> '
            f'{link(c.get("url"), c.get("title") or "untitled", "nr-card-title")}</div>'
            f'<div class="nr-card-meta"><span class="nr-outlet">{esc(c.get("outlet") or "unknown")}</span>'
            f' · <time class="nr-date" datetime="{esc(day)}">{esc(day)}</time></div>'
            f'<div class="nr-card-url">{url_line(c.get("url"))}</div>'
            f'<blockquote class="nr-snippet">{snippet_html(c.get("snippet", ""), c.get("sentence", ""))}</blockquote>'
            f"</div>")


def related_html(related: Sequence[Mapping[str, Any]]) -> str:
    if not related:
        return ""
    items = "".join(
        f'<li>{link(s.get("url"), s.get("title") or "untitled", "nr-related-title")} '
        f'<span class="nr-card-meta">— <span class="nr-outlet">{esc(s.get("outlet") or "unknown")}</span>, '
        f'<time class="nr-date" datetime="{esc(s.get("published_at") or "")}">{esc(s.get("published_at") or "")}'
        f"</time></span></li>" for s in related)
    return (f'<div class="nr-related"><div class="nr-related-head">Related reading — not evidence</div>'
            f"<ul>{items}</ul></div>")


def notices_html(notices: Sequence[str]) -> str:
    if not notices:
        return ""
    return '<div class="nr-notices">' + "".join(
        f'<div class="nr-notice">ⓘ {esc(n)}</div>' for n in notices) + "</div>"


def meta_line(d: Mapping[str, Any]) -> str:
    parts = []
    if not d.get("refused"):
        ratio = float(d.get("grounded_ratio") or 0.0)
        n_unsup = len(d.get("unsupported_sentences") or [])
        klass = "nr-grounded-ok" if ratio >= 0.999 else ("nr-grounded-mid" if ratio >= 0.5 else "nr-grounded-low")
        extra = f" ({n_unsup} unverified)" if n_unsup else ""
        parts.append(f'<span class="nr-grounded {klass}">grounded {ratio:.0%}{extra}</span>')
    if d.get("generator"):
        parts.append(f'generator: {esc(d["generator"])}')
    total = (d.get("timings") or {}).get("total")
    if isinstance(total, (int, float)):
        parts.append(f"{total:.0f} ms")
    f = d.get("filters") or {}
    rng = []
    if f.get("since"):
        rng.append(f"since {esc(f['since'])}")
    if f.get("until"):
        rng.append(f"until {esc(f['until'])}")
    if f.get("outlets"):
        rng.append("outlets: " + esc(", ".join(f["outlets"])))
    if f.get("tags"):
        rng.append("tags: " + esc(", ".join(f["tags"])))
    if rng:
        parts.append("filters: " + "; ".join(rng))
    return f'<div class="nr-meta">{" · ".join(parts)}</div>'


def render_answer(d: Mapping[str, Any], msg_id: str | None = None) -> str:
    """A finished answer (the dict of rag.records.answer_to_dict) as one chat message of safe HTML."""
    msg_id = msg_id or new_message_id()
    citations = list(d.get("citations") or [])
    known = {int(c["n"]) for c in citations if "n" in c}
    if d.get("refused"):
        return (f'<div class="nr-answer nr-refusal-answer" id="{msg_id}">'
                f'<div class="nr-refusal"><span class="nr-refusal-icon" aria-hidden="true">⊘</span>'
                f'<div><div class="nr-refusal-head">Not covered by the stories I hold</div>'
                f'<p>{esc(d.get("answer", ""))}</p></div></div>'
                f'{related_html(d.get("related") or [])}{notices_html(d.get("notices") or [])}{meta_line(d)}</div>')
    text = d.get("answer", "")
    kind = "nr-brief-answer" if is_brief(d) else "nr-timeline-answer" if is_timeline(text) else "nr-text-answer"
    body = (brief_html if is_brief(d) else body_html)(text, msg_id, known, d.get("unsupported_sentences") or [])
    seen: set[int] = set()
    cards = []
    for c in sorted(citations, key=lambda c: int(c.get("n", 0))):
        n = int(c.get("n", 0))
        if n in seen:
            continue
        seen.add(n)
        cards.append(source_card(c, msg_id))
    sources = (f'<div class="nr-sources"><div class="nr-sources-head">Sources</div>{"".join(cards)}</div>'
               if cards else "")
    return (f'<div class="nr-answer {kind}" id="{msg_id}">'
            f'<div class="nr-body">{body}</div>'
            f'{notices_html(d.get("notices") or [])}{sources}{meta_line(d)}</div>')


def render_streaming(text: str) -> str:
    """Partial text while the answer streams in: escaped, with a typing cursor."""
    paras = [p for p in re.split(r"\n\s*\n", text or "") if p.strip()]
    body = "".join(f"<p>{'<br>'.join(esc(ln) for ln in p.splitlines() if ln.strip())}</p>" for p in paras)
    return (f'<div class="nr-answer nr-streaming">{body or "<p></p>"}'
            '<span class="nr-typing">▍ checking sources…</span></div>')


def render_error(message: str, title: str = "I couldn't answer that") -> str:
    return (f'<div class="nr-answer nr-error-answer"><div class="nr-error"><span class="nr-error-icon" '
            f'aria-hidden="true">!</span><div><div class="nr-error-head">{esc(title)}</div>'
            f"<p>{esc(message)}</p></div></div></div>")


def render_user(text: str) -> str:
    """The user's own message, shown as text (the chatbot renders messages as HTML)."""
    return "<br>".join(esc(ln) for ln in (text or "").splitlines()) or "&nbsp;"


# ------------------------------------------------------------------------------ side panel

def ranked(counts: Mapping[str, int]) -> list[str]:
    """Choices most frequent first, ties alphabetical."""
    return [k for k, _ in sorted(counts.items(), key=lambda kv: (-kv[1], kv[0].lower()))]


def freshness_line(stats: Mapping[str, Any]) -> str:
    n = int(stats.get("stories") or 0)
    m = len(stats.get("outlets") or {})
    newest = stats.get("newest") or "—"
    line = f"{n} stories from {m} outlets, newest {newest}"
    sync = stats.get("sync")
    if sync:   # the feed sync's state file (ingest/sync.py), via NewsStore.sync_status
        line += f"; feeds last synced {str(sync.get('last_sync') or 'never')[:16].replace('T', ' ')} UTC"
        failing = list(sync.get("failing") or {})
        if failing:
            line += f"; failing: {', '.join(failing[:3])}" + (f" and {len(failing) - 3} more" if len(failing) > 3 else "")
    return line



# ------------------------------------------------------------------------------ example questions

def _recent_names(rows: Sequence[Any], since: date) -> list[str]:
    """Names in the headlines since `since`, most widely covered first, as headlines spell them: a run
    of names ("Elon Musk") when the name mostly comes in that run, else the word itself."""
    from rag.briefs import headline_names
    weight: Counter = Counter()
    forms: dict[str, Counter] = {}
    for r in rows:
        if r.published_at < since:
            continue
        found = headline_names(r.title, getattr(r, "text", "") or "")
        for name in found:
            weight[name] += 1 + len(getattr(r, "outlets", None) or [])
        run: list[str] = []
        for w in re.findall(r"[A-Za-z][A-Za-z0-9&\-.]*[A-Za-z0-9]|[^A-Za-z\s]+", (r.title or "") + " ."):
            if w.lower() in found:
                run.append(w)
                continue
            for part in run:
                forms.setdefault(part.lower(), Counter())[" ".join(run[:3])] += 1
            run = []
    return [forms[n].most_common(1)[0][0] if n in forms else n
            for n, _ in sorted(weight.items(), key=lambda kv: (-kv[1], kv[0]))]


def example_questions(rows: Sequence[Any], limit: int = 5, today: date | None = None) -> list[str]:
    """Questions a newcomer can click, built from what the store really holds.

    `rows` are stories with .title, .outlets, .published_at (rag.store.StoryRow). A brief of the newest
    period, the latest on the name the last month's headlines carried most widely, an overview of the
    next one, and the biggest stories of the last full year: each is answered from the store, and none
    names a tag (tags like "Business and policy" read as nonsense in a question).
    """
    rows = [r for r in rows if getattr(r, "title", None)]
    if not rows:
        return []
    newest = max(r.published_at for r in rows)
    today = max(today or newest, newest)
    out: list[str] = []
    if newest >= today - timedelta(days=today.weekday()):
        out.append("What happened in AI this week?")
    elif newest >= today.replace(day=1):
        out.append("What happened in AI this month?")
    else:
        out.append(f"What happened in AI in {newest.strftime('%B')} {newest.year}?")
    names = _recent_names(rows, newest - timedelta(days=30))
    older = [n for n in _recent_names(rows, newest - timedelta(days=365)) if n not in names[:2]]
    if names:
        out.append(f"What's the latest on {names[0]}?")
    for n in (names[1:2] or older[:1]):
        out.append(f"Tell me about {n}")
    years = Counter(r.published_at.year for r in rows)
    full = [y for y in sorted(years, reverse=True) if y < today.year and years[y] >= 8]
    if full:
        out.append(f"What were the biggest AI stories of {full[0]}?")
    if older[:1] and len(out) < limit:
        out.append(f"What's going on with {older[0]}?")
    return list(dict.fromkeys(out))[:limit]


# ------------------------------------------------------------------------------ feedback

def feedback_record(*, question: str, answer: Mapping[str, Any] | None, vote: Any, when: str,
                    index: Any = None, text_fallback: str = "") -> dict[str, Any]:
    """One JSONL line of thumbs-up/down feedback."""
    if vote is True or vote == "Like":
        v = "up"
    elif vote is False or vote == "Dislike":
        v = "down"
    elif vote is None:
        v = "none"
    else:
        v = str(vote)
    a = answer or {}
    return {"timestamp": when, "vote": v, "question": question,
            "answer": a.get("answer", text_fallback), "refused": bool(a.get("refused", False)),
            "grounded_ratio": a.get("grounded_ratio"), "generator": a.get("generator"),
            "citations": [{k: c.get(k) for k in ("n", "story_id", "title", "outlet", "url", "published_at")}
                          for c in (a.get("citations") or [])],
            "filters": a.get("filters"), "message_index": index}
