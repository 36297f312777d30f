"""Overload on virtual time: with every account saturated the router sheds by priority,
with a Retry-After, from a bounded line; nobody waits past the deadline; the books balance."""

from __future__ import annotations

import math

import pytest
import trio

from actors.cache import CacheConfig
from actors.messages import ChatMessage, ChatRequest
from actors.runtime import clock
from actors.runtime.clock import run_virtual
from actors.runtime.errors import CallboardError, InvalidSetting
from engine.routing.books import Books
from engine.routing.errors import LineFull, NoProviderAvailable
from engine.routing.fleet import RouterConfig, open_fleet
from engine.routing.retry import RetryConfig
from engine.routing.waiting import LineConfig
from tests.conftest import virtual_account

DEADLINE = 10.0


def ask(i: int | str, **fields: object) -> ChatRequest:
    return ChatRequest(messages=(ChatMessage("user", f"question {i}"),), **fields)


def saturated_fleet() -> list:
    """Two accounts of 2 slots each and no queue: 4 calls of 1 s at a time, 4 per second."""
    return [
        virtual_account(name, seconds=1.0, max_concurrency=2, queue_limit=0)[0]
        for name in ("a", "b")
    ]


def config(discipline: str, max_waiting: int) -> RouterConfig:
    return RouterConfig(
        retry=RetryConfig(jitter=0.0, deadline=DEADLINE),
        cache=CacheConfig(enabled=False),
        line=LineConfig(discipline=discipline, rate_window=10.0, max_waiting=max_waiting),
    )


async def flood(fleet, requests: list[tuple[str, int]], gap: float) -> tuple[list, list]:
    """Send ``requests`` (label, priority) ``gap`` s apart; watch the books as they run.

    Returns each request's (label, priority, start, end, outcome, retry_after) and the
    books sampled every 50 ms.
    """
    outcomes: list[tuple[str, int, float, float, str, float | None]] = []
    samples: list[Books] = []

    async def one(label: str, priority: int) -> None:
        start = clock.now()
        try:
            await fleet.router.complete(ask(label, priority=priority))
            outcomes.append((label, priority, start, clock.now(), "ok", None))
        except CallboardError as exc:
            retry_after = exc.retry_after
            outcomes.append((label, priority, start, clock.now(), exc.code, retry_after))

    async def watch() -> None:
        while True:
            samples.append(Books.of(fleet.router))
            await clock.sleep(0.05)

    async with trio.open_nursery() as watcher:
        watcher.start_soon(watch)
        async with trio.open_nursery() as nursery:
            for label, priority in requests:
                nursery.start_soon(one, label, priority)
                await clock.sleep(gap)
        watcher.cancel_scope.cancel()
    return outcomes, samples


async def warm_up(fleet) -> None:
    """A steady 4 requests/s for 5 s: the line learns how fast it drains."""
    async with trio.open_nursery() as nursery:
        for i in range(20):
            nursery.start_soon(fleet.router.complete, ask(f"warm {i}"))
            await clock.sleep(0.25)


async def saturated_burst() -> tuple[list, list, Books, list]:
    """Warm up, then 120 requests in 1.2 s against 4/s of capacity: new interviews
    (priority 1) first, then turns of interviews under way (priority 0)."""
    async with open_fleet(saturated_fleet(), config("priority", max_waiting=30)) as fleet:
        await warm_up(fleet)
        outcomes, samples = await flood(fleet, BURST, gap=0.01)
        books = Books.of(fleet.router)
        failures = [p.stats.failures for p in fleet.providers]
    return outcomes, samples, books, failures


BURST = [(f"new-{i}", 1) for i in range(90)] + [(f"ongoing-{i}", 0) for i in range(30)]
#: Trio runs the tasks that wake at the same moment in an order drawn from its own
#: random generator; each seed is one such order, pinned so that a test that depends on
#: it fails on every run instead of now and then.
SCHEDULING_SEEDS = (0, 1, 2, 3, 16, 25)  # 16 and 25 broke these assertions before the fix


@pytest.mark.parametrize("scheduling_seed", SCHEDULING_SEEDS)
def test_saturated_accounts_shed_new_interviews_first_with_retry_after(scheduling_seed):
    outcomes, samples, books, failures = run_virtual(
        saturated_burst, scheduling_seed=scheduling_seed
    )

    assert len(outcomes) == len(BURST)
    by_code: dict[str, int] = {}
    for _, _, _, _, code, _ in outcomes:
        by_code[code] = by_code.get(code, 0) + 1
    # Nobody waits past the deadline, and every refusal is one of the overload answers
    # with a Retry-After: no attempt is wasted on a full account, and nobody is let in
    # too late to be answered (the line counts the typical service time).
    assert max(end - start for _, _, start, end, _, _ in outcomes) <= DEADLINE + 1e-9
    assert set(by_code) <= {"ok", "shed", "overloaded"}
    refused = [o for o in outcomes if o[4] in ("shed", "overloaded", "no_provider")]
    assert len(refused) >= 60 and all(o[5] is not None and o[5] > 0 for o in refused)
    # Every call went to an account with a free slot; the only failed calls are those sent
    # with less than a service time left before their deadline.
    assert all(set(f) <= {"timeout"} for f in failures)
    # Interviews under way go first: all of them answered, new ones take what is left.
    ongoing = [o for o in outcomes if o[1] == 0]
    assert all(o[4] == "ok" for o in ongoing)
    new_answered = sum(o[4] == "ok" for o in outcomes if o[1] == 1)
    assert 0 < new_answered < 60
    # Most refusals come at once, not after waiting for nothing.
    quick = [o for o in refused if o[3] - o[2] < 1.0]
    assert len(quick) >= len(refused) * 0.6
    # Bounded: the line never held more than max_waiting; the books balance at every sample.
    assert max(s.queued for s in samples) <= 30
    assert all(s.balanced() for s in samples)
    assert books.balanced() and books.queued == books.in_flight == 0
    assert books.received == 20 + len(BURST)
    assert books.answered == 20 + by_code["ok"]


def test_who_is_answered_or_shed_does_not_depend_on_trio_s_task_order():
    """Same requests at the same virtual times: the same outcome for each, however trio
    orders the tasks that wake together (a slot freed and the line's timer, say)."""
    seen = set()
    for seed in SCHEDULING_SEEDS:
        outcomes, _, _, _ = run_virtual(saturated_burst, scheduling_seed=seed)
        seen.add(tuple(sorted((o[0], o[4], round(o[3] - o[2], 9), o[5]) for o in outcomes)))
    assert len(seen) == 1


async def fill_slots(fleet, nursery, count: int = 4) -> None:
    """After a warm-up (the line knows its drain rate and service time), take every slot
    of the saturated fleet for 1 s with calls that will be answered."""
    await warm_up(fleet)
    for i in range(count):
        nursery.start_soon(fleet.router.complete, ask(f"filler {i}", deadline=30.0))
    await clock.sleep(0.01)


async def test_an_overtaken_waiter_that_can_no_longer_make_it_is_shed_at_once(virtual_clock):
    """A new interview with little time left waits in the middle of the line, behind it
    one with plenty; turns of interviews under way overtake both. The first is shed as
    soon as it can no longer be answered in time, though the one behind it still can."""
    results: dict[str, tuple[str, float, float | None]] = {}

    async def one(label: str, priority: int, deadline: float) -> None:
        start = clock.now()
        try:
            await fleet.router.complete(ask(label, priority=priority, deadline=deadline))
            results[label] = ("ok", clock.now() - start, None)
        except CallboardError as exc:
            results[label] = (exc.code, clock.now() - start, exc.retry_after)

    fleet_config = config("priority", max_waiting=30)
    async with open_fleet(saturated_fleet(), fleet_config) as fleet, trio.open_nursery() as nursery:
        await fill_slots(fleet, nursery)
        nursery.start_soon(one, "timer", 0, 30.0)  # keeps the time for the line
        await clock.sleep(0.01)
        nursery.start_soon(one, "short", 1, 3.6)  # fits now, not behind 7 more
        await clock.sleep(0.01)
        nursery.start_soon(one, "long", 1, 30.0)
        for i in range(10):
            await clock.sleep(0.01)
            nursery.start_soon(one, f"ongoing-{i}", 0, 30.0)
    code, waited, retry_after = results["short"]
    assert code == "shed" and waited < 0.2 and retry_after is not None and retry_after > 0
    assert results["long"][0] == "ok"
    assert all(results[f"ongoing-{i}"][0] == "ok" for i in range(10))


async def test_a_waiter_overtaken_while_it_kept_the_time_is_shed_when_it_wakes(virtual_clock):
    """The request keeping the line's time is overtaken by turns of interviews under way:
    when it wakes and finds them ahead, it is shed if it can no longer make it, instead
    of waiting out its deadline."""
    results: dict[str, tuple[str, float]] = {}

    async def one(label: str, priority: int, deadline: float) -> None:
        start = clock.now()
        try:
            await fleet.router.complete(ask(label, priority=priority, deadline=deadline))
            results[label] = ("ok", clock.now() - start)
        except CallboardError as exc:
            results[label] = (exc.code, clock.now() - start)

    fleet_config = config("priority", max_waiting=30)
    async with open_fleet(saturated_fleet(), fleet_config) as fleet, trio.open_nursery() as nursery:
        await fill_slots(fleet, nursery)
        nursery.start_soon(one, "new", 1, 3.0)  # first in line: it keeps the time
        for i in range(10):
            await clock.sleep(0.01)
            nursery.start_soon(one, f"ongoing-{i}", 0, 30.0)
    code, waited = results["new"]
    assert code == "shed" and waited < 1.0
    assert all(results[f"ongoing-{i}"][0] == "ok" for i in range(10))


async def test_first_come_first_served_a_full_line_refuses_at_once_and_the_rest_wait_in_order(
    virtual_clock,
):
    async with open_fleet(saturated_fleet(), config("fifo", max_waiting=12)) as fleet:
        outcomes, samples = await flood(fleet, [(f"r{i}", 0) for i in range(40)], gap=0.0)
        books = Books.of(fleet.router)
    full = [o for o in outcomes if o[4] == "overloaded"]
    answered = [o for o in outcomes if o[4] == "ok"]
    # 4 take the slots, 12 wait in line (each served within the 10 s deadline), the
    # other 24 are refused at once, with a Retry-After.
    assert len(answered) == 16 and len(full) == 24
    assert all(o[3] == o[2] and o[5] is not None for o in full)
    assert max(o[3] - o[2] for o in answered) <= DEADLINE
    assert max(s.queued for s in samples) <= 12
    assert books.balanced() and books.failed == {"overloaded": 24}


async def test_line_full_is_a_503_with_retry_after_that_names_the_setting():
    error = LineFull("r-1", [], 12, 0.25)
    assert isinstance(error, NoProviderAvailable)
    assert error.status == 503 and error.code == "overloaded" and error.retry_after == 0.25
    assert "line.max_waiting" in str(error)


def test_the_line_s_settings_are_validated():
    for bad in (0, -1, 1.5, True):
        with pytest.raises(InvalidSetting) as error:
            LineConfig(max_waiting=bad)
        assert error.value.field == "line.max_waiting"
    for field, bad in (("discipline", "lifo"), ("rate_window", 0.0), ("rate_window", math.inf)):
        with pytest.raises(InvalidSetting) as error:
            LineConfig(**{field: bad})
        assert error.value.field == f"line.{field}"
