"""Write a run's report.json, report.md and charts, and compare it with the previous run of the same gold set."""
from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

CHART_METRICS = ("id_based_context_recall", "must_include", "semantic_similarity", "groundedness",
                 "citation_validity")
TREND_METRICS = ("id_based_context_recall", "non_llm_context_recall", "must_include", "semantic_similarity",
                 "groundedness", "citation_validity", "refusal_accuracy")
KEY_TYPE_METRICS = ("id_based_context_recall", "hit_at_1", "non_llm_context_recall", "semantic_similarity",
                    "rouge_l", "must_include", "groundedness", "citation_validity", "refusal_accuracy",
                    "false_refusal_rate")


def _fmt(v: Any, digits: int = 3) -> str:
    if v is None:
        return "–"
    if isinstance(v, float):
        if math.isnan(v):
            return "NaN"
        return f"{v:.{digits}f}"
    return str(v)


def question_score(row: dict) -> float:
    """One number per question for ranking the worst: unanswerable -> refused or not; answerable -> mean
    of must_include, semantic similarity, gold-story recall and groundedness (0 when refused)."""
    if row.get("error"):
        return -1.0
    s = row.get("scores", {})
    if row["type"] == "unanswerable":
        return 1.0 if row.get("refused") else 0.0
    parts = [s.get("must_include"), s.get("semantic_similarity"), s.get("id_based_context_recall"),
             0.0 if row.get("refused") else s.get("groundedness")]
    vals = [p for p in parts if p is not None and not (isinstance(p, float) and math.isnan(p))]
    return sum(vals) / len(vals) if vals else 0.0


def previous_reports(reports_root: Path, gold_name: str, before_run_id: str) -> list[dict]:
    """Earlier runs of the same gold set found under reports_root, oldest first."""
    out = []
    if not reports_root.is_dir():
        return out
    for p in sorted(reports_root.glob("*/report.json")):
        if p.parent.name >= before_run_id:
            continue
        try:
            rep = json.loads(p.read_text(encoding="utf-8"))
        except (OSError, json.JSONDecodeError):
            continue
        if rep.get("gold_name") == gold_name and "metrics" in rep:
            out.append(rep)
    return sorted(out, key=lambda r: r.get("run_id", ""))


def _slim_rows(rows: list[dict]) -> list[dict]:
    out = []
    for r in rows:
        r = dict(r)
        r["context"] = [{"story_id": c["story_id"], "chunk_id": c["chunk_id"], "text": c["text"][:240]}
                        for c in r.get("context", [])]
        r["gold_passages"] = [p[:240] for p in r.get("gold_passages", [])]
        r["question_score"] = round(question_score(r), 4)
        out.append(r)
    return out


def _json_default(o):
    if hasattr(o, "isoformat"):
        return o.isoformat()
    return str(o)


def _nan_to_none(o):
    if isinstance(o, float) and math.isnan(o):
        return None
    if isinstance(o, dict):
        return {k: _nan_to_none(v) for k, v in o.items()}
    if isinstance(o, list):
        return [_nan_to_none(v) for v in o]
    return o


# ------------------------------------------------------------------------------------------ charts

def write_charts(report: dict, history: list[dict], out_dir: Path) -> list[str]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    files = []
    # 1. scores per question type
    types = list(report["per_type"].keys())
    fig, ax = plt.subplots(figsize=(max(8, 1.3 * len(types)), 5.2))
    width = 0.8 / len(CHART_METRICS)
    for j, m in enumerate(CHART_METRICS):
        vals = [report["per_type"][t].get(m) for t in types]
        xs = [i + (j - len(CHART_METRICS) / 2 + 0.5) * width for i in range(len(types))]
        ax.bar(xs, [v if v is not None else 0 for v in vals], width, label=m)
    ref = [report["per_type"][t].get("refusal_accuracy") for t in types]
    if "unanswerable" in types:
        i = types.index("unanswerable")
        ax.bar([i], [ref[i] or 0], 0.3, color="black", label="refusal_accuracy")
    ax.set_xticks(range(len(types)), types, rotation=20)
    ax.set_ylim(0, 1.05)
    ax.set_ylabel("mean score")
    ax.set_title(f"Scores per question type — {report['run_id']}")
    ax.legend(fontsize=7, ncol=6, loc="upper center", bbox_to_anchor=(0.5, -0.2), frameon=False)
    fig.tight_layout()
    fig.savefig(out_dir / "per_type.png", dpi=110)
    plt.close(fig)
    files.append("per_type.png")

    # 2. groundedness distribution
    g = [r["scores"]["groundedness"] for r in report["rows"]
         if not r.get("error") and "groundedness" in r.get("scores", {}) and r["scores"]["groundedness"] is not None
         and not (isinstance(r["scores"]["groundedness"], float) and math.isnan(r["scores"]["groundedness"]))]
    fig, ax = plt.subplots(figsize=(6, 4))
    ax.hist(g, bins=[i / 10 for i in range(11)], color="tab:green", edgecolor="black")
    ax.set_xlabel("groundedness (share of supported answer sentences)")
    ax.set_ylabel("answers")
    ax.set_title(f"Groundedness of {len(g)} answered questions")
    fig.tight_layout()
    fig.savefig(out_dir / "groundedness_hist.png", dpi=110)
    plt.close(fig)
    files.append("groundedness_hist.png")

    # 3. trend over earlier runs of the same gold set
    runs = history + [report]
    fig, ax = plt.subplots(figsize=(max(6, 0.9 * len(runs) + 3), 4.5))
    for m in TREND_METRICS:
        ys = [r["metrics"].get(m) for r in runs]
        ax.plot(range(len(runs)), [y if y is not None else float("nan") for y in ys], marker="o", label=m)
    ax.set_xticks(range(len(runs)), [r["run_id"][:15] for r in runs], rotation=30, fontsize=7)
    ax.set_ylim(0, 1.05)
    ax.set_title(f"Trend over {len(runs)} run(s) of {report['gold_name']}")
    ax.legend(fontsize=7, loc="lower left")
    fig.tight_layout()
    fig.savefig(out_dir / "trend.png", dpi=110)
    plt.close(fig)
    files.append("trend.png")
    return files


# -------------------------------------------------------------------------------------- markdown

def _threshold_text(check: dict | None) -> str:
    if not check:
        return ""
    parts = []
    if "min" in check:
        parts.append(f"≥ {check['min']}")
    if "max" in check:
        parts.append(f"≤ {check['max']}")
    return " ".join(parts)


def render_markdown(report: dict, prev: dict | None, charts: list[str]) -> str:
    L: list[str] = []
    g = report["gate"]
    L.append(f"# Eval run {report['run_id']}")
    L.append("")
    L.append(f"- Gold set: `{report['gold']}` ({report['questions']} of {report['questions_in_gold']} questions"
             f"{', --limit ' + str(report['limit']) if report['limit'] else ''}); corpus: {report['corpus']}")
    st = report.get("store", {})
    L.append(f"- Store: `{st.get('dir')}` — {st.get('stories')} stories, {st.get('chunks')} chunks, "
             f"embedder {st.get('embed_model')}, generator **{st.get('generator')}**"
             f"{' (built for this run)' if st.get('built') else ''}")
    if st.get("missing_gold_ids"):
        L.append(f"- **Gold story ids missing from the store:** {', '.join(st['missing_gold_ids'])}")
    j = report["judge"]
    L.append(f"- LLM judge: {j['status']}" + (f" ({j['model']} at {j['base_url']})" if j.get("configured") else ""))
    if j.get("configured"):
        L.append("  - Judge metrics are informational; with the tiny local models available offline they are a "
                 "wiring check, not a quality gate.")
    L.append(f"- Gate: **{'PASSED' if g['passed'] else 'FAILED'}** (thresholds: `{g['thresholds_file']}`)")
    lat = report["latency_seconds"]
    L.append(f"- Latency per question: p50 {_fmt(lat['p50'])} s, p95 {_fmt(lat['p95'])} s; "
             f"run time {_fmt(report['timings_seconds'].get('total_before_report'), 1)} s")
    L.append("")
    L.append("## Metrics")
    L.append("")
    checks = {c["metric"]: c for c in g["checks"]}
    L.append("| metric | value | threshold | gate | n | NaN | Δ vs previous | applies to |")
    L.append("|---|---|---|---|---|---|---|---|")
    for name, d in report["metric_details"].items():
        v = report["metrics"].get(name)
        c = checks.get(name)
        gate_txt = "" if not c else ("skipped" if c.get("skipped") else ("ok" if c["ok"] else "**FAIL**"))
        pv = prev["metrics"].get(name) if prev else None
        delta = "" if v is None or pv is None else f"{v - pv:+.3f}"
        val = _fmt(v) if d["status"] == "ok" or v is not None else d["status"]
        L.append(f"| {name} | {val} | {_threshold_text(c)} | {gate_txt} | {d['n']} | {d['nan']} | {delta} | {d['applies_to']} |")
    failed = [c for c in g["checks"] if not c["ok"]]
    if failed:
        L.append("")
        L.append("Gate failures: " + "; ".join(f"{c['metric']}: {c['reason']}" for c in failed))
    L.append("")
    L.append("Metric definitions: evals/README.md. `answered` = questions the bot did not refuse.")
    L.append("")
    L.append("## Per question type")
    L.append("")
    L.append("| type | n | " + " | ".join(KEY_TYPE_METRICS) + " |")
    L.append("|---|---|" + "---|" * len(KEY_TYPE_METRICS))
    for t, e in report["per_type"].items():
        L.append(f"| {t} | {e['n']} | " + " | ".join(_fmt(e.get(m)) for m in KEY_TYPE_METRICS) + " |")
    L.append("")
    if prev:
        L.append(f"## Change from the previous run ({prev['run_id']})")
        L.append("")
        old = {r["id"]: r for r in prev.get("rows", [])}
        moved = []
        for r in report["rows"]:
            o = old.get(r["id"])
            if o is None:
                continue
            a, b = o.get("question_score"), r.get("question_score")
            if a is not None and b is not None and abs(b - a) >= 0.2:
                moved.append((b - a, r["id"], a, b))
        L.append(f"- Metrics: see the Δ column above. Questions compared: {sum(1 for r in report['rows'] if r['id'] in old)}.")
        if moved:
            L.append("- Questions whose score moved by ≥ 0.2:")
            for d, qid, a, b in sorted(moved):
                L.append(f"  - `{qid}`: {a:.2f} → {b:.2f}")
        else:
            L.append("- No question's score moved by 0.2 or more.")
        L.append("")
    else:
        L.append("## Change from the previous run")
        L.append("")
        L.append("No earlier run of this gold set under the reports folder.")
        L.append("")
    L.append("## The ten worst questions")
    L.append("")
    worst = sorted(report["rows"], key=lambda r: (r.get("question_score", 0), r["id"]))[:10]
    for r in worst:
        s = r.get("scores", {})
        L.append(f"### `{r['id']}` ({r['type']}) — score {_fmt(r.get('question_score'), 2)}")
        L.append("")
        L.append(f"**Q:** {r['question']}" + (f"  \n*standalone:* {r['standalone_question']}"
                                              if r.get("standalone_question") and r["standalone_question"] != r["question"] else ""))
        L.append("")
        if r.get("error"):
            L.append(f"**Error:** `{r['error']}`")
            L.append("")
            continue
        ans = (r.get("answer") or "").strip()
        if len(ans) > 900:
            ans = ans[:900] + " …"
        L.append(("**Refused.** " if r.get("refused") else "") + "**A:** " + ans.replace("\n", "  \n"))
        L.append("")
        L.append(f"*Reference:* {r['reference']}  ")
        if r.get("must_found"):
            L.append("*must_include:* " + ", ".join(f"{k} {'✓' if v else '✗'}" for k, v in r["must_found"].items()) + "  ")
        L.append("*scores:* " + ", ".join(f"{k} {_fmt(v, 2)}" for k, v in sorted(s.items())))
        L.append("")
        if r.get("citations"):
            checks = {c["n"]: c for c in r.get("citation_checks", [])}
            L.append("Citations:")
            for c in r["citations"]:
                ck = checks.get(c["n"], {})
                L.append(f"- [{c['n']}] {c['title']} — {c['outlet']}, {c['published_at']}"
                         f" ({'valid' if ck.get('valid') else 'INVALID: ' + ck.get('reason', '?')})")
        gold = set(r.get("gold_story_ids", []))
        if gold:
            got = [sid for sid in r.get("retrieved_ids", [])]
            L.append(f"- gold stories retrieved at ranks: "
                     f"{[got.index(g) + 1 if g in got else None for g in r['gold_story_ids']]}")
        bad = [v for v in r.get("groundedness_detail", []) if v["claim"] and not v["supported"]]
        if bad:
            L.append("- unsupported sentences: " + " | ".join(f"“{v['sentence'][:120]}” ({v['reason']})" for v in bad[:4]))
        L.append("")
    L.append("## Charts")
    L.append("")
    for c in charts:
        L.append(f"![{c}]({c})")
    L.append("")
    return "\n".join(L)


def write_report(report: dict, out_dir: Path, reports_root: Path, *, charts: bool = True) -> dict[str, Path]:
    out_dir.mkdir(parents=True, exist_ok=True)
    report["rows"] = _slim_rows(report["rows"])
    history = previous_reports(reports_root, report["gold_name"], report["run_id"])
    prev = history[-1] if history else None
    report["previous_run"] = prev["run_id"] if prev else None
    report["delta_vs_previous"] = ({k: (None if v is None or prev["metrics"].get(k) is None else round(v - prev["metrics"][k], 4))
                                    for k, v in report["metrics"].items()} if prev else None)
    files = write_charts(report, history, out_dir) if charts else []
    report["charts"] = files
    paths = {"json": out_dir / "report.json", "md": out_dir / "report.md"}
    paths["json"].write_text(json.dumps(_nan_to_none(report), indent=1, ensure_ascii=False, default=_json_default),
                             encoding="utf-8")
    paths["md"].write_text(render_markdown(report, prev, files), encoding="utf-8")
    return paths


def summary_table(report: dict) -> str:
    """The short table `python -m evals` prints."""
    checks = {c["metric"]: c for c in report["gate"]["checks"]}
    lines = [f"{'metric':28} {'value':>8}  {'threshold':>10}  gate", "-" * 58]
    for name, d in report["metric_details"].items():
        v = report["metrics"].get(name)
        c = checks.get(name)
        gate_txt = "" if not c else ("skip" if c.get("skipped") else ("ok" if c["ok"] else "FAIL"))
        val = _fmt(v) if v is not None else ("n/a" if d["status"] == "ok" else "not run" if d["status"].startswith("not run") else "n/a")
        lines.append(f"{name:28} {val:>8}  {_threshold_text(c):>10}  {gate_txt}")
    lines.append("-" * 58)
    lines.append(f"judge: {report['judge']['status']}")
    lines.append(f"gate: {'PASSED' if report['gate']['passed'] else 'FAILED'}"
                 + "".join(f"\n  {c['metric']}: {c['reason']}" for c in report["gate"]["checks"] if not c["ok"]))
    return "\n".join(lines)
