"""NewsBot with a real LLM backend: SmolLM2-135M behind a real `python -m llama_cpp.server`, over the
real corpus store. The model is tiny and unreliable, which is the point: whatever it writes, the bot's
answer keeps only verified citations, falls back when the server dies, and never lets a bad follow-up
rewrite steer retrieval.
"""
from __future__ import annotations

import re
import threading
import time

import pytest

from rag.pipeline import NewsBot
from tests.test_pipeline import assert_snippet_from_story
from tests.llm_server import killable_llama_server, llama_server  # noqa: F401  (pytest fixtures)

pytestmark = pytest.mark.llm


def llm_bot(corpus_store, base_url: str, **kw) -> NewsBot:
    values = dict(generator="openai", llm_base_url=base_url, llm_model="smollm2", llm_max_tokens=160,
                  llm_temperature=0.0, llm_timeout=120.0, llm_max_retries=1)
    values.update(kw)
    return NewsBot(corpus_store.model_copy(update=values))


def assert_citations_hold(bot: NewsBot, a) -> None:
    """Whichever path the answer took (the LLM's kept, replaced by the extractive one, or a fallback),
    its citations are real: each marker has a citation and each citation a marker, every snippet is the
    cited story's own text, and an LLM answer that was kept is grounded at least as much as required."""
    assert not a.refused and a.citations, a.text
    cited = {c.n for c in a.citations}
    assert {int(n) for n in re.findall(r"\[(\d+)\]", a.text)} == cited, a.text
    bare = " ".join(re.sub(r"\s*\[\d+\]", "", a.text).split())
    for c in a.citations:
        assert c.sentence and " ".join(c.sentence.split()) in bare, (c.sentence, a.text)
        assert_snippet_from_story(bot, c)
    assert 0 < a.grounded_ratio <= 1
    if a.generator != "extractive":
        assert a.grounded_ratio >= bot.settings.llm_min_grounded
        assert not any(f.startswith(("replaced:", "fallback:")) for f in a.flags)


def test_llm_answer_keeps_only_verified_citations(corpus_store, llama_server):
    bot = llm_bot(corpus_store, llama_server.base_url)
    events = list(bot.stream("What did Alibaba announce about Qwen3-Next?"))
    a = events[-1]["answer"]
    replaced = any(f.startswith("replaced:") for f in a.flags)
    assert a.generator == ("extractive" if replaced else "openai:smollm2")
    assert_citations_hold(bot, a)
    # the LLM's text streamed only as verified sentences: none of them is one the answer lists as unsupported
    for e in events:
        if e["type"] == "text":
            assert not any(u in e["text"] for u in a.unsupported_sentences), e["text"]


def kill_when_answering(server, timeout: float = 600.0) -> threading.Thread:
    """SIGKILL the server as soon as it logs the chat request (llama_cpp.server logs it once the first
    token is ready): the crash lands while the answer is being streamed, whatever its length."""
    def watch():
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and server.process.poll() is None:
            if "POST /v1/chat/completions" in server.log_tail(200):
                server.kill()
                return
            time.sleep(0.02)

    t = threading.Thread(target=watch, daemon=True)
    t.start()
    return t


def test_server_killed_mid_answer_falls_back_to_the_sources(corpus_store, killable_llama_server):
    bot = llm_bot(corpus_store, killable_llama_server.base_url, llm_max_tokens=768, llm_max_retries=0)
    watcher = kill_when_answering(killable_llama_server)
    seen = list(bot.stream("Describe in detail everything Alibaba announced about Qwen3-Next."))
    watcher.join(timeout=5)
    final = seen[-1]["answer"]
    assert killable_llama_server.process.poll() is not None, "the server was never killed"
    assert seen[-1]["type"] == "final" and not final.refused, final.text
    assert "fallback:llm-unavailable" in final.flags, (final.flags, killable_llama_server.log_tail())
    assert final.generator == "extractive"
    assert_citations_hold(bot, final)
    assert any("could not answer" in n for n in final.notices), final.notices
    # anything the model streamed before it died is withdrawn: what a client shows is the final text
    last_replace = max((i for i, e in enumerate(seen) if e["type"] == "replace"), default=-1)
    shown = (seen[last_replace]["text"] if last_replace >= 0 else "") + "".join(
        e["text"] for e in seen[last_replace + 1:] if e["type"] == "text")
    assert shown == final.text


def test_follow_up_is_condensed_or_rewritten_and_keeps_its_subject(corpus_store, llama_server):
    bot = llm_bot(corpus_store, llama_server.base_url)
    history = [("What did Nvidia announce about its latest AI chips?", "Nvidia announced new chips. [1]")]
    a = bot.chat("And AMD?", history)
    how = [f for f in a.flags if f.startswith("followup:")]
    assert how in (["followup:llm"], ["followup:rules"]), a.flags
    assert "AMD" in a.standalone_question and a.standalone_question != "And AMD?"
    if how == ["followup:rules"]:          # SmolLM2's rewrite was not trusted: the rules' version is used
        assert a.standalone_question == "What did AMD announce about its latest AI chips?"
    assert_citations_hold(bot, a)


def test_unreachable_llm_still_rewrites_follow_ups_by_rule(corpus_store):
    from tests.llm_server import free_port

    bot = llm_bot(corpus_store, f"http://127.0.0.1:{free_port()}/v1", llm_max_retries=0, llm_timeout=5.0)
    a = bot.chat("And AMD?", [("What did Nvidia announce about its latest AI chips?", "...")])
    assert "followup:rules" in a.flags
    assert a.standalone_question == "What did AMD announce about its latest AI chips?"
    assert "fallback:llm-unavailable" in a.flags and not a.refused
    assert a.generator == "extractive"
    assert_citations_hold(bot, a)
