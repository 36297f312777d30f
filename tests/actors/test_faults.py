"""Fault kinds: each does what its name says, at the times it says, and bad ones are named."""

from __future__ import annotations

import math

import pytest

from actors.backends import Usage
from actors.backends.virtual import ErrorRates, LatencyModel, VirtualBackend
from actors.errors import AttemptTimeout, AuthFailed, RateLimited, UpstreamError
from actors.faults import Fault, FaultSchedule
from actors.messages import ChatMessage, ChatRequest
from actors.runtime import clock
from actors.runtime.distributions import Constant
from actors.runtime.errors import InvalidSetting
from actors.runtime.randomness import RandomStreams
from actors.timeouts import Timeouts
from engine.routing.fleet import RouterConfig, open_fleet
from engine.routing.policies import PolicyConfig
from engine.routing.retry import RetryConfig
from sims.runner import build_accounts
from sims.scenario import ScenarioError, load
from tests.conftest import virtual_account

REQUEST = ChatRequest(messages=(ChatMessage("user", "hi"),))


def backend(*faults: Fault, seed: int = 3) -> VirtualBackend:
    return VirtualBackend(
        "a",
        LatencyModel(service=Constant(1.0), error_ttft=Constant(0.1)),
        ErrorRates(),
        FaultSchedule(faults),
        RandomStreams(seed),
    )


async def outcome(b: VirtualBackend) -> str:
    try:
        await b.complete(REQUEST, "r", Usage())
    except (UpstreamError, RateLimited, AuthFailed) as exc:
        return exc.code
    return "ok"


async def failure_share(b: VirtualBackend, start: float, end: float, step: float = 0.5) -> float:
    """Share of the calls started in [start, end), ``step`` seconds apart, that failed."""
    codes = []
    await clock.sleep_until(start)
    while clock.now() < end:
        codes.append(await outcome(b))
        await clock.sleep(step)
    return sum(c != "ok" for c in codes) / len(codes)


async def test_outage_fails_every_call_with_its_status_inside_the_window_only(virtual_clock):
    b = backend(Fault("outage", start=10, end=20, status=502))
    assert await outcome(b) == "ok"
    await clock.sleep_until(10)
    with pytest.raises(UpstreamError) as error:
        await b.complete(REQUEST, "r", Usage())
    assert error.value.upstream_status == 502
    await clock.sleep_until(20)
    assert await outcome(b) == "ok"  # the window is [start, end)


async def test_latency_fault_multiplies_the_call_time(virtual_clock):
    b = backend(Fault("latency", start=5, end=50, multiplier=8))
    await b.complete(REQUEST, "r", Usage())
    assert clock.now() == pytest.approx(1.0)
    await clock.sleep_until(5)
    await b.complete(REQUEST, "r", Usage())
    assert clock.now() == pytest.approx(5 + 8.0)


async def test_brownout_fails_about_its_share(virtual_clock):
    b = backend(Fault("errors", start=0, end=1000, share=0.3))
    share = await failure_share(b, 0, 1000, step=1.0)
    assert 0.25 < share < 0.35


async def test_rate_limit_fault_is_a_429_with_its_retry_after(virtual_clock):
    b = backend(Fault("rate_limit", start=0, retry_after=42))
    with pytest.raises(RateLimited) as error:
        await b.complete(REQUEST, "r", Usage())
    assert error.value.retry_after == 42


async def test_revoked_key_is_a_401(virtual_clock):
    with pytest.raises(AuthFailed):
        await backend(Fault("revoked", start=0)).complete(REQUEST, "r", Usage())


async def test_hang_accepts_the_call_and_never_answers(virtual_clock):
    # The provider takes the call (a slot is held) and says nothing; only the first-byte
    # timeout ends it, and the slot is given back.
    account, _ = virtual_account("a", faults=[Fault("hang", start=0)], max_concurrency=1)
    async with open_fleet([account], RouterConfig(timeouts=Timeouts(first_byte=7.0))) as fleet:
        provider = fleet.provider("a")
        with pytest.raises(AttemptTimeout):
            await provider.call(REQUEST, "r1")
        assert clock.now() == pytest.approx(7.0)
        assert provider.slots.in_use == 0 and provider.stats.failures["timeout"] == 1


async def test_flapping_alternates_down_and_up_every_period(virtual_clock):
    fault = Fault("flapping", start=100, end=400, period=50)
    assert [fault.active(t) for t in (99, 100, 149.9, 150, 199.9, 200, 250, 320, 399, 400)] == [
        False, True, True, False, False, True, False, True, False, False,
    ]  # fmt: skip
    assert fault.down_phases(1000) == [(100, 150), (200, 250), (300, 350)]
    b = backend(fault)
    assert await failure_share(b, 100, 150) == 1.0
    assert await failure_share(b, 150, 200) == 0.0
    assert await failure_share(b, 200, 250) == 1.0
    assert await failure_share(b, 400, 450) == 0.0


async def test_slow_recovery_error_share_decays_linearly_to_zero(virtual_clock):
    fault = Fault("slow_recovery", start=0, end=1000, share=0.8)
    assert [fault.share_at(t) for t in (0, 250, 500, 1000)] == [0.8, 0.6, 0.4, 0.0]
    b = backend(fault, seed=11)
    early = await failure_share(b, 0, 200, step=0.5)  # expected ~0.72
    late = await failure_share(b, 800, 1000, step=0.5)  # expected ~0.08
    assert 0.62 < early < 0.82 and 0.02 < late < 0.15
    assert await failure_share(b, 1000, 1100) == 0.0


GROUP_OUTAGE = """
name = "group-outage"
duration = 600

[workload]
interviews = 1

[[accounts]]
profile = "openai-paid"
name = "primary"
count = 3
errors = {}

[[accounts]]
profile = "openai-paid"
name = "backup"
count = 1
priority = 1
errors = {}

[[faults]]
target = "primary"
kind = "outage"
start = 0
"""


async def test_a_group_target_takes_every_account_of_that_provider_down_at_once(
    virtual_clock, tmp_path
):
    path = tmp_path / "group.toml"
    path.write_text(GROUP_OUTAGE)
    scenario, _ = load(str(path))
    assert scenario.fault_targets(scenario.faults[0]) == ["primary-1", "primary-2", "primary-3"]
    assert scenario.faults_for("backup-1") == []
    accounts = build_accounts(scenario, RandomStreams(1))
    config = RouterConfig(
        routing=PolicyConfig(policy="priority"), retry=RetryConfig(jitter=0.0, max_attempts=5)
    )
    async with open_fleet(accounts, config) as fleet:
        for i in range(6):
            answer = await fleet.router.complete(
                ChatRequest(messages=(ChatMessage("user", f"q{i}"),), bypass_cache=True)
            )
            assert answer.provider == "backup-1"
        for name in ("primary-1", "primary-2", "primary-3"):
            provider = fleet.provider(name)
            assert provider.stats.answered == 0 and provider.stats.failures["upstream_error"] > 0


@pytest.mark.parametrize(
    ("fault", "field"),
    [
        (Fault("flapping", start=0, period=0), "faults[0].period"),
        (Fault("flapping", start=0, period=math.inf), "faults[0].period"),
        (Fault("slow_recovery", start=0), "faults[0].end"),
        (Fault("slow_recovery", start=10, end=5), "faults[0].end"),
        (Fault("errors", start=0, share=0), "faults[0].share"),
        (Fault("brownout", start=0), "faults[0].kind"),
    ],
)
def test_bad_faults_are_named(fault, field):
    with pytest.raises(InvalidSetting) as error:
        FaultSchedule([fault])
    assert error.value.field == field


def test_scenario_fault_fields_are_validated_like_the_file():
    with pytest.raises(ScenarioError, match=r"faults\[0\]\.period"):
        load(
            "chaos-quarantine",
            ["faults.0.kind='flapping'", "faults.0.period=-1"],
        )
    with pytest.raises(ScenarioError, match=r"flapping \| slow_recovery"):
        load("chaos-quarantine", ["faults.0.kind='wobbly'"])
    scenario, _ = load("chaos-quarantine", ["faults.0.kind='flapping'", "faults.0.period=30"])
    assert scenario.faults[0].period == 30
