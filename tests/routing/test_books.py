"""The books under random faults, on virtual time: at every moment each request that entered
the router is in exactly one state, and at the end the counts match what the callers saw."""

from __future__ import annotations

import collections

import pytest
import trio
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from actors.breaker import BreakerConfig
from actors.cache import CacheConfig
from actors.faults import Fault
from actors.messages import ChatMessage, ChatRequest
from actors.runtime import clock
from actors.runtime.clock import run_virtual
from actors.runtime.errors import CallboardError
from actors.timeouts import Timeouts
from engine.routing.books import Books
from engine.routing.fleet import RouterConfig, open_fleet
from engine.routing.retry import RetryConfig
from engine.routing.waiting import DISCIPLINES, LineConfig
from tests.conftest import virtual_account

pytestmark = pytest.mark.slow  # every test here takes seconds: out of `pytest -m "not slow"`

FAULTS = ("outage", "latency", "errors", "rate_limit", "hang", "revoked", "flapping")

fault = st.builds(
    Fault,
    kind=st.sampled_from(FAULTS),
    start=st.floats(0, 30),
    end=st.floats(31, 90),
    share=st.floats(0.1, 1.0),
    multiplier=st.floats(1.0, 20.0),
    retry_after=st.floats(0.5, 20.0),
    period=st.floats(1.0, 10.0),
)
account = st.fixed_dictionaries(
    {
        "seconds": st.floats(0.05, 3.0),
        "max_concurrency": st.integers(1, 4),
        "queue_limit": st.integers(0, 3),
        "faults": st.lists(fault, max_size=3),
    }
)
request = st.tuples(
    st.floats(0, 60),  # arrival
    st.integers(0, 2),  # priority
    st.none() | st.floats(0.01, 20.0),  # the caller gives up after this long (cancels)
)


@given(
    accounts=st.lists(account, min_size=1, max_size=3),
    requests=st.lists(request, min_size=1, max_size=60),
    discipline=st.sampled_from(DISCIPLINES),
    max_waiting=st.integers(1, 40),
    seed=st.integers(0, 2**16),
)
@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
def test_the_books_balance_at_every_moment_under_random_faults(
    accounts, requests, discipline, max_waiting, seed
):
    fleet_accounts = [
        virtual_account(f"p{i}", seed=seed, **spec)[0] for i, spec in enumerate(accounts)
    ]
    config = RouterConfig(
        retry=RetryConfig(deadline=15.0, backoff_base=0.5),
        timeouts=Timeouts(first_byte=5.0),
        breaker=BreakerConfig(failure_threshold=3, open_for=5.0),
        cache=CacheConfig(enabled=False),
        line=LineConfig(discipline=discipline, rate_window=10.0, max_waiting=max_waiting),
    )
    seen: collections.Counter[str] = collections.Counter()
    samples: list[Books] = []

    async def main() -> Books:
        async with open_fleet(fleet_accounts, config, seed=seed) as fleet:

            async def caller(i: int, arrival: float, priority: int, patience) -> None:
                await clock.sleep_until(arrival)
                ask = ChatRequest((ChatMessage("user", f"q{i}"),), priority=priority)
                with trio.move_on_after(patience if patience is not None else 1e9) as scope:
                    try:
                        await fleet.router.complete(ask)
                        seen["answered"] += 1
                    except CallboardError as exc:
                        seen[exc.code] += 1
                if scope.cancelled_caught:
                    seen["cancelled"] += 1

            async def watch() -> None:
                while True:
                    samples.append(Books.of(fleet.router))
                    await clock.sleep(0.25)

            async with trio.open_nursery() as watcher:
                watcher.start_soon(watch)
                async with trio.open_nursery() as nursery:
                    for i, (arrival, priority, patience) in enumerate(requests):
                        nursery.start_soon(caller, i, arrival, priority, patience)
                watcher.cancel_scope.cancel()
            return Books.of(fleet.router)

    books = run_virtual(main, scheduling_seed=seed)
    assert all(s.balanced() for s in samples), next(s for s in samples if not s.balanced())
    assert max(s.queued for s in samples) <= max_waiting
    assert books.balanced() and books.queued == books.in_flight == 0
    assert books.received == len(requests)
    assert books.answered == seen["answered"] and books.cancelled == seen["cancelled"]
    assert books.failed == {
        code: n for code, n in sorted(seen.items()) if code not in ("answered", "cancelled")
    }
