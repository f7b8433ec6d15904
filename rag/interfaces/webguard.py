"""An ASGI guard in front of the app's web server: body caps, no uploads, login throttling, API keys.

Plain ASGI (no gradio or FastAPI import), so the Gradio app and any other HTTP interface put the same
guard in front of themselves:

* every request body is capped at `max_request_bytes` (413 with the sizes) -- by Content-Length when the
  client sends one, by counting otherwise;
* upload routes answer 403: the app has no upload widget, so a file sent there can only fill the disk;
* wrong passwords are throttled per client address: after `login_free_failures` failures each further
  attempt must wait 1, 2, 4 ... seconds (capped), and is answered 429 with Retry-After until then;
* programmatic clients may authenticate per request with HTTP Basic (the login's user and password)
  or `Authorization: Bearer <NEWSRAG_API_KEY>`; the guard turns that into the login's own session
  (`session_for`), so every route sees a logged-in user. Wrong credentials get 401 and count as a
  failed login.
"""
from __future__ import annotations

import base64
import hmac
import json
import threading
import time
from dataclasses import dataclass, field
from typing import Any, Awaitable, Callable

Scope = dict
Receive = Callable[[], Awaitable[dict]]
Send = Callable[[dict], Awaitable[None]]


@dataclass
class LoginThrottle:
    """Failed logins per client address, and when that client may try again."""
    free_failures: int = 3
    base_seconds: float = 1.0
    cap_seconds: float = 300.0
    max_clients: int = 10_000          # the table itself must not grow without bound
    clock: Callable[[], float] = time.monotonic
    _failures: dict[str, tuple[int, float]] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def wait_seconds(self, client: str) -> float:
        """0 when `client` may try now, else how long it must still wait."""
        with self._lock:
            _, until = self._failures.get(client, (0, 0.0))
        return max(0.0, until - self.clock())

    def failed(self, client: str) -> float:
        """Record a failure; returns the wait it starts (0 while failures are still free)."""
        with self._lock:
            count, _ = self._failures.get(client, (0, 0.0))
            count += 1
            over = count - self.free_failures
            wait = min(self.cap_seconds, self.base_seconds * 2 ** (over - 1)) if over > 0 else 0.0
            if len(self._failures) >= self.max_clients and client not in self._failures:
                now = self.clock()
                for c in [c for c, (_, u) in self._failures.items() if u <= now]:
                    del self._failures[c]
                if len(self._failures) >= self.max_clients:
                    self._failures.pop(next(iter(self._failures)))
            self._failures[client] = (count, self.clock() + wait)
            return wait

    def succeeded(self, client: str) -> None:
        with self._lock:
            self._failures.pop(client, None)


def _json_response(status: int, message: str, headers: list[tuple[bytes, bytes]] | None = None):
    body = json.dumps({"error": message, "detail": message}).encode("utf-8")
    start = {"type": "http.response.start", "status": status,
             "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode()),
                         *(headers or [])]}
    return start, {"type": "http.response.body", "body": body}


class Guard:
    """ASGI middleware; see the module docstring. `users` maps user -> password (empty: no login);
    `session_for(user)` returns the (cookie name, value) the wrapped app recognises as that user's session."""

    def __init__(self, app, *, max_request_bytes: int, upload_paths: tuple[str, ...] = (),
                 login_paths: tuple[str, ...] = (), users: dict[str, str] | None = None, api_key: str = "",
                 throttle: LoginThrottle | None = None,
                 session_for: Callable[[str], tuple[str, str]] | None = None):
        self.app = app
        self.max_request_bytes = max_request_bytes
        self.upload_paths = upload_paths
        self.login_paths = login_paths
        self.users = dict(users or {})
        self.api_key = api_key
        self.throttle = throttle or LoginThrottle()
        self.session_for = session_for

    # -- helpers --------------------------------------------------------------------------------
    @staticmethod
    def client_of(scope: Scope) -> str:
        client = scope.get("client")
        return str(client[0]) if client else "unknown"

    @staticmethod
    def _header(scope: Scope, name: bytes) -> str | None:
        for k, v in scope.get("headers") or []:
            if k.lower() == name:
                return v.decode("latin-1")
        return None

    def _credential_user(self, authorization: str) -> str | None:
        """The user an Authorization header proves, or None when it proves nothing."""
        scheme, _, value = authorization.strip().partition(" ")
        value = value.strip()
        if scheme.lower() == "bearer":
            if self.api_key and hmac.compare_digest(value.encode(), self.api_key.encode()):
                return next(iter(self.users), "api")
            return None
        if scheme.lower() == "basic":
            try:
                user, _, password = base64.b64decode(value, validate=True).decode("utf-8").partition(":")
            except (ValueError, UnicodeDecodeError):
                return None
            expected = self.users.get(user)
            if expected is not None and hmac.compare_digest(password.encode(), expected.encode()):
                return user
            if self.api_key and hmac.compare_digest(password.encode(), self.api_key.encode()):
                return user or "api"
        return None

    async def _drain(self, receive: Receive) -> None:
        """Read and drop a request body (at most `max_request_bytes` of it)."""
        seen, more = 0, True
        while more and seen <= self.max_request_bytes:
            message = await receive()
            seen += len(message.get("body") or b"")
            more = message.get("type") == "http.request" and message.get("more_body", False)

    async def _reply(self, send: Send, status: int, message: str, headers=None) -> None:
        start, body = _json_response(status, message, headers)
        await send(start)
        await send(body)

    # -- the middleware -------------------------------------------------------------------------
    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope.get("type") != "http":
            await self.app(scope, receive, send)
            return
        path = scope.get("path") or ""
        root = scope.get("root_path") or ""
        if root and path.startswith(root):
            path = path[len(root):] or "/"
        length = self._header(scope, b"content-length")
        if any(path == p or path.startswith(p.rstrip("/") + "/") for p in self.upload_paths):
            if not (length and length.strip().isdigit() and int(length) > self.max_request_bytes):
                await self._drain(receive)     # a small body is read and dropped: the client gets the answer
            await self._reply(send, 403, "Uploads are disabled: this app takes no files.")
            return
        if length and length.strip().isdigit() and int(length) > self.max_request_bytes:
            await self._reply(send, 413, f"The request body is {int(length)} bytes; the limit is "
                                         f"{self.max_request_bytes} bytes.")
            return
        client = self.client_of(scope)
        is_login = scope.get("method") == "POST" and path.rstrip("/") in {p.rstrip("/") for p in self.login_paths}
        authorization = self._header(scope, b"authorization")
        if (is_login or (authorization and (self.users or self.api_key))):
            wait = self.throttle.wait_seconds(client)
            if wait > 0:
                await self._reply(send, 429, f"Too many failed logins from this address: try again in "
                                             f"{wait:.0f} s.", [(b"retry-after", str(int(wait + 0.999)).encode())])
                return
        if authorization and (self.users or self.api_key) and self.session_for is not None:
            user = self._credential_user(authorization)
            if user is None:
                self.throttle.failed(client)
                await self._reply(send, 401, "Wrong credentials: use HTTP Basic with the app's user and "
                                             "password, or 'Authorization: Bearer <NEWSRAG_API_KEY>'.",
                                  [(b"www-authenticate", b'Basic realm="newsrag"')])
                return
            self.throttle.succeeded(client)
            name, value = self.session_for(user)
            cookie = f"{name}={value}".encode("latin-1")
            headers = [(k, v) for k, v in scope.get("headers") or [] if k.lower() != b"cookie"]
            scope = dict(scope, headers=[*headers, (b"cookie", cookie)])

        seen = 0
        too_big = False

        async def counted_receive() -> dict:
            nonlocal seen, too_big
            message = await receive()
            if message.get("type") == "http.request":
                seen += len(message.get("body") or b"")
                if seen > self.max_request_bytes:
                    too_big = True
                    # read the rest and drop it (up to a bound), so the client gets its 413 instead of a
                    # connection reset while it is still sending
                    more, drained = message.get("more_body", False), 0
                    while more and drained < 8 * self.max_request_bytes:
                        m = await receive()
                        drained += len(m.get("body") or b"")
                        more = m.get("type") == "http.request" and m.get("more_body", False)
                    return {"type": "http.disconnect"}
            return message

        started = False
        status_seen = 0

        async def guarded_send(message: dict) -> None:
            nonlocal started, status_seen
            if too_big:
                if not started:
                    started = True
                    await self._reply(send, 413, f"The request body is over the limit of "
                                                 f"{self.max_request_bytes} bytes.")
                return
            if message.get("type") == "http.response.start":
                started = True
                status_seen = int(message.get("status") or 0)
                if is_login:
                    if 200 <= status_seen < 400:
                        self.throttle.succeeded(client)
                    elif status_seen in (400, 401, 403):
                        self.throttle.failed(client)
            await send(message)

        await self.app(scope, counted_receive, guarded_send)
        if too_big and not started:
            await self._reply(send, 413, f"The request body is over the limit of {self.max_request_bytes} bytes.")

