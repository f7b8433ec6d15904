"""NewsRetriever inside a real llama-index RetrieverQueryEngine, with llama-index's own MockLLM (which
echoes its prompt, so the test can see exactly what the engine handed the LLM). The retrieval is real:
the conftest corpus store, the real embedder, BM25 and the relevance gate.
"""
from datetime import date

import pytest
from llama_index.core.llms import MockLLM
from llama_index.core.query_engine import RetrieverQueryEngine
from llama_index.core.schema import MetadataMode, NodeWithScore, QueryBundle

from rag.integrations.llama_index import NewsRetriever
from test_app import QWEN_Q, UNANSWERABLE_Q


def test_query_engine_answers_from_our_sources(bot):
    engine = RetrieverQueryEngine.from_args(NewsRetriever(bot, k=5), llm=MockLLM())
    response = engine.query(QWEN_Q)
    nodes = response.source_nodes
    assert nodes and all(isinstance(n, NodeWithScore) for n in nodes)
    for n in nodes:
        meta = n.node.metadata
        assert meta["url"].startswith("http") and meta["outlet"] and meta["title"]
        date.fromisoformat(meta["published_at"])
    assert any("qwen" in n.node.metadata["title"].lower() for n in nodes)
    # the same stories newsrag itself retrieves first for the question
    ours = {s.story_id for s in bot.retrieve(QWEN_Q, k=10)}
    assert nodes[0].node.metadata["story_id"] in ours
    # what the LLM was given: each chunk with its title, outlet and date, without our internal ids
    prompt = str(response)
    top = nodes[0].node
    assert top.get_content() in prompt
    assert f"published_at: {top.metadata['published_at']}" in prompt and f"outlet: {top.metadata['outlet']}" in prompt
    assert top.metadata["story_id"] not in prompt
    assert top.get_content(MetadataMode.LLM).startswith("title: ")


def test_unanswerable_question_returns_no_nodes(bot):
    retriever = NewsRetriever(bot)
    assert retriever.retrieve(UNANSWERABLE_Q) == []
    response = RetrieverQueryEngine.from_args(retriever, llm=MockLLM()).query(UNANSWERABLE_Q)
    assert response.source_nodes == [] and str(response) == "Empty Response"


def test_date_and_outlet_filters(bot):
    nodes = NewsRetriever(bot, since=date(2025, 1, 1), until=date(2025, 6, 30)).retrieve("What did OpenAI announce?")
    assert nodes and all("2025-01-01" <= n.node.metadata["published_at"] <= "2025-06-30" for n in nodes)
    nodes = NewsRetriever(bot, outlets=["TechCrunch"]).retrieve(QueryBundle("What did OpenAI announce?"))
    assert nodes and all("TechCrunch" in n.node.metadata["outlets"] for n in nodes)


def test_a_bad_question_raises_the_pipelines_message(bot):
    from rag.pipeline import QuestionError

    with pytest.raises(QuestionError, match="the limit is"):
        NewsRetriever(bot).retrieve("why " * 400)
