"""Both state stores keep the same promises: atomic shared limits, expiring entries, one log."""

from __future__ import annotations

import contextlib
import math
from collections.abc import AsyncIterator

import attrs
import pytest
import trio

from actors.limits import LimitSpec
from engine.serve.state.redis_store import RedisStore
from engine.serve.state.store import (
    CacheEntry,
    Charge,
    Correction,
    MemoryStore,
    Quarantine,
    SessionRecord,
)

RPM = LimitSpec("rpm", "requests", 10, 3600)  # refills 1 per 6 minutes: none during a test
DAY = LimitSpec("day", "requests", 3, 86400, mode="window")
TPM = LimitSpec("tpm", "tokens", 100, 60)


@contextlib.asynccontextmanager
async def two_stores(kind: str, redis_server) -> AsyncIterator[tuple[object, object]]:
    """Two handles on one truth: one MemoryStore twice, or two Redis clients."""
    if kind == "memory":
        store = MemoryStore()
        yield store, store
        return
    first, second = RedisStore(redis_server.url), RedisStore(redis_server.url)
    async with first.connected(), second.connected():
        yield first, second


@pytest.fixture(params=["memory", "redis"])
def kind(request) -> str:
    return request.param


@pytest.fixture
def server(kind, request):
    return request.getfixturevalue("redis_server") if kind == "redis" else None


async def test_two_routers_never_both_take_the_last_token(kind, server):
    granted: list[float] = []
    async with two_stores(kind, server) as (first, second):

        async def take(store) -> None:
            wait, binding, *_ = attrs.astuple(await store.take([Charge("acct/rpm", RPM, 1)]))
            granted.append(wait)
            if wait > 0:
                assert binding == "acct/rpm"

        async with trio.open_nursery() as nursery:
            for i in range(40):
                nursery.start_soon(take, first if i % 2 else second)
    assert sum(1 for w in granted if w == 0) == 10
    # The 11th token comes one refill interval (3600 s / 10) after the bucket was drained.
    assert all(300 < w <= 360 for w in granted if w > 0)


async def test_a_request_is_charged_on_every_limit_or_on_none(kind, server):
    async with two_stores(kind, server) as (first, second):
        taken = await first.take([Charge("a/tpm", TPM, 90)])
        assert (taken.wait, taken.binding, taken.used, taken.resets_in) == (
            0.0,
            "",
            (90.0,),
            (0.0,),
        )
        refused = await second.take([Charge("a/rpm", RPM, 1), Charge("a/tpm", TPM, 20)])
        wait, binding = refused.wait, refused.binding
        assert binding == "a/tpm" and 5 < wait <= 6.1  # 10 tokens short at 100 per minute
        for _ in range(10):  # the refused request took nothing from rpm
            assert (await first.take([Charge("a/rpm", RPM, 1)])).wait == 0
        wait = (await first.take([Charge("a/tpm", TPM, 101)])).wait
        assert wait == math.inf  # more than the limit can ever hold


async def test_a_correction_can_leave_a_limit_in_debt_that_the_other_router_waits_out(kind, server):
    # What a caller budget does once an answer's tokens are known: add them to the
    # admission's charge whatever room is left; the next request waits out the debt.
    async with two_stores(kind, server) as (first, second):
        assert (await first.take([Charge("key/tpm", TPM, 1), Charge("key/day", DAY, 1)])).wait == 0
        await first.adjust(
            [Correction("key/tpm", TPM, 249, 0.0), Correction("key/day", DAY, 4, 0.0)]
        )
        taken = await second.take([Charge("key/tpm", TPM, 1)])
        # 250 taken from a bucket of 100 refilling 100 a minute: 150 in debt, 91 s to one.
        assert 90 < taken.wait <= 91 and taken.binding == "key/tpm"
        day = await second.take([Charge("key/day", DAY, 1)])
        assert day.wait > 0 and day.used == (5.0,)  # past its cap of 3 until the window ends
        if kind == "redis":  # the debt outlives the usual expiry (the bucket's period + 1 s)
            ttl = await first.client.pttl(first._key("limit", "key/tpm"))
            assert 150_000 < ttl <= 151_000


async def test_a_quota_window_is_shared_until_it_resets(kind, server):
    async with two_stores(kind, server) as (first, second):
        taken = [await s.take([Charge("a/day", DAY, 1)]) for s in (first, second) * 3]
    assert [t.wait for t in taken[:3]] == [0.0, 0.0, 0.0]
    assert all(0 < t.wait <= 86400 for t in taken[3:])
    # Every router sees the fleet's count: 1, 2, 3 used, then 3 while refused.
    assert [t.used for t in taken] == [(1.0,), (2.0,), (3.0,), (3.0,), (3.0,), (3.0,)]
    assert all(0 < t.resets_in[0] <= 86400 for t in taken)


@pytest.mark.slow
async def test_a_quarantine_is_seen_by_others_and_expires_by_itself(kind, server):
    async with two_stores(kind, server) as (first, second):
        await first.put_quarantine(Quarantine("a", 0.3, 2, "3 failures", "router-1", "r1-1"))
        (seen,) = await second.quarantines(["a", "b"])
        assert (seen.kind, seen.provider, seen.ejections) == ("breaker", "a", 2)
        assert (seen.origin, seen.stamp) == ("router-1", "r1-1")
        assert 0.1 < seen.remaining <= 0.3
        # A 429's hold on the same provider is kept apart from its breaker's quarantine.
        await first.put_quarantine(Quarantine("a", 5, 0, "429", "router-1", "r1-2", kind="cooling"))
        assert [q.stamp for q in await second.quarantines(["a", "b"])] == ["r1-1", "r1-2"]
        await trio.sleep(0.35)
        (cooling,) = await second.quarantines(["a", "b"])
        assert (cooling.kind, cooling.stamp) == ("cooling", "r1-2")


@pytest.mark.slow
async def test_a_session_moves_between_routers_and_its_lock_keeps_one_turn_at_a_time(kind, server):
    record = SessionRecord(
        "s-1", "You interview.", (("user", "Hi"), ("assistant", "Hello")), ("a",), 1
    )
    async with two_stores(kind, server) as (first, second):
        await first.save_session(record, ttl=0.5)
        assert await second.load_session("s-1") == record
        assert await second.load_session("s-2") is None
        assert await first.lock_session("s-1", "router-1", ttl=5)
        assert not await second.lock_session("s-1", "router-2", ttl=5)
        await second.unlock_session("s-1", "router-2")  # not its lock: nothing happens
        assert not await second.lock_session("s-1", "router-2", ttl=5)
        await first.unlock_session("s-1", "router-1")
        assert await second.lock_session("s-1", "router-2", ttl=5)
        await trio.sleep(0.6)
        assert await second.load_session("s-1") is None  # idle past its TTL


async def test_the_cache_log_replays_each_entry_once_and_drops_expired_ones(kind, server):
    async with two_stores(kind, server) as (first, second):
        await first.put_cache(CacheEntry("k1", '{"n": 1}', 5.0, "router-1"), max_entries=100)
        await first.put_cache(CacheEntry("k2", '{"n": 2}', 0.1, "router-1"), max_entries=100)
        entries, cursor = await second.cache_since("", 1)
        assert [(e.key, e.origin) for e in entries] == [("k1", "router-1")]
        assert 4 < entries[0].remaining <= 5
        await trio.sleep(0.15)
        entries, cursor = await second.cache_since(cursor, 10)
        assert entries == []  # k2 expired before it was read
        await first.put_cache(CacheEntry("k3", '{"n": 3}', 5.0, "router-1"), max_entries=100)
        entries, cursor = await second.cache_since(cursor, 10)
        assert [e.key for e in entries] == ["k3"]
        assert (await second.cache_since(cursor, 10))[0] == []


@pytest.mark.slow
async def test_health_figures_are_kept_per_router(kind, server):
    async with two_stores(kind, server) as (first, second):
        await first.put_health("a", "router-1", {"calls": 3}, ttl=0.3)
        await second.put_health("a", "router-2", {"calls": 5}, ttl=5)
        assert await first.health(["a", "b"]) == {
            "a": {"router-1": {"calls": 3}, "router-2": {"calls": 5}},
            "b": {},
        }
        await trio.sleep(0.35)
        assert await second.health(["a"]) == {"a": {"router-2": {"calls": 5}}}


async def test_input_and_output_tokens_and_sliced_buckets_are_shared_like_the_rest(kind, server):
    # Anthropic-like: 3,600 output tokens/hour enforced per minute holds 60 at once, and a
    # prompt longer than a slice enters only a full bucket; input tokens count apart.
    otpm = LimitSpec("otpm", "output_tokens", 3600, 3600, enforce_every=60)
    itpm = LimitSpec("itpm", "input_tokens", 100, 3600)
    async with two_stores(kind, server) as (first, second):
        taken = await first.take([Charge("a/itpm", itpm, 10), Charge("a/otpm", otpm, 50)])
        assert taken.wait == 0 and taken.used == (10.0, 50.0)
        refused = await second.take([Charge("a/itpm", itpm, 10), Charge("a/otpm", otpm, 20)])
        assert refused.binding == "a/otpm" and 9 < refused.wait <= 10.1  # 10 short at 1/s
        assert (await second.take([Charge("a/itpm", itpm, 95)])).binding == "a/itpm"
        assert (await first.take([Charge("b/otpm", otpm, 3601)])).wait == math.inf
        long = await first.take([Charge("b/otpm", otpm, 500)])  # a full bucket: in debt
        assert long.wait == 0 and long.used == (500.0,)
        after = await second.take([Charge("b/otpm", otpm, 1)])
        assert after.binding == "b/otpm" and 440 < after.wait <= 441  # from -440 up to 1


async def test_an_output_estimate_is_settled_for_every_router(kind, server):
    # Charged 50 of 60 for max_tokens, the call generated 5: the 45 not used come back
    # (a bucket, never above its burst); a window settles only while it is still open.
    otpm = LimitSpec("otpm", "output_tokens", 60, 60, adjust_output=True)
    daily = LimitSpec("day", "output_tokens", 100, 86400, mode="window", adjust_output=True)
    async with two_stores(kind, server) as (first, second):
        assert (
            await first.take([Charge("a/otpm", otpm, 50), Charge("a/day", daily, 50)])
        ).wait == 0
        assert (await second.take([Charge("a/otpm", otpm, 50)])).binding == "a/otpm"
        await first.adjust(
            [Correction("a/otpm", otpm, -45, 0.0), Correction("a/day", daily, -45, 0.0)]
        )
        taken = await second.take([Charge("a/otpm", otpm, 50), Charge("a/day", daily, 50)])
        assert taken.wait == 0 and taken.used[1] == pytest.approx(55.0)
        # Giving back more than was charged fills a bucket to its burst, no further.
        await first.adjust([Correction("a/otpm", otpm, -500, 0.0)])
        assert (await second.take([Charge("a/otpm", otpm, 60)])).wait == 0
        # A correction for a charge made in a window that has closed is dropped.
        await first.adjust([Correction("a/day", daily, -55, 86400.0 * 2)])
        assert (await second.take([Charge("a/day", daily, 46)])).binding == "a/day"
