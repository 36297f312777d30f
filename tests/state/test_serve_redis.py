"""``[state]`` and ``callboard serve --redis``: validated up front, and two real processes."""

from __future__ import annotations

import json
import urllib.request

import pytest

from engine.serve.live_config import ConfigError, load_config
from engine.serve.state.config import StateConfig
from tests.live.test_live_cli import _start, _stop, parser


@pytest.mark.parametrize(
    ("raw", "named"),
    [
        ({"redis": "http://127.0.0.1:6379"}, "state.redis"),
        ({"redis": "redis://127.0.0.1:99999/0"}, "state.redis"),
        ({"redis": "redis://127.0.0.1:6379/zero"}, "state.redis"),
        ({"redis": "redis:///0"}, "state.redis"),
        ({"timeout": 0}, "state.timeout"),
        ({"sync_every": -1}, "state.sync_every"),
        ({"retry_every": 600}, "state.retry_every"),
        ({"prefix": "has space"}, "state.prefix"),
        ({"redsi": "redis://x"}, "redsi"),
    ],
)
def test_a_bad_state_table_is_refused_naming_the_key(tmp_path, raw, named):
    lines = "".join(f"{key} = {json.dumps(value)}\n" for key, value in raw.items())
    file = tmp_path / "c.toml"
    file.write_text(
        f'[[providers]]\nname = "a"\nbase_url = "http://127.0.0.1:9/v1"\n[state]\n{lines}'
    )
    with pytest.raises(ConfigError, match=named):
        load_config(file)


def test_a_password_in_the_url_never_shows_in_the_error():
    with pytest.raises(ConfigError) as caught:
        load_config(providers=["a=http://127.0.0.1:9/v1"], redis="redis://:hunter2@h:1/x")
    assert "hunter2" not in str(caught.value) and "redis://:***@h:1/x" in str(caught.value)


def test_redis_on_the_command_line_and_in_the_file(tmp_path):
    args = parser().parse_args(["serve", "--redis", "redis://10.0.0.5:6380/2"])
    assert args.redis == "redis://10.0.0.5:6380/2"
    file = tmp_path / "c.toml"
    file.write_text(
        '[[providers]]\nname = "a"\nbase_url = "http://127.0.0.1:9/v1"\n'
        '[state]\nredis = "redis://127.0.0.1:6379/1"\nsync_every = 0.5\n'
    )
    assert load_config(file).state == StateConfig(redis="redis://127.0.0.1:6379/1", sync_every=0.5)
    flag = load_config(file, redis="redis://127.0.0.1:7000/3").state  # the flag wins
    assert (flag.redis, flag.sync_every) == ("redis://127.0.0.1:7000/3", 0.5)
    assert load_config(providers=["a=http://x/v1"]).state.redis is None  # default: alone


def _post(url: str, path: str, body: dict) -> dict:
    request = urllib.request.Request(
        f"{url}{path}", data=json.dumps(body).encode(), headers={"content-type": "application/json"}
    )
    with urllib.request.urlopen(request, timeout=10) as response:
        return json.loads(response.read())


@pytest.mark.slow
def test_two_serve_processes_on_one_redis_share_a_session(redis_server):
    mock, mock_url = _start("mock-provider", "--port", "0", "--speed", "20", "--name", "m1")
    routers = []
    try:
        for _ in range(2):
            routers.append(
                _start(
                    "serve",
                    "--port",
                    "0",
                    "--provider",
                    f"m1={mock_url}/v1",
                    "--log-file",
                    "",
                    "--redis",
                    redis_server.url,
                )
            )
        (_, first), (_, second) = routers
        _post(first, "/sessions", {"session_id": "cand-1", "system_prompt": "You interview."})
        one = _post(first, "/sessions/cand-1/messages", {"content": "Hi, I'm Ana."})
        two = _post(second, "/sessions/cand-1/messages", {"content": "I like trio."})
        with urllib.request.urlopen(f"{second}/health", timeout=10) as response:
            health = json.loads(response.read())
    finally:
        for process, _ in routers:
            assert _stop(process) == 0
        assert _stop(mock) == 0
    assert (one["turns"], two["turns"]) == (1, 2)
    assert health["state"]["store"] == "redis" and health["state"]["status"] == "up"
