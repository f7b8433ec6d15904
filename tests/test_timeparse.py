"""Time language in questions -> inclusive date bounds, always against a pinned `today`.

Most cases run on Friday 2026-05-15 (week of Monday 2026-05-11); edge cases pin their own day.
"""
from __future__ import annotations

from datetime import date

import pytest

from rag.records import Filters
from rag.timeparse import TimeIntent, find_time_phrases, has_recency, parse_time_intent

FRI = date(2026, 5, 15)
D = date


def bounds(question: str, today: date = FRI) -> tuple[date | None, date | None]:
    t = parse_time_intent(question, today)
    return t.since, t.until


# ------------------------------------------------------------------------------------------ hard bounds

@pytest.mark.parametrize("question,since,until", [
    ("What happened today?", D(2026, 5, 15), D(2026, 5, 15)),
    ("What did OpenAI ship yesterday?", D(2026, 5, 14), D(2026, 5, 14)),
    ("What happened the day before yesterday?", D(2026, 5, 13), D(2026, 5, 13)),
    ("AI news this week", D(2026, 5, 11), D(2026, 5, 15)),
    ("What happened last week?", D(2026, 5, 4), D(2026, 5, 10)),
    ("What happened in the past week?", D(2026, 5, 9), D(2026, 5, 15)),
    ("Any funding news over the last 7 days?", D(2026, 5, 9), D(2026, 5, 15)),
    ("What did Google release in the past 10 days?", D(2026, 5, 6), D(2026, 5, 15)),
    ("Robotics news from the last 3 days", D(2026, 5, 13), D(2026, 5, 15)),
    ("Chip news in the past 2 weeks", D(2026, 5, 2), D(2026, 5, 15)),
    ("What happened in the last two weeks?", D(2026, 5, 2), D(2026, 5, 15)),
    ("Any news in the past few days?", D(2026, 5, 13), D(2026, 5, 15)),
    ("What happened over the past 24 hours?", D(2026, 5, 14), D(2026, 5, 15)),
    ("What did Meta do this month?", D(2026, 5, 1), D(2026, 5, 15)),
    ("What did Alibaba announce about Qwen last month?", D(2026, 4, 1), D(2026, 4, 30)),
    ("What happened in the past month?", D(2026, 4, 16), D(2026, 5, 15)),
    ("Funding rounds in the last 3 months", D(2026, 2, 16), D(2026, 5, 15)),
    ("What has Anthropic shipped this year?", D(2026, 1, 1), D(2026, 5, 15)),
    ("What did Nvidia announce last year?", D(2025, 1, 1), D(2025, 12, 31)),
    ("What happened in the past year?", D(2025, 5, 16), D(2026, 5, 15)),
    # "the last year" is the rolling window people mean by it; bare "last year" is the calendar year
    ("What happened in the last year?", D(2025, 5, 16), D(2026, 5, 15)),
    ("Earnings news last quarter", D(2026, 1, 1), D(2026, 3, 31)),
    ("What happened this quarter?", D(2026, 4, 1), D(2026, 5, 15)),
    ("Open models released year to date", D(2026, 1, 1), D(2026, 5, 15)),
    ("What happened in March 2026?", D(2026, 3, 1), D(2026, 3, 31)),
    ("March 2026 chip launches", D(2026, 3, 1), D(2026, 3, 31)),
    ("Which models came out in Jan 2026?", D(2026, 1, 1), D(2026, 1, 31)),
    ("What happened in March?", D(2026, 3, 1), D(2026, 3, 31)),
    ("What happened in May?", D(2026, 5, 1), D(2026, 5, 15)),
    ("What did OpenAI do in 2025?", D(2025, 1, 1), D(2025, 12, 31)),
    ("What has Mistral released since 2025?", D(2025, 1, 1), None),
    ("What has Mistral released since March 2025?", D(2025, 3, 1), None),
    ("What has Mistral released since March 3, 2025?", D(2025, 3, 3), None),
    ("Which labs were founded before 2024?", None, D(2023, 12, 31)),
    ("What happened after June 2025?", D(2025, 7, 1), None),
    ("What happened after December 2025?", D(2026, 1, 1), None),
    ("Any chip news until February 2026?", None, D(2026, 2, 28)),
    ("What has changed since last week?", D(2026, 5, 4), None),
    ("What happened from January 2025 to March 2025?", D(2025, 1, 1), D(2025, 3, 31)),
    ("Chip deals between 2023 and 2025", D(2023, 1, 1), D(2025, 12, 31)),
    ("AI funding 2023-2025", D(2023, 1, 1), D(2025, 12, 31)),
    ("What did Nvidia report in Q3 2025?", D(2025, 7, 1), D(2025, 9, 30)),
    ("What did Nvidia report in the third quarter of 2025?", D(2025, 7, 1), D(2025, 9, 30)),
    ("What did Nvidia report in the 1st quarter of 2026?", D(2026, 1, 1), D(2026, 3, 31)),
    ("What happened in Q4?", D(2025, 10, 1), D(2025, 12, 31)),
    ("Funding in H1 2025", D(2025, 1, 1), D(2025, 6, 30)),
    ("Funding in the second half of 2025", D(2025, 7, 1), D(2025, 12, 31)),
    ("What happened in early 2025?", D(2025, 1, 1), D(2025, 4, 30)),
    ("What happened in mid-2025?", D(2025, 5, 1), D(2025, 8, 31)),
    ("What happened in late 2025?", D(2025, 9, 1), D(2025, 12, 31)),
    ("What happened at the end of 2025?", D(2025, 9, 1), D(2025, 12, 31)),
    ("What happened late last year?", D(2025, 9, 1), D(2025, 12, 31)),
    ("What happened in early March 2026?", D(2026, 3, 1), D(2026, 3, 10)),
    ("What happened earlier this month?", D(2026, 5, 1), D(2026, 5, 15)),
    ("What was announced on 2025-09-12?", D(2025, 9, 12), D(2025, 9, 12)),
    ("What was announced on September 12, 2025?", D(2025, 9, 12), D(2025, 9, 12)),
    ("What was announced on Sept. 12th 2025?", D(2025, 9, 12), D(2025, 9, 12)),
    ("What was announced on 12 September 2025?", D(2025, 9, 12), D(2025, 9, 12)),
    ("What was announced on September 12?", D(2025, 9, 12), D(2025, 9, 12)),
    ("What was announced on May 2?", D(2026, 5, 2), D(2026, 5, 2)),
    ("What happened on Monday?", D(2026, 5, 11), D(2026, 5, 11)),
    ("What happened last Friday?", D(2026, 5, 8), D(2026, 5, 8)),
    ("What changed this past Tuesday?", D(2026, 5, 12), D(2026, 5, 12)),
    ("What did Nvidia say about the H200 in 2025?", D(2025, 1, 1), D(2025, 12, 31)),
    ("In 2025, how much did OpenAI raise?", D(2025, 1, 1), D(2025, 12, 31)),
    ("GPT-4 news in 2023", D(2023, 1, 1), D(2023, 12, 31)),
    ("What did last week's launches include?", D(2026, 5, 4), D(2026, 5, 10)),
])
def test_bounds(question, since, until):
    assert bounds(question) == (since, until)


# -------------------------------------------------------------------------------- edges of week/month/year

@pytest.mark.parametrize("question,today,since,until", [
    # weeks start on Monday
    ("this week", D(2026, 5, 11), D(2026, 5, 11), D(2026, 5, 11)),      # Monday
    ("this week", D(2026, 5, 17), D(2026, 5, 11), D(2026, 5, 17)),      # Sunday
    ("last week", D(2026, 5, 11), D(2026, 5, 4), D(2026, 5, 10)),
    ("last week", D(2026, 5, 17), D(2026, 5, 4), D(2026, 5, 10)),
    ("this week", D(2026, 1, 1), D(2025, 12, 29), D(2026, 1, 1)),       # week spans the new year
    ("last week", D(2026, 1, 1), D(2025, 12, 22), D(2025, 12, 28)),
    ("last Monday", D(2026, 5, 11), D(2026, 5, 4), D(2026, 5, 4)),      # on a Monday: a week ago
    ("on Monday", D(2026, 5, 11), D(2026, 5, 11), D(2026, 5, 11)),
    # months and years roll over
    ("last month", D(2026, 1, 10), D(2025, 12, 1), D(2025, 12, 31)),
    ("last month", D(2026, 3, 31), D(2026, 2, 1), D(2026, 2, 28)),
    ("last month", D(2024, 3, 15), D(2024, 2, 1), D(2024, 2, 29)),      # leap February
    ("past month", D(2026, 3, 31), D(2026, 3, 1), D(2026, 3, 31)),      # Feb 28 + 1 day
    ("this month", D(2026, 2, 1), D(2026, 2, 1), D(2026, 2, 1)),
    ("yesterday", D(2026, 1, 1), D(2025, 12, 31), D(2025, 12, 31)),
    ("this year", D(2026, 1, 1), D(2026, 1, 1), D(2026, 1, 1)),
    ("last year", D(2026, 1, 1), D(2025, 1, 1), D(2025, 12, 31)),
    ("past year", D(2024, 2, 29), D(2023, 3, 1), D(2024, 2, 29)),
    ("last quarter", D(2026, 2, 1), D(2025, 10, 1), D(2025, 12, 31)),
    # a month without a year is the latest one begun by today
    ("What happened in March?", D(2026, 2, 10), D(2025, 3, 1), D(2025, 3, 31)),
    ("What happened in March?", D(2026, 3, 1), D(2026, 3, 1), D(2026, 3, 1)),
    ("What happened in December?", D(2026, 1, 5), D(2025, 12, 1), D(2025, 12, 31)),
    ("What happened in May?", D(2026, 4, 10), D(2025, 5, 1), D(2025, 5, 31)),
    ("What was announced on February 29?", D(2026, 5, 15), D(2024, 2, 29), D(2024, 2, 29)),
    ("What happened last March?", D(2026, 3, 20), D(2025, 3, 1), D(2025, 3, 31)),
    ("What happened last March?", D(2026, 5, 15), D(2026, 3, 1), D(2026, 3, 31)),
    ("in Q1", D(2026, 3, 31), D(2026, 1, 1), D(2026, 3, 31)),
    ("in Q2", D(2026, 3, 31), D(2025, 4, 1), D(2025, 6, 30)),
    # ranges borrow the year they lack from the other end
    ("between March and May 2026", D(2026, 6, 10), D(2026, 3, 1), D(2026, 5, 31)),
    ("between November and February 2026", D(2026, 6, 10), D(2025, 11, 1), D(2026, 2, 28)),
    ("from March 2025 to June", D(2026, 6, 10), D(2025, 3, 1), D(2025, 6, 30)),
    ("between November and February", D(2026, 5, 15), D(2025, 11, 1), D(2026, 2, 28)),
    # upper bounds never pass today
    ("between March and May 2026", D(2026, 5, 15), D(2026, 3, 1), D(2026, 5, 15)),
    ("in 2026", D(2026, 5, 15), D(2026, 1, 1), D(2026, 5, 15)),
])
def test_calendar_edges(question, today, since, until):
    assert bounds(question, today) == (since, until)


# ------------------------------------------------------------------------------------ numbers, not dates

@pytest.mark.parametrize("question", [
    "What is GPT-4?",
    "How fast is Qwen3-Next-80B-A3B?",
    "What does the H200 cost?",
    "Who raised $3.2 billion?",
    "Which model has 2 billion parameters?",
    "Which lab trained on 2048 GPUs?",
    "Who bought 2000 H100 chips?",
    "Which firm hired more than 2000 people?",
    "What did Nvidia report for fiscal 2025?",
    "Is 2,025 tokens per second fast?",
    "Does Llama 3.1 405B beat GPT-4o?",
    "What did Claude 3.5 Sonnet score on SWE-bench?",
    "What scored 2025.5 on the benchmark?",
    "What is OpenAI's plan for 2030?",         # the future is a topic, not a publication date
    "What does Nvidia expect in Q4 2026?",     # starts after today
    "What may happen to OpenAI's board?",      # the verb, not the month
    "What was announced on February 30, 2025?",   # no such day: no filter, and no stray "2025"
    "Which model is the top 2000 on the leaderboard?",
    "What is the state of AI in the 2020s?",
])
def test_numbers_that_are_not_dates(question):
    t = parse_time_intent(question, FRI)
    assert (t.since, t.until, t.phrase, t.spans) == (None, None, None, ())


def test_model_numbers_stay_in_the_query_next_to_a_real_year():
    t = parse_time_intent("What did Nvidia say about the H200 and GPT-4 in 2025?", FRI)
    assert (t.since, t.until, t.phrase) == (D(2025, 1, 1), D(2025, 12, 31), "2025")
    assert t.query == "What did Nvidia say about the H200 and GPT-4"


def test_future_year_after_since_is_not_read_as_a_bare_year():
    assert bounds("What will OpenAI release since 2027?") == (None, None)
    assert bounds("Which plans target before 2030?") == (None, None)


# -------------------------------------------------------------------------------------------- recency

@pytest.mark.parametrize("question", [
    "What are the latest Nvidia chips?",
    "What are Google's newest models?",
    "What is the most recent OpenAI release?",
    "What's new with Anthropic?",
    "What is new in robotics?",
    "Any recent funding rounds?",
    "Who is the current CEO of OpenAI?",
    "What has Meta been doing lately?",
    "What did Apple just announce?",
])
def test_recency_ranks_but_never_filters(question):
    t = parse_time_intent(question, FRI)
    assert t.recency is True
    assert (t.since, t.until) == (None, None)


def test_recency_and_hard_filter_combine():
    t = parse_time_intent("What are the latest Nvidia chips announced this week?", FRI)
    assert t.recency is True
    assert (t.since, t.until) == (D(2026, 5, 11), D(2026, 5, 15))
    assert t.query == "What are the Nvidia chips announced"


def test_no_time_words_means_no_intent():
    t = parse_time_intent("What is Qwen3-Next?", FRI)
    assert t == TimeIntent(since=None, until=None, recency=False, timeline=False,
                           query="What is Qwen3-Next", phrase=None, spans=())
    assert has_recency("What is Qwen3-Next?") is False


# ------------------------------------------------------------------------------------------- timeline

@pytest.mark.parametrize("question,query", [
    ("Give me a timeline of OpenAI's funding", "Give me OpenAI's funding"),
    ("What is the history of DeepMind?", "What is DeepMind"),
    ("How did the OpenAI board saga unfold?", "How did the OpenAI board saga unfold"),
    ("How has Nvidia's data-center business evolved?", "How has Nvidia's data-center business evolved"),
    ("How did Mistral develop its models?", "How did Mistral develop its models"),
    ("Chronology of the Anthropic-Google deal", "the Anthropic-Google deal"),
    ("How did GPU prices change over time?", "How did GPU prices change"),
    ("What was the sequence of events at Stability AI?", "What was the sequence of events at Stability AI"),
])
def test_timeline_questions(question, query):
    t = parse_time_intent(question, FRI)
    assert t.timeline is True
    assert t.query == query
    assert (t.since, t.until) == (None, None)


def test_what_happened_over_a_period_is_a_timeline_with_bounds():
    t = parse_time_intent("What happened with Anthropic over the past year?", FRI)
    assert t.timeline is True
    assert (t.since, t.until) == (D(2025, 5, 16), D(2026, 5, 15))
    assert t.query == "What happened with Anthropic"


def test_from_to_range_is_a_timeline_but_between_is_not():
    assert parse_time_intent("What happened from January 2025 to March 2025?", FRI).timeline is True
    assert parse_time_intent("What happened between January 2025 and March 2025?", FRI).timeline is False


@pytest.mark.parametrize("question", ["What did Nvidia announce last month?", "What is the latest on Qwen?",
                                      "Where did OpenAI's CEO come from?"])
def test_not_timelines(question):
    assert parse_time_intent(question, FRI).timeline is False


# ------------------------------------------------------------------------------ query, phrase and spans

@pytest.mark.parametrize("question,query,phrase", [
    ("What did Alibaba announce about Qwen last month?", "What did Alibaba announce about Qwen", "last month"),
    ("What happened in AI this week?", "What happened in AI", "this week"),
    ("What did OpenAI release in March 2026?", "What did OpenAI release", "March 2026"),
    ("Since March 3, 2025, what has Mistral shipped?", "what has Mistral shipped", "Since March 3, 2025"),
    ("What happened between March and May 2026 at Meta?", "What happened at Meta", "between March and May 2026"),
    ("In 2025, how much did OpenAI raise?", "how much did OpenAI raise", "2025"),
    ("What did last week's launches include?", "What did launches include", "last week"),
    ("What happened in the past year?", "What happened", "the past year"),
    ("What did Nvidia report in Q3 2025?", "What did Nvidia report", "Q3 2025"),
    ("What has changed since 2024 and before 2026?", "What has changed", "since 2024 and before 2026"),
])
def test_query_and_phrase(question, query, phrase):
    t = parse_time_intent(question, FRI)
    assert (t.query, t.phrase) == (query, phrase)


def test_query_falls_back_to_the_question_when_only_time_words_remain():
    assert parse_time_intent("last week", FRI).query == "last week"


def test_spans_point_at_the_removed_words():
    q = "What did Nvidia announce in March 2025 and what about last week?"
    t = parse_time_intent(q, FRI)
    assert [q[s:e] for s, e in t.spans] == ["in March 2025", "last week"]
    # several phrases combine into one envelope rather than the last one winning
    assert (t.since, t.until) == (D(2025, 3, 1), D(2026, 5, 10))
    assert find_time_phrases(q) == list(t.spans)


def test_find_time_phrases_does_not_depend_on_today():
    # a year that is "future" for a live query still counts as time language for follow-up rewriting
    q = "What will happen in 2031?"
    assert find_time_phrases(q) == [(q.index("in 2031"), q.index("?"))]
    assert find_time_phrases("What is GPT-4?") == []


def test_describe_shows_the_dates_a_phrase_became():
    assert parse_time_intent("What did Alibaba announce last month?", FRI).describe() == \
        "last month -> 2026-04-01..2026-04-30"
    assert parse_time_intent("Mistral news since March 2025", FRI).describe() == "since March 2025 -> 2025-03-01.."
    assert parse_time_intent("latest Mistral news", FRI).describe() is None


def test_filters_narrow_the_user_filters_and_keep_the_rest():
    t = parse_time_intent("What did OpenAI do in 2025?", FRI)
    f = t.filters(Filters(since=D(2025, 6, 1), outlets=["The Verge"], tags=["funding"]))
    assert f == Filters(since=D(2025, 6, 1), until=D(2025, 12, 31), outlets=["The Verge"], tags=["funding"])
    assert parse_time_intent("latest OpenAI news", FRI).filters().is_empty()


def test_a_question_dating_two_articles_asks_to_compare_them_not_for_a_timeline():
    today = date(2026, 6, 1)
    two = ("How does what The Verge reported about Copilot in May 2024 compare with the coverage by TechCrunch "
           "of Copilot from July 2025, and what does that say about how the situation developed over time?")
    assert not parse_time_intent(two, today).timeline
    assert parse_time_intent("How has the OpenAI lawsuit developed over time?", today).timeline
    assert parse_time_intent("Timeline of Copilot news in May 2024 and July 2025", today).timeline  # named
    assert parse_time_intent("How did Nvidia's stock evolve from 2023 to 2025?", today).timeline   # a range
