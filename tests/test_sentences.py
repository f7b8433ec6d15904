"""rag.text.split_sentences: one splitter for chunking, quoting and verification, so its boundaries matter.

benchmarks/sentence_split.py measures it on the real digest text against pysbd and syntok.
"""
from __future__ import annotations

import pytest

from rag.text import split_sentences


@pytest.mark.parametrize("text,want", [
    ("The lab was founded in 2023. xAI raised $6 billion in May.",
     ["The lab was founded in 2023.", "xAI raised $6 billion in May."]),
    ("Apple reported results on Thursday. iPhone sales fell 3% in China.",
     ["Apple reported results on Thursday.", "iPhone sales fell 3% in China."]),
    ("The paper is out. arXiv lists it under cs.CL. eBay uses it too.",
     ["The paper is out.", "arXiv lists it under cs.CL.", "eBay uses it too."]),
    ("Shares rose (about 8%). iOS 18 ships in June.", ["Shares rose (about 8%).", "iOS 18 ships in June."]),
])
def test_a_sentence_may_start_with_a_lowercase_first_name(text, want):
    assert split_sentences(text) == want


@pytest.mark.parametrize("text", [
    "Microsoft Corp. has added the model to Bing.",
    "Amazon.com Inc. is abandoning its delivery robot.",
    "The U.S. government and the U.K. agreed on 3.2 billion in funding.",
    "Dr. Smith met Mr. Jones on Jan. 5 at No. 10 Downing Street.",
    "It was led by J. R. R. Tolkien fans, e.g. readers of the books.",
])
def test_abbreviations_and_numbers_do_not_end_a_sentence(text):
    assert split_sentences(text) == [text]


def test_paragraphs_always_end_a_sentence():
    assert split_sentences("First line without a stop\n\nsecond paragraph.") == [
        "First line without a stop", "second paragraph."]
