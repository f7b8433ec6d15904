"""rag.verify with the real MiniLM embedder over short news stories written for these tests.

The three stories below are invented for the tests (fictional companies), so nothing a test checks
can be satisfied by the model "knowing" the facts: support has to come from the source text.
"""
from __future__ import annotations

from datetime import date

import pytest

from rag.records import Source
from rag.settings import Settings
from rag.verify import NOTICE_PREFIX, extract_markers, verify_answer

TERN = Source(
    chunk_id="tern:0", story_id="tern", title="Harbor Labs releases its Tern-4 language model",
    text=("Harbor Labs released its Tern-4 language model on March 3, 2025. The model has 12 billion parameters "
          "and was trained on 9 trillion tokens of licensed text. Chief executive Mara Quill said Tern-4 would be "
          "free for academic researchers. Commercial customers will pay per request through the company's cloud "
          "service."),
    published_at=date(2025, 3, 3), outlets=["Coastline Tech Review"], urls=["https://example.test/tern"],
    tags=["models"], chunk_index=0, score=0.9)
VELLUM = Source(
    chunk_id="vellum:0", story_id="vellum", title="Vellum Robotics raises $45 million for warehouse robots",
    text=("Vellum Robotics has raised $45 million in a Series B round led by Northgate Capital. The deal values "
          "the warehouse robot maker at $600 million. Vellum plans to hire 120 engineers in Lisbon over the next "
          "two years. Its robots already sort parcels for three European retailers."),
    published_at=date(2025, 6, 18), outlets=["Ledger Daily"], urls=["https://example.test/vellum"],
    tags=["funding", "robotics"], chunk_index=0, score=0.8)
CORVID = Source(
    chunk_id="corvid:0", story_id="corvid", title="EU opens investigation into Corvid AI's chatbot",
    text=("The European Commission opened an investigation into Corvid AI on July 8, 2025, over how its chatbot "
          "stores conversations from European users. Regulators said the company could face a fine of up to 4 "
          "percent of its global turnover. Corvid AI said it would cooperate fully with the inquiry."),
    published_at=date(2025, 7, 8), outlets=["Brussels Wire"], urls=["https://example.test/corvid"],
    tags=["policy"], chunk_index=0, score=0.7)
SOURCES = [TERN, VELLUM, CORVID]


@pytest.fixture(scope="module")
def embedder():
    from rag.embedder import get_embedder

    return get_embedder(Settings())


@pytest.fixture(scope="module")
def threshold():
    return Settings().support_threshold


def check(embedder, threshold, text, *, strict=False, sources=SOURCES):
    return verify_answer(text, sources, embedder=embedder, threshold=threshold, strict=strict)


# -------------------------------------------------------------------------------- the core promises

def test_correct_cited_answer_passes(embedder, threshold):
    text = ("Harbor Labs released Tern-4 on March 3, 2025 [1]. The model has 12 billion parameters and was "
            "trained on 9 trillion tokens [1]. Vellum Robotics raised $45 million in a Series B round led by "
            "Northgate Capital [2].")
    v = check(embedder, threshold, text)
    assert v.grounded_ratio == 1.0, [(c.sentence, c.reason, c.score) for c in v.checks]
    assert v.unsupported == []
    assert [c.cited for c in v.checks] == [[1], [1], [2]]
    assert all(c.reason == "ok" for c in v.checks)
    assert [c.n for c in v.citations] == [1, 2]
    assert "[1]" in v.text and "[2]" in v.text and "[3]" not in v.text


def test_swapped_number_is_caught(embedder, threshold):
    v = check(embedder, threshold, "The Tern-4 model has 15 billion parameters [1].")
    (c,) = v.checks
    assert not c.supported
    assert "number 15 not in [1]" in c.reason
    assert v.grounded_ratio == 0.0
    assert v.unsupported == ["The Tern-4 model has 15 billion parameters."]
    assert "[1]" not in v.text          # an unsupported sentence keeps no citation it does not deserve
    assert v.citations == []


def test_swapped_valuation_is_caught_even_when_the_number_exists_elsewhere(embedder, threshold):
    # 45 occurs in source [2], but not in [1]: the check is per cited source.
    v = check(embedder, threshold, "Harbor Labs raised $45 million for Tern-4 [1].")
    assert not v.checks[0].supported


def test_substituted_name_is_caught(embedder, threshold):
    v = check(embedder, threshold,
              "Vellum Robotics raised $45 million in a Series B round led by Redwood Partners [2].")
    (c,) = v.checks
    assert not c.supported
    assert "name redwood not in [2]" in c.reason
    assert v.unsupported


def test_substituted_sentence_initial_name_is_caught(embedder, threshold):
    # "Corvid" starts the sentence, but it is a name elsewhere in the sources
    v = check(embedder, threshold, "Corvid AI raised $45 million in a Series B round [2].")
    assert not v.checks[0].supported
    assert "corvid" in v.checks[0].reason


def test_marker_to_missing_source_is_removed(embedder, threshold):
    v = check(embedder, threshold, "Harbor Labs released its Tern-4 language model on March 3, 2025 [9].")
    (c,) = v.checks
    assert "marker [9] points to no source" in c.reason
    assert "[9]" not in v.text
    # the sentence is true, so the source that supports it is cited instead
    assert c.supported and c.cited == [1] and "added [1]" in c.reason
    assert "removed-marker:1" in v.flags


def test_marker_to_wrong_source_is_moved(embedder, threshold):
    v = check(embedder, threshold, "Vellum plans to hire 120 engineers in Lisbon over the next two years [1].")
    (c,) = v.checks
    assert c.supported
    assert c.cited == [2]
    assert c.reason == "moved [1]->[2]"
    assert v.text == "Vellum plans to hire 120 engineers in Lisbon over the next two years [2]."
    assert [x.n for x in v.citations] == [2]


def test_wrong_marker_without_any_support_is_dropped_and_flagged(embedder, threshold):
    v = check(embedder, threshold, "Harbor Labs will open a research office in Tokyo next spring [1].")
    (c,) = v.checks
    assert not c.supported and c.cited == []
    assert "tokyo" in c.reason


def test_uncited_supported_sentence_gets_its_marker(embedder, threshold):
    v = check(embedder, threshold, "Regulators said Corvid AI could face a fine of up to 4 percent of its global turnover.")
    (c,) = v.checks
    assert c.supported and c.cited == [3] and c.reason == "added [3]"
    assert v.text.endswith("[3].")


def test_invented_sentence_is_flagged_then_dropped_in_strict_mode(embedder, threshold):
    text = ("Vellum Robotics raised $45 million in a round led by Northgate Capital [2]. "
            "The company expects its robots to cut delivery costs in half by next summer [2]. "
            "Vellum also bought a drone startup in Finland [2].")
    lenient = check(embedder, threshold, text)
    assert [c.supported for c in lenient.checks] == [True, False, False]
    assert lenient.grounded_ratio == pytest.approx(1 / 3, abs=1e-3)
    assert set(lenient.unsupported) == {
        "The company expects its robots to cut delivery costs in half by next summer.",
        "Vellum also bought a drone startup in Finland."}
    assert "delivery costs" in lenient.text          # kept, without a marker, for the UI to flag

    strict = check(embedder, threshold, text, strict=True)
    assert "delivery costs" not in strict.text and "Finland" not in strict.text
    assert strict.text == "Vellum Robotics raised $45 million in a round led by Northgate Capital [2]."
    assert strict.unsupported == lenient.unsupported
    assert strict.grounded_ratio == lenient.grounded_ratio   # the ratio measures the model, not the filter
    assert any(f.startswith("strict-dropped:2") for f in strict.flags)


def test_paraphrase_still_passes(embedder, threshold):
    text = ("Tern-4, which Harbor Labs launched in March 2025, learned from 9 trillion tokens of licensed "
            "text [1]. Mara Quill said academic researchers could use the new model for free [1]. "
            "Vellum wants to add 120 engineers in Lisbon within two years [2]. "
            "Brussels is investigating how Corvid AI's chatbot keeps European users' conversations [3].")
    v = check(embedder, threshold, text)
    assert v.grounded_ratio == 1.0, [(c.sentence, c.reason, c.score) for c in v.checks]
    assert [c.cited for c in v.checks] == [[1], [1], [2], [3]]


def test_citations_carry_the_supporting_snippet(embedder, threshold):
    text = ("Vellum Robotics is valued at $600 million after the deal [2]. "
            "Corvid AI said it would cooperate fully with the inquiry [3].")
    v = check(embedder, threshold, text)
    by_n = {c.n: c for c in v.citations}
    assert set(by_n) == {2, 3}
    c2 = by_n[2]
    assert c2.snippet == "The deal values the warehouse robot maker at $600 million."
    assert c2.sentence == "Vellum Robotics is valued at $600 million after the deal."
    assert c2.support >= threshold
    assert (c2.story_id, c2.title, c2.outlet, c2.url, c2.published_at) == (
        "vellum", VELLUM.title, "Ledger Daily", VELLUM.url, VELLUM.published_at)
    c3 = by_n[3]
    assert c3.snippet == "Corvid AI said it would cooperate fully with the inquiry."
    for c in v.citations:
        src = SOURCES[c.n - 1]
        assert c.snippet and c.snippet in src.text and c.snippet != src.text  # a span, not the chunk


def test_snippet_spans_two_sentences_when_the_claim_does(embedder, threshold):
    v = check(embedder, threshold,
              "Vellum Robotics raised $45 million and plans to hire 120 engineers in Lisbon [2].")
    (c,) = v.citations
    assert "$45 million" in c.snippet and "120 engineers" in c.snippet
    assert "three European retailers" not in c.snippet


# ------------------------------------------------------------------------------- formats and layout

@pytest.mark.parametrize("text", [
    "Vellum Robotics raised $45 million in a Series B round [1, 2].",
    "Vellum Robotics raised $45 million in a Series B round [1][2].",
    "Vellum Robotics raised $45 million in a Series B round. [1][2]",
    "Vellum Robotics raised $45 million in a Series B round [Source 1, Source 2].",
])
def test_marker_forms(embedder, threshold, text):
    v = check(embedder, threshold, text)
    (c,) = v.checks
    assert c.supported and c.cited == [2], c.reason
    assert v.text == "Vellum Robotics raised $45 million in a Series B round [2]."


def test_marker_on_its_own_line_belongs_to_the_sentence_above(embedder, threshold):
    v = check(embedder, threshold, "Vellum plans to hire 120 engineers in Lisbon.\n[2]")
    assert v.text == "Vellum plans to hire 120 engineers in Lisbon [2]."
    assert v.checks[0].reason == "ok"


def test_extract_markers():
    assert extract_markers("A claim [1, 3] and more [2][3].") == ("A claim and more.", [1, 3, 2])
    assert extract_markers("Range [1-3].") == ("Range.", [1, 2, 3])


def test_sentence_combining_two_sources_keeps_both(embedder, threshold):
    v = check(embedder, threshold,
              "Harbor Labs released Tern-4 in March 2025 [1], while Vellum Robotics raised $45 million [2].")
    (c,) = v.checks
    assert c.supported and sorted(c.cited) == [1, 2], c.reason


def test_timeline_lines_and_dates_from_metadata(embedder, threshold):
    text = ("## Timeline\n"
            "- 2025-03-03: Harbor Labs releases its Tern-4 language model [1]\n"
            "- June 18, 2025: Vellum Robotics raises $45 million for warehouse robots [2]\n"
            "- 2025-07-08: The European Commission opens an investigation into Corvid AI [3]\n"
            "- 2025-08-01: Harbor Labs buys Vellum Robotics [1]")
    v = check(embedder, threshold, text)
    assert [c.supported for c in v.checks] == [True, True, True, False]
    assert v.text.splitlines()[0] == "## Timeline"
    assert v.text.splitlines()[1].startswith("- 2025-03-03: Harbor Labs")
    assert v.text.splitlines()[1].endswith("[1]")
    strict = check(embedder, threshold, text, strict=True)
    assert len(strict.text.splitlines()) == 4 and "buys" not in strict.text


def test_headings_notices_connectives_and_abstentions_do_not_count(embedder, threshold):
    text = (f"{NOTICE_PREFIX} The language model was unavailable.\n"
            "# Answer\n"
            "Here is what I found.\n"
            "Vellum Robotics raised $45 million [2].\n"
            "The sources do not say whether Harbor Labs plans to go public.")
    v = check(embedder, threshold, text)
    counted = [c for c in v.checks if c.counted]
    assert [c.sentence for c in counted] == ["Vellum Robotics raised $45 million."]
    assert v.grounded_ratio == 1.0
    assert v.text.splitlines()[0].startswith(NOTICE_PREFIX)
    assert "The sources do not say whether Harbor Labs plans to go public." in v.text
    assert "abstained" in v.flags


def test_echoed_question_is_not_a_supported_claim(embedder, threshold):
    # SmolLM2 often answers by repeating the question with a marker: that must not count as grounded
    v = check(embedder, threshold, "How much did Vellum Robotics raise in its Series B round [2]?")
    (c,) = v.checks
    assert not c.counted and c.cited == [] and c.reason == "a question, not a claim"
    assert v.grounded_ratio == 0.0 and v.citations == [] and "nothing-checked" in v.flags
    assert "[2]" not in v.text


def test_empty_answer(embedder, threshold):
    v = check(embedder, threshold, "")
    assert v.grounded_ratio == 0.0 and v.checks == [] and v.citations == [] and v.text == ""
    v = check(embedder, threshold, "A claim about Vellum Robotics raising $45 million [1].", sources=[])
    assert v.grounded_ratio == 0.0 and v.unsupported


def test_source_vectors_are_cached_and_batched(embedder, threshold):
    class Counting:
        def __init__(self, inner):
            self.inner, self.calls, self.path = inner, [], inner.path + "#counting"

        def embed(self, texts):
            self.calls.append(len(texts))
            return self.inner.embed(texts)

    counting = Counting(embedder)
    # two reworded claims (a sentence copied from its source needs no vectors: see the tests below)
    text = "Vellum Robotics raised $45 million [2]. Corvid AI said it would fully cooperate with the inquiry [3]."
    verify_answer(text, SOURCES, embedder=counting, threshold=threshold)
    assert len(counting.calls) == 2            # one batch for all source sentences, one for the answer
    counting.calls.clear()
    verify_answer(text, SOURCES, embedder=counting, threshold=threshold)
    assert counting.calls == [2]               # sources come from the cache


def test_one_embedding_batch_per_answer_with_sources_cached(embedder, threshold):
    """Reworded sentences (an LLM's) cost one embedding batch per answer; source sentences are embedded
    once and cached. (Speed itself is measured in benchmarks/latency_bench.py, not here.)"""
    class Counting:
        def __init__(self, inner):
            self.inner, self.path, self.calls = inner, inner.path, []

        def embed(self, texts):
            self.calls.append(len(texts))
            return self.inner.embed(texts)

    sources = [Source(chunk_id=f"{s.chunk_id}-{i}", story_id=s.story_id, title=s.title, text=s.text + " " + s.text,
                      published_at=s.published_at, outlets=s.outlets, urls=s.urls, tags=s.tags, chunk_index=i)
               for i in range(3) for s in SOURCES]
    claims = ["Vellum Robotics raised $45 million in a Series B round [2].",
              "Harbor Labs released Tern-4 on March 3, 2025 [1].",
              "Regulators said Corvid AI could face a fine of up to 4 percent of its turnover [3].",
              "The deal values Vellum Robotics at $600 million [2].",
              "Tern-4 has 12 billion parameters [1].",
              "Corvid AI said it would fully cooperate with the inquiry [3].",
              "Vellum plans to hire 120 engineers in Lisbon [2].",
              "Mara Quill said Tern-4 would be free for academic researchers [1]."]
    text = " ".join(claims)
    counting = Counting(embedder)
    verify_answer(text, sources, embedder=counting, threshold=threshold)   # warm the source cache
    counting.calls = []
    v = verify_answer(text, sources, embedder=counting, threshold=threshold)
    assert v.grounded_ratio == 1.0, [(c.sentence, c.reason) for c in v.checks]
    assert counting.calls == [len(claims)]        # one batch: the answer; sources came from the cache


# ------------------------------------------------------------------- copied sentences (extractive answers)

@pytest.fixture()
def embed_calls(embedder, monkeypatch):
    """Every text the real embedder is asked to embed, call by call."""
    calls: list[list[str]] = []
    real = type(embedder).embed

    def spy(self, texts):
        calls.append(list(texts))
        return real(self, texts)

    monkeypatch.setattr(type(embedder), "embed", spy)
    return calls


COPIED = ("On March 3, 2025, Coastline Tech Review reported: Harbor Labs released its Tern-4 language model on "
          "March 3, 2025. [1] The model has 12 billion parameters and was trained on 9 trillion tokens of licensed "
          "text. [1]\n\n"
          "- 2025-06-18 (Ledger Daily): The deal values the warehouse robot maker at $600 million. [2]\n"
          "- 2025-07-08 (Brussels Wire): Corvid AI said it would cooperate fully with the inquiry. [3]")


def test_copied_sentences_are_supported_without_embedding(embedder, threshold, embed_calls):
    v = check(embedder, threshold, COPIED)
    assert embed_calls == []
    assert v.grounded_ratio == 1.0, [(c.sentence, c.reason) for c in v.checks]
    assert [c.cited for c in v.checks] == [[1], [1], [2], [3]]
    assert all(c.reason == "ok" and c.score == 1.0 for c in v.checks)
    by_n = {c.n: c for c in v.citations}
    assert by_n[1].snippet == "Harbor Labs released its Tern-4 language model on March 3, 2025."
    assert by_n[2].snippet == "The deal values the warehouse robot maker at $600 million."
    assert v.text.splitlines()[2] == ("- 2025-06-18 (Ledger Daily): The deal values the warehouse robot maker "
                                      "at $600 million [2].")


def test_copied_sentence_with_a_wrong_attribution_fails_the_fact_check(embedder, threshold, embed_calls):
    v = check(embedder, threshold, "On June 18, 2025, Coastline Tech Review reported: Harbor Labs released its "
                                   "Tern-4 language model on March 3, 2025. [1]")
    (c,) = v.checks
    assert not c.supported and "number 18 not in [1]" in c.reason
    v = check(embedder, threshold, "- 2025-03-03 (Ledger Daily): The model has 12 billion parameters and was "
                                   "trained on 9 trillion tokens of licensed text. [1]")
    (c,) = v.checks
    assert not c.supported and "name ledger not in [1]" in c.reason


def test_words_added_to_a_copy_send_it_through_the_full_check(embedder, threshold, embed_calls):
    # only the date, the outlet and "reported" may lead a copy: anything else could change the claim
    v = check(embedder, threshold, "Critics doubt that the deal values the warehouse robot maker at $600 million [2].")
    (c,) = v.checks
    assert embed_calls and c.score < 1.0
    embed_calls.clear()
    v = check(embedder, threshold, "Vellum Robotics has raised $45 million in a Series B round [2].")  # a fragment
    assert embed_calls and v.checks[0].score < 1.0


def test_copy_cited_to_the_wrong_source_is_moved_to_the_one_it_copies(embedder, threshold):
    v = check(embedder, threshold, "The deal values the warehouse robot maker at $600 million. [1]")
    (c,) = v.checks
    assert c.supported and c.cited == [2] and c.reason == "moved [1]->[2]" and c.score == 1.0


def test_a_mixed_answer_embeds_only_its_reworded_sentences_in_one_batch(embedder, threshold, embed_calls):
    reworded = "Vellum wants to add 120 engineers in Lisbon within two years [2]."
    v = check(embedder, threshold, COPIED + "\n" + reworded)
    assert v.grounded_ratio == 1.0
    answer_batches = [c for c in embed_calls if "Vellum wants to add 120 engineers in Lisbon within two years." in c]
    assert answer_batches == [["Vellum wants to add 120 engineers in Lisbon within two years."]]
    assert len(embed_calls) <= 2          # that batch, and at most one for the sources' sentences


@pytest.mark.parametrize("question", ["What did Alibaba announce about Qwen3-Next?",
                                      "Timeline of the Musk v. OpenAI lawsuit"])
def test_extractive_answer_embeds_only_its_sentence_pool_once(bot, question, monkeypatch):
    """Verification of an extractive answer runs on copied text and embeds nothing; sentence picking
    embeds its small pool in one batch (timelines none). Besides that, the only model calls are
    retrieval's, one text each (a spy around the real embedder)."""
    calls: list[list[str]] = []
    real = type(bot.embedder).embed

    def spy(self, texts):
        calls.append(list(texts))
        return real(self, texts)

    monkeypatch.setattr(type(bot.embedder), "embed", spy)
    a = bot.ask(question)
    assert not a.refused and a.citations and a.grounded_ratio == 1.0, a.text
    batches = [c for c in calls if len(c) > 1]
    assert all(len(c) == 1 for c in calls if c not in batches), calls
    if bot.retriever.retrieve(question).intent.timeline:
        assert not batches, batches
    else:
        assert len(batches) <= 1 and all(len(b) <= bot.extractive.pool_size for b in batches), batches
    assert all(c.support == 1.0 for c in a.citations)
