"""The board (engine.routing.board): the fleet kept by readiness, and the policies'
picks from it, which must be the picks of a pass over every account, ties included."""

from __future__ import annotations

import contextlib
import math

import pytest
import trio

from actors.backends.virtual import ErrorRates, LatencyModel
from actors.breaker import BreakerConfig
from actors.cache import CacheConfig
from actors.limits import LimitSpec
from actors.messages import ChatMessage, ChatRequest
from actors.runtime import clock
from actors.runtime.distributions import LogNormal
from engine.routing import router as router_module
from engine.routing.errors import CallboardError
from engine.routing.fleet import RouterConfig, open_fleet
from engine.routing.policies import PolicyConfig
from engine.routing.retry import RetryConfig
from engine.routing.router import Router
from engine.routing.selection import eligible
from tests.conftest import virtual_account


@pytest.fixture(autouse=True)
def board_for_any_fleet(monkeypatch):
    """These fleets are small: the router keeps a board for them all the same."""
    monkeypatch.setattr(router_module, "BOARD_FROM", 1)


def mixed_fleet(count: int, slots: int = 1, rate_limited: float = 0.0):
    """Accounts unlike each other: limits of each kind (a window of requests, a bucket of
    tokens that a long prompt may not fit), ``slots`` or a few more, light and strong,
    priorities, speeds and failure rates of their own (and a share ``rate_limited`` of
    429s)."""
    accounts = []
    for i in range(count):
        limits: tuple[LimitSpec, ...] = ()
        if i % 3 == 0:
            limits = (LimitSpec("rpm", "requests", 4, 60.0, mode="window"),)
        elif i % 3 == 1:
            limits = (LimitSpec("tpm", "tokens", 900, 60.0),)
        account, _ = virtual_account(
            f"a{i:02d}",
            latency=LatencyModel(service=LogNormal.from_median_p95(0.5 + 0.1 * (i % 7), 2.0)),
            errors=ErrorRates(upstream_error=0.05 * (i % 4), rate_limited=rate_limited),
            seed=i,
            limits=limits,
            max_concurrency=slots + i % 3,
            queue_limit=i % 2,
            tier="light" if i % 4 == 0 else "strong",
            priority=i % 5,
        )
        accounts.append(account)
    return accounts


def ask(i: int) -> ChatRequest:
    words = " ".join(["word"] * (5 + (i * 37) % 300))  # some too long for a nearly empty bucket
    kinds = ("small_talk", "question", "follow_up", "evaluation")
    return ChatRequest(
        messages=(ChatMessage("user", f"{i}: {words}"),), max_tokens=50, kind=kinds[i % 4]
    )


def full_pass(router: Router, pursuit, now: float):
    """What the pass over every account finds for ``pursuit`` (the board's reference)."""
    return eligible(
        router.providers,
        pursuit.request,
        now,
        pursuit.avoid,
        router.tiers,
        pursuit.deadline - now,
    )


@pytest.mark.parametrize(
    "routing",
    [
        PolicyConfig(policy="weighted"),
        PolicyConfig(policy="weighted", tiers="by_kind"),
        PolicyConfig(policy="lowest_latency", latency_ttl=20.0),
        PolicyConfig(policy="round_robin"),
        PolicyConfig(policy="priority", tiers="strong_only"),
        PolicyConfig(policy="sticky"),
    ],
    ids=lambda c: f"{c.policy}-{c.tiers}",
)
async def test_every_pick_is_the_pick_of_a_pass_over_the_fleet(virtual_clock, monkeypatch, routing):
    picks = []
    pick = Router._pick

    def checked(router: Router, pursuit, now: float):
        policy = router.policy
        cursor = getattr(policy, "_cursor", None)
        picked = pick(router, pursuit, now)
        if picked is None:
            return None
        if cursor is not None:  # round robin moves on as it picks: the pass picks from where it was
            after, policy._cursor = policy._cursor, cursor  # type: ignore[attr-defined]
        found = full_pass(router, pursuit, now)
        assert found.ready, "the board picked an account that a pass finds none ready"
        assert router._choose(pursuit, found.ready, now) is picked
        if cursor is not None:
            policy._cursor = after  # type: ignore[attr-defined]
        picks.append(picked.spec.name)
        return picked

    monkeypatch.setattr(Router, "_pick", checked)
    config = RouterConfig(
        routing=routing,
        retry=RetryConfig(jitter=0.0, deadline=30.0),
        cache=CacheConfig(enabled=False),
        breaker=BreakerConfig(failure_threshold=2, open_for=5.0),
    )
    async with open_fleet(mixed_fleet(23), config) as fleet:

        async def client(c: int) -> None:
            session = await fleet.session(f"s{c}") if routing.policy == "sticky" else None
            for i in range(c, 600, 40):
                with trio.move_on_after(60), contextlib.suppress(CallboardError):
                    answer = await fleet.router.complete(ask(i), session)
                    if session is not None:
                        session.provider = answer.provider  # as the session notes it
                await clock.sleep(0.3 * (c % 5))

        async with trio.open_nursery() as nursery:
            for c in range(40):
                nursery.start_soon(client, c)
    assert len(picks) > 300
    assert len(set(picks)) > 10


@pytest.mark.parametrize(
    ("routing", "deadline"),
    [
        (PolicyConfig(policy="weighted"), 20.0),
        (PolicyConfig(policy="priority", tiers="by_kind"), 4.0),
    ],
    ids=lambda v: f"{v.policy}-{v.tiers}" if isinstance(v, PolicyConfig) else f"{v:g}s",
)
async def test_what_a_waiting_request_learns_is_what_a_pass_over_the_fleet_finds(
    virtual_clock, monkeypatch, routing, deadline
):
    """A request no account can take now asks the board when one could; the answer is
    the pass's (which accounts are ready, the soonest timer, whether one is busy, and the
    Retry-After of one that gives up), where 429s, windows, buckets and full slots mix."""
    looks = []
    look = Router._look

    def checked(router: Router, board, pursuit, now: float):
        found = look(router, board, pursuit, now)
        passed = full_pass(router, pursuit, now)
        assert [p.spec.name for p in found.ready] == [p.spec.name for p in passed.ready]
        if not found.ready:
            # Rest ends within rounding of each other are one moment to the board.
            assert found.busy == passed.busy
            assert found.soonest == pytest.approx(passed.soonest, rel=1e-12, abs=1e-12)
            if not found.busy and now + found.soonest >= pursuit.deadline:
                assert found.retry_after == pytest.approx(passed.retry_after, rel=1e-12, abs=1e-12)
        giving_up = not found.ready and not found.busy and now + found.soonest >= pursuit.deadline
        looks.append((found.soonest < math.inf, found.busy, giving_up, bool(pursuit.avoid)))
        return found

    monkeypatch.setattr(Router, "_look", checked)
    config = RouterConfig(
        routing=routing,
        retry=RetryConfig(jitter=0.0, deadline=deadline),
        cache=CacheConfig(enabled=False),
        breaker=BreakerConfig(failure_threshold=2, open_for=5.0),
    )
    async with open_fleet(mixed_fleet(23, slots=4, rate_limited=0.1), config) as fleet:

        async def client(c: int) -> None:
            for i in range(c, 900, 60):
                with trio.move_on_after(60), contextlib.suppress(CallboardError):
                    await fleet.router.complete(ask(i))
                await clock.sleep(0.1 * (c % 5))

        async with trio.open_nursery() as nursery:
            for c in range(60):
                nursery.start_soon(client, c)
    timed, busy, giving_up, avoiding = (sum(kind) for kind in zip(*looks, strict=True))
    assert len(looks) > 300 and timed > 30 and busy > 30 and avoiding > 30
    assert giving_up > 5 or deadline > 10


async def test_an_account_at_its_limit_rests_until_the_window_resets(virtual_clock):
    account, _ = virtual_account(
        "w", seconds=0.1, limits=(LimitSpec("rpm", "requests", 1, 60.0, mode="window"),)
    )
    async with open_fleet([account], RouterConfig(cache=CacheConfig(enabled=False))) as fleet:
        board = fleet.router.board
        assert board is not None
        await fleet.router.complete(ask(1))
        board.update(clock.now())
        assert not board.open[0]
        await clock.sleep(60.0 - clock.now())
        board.update(clock.now())
        assert board.open[0]


async def test_an_account_with_every_slot_busy_is_held_until_its_call_ends(virtual_clock):
    account, _ = virtual_account("busy", seconds=10.0, max_concurrency=1, queue_limit=0)
    async with open_fleet([account], RouterConfig(cache=CacheConfig(enabled=False))) as fleet:
        board = fleet.router.board
        assert board is not None
        async with trio.open_nursery() as nursery:
            nursery.start_soon(fleet.router.complete, ask(1))
            await clock.sleep(1.0)
            board.update(clock.now())
            assert not board.open[0]
            await clock.sleep(9.5)
            board.update(clock.now())
            assert board.open[0]


async def test_a_latency_measured_longer_ago_than_the_ttl_is_unknown(virtual_clock):
    account, _ = virtual_account("a", seconds=0.5)
    config = RouterConfig(routing=PolicyConfig(latency_ttl=10.0), cache=CacheConfig(enabled=False))
    async with open_fleet([account], config) as fleet:
        board = fleet.router.board
        assert board is not None
        await fleet.router.complete(ask(1))
        board.update(clock.now())
        assert board.latency[0] == pytest.approx(0.5)
        await clock.sleep(10.1)
        board.update(clock.now())
        assert board.unknown[0] and math.isnan(board.latency[0])


async def test_a_calls_end_wakes_the_line_only_when_the_account_can_serve_a_waiting_request(
    virtual_clock,
):
    """A call's end on an account whose window is spent past every waiting request's
    deadline wakes nobody; one that frees a slot wakes the line, and the request goes."""
    window, _ = virtual_account(
        "window", seconds=0.1, limits=(LimitSpec("rpm", "requests", 1, 60.0, mode="window"),)
    )
    slot, _ = virtual_account("slot", seconds=5.0, max_concurrency=1, queue_limit=0)
    config = RouterConfig(
        routing=PolicyConfig(policy="priority"),
        retry=RetryConfig(deadline=10.0),
        cache=CacheConfig(enabled=False),
    )
    async with open_fleet([window, slot], config) as fleet:
        router = fleet.router
        woken = []
        freed = router.line.freed

        def counted() -> None:
            woken.append((clock.now(), len(router.line)))
            freed()

        router.line.freed = counted  # type: ignore[method-assign]
        answers = []

        async def ask_at(i: int, at: float) -> None:
            await clock.sleep(at)
            answers.append((await router.complete(ask(i))).provider)

        async with trio.open_nursery() as nursery:
            nursery.start_soon(ask_at, 1, 0.0)  # the window's one request
            nursery.start_soon(ask_at, 2, 0.01)  # the slot
            nursery.start_soon(ask_at, 3, 0.02)  # waits for the slot
    assert answers == ["window", "slot", "slot"]
    # The slot's end, not the window's (the ends after it find nobody waiting).
    assert [at for at, waiting in woken if waiting] == [5.01]
