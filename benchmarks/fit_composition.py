"""Fit the extractive generator's sentence-scoring weights (rag.calibration.COMPOSITION).

    python benchmarks/fit_composition.py --store DIGESTS_STORE --gold evals/bank/train.jsonl --gold evals/bank/dev.jsonl \
        --only-store digests --every 12 --corpus-store CORPUS_STORE

Train/dev questions only (never the reported test split). For every answerable question the real
retriever runs once, and every candidate sentence of the generator's pool gets its features: rare-word
coverage, the story's dense score, lead position, cosine to the question (the real embedder), whether it
holds what the question type asks for. A grid over the weights then picks the one whose best-scoring
sentence comes from a gold story most often -- the answer's first sentence and first citation -- with
ties going to the smaller change from the current weights. Prints the table and the winning weights;
copy them into rag/calibration.py COMPOSITION by hand (the commit says which run).

With --bars it fits other_story_bar instead (F1 of cited stories against gold stories, multi-story
questions included, plus the share of answers holding the key fact). recency_bar is not fitted: train/dev hold no "latest" questions.
"""
from __future__ import annotations

import argparse
import itertools
import sys
from dataclasses import replace
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from benchmarks.answer_quality import load_questions, open_bot  # noqa: E402


BASE = ("lexical", "prior", "rank", "lead")


def features(bot, questions) -> list[tuple[list[dict], set[str]]]:
    from rag.generators.base import GenerationRequest
    from rag.generators.extractive import answers_kind, leans_on_previous, question_kind

    gen = bot.extractive
    out = []
    for q in questions:
        bot.settings.today = q.today
        r = bot.retriever.retrieve(q.question)
        if not r.relevant or not r.context or r.intent.timeline:
            continue
        req = GenerationRequest(question=q.question, sources=r.context, today=q.today, recency=r.intent.recency)
        sents = gen._sentences(req)
        # model-free parts separately: score with one weight at a time
        parts = {}
        for name in BASE:
            g = type(gen)(None, calibration={k: (1.0 if k == name else 0.0) for k in BASE})
            for c in g._score_all(req, r.query, sents):
                parts.setdefault((c.n, c.pos), {})[name] = c.relevance
        base = gen._score_all(req, r.query, sents)
        pool = gen._pool(base)
        qvec = bot.embedder.embed_one(r.query)
        vecs = bot.embedder.embed([c.text for c in pool]) if pool else []
        kind = question_kind(q.question)
        rows = []
        for c, v in zip(pool, vecs):
            if leans_on_previous(c.text) and c.pos == 0:
                continue
            rows.append({**parts[(c.n, c.pos)], "cos": float(v @ qvec), "cue": float(answers_kind(c.text, kind)),
                         "story": req.sources[c.n - 1].story_id})
        out.append((rows, set(q.gold)))
    return out


def first_gold(data, w: dict) -> float:
    hits = 0
    for rows, gold in data:
        if not rows:
            continue
        def score(x):
            base = sum(w[k] * x[k] for k in BASE)
            return (1 - w["semantic"]) * base + w["semantic"] * x["cos"] + w["cue"] * x["cue"]
        best = max(rows, key=score)
        hits += best["story"] in gold
    return hits / max(1, len(data))


def main(argv: list[str] | None = None) -> int:
    from rag.calibration import COMPOSITION

    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--store", type=Path, required=True)
    ap.add_argument("--gold", type=Path, action="append", required=True, help="train/dev JSONL (repeatable)")
    ap.add_argument("--only-store", choices=("digests", "corpus"), help="bank files: questions of this store")
    ap.add_argument("--every", type=int, default=1, help="keep every n-th question (a sample)")
    ap.add_argument("--corpus-store", type=Path, help="also fit on the bank's corpus questions over this store")
    ap.add_argument("--bars", action="store_true",
                    help="fit other_story_bar instead: F1 of the stories an answer cites against its gold stories")
    args = ap.parse_args(argv)
    if any("test" in g.name for g in args.gold):
        ap.error("the test split is for reporting only; fit on train/dev")
    if args.bars:
        return fit_bars(args)
    bot = open_bot(args.store)
    data = features(bot, [q for g in args.gold for q in load_questions(g, args.only_store, args.every)])
    if args.corpus_store:   # the bank's corpus questions too, asked of the corpus store
        data += features(open_bot(args.corpus_store), [q for g in args.gold for q in load_questions(g, "corpus")])
    print(f"{len(data)} questions; current weights: first sentence on a gold story {first_gold(data, COMPOSITION):.3f}")
    grid = []
    # Within a story only lexical, lead, semantic and cue differ; prior and rank are the story's own and
    # decide which story leads. lexical and lead keep their ratio (0.55 : 0.10).
    for prior, rank, sem, cue in itertools.product((0.2, 0.35, 0.5, 0.7, 1.0), (0.0, 0.3, 0.5, 0.8, 1.2),
                                                   (0.0, 0.15, 0.3, 0.5), (0.0, 0.05, 0.1, 0.15)):
        w = {**COMPOSITION, "prior": prior, "rank": rank, "semantic": sem, "cue": cue}
        change = sum(abs(w[k] - COMPOSITION[k]) for k in ("prior", "rank", "semantic", "cue"))
        grid.append((first_gold(data, w), -change, w))
    grid.sort(key=lambda x: (x[0], x[1]), reverse=True)
    for acc, _, w in grid[:10]:
        print(f"{acc:.3f}  " + "  ".join(f"{k}={w[k]:.2f}" for k in (*BASE, "semantic", "cue")))
    return 0


def fit_bars(args) -> int:
    """other_story_bar: how close to the best sentence another story's best must score to be added.

    Scored on every answerable train/dev question (single- and multi-story) by the F1 of the stories the
    composed answer cites against the gold stories (a low bar cites stories a one-story question did
    not need, a high bar leaves out the second story of a comparison) and the share of answers that
    hold the question's key fact (must_include). The key fact is the issue's target, so it decides;
    F1 breaks ties."""
    from rag.generators.base import GenerationRequest
    from rag.calibration import COMPOSITION
    from rag.generators.extractive import ExtractiveGenerator
    from evals.metrics import normalize_for_match
    from rag.verify import extract_markers

    requests = []
    for store, only in ((args.store, args.only_store), (args.corpus_store, "corpus")):
        if store is None:
            continue
        bot = open_bot(store)
        for q in [q for g in args.gold for q in load_questions(g, only, args.every)]:
            bot.settings.today = q.today
            r = bot.retriever.retrieve(q.question)
            # refused or not: the gate is a separate decision (evals/calibrate), this fits what is said
            if r.context and not r.intent.timeline:
                requests.append((GenerationRequest(question=q.question, sources=r.context, today=q.today,
                                                   recency=r.intent.recency), r.query, set(q.gold), bot.embedder,
                                 q.must_include))
    print(f"{len(requests)} questions ({sum(len(x[2]) > 1 for x in requests)} with several gold stories, "
          f"{sum(bool(x[4]) for x in requests)} with a key fact)")
    results = []
    for bar in (0.6, 0.7, 0.8, 0.85, 0.9, 0.95, 1.0):
        f1s, facts = [], []
        for req, query, gold, emb, must in requests:
            gen = ExtractiveGenerator(emb, calibration={"other_story_bar": bar})
            text = gen.compose(req, query)
            cited = {req.sources[n - 1].story_id for line in text.split("\n") for n in extract_markers(line)[1]
                     if 0 < n <= len(req.sources)}
            hit = len(cited & gold)
            f1s.append(2 * hit / (len(cited) + len(gold)) if cited else 0.0)
            if must:
                said = normalize_for_match(text)
                facts.append(all(normalize_for_match(m) in said for m in must))
        f1, fact = sum(f1s) / len(f1s), sum(facts) / max(1, len(facts))
        results.append((round(fact, 3), round(f1, 3), bar))
        print(f"other_story_bar={bar:.2f}  key fact in answer {fact:.3f}  cited-vs-gold F1 {f1:.3f}")
    best = max(results)
    print(f"best other_story_bar={best[2]:.2f} (key fact {best[0]:.3f}, F1 {best[1]:.3f})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
