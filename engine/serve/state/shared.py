"""The live router's link to the shared store: what it publishes, what it pulls, when.

- Rate limits and quotas: :class:`SharedLimits` wraps an account's backend and
  takes the request's tokens from the shared buckets (one atomic script call)
  before the upstream call; a refusal is a 429 with the shared wait, so the
  router fails over exactly as for an upstream one. The account's local
  limiters still apply: when the store is down they are what holds. A 429 from
  the provider itself is published too, so the other routers keep off the
  account for its Retry-After instead of each earning their own 429. Limits with
  ``adjust_output`` are settled in the store too when a call ends: the output
  estimate charged at admission is swapped for the output generated.
- Quarantines: a breaker that opens here is published (expiring at the
  quarantine's end); every ``sync_every`` seconds each router pulls the shared
  ones and opens its own breaker until the same moment.
- Cache: every local write is appended to a shared log that each router replays
  into its local cache, so lookups stay in-process on the hot path.
- Health: each router's figures per provider, kept for ``/api/models/health``.

Hot-path readers never wait for the store: breakers and the cache are local
snapshots kept fresh by the sync loop. Writes that need not hold up a request
go through a bounded outbox; when it is full a write is dropped and counted.
"""

from __future__ import annotations

import contextlib
import itertools
import json
import logging
import math
import os
import socket
from collections.abc import AsyncIterator, Callable, Sequence
from typing import TYPE_CHECKING, Any

import attrs
import trio

from actors.backends import Backend, BackendReply, Usage
from actors.backends.sink import StreamSink
from actors.breaker import State, Transition
from actors.errors import RateLimited
from actors.limits import LimitSpec
from actors.messages import ChatRequest, Completion
from actors.quota import ALERT_LEVELS, QUOTA_MIN_WINDOW_S, QuotaAlert
from actors.runtime import clock
from actors.timeouts import AnswerWatch
from engine.serve.state.config import StateConfig
from engine.serve.state.guard import GuardedStore
from engine.serve.state.sessions import SharedSessions
from engine.serve.state.store import (
    CacheEntry,
    Charge,
    Correction,
    Quarantine,
    StateStore,
    StoreUnavailable,
    Taken,
)

if TYPE_CHECKING:
    from engine.routing.fleet import Fleet

logger = logging.getLogger("callboard.state")

OUTBOX_SIZE = 1024
CACHE_BATCH = 500


class SharedQuotaWatch:
    """Quota alerts (80%, 90%, 100%) from the fleet's count, not this router's share.

    The same levels as :class:`actors.quota.QuotaWatch`. A level is reported by the
    router whose charge crossed it: charges are atomic in the store, so each level
    of each window is reported once, by one router.
    """

    def __init__(self, provider: str, limits: Sequence[LimitSpec]) -> None:
        self.provider = provider
        self.quotas = [
            (i, spec)
            for i, spec in enumerate(limits)
            if spec.mode == "window" and spec.per >= QUOTA_MIN_WINDOW_S
        ]

    def check(self, now: float, charges: Sequence[Charge], taken: Taken) -> list[QuotaAlert]:
        alerts = []
        for i, spec in self.quotas:
            used = taken.used[i]
            before, after = (used - charges[i].amount) / spec.limit, used / spec.limit
            for level in ALERT_LEVELS:
                if before < level - 1e-12 <= after:
                    resets_at = now + taken.resets_in[i]
                    alerts.append(
                        QuotaAlert(
                            now, self.provider, spec.name, level, used, spec.limit, resets_at
                        )
                    )
        return alerts


class SharedLimits:
    """A backend that first takes the account's share from the shared rate limits,
    and tells the other routers when the provider itself answers 429."""

    def __init__(
        self,
        provider: str,
        limits: Sequence[LimitSpec],
        backend: Backend,
        guard: GuardedStore,
        on_429: Callable[[str, RateLimited], None],
        on_quota: Callable[[QuotaAlert], None],
        on_settle: Callable[[list[Correction]], None],
    ) -> None:
        self.provider = provider
        self.limits = tuple(limits)
        self.backend = backend
        self.guard = guard
        self.on_429 = on_429
        self.on_quota = on_quota
        self.on_settle = on_settle
        self.keys = [f"{provider}/{spec.name}" for spec in self.limits]
        self.quota_watch = SharedQuotaWatch(provider, self.limits)
        self._adjusting = [
            (key, spec)
            for key, spec in zip(self.keys, self.limits, strict=True)
            if spec.adjust_output
        ]

    async def complete(
        self,
        request: ChatRequest,
        request_id: str,
        usage: Usage,
        sink: StreamSink | None = None,
        watch: AnswerWatch | None = None,
    ) -> BackendReply:
        charged = bool(self.limits) and await self._take(request)
        began = clock.now()
        try:
            return await self.backend.complete(request, request_id, usage, sink, watch)
        except RateLimited as exc:  # the provider's own 429: every router should keep off
            self.on_429(self.provider, exc)
            raise
        finally:
            if charged and self._adjusting:
                self._settle(request, usage, clock.now() - began)

    def _settle(self, request: ChatRequest, usage: Usage, elapsed: float) -> None:
        """Give the shared limits back the output estimate not generated (as the local
        limiters do in :meth:`actors.limits.Admission.settle`)."""
        amount = usage.output_tokens - _output_estimate(request)
        if amount:
            self.on_settle(
                [Correction(key, spec, amount, elapsed) for key, spec in self._adjusting]
            )

    async def _take(self, request: ChatRequest) -> bool:
        """Charge the shared limits (True), or not when the store is down (False)."""
        prompt = float(request.prompt_tokens)
        output = _output_estimate(request)
        amounts = {
            "requests": 1.0,
            "tokens": prompt + output,
            "input_tokens": prompt,
            "output_tokens": output,
            "chars": float(request.prompt_chars),
        }
        charges = [
            Charge(key, spec, amounts[spec.unit])
            for key, spec in zip(self.keys, self.limits, strict=True)
        ]
        try:
            taken = await self.guard.call("take", self.guard.store.take, charges)
        except StoreUnavailable:
            return False  # the local limiters, already charged, are what holds now
        if taken.wait > 0:
            limit = taken.binding.partition("/")[2]
            raise RateLimited(self.provider, f"{limit} (shared)", taken.wait)
        if self.quota_watch.quotas:
            for alert in self.quota_watch.check(clock.now(), charges, taken):
                self.on_quota(alert)
        return True


def _output_estimate(request: ChatRequest) -> float:
    """The output tokens charged at admission, as a provider charges its own limits."""
    return float(request.max_tokens or request.expected_output_tokens or 0)


def limited(
    shared: SharedState | None, provider: str, limits: Sequence[LimitSpec], backend: Backend
) -> Backend:
    """``backend`` behind the shared limits (unchanged without shared state)."""
    if shared is None:
        return backend
    return SharedLimits(
        provider,
        limits,
        backend,
        shared.guard,
        shared.rate_limited,
        shared.quota_alert,
        shared.settle,
    )


@contextlib.asynccontextmanager
async def open_shared_state(
    config: StateConfig, store: StateStore | None, token: str
) -> AsyncIterator[SharedState | None]:
    """What this router shares: through ``store``, else ``config.redis``; None if neither."""
    if store is None and config.redis is None:
        yield None
        return
    async with contextlib.AsyncExitStack() as stack:
        opened = (
            store
            if store is not None
            else await stack.enter_async_context(_redis_store(config).connected())
        )
        guard = GuardedStore(opened, timeout=config.timeout, retry_every=config.retry_every)
        yield SharedState(guard, config, f"{socket.gethostname()}:{os.getpid()}:{token}")


def _redis_store(config: StateConfig) -> Any:
    """The Redis store; coredis is needed only by a router configured to share state."""
    from engine.serve.live_config import ConfigError

    try:
        from engine.serve.state.redis_store import RedisStore
    except ImportError as exc:
        raise ConfigError(
            "state.redis", [f"needs coredis ({exc}); install it: pip install 'callboard[redis]'"]
        ) from None
    assert config.redis is not None
    return RedisStore(config.redis, prefix=config.prefix, timeout=config.timeout)


def encode_answer(completion: Completion) -> str:
    """A cached answer as the routers share it: JSON of its fields, without how the request
    that got it went (its failed attempts), which is that request's, not the answer's."""
    return json.dumps(attrs.asdict(completion, filter=lambda a, _: a.name != "failed_attempts"))


def decode_answer(text: str) -> Completion:
    """What :func:`encode_answer` wrote (ValueError or TypeError if it is not that)."""
    return Completion(**json.loads(text))


class SharedState:
    """Everything one router shares through the store; run :meth:`run` in a nursery."""

    def __init__(self, guard: GuardedStore, config: StateConfig, instance: str) -> None:
        self.guard = guard
        self.config = config
        self.instance = instance
        self.fleet: Fleet | None = None
        self.sessions: SharedSessions | None = None
        self._cache_ttl = math.inf
        self._cache_max = 1
        self._cache_cursor = ""
        self._stamps = itertools.count(1)
        self._adopting = False
        self._adopted: dict[tuple[str, str], str] = {}  # (kind, provider) -> stamp taken
        self._own: set[str] = set()  # providers whose current quarantine opened here
        self._resync_due = False
        self._outbox_send, self._outbox = trio.open_memory_channel[tuple[str, Any, tuple]](
            OUTBOX_SIZE
        )
        self.dropped = 0
        self.adopted = 0
        self.coolings_adopted = 0
        self.cache_copied = 0
        self.cache_rejected = 0
        #: provider -> router -> its latest health figures (this one's included).
        self.peer_health: dict[str, dict[str, dict[str, Any]]] = {}
        guard.on_recovered = self._recovered

    # --- wiring --------------------------------------------------------------
    def start(
        self, fleet: Fleet, nursery: trio.Nursery, *, idle: float, lock_ttl: float
    ) -> SharedSessions:
        """Share ``fleet``'s state from now on; returns the sessions' link to the store."""
        self.fleet = fleet
        self.sessions = SharedSessions(self.guard, self.instance, ttl=idle, lock_ttl=lock_ttl)
        for provider in fleet.providers:
            # Quota alerts come from the fleet's count (SharedQuotaWatch): a router's own
            # share would cross 80% only when the fleet is far past it.
            provider.quota_watch.quotas.clear()
        cache = fleet.cache
        if cache is not None:
            self._cache_ttl = cache.config.ttl
            self._cache_max = cache.config.max_entries
        nursery.start_soon(self.run)
        return self.sessions

    async def run(self) -> None:
        async with trio.open_nursery() as nursery:
            nursery.start_soon(self._write_forever)
            nursery.start_soon(self._sync_forever)

    # --- publishing ----------------------------------------------------------
    def _send(self, op: str, fn: Any, *args: Any) -> None:
        try:
            self._outbox_send.send_nowait((op, fn, args))
        except trio.WouldBlock:
            self.dropped += 1
            if self.dropped == 1 or self.dropped % 1000 == 0:
                logger.warning("state outbox full: %d shared writes dropped so far", self.dropped)

    async def _write_forever(self) -> None:
        async for op, fn, args in self._outbox:
            # A failure is counted by the guard; quarantines are published again on recovery.
            with contextlib.suppress(StoreUnavailable):
                await self.guard.call(op, fn, *args)

    def on_transition(self, transition: Transition) -> None:
        """Publish a breaker that opened here (not one opened because another router did)."""
        if self._adopting or self.fleet is None:
            return
        if transition.target is not State.OPEN:
            return
        self._own.add(transition.provider)
        self._publish_quarantine(transition.provider, transition.reason)

    def _publish_quarantine(self, provider: str, reason: str) -> None:
        assert self.fleet is not None
        breaker = self.fleet.provider(provider).breaker
        remaining = breaker.open_until - clock.now()
        if remaining <= 0:
            return
        stamp = f"{self.instance}-{next(self._stamps)}"
        quarantine = Quarantine(
            provider, remaining, breaker.ejections, reason, self.instance, stamp
        )
        self._send("put_quarantine", self.guard.store.put_quarantine, quarantine)

    def quota_alert(self, alert: QuotaAlert) -> None:
        """A quota crossed a level, counted over every router: the quota tracker logs it."""
        if self.fleet is not None:
            self.fleet.quota.tell(alert)

    def rate_limited(self, provider: str, error: RateLimited) -> None:
        """The provider answered 429 here: the others keep off it for its Retry-After too."""
        if error.retry_after <= 0:
            return
        stamp = f"{self.instance}-{next(self._stamps)}"
        hold = Quarantine(
            provider, error.retry_after, 0, str(error), self.instance, stamp, kind="cooling"
        )
        self._send("put_quarantine", self.guard.store.put_quarantine, hold)

    def settle(self, corrections: list[Correction]) -> None:
        """A call ended: its output estimate is swapped for its output, for every router."""
        self._send("adjust", self.guard.store.adjust, corrections)

    def cache_written(self, key: str, completion: Completion) -> None:
        """The local cache stored an answer: every other router copies it."""
        entry = CacheEntry(key, encode_answer(completion), self._cache_ttl, self.instance)
        self._send("put_cache", self.guard.store.put_cache, entry, self._cache_max)

    def _recovered(self) -> None:
        self._resync_due = True

    # --- pulling ---------------------------------------------------------------
    async def _sync_forever(self) -> None:
        health_every = max(1.0, 4 * self.config.sync_every)
        next_health = clock.now()
        while True:
            await self.sync_once()
            if clock.now() >= next_health:
                next_health = clock.now() + health_every
                await self._share_health(ttl=3 * health_every)
            await clock.sleep(self.config.sync_every)

    async def sync_once(self) -> None:
        """Pull quarantines and cache entries; after an outage, publish what was missed."""
        fleet = self.fleet
        if fleet is None:
            return
        call, store = self.guard.call, self.guard.store
        names = [p.spec.name for p in fleet.providers]
        try:
            quarantines = await call("quarantines", store.quarantines, names)
        except StoreUnavailable:
            return
        if self._resync_due:
            self._resync_due = False
            await self._resync()
        for quarantine in quarantines:
            self._adopt(quarantine)
        try:
            entries, self._cache_cursor = await call(
                "cache_since", store.cache_since, self._cache_cursor, CACHE_BATCH
            )
        except StoreUnavailable:
            return
        cache = fleet.cache
        if cache is not None:
            for entry in entries:
                if entry.origin == self.instance:
                    continue
                try:
                    completion = decode_answer(entry.value)
                except (ValueError, TypeError) as exc:
                    # E.g. written by another version of callboard during a rolling upgrade.
                    self.cache_rejected += 1
                    logger.warning(
                        "state cache entry %s from %s not copied: %s", entry.key, entry.origin, exc
                    )
                    continue
                cache.adopt(entry.key, completion, entry.remaining)
                self.cache_copied += 1

    def _adopt(self, quarantine: Quarantine) -> None:
        if quarantine.origin == self.instance:
            return
        seen = (quarantine.kind, quarantine.provider)
        if self._adopted.get(seen) == quarantine.stamp:
            return
        assert self.fleet is not None
        provider = self.fleet.router.by_name.get(quarantine.provider)
        if provider is None:
            return
        self._adopted[seen] = quarantine.stamp
        if quarantine.kind == "cooling":
            # As if it had answered this router's own request with 429 (provider.call), the
            # wait capped as there (a copy written by an older or foreign router included).
            until = clock.now() + min(quarantine.remaining, self.fleet.router.retry.max_retry_after)
            if provider.cool_down(until):
                self.coolings_adopted += 1
                logger.info(
                    "state provider=%s cooling adopted from router=%s for %.3f s (%s)",
                    quarantine.provider,
                    quarantine.origin,
                    quarantine.remaining,
                    quarantine.reason,
                )
            return
        reason = f"quarantined by router {quarantine.origin}: {quarantine.reason}"
        self._adopting = True
        try:
            opened = provider.breaker.adopt_quarantine(
                quarantine.remaining, quarantine.ejections, reason
            )
        finally:
            self._adopting = False
        if opened:
            self._own.discard(quarantine.provider)
            self.adopted += 1
            logger.info(
                "state provider=%s quarantine adopted from router=%s for %.3f s",
                quarantine.provider,
                quarantine.origin,
                quarantine.remaining,
            )

    async def _resync(self) -> None:
        """Redis is back: publish the quarantines opened here meanwhile, write back sessions."""
        assert self.fleet is not None
        for name in sorted(self._own):
            breaker = self.fleet.provider(name).breaker
            if breaker.state is State.OPEN:
                self._publish_quarantine(name, "published again after a store outage")
        if self.sessions is not None:
            await self.sessions.write_back()

    async def _share_health(self, ttl: float) -> None:
        fleet = self.fleet
        assert fleet is not None
        store = self.guard.store
        names = [p.spec.name for p in fleet.providers]
        for provider in fleet.providers:
            stats = fleet.health.health(provider.spec.name)
            latency = stats.latency_ewma
            figures = {
                "calls": stats.calls,
                "failures": stats.failures,
                "error_rate": round(stats.error_ewma, 6),
                "latency_ms": None if latency != latency else round(latency * 1000, 3),
                "breaker": provider.breaker.state.value,
            }
            self._send(
                "put_health", store.put_health, provider.spec.name, self.instance, figures, ttl
            )
        try:
            self.peer_health = await self.guard.call("health", store.health, names)
        except StoreUnavailable:
            return

    # --- what /health and /metrics show ------------------------------------------
    def status(self) -> dict[str, Any]:
        body = self.guard.status()
        body["router"] = self.instance
        body["quarantines_adopted"] = self.adopted
        body["rate_limits_adopted"] = self.coolings_adopted
        body["cache_entries_copied"] = self.cache_copied
        body["cache_entries_rejected"] = self.cache_rejected
        body["writes_dropped"] = self.dropped
        return body
