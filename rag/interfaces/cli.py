"""`newsrag` / `python -m rag`: every entry point behind one command.

    newsrag ingest PATH... | ask | retrieve | batch | stats | serve | mcp | app

ingest, serve, mcp and app hand their arguments to their own parsers (`python -m ingest`, the API
server, the MCP server, the Gradio app), so each keeps its own --help. This dispatcher is an interface:
it may import ingest/ and the app, which the core under rag/ never does.

Everything printed passes through rag.untrusted: story text is not ours, and an escape sequence in a
title or a sentence must not reach the terminal (set its title, clear the screen, hide a line).
"""
from __future__ import annotations

import argparse
import json
import sys
from datetime import date
from pathlib import Path
from typing import Any

from rag.limits import RequestError, check_filters
from rag.records import Filters, answer_to_dict, story_entry
from rag.settings import Settings
from rag.untrusted import json_printable, printable


def emit(value: Any, as_json: bool) -> None:
    """Print an answer, a story list or a message: JSON with unsafe characters escaped, text without them."""
    if as_json:
        print(json_printable(json.dumps(value, ensure_ascii=False)), flush=True)
    else:
        print(printable(str(value)), flush=True)


def fail(message: str) -> int:
    print(printable(f"error: {message}"), file=sys.stderr)
    return 2


def _date(value: str) -> date:
    try:
        return date.fromisoformat(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"'{value}' is not a date; use YYYY-MM-DD")


def _common(p: argparse.ArgumentParser) -> None:
    p.add_argument("--store", type=Path, help="store directory (default: NEWSRAG_STORE_DIR or ./store)")
    p.add_argument("--json", action="store_true", help="print JSON")
    p.add_argument("--since", type=_date, help="only stories published on or after YYYY-MM-DD")
    p.add_argument("--until", type=_date, help="only stories published on or before YYYY-MM-DD")
    p.add_argument("--outlet", action="append", default=[], help="only stories from this outlet (repeatable)")
    p.add_argument("--tag", action="append", default=[], help="only stories with this tag (repeatable)")
    p.add_argument("--generator", choices=["extractive", "openai", "llamacpp"], help="override NEWSRAG_GENERATOR")
    p.add_argument("--today", type=_date, help="pretend today is this date (for 'latest', 'last month')")
    p.add_argument("--strict", action="store_true", help="drop unsupported sentences instead of flagging them")


def _settings(args) -> Settings:
    over: dict[str, Any] = {}
    if args.store:
        over["store_dir"] = args.store
    if args.generator:
        over["generator"] = args.generator
    if args.today:
        over["today"] = args.today
    if args.strict:
        over["strict"] = True
    return Settings(**over)


def _filters(args) -> Filters:
    return Filters(since=args.since, until=args.until, outlets=args.outlet, tags=args.tag)


def format_answer(d: dict) -> str:
    out = [d["answer"], ""]
    for c in d["citations"]:
        out.append(f"[{c['n']}] {c['title']} — {c['outlet']}, {c['published_at']}\n    {c['url']}")
    if d["related"]:
        out.append("Related reading (not evidence):")
        out += [f"  - {s['title']} — {s['outlet']}, {s['published_at']} {s['url']}" for s in d["related"]]
    for n in d["notices"]:
        out.append(f"note: {n}")
    if d["unsupported_sentences"]:
        out.append(f"warning: {len(d['unsupported_sentences'])} sentence(s) not supported by the sources")
    out.append(f"grounded: {d['grounded_ratio']:.0%} · generator: {d['generator']} · {d['timings'].get('total', 0):.0f} ms")
    return "\n".join(out)


def _ingest(argv: list[str]) -> int:
    from ingest.__main__ import main as ingest_main

    return ingest_main(argv)


def _serve(argv: list[str]) -> int:
    from rag.interfaces.openai_api import main as serve_main

    return serve_main(argv)


def _mcp(argv: list[str]) -> int:
    from rag.interfaces.mcp_server import main as mcp_main

    return mcp_main(argv)


def _app(argv: list[str]) -> int:
    from app import main as app_main

    return app_main(argv)


DELEGATED = {
    "ingest": (_ingest, "ingest stories from files, folders or feed URLs (newsrag ingest --help)"),
    "serve": (_serve, "serve the OpenAI-compatible API /v1 without the UI (newsrag serve --help)"),
    "mcp": (_mcp, "run the MCP server over stdio or streamable HTTP (newsrag mcp --help)"),
    "app": (_app, "the chat UI with the API mounted (newsrag app --help)"),
}


def main(argv: list[str] | None = None, prog: str = "newsrag") -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    if argv and argv[0] in DELEGATED:
        return DELEGATED[argv[0]][0](argv[1:])
    ap = argparse.ArgumentParser(prog=prog, description="Ask the AI news, get answers you can check.")
    sub = ap.add_subparsers(dest="cmd", required=True, metavar="COMMAND")
    sub.add_parser("ingest", help=DELEGATED["ingest"][1], add_help=False)
    p_ask = sub.add_parser("ask", help="answer one question with verified citations")
    p_ask.add_argument("question")
    p_ask.add_argument("-k", type=int, default=10, help="stories to list under `sources`")
    _common(p_ask)
    p_ret = sub.add_parser("retrieve", help="the best-matching stories, no answer")
    p_ret.add_argument("question")
    p_ret.add_argument("-k", type=int, default=10)
    _common(p_ret)
    p_batch = sub.add_parser("batch", help='answer every {"id", "question"} line of a JSONL file')
    p_batch.add_argument("file", type=Path)
    p_batch.add_argument("-k", type=int, default=10)
    _common(p_batch)
    p_stats = sub.add_parser("stats", help="what the store holds")
    _common(p_stats)
    for name in ("serve", "mcp", "app"):
        sub.add_parser(name, help=DELEGATED[name][1], add_help=False)
    args = ap.parse_args(argv)

    from rag.pipeline import NewsBot
    from rag.store import StoreError

    try:
        settings = _settings(args)
        check_filters(_filters(args), settings)        # a bad filter fails before the slow model load
    except RequestError as exc:
        return fail(str(exc))
    try:
        bot = NewsBot(settings)
    except StoreError as exc:
        return fail(str(exc))
    try:
        if args.cmd == "ask":
            d = answer_to_dict(bot.ask(args.question, filters=_filters(args), k=args.k))
            emit(d if args.json else format_answer(d), args.json)
        elif args.cmd == "retrieve":
            stories = bot.retrieve(args.question, k=args.k, filters=_filters(args))
            if args.json:
                emit({"question": args.question, "sources": [story_entry(s) for s in stories]}, True)
            else:
                emit("\n".join(f"{i:2d}. {s.published_at} {s.title} — {s.outlet} ({s.score:.4f})\n    {s.url}"
                               for i, s in enumerate(stories, 1)), False)
        elif args.cmd == "batch":
            return _batch(bot, args)
        elif args.cmd == "stats":
            st = bot.stats()
            emit(st if args.json else f"{st['stories']} stories from {len(st['outlets'])} outlets, newest "
                 f"{st['newest']}, {st['chunks']} chunks, model {st['embed_model']}", args.json)
    except RequestError as exc:
        return fail(str(exc))
    return 0


def _batch(bot, args) -> int:
    if not args.file.exists():
        return fail(f"{args.file} does not exist")

    failures = 0
    with args.file.open(encoding="utf-8") as fh:
        for lineno, line in enumerate(fh, 1):
            if not line.strip():
                continue
            item: Any = None
            try:
                item = json.loads(line)
                qid, question = item.get("id", lineno), item["question"]
                d = {"id": qid, **answer_to_dict(bot.ask(question, filters=_filters(args), k=args.k))}
            except (ValueError, KeyError, TypeError, AttributeError) as exc:
                failures += 1
                reason = str(exc) if isinstance(exc, RequestError) else f"line {lineno}: not a {{\"id\", \"question\"}} object ({exc})"
                d = {"id": (item.get("id") if isinstance(item, dict) else None) or lineno, "error": reason}
            emit(d, True)
    return 0 if failures == 0 else 1
