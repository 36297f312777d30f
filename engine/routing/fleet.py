"""Starting the routing core: every actor under one supervisor, one router on top.

``open_fleet`` is the single place where providers, breakers, the health
monitor and the cache are created and started, so the simulator, the tests and
the live router run exactly the same wiring; only the backends differ.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import asynccontextmanager

import attrs
import trio

from actors.autoscaler import Autoscaler, AutoscalerConfig
from actors.backends import Backend, Usage
from actors.breaker import BreakerConfig, CircuitBreaker, Transition
from actors.cache import Cache, CacheConfig
from actors.concurrency import ConcurrencyConfig
from actors.health import HealthConfig, HealthMonitor
from actors.messages import ChatMessage, ChatRequest
from actors.provider import Provider, ProviderSpec
from actors.quota import QuotaTracker
from actors.runtime.actor import Supervisor
from actors.runtime.randomness import RandomStreams
from actors.session import InterviewSession
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
    """One provider account and the backend that serves it."""

    spec: ProviderSpec
    backend: Backend


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
    transitions: list[Transition]

    def provider(self, name: str) -> Provider:
        return self.router.by_name[name]

    async def session(self, session_id: str, system_prompt: str = "") -> InterviewSession:
        """Start an interview session actor under the fleet's supervisor."""
        session = InterviewSession(session_id, self.router, system_prompt)
        await self.supervisor.start(session)
        return session


@asynccontextmanager
async def open_fleet(
    accounts: Sequence[Account],
    config: RouterConfig = RouterConfig(),
    *,
    seed: int = 0,
    log: DecisionLog | None = None,
    on_transition: Callable[[Transition], None] | None = None,
    on_actor_event: Callable[[str, str, BaseException | None], None] | None = None,
    recorder: Recorder | None = None,
    request_id_prefix: str = "r-",
) -> AsyncIterator[Fleet]:
    """Start every actor of the routing core; stop them all on exit."""
    log = log or DecisionLog()
    transitions: list[Transition] = []

    def transitioned(transition: Transition) -> None:
        transitions.append(transition)
        if log.active:
            log.emit(
                transition.time,
                f"breaker:{transition.provider}",
                "breaker",
                f"{transition.source.value}->{transition.target.value} ({transition.reason})",
            )
        if on_transition is not None:
            on_transition(transition)

    streams = RandomStreams(seed)
    async with trio.open_nursery() as nursery:
        supervisor = Supervisor(nursery, on_event=on_actor_event)
        health = HealthMonitor(config.health)
        quota = QuotaTracker()
        cache = Cache(config.cache) if config.cache.enabled else None
        providers: list[Provider] = []
        for account in accounts:
            breaker = CircuitBreaker(account.spec.name, config.breaker, transitioned)
            provider = Provider(
                account.spec, account.backend, breaker, health, quota, config.concurrency
            )
            backend = account.backend
            health.register(
                account.spec.name,
                lambda backend=backend, name=account.spec.name: backend.complete(
                    _PING, f"ping-{name}", Usage()
                ),
            )
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
            autoscaler = await supervisor.start(Autoscaler(config.autoscaler, replicas, router))
        yield Fleet(
            router, providers, health, quota, cache, supervisor, autoscaler, log, transitions
        )
        nursery.cancel_scope.cancel()
