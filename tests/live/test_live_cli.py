"""The two live commands: their parsers, and one real run of each as a process."""

from __future__ import annotations

import argparse
import json
import os
import selectors
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from engine.cli.live import add_mock_provider_parser, add_serve_parser, cmd_serve
from engine.serve.live_config import ConfigError

ROOT = Path(__file__).resolve().parents[2]
# engine/cli/main.py wires these functions in; this stand-in does the same for the test.
RUNNER = (
    "import argparse, sys\n"
    "from engine.cli.live import add_mock_provider_parser, add_serve_parser\n"
    "p = argparse.ArgumentParser(prog='callboard')\n"
    "s = p.add_subparsers(dest='command', required=True)\n"
    "add_serve_parser(s); add_mock_provider_parser(s)\n"
    "a = p.parse_args()\n"
    "sys.exit(a.handler(a))\n"
)


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="callboard")
    sub = p.add_subparsers(dest="command", required=True)
    add_serve_parser(sub)
    add_mock_provider_parser(sub)
    return p


def test_parsers():
    args = parser().parse_args(
        ["serve", "--port", "0", "--provider", "a=http://x/v1", "--provider", "b=http://y/v1"]
    )
    assert (args.config, args.port, args.provider) == (None, 0, ["a=http://x/v1", "b=http://y/v1"])
    args = parser().parse_args(["mock-provider", "--port", "9001", "--profile", "flaky"])
    assert (args.port, args.profile, args.host) == (9001, "flaky", "127.0.0.1")
    with pytest.raises(SystemExit):
        parser().parse_args(["mock-provider", "--port", "1", "--profile", "sideways"])


def test_serve_refuses_to_start_without_a_key_and_names_the_variable(tmp_path):
    config = tmp_path / "c.toml"
    config.write_text(
        '[[providers]]\nname = "a"\nbase_url = "http://127.0.0.1:9/v1"\n'
        'api_key_env = "CALLBOARD_NO_SUCH_KEY"\n'
    )
    args = parser().parse_args(["serve", str(config), "--log-file", ""])
    with pytest.raises(ConfigError, match="CALLBOARD_NO_SUCH_KEY"):
        cmd_serve(args)


def _start(*argv: str) -> tuple[subprocess.Popen, str]:
    """Start a command; returns it and the URL it announces once it listens."""
    process = subprocess.Popen(
        [sys.executable, "-c", RUNNER, *argv],
        cwd=ROOT,
        stderr=subprocess.PIPE,
        stdout=subprocess.DEVNULL,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    selector = selectors.DefaultSelector()
    selector.register(process.stderr, selectors.EVENT_READ)
    deadline = time.monotonic() + 15
    seen = b""
    while time.monotonic() < deadline and process.poll() is None:
        if selector.select(timeout=deadline - time.monotonic()):
            seen += os.read(process.stderr.fileno(), 65536)
            for line in seen.decode(errors="replace").splitlines():
                if line.startswith("listening on "):
                    return process, line.split()[-1]
    process.kill()
    raise AssertionError(f"{argv[0]} did not start: {seen.decode(errors='replace')}")


def _stop(process: subprocess.Popen) -> int:
    process.send_signal(signal.SIGINT)
    try:
        return process.wait(timeout=10)
    finally:
        if process.poll() is None:
            process.kill()


@pytest.mark.slow
def test_mock_provider_and_serve_run_as_commands(tmp_path):
    mock, mock_url = _start("mock-provider", "--port", "0", "--speed", "20", "--name", "m1")
    try:
        log_file = tmp_path / "serve.log"
        serve, url = _start(
            "serve", "--port", "0", "--provider", f"m1={mock_url}/v1", "--log-file", str(log_file)
        )
        try:
            body = json.dumps({"model": "auto", "messages": [{"role": "user", "content": "hi"}]})
            request = urllib.request.Request(
                f"{url}/v1/chat/completions",
                data=body.encode(),
                headers={"content-type": "application/json"},
            )
            with urllib.request.urlopen(request, timeout=10) as response:
                answer = json.loads(response.read())
        finally:
            assert _stop(serve) == 0
    finally:
        assert _stop(mock) == 0
    assert answer["provider"] == "m1" and answer["choices"][0]["message"]["content"]
    logged = log_file.read_text()
    assert f"request_id={answer['request_id']} action=success provider=m1" in logged
    assert "path=/v1/chat/completions status=200" in logged
