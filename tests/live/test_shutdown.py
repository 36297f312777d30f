"""Graceful shutdown of a real ``callboard serve`` process under load: SIGTERM stops it taking
requests, those in flight finish within the grace period, the rest are cancelled with a clear
503, and every request gets exactly one answer."""

from __future__ import annotations

import collections
import functools
import json
import os
import re
import signal
import subprocess
import sys

import httpx
import pytest
import trio
from trio_websocket import ConnectionClosed, open_websocket_url

from actors.backends.virtual import LatencyModel
from actors.runtime.distributions import Constant
from engine.serve.server import serve_router
from sims.mock_provider import MockProfile
from tests.live.conftest import LOOPBACK, live_config, start_mock
from tests.live.test_live_cli import ROOT, RUNNER

pytestmark = pytest.mark.slow  # every test here takes seconds: out of `pytest -m "not slow"`

#: Long enough that the quick answers (0.8 s) finish in it on a busy machine.
GRACE = 5.0


def answering_in(seconds: float) -> MockProfile:
    return MockProfile(
        f"takes-{seconds:g}s",
        f"every answer takes {seconds:g} s",
        LatencyModel(service=Constant(seconds), output_tokens=Constant(5)),
    )


SLOW_SECONDS = 30.0
QUICK, SLOW = answering_in(0.8), answering_in(SLOW_SECONDS)


async def start_serve(
    config: str, log_file: str, nursery: trio.Nursery
) -> tuple[trio.Process, str]:
    """``callboard serve`` as a child process; returns it and the URL it announced."""
    process = await trio.lowlevel.open_process(
        [
            sys.executable,
            "-c",
            RUNNER,
            "serve",
            config,
            "--port",
            "0",
            "--grace",
            str(GRACE),
            "--log-file",
            log_file,
        ],
        cwd=ROOT,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    seen = b""
    with trio.fail_after(20):
        while b"listening on " not in seen:
            chunk = await process.stderr.receive_some()
            if not chunk:
                raise AssertionError(f"serve did not start: {seen.decode(errors='replace')}")
            seen += chunk
    url = re.search(rb"listening on (\S+)", seen)[1].decode()

    async def drain_stderr() -> None:  # keep the pipe flowing so the child never blocks
        async for _ in process.stderr:
            pass

    nursery.start_soon(drain_stderr)
    return process, url


async def test_sigterm_drains_in_flight_requests_and_cancels_the_rest_clearly(nursery, tmp_path):
    quick = await start_mock(nursery, "quick", QUICK.name, profiles=[QUICK], speed=1.0)
    slow = await start_mock(nursery, "slow", SLOW.name, profiles=[SLOW], speed=1.0)
    config = tmp_path / "router.toml"
    config.write_text(
        f'[[providers]]\nname = "quick"\nbase_url = "{quick.url}/v1"\nmodel = "quick"\n'
        f'[[providers]]\nname = "slow"\nbase_url = "{slow.url}/v1"\nmodel = "slow"\n'
        "[retry]\ndeadline = 120\n[timeouts]\nfirst_byte = 60\n[cache]\nenabled = false\n"
    )
    log_file = tmp_path / "serve.log"
    process, url = await start_serve(str(config), str(log_file), nursery)
    answers: dict[str, list[httpx.Response | Exception]] = collections.defaultdict(list)

    async def ask(label: str, model: str) -> None:
        body = {
            "model": model,
            "messages": [{"role": "user", "content": label}],
            "request_id": label,
        }
        async with httpx.AsyncClient(base_url=url, timeout=30) as http:
            try:
                answers[label].append(await http.post("/v1/chat/completions", json=body))
            except httpx.TransportError as exc:
                answers[label].append(exc)

    labels = {f"quick-{i}": "quick" for i in range(30)} | {f"slow-{i}": "slow" for i in range(6)}
    # A guard against a hang only: no bound here is one a busy machine could reach.
    with trio.fail_after(GRACE + 60):
        async with trio.open_nursery() as clients:
            for label, model in labels.items():
                clients.start_soon(ask, label, model)
            # Every request reached its upstream (a quick one may have been answered already).
            while quick.mock.in_flight + quick.mock.calls["200"] + slow.mock.in_flight < len(
                labels
            ):
                await trio.sleep(0.01)
            sigterm_at = trio.current_time()
            process.send_signal(signal.SIGTERM)
            await trio.sleep(0.2)
            clients.start_soon(ask, "late", "quick")  # after SIGTERM: refused, never half-served
        code = await process.wait()
        stopped_after = trio.current_time() - sigterm_at

    # It stopped after the grace period, not after the slow answers (30 s) came.
    assert code == 0 and GRACE <= stopped_after < SLOW_SECONDS
    # Exactly one outcome per request; none lost, none answered twice.
    assert sorted(answers) == sorted([*labels, "late"])
    assert all(len(outcomes) == 1 for outcomes in answers.values())
    for label in labels:
        [response] = answers[label]
        assert isinstance(response, httpx.Response), (label, response)
        if label.startswith("quick"):
            assert response.status_code == 200 and response.json()["request_id"] == label
        else:
            assert response.status_code == 503 and response.headers["retry-after"]
            error = response.json()["error"]
            assert error["code"] == "shutting_down" and f"{GRACE:g} s grace" in error["message"]
    [late] = answers["late"]
    assert isinstance(late, httpx.ConnectError) or (
        late.status_code == 503 and late.json()["error"]["code"] == "shutting_down"
    )
    # Upstream: each quick request was answered once, each slow call was cancelled.
    assert quick.mock.calls["200"] == 30 and quick.mock.in_flight == 0
    assert slow.mock.calls["200"] == 0 and slow.mock.in_flight == 0
    # The log has one access line per request, with the status its client got.
    logged = log_file.read_text()
    for label in labels:
        lines = re.findall(rf"request_id={label} method=POST .* status=(\d+)", logged)
        assert lines == (["200"] if label.startswith("quick") else ["503"]), (label, lines)


async def test_an_interview_socket_past_the_grace_is_told_why_and_closed_as_a_restart(nursery):
    slow = await start_mock(nursery, "slow", SLOW.name, profiles=[SLOW], speed=1.0)
    stop = trio.Event()
    config = live_config([slow], retry={"deadline": 120}, timeouts={"first_byte": 60})
    url = await nursery.start(
        functools.partial(
            serve_router,
            config,
            env={},
            host=LOOPBACK,
            port=0,
            shutdown_trigger=stop.wait,
            grace=0.5,
        )
    )
    ws_url = url.replace("http://", "ws://") + "/interview/stream/cand-1"
    with trio.fail_after(60):  # a guard against a hang only
        async with open_websocket_url(ws_url) as ws:
            assert json.loads(await ws.get_message())["type"] == "ready"
            await ws.send_message(json.dumps({"content": "Tell me about the role."}))
            while slow.mock.in_flight == 0:
                await trio.sleep(0.01)
            stopped_at = trio.current_time()
            stop.set()
            event = json.loads(await ws.get_message())
            with pytest.raises(ConnectionClosed) as closed:
                await ws.get_message()
        took = trio.current_time() - stopped_at
    assert event["type"] == "error" and event["error"]["code"] == "shutting_down"
    assert closed.value.reason.code == 1012
    # Closed after the 0.5 s grace, not after the slow answer (30 s) came.
    assert 0.5 <= took < SLOW_SECONDS and slow.mock.in_flight == 0
