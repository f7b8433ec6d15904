"""Answer generators behind one interface: `extractive` (default, no LLM), `openai`, `llamacpp`."""
from rag.generators.base import Generator, GeneratorUnavailable, GenerationRequest  # noqa: F401
