"""The asyncio example of docs/embed.md (a Starlette app) runs on uvicorn as the page says."""

from __future__ import annotations

import json
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from tests.live.test_live_cli import _start, _stop

pytestmark = pytest.mark.slow  # every test here takes seconds: out of `pytest -m "not slow"`

ROOT = Path(__file__).resolve().parents[2]
PAGE = ROOT / "docs" / "embed.md"


def page_files() -> dict[str, str]:
    """The page's ``<!-- check: file NAME -->`` blocks, by name."""
    files, name, body, inside = {}, None, [], False
    for line in PAGE.read_text().splitlines():
        if line.startswith("<!-- check: file "):
            name = line.removeprefix("<!-- check: file ").removesuffix(" -->").strip()
        elif line.startswith("```") and name and not inside:
            inside, body = True, []
        elif line == "```" and inside:
            files[name], name, inside = "\n".join(body) + "\n", None, False
        elif inside:
            body.append(line)
    return files


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def call(url: str, body: dict | None = None) -> tuple[int, str]:
    data = None if body is None else json.dumps(body).encode()
    try:
        with urllib.request.urlopen(urllib.request.Request(url, data=data), timeout=20) as reply:
            return reply.status, reply.read().decode()
    except urllib.error.HTTPError as error:
        return error.code, error.read().decode()


def until(base: str, done) -> None:
    """Wait (at most 10 s) until ``done(requests in the providers' slots)`` holds."""
    deadline = time.monotonic() + 10
    while True:
        busy = sum(p["in_flight"] for p in json.loads(call(f"{base}/status")[1]).values())
        if done(busy):
            return
        assert time.monotonic() < deadline, f"{busy} request(s) in the providers' slots"
        time.sleep(0.02)


def test_the_starlette_example_serves_through_the_router_on_uvicorn(tmp_path):
    files = page_files()
    assert {"router.toml", "app.py"} <= set(files)
    mocks = [
        _start("mock-provider", "--port", "0", "--speed", "20", "--name", f"provider-{n}")
        for n in ("a", "b")
    ]
    app = None
    try:
        router = files["router.toml"]
        for port, (_, url) in zip(("9001", "9002"), mocks, strict=True):
            router = router.replace(f"http://127.0.0.1:{port}", url)
        (tmp_path / "router.toml").write_text(router)
        (tmp_path / "app.py").write_text(files["app.py"])
        port = free_port()
        app = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "uvicorn",
                "app:app",
                "--host",
                "127.0.0.1",
                "--port",
                str(port),
            ],
            cwd=tmp_path,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
        )
        base = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 30
        while True:
            try:
                status, body = call(f"{base}/status")
                break
            except OSError:
                assert app.poll() is None and time.monotonic() < deadline, "uvicorn did not start"
                time.sleep(0.1)
        assert status == 200
        assert json.loads(body) == {
            "a": {"breaker": "closed", "in_flight": 0},
            "b": {"breaker": "closed", "in_flight": 0},
        }
        status, body = call(f"{base}/ask", {"question": "Summarise the role in one line."})
        answer = json.loads(body)
        assert status == 200 and answer["provider"] in ("a", "b")
        assert answer["answer"].startswith(f"[provider-{answer['provider']}] answer to r-")
        status, text = call(f"{base}/stream?q=Ask+me+a+question.")
        assert status == 200 and text.startswith("[provider-")
        for turns in (1, 2):
            status, body = call(f"{base}/interview/candidate-7", {"message": "Hello!"})
            assert status == 200 and json.loads(body)["turns"] == turns
        # A client that hangs up mid-stream cancels its request: the provider's slot frees.
        for _, url in mocks:
            call(f"{url}/admin/profile", {"profile": "hang"})  # no answer ever comes
        with socket.create_connection(("127.0.0.1", port), timeout=10) as client:
            client.sendall(b"GET /stream?q=Hi HTTP/1.1\r\nhost: x\r\n\r\n")
            until(base, lambda busy: busy == 1)
        until(base, lambda busy: busy == 0)  # freed once the connection closed
        # uvicorn stops on SIGINT: its lifespan closes the router, then the loop ends.
        app.send_signal(signal.SIGINT)
        assert app.wait(timeout=20) == 0
        errors = app.stderr.read().decode()
        assert "Traceback" not in errors and "Application shutdown complete" in errors
    finally:
        if app is not None and app.poll() is None:
            app.kill()
        for process, _ in mocks:
            _stop(process)
