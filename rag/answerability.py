"""Whether the store answers a question: a learned decision over cheap retrieval features.

A dense model knows a question is "about Llama" but not that it asks about Llama 7 when the store holds
Llama 3 and 4; a question spread over two stories looks weak when stories are scored one at a time.
So the decision looks at the question's named things with their version numbers and amounts, at how
much of the question the best story and the top stories *together* hold (weighted by rarity), and at
whether the dates and outlets the question names agree with what was found. A logistic regression over
these features is fitted by `python -m evals.calibrate` on the bank's train split (evals/bank/) and its
threshold chosen on dev; its numbers live in rag/calibration.json and nowhere else. At query time only
numpy is used.
"""
from __future__ import annotations

import json
import math
import re
from dataclasses import dataclass
from datetime import date, timedelta
from functools import lru_cache
from pathlib import Path

from rag.calibration import ANSWERABILITY_FILE as CALIBRATION

# The order the fitted coefficients refer to; evals.calibrate writes them under these names.
FEATURES = (
    "dense",              # best dense cosine among the top stories
    "coverage_best",      # rarity-weighted share of the question's terms held by the single best story
    "coverage_union",     # ... held by the top stories together (a question over two or three stories)
    "missing_rarity",     # rarity of the rarest question term no top story holds (0: none missing)
    # "lexical" (best BM25 score over the question weight) is computed but not used: its scale moves with
    # the store size (a 150-story corpus scores far higher than the 12,000 digests), so a weight fitted on one
    # store misreads the other.
    "versioned_missing",  # share of "name + number" things ("Llama 7", "A100", "$40 million") absent
    "versioned_any",      # the question names such a thing at all
    "names_missing",      # share of the question's capitalised names no top story holds
    "names_best",         # share of the question's names the single best-holding story holds
    "date_named",         # the question names dates or periods
    "date_match",         # share of those periods in which one of the top stories was published
    # (whether the question names a top story's outlet is computed, "outlet_match", but not used: in the
    # bank only answerable questions name outlets, so a fitted weight would learn the template, not news)
    "terms",              # log of the number of weighted terms (long questions score lower coverage)
    "versioned_gap",      # versioned_missing x coverage_best: "Llama 7" asked, a story holds "Llama" and "7"
    "versioned_gap_dense",  # versioned_missing x dense
)


def with_derived(x: dict[str, float]) -> dict[str, float]:
    """Add the interaction features: a missing versioned name matters most when everything else matches,
    which a linear model over the plain features cannot express."""
    out = dict(x)
    out["versioned_gap"] = x.get("versioned_missing", 0.0) * x.get("coverage_best", 0.0)
    out["versioned_gap_dense"] = x.get("versioned_missing", 0.0) * x.get("dense", 0.0)
    return out

# "Llama 4", "GPT-4.5", "Claude Opus 4.5", "Gemini 2.0", "A100", "R2", "H200", "$40 million", "4o"
_VERSIONED = re.compile(
    r"\$\d[\d,.]*\s?(?:million|billion|trillion|[MBK]\b|bn\b)|"
    r"(?<![-\w])[A-Z][A-Za-z]*(?:[ -][A-Z][A-Za-z]+){0,2}[ -]?\d{1,4}(?:\.\d{1,2})?[a-z]?\b(?!\s?(?:%|percent))|"
    r"(?<![-\w])[A-Z]{1,3}\d{1,4}[a-z]?\b")
_NAME = re.compile(r"(?<![\w'’])([A-Z]\w*(?:[-.&]\w+)*)")       # \w: "Erdős" is one name
_YEAR = re.compile(r"^(?:19|20)\d\d$")
_NOT_NAME = frozenset("""what which who whom whose how when where why is are was were did does do can could should
would will has have had the a an in on at of for to and or but if tell give show compare please list write
summarize summarise explain describe according across between after before since during from with about i
ai it its this that these those there they we you my our their news article report story piece coverage
january february march april may june july august september october november december monday tuesday
wednesday thursday friday saturday sunday put across""".split())


def norm_text(text: str) -> str:
    """Lower-case, hyphens/slashes as spaces, padded: the form versioned names are matched in."""
    return " " + re.sub(r"[\s\-_/]+", " ", (text or "").lower()) + " "


def versioned_names(question: str) -> list[str]:
    """The named things with a number the question asks about ("Llama 7", "A100", "$40 million")."""
    out = []
    for m in _VERSIONED.finditer(question or ""):
        v = m.group(0).strip()
        head = v.split()[0].lower() if " " in v else ""
        if head in _NOT_NAME or _YEAR.match(v.split()[-1] if " " in v else "") and not v.startswith("$"):
            continue
        if v not in out:
            out.append(v)
    return out


def _variants(name: str) -> list[str]:
    """How a text may write a versioned name or amount: "Llama 7" / "Llama-7" / "Llama7", "$40 million"."""
    n = norm_text(name).strip()
    out = {n, n.replace(" ", "")}
    m = re.fullmatch(r"\$([\d.,]+) ?(million|billion|trillion|m|b|k|bn)", n)
    if m:
        num = m.group(1).replace(",", "")
        unit = {"m": "million", "b": "billion", "bn": "billion", "k": "thousand"}.get(m.group(2), m.group(2))
        out |= {f"${num} {unit}", f"${num}{unit[0]}", f"{num} {unit}", f"${num} {unit[0]}"}
    return sorted(out)


def holds_name(text_norm: str, name: str) -> bool:
    for v in _variants(name):
        if re.search(r"(?<![a-z0-9.])" + re.escape(v) + r"(?![a-z0-9]|\.\d)", text_norm):
            return True
    return False


def absent_things(question: str, text: str) -> list[str]:
    """What the question names that the found stories never mention: its versioned names ("Llama 7")
    first, else its plain names, as the question writes them. A refusal says these; a partial answer
    says it does not cover them."""
    joined = norm_text(text)
    missing = [v for v in versioned_names(question) if not holds_name(joined, v)]
    if missing:
        return missing
    out = []
    first = re.search(r"\w+", question or "")
    for m in _NAME.finditer(question or ""):
        w = m.group(1)
        if w.lower() in _NOT_NAME or len(w) < 2 or _YEAR.match(w) or w in out:
            continue
        if first and m.start(1) == first.start() and w.isalpha() and w[1:].islower():
            continue     # a capital that only starts the sentence ("Timeline of ...") names nothing
        if f" {norm_text(w).strip()} " not in joined:
            out.append(w)
    return out


def question_names(question: str) -> list[str]:
    """Capitalised words that name things (not the question's own first word or form words)."""
    out = []
    for m in _NAME.finditer(question or ""):
        w = m.group(1)
        if w.lower() in _NOT_NAME or len(w) < 2 or _YEAR.match(w):
            continue
        if w.lower() not in out:
            out.append(w.lower())
    return out


@dataclass
class Calibration:
    features: tuple[str, ...]
    mean: list[float]
    scale: list[float]
    coef: list[float]
    intercept: float
    threshold: float
    date_boost: float = 0.0       # ranking: a story in a period the question describes (RRF first-place shares)
    outlet_boost: float = 0.0     # ranking: a story from an outlet the question names
    coverage_boost: float = 0.6   # ranking: a story holding all of the question's rare words
    title_boost: float = 0.0      # ranking: a headline holding them (a story about them, not one that mentions them)

    def probability(self, x: dict[str, float]) -> float:
        x = with_derived(x)
        z = self.intercept
        for name, m, s, c in zip(self.features, self.mean, self.scale, self.coef):
            z += c * ((x.get(name, 0.0) - m) / (s or 1.0))
        return 1.0 / (1.0 + math.exp(-max(-50.0, min(50.0, z))))


@lru_cache(maxsize=4)
def load_calibration(path: str = str(CALIBRATION)) -> Calibration:
    raw = json.loads(Path(path).read_text(encoding="utf-8"))
    m = raw["model"]
    rank = raw.get("ranking", {})
    return Calibration(tuple(m["features"]), m["mean"], m["scale"], m["coef"], m["intercept"], raw["threshold"],
                       rank.get("date_boost", 0.0), rank.get("outlet_boost", 0.0), rank.get("coverage_boost", 0.6),
                       rank.get("title_boost", 0.0))


def period_match(periods: tuple[tuple[date, date], ...], published: list[date], slack_days: int = 7) -> float:
    """Share of the question's periods in which (give or take a week) one of the stories appeared."""
    if not periods:
        return 0.0
    slack = timedelta(days=slack_days)
    hit = sum(any(lo - slack <= d <= hi + slack for d in published) for lo, hi in periods)
    return hit / len(periods)


def answerability_features(*, question: str, story_feats: list[dict], weights: dict[str, float],
                           story_terms: dict[str, set[str]], story_text: dict[str, str], n_docs: int,
                           periods: tuple[tuple[date, date], ...], published: dict[str, date],
                           outlets: dict[str, list[str]]) -> dict[str, float]:
    """The features of FEATURES for one question over its top stories (story_feats in rank order)."""
    from rag.retrieval import weighted_coverage     # one definition of coverage

    top = story_feats
    ids = [f["story_id"] for f in top]
    union: set[str] = set().union(*(story_terms.get(i, set()) for i in ids)) if ids else set()
    max_idf = math.log(1.0 + (n_docs + 0.5) / 0.5) if n_docs else 1.0
    missing = [w for t, w in weights.items() if t not in union and not (
        "-" in t and all(p in union for p in t.split("-") if p in weights))]
    total_w = sum(weights.values()) or 1.0
    texts = {i: norm_text(story_text.get(i, "")) for i in ids}
    joined = " ".join(texts.values())
    vnames = versioned_names(question)
    names = question_names(question)
    name_hits = {i: sum(1 for n in names if f" {norm_text(n).strip()} " in texts[i]) for i in ids}
    q_low = question.lower()
    return {
        "dense": max((f["dense"] for f in top), default=0.0),
        "coverage_best": max((f["coverage"] for f in top), default=0.0),
        "coverage_union": weighted_coverage(weights, union) if weights else 0.0,
        "missing_rarity": max(missing, default=0.0) / max_idf,
        "lexical": max((f["lexical"] for f in top), default=0.0) / total_w,
        "versioned_missing": (sum(not holds_name(joined, v) for v in vnames) / len(vnames)) if vnames else 0.0,
        "versioned_any": 1.0 if vnames else 0.0,
        "names_missing": (sum(f" {norm_text(n).strip()} " not in joined for n in names) / len(names)) if names else 0.0,
        "names_best": (max(name_hits.values(), default=0) / len(names)) if names else 1.0,
        "date_named": 1.0 if periods else 0.0,
        "date_match": period_match(periods, [published[i] for i in ids if i in published]),
        "outlet_match": 1.0 if any(o and len(o) >= 4 and o.lower() in q_low for i in ids for o in outlets.get(i, [])) else 0.0,
        "terms": math.log1p(len(weights)),
    }
