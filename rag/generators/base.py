"""The generator seam: anything that turns a question and numbered sources into cited prose.

Generators stream text pieces; they never decide what is true. Whatever they produce goes through
rag.verify, which checks every [n] against the source it points to, so a new backend inherits the
same guarantees without any code of its own.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date
from typing import Iterator, Protocol

from rag.records import Source


class GeneratorUnavailable(Exception):
    """The backend could not answer (unreachable, timed out, 5xx, 429 after retries, garbage).

    The pipeline answers extractively instead and shows `reason` as a notice.
    """

    def __init__(self, reason: str):
        super().__init__(reason)
        self.reason = reason


@dataclass
class GenerationRequest:
    question: str                    # the standalone question (follow-ups already rewritten)
    sources: list[Source]            # numbered [1]..[n] in this order
    today: date
    timeline: bool = False           # "timeline of ...", "how did X evolve": dated chronological list
    recency: bool = False            # "latest ...": newest first
    history: list[tuple[str, str]] = field(default_factory=list)  # (user, assistant) turns, oldest first


class Generator(Protocol):
    name: str

    def generate(self, request: GenerationRequest) -> Iterator[str]:
        """Yield the answer text as it is produced; may raise GeneratorUnavailable."""
        ...

    def complete(self, messages: list[dict], *, max_tokens: int) -> str:
        """One short whole reply to chat `messages` (used to rewrite follow-ups); may raise
        GeneratorUnavailable."""
        ...
