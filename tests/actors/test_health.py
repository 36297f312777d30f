"""The health monitor: passive outcomes, outside reports, active pings, percentiles."""

from __future__ import annotations

import attrs
import pytest

from actors.backends.reach import REACHED, ReachFeed
from actors.faults import Fault
from actors.health import HealthConfig, HealthMonitor, ReachMark
from actors.runtime import clock
from actors.runtime.errors import InvalidSetting
from engine.routing.fleet import RouterConfig, open_fleet
from tests.conftest import virtual_account


def test_ewma_score_and_percentiles():
    monitor = HealthMonitor(HealthConfig(alpha=0.5, window=4))
    monitor.register("p")
    for latency in (1.0, 2.0, 3.0, 4.0, 5.0):  # the ring keeps the last 4
        monitor.observe("p", "ok", latency, 0.0)
    monitor.observe("p", "upstream_error", 0.1, 0.0)
    monitor.observe("p", "rate_limited", 0.1, 0.0)  # busy, not broken: no effect on the score
    monitor.observe("p", "cancelled", 0.1, 0.0)  # says nothing about the provider
    snapshot = monitor.snapshot_of("p")
    assert snapshot.calls == 7 and snapshot.failures == 1
    assert snapshot.error_rate == pytest.approx(0.25)  # 0.5 after the error, halved by the 429
    assert snapshot.score == pytest.approx(0.75)
    assert snapshot.latency_ewma == pytest.approx(4.0625)
    assert snapshot.p50 == pytest.approx(3.5) and snapshot.p99 == pytest.approx(4.97)
    assert snapshot.last_error == "upstream_error"


async def test_active_pings_find_a_provider_that_is_down(virtual_clock):
    down, down_backend = virtual_account("down", faults=[Fault("outage", start=0)])
    up, _ = virtual_account("up", seconds=0.2)
    config = RouterConfig(health=HealthConfig(ping_every=10.0, ping_timeout=2.0))
    async with open_fleet([down, up], config) as fleet:
        await clock.sleep(55.0)
        down_health = fleet.health.snapshot_of("down")
        up_health = fleet.health.snapshot_of("up")
    assert down_health.calls == 5 and down_health.failures == 5
    assert down_health.score == pytest.approx(0.9**5) and up_health.score == 1.0
    assert up_health.p50 == pytest.approx(0.2)
    assert len(down_backend.requests) == 5  # pings are real (small) calls
    assert fleet.router.stats.received == 0  # and not routed requests


async def test_a_hanging_provider_fails_its_ping_by_timeout(virtual_clock):
    hung, _ = virtual_account("hung", faults=[Fault("hang", start=0)])
    config = RouterConfig(health=HealthConfig(ping_every=10.0, ping_timeout=2.0))
    async with open_fleet([hung], config) as fleet:
        await clock.sleep(15.0)
        assert fleet.health.snapshot_of("hung").last_error == "timeout"


async def test_outside_reports_count_and_unknown_providers_are_refused(virtual_clock):
    account, _ = virtual_account("a")
    async with open_fleet([account]) as fleet:
        fleet.health.report("a", "the grader saw garbage")
        await clock.sleep(0.1)
        snapshot = fleet.health.snapshot_of("a")
        assert snapshot.failures == 1 and "garbage" in snapshot.last_error
        with pytest.raises(InvalidSetting, match="provider"):
            fleet.health.report("b", "who?")


def test_bad_health_settings_are_named():
    with pytest.raises(InvalidSetting, match=r"health\.alpha"):
        HealthConfig(alpha=0)
    with pytest.raises(InvalidSetting, match=r"health\.ping_every"):
        HealthConfig(ping_every=-1)
    with pytest.raises(InvalidSetting, match=r"health\.reach_every"):
        HealthConfig(reach_every=0)
    HealthMonitor(HealthConfig())  # defaults are valid


async def test_a_failed_connection_marks_the_account_until_an_answer_clears_it(virtual_clock):
    """What a backend tells its reach feed reaches the monitor, stamped with the clock:
    the first failure starts the mark, the next ones keep its start, an answer clears it."""
    account, _ = virtual_account("a")
    feed = ReachFeed()
    async with open_fleet([attrs.evolve(account, reach=feed)]) as fleet:
        marks = fleet.health.unreachable
        assert marks == {}
        await clock.sleep(5.0)
        refused = "ConnectError (10.0.0.1:443): Connection refused"
        feed.report(refused)
        await clock.sleep(3.0)
        feed.report(refused)
        assert marks == {"a": ReachMark(refused, since=5.0, latest=8.0)}
        assert fleet.health.snapshot_of("a").failures == 0  # the attempt's code counts those
        feed.report(REACHED)
        assert marks == {} and fleet.health.unreachable is marks  # one dict, read in place


def test_an_unreachable_attempt_is_a_failure_for_the_health_score():
    monitor = HealthMonitor(HealthConfig(alpha=0.5))
    monitor.register("p")
    monitor.observe("p", "unreachable", 0.01, 0.0)
    snapshot = monitor.snapshot_of("p")
    assert (snapshot.failures, snapshot.last_error, snapshot.score) == (1, "unreachable", 0.5)
