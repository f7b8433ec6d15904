"""`newsrag mcp`: the news store as Model Context Protocol tools, over stdio or streamable HTTP.

Agents (Claude Desktop, Cursor, any MCP client) get three tools:
* `search_news(query, since?, until?, outlet?, k?)`: the best-matching stories with url and date, and
  whether the store holds anything relevant at all (the same gate that makes newsrag refuse);
* `ask_news(question, since?, until?, outlet?)`: the cited, verified answer. Its structured content is
  the JSON contract of `python -m rag ask --json`, so an agent reads the citations, not just prose;
* `news_brief(period, topic?, outlet?)`: the most widely covered events of a period, dated and cited
  (NewsBot.brief), in the same JSON.

Built on the official `mcp` SDK (MCPServer). Bad arguments come back as a tool error with a message
saying what to change (an `isError` result the model can read), never a traceback. Over HTTP the
endpoint honours NEWSRAG_API_KEY as a bearer token, like the OpenAI-compatible API.
"""
from __future__ import annotations

import argparse
import contextlib
import hmac
import logging
import sys
from pathlib import Path
from typing import Any

from rag import limits
from rag.interfaces.common import story_brief
from rag.records import answer_to_dict, story_entry
from rag.settings import Settings

log = logging.getLogger("newsrag.mcp")

SNIPPET_CHARS = 300
INSTRUCTIONS = ("Search and ask a curated store of dated AI-news stories. Every answer sentence carries "
                "[n] markers that point to `citations` (title, outlet, date, url, supporting snippet); "
                "`refused: true` means the stories held do not answer the question. Prefer ask_news for "
                "a cited answer, search_news to list stories.")


def build_server(bot: Any, settings: Settings):
    """An MCPServer whose tools answer from `bot` (a NewsBot)."""
    from mcp.server.mcpserver import MCPServer
    from mcp.server.mcpserver.exceptions import ToolError
    from mcp.types import ToolAnnotations

    from rag.pipeline import validate_question

    server = MCPServer("newsrag", instructions=INSTRUCTIONS, version="0.1.0")
    read_only = ToolAnnotations(read_only_hint=True, open_world_hint=False)

    def checked(call):
        """Run `call`; a request over a cap or malformed comes back as a tool error with its message."""
        try:
            return call()
        except limits.RequestError as exc:
            raise ToolError(str(exc)) from None

    def filters(since: str | None, until: str | None, outlet: str | None):
        return checked(lambda: limits.make_filters(since, until, [outlet] if outlet else None, None, settings))

    @server.tool(annotations=read_only)
    def search_news(query: str, since: str | None = None, until: str | None = None, outlet: str | None = None,
                    k: int = 10) -> dict[str, Any]:
        """Find AI-news stories matching a query, best first, each with its url, date and outlet.

        Args:
            query: what to look for, e.g. "Nvidia H200" or "OpenAI lawsuit last month"
            since: only stories published on or after this day, YYYY-MM-DD
            until: only stories published on or before this day, YYYY-MM-DD
            outlet: only stories from this outlet, e.g. "TechCrunch"
            k: how many stories to return (1 to the server's limit, default 10)
        """
        checked(lambda: limits.check_k(k, settings))
        f = filters(since, until, outlet)
        q = checked(lambda: validate_question(query, settings.max_question_chars))
        r = bot.retriever.retrieve(q, k=k, filters=f)
        stories = []
        for s in r.stories[:k]:
            entry = {**story_brief(story_entry(s)), "score": round(float(s.score), 6)}
            entry["snippet"] = s.text[:SNIPPET_CHARS] + ("…" if len(s.text) > SNIPPET_CHARS else "")
            stories.append(entry)
        return {"query": q, "relevant": bool(r.relevant), "stories": stories,
                "filters": {"since": r.filters.since.isoformat() if r.filters.since else None,
                            "until": r.filters.until.isoformat() if r.filters.until else None,
                            "outlets": list(r.filters.outlets)}}

    @server.tool(annotations=read_only)
    def ask_news(question: str, since: str | None = None, until: str | None = None,
                 outlet: str | None = None) -> dict[str, Any]:
        """Answer a question about AI news with verified citations to dated stories.

        Returns the answer text with [n] markers, `citations` (n, title, outlet, url, published_at,
        snippet), `refused` (true when the stories held do not answer it), `grounded_ratio` and the
        retrieved `sources`.

        Args:
            question: e.g. "What did Alibaba announce about Qwen?"
            since: only stories published on or after this day, YYYY-MM-DD
            until: only stories published on or before this day, YYYY-MM-DD
            outlet: only stories from this outlet
        """
        f = filters(since, until, outlet)
        return checked(lambda: answer_to_dict(bot.ask(question, filters=f)))

    @server.tool(annotations=read_only)
    def news_brief(period: str = "this week", topic: str = "", outlet: str | None = None) -> dict[str, Any]:
        """A brief of a period's AI news: the most widely covered events, each dated and cited.

        Returns the same JSON as ask_news; the answer lists one event per line.

        Args:
            period: "today", "this week", "last month", "March 2026", "Q1 2026", "2024", "since January 2026"
            topic: optional subject to narrow it to, e.g. "Nvidia" or "chip export rules"
            outlet: only stories from this outlet
        """
        f = filters(None, None, outlet)
        return checked(lambda: answer_to_dict(bot.brief(period, topic=topic, filters=f)))

    return server


class BearerAuth:
    """ASGI wrapper: every HTTP request must carry `Authorization: Bearer <key>`."""

    def __init__(self, app, key: str):
        self.app, self.key = app, key.encode()

    async def __call__(self, scope, receive, send):
        if scope["type"] == "http":
            headers = dict(scope.get("headers") or [])
            scheme, _, token = headers.get(b"authorization", b"").decode("latin-1").partition(" ")
            if scheme.lower() != "bearer" or not hmac.compare_digest(token.strip().encode("latin-1"), self.key):
                from starlette.responses import JSONResponse

                resp = JSONResponse({"error": "Missing or wrong API key: send 'Authorization: Bearer "
                                     "<NEWSRAG_API_KEY>'."}, status_code=401, headers={"WWW-Authenticate": "Bearer"})
                await resp(scope, receive, send)
                return
        await self.app(scope, receive, send)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="newsrag mcp", description="Serve the news store as MCP tools.")
    ap.add_argument("--store", type=Path, help="store directory (default: NEWSRAG_STORE_DIR or ./store)")
    ap.add_argument("--transport", choices=["stdio", "streamable-http"], default="stdio",
                    help="stdio (default: the client starts this command) or streamable-http")
    ap.add_argument("--host", help="interface for streamable-http (default: NEWSRAG_HOST or 127.0.0.1)")
    ap.add_argument("--port", type=int, help="port for streamable-http (default: NEWSRAG_PORT or 7860)")
    args = ap.parse_args(argv)
    over: dict[str, Any] = {k: v for k, v in (("store_dir", args.store), ("host", args.host),
                                               ("port", args.port)) if v is not None}
    logging.basicConfig(level=logging.WARNING, stream=sys.stderr)
    try:
        settings = Settings(**over)
    except Exception as exc:
        print(f"error: invalid settings: {exc}", file=sys.stderr)
        return 2
    from rag.pipeline import NewsBot
    from rag.store import StoreError

    # Over stdio, stdout belongs to the protocol: anything a library prints while loading goes to stderr.
    with contextlib.redirect_stdout(sys.stderr):
        try:
            bot = NewsBot(settings)
        except StoreError as exc:
            print(f"error: {exc}", file=sys.stderr)
            return 2
        server = build_server(bot, settings)
    if args.transport == "stdio":
        server.run("stdio")
        return 0
    import uvicorn

    from rag.interfaces.openai_api import exposure_warning

    app = server.streamable_http_app(host=settings.host, max_request_body_size=settings.max_request_bytes)
    key = settings.api_key.get_secret_value()
    warning = exposure_warning(settings, "the MCP endpoint at /mcp")
    if warning:
        print(warning, file=sys.stderr, flush=True)
    shown = f"[{settings.host}]" if ":" in settings.host else settings.host
    print(f"[newsrag] MCP over streamable HTTP at http://{shown}:{settings.port}/mcp"
          f"{' (bearer auth)' if key else ''} - Ctrl+C to stop", file=sys.stderr, flush=True)
    uvicorn.run(BearerAuth(app, key) if key else app, host=settings.host, port=settings.port, log_level="warning")
    return 0
