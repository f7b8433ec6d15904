"""NewsBot: the one object that answers. Question -> retrieved Sources -> generated text -> verified Answer.

Every answer, whichever generator wrote it, passes through rag.verify before the user sees its final
form; an LLM answer that is mostly unsupported is replaced by the extractive one, and a question the
store cannot answer is refused with the nearest stories offered as related reading (not as support).
"""
from __future__ import annotations

import re
import time
from dataclasses import replace
from typing import Any, Iterator, Sequence

from rag.embedder import get_embedder
from rag.followup import accept_condensed, is_followup, rewrite_followup
from rag.generators.base import GenerationRequest, GeneratorUnavailable
from rag.generators.extractive import ExtractiveGenerator, human_date
from rag.limits import RequestError, check_filters, check_history, check_k, message_parts
from rag.records import Answer, Filters, Source
from rag.retrieval import Retrieval, Retriever
from rag.settings import Settings
from rag.store import EmptyStoreError, NewsStore
from rag.text import ABBREVIATIONS, SENTENCE_INITIAL
from rag.untrusted import printable
from rag.verify import verify_answer

History = Sequence[tuple[str, str]]


class QuestionError(RequestError):
    """The question cannot be asked as given; the message tells the user why."""

    def __init__(self, message: str):
        super().__init__("question", message)


REFUSAL = "The news I hold doesn't cover this"

# Where a streamed sentence ends: end punctuation (and the [n] markers after it) before the next
# sentence's first character, or a line break. rag.text.split_sentences' abbreviations do not end one.
_SENTENCE_END = re.compile(r"[.!?…][\"'”’)]*(?:\s*\[[^\]\n]{1,24}\])*[\"'”’)]*[ \t]+(?=[\"'“‘(]?" + SENTENCE_INITIAL + r")|\n")


def sentence_cut(buf: str) -> int:
    """How much of a streamed buffer is whole sentences (0: none yet)."""
    cut = 0
    for m in _SENTENCE_END.finditer(buf):
        if m.group(0) != "\n" and buf[m.start()] == ".":
            last = re.search(r"([A-Za-z.]+)\.$", buf[:m.start() + 1])
            word = last.group(1).lower().rstrip(".") if last else ""
            if word in ABBREVIATIONS or (len(word) == 1 and word.isalpha()):
                continue
        cut = m.end()
    return cut


def _listing(things: list[str]) -> str:
    things = things[:3]
    return things[0] if len(things) == 1 else ", ".join(things[:-1]) + " or " + things[-1]


def validate_question(question: Any, max_chars: int) -> str:
    if not isinstance(question, str):
        raise QuestionError(f"A question must be text, not {type(question).__name__}.")
    q = " ".join(printable(question).split())       # no control characters or escape sequences
    if not q:
        raise QuestionError("The question is empty: ask something about AI news, e.g. "
                            "\"What did Alibaba announce about Qwen?\"")
    if len(q) > max_chars:
        raise QuestionError(f"The question is {len(q)} characters long; the limit is {max_chars}. "
                            "Shorten it to the part you want answered.")
    if sum(ch.isalnum() for ch in q) < 2:
        raise QuestionError("The question has no words in it.")
    return q


def normalise_history(history: Any) -> list[tuple[str, str]]:
    """Accept (user, assistant) pairs or OpenAI/Gradio-style message dicts."""
    if not history:
        return []
    pairs: list[tuple[str, str]] = []
    pending_user: str | None = None
    for item in history:
        if isinstance(item, dict):
            role, content = item.get("role"), " ".join(message_parts(item.get("content")))
            if role == "user":
                pending_user = content
            elif role == "assistant" and pending_user is not None:
                pairs.append((pending_user, content))
                pending_user = None
        elif isinstance(item, (list, tuple)) and len(item) == 2:
            pairs.append((str(item[0] or ""), str(item[1] or "")))
    return pairs


def answer_sources(r: Retrieval, k: int) -> list[Source]:
    """The stories an answer lists: the top `k` in rank order, plus any story the generator was handed.

    Citations must point into `sources`, but the generator's context is picked by diversify() from more
    than the top k stories (it mixes outlets, interleaves comparison subjects and keeps a dozen timeline
    events), so a cited story can rank below k. Those are added in rank order, never dropped."""
    cited = {s.story_id for s in r.context}
    top = r.stories[:k]
    have = {s.story_id for s in top}
    extra = [s for s in r.stories[k:] if s.story_id in cited and s.story_id not in have]
    ranked = {s.story_id for s in r.stories}
    missing = [s for s in r.context if s.story_id not in ranked and s.story_id not in have]
    return top + extra + list({s.story_id: s for s in missing}.values())


class NewsBot:
    """Open a built store and answer questions about it. Thread-safe for concurrent questions."""

    def __init__(self, settings: Settings | None = None):
        t0 = time.perf_counter()
        self.settings = settings or Settings()
        self.store = NewsStore(self.settings)
        if self.store.count_stories() == 0:
            raise EmptyStoreError(f"The store at {self.settings.store_dir} holds no stories yet. Ingest some: "
                                  f"python -m ingest corpus --store {self.settings.store_dir}")
        self.embedder = get_embedder(self.settings)
        self.store.bind_model(self.embedder.name, self.embedder.dim)
        self.retriever = Retriever(self.store, self.embedder, self.settings)
        self.extractive = ExtractiveGenerator(self.embedder)
        self.llm = None
        if self.settings.generator != "extractive":
            from rag.generators.llm import make_generator
            self.llm = make_generator(self.settings)
        self.load_seconds = time.perf_counter() - t0

    @property
    def generator_name(self) -> str:
        return self.llm.name if self.llm else self.extractive.name

    # ---- public API ---------------------------------------------------------------------------
    def retrieve(self, question: str, k: int = 10, filters: Filters | None = None) -> list[Source]:
        """The stories that best match, one entry per story, in rank order."""
        q = validate_question(question, self.settings.max_question_chars)
        k, filters = check_k(k, self.settings), check_filters(filters, self.settings)
        return self.retriever.retrieve(q, k=k, filters=filters).stories[: max(k, 1)]

    def ask(self, question: str, *, filters: Filters | None = None, history: Any = None,
            k: int | None = None) -> Answer:
        answer = None
        for event in self.stream(question, filters=filters, history=history, k=k):
            if event["type"] == "final":
                answer = event["answer"]
        assert answer is not None
        return answer

    def chat(self, message: str, history: Any = None, *, filters: Filters | None = None) -> Answer:
        return self.ask(message, filters=filters, history=history)

    def stream(self, question: str, *, filters: Filters | None = None, history: Any = None,
               k: int | None = None) -> Iterator[dict[str, Any]]:
        """Yield {"type": "text", "text": piece} as the answer is produced, then {"type": "final",
        "answer": Answer}. A {"type": "replace", "text": ...} event means the streamed text was
        withdrawn (an unsupported LLM answer) and replaced."""
        t0 = time.perf_counter()
        q = validate_question(question, self.settings.max_question_chars)
        filters = check_filters(filters, self.settings)
        k = check_k(k, self.settings) if k is not None else None
        pairs = normalise_history(check_history(history, self.settings))
        standalone, rewritten_by, llm_down = self._standalone(q, pairs)
        t1 = time.perf_counter()
        brief = self._brief_stream(q, standalone, rewritten_by, filters, t0)
        if brief is not None:      # "What happened this week?", "Tell me about Qwen": rag.briefs answers
            yield from brief
            return
        r = self.retriever.retrieve(standalone, filters=filters)
        timings = {"rewrite": t1 - t0, **r.timings}
        base = Answer(question=q, text="", standalone_question=standalone, sources=answer_sources(r, max(k or 10, 1)),
                      filters=r.filters, generator=self.generator_name, timings=timings)
        if rewritten_by:
            base.flags.append(f"followup:{rewritten_by}")
            if standalone != q:      # show how a follow-up was read, so a wrong reading can be corrected
                base.notices.append(f"Read as a follow-up: \"{standalone}\"")
        base.notices += r.notices
        if r.intent.phrase and r.intent.scoped and (r.filters.since or r.filters.until):
            base.notices.append(f"Searched stories {self._range_text(r.filters)} (from \"{r.intent.phrase}\").")
        if not r.relevant or not r.context:
            yield from self._refuse(base, r, t0)
            return
        request = GenerationRequest(question=standalone, sources=r.context, today=self.settings.today_date(),
                                    timeline=r.intent.timeline, recency=r.intent.recency, history=pairs)
        text, streamed, streamed_text = "", False, None
        tg = time.perf_counter()
        if self.llm is not None:
            try:
                if llm_down is not None and "unusable output" not in llm_down.reason:
                    raise llm_down
                from rag.prompting import build_messages
                _, included = build_messages(request, context_window=self.settings.llm_context_window,
                                             max_tokens=self.settings.llm_max_tokens)
                request = replace(request, sources=included)
                for shown in self._verified_stream(self.llm.generate(request), request.sources):
                    if shown["type"] == "raw":
                        text += shown["text"]
                    else:
                        streamed = True
                        streamed_text = (streamed_text or "") + shown["text"]
                        yield shown
            except GeneratorUnavailable as exc:
                base.flags.append("fallback:llm-unavailable")
                base.notices.append(f"The language model could not answer ({exc.reason}); this answer is "
                                    "built from the sources themselves.")
                base.generator = self.extractive.name
                request = replace(request, sources=r.context)
                text = ""
                if streamed:
                    yield {"type": "replace", "text": ""}
                streamed, streamed_text = False, None
        if not text.strip():
            text = self.extractive.compose(request, r.query)
            base.generator = self.extractive.name if self.llm is None or base.flags else base.generator
        tv = time.perf_counter()
        v = verify_answer(text, request.sources, embedder=self.embedder,
                          threshold=self.settings.support_threshold, strict=self.settings.strict)
        if self.llm is not None and base.generator != self.extractive.name and v.grounded_ratio < self.settings.llm_min_grounded:
            base.flags.append(f"replaced:llm-grounded-{v.grounded_ratio:.2f}")
            base.notices.append(f"Only {v.grounded_ratio:.0%} of the language model's answer was supported by "
                                "the sources, so it was replaced by an answer built from the sources themselves.")
            base.generator = self.extractive.name
            request = replace(request, sources=r.context)
            text = self.extractive.compose(request, r.query)
            v = verify_answer(text, request.sources, embedder=self.embedder,
                              threshold=self.settings.support_threshold, strict=self.settings.strict)
            yield {"type": "replace", "text": v.text}
            streamed, streamed_text = True, None
        te = time.perf_counter()
        timings.update({"generate": tv - tg, "verify": te - tv})
        if not v.text.strip() or v.grounded_ratio == 0.0 or not v.citations:
            if streamed:
                yield {"type": "replace", "text": ""}
            yield from self._refuse(base, r, t0)
            return
        if streamed and streamed_text is not None and streamed_text != v.text:
            yield {"type": "replace", "text": v.text}    # the whole answer's final, checked form
        base.text = v.text
        if r.absent:     # partly covered: answer what the stories hold, say plainly what they do not
            gap = f"The news I hold does not cover {_listing(r.absent)}."
            base.text += "\n" + gap
            base.notices.append(gap)
        base.citations = v.citations
        base.grounded_ratio = v.grounded_ratio
        base.unsupported_sentences = list(v.unsupported)
        base.flags += list(v.flags)
        if v.unsupported:
            base.flags.append(f"unsupported:{len(v.unsupported)}")
        if not streamed:
            for i, para in enumerate(base.text.split("\n")):
                yield {"type": "text", "text": ("\n" if i else "") + para}
        timings["total"] = time.perf_counter() - t0
        yield {"type": "final", "answer": base}

    def _verified_stream(self, pieces: Iterator[str], sources: list[Source]) -> Iterator[dict[str, Any]]:
        """An LLM's tokens as the user may see them: {"type": "raw"} for every piece (the pipeline's copy
        of the whole text), and {"type": "text"} only for complete sentences that verification supports,
        with their markers repaired. Tokens are held back to the end of each sentence, so a sentence the
        sources do not support (a hallucination, an instruction a poisoned story slipped in) never
        appears on screen, not even for a moment; the final answer still lists it as unsupported."""
        buf = ""

        def checked(chunk: str) -> Iterator[dict[str, Any]]:
            tail = chunk[len(chunk.rstrip()):]
            v = verify_answer(chunk, sources, embedder=self.embedder, threshold=self.settings.support_threshold,
                              strict=True)
            if v.text.strip():
                yield {"type": "text", "text": v.text.strip() + ("\n" * tail.count("\n") or (" " if tail else ""))}

        for piece in pieces:
            yield {"type": "raw", "text": piece}
            buf += piece
            cut = sentence_cut(buf)
            if cut:
                yield from checked(buf[:cut])
                buf = buf[cut:]
        if buf.strip():
            yield from checked(buf)

    def _standalone(self, message: str, pairs: list[tuple[str, str]]
                    ) -> tuple[str, str | None, GeneratorUnavailable | None]:
        """The question retrieval should see, what rewrote it ("llm", "rules" or None), and the LLM's
        failure if it failed (the answer then goes straight to the fallback instead of retrying twice).

        With an LLM configured it condenses the follow-up (it understands "the deal they signed"); its
        rewrite is only taken when rag.followup.accept_condensed trusts it, otherwise -- and without an
        LLM -- the deterministic rules answer, so a broken or tiny model never sends retrieval astray."""
        if not pairs or not is_followup(message, pairs):
            return message, None, None
        down = None
        if self.llm is not None and hasattr(self.llm, "complete"):
            from rag.prompting import CONDENSE_MAX_TOKENS, condense_messages
            try:
                raw = self.llm.complete(condense_messages(message, pairs), max_tokens=CONDENSE_MAX_TOKENS)
            except GeneratorUnavailable as exc:
                raw, down = "", exc
            condensed = accept_condensed(raw, message, pairs)
            if condensed:
                return condensed, "llm", None
        return rewrite_followup(message, pairs), "rules", down

    def brief(self, period: str = "this week", *, topic: str = "", filters: Filters | None = None) -> Answer:
        """A brief of a period in words ("this week", "March 2026", "since January"), optionally about a
        topic: the most widely covered events, each dated and cited. For the API and MCP tools."""
        from rag.briefs import Briefer, period_plan
        q = validate_question(f"{topic} news {period}".strip(), self.settings.max_question_chars)
        filters = check_filters(filters, self.settings)
        plan = period_plan(period, self.settings.today_date(), topic=" ".join(str(topic).split()))
        if plan is None:
            raise QuestionError(f"\"{period}\" is not a period I can read: try \"today\", \"this week\", "
                                "\"last month\", \"March 2026\", \"Q1 2026\", \"2024\" or \"since January 2026\".")
        base = Answer(question=q, text="", standalone_question=q, generator=self.extractive.name)
        answer = None
        for event in Briefer(self).stream(plan, base, filters, time.perf_counter()):
            if event["type"] == "final":
                answer = event["answer"]
        assert answer is not None
        return answer

    def _brief_stream(self, q: str, standalone: str, rewritten_by: str | None, filters: Filters | None,
                      t0: float) -> Iterator[dict[str, Any]] | None:
        """The answer as a brief or overview (rag.briefs), or None for every other question."""
        from rag.briefs import Briefer, plan_brief
        plan = plan_brief(standalone, self.settings.today_date(),
                          period_filter=bool(filters and (filters.since or filters.until)))
        if plan is None:
            return None
        base = Answer(question=q, text="", standalone_question=standalone, generator=self.extractive.name,
                      timings={"rewrite": time.perf_counter() - t0})
        if rewritten_by:
            base.flags.append(f"followup:{rewritten_by}")
            if standalone != q:
                base.notices.append(f"Read as a follow-up: \"{standalone}\"")
        return Briefer(self).stream(plan, base, filters, t0)

    def _range_text(self, f: Filters) -> str:
        if f.since and f.until:
            return f"from {human_date(f.since)} to {human_date(f.until)}"
        if f.since:
            return f"since {human_date(f.since)}"
        if f.until:
            return f"up to {human_date(f.until)}"
        return ""

    def _refuse(self, base: Answer, r: Retrieval, t0: float) -> Iterator[dict[str, Any]]:
        """Refuse, and help: a question one step from what the store holds ("Llama 7" when it has
        Llama 4) names what is missing and offers the nearest story, as related reading [1], not as
        evidence."""
        span = self._range_text(r.filters)
        related = list(r.stories[:3])
        stem = re.split(r"[\s-]", r.absent[0])[0].lower() if r.absent else ""
        near = next((s for s in r.stories[:5] if len(stem) > 1 and stem in (s.title + " " + s.text).lower()), None)
        if near is not None:            # a neighbour of what was asked, not merely the nearest text
            related = [near] + [s for s in r.stories[:3] if s.story_id != near.story_id][:2]
            text = (f"I have no news about {_listing(r.absent)}{(' ' + span) if span else ''}. The nearest: "
                    f"{near.title.rstrip('.')} ({near.outlet}, {human_date(near.published_at)}) [1].")
        else:
            text = f"{REFUSAL}{(' ' + span) if span else ''}: none of the stories I have answer that question."
            if r.stories:
                text += " The closest stories are listed as related reading; they are not evidence for an answer."
        base.text = text
        base.refused = True
        base.grounded_ratio = 0.0
        base.related = related
        base.timings["total"] = time.perf_counter() - t0
        yield {"type": "text", "text": text}
        yield {"type": "final", "answer": base}

    def stats(self) -> dict[str, Any]:
        """For the freshness line: how many stories, from how many outlets, and the newest date."""
        return self.store.stats()
