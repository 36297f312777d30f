"""A seeded run is a function of its seed: the same event log twice, in any process."""

from __future__ import annotations

import contextlib
import hashlib
import os
import subprocess
import sys
from pathlib import Path

import pytest
import trio

from actors.backends.virtual import ErrorRates, LatencyModel, VirtualBackend
from actors.breaker import BreakerConfig
from actors.faults import Fault, FaultSchedule
from actors.provider import ProviderSpec
from actors.runtime import clock
from actors.runtime.clock import run_virtual
from actors.runtime.distributions import Constant, LogNormal
from actors.runtime.errors import CallboardError
from actors.runtime.randomness import RandomStreams
from actors.session import Turn
from actors.timeouts import Timeouts
from engine.routing.decision_log import DecisionLog
from engine.routing.fleet import Account, RouterConfig, open_fleet
from engine.routing.retry import RetryConfig

pytestmark = pytest.mark.slow  # every test here takes seconds: out of `pytest -m "not slow"`

ROOT = Path(__file__).resolve().parents[2]


def interview_run(seed: int) -> list[tuple[float, str, str, str]]:
    """60 interviews on 3 flaky providers, one with an outage; returns the event log.

    Latencies are constant and think times coarse on purpose, so that many events
    tie in time and the run depends on trio's scheduling order being pinned.
    """
    streams = RandomStreams(seed)
    log = DecisionLog(keep=True)

    async def main() -> None:
        accounts = [
            Account(
                ProviderSpec(name=f"p{i}", max_concurrency=4, queue_limit=8),
                VirtualBackend(
                    f"p{i}",
                    LatencyModel(service=Constant(1.0 + i)),
                    ErrorRates(upstream_error=0.05, timeout=0.01),
                    FaultSchedule([Fault("outage", 200, 400)] if i == 0 else []),
                    streams,
                ),
            )
            for i in range(3)
        ]
        config = RouterConfig(
            retry=RetryConfig(deadline=60.0),
            timeouts=Timeouts(first_byte=10.0),
            breaker=BreakerConfig(failure_threshold=3, open_for=60.0),
        )
        async with open_fleet(accounts, config, seed=seed, log=log) as fleet:
            think = streams.stream("workload:think")

            async def interview(index: int) -> None:
                session = await fleet.session(f"s{index}")
                for turn in range(10):
                    await clock.sleep(round(LogNormal(3.0, 0.5).sample(think)))
                    with contextlib.suppress(CallboardError):
                        await session.ask(Turn(f"s{index} turn {turn}"))

            async with trio.open_nursery() as nursery:
                for index in range(60):
                    nursery.start_soon(interview, index)

    run_virtual(main, scheduling_seed=seed)
    return log.events


def digest(events: list[tuple[float, str, str, str]]) -> str:
    return hashlib.sha256(repr(events).encode()).hexdigest()


def test_same_seed_same_event_log_in_this_process():
    first = interview_run(11)
    assert len(first) > 1500
    assert any(action == "breaker" for _, _, action, _ in first)
    assert any(action == "failover" for _, _, action, _ in first)
    assert interview_run(11) == first
    assert digest(interview_run(12)) != digest(first)


def test_same_seed_same_event_log_in_a_new_process_with_any_hash_seed():
    code = (
        "from tests.runtime.test_determinism import interview_run, digest;"
        "print(digest(interview_run(11)))"
    )
    digests = set()
    for hash_seed in ("0", "1234"):
        env = {**os.environ, "PYTHONHASHSEED": hash_seed}
        out = subprocess.run(
            [sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True, text=True
        )
        assert out.returncode == 0, out.stderr
        digests.add(out.stdout.strip())
    assert digests == {digest(interview_run(11))}
