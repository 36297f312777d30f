"""Replaying a scenario's fault schedule on a mock provider, in real time, scaled."""

from __future__ import annotations

import json
import socket

import httpx
import pytest
import trio

from actors.faults import Fault
from actors.runtime.errors import InvalidSetting
from engine.cli.main import main
from sims.experiment import replay_faults
from tests.live.conftest import live_config, start_mock, start_router

CHAT = {"model": "m", "messages": [{"role": "user", "content": "hi"}], "max_tokens": 5}


@pytest.mark.slow
async def test_a_mock_replays_its_faults_scaled_and_the_router_fails_over(nursery):
    # An outage from scenario second 20 to 60, replayed 40x faster: 0.5 s to 1.5 s.
    flaky = await start_mock(
        nursery, "flaky", faults=[Fault("outage", start=20, end=60)], time_scale=40
    )
    steady = await start_mock(nursery, "steady")
    router = await start_router(
        nursery,
        live_config([flaky, steady], routing={"policy": "priority"}, breaker={"open_for": 30}),
    )
    async with httpx.AsyncClient(base_url=flaky.url) as http:
        with trio.fail_after(10):
            started = (await http.post("/admin/replay", json={"at": 0})).json()
            assert started["time_scale"] == 40 and started["active"] == []
            assert (await http.post("/v1/chat/completions", json=CHAT)).status_code == 200
            await trio.sleep(0.8)  # scenario time ~32 s: inside the outage
            assert (await http.get("/admin/replay")).json()["active"] == ["outage"]
            assert (await http.post("/v1/chat/completions", json=CHAT)).status_code == 503
            async with httpx.AsyncClient(base_url=router) as client:
                answer = await client.post("/v1/chat/completions", json={**CHAT, "model": "auto"})
            assert answer.status_code == 200 and answer.json()["provider"] == "steady"
            await trio.sleep(1.0)  # scenario time ~72 s: over
            assert (await http.post("/v1/chat/completions", json=CHAT)).status_code == 200
            with pytest.raises(httpx.HTTPStatusError):
                bad = await http.post("/admin/replay", json={"at": -1})
                bad.raise_for_status()


def test_replay_reads_a_scenario_or_an_experiment_and_names_the_account(capsys):
    [fault] = replay_faults("hedging", "openai-paid-2")
    assert (fault.kind, fault.start, fault.end, fault.multiplier) == ("latency", 300, 900, 8)
    assert replay_faults("chaos-quarantine", "steady-1") == []
    with pytest.raises(InvalidSetting, match=r"fast-1 \| steady-1"):
        replay_faults("chaos-quarantine", "nobody")
    assert main(["mock-provider", "--port", "0", "--replay", "hedging", "--account", "x"]) == 2
    assert "--account: got 'x'" in capsys.readouterr().err


@pytest.mark.slow
def test_callboard_replay_sets_the_live_router_beside_the_simulation(monkeypatch, tmp_path, capsys):
    # Every socket the run opens or binds is recorded: only loopback may appear.
    addresses: list[object] = []
    for method in ("connect", "connect_ex", "bind"):
        original = getattr(socket.socket, method)

        def spy(self, address, _original=original):
            addresses.append(address)
            return _original(self, address)

        monkeypatch.setattr(socket.socket, method, spy)
    # The priority policy sends every call to fast-1 first, so the outage (scenario
    # seconds 300-1200, 1-4 s of wall time here) meets traffic in both worlds.
    argv = ["replay", "chaos-quarantine", "--interviews", "5", "--time-scale", "300"]
    argv += ["--set", "routing.policy='priority'", "--out", str(tmp_path), "--json"]
    assert main(argv) == 0
    line = json.loads(capsys.readouterr().out)
    live, simulated = line["live"], line["simulation"]
    for column in (live, simulated):
        assert all(value is not None for value in column.values()), column
        assert column["interviews"] == 5 and column["requests"] == 5 * 17
        assert column["failovers"] >= 3 and column["breaker_openings"] >= 1
        assert column["success_rate"] > 0.95
        assert 900 < column["simulated_s"] < 1500
    # Latencies come back in scenario seconds: the same order of magnitude, the live
    # one higher by the loopback and router time, multiplied by the time scale.
    assert simulated["p50"] < live["p50"] < simulated["p50"] + 50 * line["overhead_s"]
    assert line["time_scale"] == 300 and line["live_wall_s"] < 10
    assert all(url.startswith("http://127.0.0.1:") for url in line["providers"])
    assert addresses and {a[0] for a in addresses if isinstance(a, tuple)} == {"127.0.0.1"}
    report = (tmp_path / "replay.md").read_text()
    assert "| breaker openings |" in report and "agree in shape, not byte for byte" in report
    assert json.loads((tmp_path / "replay.json").read_text())["live"] == live


def test_a_replay_runs_every_timeout_scaled_an_accounts_own_too():
    from sims.replay import live_config as replayed
    from sims.scenario import structure

    scenario = structure(
        {
            "name": "timed",
            "accounts": [
                {"profile": "openai-paid", "name": "r", "timeouts": {"first_byte": 120}},
                {"profile": "openai-paid", "name": "p"},
            ],
            "timeouts": {"first_byte": 30, "idle": 20},
        },
        "test",
    )
    config = replayed(scenario, ["http://127.0.0.1:1", "http://127.0.0.1:2"], 10.0)
    assert (config.timeouts.first_byte, config.timeouts.idle, config.timeouts.total) == (3, 2, 60)
    own = {p.name: p.timeouts for p in config.providers}
    assert own["r-1"] is not None and own["r-1"].first_byte == 12.0 and own["p-1"] is None
