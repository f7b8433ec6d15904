"""Split a story into chunks the embedder sees whole.

Chunks are packed from whole sentences up to a tiktoken budget, and every chunk's embedded text (its
story's title and date, then the body) is measured with the embedder's own tokenizer: a chunk over the
model's maximum sequence length is split again, because the embedder would silently cut its tail off.
"""
from __future__ import annotations

from typing import Any, Callable

from rag.records import Chunk, Story
from rag.text import normalize_space, split_sentences
from rag.tokens import TokenCounter, tiktoken_counter


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
    """Greedy packing on sentence boundaries; a tail under `min_tokens` joins the chunk before it.

    Each sentence is counted once and a chunk's size is the sum of its sentences' counts: re-counting
    the growing chunk after every sentence made chunking quadratic. tiktoken's count of the joined text
    can differ from the sum by a token where two sentences meet; the budget is a target, and the
    embedder's hard limit is checked exactly afterwards (chunk_stories)."""
    pieces: list[tuple[str, int]] = []
    for s in sentences:
        n = count(s)
        if n > budget:
            pieces.extend((p, count(p)) for p in _split_long_sentence(s, budget, count))
        else:
            pieces.append((s, n))
    chunks: list[list[str]] = []
    cur: list[str] = []
    cur_n = 0
    for p, n in pieces:
        if cur and cur_n + n > budget:
            chunks.append(cur)
            cur, cur_n = [], 0
        cur.append(p)
        cur_n += n
    if cur:
        if chunks and cur_n < min_tokens:
            chunks[-1].extend(cur)
        else:
            chunks.append(cur)
    return [" ".join(c) for c in chunks]


Tokenize = Callable[[list[str]], list[Any]]


def chunk_stories(stories: list[Story], *, budget: int, min_tokens: int, max_embed_tokens: int,
                  tokenize: Tokenize, count: TokenCounter | None = None) -> list[tuple[list[Chunk], list[Any]]]:
    """Chunks for many stories, each proven to fit the embedder, with the word pieces that proved it.

    `tokenize(texts)` returns one encoding per text whose len() is its word pieces including [CLS]/[SEP]
    (Embedder.tokenize). All candidates are tokenized in one batch (the tokenizer runs it on every core),
    and ingest hands the encodings of the chunks that fit straight to the embedder: each chunk is
    tokenized once, not once to check it and again to embed it."""
    count = count or tiktoken_counter()
    headers = [chunk_header(s) for s in stories]
    # Most news stories fit one chunk: the whole text, counted once, needs no sentence splitting. Joining
    # split_sentences' output with spaces gives exactly normalize_space(text), so a story's chunk is the
    # same text either way.
    wholes = [normalize_space(s.text) for s in stories]
    whole_counts = [count(w) for w in wholes]     # (tiktoken's threaded batch measured 2x slower here)
    bodies = [[w] if w and n <= budget else
              pack_sentences(split_sentences(s.text) or [s.title], budget, min_tokens, count)
              for s, w, n in zip(stories, wholes, whole_counts)]
    encodings = iter(tokenize([h + b for h, bs in zip(headers, bodies) for b in bs]))
    fitted_all = [_fit(story, header, [(b, next(encodings)) for b in bs], max_embed_tokens, tokenize)
                  for story, header, bs in zip(stories, headers, bodies)]
    known = dict(zip(wholes, whole_counts))      # chunk text -> tiktoken count
    recount = [b for fitted in fitted_all for b, _ in fitted if b not in known]
    known.update((b, count(b)) for b in recount)
    out = []
    for story, header, fitted in zip(stories, headers, fitted_all):
        chunks = [Chunk(id=f"{story.id}:{i}", story_id=story.id, index=i, text=b, embed_text=header + b,
                        n_tokens=known[b]) for i, (b, _) in enumerate(fitted)]
        out.append((chunks, [e for _, e in fitted]))
    return out


def _fit(story: Story, header: str, queue: list[tuple[str, Any]], max_embed_tokens: int,
         tokenize: Tokenize) -> list[tuple[str, Any]]:
    """Split every body the embedder would cut: in half by sentences, else by words."""
    fitted: list[tuple[str, Any]] = []
    while queue:
        body, enc = queue.pop(0)
        if len(enc) <= max_embed_tokens:
            fitted.append((body, enc))
            continue
        sents = split_sentences(body)
        if len(sents) > 1:
            half = len(sents) // 2
            halves = [" ".join(sents[:half]), " ".join(sents[half:])]
        else:
            ws = body.split()
            if len(ws) < 2:
                raise ValueError(f"story {story.id}: a single word exceeds the embedder's limit")
            halves = [" ".join(ws[: len(ws) // 2]), " ".join(ws[len(ws) // 2:])]
        queue[:0] = list(zip(halves, tokenize([header + h for h in halves])))
    return fitted


def chunk_story(story: Story, *, budget: int, min_tokens: int, max_embed_tokens: int,
                embed_len: TokenCounter, count: TokenCounter | None = None) -> list[Chunk]:
    """Chunks for one story, each guaranteed to fit the embedder (`embed_len` counts its word pieces)."""
    # fitting needs only each encoding's len(): a range of that length stands in for the word pieces
    return chunk_stories([story], budget=budget, min_tokens=min_tokens, max_embed_tokens=max_embed_tokens,
                         tokenize=lambda texts: [range(embed_len(t)) for t in texts], count=count)[0][0]
