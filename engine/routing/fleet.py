"""Starting the routing core: every actor under one supervisor, one router on top.

``open_fleet`` is the single place where providers, breakers, the health
monitor and the cache are created and started, so the simulator, the tests and
the live router run exactly the same wiring; only the backends differ. Every
link is made at construction: each breaker gets its transition subscribers,
each provider the :class:`AttemptFeed` the router then subscribes to, and, for
a live account, the limit feed its backend reports into (read by its provider) and the
reach feed (read by the health monitor).
"""

from __future__ import annotations

import collections
from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import asynccontextmanager

import attrs
import trio

from actors.autoscaler import Autoscaler, AutoscalerConfig
from actors.backends import Backend, Usage
from actors.backends.ratelimit_headers import LimitFeed
from actors.backends.reach import ReachFeed
from actors.breaker import BreakerConfig, CircuitBreaker, Transition
from actors.cache import Cache, CacheConfig
from actors.concurrency import ConcurrencyConfig
from actors.health import HealthConfig, HealthMonitor, Pinger
from actors.messages import ChatMessage, ChatRequest, Completion
from actors.provider import AttemptFeed, Provider, ProviderSpec
from actors.quota import QuotaTracker
from actors.runtime import clock
from actors.runtime.actor import Supervisor
from actors.runtime.randomness import RandomStreams
from actors.session import InterviewSession
from actors.timeouts import Timeouts
from engine.routing.decision_log import DecisionLog
from engine.routing.hedging import HedgingConfig
from engine.routing.policies import PolicyConfig, build_policy
from engine.routing.recording import Recorder
from engine.routing.retry import RetryConfig
from engine.routing.router import Router
from engine.routing.waiting import LineConfig

_PING = ChatRequest(messages=(ChatMessage("user", "ping"),), max_tokens=1, bypass_cache=True)


@attrs.frozen
class RouterConfig:
    routing: PolicyConfig = PolicyConfig()
    retry: RetryConfig = RetryConfig()
    timeouts: Timeouts = Timeouts()
    breaker: BreakerConfig = BreakerConfig()
    cache: CacheConfig = CacheConfig()
    health: HealthConfig = HealthConfig()
    autoscaler: AutoscalerConfig | None = None
    hedging: HedgingConfig = HedgingConfig()
    concurrency: ConcurrencyConfig = ConcurrencyConfig()
    line: LineConfig = LineConfig()

    @classmethod
    def of(cls, tables: object) -> RouterConfig:
        """The router settings a scenario or a live config holds under the same names.

        One place knows which tables make up the router's settings, so a new one is
        added here and reaches both worlds.
        """
        names = [f.name for f in attrs.fields(cls) if hasattr(tables, f.name)]
        return cls(**{name: getattr(tables, name) for name in names})


@attrs.frozen
class Account:
    """One provider account and the backend that serves it; ``limits`` is the feed that
    backend reports the account's rate-limit headers into (live accounts), which the
    provider reads them from; ``reach`` the feed it reports whether it reached its
    provider into, which the health monitor reads."""

    spec: ProviderSpec
    backend: Backend
    limits: LimitFeed | None = None
    reach: ReachFeed | None = None


@attrs.define
class Fleet:
    """The running routing core."""

    router: Router
    providers: list[Provider]
    health: HealthMonitor
    quota: QuotaTracker
    cache: Cache | None
    supervisor: Supervisor
    autoscaler: Autoscaler | None
    log: DecisionLog
    #: Every breaker transition of the run, oldest first (only the latest ones when
    #: ``open_fleet`` was told to keep a bounded history: a long-running server).
    transitions: collections.deque[Transition]

    def provider(self, name: str) -> Provider:
        return self.router.by_name[name]

    async def session(self, session_id: str, system_prompt: str = "") -> InterviewSession:
        """Start an interview session actor under the fleet's supervisor."""
        session = InterviewSession(session_id, self.router, system_prompt)
        await self.supervisor.start(session)
        return session


def _pinger(backend: Backend, name: str) -> Pinger:
    """One small real call to ``backend``: the health monitor's active check of ``name``."""

    async def ping() -> None:
        await backend.complete(_PING, f"ping-{name}", Usage())

    return ping


def _reach_reader(health: HealthMonitor, name: str) -> Callable[[str], None]:
    """What ``name``'s reach feed tells, stamped with the clock, for the health monitor."""

    def read(reason: str) -> None:
        health.reach(name, reason, clock.now())

    return read


@asynccontextmanager
async def open_fleet(
    accounts: Sequence[Account],
    config: RouterConfig = RouterConfig(),
    *,
    seed: int = 0,
    log: DecisionLog | None = None,
    on_transition: Sequence[Callable[[Transition], None]] = (),
    on_actor_event: Callable[[str, str, BaseException | None], None] | None = None,
    recorder: Recorder | None = None,
    request_id_prefix: str = "r-",
    keep_history: int | None = None,
    on_cache_store: Callable[[str, Completion], None] | None = None,
    attempt_details: bool = False,
) -> AsyncIterator[Fleet]:
    """Start every actor of the routing core; stop them all on exit.

    Every breaker transition goes to ``fleet.transitions``, then to the decision log,
    then to each of ``on_transition`` in order. The fleet's event series (breaker
    transitions, quota alerts, scaling decisions) keep the latest ``keep_history``
    events each, or all of them: a simulated run's report needs the whole series, a
    long-running server bounds them. ``on_cache_store`` hears of every answer the
    cache stores (shared state copies it to the other routers). With
    ``attempt_details`` every attempt's record carries what it saw (its
    :class:`~actors.provider.AttemptSeen`), as traces need.
    """
    log = log or DecisionLog()
    transitions: collections.deque[Transition] = collections.deque(maxlen=keep_history)

    def logged(transition: Transition) -> None:
        if log.active:
            log.emit(
                transition.time,
                f"breaker:{transition.provider}",
                "breaker",
                f"{transition.source.value}->{transition.target.value} ({transition.reason})",
            )

    subscribers = (transitions.append, logged, *on_transition)

    streams = RandomStreams(seed)
    async with trio.open_nursery() as nursery:
        supervisor = Supervisor(nursery, on_event=on_actor_event)
        health = HealthMonitor(config.health)
        quota = QuotaTracker(keep=keep_history)
        cache = Cache(config.cache, on_store=on_cache_store) if config.cache.enabled else None
        attempts = AttemptFeed(attempt_details)

        def moved(transition: Transition) -> None:
            # A breaker's state is part of its account's readiness: the router's board
            # files the account again.
            attempts.account_changed(transition.provider)

        providers: list[Provider] = []
        for account in accounts:
            breaker = CircuitBreaker(account.spec.name, config.breaker, (*subscribers, moved))
            provider = Provider(
                account.spec,
                account.backend,
                breaker,
                attempts,
                health,
                quota,
                config.concurrency,
                account.limits,
                account.spec.timeouts.over(config.timeouts)
                if account.spec.timeouts is not None
                else config.timeouts,
                config.retry.overload_cooldown,
            )
            health.register(account.spec.name, _pinger(account.backend, account.spec.name))
            if account.reach is not None:
                account.reach.subscribe(_reach_reader(health, account.spec.name))
            providers.append(provider)
        # The router validates the fleet (no accounts, duplicate names) before any actor starts.
        router = Router(
            providers,
            build_policy(config.routing, providers, health),
            config.retry,
            cache=cache,
            jitter=streams.stream("router:jitter"),
            log=log,
            recorder=recorder,
            tiers=config.routing,
            request_id_prefix=request_id_prefix,
            hedging=config.hedging,
            line=config.line,
            health=health,
        )
        attempts.subscribe(router)
        await supervisor.start(health)
        await supervisor.start(quota)
        if cache is not None:
            await supervisor.start(cache)
        for provider in providers:
            await supervisor.start(provider.breaker)
            await supervisor.start(provider)
        autoscaler = None
        if config.autoscaler is not None:
            group = config.autoscaler.group
            replicas = [p for p in providers if p.spec.group == group]
            # The router's line is the demand no replica has seen yet.
            autoscaler = Autoscaler(config.autoscaler, replicas, router, keep_history)
            await supervisor.start(autoscaler)
        yield Fleet(
            router, providers, health, quota, cache, supervisor, autoscaler, log, transitions
        )
        nursery.cancel_scope.cancel()
