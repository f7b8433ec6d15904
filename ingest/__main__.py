"""`python -m ingest PATH... --store DIR [--json]`: ingest stories and print what happened.

`python -m ingest --feeds feeds.yaml [--every 30m]`: read the feeds in the file once (what is due), or
on a schedule until interrupted (see ingest/sync.py)."""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from ingest.pipeline import IngestReport, ingest_paths
from rag.settings import Settings
from rag.untrusted import json_printable, printable


def format_summary(r: IngestReport) -> str:
    lines = [f"store: {r.store} ({r.embed_model})",
             f"stories in store: {r.stories_total} ({r.chunks_total} chunks)",
             f"new: {r.new}   updated: {r.updated}   unchanged: {r.unchanged}   "
             f"merged duplicates: {r.merged_duplicates}   removed: {r.removed}",
             f"chunks embedded: {r.chunks_embedded}   time: {r.seconds:.1f}s"]
    if r.recovered:
        lines.append(f"recovered {r.recovered} stories left unfinished by an interrupted ingest")
    if r.skipped:
        lines.append(f"skipped: {len(r.skipped)}")
        for s in r.skipped[:50]:
            lines.append(f"  - {s['path']}: {s['reason']}")
        if len(r.skipped) > 50:
            lines.append(f"  ... and {len(r.skipped) - 50} more (use --json for all)")
    if r.instruction_like:
        lines.append(f"instruction-like sentences (kept in their stories, never quoted or counted as support): "
                     f"{len(r.instruction_like)}")
        for f in r.instruction_like[:10]:
            lines.append(f"  - {f['path']}: [{f['reason']}] {f['sentence'][:120]}")
        if len(r.instruction_like) > 10:
            lines.append(f"  ... and {len(r.instruction_like) - 10} more (use --json for all)")
    if r.error:
        lines.append(f"error: {r.error}")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m ingest", description="Ingest AI-news stories into the store.")
    ap.add_argument("paths", nargs="*", help="files, folders, or RSS/Atom/HTML URLs")
    ap.add_argument("--feeds", type=Path, help="a feeds YAML file to sync (url, outlet, tags, interval)")
    ap.add_argument("--every", help="with --feeds: keep syncing on this schedule (e.g. 30m, 2h)")
    ap.add_argument("--store", type=Path, help="store directory (default: NEWSRAG_STORE_DIR or ./store)")
    ap.add_argument("--json", action="store_true", help="print one JSON object instead of the summary")
    ap.add_argument("--keep-missing", action="store_true",
                    help="keep stories that disappeared from a re-ingested source (default: remove them)")
    ap.add_argument("--no-progress", action="store_true", help="no progress bar")
    args = ap.parse_args(argv)
    overrides = {"store_dir": args.store} if args.store else {}
    try:
        settings = Settings(**overrides)
    except Exception as exc:
        print(f"error: invalid settings: {exc}", file=sys.stderr)
        return 2
    if args.feeds or args.every:
        return _feeds(args, settings)
    if not args.paths:
        ap.error("give files, folders or URLs to ingest, or --feeds FILE")
    report = ingest_paths(args.paths, settings, keep_missing=args.keep_missing,
                          progress=not args.no_progress and sys.stderr.isatty())
    if args.json:     # paths and reasons quote the input: no escape sequence of theirs reaches the terminal
        print(json_printable(json.dumps(report.to_dict(), ensure_ascii=False)))
    else:
        print(printable(format_summary(report)))
    return 0 if report.ok else 1


def _feeds(args: argparse.Namespace, settings: Settings) -> int:
    from ingest.sync import FeedsFileError, load_feeds, parse_duration, run_every, sync_once

    if not args.feeds:
        print("error: --every needs --feeds FILE", file=sys.stderr)
        return 2
    try:
        every = parse_duration(args.every) if args.every else 1800.0
        feeds = load_feeds(args.feeds, every)
    except (ValueError, FeedsFileError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2

    def show(r) -> None:
        print(json.dumps(r.__dict__, ensure_ascii=False) if args.json else r.summary(), flush=True)

    if not args.every:
        report = sync_once(feeds, settings)
        show(report)
        return 1 if report.ingest and report.ingest.get("error") else 0
    try:
        run_every(args.feeds, settings, every, on_report=show)
    except KeyboardInterrupt:
        pass
    return 0


if __name__ == "__main__":
    sys.exit(main())
