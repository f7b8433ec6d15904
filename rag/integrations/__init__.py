"""Adapters that plug newsrag into other frameworks (llama-index). An interface layer: the core never imports it."""
