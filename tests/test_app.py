"""The app: the real `python app.py` in a subprocess, called through gradio_client, plus its pieces in-process.

Fixtures here are session-scoped and shared with tests/test_browser.py (which imports them):
* `corpus_app`: the app over the conftest `corpus_store` (the real corpus, built once);
* `first_start_app`: the app started on an EMPTY store dir, with a small corpus (a few real stories and
  the XSS fixture stories) and the login on -- it must ingest first, then serve.
"""
import ast
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from datetime import date
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
XSS_DIR = ROOT / "tests" / "fixtures" / "xss"
QWEN_Q = "What did Alibaba announce about Qwen?"
UNANSWERABLE_Q = "Who won the 1998 FIFA World Cup final?"
XSS_Q = "What did Quillmark Labs release with Lanternfish-7?"
AUTH = ("newsreader", "s3cret-pass")
CONTRACT_KEYS = {"question", "standalone_question", "answer", "refused", "citations", "sources", "related",
                 "grounded_ratio", "unsupported_sentences", "generator", "flags", "notices", "filters", "timings"}
CITATION_KEYS = {"n", "story_id", "title", "outlet", "url", "published_at", "snippet"}
# A few real corpus stories for the first-start corpus (small, so the first-start ingest stays quick).
SMALL_CORPUS = ["2019-02-21-openai-withholds-full-gpt-2.md", "2020-12-07-deepmind-alphafold-casp14.md",
                "2022-05-09-nvidia-h100-hopper-chip.md"]


# ------------------------------------------------------------------------------- app process

def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def end_process(proc: subprocess.Popen) -> None:
    """SIGTERM, then SIGKILL if the server has not stopped within 15 s."""
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(10)


class AppServer:
    """`python app.py ...` in a subprocess; its console goes to a log file the tests can read."""

    def __init__(self, args: list[str], env: dict[str, str], log_path: Path, feedback_path: Path):
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}/"
        self.log_path = log_path
        self.feedback_path = feedback_path
        self._log = open(log_path, "w", encoding="utf-8")
        self.proc = subprocess.Popen([sys.executable, str(ROOT / "app.py"), *args, "--port", str(self.port)],
                                     cwd=ROOT, env=env, stdout=self._log, stderr=subprocess.STDOUT,
                                     start_new_session=True)

    def log(self) -> str:
        return self.log_path.read_text(encoding="utf-8", errors="replace")

    def wait_ready(self, timeout: float = 600) -> "AppServer":
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"app exited with {self.proc.returncode}:\n{self.log()[-4000:]}")
            try:
                with urllib.request.urlopen(self.url + "gradio_api/info", timeout=5) as r:
                    if r.status == 200:
                        return self
            except urllib.error.HTTPError as exc:   # 401 with auth on: it is serving
                if exc.code in (401, 403):
                    return self
            except (urllib.error.URLError, OSError):
                pass
            time.sleep(0.5)
        raise RuntimeError(f"app not ready after {timeout}s:\n{self.log()[-4000:]}")

    def stop(self) -> None:
        if self._log.closed:
            return
        end_process(self.proc)
        self._log.close()


def app_env(feedback: Path, auth: tuple[str, str] | None = None, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("NEWSRAG_AUTH_")}
    env.pop("NEWSRAG_STORE_DIR", None)
    env.update({"PYTHONUNBUFFERED": "1", "NEWSRAG_FEEDBACK_PATH": str(feedback),
                "NEWSRAG_TODAY": os.environ.get("NEWSRAG_TODAY", "2026-06-01"), "NO_PROXY": "127.0.0.1,localhost"})
    if auth:
        env.update({"NEWSRAG_AUTH_USER": auth[0], "NEWSRAG_AUTH_PASSWORD": auth[1]})
    env.update(extra)
    return env


_SERVERS: dict[str, AppServer] = {}


def shared_server(request, key: str, start) -> AppServer:
    """One app per key for the whole session, even when another test module imports these fixtures
    (an imported fixture is a second definition with its own cache)."""
    srv = _SERVERS.get(key)
    if srv is None:
        srv = start()
        request.config.add_cleanup(srv.stop)
        try:
            srv.wait_ready()
        except BaseException:
            srv.stop()
            raise
        _SERVERS[key] = srv
    return srv


@pytest.fixture(scope="session")
def corpus_app(corpus_store, tmp_path_factory, request):
    def start():
        d = tmp_path_factory.mktemp("corpus_app")
        return AppServer(["--store", str(corpus_store.store_dir)], app_env(d / "feedback.jsonl"), d / "app.log",
                         d / "feedback.jsonl")
    return shared_server(request, "corpus", start)


@pytest.fixture(scope="session")
def first_start_app(tmp_path_factory, request):
    def start():
        d = tmp_path_factory.mktemp("first_start")
        corpus = d / "corpus"
        corpus.mkdir()
        for name in SMALL_CORPUS:
            shutil.copy(ROOT / "corpus" / name, corpus / name)
        for p in XSS_DIR.glob("*.md"):
            shutil.copy(p, corpus / p.name)
        store = d / "store"
        store.mkdir()                                   # exists but empty: the first-start case
        app = AppServer(["--store", str(store)],
                        app_env(d / "feedback.jsonl", AUTH, NEWSRAG_CORPUS_DIR=str(corpus)),
                        d / "app.log", d / "feedback.jsonl")
        app.store = store
        return app
    return shared_server(request, "first_start", start)


def client_for(app, auth=None):
    from gradio_client import Client

    return Client(app.url, auth=auth, verbose=False)


@pytest.fixture(scope="session")
def corpus_client(corpus_app):
    return client_for(corpus_app)


def assert_contract(d: dict) -> None:
    assert CONTRACT_KEYS <= set(d), CONTRACT_KEYS - set(d)
    for c in d["citations"]:
        assert CITATION_KEYS <= set(c)
        date.fromisoformat(c["published_at"])


# ------------------------------------------------------------------------------- /ask over HTTP

def test_ask_endpoint_json_contract(corpus_client):
    d = corpus_client.predict(QWEN_Q, api_name="/ask")
    assert_contract(d)
    assert d["refused"] is False
    assert d["answer"].strip() and "[" in d["answer"]
    assert d["grounded_ratio"] > 0
    assert d["citations"] and d["sources"]
    for c in d["citations"]:
        assert c["story_id"] and c["title"] and c["outlet"] and c["snippet"]
        assert c["url"].startswith(("http://", "https://"))
        assert f"[{c['n']}]" in d["answer"]
    assert any("qwen" in c["title"].lower() or "alibaba" in c["title"].lower() for c in d["citations"])
    # the same contract as `python -m rag ask --json`
    assert d["question"] == QWEN_Q and d["generator"] == "extractive"


def test_ask_endpoint_refuses_unanswerable_with_related(corpus_client):
    d = corpus_client.predict(UNANSWERABLE_Q, api_name="/ask")
    assert_contract(d)
    assert d["refused"] is True
    assert d["citations"] == [] and d["grounded_ratio"] == 0
    assert d["related"], "a refusal lists the nearest stories as related reading"
    assert all(r["title"] and r["published_at"] for r in d["related"])


def test_ask_endpoint_date_and_outlet_filters(corpus_client):
    d = corpus_client.predict("What did OpenAI announce?", "2026-01-01", "2026-05-31", api_name="/ask")
    assert_contract(d)
    assert d["filters"]["since"] == "2026-01-01" and d["filters"]["until"] == "2026-05-31"
    assert not d["refused"] and d["citations"]
    for c in d["citations"] + d["sources"]:
        assert "2026-01-01" <= c["published_at"] <= "2026-05-31", c
    d = corpus_client.predict("What happened with Nvidia chips?", "", "", ["TechCrunch"], api_name="/ask")
    assert d["filters"]["outlets"] == ["TechCrunch"]
    for s in d["sources"]:
        assert "TechCrunch" in s["outlets"], s


@pytest.mark.parametrize("question, words", [
    ("", "empty"),
    ("   ", "empty"),
    ("why " * 400, "limit"),
])
def test_ask_endpoint_friendly_errors_then_keeps_serving(corpus_client, question, words):
    from gradio_client.exceptions import AppError

    with pytest.raises(AppError) as err:
        corpus_client.predict(question, api_name="/ask")
    assert words in str(err.value).lower()
    assert "traceback" not in str(err.value).lower()
    d = corpus_client.predict(QWEN_Q, api_name="/ask")
    assert d["refused"] is False and d["citations"]


def test_ask_endpoint_bad_date_is_friendly(corpus_client):
    from gradio_client.exceptions import AppError

    with pytest.raises(AppError) as err:
        corpus_client.predict(QWEN_Q, "last tuesday", api_name="/ask")
    assert "YYYY-MM-DD" in str(err.value)


def test_ten_simultaneous_calls_all_complete(corpus_app):
    questions = [QWEN_Q, "Timeline of Nvidia and chips", "What's the latest on OpenAI?", UNANSWERABLE_Q,
                 "What did Anthropic release?", "What happened with Musk's lawsuit against OpenAI?",
                 "What did Google announce about Gemini?", "What did DeepSeek release?",
                 "What did Meta announce about AI jobs?", "What did Microsoft and OpenAI agree?"]
    assert len(questions) == 10

    def one(q):
        return client_for(corpus_app).predict(q, api_name="/ask")

    t0 = time.monotonic()
    with ThreadPoolExecutor(max_workers=10) as pool:
        results = list(pool.map(one, questions, timeout=600))
    assert len(results) == 10
    for q, d in zip(questions, results):
        assert_contract(d)
        assert d["question"] == " ".join(q.split())
        assert d["refused"] or d["citations"]
    assert sum(not d["refused"] for d in results) >= 8
    assert time.monotonic() - t0 < 600


def test_api_lists_only_ask(corpus_client):
    api = corpus_client.view_api(print_info=False, return_format="dict")
    assert list(api["named_endpoints"]) == ["/ask"]
    params = [p["parameter_name"] for p in api["named_endpoints"]["/ask"]["parameters"]]
    assert params[:3] == ["question", "since", "until"] and "outlets" in params


# ------------------------------------------------------------------------------- first start

def test_first_start_ingests_then_serves_with_auth(first_start_app):
    from gradio_client import Client

    log = first_start_app.log()
    assert "is empty: ingesting" in log
    assert "stories/s" in log
    assert (first_start_app.store / "catalog.sqlite").exists()
    # the login is on: no credentials, no answers
    with pytest.raises(Exception):
        Client(first_start_app.url, verbose=False).predict(QWEN_Q, api_name="/ask")
    c = client_for(first_start_app, AUTH)
    d = c.predict(XSS_Q, api_name="/ask")
    assert_contract(d)
    assert not d["refused"]
    assert any("Lanternfish" in x["title"] for x in d["citations"])
    d = c.predict("What did OpenAI hold back in 2019?", api_name="/ask")
    assert not d["refused"] and any("GPT-2" in x["title"] for x in d["citations"])


def test_app_never_shares_and_warns_when_exposed():
    import app

    assert app.bind_warning("127.0.0.1", False) is None
    assert app.bind_warning("localhost", False) is None
    assert app.bind_warning("::1", False) is None
    assert app.bind_warning("0.0.0.0", True) is None
    w = app.bind_warning("0.0.0.0", False)
    assert w and "WARNING" in w and "NEWSRAG_AUTH_USER" in w
    assert app.bind_warning("192.168.1.5", False)
    # the one launch call passes share=False itself (a share=True would publish a public tunnel)
    tree = ast.parse((ROOT / "app.py").read_text(encoding="utf-8"))
    launches = [n for n in ast.walk(tree) if isinstance(n, ast.Call) and getattr(n.func, "attr", "") == "launch"]
    assert len(launches) == 1
    share = {k.arg: k.value for k in launches[0].keywords}.get("share")
    assert isinstance(share, ast.Constant) and share.value is False


def test_cli_flags_and_env_become_settings(monkeypatch, tmp_path):
    import app

    s = app.make_settings(app.parse_args(["--store", str(tmp_path), "--host", "0.0.0.0", "--port", "9999"]))
    assert (s.store_dir, s.host, s.port) == (tmp_path, "0.0.0.0", 9999)
    monkeypatch.setenv("NEWSRAG_STORE_DIR", str(tmp_path / "env"))
    monkeypatch.setenv("NEWSRAG_PORT", "7001")
    monkeypatch.setenv("NEWSRAG_HOST", "127.0.0.2")
    s = app.make_settings(app.parse_args([]))
    assert (s.store_dir, s.host, s.port) == (tmp_path / "env", "127.0.0.2", 7001)


# ------------------------------------------------------------------------------- in-process pieces

@pytest.fixture(scope="session")
def chat_app(bot, tmp_path_factory):
    import app

    settings = bot.settings.model_copy(update={"feedback_path": tmp_path_factory.mktemp("fb") / "feedback.jsonl"})
    return app.ChatApp(settings, bot=bot)


def _drain(gen):
    frames = list(gen)
    return frames, frames[-1][-1]


def test_chat_streams_then_renders_cited_answer(chat_app):
    frames, turn = _drain(chat_app.chat(QWEN_Q, []))
    assert len(frames) >= 2
    assert "nr-streaming" in frames[0][-1]["html"]
    assert turn["answer"] and not turn["answer"]["refused"]
    html = turn["html"]
    for c in turn["answer"]["citations"]:
        assert f'href="#{turn["id"]}-s{c["n"]}"' in html and f'id="{turn["id"]}-s{c["n"]}"' in html
    assert "<mark>" in html and 'rel="noopener noreferrer"' in html and "grounded 100%" in html
    msgs = chat_app.messages(frames[-1])
    assert [m["role"] for m in msgs] == ["user", "assistant"]


def test_chat_follow_up_passes_history(chat_app):
    _, first = _drain(chat_app.chat(QWEN_Q, []))
    frames, second = _drain(chat_app.chat("What did they release after that?", [first]))
    assert len(frames[-1]) == 2
    assert second["error"] is None and second["answer"] is not None
    assert chat_app.history_of(frames[-1])[0] == (QWEN_Q, first["answer"]["answer"])
    read_as = second["answer"]["standalone_question"]
    assert read_as != "What did they release after that?" and "Read as a follow-up" in second["html"]


def test_chat_timeline_and_refusal_render_differently(chat_app):
    _, tl = _drain(chat_app.chat("Timeline of Nvidia and chips", []))
    assert "nr-timeline" in tl["html"] and "<time" in tl["html"]
    _, ref = _drain(chat_app.chat(UNANSWERABLE_Q, []))
    assert ref["answer"]["refused"]
    assert "nr-refusal" in ref["html"] and "Related reading — not evidence" in ref["html"]
    assert 'class="nr-card"' not in ref["html"]


@pytest.mark.parametrize("question, since, title", [
    ("", "", "adjust the question"),
    ("x" * 5000, "", "adjust the question"),
    (QWEN_Q, "2026-13-45", "Check the filters"),
])
def test_chat_errors_are_friendly_messages(chat_app, question, since, title):
    _, turn = _drain(chat_app.chat(question, [], since))
    assert turn["answer"] is None and turn["error"]
    assert "nr-error" in turn["html"] and title in turn["html"]


def test_chat_without_store_is_friendly(tmp_path):
    import app
    from rag.settings import Settings

    chat = app.ChatApp(Settings(store_dir=tmp_path / "none"), bot=None, bot_error="No news store at /x.")
    _, turn = _drain(chat.chat(QWEN_Q, []))
    assert "The news store isn&#x27;t ready" in turn["html"] and "No news store" in turn["html"]
    assert chat.freshness() == "No stories loaded yet."


def test_example_questions_come_from_the_store_and_are_answered(chat_app, bot):
    exs = chat_app.examples
    assert len(exs) >= 3
    # the newest period of the store (the pinned today is past the corpus' last story) and the name its
    # last month of headlines carried most widely, not tag names
    assert exs[0] == "What happened in AI in May 2026?", exs
    assert "What's the latest on OpenAI?" in exs, exs
    assert not any(t in q for q in exs for t in ("Business and policy", "Research", "lawsuit", "models")), exs
    for q in exs:
        a = bot.ask(q)
        assert not a.refused and a.citations, q
    assert {"brief", "overview"} <= {f for q in exs for f in bot.ask(q).flags}, exs


def test_controls_come_from_store_stats(chat_app, bot):
    st = bot.stats()
    outlets = chat_app.outlet_choices()
    assert outlets[0] == max(st["outlets"], key=st["outlets"].get)
    assert set(outlets) == set(st["outlets"])
    counts = [st["tags"][t] for t in chat_app.tag_choices()]
    assert counts == sorted(counts, reverse=True)
    assert chat_app.freshness() == f"{st['stories']} stories from {len(st['outlets'])} outlets, newest {st['newest']}"
    assert chat_app.generator_name == "extractive"


def test_the_live_freshness_line_rereads_the_store_only_after_a_change(tmp_path):
    """What the page's timer calls: the stats scan every story, so they are read again only when an
    ingest published a snapshot or a sync wrote its state (a counting wrapper around the real stats)."""
    import app
    from ingest.pipeline import ingest_paths
    from ingest.sync import write_state
    from rag.pipeline import NewsBot
    from rag.settings import Settings
    from test_ingest import story_md, two_story_folder
    from test_live_store import ZEPHYR

    settings = Settings(store_dir=tmp_path / "store")
    src = two_story_folder(tmp_path)
    assert ingest_paths([src], settings, progress=False).new == 2
    bot = NewsBot(settings)
    chat = app.ChatApp(settings, bot)
    reads = []
    real_stats = bot.stats
    bot.stats = lambda: reads.append(1) or real_stats()
    assert chat.live_freshness().startswith("2 stories") and chat.live_freshness().startswith("2 stories")
    assert len(reads) == 1
    (src / "zephyr.md").write_text(story_md("Nimbus Dynamics unveils Zephyr-9 weather model", "2026-03-09",
                                            "Climate Desk", "https://example.org/weather/zephyr-9", ZEPHYR))
    assert ingest_paths([src], settings, progress=False).new == 1
    assert chat.live_freshness().startswith("3 stories") and len(reads) == 2
    write_state(settings.store_dir, {"last_sync": "2026-03-10T09:00:00+00:00",
                                     "feeds": {"http://127.0.0.1:9/feed.xml": {"failures": 1, "last_error": "HTTP 500"}}})
    line = chat.live_freshness()
    assert "feeds last synced 2026-03-10 09:00 UTC; failing: http://127.0.0.1:9/feed.xml" in line, line
    assert chat.live_freshness() == line and len(reads) == 3


def test_feedback_is_saved_as_jsonl(chat_app):
    _, turn = _drain(chat_app.chat(QWEN_Q, []))
    path = Path(chat_app.settings.feedback_path)
    before = path.read_text().splitlines() if path.exists() else []
    chat_app.record_feedback([turn], 1, True, turn["html"])
    chat_app.record_feedback([turn], [1, None], False)
    lines = path.read_text().splitlines()[len(before):]
    assert len(lines) == 2
    up, down = (json.loads(x) for x in lines)
    assert up["vote"] == "up" and down["vote"] == "down"
    for rec in (up, down):
        assert rec["timestamp"] and rec["question"] == QWEN_Q
        assert rec["answer"] == turn["answer"]["answer"]
        assert rec["citations"] and {"n", "story_id", "title", "url"} <= set(rec["citations"][0])


# ------------------------------------------------------------------ rag.interfaces.ui (pure)

def test_safe_url_only_allows_http_and_https():
    from rag.interfaces.ui import link, safe_url, url_line

    good = ["https://example.com/a?b=1&c=2", "http://example.org", "HTTPS://EXAMPLE.COM/x"]
    bad = ["javascript:alert(3)", "JavaScript:alert(3)", " javascript:alert(3)", "java\tscript:alert(3)",
           "java\nscript:alert(3)", "data:text/html,<script>alert(5)</script>", "vbscript:msgbox(1)",
           "file:///etc/passwd", "//evil.example/x", "/relative/path", "https:/\\evil.example", "http://",
           "https://exa mple.com", "\x00javascript:alert(1)", "https://example.com\u0000/x", None, 42, ""]
    for u in good:
        assert safe_url(u) == u.strip()
        assert f'href="{u}"'.replace("&", "&amp;") in link(u, "t")
    for u in bad:
        assert safe_url(u) is None, u
        html = link(u, "title") + url_line(u)
        assert "href" not in html, html
        assert "<script" not in html


def _hostile_answer() -> dict:
    payload = "<script>alert(1)</script><img src=x onerror=alert(2)>"
    cit = {"n": 1, "story_id": "s1", "title": f"Title {payload}", "outlet": f"Outlet {payload}",
           "url": "javascript:alert(3)", "published_at": "2026-03-10",
           "snippet": f"First {payload} sentence here. The cited claim is right here.",
           "sentence": "The cited claim is right here."}
    cit2 = dict(cit, n=2, url='https://example.com/"><script>alert(4)</script>', title="Quote \" ' & <b>")
    return {"question": "q", "answer": f"On March 10, 2026, Outlet {payload} reported: The cited claim is right here [1]. "
                                       "Second [2]. An unsupported <b>claim</b> sentence.",
            "refused": False, "citations": [cit, cit2], "sources": [], "related": [], "grounded_ratio": 0.5,
            "unsupported_sentences": ["An unsupported <b>claim</b> sentence."], "generator": "extractive",
            "flags": [], "notices": [f"note {payload}"], "filters": None, "timings": {"total": 12.0}}


def html_tags(html: str) -> list[tuple[str, dict]]:
    """Every start tag with its attributes, as a browser's tokenizer would see them."""
    from html.parser import HTMLParser

    tags: list[tuple[str, dict]] = []

    class P(HTMLParser):
        def handle_starttag(self, tag, attrs):
            tags.append((tag, dict(attrs)))

    P(convert_charrefs=True).feed(html)
    return tags


SAFE_TAGS = {"div", "span", "p", "a", "br", "mark", "time", "ol", "ul", "li", "blockquote", "b", "strong"}


def assert_inert(html: str) -> None:
    for tag, attrs in html_tags(html):
        assert tag in SAFE_TAGS, (tag, attrs)
        assert not any(k.startswith("on") for k in attrs), (tag, attrs)
        if "href" in attrs:
            assert attrs["href"].startswith(("http://", "https://", "#")), attrs
        if attrs.get("target") == "_blank":
            assert attrs.get("rel") == "noopener noreferrer"


def test_render_answer_escapes_every_story_field():
    from rag.interfaces.ui import render_answer

    html = render_answer(_hostile_answer(), "m1")
    assert_inert(html)
    assert "<script" not in html and "<img" not in html
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html
    assert 'href="javascript' not in html
    assert 'href="https://example.com/&quot;&gt;&lt;script&gt;alert(4)&lt;/script&gt;"' in html
    assert '<span class="nr-url nr-url-unsafe"' in html


def test_render_answer_links_marks_and_flags():
    from rag.interfaces.ui import render_answer

    html = render_answer(_hostile_answer(), "m1")
    assert '<a class="nr-cite" href="#m1-s1"' in html and 'id="m1-s1"' in html and 'id="m1-s2"' in html
    assert "<mark>The cited claim is right here</mark>." in html
    assert '<span class="nr-unverified"' in html and "nr-badge-unverified" in html
    assert "grounded 50% (1 unverified)" in html
    assert 'class="nr-notice"' in html


def test_render_timeline_and_refusal():
    from rag.interfaces.ui import is_timeline, render_answer

    text = "- 2024-01-02 (A): one [1]\n- 2025-03-04 (B): two [2]"
    assert is_timeline(text) and not is_timeline("On May 1 something [1].")
    d = {"answer": text, "refused": False, "grounded_ratio": 1.0,
         "citations": [{"n": 1, "title": "t1", "outlet": "A", "url": "https://a.example/1", "published_at": "2024-01-02",
                        "snippet": "one", "sentence": "one"},
                       {"n": 2, "title": "t2", "outlet": "B", "url": "https://b.example/2", "published_at": "2025-03-04",
                        "snippet": "two", "sentence": "two"}]}
    html = render_answer(d, "t")
    assert html.count('<time class="nr-tl-date"') == 2 and '<ol class="nr-timeline">' in html
    ref = render_answer({"answer": "The news I hold doesn't cover this.", "refused": True,
                         "related": [{"title": "<i>x</i>", "outlet": "O", "url": "data:x", "published_at": "2026-01-01"}]}, "r")
    assert "nr-refusal" in ref and "Related reading — not evidence" in ref and "&lt;i&gt;x&lt;/i&gt;" in ref
    assert "href" not in ref
    assert_inert(html)
    assert_inert(ref)


def test_parse_day_and_filters():
    import app
    from rag.interfaces.ui import parse_day

    assert parse_day("", "since") is None and parse_day(None, "since") is None
    assert parse_day("2026-01-31", "since") == date(2026, 1, 31)
    with pytest.raises(ValueError, match="YYYY-MM-DD"):
        parse_day("31/01/2026", "since")
    f = app.ChatApp.make_filters("2026-01-01", "2026-02-01", ["CNBC"], None)
    assert (f.since, f.until, f.outlets, f.tags) == (date(2026, 1, 1), date(2026, 2, 1), ["CNBC"], [])
    with pytest.raises(ValueError, match="empty"):
        app.ChatApp.make_filters("2026-02-01", "2026-01-01")


def test_xss_fixture_payloads_reach_the_loader():
    """The fixtures must really carry the payloads into story data, or the browser test proves nothing."""
    from ingest.loaders import load_paths
    from rag.settings import Settings

    loaded = load_paths([XSS_DIR], Settings())
    blob = json.dumps([[s.title, s.text, [(x.outlet, x.url) for x in s.sources]] for s in loaded.stories])
    assert len(loaded.stories) == 3
    assert "<script>alert(1)</script>" in blob and "<img src=x onerror=alert(2)>" in blob
    assert "javascript:alert(3)" in blob                # in the body text (the loader drops the non-http URL)
    assert all(not x.url or x.url.startswith("http") for s in loaded.stories for x in s.sources)


def test_busy_port_is_reported_before_the_slow_start():
    import app

    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        s.listen(1)
        port = s.getsockname()[1]
        msg = app.port_problem("127.0.0.1", port)
    assert msg and "--port" in msg
    assert app.port_problem("127.0.0.1", free_port()) is None


def test_llm_backend_down_falls_back_with_a_visible_notice(corpus_store):
    """A configured LLM server that is down: the chat still answers (from the sources) and says why."""
    pytest.importorskip("rag.generators.llm")
    import app
    from rag.pipeline import NewsBot

    settings = corpus_store.model_copy(update={"generator": "openai", "llm_base_url": f"http://127.0.0.1:{free_port()}/v1",
                                               "llm_max_retries": 0, "llm_timeout": 5.0})
    chat = app.ChatApp(settings, bot=NewsBot(settings))
    assert chat.generator_name != "extractive"
    _, turn = _drain(chat.chat(QWEN_Q, []))
    assert turn["error"] is None and turn["answer"]["citations"]
    assert "fallback:llm-unavailable" in turn["answer"]["flags"]
    assert 'class="nr-notice"' in turn["html"] and "could not answer" in turn["html"]
