"""``callboard serve`` against hostile or numerous clients: thousands connecting at once, a
body trickled forever, JSON nested too deep, values that would forge log lines, a taken port.
"""

from __future__ import annotations

import logging
import os
import resource
import socket
import subprocess
import sys
from collections import Counter

import httpx
import pytest
import trio

from tests.live.conftest import LOOPBACK, live_config, start_mock, start_router

CLIENTS = 2000


def more_open_files(needed: int) -> None:
    """Room for ``needed`` descriptors (each loopback connection takes two here)."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft != resource.RLIM_INFINITY and soft < needed:
        resource.setrlimit(resource.RLIMIT_NOFILE, (min(needed, hard), hard))
    soft, _ = resource.getrlimit(resource.RLIMIT_NOFILE)
    assert soft == resource.RLIM_INFINITY or soft >= needed, f"ulimit -n is {soft}"


async def one_client(port: int, path: bytes, statuses: Counter, started: trio.Event) -> None:
    await started.wait()  # every client connects at the same moment
    try:
        with trio.socket.socket() as sock:
            await sock.connect((LOOPBACK, port))
            stream = trio.SocketStream(sock)
            await stream.send_all(
                b"GET " + path + b" HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n"
            )
            reply = b""
            while b"\r\n" not in reply:
                data = await stream.receive_some(4096)
                if not data:
                    break
                reply += data
        statuses[reply.split(b" ")[1].decode() if reply else "closed without an answer"] += 1
    except OSError as exc:  # reset, refused: what a listen backlog too short does
        statuses[f"{type(exc).__name__}: {exc.strerror}"] += 1


@pytest.mark.slow
async def test_two_thousand_clients_connecting_at_once_are_each_answered(nursery):
    more_open_files(4 * CLIENTS + 256)
    mock = await start_mock(nursery, "a")
    url = await start_router(nursery, live_config([mock]))
    port = int(url.rsplit(":", 1)[1])
    statuses: Counter = Counter()
    started = trio.Event()
    async with trio.open_nursery() as clients:
        for _ in range(CLIENTS):
            clients.start_soon(one_client, port, b"/health", statuses, started)
        await trio.sleep(0)
        started.set()
    assert statuses == {"200": CLIENTS}


async def test_a_body_trickled_forever_is_cut_at_the_body_timeout(nursery):
    mock = await start_mock(nursery, "a")
    url = await start_router(nursery, live_config([mock], server={"body_timeout": 0.3}))
    port = int(url.rsplit(":", 1)[1])
    stream = await trio.open_tcp_stream(LOOPBACK, port)
    head = b"POST /v1/chat/completions HTTP/1.1\r\nhost: x\r\ncontent-length: 1000\r\n\r\n"
    await stream.send_all(head + b'{"messages": ')
    reply = b""
    with trio.fail_after(10):
        while True:
            try:
                await stream.send_all(b" ")
            except trio.BrokenResourceError:
                break
            with trio.move_on_after(0.05):
                data = await stream.receive_some(4096)
                if not data:
                    break
                reply += data
    assert reply.startswith(b"HTTP/1.1 408 ")
    assert b"server.body_timeout = 0.3 s" in reply


async def test_json_nested_too_deep_is_a_400(nursery):
    mock = await start_mock(nursery, "a")
    url = await start_router(nursery, live_config([mock]))
    deep = "[" * 100_000 + "]" * 100_000
    async with httpx.AsyncClient(base_url=url) as client:
        reply = await client.post("/v1/chat/completions", content=deep)
    assert reply.status_code == 400
    error = reply.json()["error"]
    assert error["message"] == "body: JSON nested too deeply"
    assert (error["code"], error["param"]) == ("invalid_request", "body")  # as docs/serve.md says


async def test_client_values_in_log_lines_are_quoted_and_cannot_plant_a_line(nursery, caplog):
    caplog.set_level(logging.INFO, logger="callboard")  # before the router decides what to log
    mock = await start_mock(nursery, "a")
    url = await start_router(nursery, live_config([mock]))
    fake = "x\n2026-01-01 00:00:00,000 INFO callboard.router request_id=r-1 action=success"
    body = {
        "model": f"auto{fake}",
        "kind": f'chat provider=evil "{fake}',
        "messages": [{"role": "user", "content": "Hi"}],
        "max_tokens": 5,
    }
    async with httpx.AsyncClient(base_url=url) as client:
        await client.post("/v1/chat/completions/x y", json=body, headers={"x-request-id": "a b=c"})
        await client.post("/v1/chat/completions", json=body)
    lines = [r.getMessage() for r in caplog.records if r.name.startswith("callboard")]
    assert lines and not any("\n" in line or "\r" in line for line in lines)
    received = next(line for line in lines if "action=received" in line)
    assert 'model="autox\\n2026' in received
    assert 'kind="chat provider=evil \\"x\\n2026' in received
    assert 'path="/v1/chat/completions/x y"' in " ".join(lines)
    assert 'request_id="a b=c"' in " ".join(lines)


def busy_port() -> socket.socket:
    sock = socket.socket()
    sock.bind((LOOPBACK, 0))
    sock.listen()
    return sock


@pytest.mark.slow
@pytest.mark.parametrize(
    "command", [["serve", "--provider", "a=http://127.0.0.1:9/v1"], ["mock-provider"]]
)
def test_a_port_in_use_is_one_line_naming_the_address_and_exit_status_2(command, tmp_path):
    with busy_port() as taken:
        port = taken.getsockname()[1]
        done = subprocess.run(
            [sys.executable, "-m", "engine.cli.main", *command, "--port", str(port)],
            capture_output=True,
            text=True,
            timeout=60,
            cwd=tmp_path,
            env={**os.environ, "PYTHONPATH": os.getcwd()},
        )
    assert done.returncode == 2
    last = done.stderr.strip().splitlines()[-1]
    name = command[0]
    assert last == f"callboard {name}: cannot listen on 127.0.0.1:{port}: address already in use"
    assert "Traceback" not in done.stderr
