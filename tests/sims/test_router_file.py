"""--router: a simulation routes with a live config's own tables, and refuses, named, what
cannot carry over."""

from __future__ import annotations

import pytest

from engine.cli.main import main
from engine.routing.config import ConfigError
from sims.router_file import router_tables
from sims.scenario import load

ROUTER = """
[[providers]]
name = "a"
base_url = "https://api.example.com/v1"
api_key_env = "A_KEY"   # not read: nothing is called

[routing]
policy = "priority"

[retry]
max_attempts = 2

[server]
port = 9000             # the server's own: not a routing setting, left behind
"""


def test_the_router_tables_replace_the_scenarios_with_the_live_defaults(tmp_path):
    path = tmp_path / "router.toml"
    path.write_text(ROUTER)
    scenario, raw = load("chaos-quarantine", ["retry.deadline=60"], tables=router_tables(path))
    assert scenario.routing.policy == "priority"
    assert scenario.retry.max_attempts == 2
    assert scenario.retry.deadline == 60  # --set still applies after
    assert scenario.health.ping_every == 30.0  # the live default, as the server runs
    assert "server" not in raw and "providers" not in raw
    plain, _ = load("chaos-quarantine")
    assert plain.accounts == scenario.accounts  # the accounts stay the scenario's


def test_what_cannot_carry_over_is_refused_by_name(tmp_path):
    path = tmp_path / "router.toml"
    path.write_text(
        ROUTER.replace('api_key_env = "A_KEY"', "timeouts = {first_byte = 120}")
        + "\n[health]\nreach_every = 10\n"
    )
    with pytest.raises(ConfigError) as caught:
        router_tables(path)
    text = str(caught.value)
    assert "health.reach_every" in text and "providers[0].timeouts" in text


@pytest.mark.parametrize("command", ["simulate", "size"])
def test_a_bad_router_file_stops_the_command_before_any_run(tmp_path, capsys, command):
    path = tmp_path / "router.toml"
    path.write_text(ROUTER.replace('policy = "priority"', 'policy = "fastest"'))
    out = str(tmp_path / "o")
    assert main([command, "chaos-quarantine", "--router", str(path), "--out", out]) == 2
    err = capsys.readouterr().err
    assert "routing.policy" in err and str(path) in err
    assert not (tmp_path / "o").exists()
