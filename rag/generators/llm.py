"""LLM generators: any OpenAI-compatible server (llama.cpp, vLLM, Ollama, a hosted API) or a local GGUF.

Both stream text and never decide what is true: the pipeline hands their output to rag.verify. Both
turn every failure into GeneratorUnavailable with a one-line reason a user can act on, so the pipeline
can fall back to the extractive answer and show why:

* connection errors, timeouts, HTTP 5xx and 429 are retried `settings.llm_max_retries` times with
  exponential backoff (0.5 s, 1 s, 2 s ... capped at 4 s; a Retry-After header is honoured up to 8 s),
  then raised -- all before the first piece of text is yielded;
* other HTTP errors (401, 404, 400 ...) are raised at once;
* a connection that dies mid-answer raises (nothing is retried once text has been yielded: the caller
  must discard the pieces it got);
* garbage -- an empty answer, or output that is mostly non-text or the same tokens over and over --
  raises too. The first GARBAGE_PREFIX_CHARS characters are held back and checked before anything is
  yielded; the whole answer is checked again at the end.

Retries are ours alone: llama-index's own retry decorator does not cover streaming (the request starts
when the generator is first iterated, outside the decorator), and the openai client's is switched off
(max_retries=0) so the bound stated here is the real one.
"""
from __future__ import annotations

import atexit
import os
import random
import re
import threading
import time
from pathlib import Path
from typing import Callable, Iterator

from rag.generators.base import GenerationRequest, Generator, GeneratorUnavailable
from rag.prompting import build_messages
from rag.settings import Settings

GARBAGE_PREFIX_CHARS = 160
BACKOFF_BASE = 0.5
BACKOFF_CAP = 4.0
RETRY_AFTER_CAP = 8.0
_WORD = re.compile(r"[^\W_]+", re.UNICODE)


# ------------------------------------------------------------------------------------------ garbage

def garbage_reason(text: str, *, final: bool = True) -> str | None:
    """Why `text` is not a usable answer, or None. `final=False` checks a prefix (no emptiness check)."""
    stripped = (text or "").strip()
    if not stripped:
        return "an empty answer" if final else None
    if len(stripped) < 12 and not final:
        return None
    visible = [c for c in stripped if not c.isspace()]
    letters = sum(c.isalpha() for c in visible)
    if len(visible) >= 12 and letters / len(visible) < 0.45:
        return "mostly non-text output"
    words = [w.lower() for w in _WORD.findall(stripped)]
    if final and not words:
        return "mostly non-text output"
    if len(words) >= 12:
        top = max(words.count(w) for w in set(words))
        if top / len(words) > 0.4 and len(set(words)) <= 3:
            return "the same tokens repeated"
    if len(words) >= 30:
        grams = [tuple(words[i:i + 3]) for i in range(len(words) - 2)]
        if len(set(grams)) / len(grams) < 0.3:
            return "the same tokens repeated"
    return None


def _guard_stream(pieces: Iterator[str], who: str, on_error: Callable[[BaseException], GeneratorUnavailable]
                  ) -> Iterator[str]:
    """Hold back a prefix until it is checked, stream the rest, check the whole at the end."""
    held: list[str] = []
    held_len = 0
    released = False
    full: list[str] = []
    try:
        for piece in pieces:
            if not piece:
                continue
            full.append(piece)
            if released:
                yield piece
                continue
            held.append(piece)
            held_len += len(piece)
            if held_len >= GARBAGE_PREFIX_CHARS:
                why = garbage_reason("".join(held), final=False)
                if why:
                    raise GeneratorUnavailable(f"{who} returned unusable output ({why})")
                released = True
                yield "".join(held)
                held = []
    except GeneratorUnavailable:
        raise
    except Exception as exc:  # noqa: BLE001 - any transport failure mid-stream
        raise on_error(exc) from exc
    finally:
        close = getattr(pieces, "close", None)
        if close is not None:   # a consumer that stops early must not leave the HTTP stream or model lock held
            close()
    why = garbage_reason("".join(full), final=True)
    if why:
        raise GeneratorUnavailable(f"{who} returned unusable output ({why})")
    if held:
        yield "".join(held)


def _backoff(attempt: int, retry_after: float | None) -> float:
    if retry_after is not None:
        return min(max(retry_after, 0.0), RETRY_AFTER_CAP)
    delay = min(BACKOFF_BASE * (2 ** attempt), BACKOFF_CAP)
    return delay * (0.8 + 0.4 * random.random())


# ------------------------------------------------------------------------------ OpenAI-compatible

class OpenAICompatibleGenerator:
    """Streams from an OpenAI-compatible /v1/chat/completions through llama-index's OpenAILike."""

    def __init__(self, settings: Settings, *, sleep: Callable[[float], None] = time.sleep):
        self.settings = settings
        self.name = f"openai:{settings.llm_model}"
        self.base_url = settings.llm_base_url.rstrip("/")
        self._sleep = sleep
        self._short: dict[int, object] = {}
        self.llm = self._make_llm(settings.llm_max_tokens)

    def _make_llm(self, max_tokens: int):
        from llama_index.llms.openai_like import OpenAILike

        settings = self.settings
        return OpenAILike(
            model=settings.llm_model,
            api_base=self.base_url,
            api_key=os.environ.get(settings.llm_api_key_env) or "sk-local",
            timeout=settings.llm_timeout,
            max_retries=0,               # retries are ours (see module docstring)
            is_chat_model=True,
            context_window=settings.llm_context_window,
            max_tokens=max_tokens,       # llama-index sends its own max_tokens over any per-call value
            temperature=settings.llm_temperature,
            tokenizer=None,              # a tokenizer *name* would be fetched from the Hugging Face hub
        )

    # -- error classification -------------------------------------------------------------------

    def _reason(self, exc: BaseException, attempts: int) -> tuple[str, bool, float | None]:
        """(human reason, retryable, Retry-After seconds) for an exception raised before any text."""
        import openai

        where = self.base_url
        tries = f" after {attempts} attempt{'s' if attempts != 1 else ''}"
        if isinstance(exc, openai.APITimeoutError):
            return (f"the language model at {where} did not answer within {self.settings.llm_timeout:g} s{tries}",
                    True, None)
        if isinstance(exc, openai.APIConnectionError):
            return f"the language model at {where} is unreachable ({_connection_cause(exc)})", True, None
        if isinstance(exc, openai.APIStatusError):
            code = exc.status_code
            retry_after = _retry_after(exc)
            if code == 429:
                return f"the language model at {where} is rate-limiting requests (HTTP 429){tries}", True, retry_after
            if code >= 500:
                return f"the language model at {where} failed (HTTP {code}){tries}", True, retry_after
            if code in (401, 403):
                return (f"the language model at {where} rejected the API key (HTTP {code}); set "
                        f"{self.settings.llm_api_key_env}", False, None)
            if code == 404:
                return (f"the language model at {where} does not serve model '{self.settings.llm_model}' or this "
                        f"endpoint (HTTP 404)", False, None)
            return f"the language model at {where} rejected the request (HTTP {code}: {_short(exc)})", False, None
        if isinstance(exc, GeneratorUnavailable):
            return exc.reason, False, None
        return f"the language model at {where} failed ({type(exc).__name__}: {_short(exc)})", False, None

    def _mid_stream(self, exc: BaseException) -> GeneratorUnavailable:
        return GeneratorUnavailable(f"the connection to the language model at {self.base_url} broke off "
                                    f"mid-answer ({_connection_cause(exc)})")

    # -- generation -------------------------------------------------------------------------------

    def _open_stream(self, messages, llm=None) -> Iterator[str]:
        """Start the request and get its first piece, with bounded retries; then the rest of the stream."""
        from llama_index.core.llms import ChatMessage

        chat = [ChatMessage(role=m["role"], content=m["content"]) for m in messages]
        attempts = 0
        while True:
            attempts += 1
            try:
                stream = iter((llm or self.llm).stream_chat(chat))
                first = next(stream, None)
                break
            except Exception as exc:  # noqa: BLE001 - classified below
                reason, retryable, retry_after = self._reason(exc, attempts)
                if not retryable or attempts > self.settings.llm_max_retries:
                    raise GeneratorUnavailable(reason) from exc
                self._sleep(_backoff(attempts - 1, retry_after))

        def pieces() -> Iterator[str]:
            try:
                if first is None:
                    return
                yield first.delta or ""
                for resp in stream:
                    yield resp.delta or ""
            finally:
                close = getattr(stream, "close", None)
                if close is not None:
                    close()

        return pieces()

    def generate(self, request: GenerationRequest) -> Iterator[str]:
        messages, _ = build_messages(request, context_window=self.settings.llm_context_window,
                                     max_tokens=self.settings.llm_max_tokens)
        pieces = self._open_stream(messages)
        yield from _guard_stream(pieces, f"the language model at {self.base_url}", self._mid_stream)

    def prompt_sources(self, request: GenerationRequest):
        """The sources the prompt actually carries (what the answer's [n] refer to)."""
        return build_messages(request, context_window=self.settings.llm_context_window,
                              max_tokens=self.settings.llm_max_tokens)[1]

    def complete(self, messages: list[dict], *, max_tokens: int) -> str:
        """A short whole reply (a follow-up rewritten into a search question), same retries and checks."""
        if max_tokens not in self._short:
            self._short[max_tokens] = self._make_llm(max_tokens)
        pieces = self._open_stream(messages, self._short[max_tokens])
        return "".join(_guard_stream(pieces, f"the language model at {self.base_url}", self._mid_stream))


def _short(exc: BaseException, limit: int = 120) -> str:
    msg = " ".join(str(exc).split())
    return msg if len(msg) <= limit else msg[: limit - 1] + "…"


def _retry_after(exc) -> float | None:
    try:
        value = exc.response.headers.get("retry-after")
        return float(value) if value is not None else None
    except (AttributeError, TypeError, ValueError):
        return None


def _connection_cause(exc: BaseException) -> str:
    """"connection refused", "connection reset", "timed out" ... from the exception chain."""
    seen = set()
    texts = []
    e: BaseException | None = exc
    while e is not None and id(e) not in seen:
        seen.add(id(e))
        texts.append(f"{type(e).__name__} {e}".lower())
        e = e.__cause__ or e.__context__
    blob = " ".join(texts)
    for needle, label in (("refused", "connection refused"), ("reset", "connection reset"),
                          ("incomplete chunked read", "server closed the stream"),
                          ("peer closed", "server closed the stream"),
                          ("remoteprotocolerror", "server closed the stream"),
                          ("name or service not known", "unknown host"), ("nodename", "unknown host"),
                          ("timed out", "timed out"), ("timeout", "timed out"),
                          ("broken pipe", "connection broken"), ("readerror", "connection broken"),
                          ("no route", "no route to host"), ("unreachable", "network unreachable")):
        if needle in blob:
            return label
    return _short(exc, 80) or type(exc).__name__


# ------------------------------------------------------------------------------ llama.cpp in-process

_LLAMA_CACHE: dict[tuple, object] = {}
_LLAMA_LOCK = threading.Lock()


@atexit.register
def _close_models() -> None:
    """Free llama.cpp models before interpreter teardown (their __del__ fails once modules are gone)."""
    while _LLAMA_CACHE:
        _, model = _LLAMA_CACHE.popitem()
        try:
            model.close()
        except Exception:  # noqa: BLE001
            pass


class LlamaCppGenerator:
    """A local GGUF run in-process by llama-cpp-python (pip install '.[local]')."""

    def __init__(self, settings: Settings):
        self.settings = settings
        path = settings.llamacpp_model_path
        self.path = Path(path).expanduser() if path else None
        self.name = f"llamacpp:{self.path.name if self.path else '?'}"

    def _model(self):
        try:
            import llama_cpp
        except ImportError as exc:
            raise GeneratorUnavailable("llama-cpp-python is not installed: pip install '.[local]' "
                                       "(it compiles llama.cpp, ~10 min)") from exc
        if not self.path or not self.path.is_file():
            raise GeneratorUnavailable(f"no GGUF model file at '{self.settings.llamacpp_model_path}': set "
                                       "NEWSRAG_LLAMACPP_MODEL_PATH to a local .gguf file")
        key = (str(self.path.resolve()), self.settings.llm_context_window, self.settings.llamacpp_threads)
        with _LLAMA_LOCK:
            model = _LLAMA_CACHE.get(key)
            if model is None:
                try:
                    model = llama_cpp.Llama(model_path=str(self.path), n_ctx=self.settings.llm_context_window,
                                            n_threads=self.settings.llamacpp_threads, verbose=False)
                except Exception as exc:  # noqa: BLE001 - bad file, out of memory ...
                    raise GeneratorUnavailable(f"llama.cpp could not load {self.path.name} "
                                               f"({_short(exc)})") from exc
                _LLAMA_CACHE[key] = model
        return model

    def generate(self, request: GenerationRequest) -> Iterator[str]:
        model = self._model()
        messages, _ = build_messages(request, context_window=self.settings.llm_context_window,
                                     max_tokens=self.settings.llm_max_tokens)

        def pieces() -> Iterator[str]:
            with _LLAMA_LOCK:  # one generation at a time per process: Llama is not re-entrant
                try:
                    stream = model.create_chat_completion(messages=messages, stream=True,
                                                          max_tokens=self.settings.llm_max_tokens,
                                                          temperature=self.settings.llm_temperature)
                except Exception as exc:  # noqa: BLE001
                    raise GeneratorUnavailable(f"llama.cpp failed to start ({_short(exc)})") from exc
                for chunk in stream:
                    choices = chunk.get("choices") or [{}]
                    yield (choices[0].get("delta") or {}).get("content") or ""

        def on_error(exc: BaseException) -> GeneratorUnavailable:
            return GeneratorUnavailable(f"llama.cpp failed mid-answer ({_short(exc)})")

        yield from _guard_stream(pieces(), f"the local model {self.path.name}", on_error)

    def prompt_sources(self, request: GenerationRequest):
        return build_messages(request, context_window=self.settings.llm_context_window,
                              max_tokens=self.settings.llm_max_tokens)[1]

    def complete(self, messages: list[dict], *, max_tokens: int) -> str:
        model = self._model()
        with _LLAMA_LOCK:
            try:
                out = model.create_chat_completion(messages=messages, max_tokens=max_tokens,
                                                   temperature=self.settings.llm_temperature)
            except Exception as exc:  # noqa: BLE001
                raise GeneratorUnavailable(f"llama.cpp failed ({_short(exc)})") from exc
        text = ((out.get("choices") or [{}])[0].get("message") or {}).get("content") or ""
        why = garbage_reason(text)
        if why:
            raise GeneratorUnavailable(f"the local model {self.path.name} returned unusable output ({why})")
        return text


def make_generator(settings: Settings) -> Generator | None:
    """The configured LLM backend; None for "extractive" (that generator lives in rag.generators.extractive)."""
    if settings.generator == "openai":
        return OpenAICompatibleGenerator(settings)
    if settings.generator == "llamacpp":
        return LlamaCppGenerator(settings)
    return None
