"""The OpenAI-compatible API, through the official `openai` client, against real running servers:
`python -m rag serve` in a subprocess (with NEWSRAG_API_KEY set) and the Gradio app (`corpus_app`), both
over the conftest corpus store. Nothing is mocked: the answers are the real extractive, verified ones.
"""
import json
import re
import subprocess
import sys
import time
import urllib.error
import urllib.request
from datetime import date

import httpx
import openai
import pytest

from tests.llm_server import llama_server  # noqa: F401  (pytest fixture)
from test_app import (AUTH, QWEN_Q, ROOT, UNANSWERABLE_Q, app_env, corpus_app, end_process,  # noqa: F401
                      first_start_app, free_port)

API_KEY = "test-key-7f3a"
MARKER = re.compile(r"\[(\d+)\]")


class ServeProcess:
    def __init__(self, store, log_path, env_extra):
        self.port = free_port()
        self.base_url = f"http://127.0.0.1:{self.port}/v1"
        self.log_path = log_path
        self._log = open(log_path, "w", encoding="utf-8")
        env = app_env(log_path.parent / "feedback.jsonl", **env_extra)
        self.proc = subprocess.Popen([sys.executable, "-m", "rag", "serve", "--store", str(store),
                                      "--port", str(self.port)], cwd=ROOT, env=env, stdout=self._log,
                                     stderr=subprocess.STDOUT, start_new_session=True)

    def wait_ready(self, timeout=300):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"serve exited with {self.proc.returncode}:\n{self.log_path.read_text()[-3000:]}")
            try:
                urllib.request.urlopen(self.base_url.removesuffix("/v1") + "/healthz", timeout=5).close()
                return self
            except (urllib.error.URLError, OSError):
                time.sleep(0.5)
        raise RuntimeError(f"serve not ready after {timeout}s:\n{self.log_path.read_text()[-3000:]}")

    def stop(self):
        end_process(self.proc)
        self._log.close()


@pytest.fixture(scope="module")
def serve(corpus_store, tmp_path_factory):
    d = tmp_path_factory.mktemp("serve")
    srv = ServeProcess(corpus_store.store_dir, d / "serve.log", {"NEWSRAG_API_KEY": API_KEY})
    try:
        yield srv.wait_ready()
    finally:
        srv.stop()


@pytest.fixture(scope="module")
def client(serve):
    return openai.OpenAI(base_url=serve.base_url, api_key=API_KEY, max_retries=0, timeout=120)


def check_cited(content: str, extra: dict) -> None:
    """The Perplexity convention: marker [i] is citations[i-1] and search_results[i-1], numbered in
    reading order, and every citation is used."""
    markers = [int(n) for n in MARKER.findall(content)]
    first_seen = list(dict.fromkeys(markers))
    assert first_seen == list(range(1, len(extra["citations"]) + 1)), (first_seen, extra["citations"])
    assert len(extra["search_results"]) == len(extra["citations"])
    for url, sr in zip(extra["citations"], extra["search_results"]):
        assert sr["url"] == url and url.startswith(("http://", "https://"))
        assert sr["title"] and sr["snippet"] and sr["outlet"]
        date.fromisoformat(sr["date"])


def test_non_streamed_answer_has_cited_content_and_citations(client, bot):
    r = client.chat.completions.create(model="newsrag", messages=[{"role": "user", "content": QWEN_Q}])
    msg = r.choices[0].message
    assert r.object == "chat.completion" and r.model == "newsrag" and r.choices[0].finish_reason == "stop"
    assert msg.role == "assistant" and msg.content
    extra = r.model_extra
    assert extra["refused"] is False and extra["grounded_ratio"] > 0
    check_cited(msg.content, extra)
    assert any("qwen" in sr["title"].lower() or "alibaba" in sr["title"].lower() for sr in extra["search_results"])
    # the same stories the JSON contract cites for the same question on the same store
    from rag.records import answer_to_dict

    d = answer_to_dict(bot.ask(QWEN_Q))
    assert sorted(extra["citations"]) == sorted(c["url"] for c in d["citations"])
    assert MARKER.sub("", msg.content) == MARKER.sub("", d["answer"])
    assert r.usage.completion_tokens > 0 and r.usage.total_tokens == r.usage.prompt_tokens + r.usage.completion_tokens


def test_streamed_answer_carries_citations_on_the_final_chunk(client):
    plain = client.chat.completions.create(model="newsrag", messages=[{"role": "user", "content": QWEN_Q}])
    chunks = list(client.chat.completions.create(model="newsrag", messages=[{"role": "user", "content": QWEN_Q}],
                                                 stream=True, stream_options={"include_usage": True}))
    assert chunks[0].choices[0].delta.role == "assistant"
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == plain.choices[0].message.content
    assert len([c for c in chunks if c.choices and c.choices[0].delta.content]) > 1, "the text comes in pieces"
    finals = [c for c in chunks if c.choices and c.choices[0].finish_reason]
    assert len(finals) == 1 and finals[0].choices[0].finish_reason == "stop"
    extra = finals[0].model_extra
    check_cited(text, extra)
    assert extra["citations"] == plain.model_extra["citations"]
    assert all("citations" not in (c.model_extra or {}) for c in chunks if c is not finals[0])
    assert chunks[-1].choices == [] and chunks[-1].usage.completion_tokens > 0


def test_earlier_messages_make_a_follow_up(client):
    first = client.chat.completions.create(
        model="newsrag", messages=[{"role": "user", "content": "What are Nvidia's latest AI chips?"}])
    follow = client.chat.completions.create(model="newsrag", messages=[
        {"role": "system", "content": "You are a helpful assistant."},
        {"role": "user", "content": "What are Nvidia's latest AI chips?"},
        {"role": "assistant", "content": first.choices[0].message.content},
        {"role": "user", "content": "And AMD?"}])
    extra = follow.model_extra
    assert any(n.startswith("Read as a follow-up") and "AMD" in n for n in extra["notices"]), extra["notices"]
    assert not extra["refused"]
    assert any("amd" in (sr["title"] + sr["snippet"]).lower() for sr in extra["search_results"])


def test_unanswerable_question_is_refused_with_related_reading(client):
    r = client.chat.completions.create(model="newsrag", messages=[{"role": "user", "content": UNANSWERABLE_Q}])
    extra = r.model_extra
    assert extra["refused"] is True and extra["citations"] == [] and extra["search_results"] == []
    assert extra["related"] and all(s["url"] and s["date"] for s in extra["related"])
    assert "doesn't cover" in r.choices[0].message.content


def test_models_lists_newsrag(client):
    models = client.models.list()
    assert [m.id for m in models.data] == ["newsrag"]
    assert client.models.retrieve("newsrag").id == "newsrag"
    with pytest.raises(openai.NotFoundError):
        client.models.retrieve("gpt-4o")


def test_bearer_token_is_required_when_configured(serve):
    bad = openai.OpenAI(base_url=serve.base_url, api_key="wrong", max_retries=0)
    with pytest.raises(openai.AuthenticationError) as exc:
        bad.chat.completions.create(model="newsrag", messages=[{"role": "user", "content": QWEN_Q}])
    assert exc.value.status_code == 401 and exc.value.code == "invalid_api_key"
    with pytest.raises(openai.AuthenticationError):
        bad.models.list()


@pytest.mark.parametrize("kwargs, needle", [
    ({"model": "gpt-4o"}, "does not exist"),
    ({"messages": [{"role": "user", "content": "x" * 5000}]}, "the limit is"),
    ({"messages": [{"role": "user", "content": "   "}]}, "empty"),
    ({"messages": [{"role": "user", "content": "hi"}] * 65}, "the limit is 64"),
    ({"messages": [{"role": "user", "content": "What about Qwen?"}, {"role": "assistant", "content": "x"}]},
     "last message must be the user's question"),
    ({"messages": [{"role": "user", "content": [{"type": "image_url", "image_url": {"url": "http://x/a.png"}}]}]},
     "reads text only"),
    ({"n": 2}, "'n'"),
    ({"temperature": 7}, "'temperature'"),
    ({"extra_body": {"since": "2026-02-30"}}, "is not a date for 'since'"),
    ({"extra_body": {"since": "2026-05-01", "until": "2026-01-01"}}, "date range is empty"),
    ({"extra_body": {"outlets": ["x" * 500]}}, "the limit is 200"),
    ({"extra_body": {"outlets": [f"o{i}" for i in range(60)]}}, "Too many outlets"),
    ({"messages": [{"role": "user", "content": "What about Nvidia?"}, {"role": "assistant", "content": "x"}] * 25
      + [{"role": "user", "content": "And AMD?"}]}, "25 turns; the limit is 20"),
    ({"model": "m" * 200}, "'model'"),
])
def test_bad_requests_get_openai_errors(client, kwargs, needle):
    args = {"model": "newsrag", "messages": [{"role": "user", "content": QWEN_Q}], **kwargs}
    with pytest.raises(openai.APIStatusError) as exc:
        client.chat.completions.create(**args)
    assert exc.value.status_code in (400, 404)
    body = exc.value.body
    assert needle in body["message"], body
    assert body["type"] == "invalid_request_error" and "Traceback" not in body["message"]


def test_oversized_and_malformed_bodies_get_json_errors_and_the_server_keeps_serving(serve, client):
    headers = {"Authorization": f"Bearer {API_KEY}", "Content-Type": "application/json"}
    url = serve.base_url + "/chat/completions"
    big = json.dumps({"model": "newsrag", "messages": [{"role": "user", "content": "a" * 1_200_000}]})
    for body, status, needle in [(big, 413, "limit"), ("{not json", 400, "not valid JSON"),
                                 ("[" * 100_000 + "]" * 100_000, 400, "not valid JSON"), ("[1, 2]", 400, "JSON object")]:
        r = httpx.post(url, content=body, headers=headers, timeout=60)
        assert r.status_code == status, r.text
        assert needle in r.json()["error"]["message"]
    assert client.models.list().data[0].id == "newsrag"


def test_the_app_serves_a_streamed_cited_answer(corpus_app):
    """The Gradio app mounts the same API: the openai client streams a cited answer from it."""
    client = openai.OpenAI(base_url=corpus_app.url + "v1", api_key="unused", max_retries=0, timeout=120)
    chunks = list(client.chat.completions.create(model="newsrag", stream=True,
                                                 messages=[{"role": "user", "content": QWEN_Q}]))
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    final = [c for c in chunks if c.choices and c.choices[0].finish_reason == "stop"]
    assert len(final) == 1
    check_cited(text, final[0].model_extra)
    assert final[0].model_extra["citations"] and final[0].model_extra["refused"] is False
    # the UI's own API still answers beside it
    assert urllib.request.urlopen(corpus_app.url + "gradio_api/info", timeout=30).status == 200


def test_the_apps_login_guards_the_api_too(first_start_app):
    """With the app's login on (and no API key), /v1 needs the login: HTTP Basic with its user and password
    (rag.interfaces.webguard turns it into the login session) is answered, a request without it gets OpenAI's 401."""
    url = first_start_app.url + "v1/chat/completions"
    body = {"model": "newsrag", "messages": [{"role": "user", "content": "What did DeepMind's AlphaFold do at CASP14?"}]}
    r = httpx.post(url, json=body, timeout=120)
    assert r.status_code == 401 and r.json()["error"]["code"] == "invalid_api_key"
    assert httpx.get(first_start_app.url + "v1/models", timeout=30).status_code == 401
    r = httpx.post(url, json=body, auth=AUTH, timeout=120)
    assert r.status_code == 200, r.text
    d = r.json()
    assert d["refused"] is False and any("alphafold" in s["title"].lower() for s in d["search_results"])
    check_cited(d["choices"][0]["message"]["content"], d)


def test_serve_fails_fast_with_a_message(tmp_path):
    import socket

    cmd = [sys.executable, "-m", "rag", "serve", "--store", str(tmp_path / "none"), "--port", str(free_port())]
    p = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert p.returncode == 2 and "python -m ingest" in p.stderr and "Traceback" not in p.stderr
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        busy = s.getsockname()[1]
        p = subprocess.run([*cmd[:-1], str(busy)], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert p.returncode == 2 and "cannot listen" in p.stderr


def test_exposure_warning_only_for_an_open_non_loopback_bind():
    from pydantic import SecretStr

    from rag.interfaces.openai_api import exposure_warning
    from rag.settings import Settings

    assert "NEWSRAG_API_KEY" in exposure_warning(Settings(host="0.0.0.0", api_key=SecretStr("")))
    assert exposure_warning(Settings(host="0.0.0.0", api_key=SecretStr("k"))) is None
    assert exposure_warning(Settings(host="127.0.0.1", api_key=SecretStr(""))) is None


@pytest.mark.llm
def test_with_a_real_llm_the_stream_carries_the_verified_answer(corpus_store, tmp_path, llama_server):
    """With a real (tiny) LLM behind the API, the streamed content is the final, verified answer: its
    markers match the citations on the final chunk, whatever verification changed or replaced."""
    srv = ServeProcess(corpus_store.store_dir, tmp_path / "serve.log",
                       {"NEWSRAG_GENERATOR": "openai", "NEWSRAG_LLM_BASE_URL": llama_server.base_url,
                        "NEWSRAG_LLM_MODEL": llama_server.model, "NEWSRAG_LLM_TIMEOUT": "120",
                        "NEWSRAG_LLM_MAX_TOKENS": "160"})
    try:
        srv.wait_ready()
        client = openai.OpenAI(base_url=srv.base_url, api_key="unused", max_retries=0, timeout=300)
        chunks = list(client.chat.completions.create(
            model="newsrag", stream=True, messages=[{"role": "user", "content": "What did Nvidia announce about the H200?"}]))
        text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
        final = [c for c in chunks if c.choices and c.choices[0].finish_reason == "stop"][0].model_extra
        assert not final["refused"] and final["citations"]
        check_cited(text, final)
        assert any("h200" in (s["title"] + s["snippet"]).lower() for s in final["search_results"])
    finally:
        srv.stop()
