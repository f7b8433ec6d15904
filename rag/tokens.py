"""Token counting shared by ingest (chunk budgets) and answering (fitting a prompt to a model's window).

It lives in the core so that rag/ never reaches into ingest/ for it: both sides count with the same
tiktoken encoding, so a chunk that fits its budget at ingest is the size the prompt builder expects.
"""
from __future__ import annotations

from functools import lru_cache
from typing import Callable

TokenCounter = Callable[[str], int]


@lru_cache(maxsize=1)
def _cl100k():
    import tiktoken

    return tiktoken.get_encoding("cl100k_base")


def tiktoken_counter() -> TokenCounter:
    """Tokens of a text as tiktoken's cl100k counts them, special-token text counted as plain text."""
    enc = _cl100k()
    return lambda text: len(enc.encode_ordinary(text))
