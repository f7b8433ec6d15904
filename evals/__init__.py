"""Offline evaluation of the news bot: a hand-written gold set, ragas metrics, a report and a gate.

    python -m evals                         # corpus gold set -> evals/reports/<run-id>/, exit 1 if a gate fails
    python -m evals --gold evals/gold_digests.jsonl
    python -m evals --limit 10 --out /tmp/reports

Everything runs on the local machine: retrieval/answer metrics are deterministic or use the packaged
all-MiniLM-L6-v2; LLM-judged ragas metrics run only against a judge endpoint you configure. See
evals/README.md for the metric definitions, the gold set and how thresholds were calibrated.
"""
from __future__ import annotations

import rag.offline  # noqa: F401  (offline environment before ragas/torch are imported)
