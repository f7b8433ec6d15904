"""What the HTTP API and the MCP server share: the citation fields, the host and port checks.

Both speak to clients that know nothing of our answer contract, so the answer is reshaped once, here,
into the convention those clients already read (Perplexity's `citations` and `search_results`).
"""
from __future__ import annotations

import ipaddress
import re
import socket
from typing import Any


MARKER = re.compile(r"\[(\d{1,4})\]")


def cited_answer(d: dict[str, Any]) -> tuple[str, dict[str, Any]]:
    """The answer text and the extension fields an OpenAI-style client reads, from the answer JSON.

    Perplexity's convention ties marker [i] to `citations[i-1]`. Our markers are source numbers, which
    can skip ([1], [3]) and need not appear in order, so they are renumbered 1..N in reading order
    (the first story cited is [1]); the full answer JSON (`python -m rag ask --json`) keeps the
    original numbers."""
    by_n = {c["n"]: c for c in d.get("citations") or []}
    order: list[int] = []
    text = d.get("answer") or ""
    for m in MARKER.finditer(text):
        n = int(m.group(1))
        if n in by_n and n not in order:
            order.append(n)
    order += sorted(n for n in by_n if n not in order)
    new_n = {n: i for i, n in enumerate(order, 1)}
    text = MARKER.sub(lambda m: f"[{new_n[int(m.group(1))]}]" if int(m.group(1)) in new_n else m.group(0), text)
    cites = [by_n[n] for n in order]
    fields = {
        "citations": [c["url"] for c in cites],
        "search_results": [{"title": c["title"], "url": c["url"], "date": c["published_at"],
                            "snippet": c["snippet"], "outlet": c["outlet"], "story_id": c["story_id"]}
                           for c in cites],
        "refused": bool(d.get("refused")),
        "grounded_ratio": d.get("grounded_ratio", 0.0),
        "related": [story_brief(s) for s in d.get("related") or []],
        "notices": list(d.get("notices") or []),
    }
    return text, fields


def story_brief(s: dict[str, Any]) -> dict[str, Any]:
    """A retrieved story as the search tools list it: what a reader needs to open it."""
    return {"title": s["title"], "url": s["url"], "date": s["published_at"], "outlet": s["outlet"],
            "outlets": list(s.get("outlets") or [s["outlet"]]), "story_id": s["story_id"]}


def is_loopback(host: str) -> bool:
    host = (host or "").strip()
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def port_problem(host: str, port: int) -> str | None:
    """Fail fast (before the slow model load) when the port cannot be bound."""
    try:
        infos = socket.getaddrinfo(host or None, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
    except socket.gaierror as exc:
        return f"cannot resolve host {host!r}: {exc}"
    family, _, _, _, addr = infos[0]
    with socket.socket(family, socket.SOCK_STREAM) as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind(addr)
        except OSError as exc:
            return (f"cannot listen on {host}:{port} ({exc.strerror}); is the app already running? "
                    "Pick another port with --port or NEWSRAG_PORT.")
    return None
