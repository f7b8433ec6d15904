"""Retrieval-augmented answers over AI news, every claim cited to a dated source."""
from rag import offline as _offline  # noqa: F401  (must run before heavy imports)
