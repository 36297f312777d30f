"""Replaying a scenario's fault schedule on a mock provider, in real time, scaled."""

from __future__ import annotations

import httpx
import pytest
import trio

from actors.faults import Fault
from engine.cli import main
from engine.errors import InvalidRequest
from sims.experiment import replay_faults
from tests.live.conftest import live_config, start_mock, start_router

CHAT = {"model": "m", "messages": [{"role": "user", "content": "hi"}], "max_tokens": 5}


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
    with pytest.raises(InvalidRequest, match=r"fast-1 \| steady-1"):
        replay_faults("chaos-quarantine", "nobody")
    assert main(["mock-provider", "--port", "0", "--replay", "hedging", "--account", "x"]) == 2
    assert "--account: got 'x'" in capsys.readouterr().err
