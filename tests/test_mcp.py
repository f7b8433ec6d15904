"""The MCP server through the official SDK's own client: `python -m rag mcp` spawned over stdio by
`stdio_client`, driven by `ClientSession`, over the conftest corpus store. Real tools, real answers.
"""
import asyncio
import json
import os
import sys
from datetime import date

import pytest
from mcp import ClientSession, StdioServerParameters
from mcp.client.stdio import stdio_client

from test_app import CONTRACT_KEYS, QWEN_Q, ROOT, UNANSWERABLE_Q


def run_session(store, steps, **env_extra):
    """Start the server, initialise a session, run `steps(session)` and return what it returns."""
    env = {k: v for k, v in os.environ.items() if k.startswith(("NEWSRAG_", "HF_", "TRANSFORMERS_", "TIKTOKEN_"))}
    env.pop("NEWSRAG_STORE_DIR", None)
    env.update({"PYTHONUNBUFFERED": "1", **env_extra})
    params = StdioServerParameters(command=sys.executable, args=["-m", "rag", "mcp", "--store", str(store)],
                                   cwd=str(ROOT), env=env)

    async def main():
        async with stdio_client(params) as (read, write):
            async with ClientSession(read, write) as session:
                await session.initialize()
                return await steps(session)

    return asyncio.run(asyncio.wait_for(main(), timeout=300))


@pytest.fixture(scope="module")
def mcp_results(corpus_store):
    """One server process for the module: every call the tests check, made in one session."""
    async def steps(session):
        out = {"tools": (await session.list_tools()).tools}
        calls = {
            "ask": ("ask_news", {"question": QWEN_Q}),
            "ask_unanswerable": ("ask_news", {"question": UNANSWERABLE_Q}),
            "search": ("search_news", {"query": "Nvidia H200", "k": 3}),
            "search_dated": ("search_news", {"query": "OpenAI", "since": "2025-01-01", "until": "2025-06-30", "k": 5}),
            "search_outlet": ("search_news", {"query": "OpenAI", "outlet": "TechCrunch", "k": 5}),
            "bad_k": ("search_news", {"query": "Nvidia", "k": 500}),
            "bad_date": ("search_news", {"query": "Nvidia", "since": "yesterday-ish"}),
            "empty_question": ("ask_news", {"question": "  "}),
            "long_question": ("ask_news", {"question": "why " * 400}),
            "after_errors": ("ask_news", {"question": "What did Nvidia announce about the H200?"}),
            "brief": ("news_brief", {"period": "2024"}),
            "brief_topic": ("news_brief", {"period": "2025", "topic": "Alibaba"}),
            "bad_period": ("news_brief", {"period": "whenever it suits"}),
        }
        for key, (name, args) in calls.items():
            out[key] = await session.call_tool(name, args)
        return out

    return run_session(corpus_store.store_dir, steps)


def test_tools_are_listed_with_schemas(mcp_results):
    tools = {t.name: t for t in mcp_results["tools"]}
    assert {"search_news", "ask_news", "news_brief"} <= set(tools)
    props = tools["search_news"].input_schema["properties"]
    assert {"query", "since", "until", "outlet", "k"} <= set(props)
    assert tools["search_news"].input_schema["required"] == ["query"]
    assert tools["ask_news"].input_schema["required"] == ["question"]
    assert tools["ask_news"].description and "citation" in tools["ask_news"].description.lower()


def test_ask_news_returns_the_cited_answer_contract(mcp_results):
    r = mcp_results["ask"]
    assert not r.is_error
    d = r.structured_content
    assert CONTRACT_KEYS <= set(d)
    assert d["refused"] is False and d["grounded_ratio"] > 0 and d["citations"]
    for c in d["citations"]:
        assert f"[{c['n']}]" in d["answer"] and c["url"].startswith("http") and c["snippet"]
        date.fromisoformat(c["published_at"])
    assert any("qwen" in c["title"].lower() or "alibaba" in c["title"].lower() for c in d["citations"])
    # the text content carries the same JSON for clients that read text only
    assert json.loads(r.content[0].text) == d


def test_ask_news_refuses_what_the_store_does_not_cover(mcp_results):
    d = mcp_results["ask_unanswerable"].structured_content
    assert d["refused"] is True and d["citations"] == [] and d["related"]


def test_search_news_returns_stories_with_url_and_date(mcp_results):
    d = mcp_results["search"].structured_content
    assert d["relevant"] is True and 1 <= len(d["stories"]) <= 3
    top = d["stories"][0]
    assert "h200" in (top["title"] + top["snippet"]).lower()
    for s in d["stories"]:
        assert s["url"].startswith("http") and s["title"] and s["outlet"] and s["story_id"]
        date.fromisoformat(s["date"])


def test_search_news_filters_by_date_and_outlet(mcp_results):
    dated = mcp_results["search_dated"].structured_content
    assert dated["stories"] and dated["filters"]["since"] == "2025-01-01"
    assert all("2025-01-01" <= s["date"] <= "2025-06-30" for s in dated["stories"])
    outlet = mcp_results["search_outlet"].structured_content
    assert outlet["stories"] and all("TechCrunch" in s["outlets"] for s in outlet["stories"])


@pytest.mark.parametrize("key, needle", [("bad_k", "between 1 and 100"), ("bad_date", "is not a date"),
                                         ("bad_period", "is not a period I can read"),
                                         ("empty_question", "empty"), ("long_question", "the limit is")])
def test_bad_arguments_come_back_as_tool_errors(mcp_results, key, needle):
    r = mcp_results[key]
    assert r.is_error
    text = " ".join(c.text for c in r.content)
    assert needle in text and "Traceback" not in text


def test_news_brief_cites_the_periods_events(mcp_results):
    d = mcp_results["brief"].structured_content
    assert CONTRACT_KEYS <= set(d) and d["refused"] is False and len(d["citations"]) >= 3
    assert all(c["published_at"].startswith("2024") for c in d["citations"])
    topical = mcp_results["brief_topic"].structured_content
    assert topical["citations"] and all(c["published_at"].startswith("2025") for c in topical["citations"])
    assert any("alibaba" in (c["title"] + c["snippet"]).lower() for c in topical["citations"])


def test_the_server_keeps_answering_after_errors(mcp_results):
    r = mcp_results["after_errors"]
    assert not r.is_error and r.structured_content["citations"]


def test_missing_store_fails_with_a_message(tmp_path):
    import subprocess

    p = subprocess.run([sys.executable, "-m", "rag", "mcp", "--store", str(tmp_path / "none")], cwd=ROOT,
                       capture_output=True, text=True, timeout=120, stdin=subprocess.DEVNULL)
    assert p.returncode == 2 and "python -m ingest" in p.stderr and p.stdout == ""


def test_streamable_http_transport_with_bearer_auth(corpus_store, tmp_path):
    """`newsrag mcp --transport streamable-http`: the SDK's HTTP client gets the tools with the key;
    a request without it is refused with 401."""
    import subprocess
    import time

    import httpx
    import httpx2
    from mcp.client.streamable_http import streamable_http_client

    from test_app import free_port

    port, key = free_port(), "mcp-key-42"
    env = {**os.environ, "NEWSRAG_API_KEY": key, "PYTHONUNBUFFERED": "1"}
    env.pop("NEWSRAG_STORE_DIR", None)
    log = open(tmp_path / "mcp.log", "w")
    proc = subprocess.Popen([sys.executable, "-m", "rag", "mcp", "--transport", "streamable-http", "--store",
                             str(corpus_store.store_dir), "--port", str(port)], cwd=ROOT, env=env,
                            stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    url = f"http://127.0.0.1:{port}/mcp"
    try:
        deadline = time.monotonic() + 180
        while True:
            assert proc.poll() is None, (tmp_path / "mcp.log").read_text()
            try:
                r = httpx.post(url, json={}, timeout=5)
                break
            except httpx.TransportError:
                assert time.monotonic() < deadline, "the MCP HTTP server did not start"
                time.sleep(0.5)
        assert r.status_code == 401 and "NEWSRAG_API_KEY" in r.json()["error"]

        async def main():
            async with httpx2.AsyncClient(headers={"Authorization": f"Bearer {key}"}, timeout=120) as hc:
                async with streamable_http_client(url, http_client=hc) as (read, write):
                    async with ClientSession(read, write) as session:
                        await session.initialize()
                        names = {t.name for t in (await session.list_tools()).tools}
                        return names, await session.call_tool("search_news", {"query": "Qwen", "k": 2})

        names, res = asyncio.run(asyncio.wait_for(main(), timeout=240))
        assert {"search_news", "ask_news"} <= names
        assert not res.is_error and len(res.structured_content["stories"]) == 2
        assert any("qwen" in s["title"].lower() for s in res.structured_content["stories"])
    finally:
        proc.terminate()
        try:
            proc.wait(15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(10)
        log.close()
