"""The interface layer: the OpenAI-compatible HTTP API, the MCP server, the command line, the chat UI's
rendering (ui.py) and the web guard in front of the HTTP server (webguard.py); the last two serve app.py.

Layers point down only. These modules sit on top of answering (rag.pipeline) and ingest, and may import
them; nothing in the core (records, text, settings, store, retrieval, generators, pipeline) imports
this package, so the core stays usable without FastAPI, uvicorn or the MCP SDK on the path.
"""
