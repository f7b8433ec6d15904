"""One eval run: build/open the store, ask every gold question, score with ragas, gate, report.

Stages (each timed in report.json -> timings):
  store     open the store, or build it with ingest_paths() from corpus/ (or the digests) when empty
  ask       NewsBot.ask() per question (follow-up turns get the bot's own earlier turn as history),
            then the same deterministic retrieval once more to record what the generator was given
  score     ragas evaluate() passes (see evals/metrics.py and evals/README.md)
  report    report.json / report.md / PNG charts under <out>/<run-id>/
"""
from __future__ import annotations

import json
import math
import os
import statistics
import sys
import time
import traceback
from dataclasses import dataclass
from datetime import date, datetime
from pathlib import Path
from typing import Any

from evals.gold import DEFAULT_DIGESTS_DIR, EVALS_DIR, GoldItem, corpus_kind, load_gold
from evals import metrics as M

DEFAULT_OUT = EVALS_DIR / "reports"
DEFAULT_THRESHOLDS = EVALS_DIR / "thresholds.json"
DEFAULT_STORES = EVALS_DIR / ".stores"
NOT_RUN = "not run: no judge configured"

# metric name -> (applies to, higher is better, description). The report lists them in this order.
METRICS: dict[str, tuple[str, bool, str]] = {
    "id_based_context_recall": ("answerable", True, "ragas IDBasedContextRecall: share of gold stories among the top-k retrieved stories"),
    "id_based_context_precision": ("answerable", True, "ragas IDBasedContextPrecision: share of the top-k retrieved stories that are gold"),
    "non_llm_context_recall": ("answerable", True, "ragas NonLLMContextRecall: gold answer passages found (Levenshtein > 0.5) among the chunks given to the generator"),
    "hit_at_1": ("answerable", True, "top retrieved story is a gold story"),
    "mrr": ("answerable", True, "reciprocal rank of the first gold story among the retrieved stories"),
    "semantic_similarity": ("answerable", True, "ragas SemanticSimilarity (local all-MiniLM-L6-v2): answer vs reference answer"),
    "rouge_l": ("answerable", True, "ragas RougeScore (rougeL F1): answer vs reference answer"),
    "must_include": ("answerable", True, "ragas StringPresence per must_include string (normalised), averaged per question"),
    "groundedness": ("answered", True, "custom ragas metric: share of answer sentences supported by the stories they cite"),
    "citation_validity": ("answered", True, "share of citations whose snippet occurs in the cited story and whose story was retrieved"),
    "refusal_accuracy": ("unanswerable", True, "share of unanswerable questions the bot refused"),
    "false_refusal_rate": ("answerable", False, "share of answerable questions the bot refused"),
    "bot_errors": ("all", False, "questions on which NewsBot raised (count)"),
    "faithfulness": ("answered", True, "ragas Faithfulness, LLM judge (informational)"),
    "answer_relevancy": ("answerable", True, "ragas ResponseRelevancy, LLM judge + local embeddings (informational)"),
    "factual_correctness": ("answerable", True, "ragas FactualCorrectness, LLM judge (informational)"),
}
JUDGE_METRICS = ("faithfulness", "answer_relevancy", "factual_correctness")


@dataclass
class EvalOptions:
    gold: Path = EVALS_DIR / "gold.jsonl"
    store: Path | None = None
    source: Path | None = None               # corpus/ or the digests folder; default by gold kind
    judge_base_url: str = ""
    judge_model: str = ""
    judge_api_key: str = ""
    judge_timeout: float = 300.0
    judge_max_tokens: int = 1024
    judge_parse_retries: int = 1             # instructor re-asks of an unparseable judge answer
    limit: int | None = None
    out: Path = DEFAULT_OUT
    thresholds: Path = DEFAULT_THRESHOLDS
    k: int = 5                               # retrieved stories scored by the IDBased metrics
    progress: bool = True
    run_id: str = ""
    charts: bool = True


@dataclass
class RunResult:
    report: dict[str, Any]
    report_dir: Path | None
    passed: bool
    skipped: str = ""


# ------------------------------------------------------------------------------------- selection

def limit_items(items: list[GoldItem], limit: int | None) -> list[GoldItem]:
    """The first `limit` questions taken round-robin over question types (a conversation counts as one
    unit and stays whole), so a small --limit still touches every type."""
    if not limit or limit >= len(items):
        return list(items)
    units: dict[str, list[list[GoldItem]]] = {}
    seen_conv: dict[str, list[GoldItem]] = {}
    for it in items:
        if it.conversation:
            if it.conversation in seen_conv:
                seen_conv[it.conversation].append(it)
                continue
            seen_conv[it.conversation] = [it]
            units.setdefault(it.type, []).append(seen_conv[it.conversation])
        else:
            units.setdefault(it.type, []).append([it])
    chosen: list[GoldItem] = []
    queues = [list(v) for v in units.values()]
    while len(chosen) < limit and any(queues):
        for q in queues:
            if q and len(chosen) < limit:
                chosen.extend(q.pop(0))
    keep = {id(i) for i in chosen}
    return [i for i in items if id(i) in keep]


# ----------------------------------------------------------------------------------------- store

def open_or_build_store(settings, source: Path, progress: bool) -> dict[str, Any]:
    from ingest.pipeline import ingest_paths
    from rag.store import NewsStore, StoreError

    info: dict[str, Any] = {"dir": str(settings.store_dir), "built": False, "source": str(source)}
    count = 0
    try:
        st = NewsStore(settings)
        count = st.count_stories()
        st.close()
    except StoreError:
        count = 0
    if count == 0:
        t0 = time.perf_counter()
        rep = ingest_paths([source], settings, progress=progress)
        if not rep.ok:
            raise RuntimeError(f"building the eval store from {source} failed: {rep.error or rep.skipped[:3]}")
        info.update(built=True, ingest_seconds=round(time.perf_counter() - t0, 2), stories=rep.stories_total,
                    chunks=rep.chunks_total)
    return info


# ------------------------------------------------------------------------------------------- ask

def _story_texts(store, ids: set[str], cache: dict[str, dict]) -> None:
    for sid in ids:
        if sid in cache:
            continue
        row = store.story_row(sid)
        if row is None:
            cache[sid] = {}
            continue
        cache[sid] = {"title": row.title, "text": row.text, "published_at": row.published_at,
                      "outlets": list(row.outlets),
                      "context": M.story_context(row.title, row.text, row.published_at, row.outlets)}


class _RetrievalSpy:
    """Wraps Retriever.retrieve on one bot instance to keep the Retrieval the answer was generated from
    (no second retrieval, no change to rag/)."""

    def __init__(self, fn):
        self.fn = fn
        self.last = None

    def __call__(self, *args, **kwargs):
        self.last = self.fn(*args, **kwargs)
        return self.last


def _story_chunks(store, story_id: str, cache: dict[str, list[tuple[str, str]]]) -> list[tuple[str, str]]:
    """(chunk id, text) of a stored story in chunk order."""
    if story_id not in cache:
        cache[story_id] = [(c.id, c.text) for c in store.story_chunks(story_id)]
    return cache[story_id]


def _gold_passages(store, item: GoldItem) -> list[str]:
    """For each gold story, the stored chunk that carries most of the must_include strings (the answer
    passage); the first chunk when none does. These are NonLLMContextRecall's reference_contexts."""
    out = []
    wants = [M.normalize_for_match(s) for s in item.must_include]
    for sid in item.gold_story_ids:
        chunks = [c.text for c in store.story_chunks(sid)]
        if not chunks:
            out.append("")
            continue
        best = max(range(len(chunks)), key=lambda i: (sum(w in M.normalize_for_match(chunks[i]) for w in wants), -i))
        out.append(chunks[best])
    return out


def ask_all(items: list[GoldItem], settings_for, opts: EvalOptions) -> tuple[list[dict], dict[str, dict], dict, frozenset]:
    """Ask every question; returns per-question rows, the story texts they touch, store/timing info and
    the store's known names (for the groundedness metric)."""
    from tqdm import tqdm

    from rag.pipeline import NewsBot
    from rag.records import answer_to_dict

    bots: dict[date, Any] = {}
    chunk_cache: dict[str, list[tuple[str, str]]] = {}
    rows: list[dict] = []
    texts: dict[str, dict] = {}
    history: dict[str, list[tuple[str, str]]] = {}
    load_s = 0.0
    bar = tqdm(items, desc="asking", unit="q", disable=not opts.progress, file=sys.stderr, dynamic_ncols=True)
    for it in bar:
        if it.today not in bots:
            t0 = time.perf_counter()
            bots[it.today] = NewsBot(settings_for(it.today))
            load_s += time.perf_counter() - t0
            bots[it.today].retriever.retrieve = _RetrievalSpy(bots[it.today].retriever.retrieve)
        bot = bots[it.today]
        spy = bot.retriever.retrieve
        spy.last = None
        hist = list(history.get(it.conversation, [])) if it.conversation else []
        row: dict[str, Any] = {"id": it.id, "type": it.type, "question": it.question, "today": it.today.isoformat(),
                               "conversation": it.conversation, "turn": it.turn, "reference": it.reference,
                               "must_include": list(it.must_include), "gold_story_ids": list(it.gold_story_ids),
                               "history": [list(h) for h in hist], "error": None}
        t0 = time.perf_counter()
        try:
            ans = bot.ask(it.question, history=hist or None)
        except Exception as exc:  # a crash is a result: it is counted and fails the gate
            row.update(error=f"{type(exc).__name__}: {exc}", traceback=traceback.format_exc(limit=5),
                       seconds=round(time.perf_counter() - t0, 3), answer="", refused=False, citations=[],
                       sources=[], context=[], retrieved_ids=[], standalone_question=it.question, generator="")
            rows.append(row)
            continue
        row["seconds"] = round(time.perf_counter() - t0, 3)
        d = answer_to_dict(ans)
        r = spy.last
        if r is None:  # pragma: no cover - NewsBot always retrieves; guard against a changed pipeline
            raise RuntimeError("NewsBot.ask() did not call its retriever")
        # The chunks the generator was handed, split back into stored chunks (diversify() may join two
        # chunks of one story into one Source): NonLLMContextRecall compares chunk with chunk.
        ctx = []
        for src in r.context:
            parts = [c for c in _story_chunks(bot.store, src.story_id, chunk_cache) if c[1] in src.text] or [(src.chunk_id, src.text)]
            ctx.extend({"story_id": src.story_id, "chunk_id": cid, "text": text} for cid, text in parts)
        row.update(answer=d["answer"], refused=d["refused"], citations=d["citations"], sources=d["sources"],
                   standalone_question=d["standalone_question"], generator=d["generator"], flags=d["flags"],
                   grounded_ratio=d["grounded_ratio"], timings_ms=d["timings"],
                   retrieved_ids=[s["story_id"] for s in d["sources"]], context=ctx,
                   context_story_ids=list(dict.fromkeys(s.story_id for s in r.context)))
        _story_texts(bot.store, set(it.gold_story_ids) | {c["story_id"] for c in d["citations"]}, texts)
        row["gold_passages"] = _gold_passages(bot.store, it) if it.answerable else []
        rows.append(row)
        if it.conversation:
            history.setdefault(it.conversation, []).append((it.question, d["answer"]))
    bar.close()
    first = next(iter(bots.values()), None)
    store_info = {}
    known: frozenset = frozenset()
    if first is not None:
        known = M.known_names(f"{r.title}. {r.text}" for r in first.store.story_rows())
        store_info = {"stories": first.store.count_stories(), "chunks": first.store.count_chunks(),
                      "embed_model": first.embedder.name, "generator": first.generator_name,
                      "missing_gold_ids": sorted({g for it in items for g in it.gold_story_ids
                                                  if first.store.story_row(g) is None})}
    return rows, texts, {"bot_load_seconds": round(load_s, 2), **store_info}, known


# ----------------------------------------------------------------------------------------- score

def score(rows: list[dict], texts: dict[str, dict], opts: EvalOptions, embed_path: str,
          known: frozenset = frozenset()) -> tuple[dict, dict]:
    """Per-question scores written into `rows`; returns (judge status, timings)."""
    from ragas.dataset_schema import SingleTurnSample
    from ragas.metrics import (IDBasedContextPrecision, IDBasedContextRecall, NonLLMContextRecall, RougeScore,
                               SemanticSimilarity, StringPresence)

    timings: dict[str, float] = {}
    t0 = time.perf_counter()
    emb = M.local_embeddings(embed_path)
    timings["load_embeddings"] = round(time.perf_counter() - t0, 2)
    ok_rows = [r for r in rows if not r["error"]]
    answerable = [r for r in ok_rows if r["type"] != "unanswerable"]
    answered = [r for r in ok_rows if not r["refused"]]

    # 1. retrieval ---------------------------------------------------------------------------
    t0 = time.perf_counter()
    samples = [SingleTurnSample(
        user_input=r["question"],
        retrieved_context_ids=r["retrieved_ids"][:opts.k] or ["<nothing retrieved>"],
        reference_context_ids=r["gold_story_ids"],
        retrieved_contexts=[c["text"] for c in r["context"]] or [""],
        reference_contexts=r["gold_passages"] or [""]) for r in answerable]
    res = M.run_evaluate(samples, [IDBasedContextRecall(), IDBasedContextPrecision(), NonLLMContextRecall()],
                         embeddings=emb)
    for i, r in enumerate(answerable):
        r["scores"] = {k: v[i] for k, v in res.items()}
        ranks = [n for n, sid in enumerate(r["retrieved_ids"], 1) if sid in set(r["gold_story_ids"])]
        r["scores"]["hit_at_1"] = 1.0 if ranks and ranks[0] == 1 else 0.0
        r["scores"]["mrr"] = 1.0 / ranks[0] if ranks else 0.0
    timings["retrieval_metrics"] = round(time.perf_counter() - t0, 2)

    # 2. answers vs references ---------------------------------------------------------------
    t0 = time.perf_counter()
    samples = [SingleTurnSample(user_input=r["question"], response=M.strip_markers(r["answer"]) or " ",
                                reference=r["reference"]) for r in answerable]
    res = M.run_evaluate(samples, [SemanticSimilarity(), RougeScore(rouge_type="rougeL", mode="fmeasure")],
                         embeddings=emb)
    for i, r in enumerate(answerable):
        r["scores"]["semantic_similarity"] = res["semantic_similarity"][i]
        r["scores"]["rouge_l"] = res["rouge_score"][i]
    # must-include: one StringPresence sample per (question, string), both sides normalised
    pairs = [(r, s) for r in answerable for s in r["must_include"]]
    samples = [SingleTurnSample(response=M.normalize_for_match(r["answer"]) or " ", reference=M.normalize_for_match(s))
               for r, s in pairs]
    res = M.run_evaluate(samples, [StringPresence()], embeddings=emb)
    found: dict[str, list[tuple[str, float]]] = {}
    for (r, s), v in zip(pairs, res.get("string_present", [])):
        found.setdefault(r["id"], []).append((s, v))
    for r in answerable:
        hits = found.get(r["id"], [])
        r["must_found"] = {s: bool(v == 1.0) for s, v in hits}
        r["scores"]["must_include"] = M.mean(v for _, v in hits) if hits else math.nan
        r["scores"]["false_refusal"] = 1.0 if r["refused"] else 0.0
    timings["answer_metrics"] = round(time.perf_counter() - t0, 2)

    # 3. groundedness of every answered question (custom metric inside evaluate()) ------------
    t0 = time.perf_counter()
    story_ctx = {sid: t.get("context", "") for sid, t in texts.items()}
    grounded = M.Groundedness(known=known)
    samples = [SingleTurnSample(user_input=r["question"], response=r["answer"],
                                retrieved_contexts=M.cited_contexts(r["answer"], r["citations"], story_ctx) or [""])
               for r in answered]
    grounded.embeddings = emb
    grounded.prewarm((x.response, x.retrieved_contexts) for x in samples)
    res = M.run_evaluate(samples, [grounded], embeddings=emb)
    for i, r in enumerate(answered):
        r.setdefault("scores", {})["groundedness"] = res["groundedness"][i]
        r["groundedness_detail"] = [vars(v) for v in grounded.explain(r["answer"], samples[i].retrieved_contexts)]
        valid = []
        retrieved = set(r["retrieved_ids"]) | set(r["context_story_ids"])
        for c in r["citations"]:
            t = texts.get(c["story_id"], {})
            ok, why = M.citation_is_valid(c, f"{t.get('title', '')}\n{t.get('text', '')}", retrieved)
            valid.append({"n": c["n"], "story_id": c["story_id"], "valid": ok, "reason": why})
        r["citation_checks"] = valid
        r["scores"]["citation_validity"] = M.mean(1.0 if v["valid"] else 0.0 for v in valid) if valid else math.nan
    for r in ok_rows:
        r.setdefault("scores", {})
        if r["type"] == "unanswerable":
            r["scores"]["refused_ok"] = 1.0 if r["refused"] else 0.0
    timings["groundedness"] = round(time.perf_counter() - t0, 2)

    # 4. LLM judge (informational; only when configured) --------------------------------------
    judge = {"configured": bool(opts.judge_base_url and opts.judge_model), "status": NOT_RUN,
             "base_url": opts.judge_base_url or None, "model": opts.judge_model or None}
    if judge["configured"]:
        t0 = time.perf_counter()
        judge.update(run_judge(answered, answerable, samples, opts, emb))
        timings["judge"] = round(time.perf_counter() - t0, 2)
    return judge, timings


def run_judge(answered: list[dict], answerable: list[dict], ground_samples: list, opts: EvalOptions, emb) -> dict:
    """Faithfulness / ResponseRelevancy / FactualCorrectness, one evaluate() per sample so a parse failure
    costs one NaN (reported with its error), not the run. These scores are informational."""
    from ragas.dataset_schema import SingleTurnSample
    from ragas.metrics import FactualCorrectness, Faithfulness, ResponseRelevancy

    llm = M.judge_llm(opts.judge_base_url, opts.judge_model, api_key=opts.judge_api_key, timeout=opts.judge_timeout,
                      max_tokens=opts.judge_max_tokens, parse_retries=opts.judge_parse_retries)
    errors: list[str] = []
    plan = []
    for r, s in zip(answered, ground_samples):
        ctxs = [c for c in s.retrieved_contexts if c.strip()] or [""]
        plan.append((r, "faithfulness", Faithfulness(llm=llm),
                     SingleTurnSample(user_input=r["question"], response=M.strip_markers(r["answer"]), retrieved_contexts=ctxs)))
    for r in answerable:
        base = SingleTurnSample(user_input=r["question"], response=M.strip_markers(r["answer"]) or " ", reference=r["reference"])
        plan.append((r, "answer_relevancy", ResponseRelevancy(llm=llm, embeddings=emb), base))
        plan.append((r, "factual_correctness", FactualCorrectness(llm=llm), base))
    ok = 0
    for r, name, metric, sample in plan:
        try:
            res = M.run_evaluate([sample], [metric], embeddings=emb, llm=llm, timeout=opts.judge_timeout)
            v = res[metric.name][0]
        except Exception as exc:  # parse failures of small judges land here
            v = math.nan
            errors.append(f"{r['id']} {name}: {type(exc).__name__}: {str(exc)[:200]}")
        r.setdefault("scores", {})[name] = v
        ok += 0 if M.is_nan(v) else 1
    status = "ok" if not errors else (f"failed: {len(errors)} of {len(plan)} judge calls gave no score "
                                      f"(first: {errors[0]})")
    return {"status": status, "calls": len(plan), "scored": ok, "errors": errors[:50]}


# ------------------------------------------------------------------------------------ aggregate

def _metric_values(rows: list[dict], name: str) -> list[float]:
    applies = METRICS[name][0]
    key = {"refusal_accuracy": "refused_ok", "false_refusal_rate": "false_refusal"}.get(name, name)
    out = []
    for r in rows:
        if r["error"]:
            continue
        if applies == "answerable" and r["type"] == "unanswerable":
            continue
        if applies == "unanswerable" and r["type"] != "unanswerable":
            continue
        if applies == "answered" and r["refused"]:
            continue
        if key in r.get("scores", {}):
            out.append(r["scores"][key])
    return out


def aggregate(rows: list[dict], judge: dict) -> tuple[dict, dict, dict, dict]:
    """(metrics, details, nan_counts, per_type)."""
    metrics: dict[str, float | None] = {}
    details: dict[str, dict] = {}
    nans: dict[str, int] = {}
    for name, (applies, higher, desc) in METRICS.items():
        if name == "bot_errors":
            vals = [1.0 if r["error"] else 0.0 for r in rows]
            metrics[name] = float(sum(vals))
            details[name] = {"n": len(rows), "nan": 0, "applies_to": applies, "higher_is_better": higher,
                             "description": desc, "status": "ok"}
            nans[name] = 0
            continue
        vals = _metric_values(rows, name)
        n_nan = sum(1 for v in vals if M.is_nan(v))
        status = "ok"
        if name in JUDGE_METRICS and not judge["configured"]:
            status = NOT_RUN
        elif name in JUDGE_METRICS and judge["status"] != "ok":
            status = judge["status"]
        elif not vals:
            status = "no questions of this kind in this run"
        v = M.mean(vals)
        metrics[name] = None if M.is_nan(v) else round(v, 4)
        nans[name] = n_nan
        details[name] = {"n": len(vals), "nan": n_nan, "applies_to": applies, "higher_is_better": higher,
                         "description": desc, "status": status,
                         "min": None if not vals or n_nan == len(vals) else round(min(x for x in vals if not M.is_nan(x)), 4)}
    per_type: dict[str, dict] = {}
    for t in sorted({r["type"] for r in rows}):
        sub = [r for r in rows if r["type"] == t]
        entry: dict[str, Any] = {"n": len(sub)}
        for name in METRICS:
            if name == "bot_errors":
                entry[name] = float(sum(1 for r in sub if r["error"]))
                continue
            vals = [v for v in _metric_values(sub, name) if not M.is_nan(v)]
            entry[name] = round(sum(vals) / len(vals), 4) if vals else None
        per_type[t] = entry
    return metrics, details, nans, per_type


# ------------------------------------------------------------------------------------------ gate

def load_thresholds(path: Path, gold_stem: str) -> dict[str, dict]:
    if not path or not Path(path).is_file():
        return {}
    raw = json.loads(Path(path).read_text(encoding="utf-8"))
    if "sets" in raw:
        return dict(raw["sets"].get(gold_stem, {}).get("metrics", {}))
    return dict(raw.get("metrics", {}))


def gate(metrics: dict, details: dict, thresholds: dict[str, dict]) -> tuple[bool, list[dict]]:
    """Every gated metric must meet its bound; a NaN in any gated metric fails; a metric with no questions
    in this run (e.g. --limit without unanswerable questions) is reported as skipped."""
    checks = []
    passed = True
    for name, bound in thresholds.items():
        if name.startswith("_"):
            continue
        d = details.get(name, {})
        v = metrics.get(name)
        entry = {"metric": name, "value": v, **{k: bound[k] for k in ("min", "max") if k in bound}}
        if name not in METRICS:
            entry.update(ok=False, reason="unknown metric in thresholds file")
        elif d.get("nan", 0) > 0:
            entry.update(ok=False, reason=f"{d['nan']} NaN score(s): a NaN never counts as a score")
        elif d.get("status", "").startswith("not run"):
            entry.update(ok=True, skipped=True, reason=d["status"])
        elif d.get("n", 0) == 0:
            entry.update(ok=True, skipped=True, reason=d.get("status", "no samples"))
        elif v is None or (isinstance(v, float) and math.isnan(v)):
            entry.update(ok=False, reason="no score")
        elif "min" in bound and v < bound["min"]:
            entry.update(ok=False, reason=f"{v:.4f} < min {bound['min']}")
        elif "max" in bound and v > bound["max"]:
            entry.update(ok=False, reason=f"{v:.4f} > max {bound['max']}")
        else:
            entry.update(ok=True, reason="ok")
        if "sample_min" in bound and entry.get("ok") and not entry.get("skipped"):
            lo = d.get("min")
            if lo is not None and lo < bound["sample_min"]:
                entry.update(ok=False, reason=f"a question scored {lo:.4f} < sample_min {bound['sample_min']}")
            entry["sample_min"] = bound["sample_min"]
        passed &= bool(entry["ok"])
        checks.append(entry)
    return passed, checks


# ------------------------------------------------------------------------------------------- run

def run(opts: EvalOptions) -> RunResult:
    from rag.settings import Settings

    t_start = time.perf_counter()
    items = load_gold(opts.gold)
    kind = corpus_kind(items)
    base = Settings()
    source = opts.source or (base.corpus_dir if kind == "corpus" else DEFAULT_DIGESTS_DIR)
    if not Path(source).exists():
        msg = f"skipped: {source} does not exist (needed for {opts.gold.name})"
        return RunResult(report={"skipped": msg}, report_dir=None, passed=True, skipped=msg)
    store_dir = opts.store or (DEFAULT_STORES / kind)
    items_run = limit_items(items, opts.limit)
    run_id = opts.run_id or f"{datetime.now().strftime('%Y%m%d-%H%M%S')}-{opts.gold.stem}"

    def settings_for(today: date):
        return base.model_copy(update={"store_dir": Path(store_dir), "today": today})

    timings: dict[str, float] = {}
    t0 = time.perf_counter()
    store_info = open_or_build_store(settings_for(items_run[0].today), Path(source), opts.progress)
    timings["store"] = round(time.perf_counter() - t0, 2)

    t0 = time.perf_counter()
    rows, texts, ask_info, known = ask_all(items_run, settings_for, opts)
    timings["ask"] = round(time.perf_counter() - t0, 2)
    store_info.update(ask_info)

    t0 = time.perf_counter()
    judge, score_timings = score(rows, texts, opts, base.embed_model_path(), known)
    timings["score"] = round(time.perf_counter() - t0, 2)
    timings.update({f"score.{k}": v for k, v in score_timings.items()})

    metrics, details, nans, per_type = aggregate(rows, judge)
    secs = [r["seconds"] for r in rows if not r["error"]]
    latency = {"p50": round(statistics.median(secs), 3) if secs else None,
               "p95": round(sorted(secs)[max(0, math.ceil(0.95 * len(secs)) - 1)], 3) if secs else None,
               "mean": round(statistics.fmean(secs), 3) if secs else None}
    thresholds = load_thresholds(opts.thresholds, opts.gold.stem)
    passed, checks = gate(metrics, details, thresholds)
    timings["total_before_report"] = round(time.perf_counter() - t_start, 2)
    report = {
        "run_id": run_id, "created": datetime.now().isoformat(timespec="seconds"),
        "gold": str(opts.gold), "gold_name": opts.gold.stem, "corpus": kind,
        "questions": len(items_run), "questions_in_gold": len(items),
        "limit": opts.limit, "k": opts.k,
        "type_counts": {t: sum(1 for r in rows if r["type"] == t) for t in sorted({r["type"] for r in rows})},
        "metrics": metrics, "metric_details": details, "nan_counts": nans, "per_type": per_type,
        "judge": judge, "gate": {"passed": passed, "thresholds_file": str(opts.thresholds), "checks": checks},
        "latency_seconds": latency, "timings_seconds": timings, "store": store_info,
        "settings": {"top_k": base.top_k, "min_relevance": base.min_relevance, "generator": base.generator,
                     "support_threshold": base.support_threshold, "groundedness_threshold": M.SUPPORT_THRESHOLD},
        "environment": {"cpu_count": os.cpu_count(), "python": sys.version.split()[0]},
        "rows": rows,
    }
    from evals.report import write_report

    out_dir = Path(opts.out) / run_id
    write_report(report, out_dir, Path(opts.out), charts=opts.charts)
    return RunResult(report=report, report_dir=out_dir, passed=passed)
