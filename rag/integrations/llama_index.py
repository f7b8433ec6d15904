"""NewsRetriever: newsrag's retrieval as a llama-index retriever, for use in your own query engine.

    from llama_index.core.query_engine import RetrieverQueryEngine
    from rag.integrations.llama_index import NewsRetriever

    retriever = NewsRetriever.from_store("store", k=8)
    engine = RetrieverQueryEngine.from_args(retriever, llm=your_llm)
    response = engine.query("What did Alibaba announce about Qwen?")
    [n.node.metadata["url"] for n in response.source_nodes]

What a llama-index user gets that a plain vector retriever does not: dense plus BM25 search fused by
rank, time words in the question ("latest", "last month", "since 2025") turned into date bounds, at
most two chunks per story, and the relevance gate: a question the store cannot answer returns no nodes,
so the engine says it found nothing instead of answering from the nearest unrelated story.
Each node is one chunk of a story; its metadata carries the story's url, outlet, published_at and the
rest of what a citation needs. Scores are our fused ranking scores (higher is better), not cosines.
"""
from __future__ import annotations

from datetime import date
from pathlib import Path
from typing import Any

from llama_index.core.callbacks import CallbackManager
from llama_index.core.retrievers import BaseRetriever
from llama_index.core.schema import NodeWithScore, QueryBundle, TextNode

from rag.records import Filters, Source

# metadata the LLM prompt shows beside the chunk text; the ids and score details stay out of it
_HIDDEN_FROM_LLM = ["story_id", "chunk_id", "outlets", "urls", "tags", "dense_score", "lexical_score"]


def source_node(src: Source) -> NodeWithScore:
    """One retrieved chunk as a llama-index node, with what a citation needs in its metadata."""
    metadata = {"title": src.title, "url": src.url, "outlet": src.outlet,
                "published_at": src.published_at.isoformat(), "story_id": src.story_id,
                "chunk_id": src.chunk_id, "outlets": list(src.outlets), "urls": list(src.urls),
                "tags": list(src.tags)}
    node = TextNode(id_=src.chunk_id, text=src.text, metadata=metadata,
                    excluded_llm_metadata_keys=list(_HIDDEN_FROM_LLM),
                    excluded_embed_metadata_keys=list(_HIDDEN_FROM_LLM))
    return NodeWithScore(node=node, score=float(src.score))


class NewsRetriever(BaseRetriever):
    """A llama-index BaseRetriever over a newsrag store (through a NewsBot, which is thread-safe)."""

    def __init__(self, bot: Any, *, k: int | None = None, since: date | None = None, until: date | None = None,
                 outlets: list[str] | None = None, tags: list[str] | None = None,
                 callback_manager: CallbackManager | None = None, verbose: bool = False):
        self._bot = bot
        self._k = k
        self._filters = Filters(since=since, until=until, outlets=list(outlets or []), tags=list(tags or []))
        super().__init__(callback_manager=callback_manager, verbose=verbose)

    @classmethod
    def from_store(cls, store_dir: str | Path, **kwargs: Any) -> "NewsRetriever":
        """Open the store at `store_dir` (other settings from NEWSRAG_* variables)."""
        from rag.pipeline import NewsBot
        from rag.settings import Settings

        return cls(NewsBot(Settings(store_dir=Path(store_dir))), **kwargs)

    def _retrieve(self, query_bundle: QueryBundle) -> list[NodeWithScore]:
        from rag.pipeline import validate_question

        question = validate_question(query_bundle.query_str, self._bot.settings.max_question_chars)
        r = self._bot.retriever.retrieve(question, k=self._k, filters=self._filters)
        if not r.relevant:
            return []
        return [source_node(s) for s in r.context]
