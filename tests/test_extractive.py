"""The extractive generator's composition, on hand-written sources with the real embedder.

Answer first, other stories only when they answer nearly as well, no sentence quoted without the one it
leans on, "latest" led by the newest relevant story, each subject of a comparison covered.
"""
from __future__ import annotations

from datetime import date

import pytest

from rag.generators.base import GenerationRequest
from rag.generators.extractive import ExtractiveGenerator, answers_kind, leans_on_previous, question_kind
from rag.records import Source
from rag.settings import Settings
from rag.verify import extract_markers


@pytest.fixture(scope="module")
def gen():
    from rag.embedder import get_embedder

    return ExtractiveGenerator(get_embedder(Settings()))


def src(n: int, title: str, text: str, day: date, dense: float = 0.6, outlet: str = "Example News") -> Source:
    return Source(chunk_id=f"c{n}", story_id=f"s{n}", title=title, text=text, published_at=day, outlets=[outlet],
                  urls=[f"https://example.com/{n}"], tags=[], chunk_index=0, score=1.0 / n, dense_score=dense)


VELLUM = src(1, "Vellum raises funding for warehouse robots",
             "Vellum Robotics, a startup that builds warehouse robots, said on Tuesday it has a new investor. "
             "The startup has shipped robots to forty warehouses in Portugal and Spain. "
             "Vellum raised $85 million in a Series B round, the company said. "
             "The funding, led by Harbor Ventures, will pay for a factory in Lisbon. "
             "Its chief executive, Ana Ribeiro, said the robots would reach Germany next year.",
             date(2026, 3, 3), dense=0.70)
OTHER = src(2, "Robot makers court logistics firms",
            "Several robot makers pitched logistics firms at a trade fair in Munich this week. "
            "Visitors watched demonstrations of picking arms and mobile shelves from many vendors. "
            "Organisers counted more than two hundred exhibitors across three halls.",
            date(2026, 3, 1), dense=0.45)


def sentences(answer: str) -> list[str]:
    out = []
    for para in answer.split("\n\n"):
        body = para.split(" reported: ", 1)[-1]
        out += [extract_markers(s + "]")[0].strip() for s in body.split("] ") if s.strip()]
    return out


def test_the_first_sentence_is_the_one_that_answers(gen):
    q = "How much did Vellum raise?"
    text = gen.compose(GenerationRequest(question=q, sources=[VELLUM, OTHER], today=date(2026, 6, 1)))
    first = sentences(text)[0]
    assert "$85 million" in first, text
    assert "[2]" not in text, "a story that does not answer was added: " + text


def test_a_sentence_that_leans_on_the_previous_one_brings_it_along(gen):
    q = "Who led the Vellum funding that pays for the Lisbon factory?"
    text = gen.compose(GenerationRequest(question=q, sources=[VELLUM], today=date(2026, 6, 1)))
    sents = sentences(text)
    assert any("Harbor Ventures" in s for s in sents), text
    i = next(i for i, s in enumerate(sents) if "Harbor Ventures" in s)
    assert i > 0 and "$85 million" in sents[i - 1], "the funding sentence must follow what it refers to: " + text


def test_a_leaning_sentence_without_its_antecedent_is_not_quoted(gen):
    chunk = src(3, "Vellum raises funding for warehouse robots",
                "The funding, led by Harbor Ventures, will pay for a factory in Lisbon. "
                "Vellum Robotics plans to hire engineers for the factory in Lisbon next year.",
                date(2026, 3, 3), dense=0.7)
    chunk.chunk_index = 1                      # a later chunk: its first sentence's antecedent is not here
    text = gen.compose(GenerationRequest(question="Who led the funding for the Lisbon factory?", sources=[chunk],
                                         today=date(2026, 6, 1)))
    assert "Harbor Ventures" not in text and "Vellum Robotics plans" in text, text


def test_latest_leads_with_the_newest_relevant_story(gen):
    old = src(1, "Vellum raises Series A", "Tagus Capital put $20 million into Vellum Robotics in January 2025, "
              "the first outside funding for the warehouse robot maker.", date(2025, 1, 10), dense=0.72)
    new = src(2, "Vellum raises Series B", "Vellum Robotics raised $85 million for its warehouse robots in a "
              "Series B round led by Harbor Ventures.", date(2026, 3, 3), dense=0.66)
    unrelated = src(3, "A new chess engine", "A chess engine written by students beat a grandmaster in a "
                    "blitz match held in Oslo on Sunday.", date(2026, 5, 1), dense=0.2)
    req = GenerationRequest(question="What is the latest funding news about Vellum Robotics?",
                            sources=[old, new, unrelated], today=date(2026, 6, 1), recency=True)
    text = gen.compose(req)
    assert text.startswith("On March 3, 2026") and "[3]" not in text, text
    assert "[1]" in text and text.index("[2]") < text.index("[1]"), text


def test_a_comparison_covers_each_subject(gen):
    a = src(1, "Nvidia unveils a chip", "Nvidia unveiled the Vera accelerator with 288 gigabytes of memory. "
            "Nvidia said the Vera chip ships to cloud providers in the autumn. "
            "Nvidia also showed a networking switch for its data center racks.", date(2026, 3, 16), dense=0.7)
    b = src(2, "AMD unveils a chip", "AMD unveiled the MI500 accelerator, which it says trains models faster "
            "than its previous generation.", date(2026, 3, 20), dense=0.5)
    req = GenerationRequest(question="Compare Nvidia's and AMD's new AI chips", sources=[a, b], today=date(2026, 6, 1))
    text = gen.compose(req)
    assert "Nvidia" in text and "AMD" in text and "[1]" in text and "[2]" in text, text


def test_a_filtered_sentence_is_never_quoted():
    class NoFunding(ExtractiveGenerator):
        def usable(self, sentence, terms):
            return super().usable(sentence, terms) and "raised" not in sentence

    text = NoFunding(None).compose(GenerationRequest(question="How much did Vellum raise?", sources=[VELLUM],
                                                     today=date(2026, 6, 1)))
    assert text and "$85 million" not in text, text


@pytest.mark.parametrize("question,kind", [
    ("How much did Vellum raise?", "amount"), ("How many robots did it ship?", "amount"),
    ("When did Vellum open its factory?", "date"), ("On what date was the round announced?", "date"),
    ("Who leads Vellum?", "person"), ("Where will the factory be built?", "place"),
    ("What does Vellum build?", None), ("Why did Vellum raise money?", None),
])
def test_question_kinds(question, kind):
    assert question_kind(question) == kind


def test_answer_cues_and_leaning_sentences():
    assert answers_kind("Vellum raised $85 million.", "amount") and not answers_kind("Vellum raised money.", "amount")
    assert answers_kind("The round closed on March 3, 2026.", "date") and not answers_kind("The round closed.", "date")
    assert answers_kind("Its chief executive, Ana Ribeiro, spoke.", "person")
    assert not answers_kind("The factory will make robots.", "person")
    assert leans_on_previous("It also raised money.") and leans_on_previous("The funding, led by X, closed.")
    assert not leans_on_previous("The European Union agreed.") and not leans_on_previous("Italy banned it.")
