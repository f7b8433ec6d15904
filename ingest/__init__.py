"""Turn news stories in many formats into deduplicated, chunked, embedded records in the store."""
from rag import offline as _offline  # noqa: F401  (must run before heavy imports)
