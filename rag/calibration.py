"""Every fitted constant of the answering path, each beside the script that fitted it.

Decisions are learned on the question bank's train/dev splits (evals/bank/) or on development data, never on
what the README reports; re-run the named script rather than editing a number here by hand. The
answerability model is machine-written to calibration.json beside this file by `python -m evals.calibrate`.
"""
from __future__ import annotations

from pathlib import Path

# ---- whether to answer (rag/answerability.py) and the ranking boosts (rag/retrieval.py)
# calibration.json holds the answerability model, written by `python -m evals.calibrate`, and under
# "ranking" the boosts for rare-word coverage, described dates and named outlets, written by
#   python benchmarks/fit_ranking.py --store DIGESTS_STORE --split train --every 6 --write
ANSWERABILITY_FILE = Path(__file__).resolve().parent / "calibration.json"

# ---- the extractive answer's composition (rag/generators/extractive.py)
# The scoring weights are fitted by
#   python benchmarks/fit_composition.py --store DIGESTS_STORE --gold evals/bank/train.jsonl \
#       --gold evals/bank/dev.jsonl --only-store digests --every 12 --corpus-store CORPUS_STORE
# (190 answerable train/dev questions of both stores; the answer's first sentence is from a gold story
# for 0.811 of them). The question's own cosine got weight 0 there: the bank's template questions are
# keyword lists, and the story's rank already carries their meaning.
COMPOSITION = {
    "lexical": 0.55,          # base score = lexical * rare-word coverage + prior * story dense score
    "prior": 0.20,            #   + rank * 1/(the story's rank in the context) + lead * (story's first sentence)
    "rank": 0.50,
    "lead": 0.10,
    "semantic": 0.0,          # final = (1 - semantic) * base + semantic * cosine(sentence, question) ...
    "cue": 0.10,              # ... + cue when the sentence holds what the question type asks for
    # Another story joins when its best sentence's content score (without the story's rank) is >= bar *
    # the best one's. Fitted by the same script with --bars (466 train/dev questions, 134 with a key
    # fact, 67 with several gold stories): key fact in the answer 0.948 at 0.6-0.9 (0.925 at 1.0), and
    # of those 0.9 cites the fewest stories that are not gold (F1 0.721). Comparisons still get a
    # sentence per subject.
    "other_story_bar": 0.90,
    # Not fitted: train/dev hold no "latest" questions.
    "recency_bar": 0.75,      # "latest": the newest story whose story relevance >= bar * the best story's
}


# ---- long questions (rag/retrieval.py clause_queries): a question of at least min_words words is also
# searched in windows of `width` words every `stride` words, each window fusing `candidates` dense and BM25
# hits. Chosen by
#   python benchmarks/fit_clauses.py --store DIGESTS_STORE --split dev
# (the bank's dev multi-story questions with every gold story in the top 10: 0.951, 0.918 without windows;
# among settings within a question of the best, the one with the fewest searches).
CLAUSES = {"min_words": 25, "width": 14, "stride": 14, "candidates": 30}

# ---- event grouping for briefs and overviews (rag/briefs.py)
# Fitted by scripts/calibrate_events.py on the Last Week in AI digests store (development months 2023-2024:
# the brief's top event is one of the month's 3 most-covered 0.917 of the time; test months 0.951; see its
# docstring for the grid). Two stories report one event when published within EVENT_DAYS of each other
# and the cosine of their first chunks' vectors is at least SAME_EVENT_COSINE, or at least
# NAMED_EVENT_COSINE when their headlines also share a name (a company, a model): a middling cosine alone
# joins stories that merely share a subject.
EVENT_DAYS = 4
SAME_EVENT_COSINE = 0.75
NAMED_EVENT_COSINE = 0.70
