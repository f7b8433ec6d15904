"""`python -m ingest PATH... --store DIR [--json]`: ingest stories and print what happened."""
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
    ap.add_argument("paths", nargs="+", help="files, folders, or RSS/Atom/HTML URLs")
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
    report = ingest_paths(args.paths, settings, keep_missing=args.keep_missing,
                          progress=not args.no_progress and sys.stderr.isatty())
    if args.json:     # paths and reasons quote the input: no escape sequence of theirs reaches the terminal
        print(json_printable(json.dumps(report.to_dict(), ensure_ascii=False)))
    else:
        print(printable(format_summary(report)))
    return 0 if report.ok else 1


if __name__ == "__main__":
    sys.exit(main())
