"""A real ``redis-server`` per test, on a free loopback port, killed when the test ends.

No Redis on PATH is a failure, never a skip: CI installs it (``.ci/run``), and a
developer is told how to.
"""

from __future__ import annotations

import shutil
import signal
import socket
import subprocess
import time
from collections.abc import Iterator
from typing import Any

import attrs
import pytest

from engine.serve.live_config import LiveConfig
from tests.live.conftest import LOOPBACK, Upstream, live_config

#: Quick settings for tests: pulls every 50 ms, probes a dead Redis every 200 ms. The
#: timeout is far past any call's time on a loaded machine (1 s was reached with two suites
#: running at once): a slower call would count as an outage, and the routers would rightly
#: fall back to local state. A killed Redis refuses at once; a test of a frozen one sets
#: its own timeout.
FAST_STATE = {"sync_every": 0.05, "timeout": 10.0, "retry_every": 0.2}


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind((LOOPBACK, 0))
        return sock.getsockname()[1]


@attrs.define
class RedisServer:
    """One redis-server process; ``kill`` and ``start`` again keep its port."""

    binary: str
    port: int
    process: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"redis://{LOOPBACK}:{self.port}/0"

    def start(self) -> None:
        # No snapshots, no append-only file: a test's Redis leaves nothing behind.
        args = ["--port", str(self.port), "--bind", LOOPBACK, "--save", "", "--appendonly", "no"]
        self.process = subprocess.Popen(
            [self.binary, *args],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
        )
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                error = (
                    self.process.stderr.read().decode(errors="replace")
                    if self.process.stderr
                    else ""
                )
                pytest.fail(f"redis-server exited at start ({self.process.returncode}): {error}")
            try:
                with socket.create_connection((LOOPBACK, self.port), timeout=0.2) as sock:
                    sock.sendall(b"PING\r\n")
                    if sock.recv(16).startswith(b"+PONG"):
                        return
            except OSError:
                time.sleep(0.01)
        self.kill()
        pytest.fail(f"redis-server did not answer on port {self.port} within 10 s")

    def kill(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.resume()
            self.process.kill()
            self.process.wait(timeout=10)
        self.process = None

    def pause(self) -> None:
        """Freeze it (SIGSTOP): connections stay open, nothing answers: a slow Redis."""
        assert self.process is not None
        self.process.send_signal(signal.SIGSTOP)

    def resume(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGCONT)


def redis_binary() -> str:
    binary = shutil.which("redis-server")
    if binary is None:
        pytest.fail(
            "redis-server is not on PATH: the shared-state tests need a real one. "
            "Install it (Debian/Ubuntu: apt-get install -y redis-server; macOS: brew install redis)"
        )
    return binary


@pytest.fixture
def redis_server() -> Iterator[RedisServer]:
    server = RedisServer(redis_binary(), _free_port())
    server.start()
    try:
        yield server
    finally:
        server.kill()


def shared_config(upstreams: list[Upstream], redis_url: str, **tables: Any) -> LiveConfig:
    """A test router config over ``upstreams`` sharing state on ``redis_url``."""
    state = {**FAST_STATE, "redis": redis_url, **tables.pop("state", {})}
    return live_config(upstreams, state=state, **tables)
