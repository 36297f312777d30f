"""Calibration from the live router's own traces: a mock provider of known profile behind
`callboard serve`'s router, its spans written to a file, calibrate it, and the mock's
profile comes back (roughly: loopback HTTP adds its own milliseconds)."""

from __future__ import annotations

import tomllib

import trio

from engine import open_router
from sims.calibrate import calibrate
from sims.calibration_toml import scenario_toml
from sims.scenario import structure
from tests.live.conftest import live_config, start_mock

SPEED = 10.0  # the healthy mock: TTFT median 0.3 s / SPEED, 80 * SPEED tokens/s, 40 tokens


async def test_the_live_routers_traces_calibrate_to_the_mocks_profile(nursery, tmp_path):
    path = tmp_path / "live.jsonl"
    a = await start_mock(nursery, "a", speed=SPEED, seed=3)
    config = live_config([a], traces={"file": str(path)})
    async with open_router(config, env={}) as live:

        async def ask(n: int) -> None:
            async for _ in live.stream([{"role": "user", "content": f"Question {n}?"}]):
                pass

        for batch in range(8):
            async with trio.open_nursery() as requests:
                for n in range(6):
                    requests.start_soon(ask, batch * 6 + n)
        assert live.tracing is not None
        await trio.to_thread.run_sync(live.tracing.flush)

    calibration = calibrate([path])
    assert calibration.observed.source == "callboard"
    (account,) = calibration.accounts
    fit = account.fit
    assert account.name == "a" and account.profile == "openai-paid"
    assert fit.answered == 48 and fit.errors["upstream_error"].estimate == 0.0
    assert 0.015 < fit.ttft.mean.estimate < 0.3  # the mock's mean is ~0.037 s
    assert 200 < fit.tokens_per_s.estimate < 1600  # the mock's 800
    (limit,) = fit.limits  # the mock's x-ratelimit headers: 600 requests a minute
    assert (limit.unit, limit.limit) == ("requests", 600.0)
    text = scenario_toml(calibration, "live")
    scenario = structure(tomllib.loads(text), "live")
    assert scenario.accounts[0].limits[0].limit == 600.0
