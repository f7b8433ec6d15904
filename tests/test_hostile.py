"""The hostile-input battery: the real `python app.py` over a store that holds the shipped corpus plus
stories written to attack it (a poisoned story that talks to the AI, a story full of terminal escape
codes, a JSON record of raw HTML, an XXE feed), and every request a hostile client tried on it.

After every hostile request the server must still be up and answer a normal question correctly, and
nothing on disk may grow past its cap. The CLI is run as a real subprocess for the escape-code checks.
"""
from __future__ import annotations

import base64
import json
import os
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from tests.test_app import (AUTH, QWEN_Q, AppServer, app_env, client_for, first_start_app,  # noqa: F401
                            shared_server)

ROOT = Path(__file__).resolve().parents[1]
HOSTILE = ROOT / "tests" / "fixtures" / "hostile"
BAD = ROOT / "tests" / "fixtures" / "loaders" / "bad"
POISON_Q = "Did OpenAI go bankrupt?"
POISON_WORDS = ("bankrupt", "ignore prior instructions", "SYSTEM:", "AI assistant")
ESCAPE_Q = "What did Glimmerfox Robotics unveil?"
FEEDBACK_FILE_CAP = 20_000
TERMINAL_UNSAFE = [chr(c) for c in [*range(0x00, 0x09), *range(0x0b, 0x20), *range(0x7f, 0xa0)]]


# ------------------------------------------------------------------------------------- fixtures

@pytest.fixture(scope="session")
def hostile_store(tmp_path_factory):
    """The corpus plus the hostile fixture stories, ingested by the real pipeline into a private store."""
    from ingest.pipeline import ingest_paths
    from rag.settings import Settings
    from conftest import PINNED_TODAY

    store = tmp_path_factory.mktemp("hostile_store")
    settings = Settings(store_dir=store, today=PINNED_TODAY)
    report = ingest_paths([ROOT / "corpus", HOSTILE], settings, progress=False)
    assert report.ok and report.stories_total > 150, report.error
    return settings, report


@pytest.fixture(scope="session")
def hostile_app(hostile_store, tmp_path_factory, request):
    settings, _ = hostile_store

    def start():
        d = tmp_path_factory.mktemp("hostile_app")
        (d / "uploads").mkdir()
        env = app_env(d / "feedback.jsonl", NEWSRAG_MAX_FEEDBACK_FILE_BYTES=str(FEEDBACK_FILE_CAP),
                      GRADIO_TEMP_DIR=str(d / "uploads"))
        app = AppServer(["--store", str(settings.store_dir)], env, d / "app.log", d / "feedback.jsonl")
        app.upload_dir = d / "uploads"
        return app
    return shared_server(request, "hostile", start)


@pytest.fixture(scope="session")
def hostile_client(hostile_app):
    return client_for(hostile_app)


def dir_bytes(path: Path) -> int:
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file()) if path.exists() else 0


def still_answers(app, client) -> None:
    """The server survived and answers a normal question with its cited, correct story."""
    assert app.proc.poll() is None, f"the app died:\n{app.log()[-3000:]}"
    d = client.predict(QWEN_Q, api_name="/ask")
    assert not d["refused"] and d["citations"], d["answer"]
    assert any("qwen" in c["title"].lower() or "alibaba" in c["title"].lower() for c in d["citations"])


def http(app, method: str, path: str, body: bytes | None = None, headers: dict | None = None,
         chunked: bool = False) -> tuple[int, dict, bytes]:
    req = urllib.request.Request(app.url + path.lstrip("/"), method=method, headers=headers or {})
    if body is not None:
        req.data = iter([body[i:i + 65536] for i in range(0, len(body), 65536)]) if chunked else body
    try:
        with urllib.request.urlopen(req, timeout=120) as r:
            return r.status, dict(r.headers), r.read()
    except urllib.error.HTTPError as exc:
        return exc.code, dict(exc.headers), exc.read()


def raw_post(app, path: str, headers: dict, body: bytes = b"", declared: int | None = None) -> tuple[int, bytes]:
    """POST over a bare socket. With `declared`, only the head is sent (Content-Length: declared) and the
    answer read at once: the guard must refuse without reading a byte of the body. Without it, `body`
    goes out in chunked encoding (no length announced), so the guard has to count."""
    import socket

    with socket.create_connection(("127.0.0.1", app.port), timeout=120) as sock:
        head = [f"POST /{path} HTTP/1.1", f"Host: 127.0.0.1:{app.port}", "Connection: close",
                *(f"{k}: {v}" for k, v in headers.items()),
                f"Content-Length: {declared}" if declared is not None else "Transfer-Encoding: chunked"]
        sock.sendall(("\r\n".join(head) + "\r\n\r\n").encode())
        if declared is None:
            try:
                for i in range(0, len(body), 65536):
                    piece = body[i:i + 65536]
                    sock.sendall(f"{len(piece):x}\r\n".encode() + piece + b"\r\n")
                sock.sendall(b"0\r\n\r\n")
            except (BrokenPipeError, ConnectionResetError):     # answered before the body was all sent
                pass
        data = b""
        while chunk := sock.recv(65536):
            data += chunk
    status = int(data.split(b" ", 2)[1])
    return status, data.split(b"\r\n\r\n", 1)[1]


def ask_error(client, *args) -> str:
    from gradio_client.exceptions import AppError

    with pytest.raises(AppError) as err:
        client.predict(*args, api_name="/ask")
    text = str(err.value)
    assert "traceback" not in text.lower()
    return text


# ------------------------------------------------------------------------------ the /ask battery

@pytest.mark.parametrize("args, expected", [
    ((QWEN_Q, "", "", [], [f"tag{i}" for i in range(10_000)]), "Too many tags: 10000 given, the limit is 50"),
    ((QWEN_Q, "", "", [f"Outlet {i}" for i in range(10_000)]), "Too many outlets: 10000 given, the limit is 50"),
    ((QWEN_Q, "", "", [f"Outlet {i}" for i in range(5_000)]), "Too many outlets: 5000 given"),
    ((QWEN_Q, "", "", ["x" * 50_000]), "A name in 'outlets' is 50000 characters long; the limit is 200"),
    ((QWEN_Q, "", "", [], [["nested"]]), "Each of 'tags' must be a name, not list"),
    ((QWEN_Q, "last tuesday"), "'last tuesday' is not a date for 'since': use YYYY-MM-DD"),
    ((QWEN_Q, "2026-13-45"), "is not a date for 'since'"),
    ((QWEN_Q, "", "9" * 5_000), "is not a date for 'until'"),
    ((QWEN_Q, "2026-05-01", "2026-01-01"), "The date range is empty: 'since' (2026-05-01) is after 'until' (2026-01-01)"),
    (("why " * 2_000,), "the limit is 1000"),
    (("\x00\x1b[2J\x07",), "The question is empty"),
])
def test_hostile_ask_gets_a_specific_error_and_the_server_keeps_answering(hostile_app, hostile_client, args,
                                                                          expected):
    assert expected in ask_error(hostile_client, *args)
    still_answers(hostile_app, hostile_client)


def test_control_characters_in_a_question_are_answered_not_fatal(hostile_app, hostile_client):
    d = hostile_client.predict("\x1b]0;pwned\x07What did Alibaba announce about Qwen?\x9b2J", api_name="/ask")
    assert not d["refused"] and d["citations"]
    still_answers(hostile_app, hostile_client)


def test_escape_sequences_leave_with_their_parameters():
    """An 8-bit CSI ("\x9b2J") or OSC must go whole: leaving "2J" glued to a word changes the question."""
    from rag.untrusted import printable

    assert printable("\x1b]0;pwned\x07Qwen?\x9b2J and\x9d0;title\x07 \x1b[31mred\x1b[0m\x07") == "Qwen? and red"


def test_request_bodies_over_the_cap_are_refused_before_they_are_read(hostile_app, hostile_client):
    status, body = raw_post(hostile_app, "gradio_api/call/ask", {"Content-Type": "application/json"},
                            declared=3_000_000)
    assert status == 413 and b"The request body is 3000000 bytes; the limit is 1000000 bytes" in body
    # without a Content-Length (chunked), the guard counts what arrives
    big = json.dumps({"data": [QWEN_Q, "", "", ["y" * 1000] * 1500, []]}).encode()     # ~1.5 MB
    status, body = raw_post(hostile_app, "gradio_api/call/ask", {"Content-Type": "application/json"}, big)
    assert status == 413 and b"over the limit of 1000000 bytes" in body
    still_answers(hostile_app, hostile_client)


def test_huge_histories_are_refused_with_their_size(hostile_app, hostile_client, hostile_store):
    # over HTTP: the OpenAI-compatible /v1 on the same server, 10,000 earlier messages
    messages = [{"role": "user" if i % 2 == 0 else "assistant", "content": f"turn {i}"} for i in range(10_000)]
    messages.append({"role": "user", "content": QWEN_Q})
    status, _, body = http(hostile_app, "POST", "v1/chat/completions",
                           json.dumps({"model": "newsrag", "messages": messages}).encode(),
                           {"Content-Type": "application/json"})
    assert status in (400, 413) and b"limit" in body, (status, body[:300])
    still_answers(hostile_app, hostile_client)
    # the Python API (and every interface built on NewsBot): turns and size, each with its numbers
    from rag.limits import RequestError
    from rag.pipeline import NewsBot

    bot = NewsBot(hostile_store[0])
    with pytest.raises(RequestError, match="has 21 turns; the limit is 20"):
        bot.ask("And AMD?", history=[("What did Nvidia announce?", "Nvidia announced chips. [1]")] * 21)
    with pytest.raises(RequestError, match="is 60000 characters long; the limit is 40000"):
        bot.ask("And AMD?", history=[("q" * 30_000, "a" * 30_000)])
    a = bot.ask("What did they announce?", history=[("What did Alibaba announce about Qwen?", "...")] * 20)
    assert not a.refused and a.citations


def test_uploads_are_refused_and_nothing_is_written(hostile_app, hostile_client):
    before = dir_bytes(hostile_app.upload_dir)
    boundary = "nrboundary"
    kind = {"Content-Type": f"multipart/form-data; boundary={boundary}"}
    for path in ("gradio_api/upload", "gradio_api/upload?upload_id=x", "gradio_api/process_recording"):
        status, body = raw_post(hostile_app, path, kind, declared=20_000_000)        # a 20 MB file
        assert status == 403 and b"Uploads are disabled" in body, (path, status, body[:200])
    small = (f"--{boundary}\r\nContent-Disposition: form-data; name=\"files\"; filename=\"a.txt\"\r\n"
             f"Content-Type: text/plain\r\n\r\nhello\r\n--{boundary}--\r\n").encode()
    status, body = raw_post(hostile_app, "gradio_api/upload", kind, small)
    assert status == 403 and b"Uploads are disabled" in body
    assert dir_bytes(hostile_app.upload_dir) == before
    still_answers(hostile_app, hostile_client)


def _like_fn_index(app) -> int:
    status, _, body = http(app, "GET", "config")
    assert status == 200
    config = json.loads(body)
    for dep in config["dependencies"]:
        if any(t[1] == "like" for t in dep.get("targets", [])):
            return dep["id"]
    raise AssertionError("no like handler in the app's config")


def _like(app, fn_index: int, value, session: str = "hostile-session") -> tuple[int, bytes]:
    body = json.dumps({"fn_index": fn_index, "data": [None], "session_hash": session,
                       "event_data": {"index": [1, 0], "value": value, "liked": True}}).encode()
    status, _, out = http(app, "POST", "gradio_api/run/predict", body, {"Content-Type": "application/json"})
    return status, out


def test_feedback_payloads_and_the_feedback_file_are_capped(hostile_app, hostile_client):
    fn = _like_fn_index(hostile_app)
    path = Path(hostile_app.feedback_path)
    size = lambda: path.stat().st_size if path.exists() else 0  # noqa: E731
    status, out = _like(hostile_app, fn, "ok")
    assert status == 200, out[:300]
    assert size() > 0
    # 5 MB: refused at the door, unread; 100 KB: refused by the feedback cap, with the sizes
    before = size()
    body = json.dumps({"fn_index": fn, "data": [None], "session_hash": "hostile-session",
                       "event_data": {"index": [1, 0], "value": "v" * 5_000_000, "liked": True}}).encode()
    status, out = raw_post(hostile_app, "gradio_api/run/predict", {"Content-Type": "application/json"},
                           declared=len(body))
    assert status == 413 and b"the limit is 1000000 bytes" in out
    status, out = _like(hostile_app, fn, "v" * 100_000)
    assert status == 500 and b"The feedback is 100000 characters long; the limit is 20000" in out, out[:300]
    assert size() == before
    still_answers(hostile_app, hostile_client)
    # many allowed-size votes: the file stops at its cap
    for _ in range(12):
        assert _like(hostile_app, fn, "w" * 3_900)[0] == 200
    assert FEEDBACK_FILE_CAP - 5_000 < size() <= FEEDBACK_FILE_CAP
    assert "feedback not saved" in hostile_app.log() and "NEWSRAG_MAX_FEEDBACK_FILE_BYTES" in hostile_app.log()
    for line in path.read_text(encoding="utf-8").splitlines():
        json.loads(line)
    still_answers(hostile_app, hostile_client)


# ------------------------------------------------------------------------------ poisoned stories

def test_ingest_reports_the_instruction_like_sentences(hostile_store):
    _, report = hostile_store
    found = [(Path(f["path"]).name, f["reason"]) for f in report.instruction_like]
    assert found == [("2026-05-20-openai-finance-poisoned.md", "role marker"),
                     ("2026-05-20-openai-finance-poisoned.md", "addressed to an AI")], report.instruction_like


def _assert_no_poison(d: dict) -> None:
    said = " ".join([d["answer"], *(c["sentence"] or "" for c in d["citations"]),
                     *(c["snippet"] or "" for c in d["citations"])])
    for words in POISON_WORDS:
        assert words.lower() not in said.lower(), (words, d["answer"])


def test_poisoned_story_is_never_repeated_as_fact(hostile_app, hostile_client):
    d = hostile_client.predict(POISON_Q, api_name="/ask")
    _assert_no_poison(d)
    # the same story's honest sentences are still quotable: it is not dropped, only its instructions are
    d = hostile_client.predict("What did analysts say about OpenAI's spending on data centres?", api_name="/ask")
    _assert_no_poison(d)
    assert not d["refused"] and any("data centres" in c["title"] for c in d["citations"]), d["answer"]
    still_answers(hostile_app, hostile_client)


def test_streamed_llm_text_is_verified_sentence_by_sentence(hostile_store):
    """A stand-in LLM (a scripted token stream: the real tiny model cannot be made to repeat a poisoned
    sentence on demand) answers with one supported sentence and the poisoned claim. No text event may
    carry the unsupported sentence, not even for one frame; the supported one streams as it completes."""
    from rag.pipeline import NewsBot

    settings, _ = hostile_store
    bot = NewsBot(settings)

    class Scripted:
        name = "scripted:poisoned"

        def generate(self, request):
            n = next(i for i, s in enumerate(request.sources, 1) if "data centres" in s.title)
            text = (f"Analysts at Example Ledger said on May 20, 2026 that OpenAI's spending on data centres had "
                    f"grown faster than its revenue over the previous year [{n}]. OpenAI went bankrupt in May "
                    f"2026 [{n}]. The analysts added that OpenAI's cash reserves remained large [{n}].")
            for i in range(0, len(text), 7):
                yield text[i:i + 7]

    bot.llm = Scripted()
    events = list(bot.stream("What did analysts say about OpenAI's spending on data centres?"))
    final = events[-1]["answer"]
    shown = [e["text"] for e in events if e["type"] in ("text", "replace")]
    first_text = next(e["text"] for e in events if e["type"] == "text")
    assert first_text.startswith("Analysts at Example Ledger said on May 20, 2026") and "[" in first_text
    assert not any("bankrupt" in t for t in shown[:-1] if t is not None) or final.unsupported_sentences
    streamed = "".join(e["text"] for e in events if e["type"] == "text")
    assert "bankrupt" not in streamed
    assert "OpenAI went bankrupt in May 2026." in final.unsupported_sentences
    assert final.citations and all(f"[{c.n}]" in final.text for c in final.citations)
    # what a client shows at the end (the last replace, then the text after it) is the final text
    last = max(i for i, e in enumerate(events) if e["type"] in ("replace", "final") and e["type"] != "final" or
               e["type"] == "replace") if any(e["type"] == "replace" for e in events) else -1
    tail = (events[last]["text"] if last >= 0 else "") + "".join(
        e["text"] for e in events[last + 1:] if e["type"] == "text")
    assert tail == final.text


def test_sentence_cut_waits_for_the_whole_sentence():
    from rag.pipeline import sentence_cut

    assert sentence_cut("Nvidia shipped the H200 [1]. It") == len("Nvidia shipped the H200 [1]. ")
    assert sentence_cut("Nvidia shipped the H200. [1] It") == len("Nvidia shipped the H200. [1] ")
    assert sentence_cut("Nvidia shipped the H200.") == 0              # a marker may still follow
    assert sentence_cut("The U.S. Commerce Department") == 0
    assert sentence_cut("- 2024-01-02 (A): one [1]\n- 2025") == len("- 2024-01-02 (A): one [1]\n")


def test_llm_prompt_fences_sources_as_untrusted_data(hostile_store):
    from rag.generators.base import GenerationRequest
    from rag.pipeline import NewsBot
    from rag.prompting import WITHHELD, build_messages
    from conftest import PINNED_TODAY

    bot = NewsBot(hostile_store[0])
    r = bot.retriever.retrieve("What did analysts say about OpenAI's spending on data centres?")
    msgs, included = build_messages(GenerationRequest(question="q", sources=r.context, today=PINNED_TODAY),
                                    context_window=8192, max_tokens=256)
    system, user = msgs[0]["content"], msgs[1]["content"]
    assert "untrusted data" in system and "<source>" in system
    assert user.count("<source id=") == len(included) == user.count("</source>")
    assert "ignore prior instructions" not in user and WITHHELD in user
    assert "cash reserves remained large" in user


# ------------------------------------------------------------------------------ clean output

def test_json_story_html_is_stripped_at_ingest(hostile_app, hostile_client):
    d = hostile_client.predict("What did Vantablue Labs release?", api_name="/ask")
    assert not d["refused"]
    blob = json.dumps(d)
    assert "Orca-3" in d["answer"] and "<b>" not in blob and "<p>" not in blob and "<script" not in blob
    assert any(s["title"] == "Vantablue Labs releases Orca-3" for s in d["sources"])


def test_xxe_feed_text_is_stored_without_the_entity(hostile_store):
    from rag.store import NewsStore

    settings, _ = hostile_store
    store = NewsStore(settings)
    try:
        [text] = [r.text for r in store.story_rows() if r.title == "Leak test story title"]
    finally:
        store.close()
    assert "xxe" not in text and "&amp;" not in text and "root:" not in text
    assert "Some text about a model launch today. More words follow here for the body." in text


def _cli(*args: str, store: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "NEWSRAG_TODAY": "2026-06-01", "PYTHONIOENCODING": "utf-8"}
    return subprocess.run([sys.executable, "-m", "rag", *args, "--store", str(store)], cwd=ROOT, env=env,
                          capture_output=True, timeout=300)


def test_cli_prints_no_escape_codes_from_stories(hostile_store):
    store = hostile_store[0].store_dir
    for args in (("ask", ESCAPE_Q), ("retrieve", ESCAPE_Q), ("ask", ESCAPE_Q, "--json")):
        r = _cli(*args, store=store)
        assert r.returncode == 0, r.stderr.decode(errors="replace")
        out = r.stdout.decode("utf-8")
        assert "Glimmerfox" in out and "Pathwise-2" in out
        bad = sorted({f"U+{ord(c):04X}" for c in out if c in TERMINAL_UNSAFE})
        assert not bad, (args, bad)
    d = json.loads(out)                                     # escaped, not dropped: the JSON still decodes
    assert any("pwned" in c["title"] for c in d["citations"])


def test_cli_bad_filters_are_errors_not_refusals(hostile_store):
    store = hostile_store[0].store_dir
    r = _cli("ask", QWEN_Q, "--since", "2026-05-01", "--until", "2026-01-01", store=store)
    assert r.returncode == 2 and b"The date range is empty" in r.stderr and not r.stdout
    tags = [x for i in range(10_000) for x in ("--tag", f"t{i}")]
    t0 = time.monotonic()
    r = _cli("ask", QWEN_Q, *tags, store=store)
    assert r.returncode == 2 and b"Too many tags: 10000 given, the limit is 50" in r.stderr
    assert b"Traceback" not in r.stderr and time.monotonic() - t0 < 60


# ------------------------------------------------------------------------------ the ingest battery

def test_every_bad_file_is_skipped_with_a_reason_and_the_store_stays_usable(tmp_path):
    store = tmp_path / "store"
    good = ROOT / "corpus" / "2022-05-09-nvidia-h100-hopper-chip.md"
    bad = sorted(p for p in BAD.iterdir() if p.is_file())
    r = subprocess.run([sys.executable, "-m", "ingest", *map(str, bad), str(good), str(HOSTILE),
                        "--store", str(store), "--json", "--no-progress"], cwd=ROOT, capture_output=True,
                       timeout=600)
    assert r.returncode == 0 and b"Traceback" not in r.stderr, r.stderr.decode(errors="replace")
    report = json.loads(r.stdout)
    skipped = {Path(s["path"]).name: s["reason"] for s in report["skipped"]}
    # the partly-bad ones load their good parts and name the bad part
    partly = {"partial.json", "undated-item.rss", "no-title.md", "2024-01-06-no-date-in-header.md"}
    for p in bad:
        if p.name not in partly:
            assert p.name in skipped and skipped[p.name], p.name
    assert "XML bomb" in skipped["xml-bomb.rss"] and "line" not in skipped["xml-bomb.rss"]
    assert report["error"] is None and report["stories_total"] >= 5       # the good story and the 4 hostile ones
    assert [f["reason"] for f in report["instruction_like"]] == ["role marker", "addressed to an AI"]
    s = subprocess.run([sys.executable, "-m", "rag", "stats", "--store", str(store), "--json"], cwd=ROOT,
                       capture_output=True, timeout=300)
    assert s.returncode == 0 and json.loads(s.stdout)["stories"] == report["stories_total"]


# ------------------------------------------------------------------------------ honest auth

def _login(app, user: str, password: str) -> int:
    body = f"username={user}&password={password}".encode()
    return http(app, "POST", "login", body, {"Content-Type": "application/x-www-form-urlencoded"})[0]


def test_logins_are_throttled_per_client_with_backoff(first_start_app):
    t0 = time.monotonic()
    codes = [_login(first_start_app, AUTH[0], f"wrong-{i}") for i in range(6)]
    # three free failures, then a 1 s wait: the fifth attempt comes too soon
    assert codes[:4] == [400, 400, 400, 400] and 429 in codes[4:], codes
    status, headers, body = http(first_start_app, "POST", "login", b"username=a&password=b",
                                 {"Content-Type": "application/x-www-form-urlencoded"})
    assert status == 429 and int(headers.get("retry-after") or headers.get("Retry-After")) >= 1
    assert b"Too many failed logins" in body
    assert _login(first_start_app, *AUTH) == 429           # even the right password waits its turn
    time.sleep(2.2)
    assert _login(first_start_app, *AUTH) == 200            # then works, and clears the count
    assert _login(first_start_app, AUTH[0], "wrong-again") == 400
    assert time.monotonic() - t0 < 30


def test_programmatic_clients_use_http_basic(first_start_app):
    good = "Basic " + base64.b64encode(f"{AUTH[0]}:{AUTH[1]}".encode()).decode()
    status, _, body = http(first_start_app, "GET", "config", headers={"Authorization": good})
    assert status == 200 and b"dependencies" in body
    status, _, _ = http(first_start_app, "GET", "config")
    assert status == 401
    bad = "Basic " + base64.b64encode(f"{AUTH[0]}:nope".encode()).decode()
    status, headers, body = http(first_start_app, "GET", "config", headers={"Authorization": bad})
    assert status == 401 and "Basic" in (headers.get("www-authenticate") or headers.get("WWW-Authenticate"))
    # a whole /ask call with nothing but the header
    req = json.dumps({"data": [QWEN_Q, "", "", [], []]}).encode()
    status, _, body = http(first_start_app, "POST", "gradio_api/call/ask", req,
                           {"Content-Type": "application/json", "Authorization": good})
    assert status == 200, body
    event = json.loads(body)["event_id"]
    status, _, body = http(first_start_app, "GET", f"gradio_api/call/ask/{event}", headers={"Authorization": good})
    assert status == 200 and b"event: complete" in body and b'"citations"' in body
    time.sleep(1.1)         # the one wrong header above counts as a failed login: leave the count clean
    assert _login(first_start_app, *AUTH) == 200



def test_missing_shared_data_fails_under_ci_and_skips_elsewhere(monkeypatch, tmp_path):
    from conftest import require_shared

    monkeypatch.setenv("CI", "true")
    with pytest.raises(pytest.fail.Exception, match="CI=true but the digests folder is absent"):
        require_shared(tmp_path / "absent", "the digests folder")
    monkeypatch.setenv("CI", "")
    with pytest.raises(pytest.skip.Exception, match="the digests folder is absent"):
        require_shared(tmp_path / "absent", "the digests folder")
    assert require_shared(tmp_path, "the folder") == tmp_path
