"""The question bank (evals/bank/): honest splits, real absence of near-miss names, our own words,
and the learned answerability decision's features on hand-made cases."""
from __future__ import annotations

import json
from collections import defaultdict
from datetime import date

import pytest

from evals.bank import BANK_DIR, SPLITS, load_bank, split_of
from rag.answerability import FEATURES, absent_things, holds_name, load_calibration, norm_text, versioned_names
from rag.timeparse import parse_time_intent
from conftest import copied_runs, require_digests


@pytest.fixture(scope="module")
def bank():
    return {sp: load_bank(sp) for sp in SPLITS}


def test_bank_has_every_kind_in_every_split(bank):
    for sp, rows in bank.items():
        kinds = defaultdict(int)
        for r in rows:
            assert r["split"] == sp and r["question"].strip()
            kinds[r["kind"]] += 1
        for kind in ("answerable", "near_miss", "compositional", "premise_false"):
            assert kinds[kind] >= 50 if sp != "train" else kinds[kind] >= 200, (sp, dict(kinds))
    assert sum(r["kind"] == "near_miss" for rows in bank.values() for r in rows) >= 300
    assert sum(r["kind"] == "compositional" for rows in bank.values() for r in rows) >= 300


def test_every_split_asks_in_every_phrasing(bank):
    """The phrasing of a question must not follow its split: dev would then choose the threshold on
    other question forms than test reports."""
    from evals.bank import ANSWERABLE_TEMPLATES

    heads = [t.split("{")[0] for t in ANSWERABLE_TEMPLATES]
    for sp, rows in bank.items():
        asked = [r["question"] for r in rows if r["kind"] == "answerable" and r["store"] == "digests"]
        for head in heads:
            share = sum(q.startswith(head) for q in asked) / len(asked)
            assert share >= 0.5 / len(heads), (sp, head, round(share, 3))


def test_no_test_question_shares_a_story_with_train_or_dev(bank):
    """Split by story: the stories a test question is about (gold, or the near-miss's neighbour) never
    appear in a train or dev question."""
    def stories(r):
        return set(r.get("gold_story_ids") or []) | ({r["nearest_story_id"]} if r.get("nearest_story_id") else set())

    fitted = set().union(*(stories(r) for sp in ("train", "dev") for r in bank[sp]))
    shared = [(r["id"], stories(r) & fitted) for r in bank["test"] if stories(r) & fitted]
    assert not shared, shared[:5]


def test_compositional_questions_are_long_and_need_several_stories(bank):
    for rows in bank.values():
        for r in rows:
            if r["kind"] == "compositional":
                assert 30 <= len(r["question"].split()) <= 60, r["question"]
                assert 2 <= len(set(r["gold_story_ids"])) <= 3 and r["answerable"]


def test_split_is_a_stable_hash():
    assert split_of("u0123456789abcdef") == split_of("u0123456789abcdef")
    counts = defaultdict(int)
    for i in range(2000):
        counts[split_of(f"u{i:016x}")] += 1
    assert 0.55 < counts["train"] / 2000 < 0.65 and 0.15 < counts["test"] / 2000 < 0.25


def test_bank_questions_are_our_own_words(bank):
    """No 8-word run of a generated question appears in the (unlicensed) digests; no sentence is copied.
    (Hand-written ones are checked by tests/test_quality.py and evals.gold check.)"""
    rows = [(r["id"], r["question"]) for rows in bank.values() for r in rows if r["kind"] != "handwritten"]
    copied = copied_runs(rows)
    assert not copied, copied[:5]


def test_near_miss_names_occur_nowhere_in_the_digests(bank):
    digests = require_digests()
    blob = norm_text(" ".join(p.read_text(encoding="utf-8") for p in digests.glob("*.md")))
    rows = [r for sp in SPLITS for r in bank[sp] if r["kind"] == "near_miss" and r["store"] == "digests"]
    assert len(rows) >= 300
    present = [r["absent"] for r in rows[::5] if holds_name(blob, r["absent"])]
    assert not present, present[:10]


# ------------------------------------------------------------------------------------ the decision's parts

def test_versioned_names_are_read_with_their_numbers():
    assert versioned_names("What did Meta announce about Llama 7?") == ["Llama 7"]
    assert "A100" in versioned_names("How fast is Nvidia's A100 compared with the H100?")
    assert "$40 million" in versioned_names("Why did Acme raise $40 million?")
    assert versioned_names("What did OpenAI announce in 2025?") == []


def test_a_versioned_name_is_held_only_with_its_own_number():
    text = norm_text("Meta released Llama 4 in April 2025, after Llama-3.1 and GPT-4.5.")
    assert holds_name(text, "Llama 4") and holds_name(text, "Llama 3.1") and holds_name(text, "GPT 4.5")
    assert not holds_name(text, "Llama 7") and not holds_name(text, "Llama 3") and not holds_name(text, "GPT-4")
    assert absent_things("What is new in Llama 7?", "Meta released Llama 4.") == ["Llama 7"]
    assert absent_things("What did Meta say about Llama 4?", "Meta released Llama 4.") == []
    # the question's own first word is capitalised as a sentence, not as a name
    assert absent_things("Timeline of Nvidia and chips", "Nvidia shipped chips.") == []
    assert absent_things("Timeline of Zorblax chips", "Nvidia shipped chips.") == ["Zorblax"]


def test_calibration_names_the_script_that_fitted_it():
    raw = json.loads((BANK_DIR.parent.parent / "rag" / "calibration.json").read_text(encoding="utf-8"))
    assert raw["fitted_by"].startswith("python -m evals.calibrate")
    cal = load_calibration()
    assert cal.features == FEATURES and len(cal.coef) == len(FEATURES) and 0.0 < cal.threshold < 1.0
    # a near-miss (the versioned name is absent) must score lower than the same question answered
    base = {f: 0.0 for f in FEATURES} | {"dense": 0.6, "coverage_best": 0.9, "coverage_union": 1.0,
                                          "lexical": 0.4, "versioned_any": 1.0, "names_best": 1.0, "terms": 1.6}
    assert cal.probability(base | {"versioned_missing": 1.0}) < cal.probability(base)


def test_dates_that_describe_articles_do_not_scope_the_question():
    today = date(2026, 6, 1)
    assert parse_time_intent("What did Google announce last month?", today).scoped
    assert parse_time_intent("News from March 2026 about chips", today).scoped
    assert parse_time_intent("What has changed since 2024 and before 2026?", today).scoped
    described = parse_time_intent("Does the article CNBC published on October 1, 2025 about Nvidia and the "
                                  "report from November 2025 about AMD agree?", today)
    assert not described.scoped and len(described.periods) == 2
    assert not parse_time_intent("What did the story The Verge ran in March 2025 say about Llama?", today).scoped
