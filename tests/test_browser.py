"""The chat page in headless Chromium (Debian's /usr/bin/chromium via Playwright): what a person sees.

Against the real app (fixtures from test_app.py): ask, watch the answer stream in, follow a citation to its
source card, filter by date, vote, and ask about stories carrying script payloads -- nothing may run.
Screenshots go to test-artifacts/; with NEWSRAG_UPDATE_SCREENSHOT=1 the README's docs/screenshot.png is refreshed.
"""
import json
import os
import shutil
import time
from pathlib import Path

import pytest

from test_feed_sync import feed_server  # noqa: F401 - the fixture
from test_app import (AUTH, QWEN_Q, UNANSWERABLE_Q, XSS_Q, client_for, corpus_app, corpus_client,  # noqa: F401
                      first_start_app)

ROOT = Path(__file__).resolve().parents[1]
CHROMIUM = "/usr/bin/chromium"
ARTIFACTS = ROOT / "test-artifacts"
CHROMIUM_ARGS = ["--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync", "--disable-quic"]
ANSWER_TIMEOUT = 240_000   # ms: a loaded 2-core CI machine answers in seconds, but leave room

pytestmark = pytest.mark.browser


# Module scope: playwright's sync API keeps an event loop running in this thread while it is open, and a
# session-long one made every later asyncio.run() in the run fail (tests/test_mcp.py: "asyncio.run()
# cannot be called from a running event loop").
@pytest.fixture(scope="module")
def browser():
    if not Path(CHROMIUM).exists():
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(f"{CHROMIUM} is missing on CI: install Debian's chromium package")
        pytest.skip(f"{CHROMIUM} is absent")
    from playwright.sync_api import sync_playwright

    ARTIFACTS.mkdir(exist_ok=True)
    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)
        try:
            yield b
        finally:
            b.close()


class Watched:
    """A page plus every dialog (alert/confirm/prompt) and page error it produced."""

    def __init__(self, page):
        self.page = page
        self.dialogs: list[str] = []
        self.errors: list[str] = []
        page.on("dialog", self._dialog)
        page.on("pageerror", lambda e: self.errors.append(str(e)))

    def _dialog(self, d):
        self.dialogs.append(f"{d.type}: {d.message}")
        d.dismiss()


@pytest.fixture
def page(browser):
    ctx = browser.new_context(viewport={"width": 1360, "height": 1300})
    pg = ctx.new_page()
    pg.set_default_timeout(60_000)
    w = Watched(pg)
    yield w
    ctx.close()


def open_chat(w: Watched, app, auth=None) -> None:
    pg = w.page
    pg.goto(app.url, wait_until="domcontentloaded")
    if auth:
        pg.wait_for_selector("input[type=password]")
        pg.locator("input[type=text]").first.fill(auth[0])
        pg.locator("input[type=password]").fill(auth[1])
        pg.get_by_role("button", name="Login").click()
    pg.wait_for_selector("#nr-question textarea")


def ask(w: Watched, question: str) -> object:
    """Type a question, press Enter, wait for the finished (not streaming) answer; return its locator."""
    pg = w.page
    n_before = pg.locator("#nr-chat .nr-answer:not(.nr-streaming)").count()
    pg.fill("#nr-question textarea", question)
    pg.press("#nr-question textarea", "Enter")
    pg.wait_for_function(
        "n => document.querySelectorAll('#nr-chat .nr-answer:not(.nr-streaming)').length > n "
        "&& document.querySelectorAll('#nr-chat .nr-streaming').length === 0",
        arg=n_before, timeout=ANSWER_TIMEOUT)
    return pg.locator("#nr-chat .nr-answer:not(.nr-streaming)").last


def shot(w: Watched, name: str) -> Path:
    path = ARTIFACTS / f"{name}.png"
    w.page.screenshot(path=str(path), full_page=True)
    return path


def test_answer_with_citations_and_source_cards(page, corpus_app, corpus_client):
    pg = page.page
    open_chat(page, corpus_app)
    assert "stories from" in pg.inner_text("#nr-fresh") and "newest 20" in pg.inner_text("#nr-fresh")
    assert "extractive" in pg.inner_text("#nr-generator")
    # the answer streams: a partial (streaming) message is rendered before the final one. An extractive
    # answer takes milliseconds, so the partial may be on screen for a single frame: a MutationObserver
    # records every streaming node the page ever inserts instead of polling for one.
    pg.evaluate("""() => {
        window.__nrStreamed = 0;
        const hit = n => n.nodeType === 1 && (n.matches('.nr-streaming') || n.querySelector('.nr-streaming'));
        new MutationObserver(records => {
            for (const r of records) {
                if (r.type === 'attributes' ? hit(r.target) : [...r.addedNodes].some(hit)) window.__nrStreamed++;
            }
        }).observe(document.querySelector('#nr-chat'), {subtree: true, childList: true, attributes: true,
                                                          attributeFilter: ['class']});
    }""")
    pg.fill("#nr-question textarea", QWEN_Q)
    pg.press("#nr-question textarea", "Enter")
    pg.wait_for_selector("#nr-chat .nr-answer .nr-card", timeout=ANSWER_TIMEOUT)
    pg.wait_for_function("() => document.querySelectorAll('#nr-chat .nr-streaming').length === 0",
                         timeout=ANSWER_TIMEOUT)
    assert pg.evaluate("window.__nrStreamed") >= 1, "no partial (streaming) answer was ever rendered"
    answer = pg.locator("#nr-chat .nr-answer:not(.nr-streaming)").last
    expected = corpus_client.predict(QWEN_Q, api_name="/ask")
    by_n = {c["n"]: c for c in expected["citations"]}

    cites = answer.locator("a.nr-cite")
    assert cites.count() >= 1
    first = cites.first
    href = first.get_attribute("href")
    n = int(first.inner_text().strip("[]"))
    card = answer.locator(f"[id='{href[1:]}']")
    assert card.count() == 1
    c = by_n[n]
    assert card.locator(".nr-card-title").inner_text() == c["title"]
    assert card.locator(".nr-card-title").get_attribute("href") == c["url"]
    assert card.locator(".nr-card-title").get_attribute("target") == "_blank"
    assert "noopener" in card.locator(".nr-card-title").get_attribute("rel")
    assert card.locator(".nr-outlet").inner_text() == c["outlet"]
    assert card.locator("time.nr-date").inner_text() == c["published_at"]
    snippet = " ".join(card.locator(".nr-snippet").inner_text().split())
    assert snippet == " ".join(c["snippet"].split())
    assert card.locator(".nr-snippet mark").count() == 1
    assert "grounded" in answer.locator(".nr-meta").inner_text()
    # every [n] in the text has its card
    for i in range(cites.count()):
        target = cites.nth(i).get_attribute("href")[1:]
        assert answer.locator(f"[id='{target}']").count() == 1
    first.click()
    assert pg.evaluate("location.hash") == href
    assert page.dialogs == [] and page.errors == []
    shutil.copy(shot(page, "answer-with-sources"), ARTIFACTS / "screenshot-candidate.png")
    pg.locator(f"[id='{href[1:]}']").scroll_into_view_if_needed()
    # the README screenshot: the question and the top of the answer with its citations
    answer.locator(".nr-body").scroll_into_view_if_needed()
    pg.screenshot(path=str(ARTIFACTS / "readme.png"))
    if os.environ.get("NEWSRAG_UPDATE_SCREENSHOT"):    # refresh the README's picture on request only:
        (ROOT / "docs").mkdir(exist_ok=True)            # a test run must not dirty the checkout
        shutil.copy(ARTIFACTS / "readme.png", ROOT / "docs" / "screenshot.png")


def test_date_filter_limits_every_citation(page, corpus_app):
    pg = page.page
    open_chat(page, corpus_app)
    pg.fill("#nr-since textarea, #nr-since input", "2026-01-01")
    answer = ask(page, "What did OpenAI announce?")
    dates = answer.locator(".nr-card time.nr-date").all_inner_texts()
    assert dates, "expected cited sources"
    assert all(d >= "2026-01-01" for d in dates), dates
    assert "since 2026-01-01" in answer.locator(".nr-meta").inner_text()
    # a malformed date is a friendly message, and the chat keeps working
    pg.fill("#nr-since textarea, #nr-since input", "January")
    bad = ask(page, "What did OpenAI announce?")
    assert "YYYY-MM-DD" in bad.inner_text() and bad.locator(".nr-error").count() == 1
    pg.fill("#nr-since textarea, #nr-since input", "")
    assert ask(page, QWEN_Q).locator(".nr-card").count() >= 1
    shot(page, "date-filter")
    assert page.dialogs == []


def test_timeline_refusal_empty_question_retry_clear_and_feedback(page, corpus_app):
    pg = page.page
    open_chat(page, corpus_app)
    tl = ask(page, "Timeline of Nvidia and chips")
    dates = tl.locator("ol.nr-timeline li time.nr-tl-date").all_inner_texts()
    assert len(dates) >= 2 and dates == sorted(dates)
    ref = ask(page, UNANSWERABLE_Q)
    assert ref.locator(".nr-refusal").count() == 1
    assert "not evidence" in ref.locator(".nr-related").inner_text().lower()
    assert ref.locator(".nr-related li").count() >= 1 and ref.locator(".nr-card").count() == 0
    shot(page, "timeline-and-refusal")
    empty = ask(page, "   ")
    assert empty.locator(".nr-error").count() == 1 and "empty" in empty.inner_text().lower()
    # retry re-asks the last question; clear empties the chat
    n_msgs = pg.locator("#nr-chat .nr-answer").count()
    pg.click("#nr-retry")
    pg.wait_for_timeout(500)
    pg.wait_for_function("() => document.querySelectorAll('#nr-chat .nr-streaming').length === 0")
    assert pg.locator("#nr-chat .nr-answer").count() == n_msgs
    # thumbs up on the timeline answer -> a JSONL line with the vote
    fb = corpus_app.feedback_path
    before = fb.read_text().splitlines() if fb.exists() else []
    like = pg.locator("#nr-chat button[aria-label='Like']").first
    like.click()
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        lines = fb.read_text().splitlines() if fb.exists() else []
        if len(lines) > len(before):
            break
        time.sleep(0.3)
    rec = json.loads(lines[-1])
    assert rec["vote"] == "up" and rec["question"] == "Timeline of Nvidia and chips"
    assert rec["citations"] and rec["timestamp"]
    pg.click("#nr-clear")
    pg.wait_for_function("() => document.querySelectorAll('#nr-chat .nr-answer').length === 0")
    assert page.dialogs == [] and page.errors == []


def test_example_question_buttons_ask(page, corpus_app):
    pg = page.page
    open_chat(page, corpus_app)
    buttons = pg.locator("#nr-examples button")
    assert buttons.count() >= 3
    label = buttons.first.inner_text()
    buttons.first.click()
    pg.wait_for_selector("#nr-chat .nr-answer:not(.nr-streaming) .nr-card", timeout=ANSWER_TIMEOUT)
    assert label in pg.inner_text("#nr-chat")


def test_story_payloads_never_execute(page, first_start_app):
    """Stories whose title/body/outlet carry <script> and onerror payloads (and a javascript: source URL)."""
    pg = page.page
    open_chat(page, first_start_app, auth=AUTH)
    ask(page, XSS_Q)
    ask(page, "How many parameters does Quillmark Labs' Lanternfish-7 reasoning model have?")
    q2 = ask(page, "How much did Quillmark Labs raise for Lanternfish chips?")
    q3 = ask(page, "What did the Lanternfish-7 safety review find about prompt injection?")
    pg.wait_for_timeout(1500)          # give any injected handler time to fire
    assert page.dialogs == [], page.dialogs
    assert page.errors == [], page.errors
    text = pg.inner_text("#nr-chat")
    # the payloads are shown as text, not run
    assert "<script>alert(1)</script>" in text
    assert "<img src=x onerror=alert(2)>" in text
    found = pg.evaluate("""() => {
        const chat = document.querySelector('#nr-chat');
        return {
          // gradio's page config holds the outlet names JSON-escaped (\\u003c): inert data. A raw payload is not.
          scripts: [...document.querySelectorAll('script')].filter(s => /<script>alert|<img src=x|alert\\([0-9]\\)<\\/script/i.test(s.textContent || '')).length,
          anyImgs: document.querySelectorAll('img[src="x"], img[onerror]').length,
          chatScripts: chat.querySelectorAll('script').length,
          chatImgs: chat.querySelectorAll('img[src="x"], img[onerror]').length,
          handlers: [...chat.querySelectorAll('*')].filter(e => [...e.attributes].some(a => a.name.startsWith('on'))).length,
          badHrefs: [...chat.querySelectorAll('a[href]')].map(a => a.getAttribute('href'))
                      .filter(h => !/^(https?:\\/\\/|#)/i.test(h)),
        };
    }""")
    assert found == {"scripts": 0, "anyImgs": 0, "chatScripts": 0, "chatImgs": 0, "handlers": 0, "badHrefs": []}, found
    titles = pg.locator("#nr-chat .nr-card-title").all_inner_texts()
    assert any("<script>alert(1)</script>" in t for t in titles), titles
    # the story whose only URL was javascript:alert(3) is cited without any link
    assert q2.locator(".nr-card").count() >= 1
    assert "javascript:alert(3)" not in [a.get_attribute("href") for a in pg.locator("#nr-chat a").all()]
    assert q3.locator(".nr-card").count() >= 1
    # the outlets filter lists the hostile outlet name as text too
    pg.click("#nr-outlets input")
    pg.wait_for_selector("text=Example Wire <img src=x onerror=alert(2)>")
    pg.wait_for_timeout(500)
    assert pg.evaluate("() => document.querySelectorAll('img[onerror], img[src=\"x\"]').length") == 0
    assert page.dialogs == [] and page.errors == []
    shot(page, "xss-stories")


def test_brief_renders_as_an_event_list_and_opens_at_its_first_line_on_a_phone(browser, corpus_app):
    """A year brief on a 390 px wide screen: the events are a list, each dated and cited, with the source
    cards below; when it finishes, the reader sees its first line, not the end of its source cards."""
    ctx = browser.new_context(viewport={"width": 390, "height": 844}, is_mobile=True, has_touch=True)
    try:
        pg = ctx.new_page()
        pg.set_default_timeout(60_000)
        w = Watched(pg)
        open_chat(w, corpus_app)
        answer = ask(w, "What were the biggest AI stories of 2025?")
        pg.wait_for_timeout(1500)        # past Gradio's own autoscroll, which runs ~300 ms after an update
        events = answer.locator("ol.nr-brief > li.nr-event")
        assert events.count() >= 8
        for i in range(events.count()):
            ev = events.nth(i)
            assert ev.locator("time.nr-ev-date").first.inner_text().endswith("2025")
            assert ev.locator("a.nr-cite").count() >= 1
        cites = {a.get_attribute("href") for a in answer.locator("a.nr-cite").all()}
        assert answer.locator(".nr-card").count() == len(cites) >= 8
        geo = pg.evaluate("""() => {
            const answers = document.querySelectorAll('#nr-chat .nr-answer');
            const a = answers[answers.length - 1];
            let pane = a.parentElement;
            while (pane && !(/(auto|scroll)/.test(getComputedStyle(pane).overflowY) && pane.scrollHeight > pane.clientHeight))
                pane = pane.parentElement;
            const first = a.querySelector('.nr-body').getBoundingClientRect();
            const cards = a.querySelectorAll('.nr-card');
            const last = cards[cards.length - 1].getBoundingClientRect();
            const p = pane ? pane.getBoundingClientRect() : {top: 0, bottom: window.innerHeight};
            return {first: first.top, paneTop: p.top, paneBottom: p.bottom, view: window.innerHeight,
                    lastCard: last.top, tall: a.offsetHeight > (pane ? pane.clientHeight : window.innerHeight)};
        }""")
        assert geo["tall"], geo                                   # a long answer, taller than the chat pane
        assert geo["paneTop"] - 2 <= geo["first"] <= geo["paneTop"] + 80, geo   # its first line at the top
        assert 0 <= geo["first"] < geo["view"], geo                # and on screen
        assert geo["lastCard"] > geo["paneBottom"], geo            # the end of the source cards is below
        pg.screenshot(path=str(ARTIFACTS / "brief-phone.png"))
        assert w.dialogs == [] and w.errors == []
    finally:
        ctx.close()


def test_the_freshness_line_shows_a_later_sync_and_a_failing_feed_without_a_reload(page, tmp_path, feed_server):
    """The app serves a two-story store; after the page has loaded, feed syncs in another process (this
    one) ingest a feed from 127.0.0.1, then record a failing one. The open page shows each in turn on its
    own: the marker set on the window before the syncs proves there was no reload."""
    from ingest.pipeline import ingest_paths
    from ingest.sync import load_feeds, sync_once
    from rag.settings import Settings
    from test_app import AppServer, app_env
    from test_ingest import two_story_folder

    settings = Settings(store_dir=tmp_path / "store")
    assert ingest_paths([two_story_folder(tmp_path)], settings, progress=False).new == 2
    app = AppServer(["--store", str(settings.store_dir)],
                    app_env(tmp_path / "feedback.jsonl", NEWSRAG_FRESHNESS_REFRESH_SECONDS="1"),
                    tmp_path / "app.log", tmp_path / "feedback.jsonl")
    try:
        app.wait_ready()
        pg = page.page
        open_chat(page, app)
        fresh = pg.locator("#nr-fresh")
        assert fresh.inner_text().startswith("Store: 2 stories") and "synced" not in fresh.inner_text()
        pg.evaluate("window.__nrMarker = 'before-sync'")
        # two syncs, each seen in turn: a page that re-read the line once (say, a late load event) fails
        feeds = tmp_path / "feeds.yaml"
        feeds.write_text(f"- url: {feed_server}/good.xml\n")
        r = sync_once(load_feeds(feeds, 1800), settings)
        assert r.ingest and r.ingest["new"] == 2 and not r.failed
        pg.wait_for_function("() => { const t = document.querySelector('#nr-fresh').innerText;"
                             " return t.includes('4 stories') && t.includes('feeds last synced'); }", timeout=60_000)
        assert "failing" not in fresh.inner_text()
        feeds.write_text(f"- url: {feed_server}/good.xml\n- url: {feed_server}/broken.xml\n")
        r = sync_once(load_feeds(feeds, 1800), settings)          # good.xml is not due again yet
        assert list(r.failed) == [f"{feed_server}/broken.xml"] and r.not_due == 1
        pg.wait_for_function("() => document.querySelector('#nr-fresh').innerText.includes('failing: ')",
                             timeout=60_000)
        line = fresh.inner_text()
        assert f"failing: {feed_server}/broken.xml" in line and "4 stories" in line, line
        assert pg.evaluate("window.__nrMarker") == "before-sync"
        assert page.dialogs == [] and page.errors == []
    finally:
        app.stop()
