"""A planted API key never appears in any output: a real ``callboard serve`` process's
console and log file, every HTTP body it sends (answers, errors, streams, status pages,
metrics, the books), and ``callboard simulate``'s output folder run with the key around."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import httpx
import pytest
import trio

from tests.live.conftest import _serve_until_killed, start_mock
from tests.live.test_keys import key_echoing_upstream
from tests.live.test_live_cli import ROOT

pytestmark = pytest.mark.slow  # every test here takes seconds: out of `pytest -m "not slow"`

PLANTED = "sk-planted-9f8e7d6c5b4a39281706"
ECHOED = "sk-planted-ECHO-11223344556677"


async def read_until(stream: trio.abc.ReceiveStream, marker: bytes, seen: bytearray) -> None:
    with trio.fail_after(20):
        while marker not in seen:
            chunk = await stream.receive_some()
            if not chunk:
                raise AssertionError(f"no {marker!r} in: {seen.decode(errors='replace')}")
            seen += chunk


async def test_a_planted_key_appears_in_no_output(nursery, tmp_path):
    good = await start_mock(nursery, "good", "unlimited", api_key=PLANTED)
    echo_url = await nursery.start(_serve_until_killed, key_echoing_upstream, trio.CancelScope())
    config = tmp_path / "router.toml"
    config.write_text(
        f'[[providers]]\nname = "echo"\nbase_url = "{echo_url}/v1"\napi_key_env = "ECHO_KEY"\n'
        f'[[providers]]\nname = "good"\nbase_url = "{good.url}/v1"\napi_key_env = "GOOD_KEY"\n'
        "priority = 1\n"
        '[routing]\npolicy = "priority"\n[retry]\nmax_attempts = 2\nbackoff_base = 0.01\n'
        "[health]\nping_every = 0.05\n[cache]\nenabled = false\n"
    )
    log_file = tmp_path / "serve.log"
    env = {**os.environ, "PYTHONUNBUFFERED": "1", "GOOD_KEY": PLANTED, "ECHO_KEY": ECHOED}
    process = await trio.lowlevel.open_process(
        [
            *(sys.executable, "-m", "engine.cli.main", "serve", str(config), "--port", "0"),
            *("--log-file", str(log_file), "--log-level", "DEBUG"),
        ],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    console = bytearray()
    await read_until(process.stdout, b"listening on ", console)
    await read_until(process.stdout, b"\n", console)
    url = console.decode().split("listening on ")[1].split()[0]
    bodies: list[str] = []
    chat = {"messages": [{"role": "user", "content": "hi"}], "max_tokens": 5}
    async with httpx.AsyncClient(base_url=url, timeout=10) as http:
        ok = await http.post("/v1/chat/completions", json=chat)
        assert ok.status_code == 200 and ok.json()["provider"] == "good"
        streamed = await http.post("/v1/chat/completions", json={**chat, "stream": True})
        good.mock.set_profile("down")
        failed = await http.post("/v1/chat/completions", json=chat)
        assert failed.status_code == 502 and "echo" in failed.text  # the echo's error is quoted
        bad = await http.post("/v1/chat/completions", json={**chat, "model": PLANTED})
        await http.post("/sessions", json={"session_id": "c1"})
        turn = await http.post("/sessions/c1/messages", json={"content": "hello"})
        await trio.sleep(0.3)  # active pings fail against both upstreams meanwhile
        bodies += [r.text for r in (ok, streamed, failed, turn)]
        for path in ("/health", "/stats", "/metrics", "/api/models/health", "/api/models/best"):
            bodies.append((await http.get(path)).text)
        bodies.append((await http.get("/sessions/c1")).text)
        bodies.append((await http.get("/openapi.json")).text)
    process.send_signal(signal.SIGTERM)
    async for chunk in process.stdout:
        console += chunk
    assert await process.wait() == 0
    # The model name was the client's own text: echoed back to it only, as the bad field.
    assert bad.status_code == 404 and bad.json()["error"]["param"] == "model"

    simulated = tmp_path / "sim"
    run = subprocess.run(
        [
            *(sys.executable, "-m", "engine.cli.main", "simulate", "chaos-quarantine"),
            *("--interviews", "5", "--quiet", "--out", str(simulated)),
        ],
        cwd=ROOT,
        env={**os.environ, "OPENAI_API_KEY": PLANTED, "GROQ_API_KEY": ECHOED},
        capture_output=True,
        text=True,
    )
    assert run.returncode == 0, run.stderr

    outputs = {
        "console": console.decode(errors="replace"),
        "log file": log_file.read_text(),
        "simulate console": run.stdout + run.stderr,
        **{f"http {i}": body for i, body in enumerate(bodies)},
        **{str(p): p.read_bytes().decode(errors="replace") for p in files(simulated)},
    }
    assert "action=attempt provider=echo" in outputs["log file"]  # the outputs are real
    assert len([p for p in outputs if p.startswith(str(simulated))]) >= 3
    for where, text in outputs.items():
        for key in (PLANTED, ECHOED):
            assert key not in text, f"{key} leaked into {where}"


def files(folder: Path) -> list[Path]:
    return sorted(p for p in folder.rglob("*") if p.is_file())
