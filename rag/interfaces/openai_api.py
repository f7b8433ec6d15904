"""`/v1/chat/completions` and `/v1/models`: newsrag as an OpenAI-compatible chat model with citations.

Any OpenAI client (the `openai` SDK, Open WebUI, LibreChat) can ask the news this way. The answer text
with its [n] markers is the message `content`; the citations travel beside it as Perplexity's API
carries them (`citations`: URLs in marker order, `search_results`: title, url, date, snippet), plus
our `refused`, `grounded_ratio`, `related` and `notices`. Clients that do not know these fields ignore
them. In a stream they ride on the final chunk, the one with `finish_reason`.

The stream carries verified text only: every sentence is checked against its source before it is sent,
so with an LLM backend the text arrives once verification is done (the role chunk and keep-alive
comments go out meanwhile). A client never sees a sentence that the final answer later withdraws.

Every request field has a cap (rag.limits' `max_*` settings, `api_max_messages`); a bad request gets
OpenAI's error JSON `{"error": {"message", "type", "param", "code"}}` with a 4xx status, never a stack trace.
The router parses the body itself instead of relying on app-wide exception handlers, so it behaves the
same mounted on the Gradio app as on its own (`python -m rag serve`).
"""
from __future__ import annotations

import hmac
import json
import logging
import re
import sys
import time
import traceback
import uuid
from concurrent.futures import ThreadPoolExecutor, TimeoutError as FutureTimeout
from typing import Any, Callable, Iterator, Literal

from fastapi import APIRouter, FastAPI, Request
from fastapi.responses import JSONResponse, StreamingResponse
from pydantic import BaseModel, ConfigDict, Field, StrictBool, ValidationError
from starlette.concurrency import run_in_threadpool

from rag import limits
from rag.interfaces.common import cited_answer, is_loopback, port_problem
from rag.records import answer_to_dict
from rag.settings import Settings

log = logging.getLogger("newsrag.api")

MODEL_ID = "newsrag"
KEEPALIVE_SECONDS = 10.0      # SSE comment while an LLM answer is being generated and verified
_STARTED = int(time.time())


# ------------------------------------------------------------------------------------ request

class ContentPart(BaseModel):
    model_config = ConfigDict(extra="ignore")
    type: str = Field(max_length=32)
    text: str | None = None


class ChatMessage(BaseModel):
    model_config = ConfigDict(extra="ignore")
    role: Literal["system", "developer", "user", "assistant", "tool"]
    content: str | list[ContentPart] | None = None
    name: str | None = Field(default=None, max_length=64)


class StreamOptions(BaseModel):
    model_config = ConfigDict(extra="ignore")
    include_usage: StrictBool = False


class ChatRequest(BaseModel):
    """OpenAI's chat request. Sampling fields are accepted for compatibility (checked, then ignored: the
    answer is built and verified by newsrag). Unknown fields are ignored, as OpenAI-compatible servers
    commonly do; the body size cap bounds them. `since`, `until`, `outlets`, `tags` are our extension."""
    model_config = ConfigDict(extra="ignore")
    model: str = Field(min_length=1, max_length=128)
    messages: list[ChatMessage] = Field(min_length=1)
    stream: StrictBool = False
    stream_options: StreamOptions | None = None
    n: int | None = Field(default=None, ge=1, le=1)
    temperature: float | None = Field(default=None, ge=0, le=2)
    top_p: float | None = Field(default=None, ge=0, le=1)
    max_tokens: int | None = Field(default=None, ge=1, le=1_000_000)
    max_completion_tokens: int | None = Field(default=None, ge=1, le=1_000_000)
    presence_penalty: float | None = Field(default=None, ge=-2, le=2)
    frequency_penalty: float | None = Field(default=None, ge=-2, le=2)
    seed: int | None = Field(default=None, ge=-(2 ** 63), le=2 ** 63 - 1)
    stop: str | list[str] | None = Field(default=None, max_length=256)
    user: str | None = Field(default=None, max_length=256)
    since: str | None = Field(default=None, max_length=32)
    until: str | None = Field(default=None, max_length=32)
    outlets: list[str] | None = None
    tags: list[str] | None = None


class ApiError(Exception):
    """An error the client gets as OpenAI's error JSON."""

    def __init__(self, status: int, message: str, *, type: str = "invalid_request_error",
                 param: str | None = None, code: str | None = None):
        super().__init__(message)
        self.status, self.message, self.type, self.param, self.code = status, message, type, param, code

    def body(self) -> dict[str, Any]:
        return {"error": {"message": self.message, "type": self.type, "param": self.param, "code": self.code}}


def _validation_error(exc: ValidationError) -> ApiError:
    """The first problem, named by its field path; never the offending value (it may be huge)."""
    err = exc.errors(include_input=False, include_url=False)[0]
    loc = ".".join(str(p) for p in err.get("loc", ()))
    msg = err.get("msg", "invalid value")
    if loc == "stop" and err.get("type") == "too_long":
        msg = "at most 256 stop sequences"
    return ApiError(400, f"Invalid request: '{loc or 'body'}': {msg}.", param=loc or None)


def message_text(m: ChatMessage, index: int) -> str:
    if m.content is None:
        return ""
    if isinstance(m.content, str):
        return m.content
    parts = []
    for p in m.content:
        if p.type != "text":
            raise ApiError(400, f"messages[{index}] has a '{p.type[:32]}' part; newsrag reads text only.",
                           param=f"messages.{index}.content")
        parts.append(p.text or "")
    return "\n".join(parts)


def check_request(req: ChatRequest, settings: Settings) -> tuple[str, list[dict[str, str]]]:
    """The question (the last user message) and the earlier user/assistant turns, within the caps."""
    if req.model != MODEL_ID:
        raise ApiError(404, f"The model '{req.model[:128]}' does not exist; this server has '{MODEL_ID}'.",
                       param="model", code="model_not_found")
    if len(req.messages) > settings.api_max_messages:
        raise ApiError(400, f"The request has {len(req.messages)} messages; the limit is "
                       f"{settings.api_max_messages}. Send the recent turns only.", param="messages")
    if isinstance(req.stop, list) and any(len(s) > 256 for s in req.stop):
        raise ApiError(400, "A stop sequence is longer than 256 characters.", param="stop")
    texts = [message_text(m, i) for i, m in enumerate(req.messages)]
    last = req.messages[-1]
    if last.role != "user":
        raise ApiError(400, f"The last message must be the user's question, not a '{last.role}' message.",
                       param="messages")
    from rag.pipeline import validate_question

    # system/developer instructions and tool results do not steer a cited answer: only the dialogue counts
    history = [{"role": m.role, "content": t} for m, t in zip(req.messages[:-1], texts)
               if m.role in ("user", "assistant")]
    try:
        validate_question(texts[-1], settings.max_question_chars)
        limits.check_history(history, settings)
    except limits.RequestError as exc:
        param = f"messages.{len(texts) - 1}.content" if exc.field == "question" else "messages"
        raise ApiError(400, str(exc), param=param) from None
    return texts[-1], history


# ----------------------------------------------------------------------------------- response

def _count_tokens(texts: list[str]) -> int:
    from rag.tokens import tiktoken_counter

    count = tiktoken_counter()
    return sum(count(t) for t in texts)


def _usage(prompt: list[str], answer: str) -> dict[str, int]:
    p, c = _count_tokens(prompt), _count_tokens([answer])
    return {"prompt_tokens": p, "completion_tokens": c, "total_tokens": p + c}


def completion_body(d: dict[str, Any], prompt: list[str]) -> dict[str, Any]:
    content, ext = cited_answer(d)
    return {"id": f"chatcmpl-{uuid.uuid4().hex}", "object": "chat.completion", "created": int(time.time()),
            "model": MODEL_ID, "system_fingerprint": None,
            "choices": [{"index": 0, "message": {"role": "assistant", "content": content, "refusal": None},
                         "logprobs": None, "finish_reason": "stop"}],
            "usage": _usage(prompt, content), **ext}


def _pieces(text: str, size: int = 48) -> Iterator[str]:
    """The text in word-boundary pieces of about `size` characters; joined, exactly the text."""
    buf = ""
    for tok in re.split(r"(\s+)", text):
        buf += tok
        if len(buf) >= size and not tok.isspace():
            yield buf
            buf = ""
    if buf:
        yield buf


def _sse(obj: Any) -> str:
    return f"data: {json.dumps(obj, ensure_ascii=False)}\n\n"


# ------------------------------------------------------------------------------------- router

BotGetter = Callable[[], Any]


class OpenAIChatAPI:
    """The handlers, bound to a settings object and a way to get the bot (which may not be loaded)."""

    def __init__(self, settings: Settings, get_bot: BotGetter, logged_in: Callable[[Any], bool] | None = None):
        self.settings = settings
        self.get_bot = get_bot
        self.logged_in = logged_in      # the host app's login, when it has one: /v1 requires it too
        self._pool = ThreadPoolExecutor(max_workers=8, thread_name_prefix="newsrag-api")

    # -- helpers -------------------------------------------------------------------------------
    def _authorized(self, request) -> bool:
        """Open when neither a key nor a login is configured; else the bearer key, or the host app's
        login session (rag.interfaces.webguard turns HTTP Basic or the bearer key into one)."""
        key = self.settings.api_key.get_secret_value()
        if self.logged_in is not None and self.logged_in(request):
            return True
        if not key:
            return self.logged_in is None
        header = request.headers.get("authorization", "")
        scheme, _, token = header.partition(" ")
        return scheme.lower() == "bearer" and hmac.compare_digest(token.strip().encode(), key.encode())

    @staticmethod
    def error_response(err: ApiError):
        headers = {"WWW-Authenticate": "Bearer"} if err.status == 401 else None
        return JSONResponse(err.body(), status_code=err.status, headers=headers)

    def _check_auth(self, request) -> None:
        if not self._authorized(request):
            login = " or the app's user and password as HTTP Basic" if self.logged_in is not None else ""
            raise ApiError(401, f"Missing or wrong API key: send 'Authorization: Bearer <NEWSRAG_API_KEY>'{login}.",
                           code="invalid_api_key")

    async def _read_json(self, request) -> dict[str, Any]:
        limit = self.settings.max_request_bytes
        declared = request.headers.get("content-length", "")
        if declared.isdigit() and int(declared) > limit:
            raise ApiError(413, f"The request body is {declared} bytes; the limit is {limit}.")
        body = bytearray()
        async for chunk in request.stream():
            body += chunk
            if len(body) > limit:
                raise ApiError(413, f"The request body is over the limit of {limit} bytes.")
        try:
            data = json.loads(body)
        except (ValueError, RecursionError):
            raise ApiError(400, "The request body is not valid JSON.") from None
        if not isinstance(data, dict):
            raise ApiError(400, "The request body must be a JSON object.")
        return data

    def _bot(self):
        from rag.store import StoreError

        try:
            return self.get_bot()
        except StoreError as exc:
            raise ApiError(503, str(exc), type="server_error", code="store_unavailable") from None

    # -- endpoints -----------------------------------------------------------------------------
    def models(self, request):
        try:
            self._check_auth(request)
        except ApiError as err:
            return self.error_response(err)
        return {"object": "list", "data": [self._model()]}

    def model(self, request, model: str):
        try:
            self._check_auth(request)
            if model != MODEL_ID:
                raise ApiError(404, f"The model '{model[:128]}' does not exist; this server has '{MODEL_ID}'.",
                               param="model", code="model_not_found")
        except ApiError as err:
            return self.error_response(err)
        return self._model()

    @staticmethod
    def _model() -> dict[str, Any]:
        return {"id": MODEL_ID, "object": "model", "created": _STARTED, "owned_by": "newsrag"}

    async def chat_completions(self, request):
        try:
            self._check_auth(request)
            data = await self._read_json(request)
            try:
                req = ChatRequest.model_validate(data)
            except ValidationError as exc:
                raise _validation_error(exc) from None
            question, history = check_request(req, self.settings)
            try:
                filters = limits.make_filters(req.since, req.until, req.outlets, req.tags, self.settings)
            except limits.RequestError as exc:
                raise ApiError(400, str(exc), param=exc.field) from None
            bot = self._bot()
            prompt = [t["content"] for t in history] + [question]
            if req.stream:
                include_usage = bool(req.stream_options and req.stream_options.include_usage)
                return StreamingResponse(self._stream(bot, question, history, filters, prompt, include_usage),
                                         media_type="text/event-stream",
                                         headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"})
            d = await run_in_threadpool(self._answer, bot, question, history, filters)
            return JSONResponse(completion_body(d, prompt))
        except ApiError as err:
            return self.error_response(err)
        except Exception as exc:  # a bug or a backend failure: say so in OpenAI's shape, keep serving
            log.error("chat completion failed:\n%s", traceback.format_exc())
            return self.error_response(ApiError(500, f"Something went wrong while answering "
                                                f"({type(exc).__name__}); the server is still running.",
                                                type="server_error"))

    @staticmethod
    def _answer(bot, question: str, history: list[dict], filters) -> dict[str, Any]:
        try:
            return answer_to_dict(bot.ask(question, filters=filters, history=history))
        except limits.RequestError as exc:
            raise ApiError(400, str(exc), param="messages") from None

    def _stream(self, bot, question, history, filters, prompt, include_usage) -> Iterator[str]:
        cid, created = f"chatcmpl-{uuid.uuid4().hex}", int(time.time())

        def chunk(delta: dict, finish: str | None = None, **extra: Any) -> dict[str, Any]:
            return {"id": cid, "object": "chat.completion.chunk", "created": created, "model": MODEL_ID,
                    "system_fingerprint": None,
                    "choices": [{"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish}], **extra}

        yield _sse(chunk({"role": "assistant", "content": ""}))
        future = self._pool.submit(self._answer, bot, question, history, filters)
        while True:
            try:
                d = future.result(timeout=KEEPALIVE_SECONDS)
                break
            except FutureTimeout:
                yield ": keep-alive\n\n"
            except ApiError as err:
                yield _sse(err.body())
                return
            except Exception as exc:
                log.error("streamed chat completion failed:\n%s", traceback.format_exc())
                yield _sse(ApiError(500, f"Something went wrong while answering ({type(exc).__name__}).",
                                    type="server_error").body())
                return
        content, ext = cited_answer(d)
        for piece in _pieces(content):
            yield _sse(chunk({"content": piece}))
        usage = _usage(prompt, content)
        yield _sse(chunk({}, "stop", **ext))
        if include_usage:
            final = chunk({}, None, usage=usage)
            final["choices"] = []
            yield _sse(final)
        yield "data: [DONE]\n\n"


def build_router(settings: Settings, get_bot: BotGetter, logged_in: Callable[[Any], bool] | None = None):
    """The /v1 routes as a FastAPI APIRouter, to include in any FastAPI app (the Gradio app, `serve`)."""
    api = OpenAIChatAPI(settings, get_bot, logged_in)
    router = APIRouter(prefix="/v1", tags=["openai-compatible"])

    @router.get("/models")
    def list_models(request: Request):
        return api.models(request)

    @router.get("/models/{model:path}")
    def get_model(request: Request, model: str):
        return api.model(request, model)

    @router.post("/chat/completions")
    async def chat_completions(request: Request):
        return await api.chat_completions(request)

    return router


def gradio_login(gradio_app) -> Callable[[Any], bool] | None:
    """Whether a request carries a session of the Gradio app's login (None: the app has no login).
    The same cookie Gradio's own routes check; rag.interfaces.webguard sets it for HTTP Basic and bearer requests."""
    if getattr(gradio_app, "auth", None) is None:
        return None

    def logged_in(request) -> bool:
        cid = gradio_app.cookie_id
        token = request.cookies.get(f"access-token-{cid}") or request.cookies.get(f"access-token-unsecure-{cid}")
        return bool(token) and gradio_app.tokens.get(token) is not None

    return logged_in


def mount(gradio_app, settings: Settings, get_bot: BotGetter) -> None:
    """Serve /v1 on the running Gradio app's FastAPI app, ahead of its own routes.

    Starlette matches routes per request in list order, so routes put in front of a running app's
    list serve from the next request on. When the app has a login, /v1 requires it (or the bearer key)."""
    login = gradio_login(gradio_app)
    gradio_app.router.routes[:0] = build_router(settings, get_bot, login).routes
    warning = None if login else exposure_warning(settings)
    if warning:
        print(warning, file=sys.stderr, flush=True)


def exposure_warning(settings: Settings, what: str = "the OpenAI-compatible API at /v1") -> str | None:
    """The warning printed when `what` would answer other machines without a key."""
    if is_loopback(settings.host) or settings.api_key.get_secret_value():
        return None
    return (f"[newsrag] WARNING: {what} on {settings.host or 'all interfaces'} answers anyone who can reach "
            "this machine: set NEWSRAG_API_KEY to require a bearer token.")


def create_app(settings: Settings, get_bot: BotGetter):
    """The API alone, without the chat UI: what `python -m rag serve` runs."""
    app = FastAPI(title="newsrag", description="AI news answers with verified citations, OpenAI-compatible.",
                  version="0.1.0", docs_url="/docs", redoc_url=None)
    app.include_router(build_router(settings, get_bot))

    @app.get("/healthz", include_in_schema=False)
    def healthz():
        return {"status": "ok"}

    return app


def main(argv: list[str] | None = None) -> int:
    """`python -m rag serve`: the OpenAI-compatible API on its own, over uvicorn."""
    import argparse
    from pathlib import Path

    ap = argparse.ArgumentParser(prog="newsrag serve",
                                 description="Serve /v1/chat/completions and /v1/models (no chat UI).")
    ap.add_argument("--store", type=Path, help="store directory (default: NEWSRAG_STORE_DIR or ./store)")
    ap.add_argument("--host", help="interface to bind (default: NEWSRAG_HOST or 127.0.0.1)")
    ap.add_argument("--port", type=int, help="port (default: NEWSRAG_PORT or 7860)")
    args = ap.parse_args(argv)
    over: dict[str, Any] = {k: v for k, v in (("store_dir", args.store), ("host", args.host),
                                               ("port", args.port)) if v is not None}
    try:
        settings = Settings(**over)
    except Exception as exc:
        print(f"error: invalid settings: {exc}", file=sys.stderr)
        return 2
    busy = port_problem(settings.host, settings.port)
    if busy:
        print(f"error: {busy}", file=sys.stderr)
        return 2
    from rag.pipeline import NewsBot
    from rag.store import StoreError

    try:
        bot = NewsBot(settings)
    except StoreError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    import uvicorn

    warning = exposure_warning(settings)
    if warning:
        print(warning, file=sys.stderr, flush=True)
    shown = f"[{settings.host}]" if ":" in settings.host else settings.host
    print(f"[newsrag] serving {bot.stats().get('stories', 0)} stories at http://{shown}:{settings.port}/v1 "
          f"(model '{MODEL_ID}'{', bearer auth' if settings.api_key.get_secret_value() else ''}) - Ctrl+C to stop",
          flush=True)
    uvicorn.run(create_app(settings, lambda: bot), host=settings.host, port=settings.port, log_level="warning")
    return 0
