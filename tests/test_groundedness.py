"""Negative controls for the `groundedness` eval metric (evals/metrics.py): proof that it measures support.

Positives are real answers: the bot (fixture `bot`, the real store over corpus/) answers answerable
questions of evals/gold.jsonl, and each answer is paired with the stories it cites. Each answer is then
perturbed four ways, and every perturbation must score clearly lower than the original:

  numbers    every number in the answer replaced by one the cited stories do not contain
  names      every name in the answer replaced by a company name the cited stories do not mention
  unrelated  as many sentences as the answer has claims, taken from answers about other stories, appended
             with a citation marker (so they cite a real context that does not support them); the score
             can at most halve, which is why the answer is doubled rather than given one extra sentence
  contexts   the answer's citations pointed at the stories another (disjoint) answer cites

"Clearly lower" = mean(original - perturbed) >= 0.3 AND >= 90 % of perturbed answers below their original.

Because extractive answers copy sentences, hand-written paraphrases of corpus facts (positives) and
near-miss edits of them (one wrong number or name; negatives) check that the metric accepts reworded
support and is not just a copy detector.
"""
from __future__ import annotations

import re
import statistics

import pytest

from evals import metrics as M
from evals.gold import CORPUS_GOLD, corpus_story_ids, load_gold
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

N_QUESTIONS = 24
MIN_APPLICABLE = 10
MIN_GAP = 0.3
MIN_BELOW = 0.9
NAME_POOL = ["Samsung", "Tencent", "Baidu", "Siemens", "Toyota", "Salesforce", "Qualcomm", "Netflix", "Sony",
             "Oracle", "IBM", "Intel", "Huawei", "Apple", "Nvidia", "Anthropic"]
_NUM = re.compile(r"(?<![A-Za-z0-9.\[])(\d[\d,]*(?:\.\d+)?)(?![\d\]])")
_MARK = re.compile(r"(\[[^\]]*\])")


# ------------------------------------------------------------------------------------ fixtures

@pytest.fixture(scope="module")
def corpus_stories():
    return corpus_story_ids(ROOT / "corpus")


@pytest.fixture(scope="module")
def metric(corpus_stories):
    from rag.settings import Settings

    known = M.known_names(f"{s.title}. {s.text}" for s in corpus_stories.values())
    return M.Groundedness(embeddings=M.local_embeddings(Settings().embed_model_path()), known=known)


def _context_of(store, story_id: str) -> str:
    row = store.story_row(story_id)
    return M.story_context(row.title, row.text, row.published_at, row.outlets) if row else ""


@pytest.fixture(scope="module")
def positives(bot, metric):
    """(id, answer, cited contexts, cited story ids) for real, non-refused answers."""
    items = [i for i in load_gold(CORPUS_GOLD) if i.answerable and not i.conversation][:N_QUESTIONS]
    out = []
    for it in items:
        a = bot.ask(it.question)
        if a.refused or not a.citations:
            continue
        cites = [c.to_dict() for c in a.citations]
        texts = {c["story_id"]: _context_of(bot.store, c["story_id"]) for c in cites}
        out.append((it.id, a.text, M.cited_contexts(a.text, cites, texts), {c["story_id"] for c in cites}))
    assert len(out) >= MIN_APPLICABLE, f"only {len(out)} answered questions to build controls from"
    metric.prewarm((a, c) for _, a, c, _ in out)
    return out


@pytest.fixture(scope="module")
def original_scores(positives, metric):
    return {pid: metric.score_text(a, c) for pid, a, c, _ in positives}


# -------------------------------------------------------------------------------- perturbations

def swap_numbers(answer: str, contexts: list[str]) -> str | None:
    """Every number outside the [n] markers -> a value none of the cited contexts contains."""
    have = set().union(*(M.number_set(c) for c in contexts if c))

    def rep(m: re.Match) -> str:
        v = M.canonical_number(m.group(1))
        base = float(v)
        for k in range(1, 60):
            cand = base + 7 * k if "." not in v else round(base + 0.7 * k, 2)
            s = M.canonical_number(str(int(cand)) if float(cand).is_integer() else str(cand))
            if s not in have:
                return s
        return m.group(0)

    new = "\n".join("".join(p if _MARK.fullmatch(p) else _NUM.sub(rep, p) for p in _MARK.split(line))
                    for line in answer.split("\n"))
    return new if new != answer else None


def swap_names(answer: str, contexts: list[str], known=frozenset()) -> str | None:
    """Every name the metric checks -> a company name that no cited context mentions."""
    low = "\n".join(contexts).lower()
    pool = [p for p in NAME_POOL if not M.has_name(p, low)]
    found: list[str] = []
    for sent, _ in M.answer_sentences(answer):
        for n in sorted(M.claim_names(sent, known)):
            if n not in found:
                found.append(n)
    if not found or not pool:
        return None
    new = answer
    for i, n in enumerate(found):
        new = re.sub(r"(?<![A-Za-z0-9])" + re.escape(n) + r"(?![A-Za-z0-9])", pool[i % len(pool)], new, flags=re.I)
    return new if new != answer else None


def _others(positives, k):
    """Other answers that cite none of answer k's stories, starting half-way round the list."""
    ids = positives[k][3]
    n = len(positives)
    for j in range(n // 2, n // 2 + n):
        o = positives[(k + j) % n]
        if o[0] != positives[k][0] and not (ids & o[3]):
            yield o


def append_unrelated(positives, k, metric) -> str | None:
    pid, answer, contexts, ids = positives[k]
    n_claims = sum(v.claim for v in metric.explain(answer, contexts))
    first = next((m for m in range(1, len(contexts) + 1) if contexts[m - 1]), None)
    if not n_claims or first is None:
        return None
    for o in _others(positives, k):
        sents = [s for s, _ in M.answer_sentences(o[1]) if M.is_claim(s)]
        if sents:
            extra = [sents[i % len(sents)] for i in range(n_claims)]
            tagged = " ".join(re.sub(r"([.!?…]?)$", lambda m: f" [{first}]{m.group(1) or '.'}", s, count=1) for s in extra)
            return answer + "\n\n" + tagged
    return None


def wrong_contexts(positives, k) -> list[str] | None:
    pid, answer, contexts, ids = positives[k]
    for o in _others(positives, k):
        pool = [c for c in o[2] if c]
        if pool:
            return [pool[m % len(pool)] if c else "" for m, c in enumerate(contexts)]
    return None


def _separation(pairs: list[tuple[float, float]]) -> tuple[float, float]:
    gaps = [o - p for o, p in pairs]
    return statistics.fmean(gaps), sum(p < o for o, p in pairs) / len(pairs)


def _assert_separates(name: str, pairs: list[tuple[float, float]]):
    assert len(pairs) >= MIN_APPLICABLE, f"{name}: only {len(pairs)} answers could be perturbed"
    gap, below = _separation(pairs)
    print(f"\n{name}: n={len(pairs)} mean gap {gap:.3f}, {below:.0%} below original")
    assert gap >= MIN_GAP, f"{name}: mean gap {gap:.3f} < {MIN_GAP}"
    assert below >= MIN_BELOW, f"{name}: only {below:.0%} of perturbed answers scored below the original"


# ------------------------------------------------------------------------------------------ tests

def test_real_answers_are_grounded(positives, original_scores):
    """The controls only mean something if the originals score high."""
    vals = list(original_scores.values())
    print(f"\noriginals: n={len(vals)} mean {statistics.fmean(vals):.3f} min {min(vals):.3f}")
    assert statistics.fmean(vals) >= 0.8


def test_swapped_numbers_score_lower(positives, original_scores, metric):
    pairs = []
    for pid, a, c, _ in positives:
        p = swap_numbers(a, c)
        if p is not None:
            pairs.append((original_scores[pid], metric.score_text(p, c)))
    _assert_separates("numbers", pairs)


def test_substituted_names_score_lower(positives, original_scores, metric):
    pairs = []
    for pid, a, c, _ in positives:
        p = swap_names(a, c, metric.known)
        if p is not None:
            pairs.append((original_scores[pid], metric.score_text(p, c)))
    _assert_separates("names", pairs)


def test_appended_unrelated_sentences_score_lower(positives, original_scores, metric):
    pairs = []
    for k, (pid, a, c, _) in enumerate(positives):
        p = append_unrelated(positives, k, metric)
        if p is not None:
            pairs.append((original_scores[pid], metric.score_text(p, c)))
    _assert_separates("unrelated", pairs)


def test_wrong_contexts_score_lower(positives, original_scores, metric):
    pairs = []
    for k, (pid, a, c, _) in enumerate(positives):
        w = wrong_contexts(positives, k)
        if w is not None:
            pairs.append((original_scores[pid], metric.score_text(a, w)))
    _assert_separates("contexts", pairs)


def test_metric_inside_ragas_evaluate_matches_direct_scores(positives, original_scores, metric):
    """The same numbers come out of ragas.evaluate() (the path `python -m evals` uses)."""
    from ragas.dataset_schema import SingleTurnSample

    sample_set = positives[:3]
    samples = [SingleTurnSample(user_input=pid, response=a, retrieved_contexts=c or [""]) for pid, a, c, _ in sample_set]
    perturbed = [(pid, swap_names(a, c, metric.known), c) for pid, a, c, _ in sample_set]
    samples += [SingleTurnSample(user_input=pid, response=p, retrieved_contexts=c) for pid, p, c in perturbed if p]
    res = M.run_evaluate(samples, [metric], embeddings=metric.embeddings)
    direct = [metric.score_text(s.response, s.retrieved_contexts) for s in samples]
    assert res["groundedness"] == pytest.approx(direct)


# ------------------------------------------------------------------- hand-written paraphrases

PARAPHRASES = [
    # (corpus file, supported paraphrase, near miss with one wrong fact)
    ("2023-11-20-nvidia-announces-h200", "Nvidia's H200 comes with 141 gigabytes of HBM3e memory [1].",
     "Nvidia's H200 comes with 96 gigabytes of HBM3e memory [1]."),
    ("2025-09-05-anthropic-1-5-billion-authors-settlement",
     "Anthropic settled the authors' class action for at least $1.5 billion [1].",
     "Anthropic settled the authors' class action for at least $2.5 billion [1]."),
    ("2026-05-19-meta-layoffs-8000-ai", "Meta started cutting roughly 8,000 jobs in May 2026 [1].",
     "Google started cutting roughly 8,000 jobs in May 2026 [1]."),
    ("2026-05-18-jury-rejects-musk-openai-lawsuit",
     "A jury in Oakland turned down Elon Musk's case against OpenAI [1].",
     "A jury in Oakland turned down Elon Musk's case against Anthropic [1]."),
    ("2025-07-22-alibaba-qwen3-coder",
     "Qwen3-Coder has 480 billion parameters in all, with roughly 35 billion active at a time [1].",
     "Qwen3-Coder has 480 billion parameters in all, with roughly 70 billion active at a time [1]."),
    ("2025-09-12-alibaba-shares-qwen3-next-ai-push",
     "Alibaba's stock rose about 8% on September 12, 2025 after it raised $3.2 billion [1].",
     "Alibaba's stock rose about 18% on September 12, 2025 after it raised $3.2 billion [1]."),
    ("2024-05-13-openai-launches-gpt-4o",
     "GPT-4o can answer spoken questions in about 320 milliseconds on average [1].",
     "GPT-4o can answer spoken questions in about 520 milliseconds on average [1]."),
    ("2025-06-22-tesla-robotaxi-austin-launch", "Tesla charged a flat $4.20 for a robotaxi ride in Austin [1].",
     "Zoox charged a flat $4.20 for a robotaxi ride in Austin [1]."),
]


def test_paraphrases_pass_and_near_misses_fail(metric, corpus_stories):
    ok_pos, ok_neg = 0, 0
    for stem, good, bad in PARAPHRASES:
        s = corpus_stories[stem]
        ctx = [M.story_context(s.title, s.text, s.published_at, s.outlets)]
        g, b = metric.score_text(good, ctx), metric.score_text(bad, ctx)
        ok_pos += g == 1.0
        ok_neg += b == 0.0
        print(f"{stem}: paraphrase {g:.0f} near-miss {b:.0f} :: {metric.explain(good, ctx)[0].reason}")
    assert ok_pos >= len(PARAPHRASES) - 1, "reworded but supported sentences must pass"
    assert ok_neg == len(PARAPHRASES), "a sentence with one wrong number or name must fail"


def test_uncited_and_empty_answers():
    m = M.Groundedness(embeddings=None)
    assert m.score_text("", []) == 0.0                      # nothing checkable: 0, never NaN
    assert m.score_text("OpenAI released GPT-5 in August 2025.", ["OpenAI released GPT-5 in August 2025."]) == 0.0
    verdicts = m.explain("The sources do not mention the price.", [])
    assert verdicts and not verdicts[0].claim                # an abstention is not a claim
