"""Deterministic follow-up detection and rewriting (rules in rag/followup.py's docstring)."""
from __future__ import annotations

import pytest

from rag.followup import is_followup, rewrite_followup


def turns(*questions: str) -> list[tuple[str, str]]:
    """A history whose answers carry no names, so only the questions can supply a subject."""
    return [(q, "Here is what the sources say.") for q in questions]


NVIDIA_CHIPS = turns("What are Nvidia's latest AI chips?")
NVIDIA_LAST_MONTH = turns("What did Nvidia announce last month?")
QWEN = turns("What is Qwen3-Next?")


# ------------------------------------------------------------------------------------------ detection

@pytest.mark.parametrize("message,history", [
    ("And AMD?", NVIDIA_CHIPS),
    ("and what about AMD?", NVIDIA_CHIPS),
    ("What about pricing?", QWEN),
    ("How about Google's?", NVIDIA_CHIPS),
    ("What of Intel?", NVIDIA_CHIPS),
    ("Same for Meta", NVIDIA_CHIPS),
    ("Compare with AMD", NVIDIA_CHIPS),
    ("Tell me more", QWEN),
    ("When was it released?", QWEN),
    ("Is it open source?", QWEN),
    ("What did they release?", turns("What is OpenAI?")),
    ("What does the company do?", turns("Who acquired Windsurf?")),
    ("How big is the model?", QWEN),
    ("When did that happen?", turns("Did OpenAI release GPT-5?")),
    ("What did he say about GPT-5?", turns("What did Sam Altman say last week?")),
    ("AMD?", NVIDIA_CHIPS),
    ("Anthropic too?", NVIDIA_CHIPS),
    ("Pricing?", QWEN),
    ("Why?", turns("Why did Nvidia's stock fall?")),
    ("Who won?", turns("Which labs competed in the math olympiad?")),
    ("Who is the CEO?", turns("What is Anthropic?")),
    ("And last year?", NVIDIA_LAST_MONTH),
])
def test_followups_are_detected(message, history):
    assert is_followup(message, history) is True


@pytest.mark.parametrize("message", [
    "What is Qwen3-Next?",
    "Who founded Mistral?",
    "What did Meta announce?",
    "What is quantization?",
    "Explain mixture of experts",
    "How does quantization work in practice?",
    "What happened last week?",
    "What's new?",
    "What are the biggest AI stories this week?",
    "Compare GPT-5 and Claude Opus 4.1",
    "Is it true that Nvidia bought Groq?",
    "What did Google DeepMind announce about Gemini 2.5 this week?",
])
def test_self_contained_questions_are_not_followups(message):
    assert is_followup(message, NVIDIA_CHIPS) is False
    assert rewrite_followup(message, NVIDIA_CHIPS) == message


@pytest.mark.parametrize("message", ["And AMD?", "When was it released?", "Why?"])
def test_nothing_is_a_followup_without_history(message):
    assert is_followup(message, []) is False
    assert rewrite_followup(message, []) == message


def test_empty_message_is_not_a_followup():
    assert is_followup("   ", NVIDIA_CHIPS) is False


# ------------------------------------------------------------------------------ rule 1: a new entity

@pytest.mark.parametrize("message,history,expected", [
    ("And AMD?", NVIDIA_CHIPS, "What are AMD's latest AI chips?"),
    ("AMD?", NVIDIA_CHIPS, "What are AMD's latest AI chips?"),
    ("How about Google's?", NVIDIA_CHIPS, "What are Google's latest AI chips?"),
    ("What about AMD and Intel?", NVIDIA_LAST_MONTH, "What did AMD and Intel announce last month?"),
    # the previous question's time phrase is kept when the follow-up has none
    ("And AMD?", NVIDIA_LAST_MONTH, "What did AMD announce last month?"),
    # ... and replaced when it has one
    ("And AMD in 2025?", NVIDIA_LAST_MONTH, "What did AMD announce in 2025?"),
    ("Same for Qwen3-Next-80B-A3B", turns("How fast is GPT-5?"), "How fast is Qwen3-Next-80B-A3B?"),
    ("And the H200?", turns("What did reviewers say about the B200?"), "What did reviewers say about the H200?"),
    # the main entity is the previous question's first name
    ("And DeepSeek?", turns("What did Alibaba announce about Qwen last month?"),
     "What did DeepSeek announce about Qwen last month?"),
    # "compare" adds the new name to the old one instead of replacing it
    ("Compare with AMD", NVIDIA_LAST_MONTH, "What did Nvidia and AMD announce last month?"),
    ("Compare it to AMD", NVIDIA_LAST_MONTH, "What did Nvidia and AMD announce last month?"),
    # a previous question without a name gets the new one in parentheses
    ("And AMD?", turns("What are the latest AI chips?"), "What are the latest AI chips? (AMD)"),
])
def test_new_entity_replaces_the_old_subject(message, history, expected):
    assert rewrite_followup(message, history) == expected


# ---------------------------------------------------------------------------------- rule 2: a new time

@pytest.mark.parametrize("message,history,expected", [
    ("And last year?", NVIDIA_LAST_MONTH, "What did Nvidia announce last year?"),
    ("What about in March 2025?", NVIDIA_LAST_MONTH, "What did Nvidia announce in March 2025?"),
    ("And in 2025?", turns("What did Nvidia announce?"), "What did Nvidia announce in 2025?"),
    ("And this week?", turns("What are Nvidia's latest AI chips?"), "What are Nvidia's latest AI chips this week?"),
])
def test_new_time_replaces_the_old_time(message, history, expected):
    assert rewrite_followup(message, history) == expected


# ------------------------------------------------------------------------------------ rule 3: pronouns

@pytest.mark.parametrize("message,history,expected", [
    ("When was it released?", QWEN, "When was Qwen3-Next released?"),
    ("and when was it released?", QWEN, "When was Qwen3-Next released?"),
    ("Who founded it?", turns("What is Anthropic?"), "Who founded Anthropic?"),
    ("Is it open source?", turns("What is Qwen3-Next-80B-A3B?"), "Is Qwen3-Next-80B-A3B open source?"),
    # "it"/"its"/"the model" point at the last name: the product after its maker
    ("What is its context window?", turns("What did Alibaba announce about Qwen3-Next?"),
     "What is Qwen3-Next's context window?"),
    ("What are the specs of the model?", turns("What did Alibaba announce about Qwen3-Next?"),
     "What are the specs of Qwen3-Next?"),
    # "he/she/the company" point at the first name
    ("What does the company do?", turns("Who acquired Windsurf?"), "What does Windsurf do?"),
    ("And the company's revenue?", turns("What did Alibaba announce about Qwen3-Next?"), "Alibaba's revenue?"),
    ("What did she say?", turns("What did Mira Murati's startup Thinking Machines release?"),
     "What did Mira Murati say?"),
    # a pronoun subject counts even when the follow-up names something else; the time phrase carries over
    ("What did he say about GPT-5?", turns("What did Sam Altman say last week?"),
     "What did Sam Altman say about GPT-5 last week?"),
    # "they" with several names means all of them
    ("How do they compare?", turns("Compare GPT-5 and Claude Opus 4.1"), "How do GPT-5 and Claude Opus 4.1 compare?"),
    # a "when" question asks for the date, so the previous time phrase is not carried over
    ("When did it ship?", turns("What did Nvidia announce last month?"), "When did Nvidia ship?"),
])
def test_pronouns_resolve_to_the_previous_subject(message, history, expected):
    assert rewrite_followup(message, history) == expected


def test_answer_supplies_the_subject_when_the_question_had_none():
    history = [("Which company released the best open model?", "Alibaba released Qwen3-Next [1]. It is fast.")]
    assert rewrite_followup("Is it open source?", history) == "Is Qwen3-Next open source?"


# ------------------------------------------------------------------- rule 4: own entity with own topic

def test_followup_with_its_own_subject_keeps_it_and_inherits_the_time():
    assert rewrite_followup("What about AMD's revenue?", turns("What did Nvidia report last quarter?")) == \
        "What about AMD's revenue last quarter?"


def test_leading_and_is_dropped_from_a_full_question():
    assert rewrite_followup("And what did Google announce at I/O?", turns("What did OpenAI announce last week?")) \
        == "What did Google announce at I/O last week?"


# ------------------------------------------------------------------------ rule 5: append the topic

@pytest.mark.parametrize("message,history,expected", [
    ("What about pricing?", QWEN, "What about pricing? (Qwen3-Next)"),
    ("Pricing?", QWEN, "Pricing? (Qwen3-Next)"),
    ("Who is the CEO?", turns("What is Anthropic?"), "Who is the CEO? (Anthropic)"),
    ("Why?", turns("Why did Nvidia's stock fall last week?"), "Why? (Nvidia's stock fall last week)"),
    ("Tell me more", turns("What did OpenAI release last week?"), "Tell me more (OpenAI release last week)"),
    ("When did that happen?", turns("Did OpenAI release GPT-5?"), "When did that happen? (OpenAI release GPT-5)"),
    # one name and a plural pronoun: "they" is more likely the things asked about than the company
    ("When were they released?", NVIDIA_CHIPS, "When were they released? (Nvidia's latest AI chips)"),
    ("What did they release?", turns("What is OpenAI?"), "What did they release? (OpenAI)"),
])
def test_unresolvable_followups_carry_the_previous_topic(message, history, expected):
    assert rewrite_followup(message, history) == expected


# ------------------------------------------------------------------------- chains: replay the history

def test_three_turn_chain_takes_subject_and_time_from_the_rewritten_turn():
    history = turns("What did Nvidia announce last month?", "And AMD?")
    # the second turn is replayed as "What did AMD announce last month?" first
    assert rewrite_followup("What about Intel?", history) == "What did Intel announce last month?"
    assert rewrite_followup("When did it ship?", history) == "When did AMD ship?"
    assert rewrite_followup("And in 2025?", history) == "What did AMD announce in 2025?"


def test_three_turn_chain_with_a_pronoun_in_the_middle():
    history = turns("What is Qwen3-Next?", "When was it released?")
    # context is "When was Qwen3-Next released?", so "it" still means Qwen3-Next
    assert rewrite_followup("Who made it?", history) == "Who made Qwen3-Next?"
    assert rewrite_followup("And GPT-5?", history) == "When was GPT-5 released?"


def test_chain_through_an_appended_topic():
    history = turns("What are Nvidia's latest AI chips?", "And AMD?", "When were they released?")
    # third turn became "When were they released? (AMD's latest AI chips)"; its main name is AMD
    assert rewrite_followup("What about Intel?", history) == "When were they released? (Intel's latest AI chips)"


def test_a_new_standalone_question_resets_the_chain():
    history = turns("What did Nvidia announce last month?", "And AMD?", "Who founded Mistral?")
    assert rewrite_followup("When was it founded?", history) == "When was Mistral founded?"
    assert rewrite_followup("And Cohere?", history) == "Who founded Cohere?"


def test_only_the_last_turn_is_context():
    history = turns("What is Anthropic?", "What is Qwen3-Next?")
    assert rewrite_followup("Who made it?", history) == "Who made Qwen3-Next?"


# ------------------------------------------------------------------------ trusting an LLM's rewrite

NVIDIA = [("What did Nvidia announce about its latest AI chips last month?", "Nvidia unveiled Rubin GPUs. [1]")]


@pytest.mark.parametrize("candidate, expected", [
    ("What did AMD announce about its latest AI chips last month?",
     "What did AMD announce about its latest AI chips last month?"),
    ('Standalone question: "What did AMD announce about its latest AI chips last month?"',
     "What did AMD announce about its latest AI chips last month?"),
    ("what did AMD announce about AI chips last month?\nExplanation: the user asks about AMD.",
     "What did AMD announce about AI chips last month?"),
])
def test_a_faithful_rewrite_is_accepted_and_cleaned(candidate, expected):
    from rag.followup import accept_condensed

    assert accept_condensed(candidate, "And AMD?", NVIDIA) == expected


@pytest.mark.parametrize("candidate, why", [
    ("", "empty"),
    ("What did Nvidia announce about its latest AI chips last month?", "dropped the message's own name"),
    ("AMD announced the MI400 accelerator with 432 GB of HBM4 memory last month.", "answered instead"),
    ("What did AMD say about its quarterly earnings and stock buyback plans?", "brought in a new subject"),
    ("AMD? Nvidia announced Rubin. AMD announced MI400.", "several sentences"),
    ("What did AMD announce [1]?", "copied a citation marker"),
    ("x" * 400, "too long"),
])
def test_an_untrustworthy_rewrite_is_rejected(candidate, why):
    from rag.followup import accept_condensed

    assert accept_condensed(candidate, "And AMD?", NVIDIA) is None, why


def test_a_rewrite_must_keep_the_messages_time_phrase():
    from rag.followup import accept_condensed

    assert accept_condensed("What did Nvidia announce about its latest AI chips?", "And in 2024?", NVIDIA) is None
    assert accept_condensed("What did Nvidia announce about its AI chips in 2024?", "And in 2024?",
                            NVIDIA) == "What did Nvidia announce about its AI chips in 2024?"


def test_condense_prompt_carries_the_turns_without_citation_markers():
    from rag.prompting import condense_messages

    msgs = condense_messages("And AMD?", NVIDIA * 5)
    user = msgs[-1]["content"]
    assert "[1]" not in user and "Nvidia unveiled Rubin GPUs." in user
    assert user.count("User:") == 3 and user.rstrip().endswith("Standalone question:")
    assert "Last message: And AMD?" in user
