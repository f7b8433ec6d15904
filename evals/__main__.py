"""python -m evals [--gold FILE] [--store DIR] [--judge-base-url URL --judge-model M] [--limit N] [--out DIR]

Exit status: 0 when every gated metric meets evals/thresholds.json (or the gold set's source folder is
absent and the run is skipped), 1 when a metric is below its threshold or a gated score is NaN,
2 for a usage or setup error.
"""
from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

import evals  # noqa: F401  (offline environment first)


def build_parser() -> argparse.ArgumentParser:
    from evals.runner import DEFAULT_OUT, DEFAULT_THRESHOLDS, EVALS_DIR

    ap = argparse.ArgumentParser(prog="python -m evals",
                                 description="Run the news bot over a gold set, score it with ragas, report and gate.")
    ap.add_argument("--gold", type=Path, default=EVALS_DIR / "gold.jsonl",
                    help="gold JSONL (default evals/gold.jsonl; evals/gold_digests.jsonl for the digests)")
    ap.add_argument("--store", type=Path, default=None,
                    help="store to evaluate; built from the gold set's source when empty "
                         "(default evals/.stores/<corpus|digests>)")
    ap.add_argument("--source", type=Path, default=None,
                    help="folder the store is built from (default corpus/ or ../shared/data/lastweekinai-digests/digests)")
    ap.add_argument("--judge-base-url", default=None,
                    help="OpenAI-compatible judge endpoint (or NEWSRAG_JUDGE_BASE_URL); none = LLM metrics not run")
    ap.add_argument("--judge-model", default=None, help="judge model name (or NEWSRAG_JUDGE_MODEL)")
    ap.add_argument("--judge-timeout", type=float, default=300.0, help="seconds per judge request")
    ap.add_argument("--judge-max-tokens", type=int, default=1024, help="max tokens per judge answer")
    ap.add_argument("--limit", type=int, default=None, help="ask only N questions, spread over the question types")
    ap.add_argument("--out", type=Path, default=DEFAULT_OUT, help="reports folder (a <run-id>/ is created in it)")
    ap.add_argument("--thresholds", type=Path, default=DEFAULT_THRESHOLDS, help="gate thresholds JSON")
    ap.add_argument("--k", type=int, default=5, help="retrieved stories scored by the IDBased retrieval metrics")
    ap.add_argument("--run-id", default="", help="name of the report folder (default: timestamp-goldname)")
    ap.add_argument("--no-progress", action="store_true", help="no progress bars")
    ap.add_argument("--no-charts", action="store_true", help="skip the PNG charts")
    return ap


def main(argv: list[str] | None = None) -> int:
    import importlib.util

    missing = [m for m in ("ragas", "rouge_score", "matplotlib") if importlib.util.find_spec(m) is None]
    if missing:
        print(f"error: the evaluation suite needs the 'evals' extra ({', '.join(missing)} missing): "
              "pip install -e '.[evals]'", file=sys.stderr)
        return 2
    a = build_parser().parse_args(argv)
    from evals.gold import GoldError
    from evals.report import summary_table
    from evals.runner import EvalOptions, run
    from rag.settings import Settings

    s = Settings()
    opts = EvalOptions(gold=a.gold, store=a.store, source=a.source,
                       judge_base_url=(a.judge_base_url if a.judge_base_url is not None else s.judge_base_url) or "",
                       judge_model=(a.judge_model if a.judge_model is not None else s.judge_model) or "",
                       judge_api_key=os.environ.get("NEWSRAG_JUDGE_API_KEY", "sk-local"),
                       judge_timeout=a.judge_timeout, judge_max_tokens=a.judge_max_tokens, limit=a.limit, out=a.out, thresholds=a.thresholds, k=a.k,
                       progress=not a.no_progress, run_id=a.run_id, charts=not a.no_charts)
    if bool(opts.judge_base_url) != bool(opts.judge_model):
        print("error: a judge needs both --judge-base-url and --judge-model "
              "(or NEWSRAG_JUDGE_BASE_URL and NEWSRAG_JUDGE_MODEL)", file=sys.stderr)
        return 2
    t0 = time.perf_counter()
    try:
        result = run(opts)
    except GoldError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    if result.skipped:
        print(result.skipped)
        return 0
    print(summary_table(result.report))
    print(f"report: {result.report_dir}/report.md  ({time.perf_counter() - t0:.0f} s)")
    return 0 if result.passed else 1


if __name__ == "__main__":
    sys.exit(main())
