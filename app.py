"""`python app.py`: chat with the AI news in the store, every claim cited to a dated source.

With no network and no configuration it serves http://127.0.0.1:7860. On the first start (an empty or
missing store) it ingests `corpus/` (Settings.corpus_dir) first, printing progress to the console.

    python app.py [--store DIR] [--host HOST] [--port PORT]

Same knobs as environment variables: NEWSRAG_STORE_DIR, NEWSRAG_HOST, NEWSRAG_PORT; a login form with
NEWSRAG_AUTH_USER + NEWSRAG_AUTH_PASSWORD (programmatic clients may send the same pair as HTTP Basic, or
NEWSRAG_API_KEY as a bearer key); feedback lines go to NEWSRAG_FEEDBACK_PATH. Every request field is
capped (rag/limits.py) and the web server sits behind rag/interfaces/webguard.py.

API: a named endpoint `/ask` (gradio_client: `Client(url).predict("question", api_name="/ask")`, with
optional since/until "YYYY-MM-DD", outlets and tags lists) returns the same JSON as
`python -m rag ask --json`. The OpenAI-compatible `/v1/chat/completions` and `/v1/models`
(rag/interfaces/openai_api.py) are mounted beside the UI.
"""

import rag  # noqa: F401  (first: makes the environment offline-safe, incl. GRADIO_ANALYTICS_ENABLED=False)

import argparse
import json
import logging
import sys
import threading
import time
import traceback
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Iterator

from rag import limits
from rag.interfaces import ui
from rag.interfaces.common import is_loopback, port_problem  # noqa: F401  (app.port_problem is API)
from rag.interfaces.openai_api import mount as mount_openai_api
from rag.records import Filters, answer_to_dict
from rag.settings import Settings

log = logging.getLogger("newsrag.app")

CONCURRENCY = 10            # simultaneous chats/API calls; NewsBot is thread-safe
MAX_DROPDOWN_CHOICES = 200

CSS = """
#nr-chat .nr-answer { line-height: 1.5; }
#nr-chat .nr-answer p { margin: 0 0 .6em 0; }
.nr-cite { font-weight: 600; text-decoration: none; padding: 0 1px; color: var(--link-text-color, #2563eb); }
.nr-cite:hover { text-decoration: underline; }
.nr-unverified { text-decoration: underline dotted #b45309; text-decoration-thickness: 2px; text-underline-offset: 3px; }
.nr-badge { display: inline-block; font-size: .72em; padding: 0 .45em; margin-left: .3em; border-radius: .6em; vertical-align: middle; }
.nr-badge-unverified { background: #fef3c7; color: #92400e; border: 1px solid #f59e0b; }
.nr-timeline { list-style: none; padding-left: 0; margin: 0 0 .6em 0; border-left: 3px solid #93c5fd; }
.nr-timeline li { margin: 0 0 .5em 0; padding-left: .8em; }
.nr-tl-date { font-weight: 700; font-variant-numeric: tabular-nums; margin-right: .3em; }
.nr-sources { margin-top: .6em; display: grid; gap: .5em; }
.nr-sources-head, .nr-related-head { font-size: .8em; text-transform: uppercase; letter-spacing: .05em; opacity: .75; font-weight: 600; }
.nr-card { border: 1px solid var(--border-color-primary, #d1d5db); border-left: 4px solid #3b82f6; border-radius: 6px; padding: .45em .65em; background: var(--background-fill-secondary, #f9fafb); font-size: .92em; }
.nr-card:target { outline: 2px solid #f59e0b; }
.nr-card-n { font-weight: 700; color: #2563eb; }
.nr-card-title { font-weight: 600; }
.nr-card-meta { font-size: .88em; opacity: .85; }
.nr-card-url { font-size: .8em; word-break: break-all; opacity: .8; }
.nr-url-unsafe { text-decoration: line-through; }
.nr-snippet { margin: .35em 0 0 0; padding: .2em .6em; border-left: 2px solid #cbd5e1; font-size: .92em; }
.nr-snippet mark { background: #fef08a; color: inherit; padding: 0 1px; }
.nr-notices { margin-top: .4em; }
.nr-notice { font-size: .88em; background: #eff6ff; border: 1px solid #bfdbfe; border-radius: 6px; padding: .3em .6em; margin-bottom: .3em; color: #1e3a8a; }
.nr-meta { margin-top: .5em; font-size: .8em; opacity: .8; }
.nr-grounded { font-weight: 600; }
.nr-grounded-ok { color: #15803d; } .nr-grounded-mid { color: #b45309; } .nr-grounded-low { color: #b91c1c; }
.nr-refusal, .nr-error { display: flex; gap: .6em; align-items: flex-start; border-radius: 8px; padding: .55em .7em; }
.nr-refusal { background: #f3f4f6; border: 1px dashed #6b7280; color: #374151; }
.nr-refusal-icon, .nr-error-icon { font-size: 1.4em; line-height: 1; font-weight: 700; }
.nr-refusal-head, .nr-error-head { font-weight: 700; margin-bottom: .2em; }
.nr-error { background: #fef2f2; border: 1px solid #fca5a5; color: #7f1d1d; }
.nr-related { margin-top: .5em; border: 1px dashed #9ca3af; border-radius: 6px; padding: .4em .7em; font-size: .9em; }
.nr-related ul { margin: .2em 0 0 1.1em; padding: 0; }
.nr-typing { opacity: .6; font-size: .85em; }
#nr-fresh { font-size: .9em; opacity: .85; }
#nr-examples button { text-align: left; white-space: normal; }
.nr-brief { padding-left: 1.4em; margin: 0 0 .6em 0; }
.nr-event { margin: 0 0 .55em 0; }
.nr-ev-date { font-weight: 700; }
.nr-ev-outlets { font-size: .85em; opacity: .8; }
.nr-ev-outlets::after { content: " —"; }
.nr-ev-also { margin: .2em 0 0 0; padding-left: 1.1em; font-size: .92em; list-style: circle; }
.nr-brief-head { font-weight: 700; margin: .4em 0 .3em 0; text-transform: uppercase; font-size: .85em; letter-spacing: .04em; }
"""

# Reading order: the chatbot follows a streaming answer to the bottom, which for a long answer (a brief,
# a timeline) leaves a reader -- on a phone, always -- looking at its last source card. Once an answer is
# final and taller than the chat pane, bring its first line to the top instead. Gradio's own autoscroll
# runs ~300 ms after each update, so the scroll is repeated after it; a reader who scrolled away since
# is left alone.
READING_ORDER_JS = """
() => {
  const done = new Set();
  const pane = (el) => { let p = el.parentElement; while (p && p !== document.body) {
      const s = getComputedStyle(p); if (/(auto|scroll)/.test(s.overflowY) && p.scrollHeight > p.clientHeight) return p;
      p = p.parentElement; } return null; };
  const toTop = (answer) => {
    const box = pane(answer);
    const bubble = answer.closest('.message-row, .message') || answer;
    if (box) box.scrollTop += bubble.getBoundingClientRect().top - box.getBoundingClientRect().top - 8;
    const top = bubble.getBoundingClientRect().top;
    if (top < 0 || top > window.innerHeight * 0.5) window.scrollBy(0, top - 8);
  };
  const check = () => {
    const answers = document.querySelectorAll('#nr-chat .nr-answer');
    const last = answers[answers.length - 1];
    if (!last || last.classList.contains('nr-streaming') || !last.id || done.has(last.id)) return;
    done.add(last.id);
    const box = pane(last);
    if (last.offsetHeight <= (box ? box.clientHeight : window.innerHeight)) return;
    let moved = false;
    const stop = () => { moved = true; };
    for (const ms of [30, 450, 900]) setTimeout(() => {
      if (moved) return;
      const el = document.getElementById(last.id);
      if (el) toTop(el);
      if (ms === 30) ['wheel', 'touchmove', 'keydown'].forEach(t => window.addEventListener(t, stop, {once: true, passive: true}));
    }, ms);
  };
  new MutationObserver(check).observe(document.body, {childList: true, subtree: true});
}
"""


# ----------------------------------------------------------------------------------- start-up

def bind_warning(host: str, has_auth: bool) -> str | None:
    """The warning printed when the chat would be reachable from other machines without a password."""
    if is_loopback(host) or has_auth:
        return None
    bar = "!" * 78
    return (f"\n{bar}\n[newsrag] WARNING: binding to {host or 'all interfaces'} exposes the chat to every machine "
            "that can reach this one, WITHOUT authentication.\n  Set NEWSRAG_AUTH_USER and NEWSRAG_AUTH_PASSWORD, "
            f"or bind to 127.0.0.1.\n{bar}\n")


def store_is_empty(settings: Settings) -> bool:
    from rag.store import EmptyStoreError, NewsStore

    try:
        store = NewsStore(settings)
    except EmptyStoreError:
        return True
    try:
        return store.count_stories() == 0
    finally:
        store.close()


def ingest_corpus(settings: Settings) -> bool:
    """First start: build the store from settings.corpus_dir, progress on the console. True when usable."""
    from ingest.pipeline import ingest_paths

    corpus = Path(settings.corpus_dir)
    if not corpus.exists():
        print(f"[newsrag] the store at {settings.store_dir} is empty and the corpus folder {corpus} does not "
              "exist; serving anyway (answers will explain how to ingest).", flush=True)
        return False
    print(f"[newsrag] the store at {settings.store_dir} is empty: ingesting {corpus} first "
          "(one-time, usually under a minute)...", flush=True)
    t0 = time.perf_counter()
    marks: dict[str, float] = {}

    def say(msg: str) -> None:
        now = time.perf_counter()
        if msg.startswith("embedding"):
            marks["embed"] = now
        elif msg.startswith("building the lexical index"):
            marks["embedded"] = now
        print(f"[ingest +{now - t0:5.1f}s] {msg}", flush=True)

    report = ingest_paths([corpus], settings, progress=True, on_event=say)
    n = report.new + report.updated + report.merged_duplicates
    embed_secs = max(marks.get("embedded", 0.0) - marks.get("embed", 0.0), 1e-9) if "embed" in marks else 0.0
    rate = (f"{n / embed_secs:.1f} stories/s, {report.chunks_embedded / embed_secs:.1f} chunks/s while embedding"
            if embed_secs else "0.0 stories/s (nothing new to embed)")
    print(f"[newsrag] ingested {report.stories_total} stories ({report.chunks_total} chunks) in "
          f"{report.seconds:.1f}s including model load - {rate}; {len(report.skipped)} skipped", flush=True)
    if report.error:
        print(f"[newsrag] ingest failed: {report.error}", file=sys.stderr, flush=True)
    return report.ok and report.stories_total > 0


# --------------------------------------------------------------------------------- the chat

class ChatApp:
    """Everything the UI and the API do, without gradio: testable by calling the methods directly."""

    def __init__(self, settings: Settings, bot: Any = None, bot_error: str | None = None):
        self.settings = settings
        self.bot = bot
        self.bot_error = bot_error
        self._feedback_lock = threading.Lock()
        self._stats_lock = threading.Lock()
        self._stats_key: tuple | None = None
        self.stats: dict[str, Any] = {}
        self.examples: list[str] = []
        if bot is not None:
            try:
                self.stats = bot.stats()
                self.examples = ui.example_questions(bot.store.story_rows(), today=settings.today_date())
            except Exception:  # the UI still comes up; answers report the store problem
                log.exception("reading store stats failed")

    # -- helpers -------------------------------------------------------------------------------
    @property
    def generator_name(self) -> str:
        return getattr(self.bot, "generator_name", "unavailable") if self.bot is not None else "unavailable"

    def freshness(self) -> str:
        return ui.freshness_line(self.stats) if self.stats else "No stories loaded yet."

    def live_freshness(self) -> str:
        """The freshness line as of now, for the page's timer: every open page asks every few seconds,
        so the store's stats (a scan of every story) are read again only when an ingest published a new
        snapshot or the feed sync wrote its state since the last look."""
        if self.bot is None:
            return self.freshness()
        from rag.store import SYNC_STATE
        try:
            store = self.bot.store
            try:
                synced = (store.dir / SYNC_STATE).stat().st_mtime_ns
            except OSError:
                synced = 0
            key = (store.snapshot_id(), synced)
            with self._stats_lock:
                if key != self._stats_key:
                    self.stats, self._stats_key = self.bot.stats(), key
        except Exception:  # the line keeps its last value; answering is unaffected
            log.exception("refreshing the store stats failed")
        return self.freshness()

    def outlet_choices(self) -> list[str]:
        return ui.ranked(self.stats.get("outlets") or {})[:MAX_DROPDOWN_CHOICES]

    def tag_choices(self) -> list[str]:
        return ui.ranked(self.stats.get("tags") or {})[:MAX_DROPDOWN_CHOICES]

    @staticmethod
    def make_filters(since: Any = None, until: Any = None, outlets: Any = None, tags: Any = None,
                     settings: Settings | None = None) -> Filters:
        """Filters from what a client sent; RequestError (a ValueError) names the field over its cap."""
        return limits.make_filters(since, until, outlets, tags, settings or Settings())

    def _need_bot(self):
        if self.bot is None:
            from rag.store import EmptyStoreError
            raise EmptyStoreError(self.bot_error or "The news store is not loaded.")
        return self.bot

    @staticmethod
    def history_of(turns: list[dict]) -> list[tuple[str, str]]:
        return [(t["question"], t["answer"]["answer"]) for t in turns if t.get("answer")]

    @staticmethod
    def messages(turns: list[dict]) -> list[dict]:
        out: list[dict] = []
        for t in turns:
            out.append({"role": "user", "content": ui.render_user(t["question"])})
            out.append({"role": "assistant", "content": t["html"]})
        return out

    # -- the chat turn (a generator: the UI streams every yield) ---------------------------------
    def chat(self, message: Any, turns: list[dict] | None, since: Any = None, until: Any = None,
             outlets: Any = None, tags: Any = None) -> Iterator[list[dict]]:
        """Append one turn to `turns` and yield the turns list as the answer streams in."""
        from rag.pipeline import QuestionError
        from rag.store import StoreError

        turns = [dict(t) for t in (turns or [])]
        question = message if isinstance(message, str) else ("" if message is None else str(message))
        history = limits.recent_history(self.history_of(turns), self.settings)
        turn = {"id": ui.new_message_id(), "question": question, "answer": None, "error": None,
                "html": ui.render_streaming("")}
        turns.append(turn)

        def snap() -> list[dict]:   # each yield is a snapshot: later changes must not rewrite earlier frames
            return [*turns[:-1], dict(turn)]

        yield snap()
        try:
            filters = self.make_filters(since, until, outlets, tags, self.settings)
            bot = self._need_bot()
            text = ""
            last = 0.0
            for ev in bot.stream(question, filters=filters, history=history):
                kind = ev.get("type")
                if kind == "text":
                    text += ev.get("text", "")
                elif kind == "replace":
                    text = ev.get("text", "")
                elif kind == "final":
                    d = answer_to_dict(ev["answer"])
                    turn["answer"] = d
                    turn["html"] = ui.render_answer(d, turn["id"])
                    yield snap()
                    return
                now = time.perf_counter()
                if now - last > 0.05:
                    last = now
                    turn["html"] = ui.render_streaming(text)
                    yield snap()
            raise RuntimeError("the answer stream ended without a final answer")
        except QuestionError as exc:
            turn["error"] = str(exc)
            turn["html"] = ui.render_error(str(exc), "Let's adjust the question")
        except limits.RequestError as exc:   # a filter or the history over its cap, a date that is not one
            turn["error"] = str(exc)
            turn["html"] = ui.render_error(str(exc), "The conversation is too long" if exc.field == "history"
                                           else "Check the filters")
        except ValueError as exc:
            turn["error"] = str(exc)
            turn["html"] = ui.render_error(str(exc), "Check the filters")
        except StoreError as exc:
            turn["error"] = str(exc)
            turn["html"] = ui.render_error(str(exc), "The news store isn't ready")
        except Exception as exc:  # backend down, a bug: say so in the chat, keep serving
            log.error("answering %r failed:\n%s", question[:200], traceback.format_exc())
            turn["error"] = f"{type(exc).__name__}: {exc}"
            turn["html"] = ui.render_error(
                f"Something went wrong on my side while answering ({type(exc).__name__}). The app is still "
                "running: try again, or rephrase the question.", "I couldn't answer that")
        yield snap()

    # -- API ------------------------------------------------------------------------------------
    def ask_json(self, question: str, since: str = "", until: str = "", outlets: list[str] | None = None,
                 tags: list[str] | None = None) -> dict:
        """One question -> the answer dict of `python -m rag ask --json`. Raises QuestionError/ValueError."""
        filters = self.make_filters(since, until, outlets, tags, self.settings)
        bot = self._need_bot()
        return answer_to_dict(bot.ask(question, filters=filters))

    # -- feedback -------------------------------------------------------------------------------
    def record_feedback(self, turns: list[dict] | None, index: Any, liked: Any, value: Any = None) -> dict | None:
        """Append one JSONL line for a thumbs up/down on the assistant message at `index`.

        The line is built from our own record of the turn; of what the client sends only the vote, the
        message index and -- for a turn we hold no record of -- its copy of the message, capped at
        `max_feedback_chars` (RequestError above it), are kept. Once the file reaches
        `max_feedback_file_bytes` nothing more is written (None; logged)."""
        i = index[0] if isinstance(index, (list, tuple)) and index else index
        i = i if isinstance(i, int) and not isinstance(i, bool) else None
        turns = turns or []
        turn = None
        if i is not None and 0 <= i // 2 < len(turns):
            turn = turns[i // 2]
        # what the client says it voted on matters only when we hold no record of that turn
        fallback = limits.clip_feedback(value, self.settings) if turn is None else ""
        vote = liked if isinstance(liked, bool) or liked in ("Like", "Dislike", None) else "other"
        rec = ui.feedback_record(question=turn["question"] if turn else "", answer=(turn or {}).get("answer"),
                                 vote=vote, when=datetime.now(timezone.utc).isoformat(timespec="seconds"),
                                 index=i, text_fallback=(turn or {}).get("error") or fallback or "")
        line = (json.dumps(rec, ensure_ascii=False) + "\n").encode("utf-8")
        path = Path(self.settings.feedback_path)
        with self._feedback_lock:
            path.parent.mkdir(parents=True, exist_ok=True)
            size = path.stat().st_size if path.exists() else 0
            if not limits.feedback_room(size, len(line), self.settings):
                log.warning("feedback not saved: %s is at its cap of %d bytes (NEWSRAG_MAX_FEEDBACK_FILE_BYTES)",
                            path, self.settings.max_feedback_file_bytes)
                return None
            with path.open("ab") as fh:
                fh.write(line)
        return rec


# --------------------------------------------------------------------------------------- UI

def _fresh_html(line: str) -> str:
    return f'<div id="nr-fresh"><b>Store:</b> {ui.esc(line)}</div>'


def build_ui(chat: ChatApp):
    import gradio as gr

    def _respond(message, turns, since, until, outlets, tags):
        for t in chat.chat(message, turns, since, until, outlets, tags):
            yield "", ChatApp.messages(t), t

    def _retry(turns, since, until, outlets, tags):
        turns = list(turns or [])
        if not turns:
            yield gr.skip(), gr.skip(), gr.skip()
            return
        last = turns.pop()
        for t in chat.chat(last["question"], turns, since, until, outlets, tags):
            yield gr.skip(), ChatApp.messages(t), t

    def _clear():
        return "", [], []

    def _like(turns, data: gr.LikeData):
        try:
            chat.record_feedback(turns, data.index, data.liked, data.value)
        except limits.RequestError as exc:
            raise gr.Error(str(exc), title="Feedback not saved") from None

    def ask(question: str, since: str = "", until: str = "", outlets: list[str] | None = None,
            tags: list[str] | None = None) -> dict:
        """Answer one question about the AI news; returns the JSON of `python -m rag ask --json`.

        Args:
            question: the question, e.g. "What did Alibaba announce about Qwen?"
            since: only stories published on or after this day, YYYY-MM-DD (optional)
            until: only stories published on or before this day, YYYY-MM-DD (optional)
            outlets: only stories from these outlets (optional)
            tags: only stories with these tags (optional)
        """
        from rag.pipeline import QuestionError
        from rag.store import StoreError

        try:
            return chat.ask_json(question, since or "", until or "", outlets or [], tags or [])
        except (QuestionError, ValueError, StoreError) as exc:
            raise gr.Error(str(exc), title="Cannot answer") from None
        except Exception as exc:
            log.error("/ask failed:\n%s", traceback.format_exc())
            raise gr.Error(f"Something went wrong while answering ({type(exc).__name__}); the app is still "
                           "running, try again.", title="Cannot answer") from None

    with gr.Blocks(title="AI News, cited", fill_height=False) as demo:
        turns = gr.State([])
        with gr.Row(equal_height=False):
            with gr.Column(scale=3, min_width=420):
                gr.HTML('<h1 style="margin:.2em 0 0 0">AI News, cited</h1>'
                        '<div style="opacity:.8">Answers from the stories in the store only; every [n] '
                        'links to its source below the answer.</div>')
                chatbot = gr.Chatbot(
                    elem_id="nr-chat", label="Chat", show_label=False, height=640, render_markdown=False, sanitize_html=True,
                    allow_tags=False, feedback_options=("Like", "Dislike"), buttons=["copy"],
                    group_consecutive_messages=False,
                    placeholder="Ask about AI companies, models, chips, policy... Try an example below.")
                with gr.Row():
                    msg = gr.Textbox(elem_id="nr-question", show_label=False, scale=8, autofocus=True,
                                     placeholder="Ask a question about AI news, e.g. What did Alibaba announce about Qwen?",
                                     max_lines=4, submit_btn=False)
                    send = gr.Button("Ask", variant="primary", scale=1, elem_id="nr-send", min_width=80)
                with gr.Row():
                    retry = gr.Button("↻ Retry", size="sm", elem_id="nr-retry")
                    clear = gr.Button("✕ Clear", size="sm", elem_id="nr-clear")
                example_btns = []
                if chat.examples:
                    with gr.Column(elem_id="nr-examples"):
                        gr.HTML('<div class="nr-sources-head">Try asking</div>')
                        with gr.Row():
                            for q in chat.examples:
                                example_btns.append((gr.Button(q, size="sm", variant="secondary"), q))
            with gr.Column(scale=1, min_width=260):
                fresh = gr.HTML(_fresh_html(chat.freshness()))
                gr.HTML(f'<div id="nr-generator"><b>Generator:</b> {ui.esc(chat.generator_name)}</div>')
                gr.HTML('<div class="nr-sources-head" style="margin-top:.6em">Filters</div>')
                since = gr.Textbox(label="Since (YYYY-MM-DD)", placeholder="e.g. 2026-01-01", elem_id="nr-since")
                until = gr.Textbox(label="Until (YYYY-MM-DD)", placeholder="e.g. 2026-05-31", elem_id="nr-until")
                outlets = gr.Dropdown(choices=chat.outlet_choices(), multiselect=True, label="Outlets",
                                      info="most frequent first", elem_id="nr-outlets")
                tags = gr.Dropdown(choices=chat.tag_choices(), multiselect=True, label="Tags",
                                   info="most frequent first", elem_id="nr-tags")
                gr.HTML('<div style="font-size:.82em;opacity:.75;margin-top:.5em">'
                        '<b>[n]</b> citations are checked against the source text; '
                        '<span class="nr-unverified">dotted</span> sentences are unverified. '
                        'Thumbs up/down on an answer is saved as feedback.</div>')

        inputs = [msg, turns, since, until, outlets, tags]
        outputs = [msg, chatbot, turns]
        private = dict(api_visibility="private")
        msg.submit(_respond, inputs, outputs, show_progress="hidden", **private)
        send.click(_respond, inputs, outputs, show_progress="hidden", **private)
        retry.click(_retry, [turns, since, until, outlets, tags], outputs, show_progress="hidden", **private)
        chatbot.retry(_retry, [turns, since, until, outlets, tags], outputs, show_progress="hidden", **private)
        clear.click(_clear, None, outputs, queue=False, **private)
        chatbot.clear(_clear, None, outputs, queue=False, **private)
        chatbot.like(_like, [turns], None, queue=False, **private)
        for btn, q in example_btns:
            btn.click(lambda q=q: q, None, msg, queue=False, **private).then(
                _respond, inputs, outputs, show_progress="hidden", **private)
        # the freshness line follows feed syncs and ingests without a reload: on load, then every tick
        refresh = dict(fn=lambda: _fresh_html(chat.live_freshness()), inputs=None, outputs=fresh, queue=False,
                       show_progress="hidden", **private)
        demo.load(**refresh)
        gr.Timer(chat.settings.freshness_refresh_seconds).tick(**refresh)
        gr.api(ask, api_name="ask")
    demo.queue(default_concurrency_limit=CONCURRENCY, max_size=256)
    return demo


# ------------------------------------------------------------------------------------- main

def parse_args(argv: list[str] | None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(prog="python app.py", description="Chat with the AI news in the store.")
    ap.add_argument("--store", type=Path, help="store directory (default: NEWSRAG_STORE_DIR or ./store)")
    ap.add_argument("--host", help="interface to bind (default: NEWSRAG_HOST or 127.0.0.1)")
    ap.add_argument("--port", type=int, help="port (default: NEWSRAG_PORT or 7860)")
    ap.add_argument("--sync-feeds", type=Path, help="keep the feeds of this YAML file synced in the background")
    ap.add_argument("--sync-every", default="30m", help="with --sync-feeds: how often (default 30m)")
    return ap.parse_args(argv)


def make_settings(args: argparse.Namespace) -> Settings:
    over: dict[str, Any] = {}
    if args.store:
        over["store_dir"] = args.store
    if args.host:
        over["host"] = args.host
    if args.port is not None:
        over["port"] = args.port
    return Settings(**over)


def load_bot(settings: Settings) -> tuple[Any, str | None]:
    from rag.pipeline import NewsBot
    from rag.store import StoreError

    try:
        return NewsBot(settings), None
    except StoreError as exc:
        return None, str(exc)


def main(argv: list[str] | None = None) -> int:
    handler = logging.StreamHandler()
    handler.setLevel(logging.INFO)
    handler.setFormatter(logging.Formatter("[%(name)s] %(levelname)s %(message)s"))
    logging.basicConfig(level=logging.INFO, handlers=[handler])
    for noisy in ("httpx", "httpcore", "bm25s", "sentence_transformers", "chromadb"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    t0 = time.perf_counter()
    args = parse_args(argv)
    try:
        settings = make_settings(args)
    except Exception as exc:
        print(f"error: invalid settings: {exc}", file=sys.stderr)
        return 2
    user = settings.auth_user
    password = settings.auth_password.get_secret_value()
    if bool(user) != bool(password):
        print("error: set both NEWSRAG_AUTH_USER and NEWSRAG_AUTH_PASSWORD for the login, or neither.",
              file=sys.stderr)
        return 2
    auth = (user, password) if user else None
    busy = port_problem(settings.host, settings.port)
    if busy:
        print(f"error: {busy}", file=sys.stderr)
        return 2

    if store_is_empty(settings):
        ingest_corpus(settings)
    if args.sync_feeds:
        from ingest.sync import parse_duration, start_background_sync
        try:
            start_background_sync(args.sync_feeds, settings, parse_duration(args.sync_every))
        except ValueError as exc:
            print(f"error: {exc}", file=sys.stderr)
            return 2

    # Load the bot (model + store) while gradio imports: the two are the slow part of the start.
    result: dict[str, Any] = {}
    loader = threading.Thread(target=lambda: result.update(zip(("bot", "err"), load_bot(settings))), daemon=True)
    loader.start()
    import gradio  # noqa: F401
    loader.join()
    bot, err = result.get("bot"), result.get("err")
    if bot is None:
        print(f"[newsrag] warning: no stories to answer from: {err}", file=sys.stderr, flush=True)
    chat = ChatApp(settings, bot=bot, bot_error=err)
    demo = build_ui(chat)

    warning = bind_warning(settings.host, auth is not None)
    if warning:
        print(warning, file=sys.stderr, flush=True)
    if bot is not None:
        # warm every stage (first-call costs of torch, the indexes, the verifier) in the background
        threading.Thread(target=lambda: _warm(bot), daemon=True).start()
        print(f"[newsrag] {chat.freshness()}; generator {chat.generator_name}; "
              f"model loaded in {bot.load_seconds:.1f}s", flush=True)
    demo.launch(server_name=settings.host, server_port=settings.port, share=False, auth=auth,
                auth_message="AI News, cited" if auth else None, css=CSS, js=READING_ORDER_JS, show_error=True,
                ssr_mode=False, footer_links=["api"], quiet=True, inbrowser=False, prevent_thread_lock=True,
                max_file_size=1, app_kwargs={"middleware": [guard_middleware(demo, settings, auth)]})
    mount_openai_api(demo.app, settings, chat._need_bot)       # /v1/chat/completions, /v1/models
    shown = f"[{settings.host}]" if ":" in settings.host else settings.host
    print(f"[newsrag] ready in {time.perf_counter() - t0:.1f}s: http://{shown}:{settings.port}"
          f"{' (login required)' if auth else ''}  - Ctrl+C to stop", flush=True)
    try:
        demo.block_thread()
    except KeyboardInterrupt:
        pass
    return 0


# Gradio routes that take files: the app shows no upload widget, so nothing may be sent there.
UPLOAD_PATHS = ("/gradio_api/upload", "/gradio_api/process_recording")
LOGIN_PATHS = ("/login",)


def guard_middleware(demo, settings: Settings, auth: tuple[str, str] | None):
    """rag.interfaces.webguard in front of Gradio's server: body cap, no uploads, login throttling, and HTTP Basic /
    bearer-key requests turned into Gradio's own login session (one per user, reused)."""
    import secrets

    from starlette.middleware import Middleware

    from rag.interfaces.webguard import Guard, LoginThrottle

    sessions: dict[str, str] = {}
    lock = threading.Lock()

    def session_for(user: str) -> tuple[str, str]:
        app = demo.server_app
        with lock:
            token = sessions.get(user)
            if token is None or token not in app.tokens:
                token = sessions[user] = secrets.token_urlsafe(24)
                app.tokens[token] = user
        return f"access-token-{app.cookie_id}", token

    api_key = settings.api_key.get_secret_value()
    throttle = LoginThrottle(free_failures=settings.login_free_failures, base_seconds=settings.login_backoff_seconds,
                             cap_seconds=settings.login_backoff_cap_seconds)
    return Middleware(Guard, max_request_bytes=settings.max_request_bytes, upload_paths=UPLOAD_PATHS,
                      login_paths=LOGIN_PATHS, users=dict([auth]) if auth else {},
                      api_key=api_key if auth else "", throttle=throttle,
                      session_for=session_for if auth else None)


def _warm(bot) -> None:
    try:
        bot.ask("What did OpenAI announce about its latest model?")  # retrieval, generation and verification
    except Exception:  # only a warm-up
        log.debug("warm-up failed", exc_info=True)


if __name__ == "__main__":
    sys.exit(main())
