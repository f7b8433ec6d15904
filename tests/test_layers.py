"""Layers point down only: the core under rag/ never imports ingest/, an interface or a web/agent framework.

Read from the source (every import statement, module level or inside a function), so a lazy import
cannot slip past. The interface layer -- rag/interfaces/ (CLI, HTTP API, MCP, the chat UI's rendering), rag/integrations/
and rag/__main__.py -- sits on top and may import anything below it.
"""
import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
INTERFACE_PARTS = {"interfaces", "integrations"}
INTERFACE_FILES = {"__main__.py"}
FORBIDDEN = ("ingest", "app", "rag.interfaces", "rag.integrations", "gradio", "fastapi", "mcp", "uvicorn")


def imported_modules(path: Path) -> set[str]:
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), str(path))):
        if isinstance(node, ast.Import):
            names.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
            names.update(f"{node.module}.{a.name}" for a in node.names)
    return names


def core_files() -> list[Path]:
    out = []
    for p in sorted((ROOT / "rag").rglob("*.py")):
        rel = p.relative_to(ROOT / "rag")
        if rel.parts[0] in INTERFACE_PARTS or (len(rel.parts) == 1 and rel.name in INTERFACE_FILES):
            continue
        out.append(p)
    return out


def test_the_core_imports_no_layer_above_it():
    files = core_files()
    assert len(files) >= 15, "the scan found too few core modules: the layout changed, update this test"
    bad = {}
    for p in files:
        hits = sorted(m for m in imported_modules(p)
                      if any(m == f or m.startswith(f + ".") for f in FORBIDDEN))
        if hits:
            bad[str(p.relative_to(ROOT))] = hits
    assert not bad, f"core modules importing an upper layer: {bad}"


def test_the_scan_catches_a_lazy_import(tmp_path):
    p = tmp_path / "m.py"
    p.write_text("def f():\n    from ingest.chunking import chunk_story\n    import gradio as gr\n")
    assert {"ingest.chunking", "gradio"} <= imported_modules(p)
