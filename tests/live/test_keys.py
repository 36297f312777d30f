"""API keys never appear in logs, error bodies, status pages or metrics."""

from __future__ import annotations

import json
import logging
import re

import httpx
import trio
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from actors.backends.http import Secret
from engine.serve.live_config import structure_config
from engine.serve.logs import ScrubSecrets, logging_to
from tests.live.conftest import LOOPBACK, _serve_until_killed, start_mock, start_router

GOOD_KEY = "sk-live-GOOD-7c1e9b2f4a6d8e0f"
ECHOED_KEY = "sk-live-ECHO-0a9b8c7d6e5f4a3b"


def upstream(answer) -> Starlette:
    """An upstream that answers every POST with ``answer(request)``."""
    return Starlette(routes=[Route("/{path:path}", answer, methods=["POST"])])


async def _echo_key(request: Request) -> JSONResponse:
    """Answers 500 quoting the Authorization header back, as careless servers do."""
    auth = request.headers.get("authorization", "")
    return JSONResponse({"error": {"message": f"upstream exploded handling {auth}"}}, 500)


key_echoing_upstream = upstream(_echo_key)


async def test_keys_are_never_logged_nor_returned(nursery, tmp_path):
    log_file = tmp_path / "callboard.log"
    everything = logging.FileHandler(tmp_path / "all.log")  # httpx, httpcore, hypercorn too
    root = logging.getLogger()
    previous = root.level
    root.addHandler(everything)
    root.setLevel(logging.DEBUG)
    try:
        # No scrubbing here: this test must see a key if any code path logged one.
        with logging_to(log_file, level="DEBUG", console=False):
            good = await start_mock(nursery, "good", api_key=GOOD_KEY)
            echo_url = await nursery.start(
                _serve_until_killed, key_echoing_upstream, trio.CancelScope()
            )
            config = structure_config(
                {
                    "providers": [
                        {"name": "echo", "base_url": f"{echo_url}/v1", "api_key_env": "ECHO_KEY"},
                        {
                            "name": "good",
                            "base_url": f"{good.url}/v1",
                            "api_key_env": "GOOD_KEY",
                            "priority": 1,
                        },
                    ],
                    "routing": {"policy": "priority"},
                    "retry": {"backoff_base": 0.01, "max_attempts": 2},
                    "health": {"ping_every": 0.05},
                    "cache": {"enabled": False},
                    "server": {"graceful_timeout": 0.1},
                },
                "test",
            )
            env = {"ECHO_KEY": ECHOED_KEY, "GOOD_KEY": GOOD_KEY}
            url = await start_router(nursery, config, env)
            bodies = []
            async with httpx.AsyncClient(base_url=url) as http:
                with trio.fail_after(10):
                    chat = {"messages": [{"role": "user", "content": "hi"}], "max_tokens": 5}
                    ok = await http.post("/v1/chat/completions", json=chat)
                    assert ok.json()["provider"] == "good"  # after the echoing one failed
                    good.mock.set_profile("down")
                    failed = await http.post("/v1/chat/completions", json=chat)
                    assert failed.status_code == 502
                    await trio.sleep(0.2)  # let some active pings fail too
                    for response in (ok, failed):
                        bodies.append(response.text)
                    for path in ("/api/models/health", "/api/models/best", "/metrics", "/health"):
                        bodies.append((await http.get(path)).text)
    finally:
        root.removeHandler(everything)
        everything.close()
        root.setLevel(previous)
    attempts = json.loads(bodies[1])["error"]["attempts"]
    assert "upstream exploded handling Bearer ***" in attempts[0]["message"]
    logged = log_file.read_text() + (tmp_path / "all.log").read_text()
    assert "action=attempt provider=echo" in logged  # the logs are really there
    assert re.search(r"request_id=r-[0-9a-f]{6}-00000001 ", logged)
    for key in (GOOD_KEY, ECHOED_KEY):
        assert key not in logged
        for body in bodies:
            assert key not in body


def test_the_log_filter_scrubs_a_key_that_some_future_code_would_log(tmp_path):
    log_file = tmp_path / "x.log"
    secret = Secret(GOOD_KEY)
    with logging_to(log_file, console=False, secrets=[secret]):
        logging.getLogger("callboard.test").info("oops %s", GOOD_KEY)
        try:
            raise RuntimeError(f"bad {GOOD_KEY}")
        except RuntimeError:
            logging.getLogger("callboard.test").exception("failed")
    text = log_file.read_text()
    assert GOOD_KEY not in text
    assert "oops ***" in text and "RuntimeError: bad ***" in text
    assert ScrubSecrets([]).filter(logging.makeLogRecord({"msg": "x"}))
    assert LOOPBACK == "127.0.0.1"


HEADER_KEY = "hdr-live-KEY-5e4d3c2b1a09"


async def _echo_headers(request: Request) -> JSONResponse:
    """Answers 500 quoting every request header back."""
    seen = " ".join(f"{k}={v}" for k, v in request.headers.items())
    return JSONResponse({"error": {"message": f"cannot handle {seen}"}}, 500)


header_echoing_upstream = upstream(_echo_headers)


async def test_credentials_in_configured_headers_are_scrubbed_like_keys(nursery):
    """A key passed in a provider's ``headers`` table (``x-api-key``, a bearer token) is
    kept out of error bodies like ``api_key_env``'s; other header values are left alone."""
    echo_url = await nursery.start(_serve_until_killed, header_echoing_upstream, trio.CancelScope())
    config = structure_config(
        {
            "providers": [
                {
                    "name": "echo",
                    "base_url": f"{echo_url}/v1",
                    "headers": {"x-api-key": HEADER_KEY, "x-team": "interviews-eu"},
                }
            ],
            "retry": {"max_attempts": 1},
            "cache": {"enabled": False},
        },
        "test",
    )
    assert [s.reveal() for s in config.providers[0].endpoint({}, 0).secrets()] == [HEADER_KEY]
    url = await start_router(nursery, config)
    async with httpx.AsyncClient(base_url=url) as http:
        chat = {"messages": [{"role": "user", "content": "hi"}], "max_tokens": 5}
        failed = await http.post("/v1/chat/completions", json=chat)
    message = failed.json()["error"]["attempts"][0]["message"]
    assert "x-api-key=***" in message and "x-team=interviews-eu" in message
    assert HEADER_KEY not in failed.text
