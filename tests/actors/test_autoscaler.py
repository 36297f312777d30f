"""The autoscaler: scale up on demand after cold starts, ahead of it, and down when idle."""

from __future__ import annotations

import itertools
from types import SimpleNamespace

import pytest
import trio

from actors.autoscaler import Autoscaler, AutoscalerConfig
from actors.cache import CacheConfig
from actors.messages import ChatMessage, ChatRequest
from actors.provider import ProviderSpec
from actors.runtime import clock
from actors.runtime.errors import InvalidSetting
from actors.slots import Slots
from actors.timeouts import Timeouts
from engine.routing.fleet import RouterConfig, open_fleet
from engine.routing.retry import RetryConfig
from tests.conftest import virtual_account


def replicas(count: int, cold_start: float = 60.0):
    return [
        virtual_account(
            f"r-{i}",
            group="r",
            seconds=20.0,
            max_concurrency=2,
            queue_limit=8,
            cold_start=cold_start,
        )[0]
        for i in range(1, count + 1)
    ]


def config(**scaler: object) -> RouterConfig:
    settings = {"group": "r", "min_replicas": 1, "max_replicas": 4, "interval": 5.0, **scaler}
    return RouterConfig(
        retry=RetryConfig(jitter=0.0, deadline=600.0),
        timeouts=Timeouts(first_byte=600.0),
        cache=CacheConfig(enabled=False),
        autoscaler=AutoscalerConfig(**settings),
    )


def ask(i: int) -> ChatRequest:
    return ChatRequest(messages=(ChatMessage("user", f"q{i}"),))


async def burst(fleet, n: int) -> list:
    answers: list = []

    async def one(i: int) -> None:
        answers.append(await fleet.router.complete(ask(i)))

    async with trio.open_nursery() as nursery:
        for i in range(n):
            nursery.start_soon(one, i)
    return answers


async def test_scales_up_on_demand_and_new_replicas_serve_after_their_cold_start(virtual_clock):
    async with open_fleet(replicas(4), config(target_utilisation=1.0)) as fleet:
        await clock.sleep(1.0)
        assert [p.powered for p in fleet.providers] == [True, False, False, False]
        answers = await burst(fleet, 8)
        scaler = fleet.autoscaler
        ups = [e for e in scaler.events if e.action == "up"]
        # 8 requests on 2-slot replicas: 4 replicas wanted at the first tick (t=5).
        assert [(e.time, e.replica) for e in ups] == [(5.0, "r-2"), (5.0, "r-3"), (5.0, "r-4")]
    served = sorted((round(a.latency), a.provider) for a in answers)
    # r-1 serves 2 at once from t=0; the others only from t=65 (a 60 s cold start).
    assert served[:2] == [(20, "r-1"), (20, "r-1")]
    assert all(latency >= 85 for latency, name in served if name != "r-1")


async def test_overprovisioning_runs_ahead_of_demand(virtual_clock):
    powered = {}
    for factor in (1.0, 2.0):
        cfg = config(target_utilisation=1.0, overprovision=factor)
        async with open_fleet(replicas(4), cfg) as fleet, trio.open_nursery() as nursery:
            for i in range(3):
                nursery.start_soon(fleet.router.complete, ask(i))
            await clock.sleep(6.0)
            powered[factor] = sum(fleet.autoscaler.on.values())
            nursery.cancel_scope.cancel()
    # 3 requests on 2-slot replicas need 2 replicas; twice the demand needs 3.
    assert powered == {1.0: 2, 2.0: 3}


async def test_scales_down_one_idle_replica_at_a_time(virtual_clock):
    async with open_fleet(replicas(4), config(scale_down_after=30.0)) as fleet:
        await burst(fleet, 8)
        await clock.sleep(300.0)
        ups = [e for e in fleet.autoscaler.events if e.action == "up"]
        downs = [e for e in fleet.autoscaler.events if e.action == "down"]
        assert len(ups) == 3 and len(downs) == 3  # up to 4, then back to min_replicas
        gaps = [b.time - a.time for a, b in itertools.pairwise(downs)]
        assert all(gap >= 30.0 for gap in gaps)
        assert sum(p.powered for p in fleet.providers) == 1
        # Powered time is what a self-hosted replica costs.
        assert fleet.providers[3].powered_seconds(clock.now()) < clock.now()


def test_bad_autoscaler_settings_are_named():
    with pytest.raises(InvalidSetting, match=r"autoscaler\.overprovision"):
        AutoscalerConfig(group="r", overprovision=0.5)
    with pytest.raises(InvalidSetting, match=r"autoscaler\.max_replicas"):
        AutoscalerConfig(group="r", min_replicas=3, max_replicas=2)


def test_demand_counts_the_requests_waiting_in_the_line_as_well():
    class Line:
        waiting = 0

    def replica(name: str) -> SimpleNamespace:
        return SimpleNamespace(spec=ProviderSpec(name, max_concurrency=2), slots=Slots(2, 4))

    line = Line()
    scaler = Autoscaler(
        AutoscalerConfig(group="r", max_replicas=2), [replica("a"), replica("b")], line
    )
    assert scaler.demand() == 0
    line.waiting = 5
    assert scaler.demand() == 5
    assert scaler.desired(5) == 2
