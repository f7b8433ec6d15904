"""Fit the answerability decision (rag/calibration.json) on the bank's train split; pick its threshold on dev.

    python -m evals.calibrate --digests-store /work/stores/digests --corpus-store DIR

Features come from the real retriever (rag.answerability.FEATURES) over every train and dev question of
evals/bank/ and the news-quiz questions of the same splits. A scikit-learn logistic regression (balanced
classes, standardised features) is fitted on train; the threshold is the highest probability cut at which
at most TARGET_FALSE_REFUSAL of dev's answerable questions are refused, plain and compositional ones each,
since refusing a question the news answers costs the user more than a near-miss answered with a helpful
"nearest" note. The test split
is never read. scikit-learn is needed here only: the product reads the stored coefficients with numpy.
"""
from __future__ import annotations

import argparse
import json
import sys
from datetime import datetime, timezone
from pathlib import Path

from evals.bank import BANK_DIR
from evals.bank_report import bank_rows, open_bots, run_rows
from rag.answerability import CALIBRATION, FEATURES, with_derived

TARGET_FALSE_REFUSAL = 0.03     # on dev, leaving room under the 0.05 goal for a split it never saw


def fit(train: list[dict]):
    import numpy as np
    from sklearn.linear_model import LogisticRegression
    from sklearn.preprocessing import StandardScaler

    X = np.array([[with_derived(r["features"])[f] for f in FEATURES] for r in train], dtype=float)
    y = np.array([1 if r["answerable"] else 0 for r in train])
    scaler = StandardScaler().fit(X)
    model = LogisticRegression(C=1.0, class_weight="balanced", max_iter=2000).fit(scaler.transform(X), y)
    return scaler, model


def probabilities(scaler, model, rows: list[dict]):
    import numpy as np

    X = np.array([[with_derived(r["features"])[f] for f in FEATURES] for r in rows], dtype=float)
    return model.predict_proba(scaler.transform(X))[:, 1]


def choose_threshold(p, answerable: list[bool], target: float = TARGET_FALSE_REFUSAL,
                     groups: list[str] | None = None) -> float:
    """The highest cut that refuses at most `target` of the answerable questions of every group.

    Groups are the kinds of answerable question the goal names separately (plain and long
    compositional ones): pooled, the many plain questions would let the few long ones be refused."""
    groups = groups or ["all"] * len(p)
    cuts = []
    for g in dict.fromkeys(groups):
        pos = sorted(pi for pi, a, gi in zip(p, answerable, groups) if a and gi == g)
        if pos:
            k = int(target * len(pos))        # this many answerable questions may fall below the cut
            cuts.append(float(pos[k]) - 1e-9 if k < len(pos) else 0.5)
    return min(cuts) if cuts else 0.5


def rates(p, rows: list[dict], threshold: float) -> dict:
    def rate(sel):
        xs = [pi < threshold for pi, r in zip(p, rows) if sel(r)]
        return round(sum(xs) / len(xs), 4) if xs else None

    return {"answerable_refused": rate(lambda r: r["answerable"] and r["kind"] != "compositional"),
            "compositional_refused": rate(lambda r: r["kind"] == "compositional"),
            "near_miss_refused": rate(lambda r: r["kind"] == "near_miss"),
            "premise_false_refused": rate(lambda r: r["kind"] == "premise_false"),
            "quiz_refused": rate(lambda r: r["kind"] == "quiz"),
            "n": len(rows)}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--digests-store", type=Path)
    ap.add_argument("--corpus-store", type=Path)
    ap.add_argument("--bank", type=Path, default=BANK_DIR)
    ap.add_argument("--out", type=Path, default=CALIBRATION)
    ap.add_argument("--features-cache", type=Path, help="read/write the train+dev features here (JSONL)")
    args = ap.parse_args(argv)
    rows = bank_rows("train", bank=args.bank) + bank_rows("dev", bank=args.bank)
    cached: dict[tuple, dict] = {}
    if args.features_cache and args.features_cache.exists():     # features of questions asked before
        for x in args.features_cache.read_text(encoding="utf-8").splitlines():
            if x.strip():
                c = json.loads(x)
                cached[(c["store"], c["question"], c.get("today"))] = c
    todo = [r for r in rows if (r["store"], r["question"], r.get("today")) not in cached]
    fresh = run_rows(open_bots(args.digests_store, args.corpus_store), todo, ask=False) if todo else []
    for c in fresh:
        cached[(c["store"], c["question"], c.get("today"))] = c
    if args.features_cache:
        args.features_cache.write_text("".join(json.dumps(c) + "\n" for c in cached.values()), encoding="utf-8")
    results = []
    for r in rows:
        c = cached.get((r["store"], r["question"], r.get("today")))
        if c is not None:
            results.append({**r, "features": c["features"]})
    train = [r for r in results if r["split"] == "train"]
    dev = [r for r in results if r["split"] == "dev"]
    scaler, model = fit(train)
    p_dev = probabilities(scaler, model, dev)
    threshold = choose_threshold(p_dev, [r["answerable"] for r in dev],
                                 groups=["compositional" if r["kind"] == "compositional" else "plain" for r in dev])
    p_train = probabilities(scaler, model, train)
    old = json.loads(args.out.read_text(encoding="utf-8")) if args.out.exists() else {}
    out = {
        "_doc": "Fitted by `python -m evals.calibrate` (evals/calibrate.py): logistic regression over "
                "rag.answerability.FEATURES, fitted on evals/bank train, threshold chosen on dev. Do not edit "
                "by hand; re-run the script. `ranking` holds the ranking boosts, fitted on train by "
                "benchmarks/fit_ranking.py (kept as they are by this script).",
        "fitted_by": "python -m evals.calibrate " + " ".join(argv if argv is not None else sys.argv[1:]),
        "fitted_at": datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%MZ"),
        "threshold": round(threshold, 6),
        "target_dev_false_refusal": TARGET_FALSE_REFUSAL,
        "ranking": old.get("ranking", {"date_boost": 0.6, "outlet_boost": 0.3}),
        "model": {"features": list(FEATURES), "mean": [round(float(x), 6) for x in scaler.mean_],
                  "scale": [round(float(x), 6) for x in scaler.scale_],
                  "coef": [round(float(x), 6) for x in model.coef_[0]],
                  "intercept": round(float(model.intercept_[0]), 6)},
        "fit": {"train": rates(p_train, train, threshold), "dev": rates(p_dev, dev, threshold)},
    }
    args.out.write_text(json.dumps(out, indent=1) + "\n", encoding="utf-8")
    print(json.dumps({k: out[k] for k in ("threshold", "fit")}, indent=2))
    print("coefficients:", dict(zip(FEATURES, out["model"]["coef"])))
    return 0


if __name__ == "__main__":
    sys.exit(main())
