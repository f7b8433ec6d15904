"""Split a story into chunks the embedder sees whole.

Chunks are packed from whole sentences up to a tiktoken budget, and every chunk's embedded text (its
story's title and date, then the body) is measured with the embedder's own tokenizer: a chunk over the
model's maximum sequence length is split again, because the embedder would silently cut its tail off.
"""
from __future__ import annotations

from functools import lru_cache
from typing import Callable

from rag.records import Chunk, Story
from rag.text import split_sentences

TokenCounter = Callable[[str], int]


@lru_cache(maxsize=1)
def tiktoken_counter() -> TokenCounter:
    import tiktoken

    enc = tiktoken.get_encoding("cl100k_base")
    return lambda text: len(enc.encode(text, disallowed_special=()))


def chunk_header(story: Story) -> str:
    """What every chunk of a story carries for the embedder: the headline and its date."""
    return f"{story.title} ({story.published_at.isoformat()})\n"


def _split_long_sentence(sentence: str, budget: int, count: TokenCounter) -> list[str]:
    words, out, cur = sentence.split(), [], []
    for w in words:
        if cur and count(" ".join(cur + [w])) > budget:
            out.append(" ".join(cur))
            cur = []
        cur.append(w)
    if cur:
        out.append(" ".join(cur))
    return out


def pack_sentences(sentences: list[str], budget: int, min_tokens: int, count: TokenCounter) -> list[str]:
    """Greedy packing on sentence boundaries; a tail under `min_tokens` joins the chunk before it."""
    pieces: list[str] = []
    for s in sentences:
        pieces.extend(_split_long_sentence(s, budget, count) if count(s) > budget else [s])
    chunks: list[list[str]] = []
    cur: list[str] = []
    for p in pieces:
        if cur and count(" ".join(cur + [p])) > budget:
            chunks.append(cur)
            cur = []
        cur.append(p)
    if cur:
        if chunks and count(" ".join(cur)) < min_tokens:
            chunks[-1].extend(cur)
        else:
            chunks.append(cur)
    return [" ".join(c) for c in chunks]


def chunk_story(story: Story, *, budget: int, min_tokens: int, max_embed_tokens: int,
                embed_len: TokenCounter, count: TokenCounter | None = None) -> list[Chunk]:
    """Chunks for one story, each guaranteed to fit the embedder (`embed_len` counts its word pieces)."""
    count = count or tiktoken_counter()
    header = chunk_header(story)
    bodies = pack_sentences(split_sentences(story.text) or [story.title], budget, min_tokens, count)
    fitted: list[str] = []
    queue = list(bodies)
    while queue:
        body = queue.pop(0)
        if embed_len(header + body) <= max_embed_tokens:
            fitted.append(body)
            continue
        sents = split_sentences(body)
        if len(sents) > 1:
            half = len(sents) // 2
            queue[:0] = [" ".join(sents[:half]), " ".join(sents[half:])]
        else:
            ws = body.split()
            if len(ws) < 2:
                raise ValueError(f"story {story.id}: a single word exceeds the embedder's limit")
            queue[:0] = [" ".join(ws[: len(ws) // 2]), " ".join(ws[len(ws) // 2:])]
    return [Chunk(id=f"{story.id}:{i}", story_id=story.id, index=i, text=b, embed_text=header + b,
                  n_tokens=count(b)) for i, b in enumerate(fitted)]
