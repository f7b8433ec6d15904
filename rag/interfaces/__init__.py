"""The interface layer: the OpenAI-compatible HTTP API, the MCP server and the command line.

Layers point down only. These modules sit on top of answering (rag.pipeline) and ingest, and may import
them; nothing in the core (records, text, settings, store, retrieval, generators, pipeline) imports
this package, so the core stays usable without FastAPI, uvicorn or the MCP SDK on the path.
"""
