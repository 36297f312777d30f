"""The live router for apps that embed it: ``async with engine.open_router(config) as router``.

It is the simulator's routing core (``engine.routing.fleet.open_fleet``) with HTTP
backends instead of virtual ones: the same router, breakers, cache, health
monitor and sessions, on trio's real clock. Every provider's rate-limit
headers are fed to its provider actor as they arrive, and whether each exchange reached
the provider to the health monitor (with ``[health] reach_every``, checked on a timer too).
"""

from __future__ import annotations

import contextlib
import logging
import os
import secrets
from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

import httpx
import trio

from actors.backends.http import HttpBackend
from actors.backends.proxies import ProxyURLError, proxy_mounts
from actors.backends.ratelimit_headers import LimitFeed, RateLimitInfo
from actors.backends.reach import ReachFeed
from actors.backends.sink import StreamSink
from actors.backends.trust import default_ssl_context
from actors.breaker import Transition
from actors.messages import ChatMessage, ChatRequest, Completion
from actors.provider import Provider
from actors.runtime import clock
from actors.runtime.errors import leaves
from actors.session import InterviewSession, Turn
from engine.routing.decision_log import DecisionLog
from engine.routing.fleet import Account, Fleet, open_fleet
from engine.routing.recording import Recorder, Recorders
from engine.serve.live_config import ConfigError, LiveConfig, load_config
from engine.serve.openai_format import chat_messages
from engine.serve.reach_checks import check_reach_forever
from engine.serve.reply_stream import ReplyStream
from engine.serve.sessions import SessionRegistry
from engine.serve.state.shared import SharedState, limited, open_shared_state
from engine.serve.state.store import StateStore
from engine.serve.status import (
    ProviderState,
    ProviderStatus,
    best_provider,
    provider_state,
    provider_status,
)

if TYPE_CHECKING:
    from engine.traces.spans import Upstream
    from engine.traces.tracing import Tracing

logger = logging.getLogger("callboard.live")

#: Events a live router keeps of each series (breaker transitions, quota alerts, scaling
#: decisions): the latest ones, so its memory does not grow with uptime.
KEPT_EVENTS = 1000

Messages = Sequence[Mapping[str, Any] | ChatMessage]


class LiveRouter:
    """Routes chat requests over real providers; every method is safe to call concurrently."""

    def __init__(
        self,
        config: LiveConfig,
        fleet: Fleet,
        backends: Mapping[str, HttpBackend],
        nursery: trio.Nursery,
        sessions: SessionRegistry,
        state: SharedState | None = None,
        tracing: Tracing | None = None,
    ) -> None:
        self.config = config
        self.fleet = fleet
        self.router = fleet.router
        self.backends = backends
        self.sessions = sessions
        #: What this router shares with others (None: it keeps its state to itself).
        self.state = state
        #: Where its spans go (None: ``[traces]`` is off).
        self.tracing = tracing
        self._nursery = nursery

    @property
    def providers(self) -> list[Provider]:
        return self.fleet.providers

    def request(
        self,
        messages: Messages,
        *,
        model: str = "auto",
        temperature: float | None = None,
        max_tokens: int | None = None,
        request_id: str | None = None,
        kind: str = "chat",
        deadline: float | None = None,
        bypass_cache: bool = False,
        cache_key: str | None = None,
    ) -> ChatRequest:
        """A :class:`ChatRequest` from OpenAI-style messages (dicts or ChatMessages)."""
        return ChatRequest(
            messages=chat_messages(messages),
            model=model,
            temperature=temperature,
            max_tokens=max_tokens,
            request_id=request_id,
            kind=kind,
            deadline=deadline,
            bypass_cache=bypass_cache,
            cache_key=cache_key,
        )

    async def complete(self, messages: Messages, **options: Any) -> Completion:
        """Answer one chat request, or raise a named :class:`~engine.CallboardError`."""
        return await self.router.complete(self.request(messages, **options))

    async def complete_request(self, request: ChatRequest) -> Completion:
        return await self.router.complete(request)

    def stream(self, messages: Messages, **options: Any) -> ReplyStream:
        """The answer's text as it arrives: ``async for text in router.stream(...)``."""
        request = self.request(messages, **options)
        return self.stream_request(request)

    def stream_request(self, request: ChatRequest) -> ReplyStream:
        return ReplyStream(self._nursery, lambda sink: self.router.complete(request, sink=sink))

    async def session(self, session_id: str, system_prompt: str = "") -> InterviewSession:
        """The interview session ``session_id`` (started if new); it owns the history."""
        return await self.sessions.open(session_id, system_prompt)

    async def turn(
        self, session_id: str, content: str, *, sink: StreamSink | None = None, **turn: Any
    ) -> Completion:
        """One candidate message in a session; refused while another turn is answering.
        ``sink`` takes the answer's text as it arrives (:meth:`stream_turn`)."""
        async with self.sessions.turn(session_id) as session:
            return await session.turn(Turn(content, **turn), sink)

    def stream_turn(self, session_id: str, content: str, **turn: Any) -> ReplyStream:
        """One session turn, streamed; a provider swap mid-answer restarts the text."""

        async def answer(sink: StreamSink) -> Completion:
            return await self.turn(session_id, content, sink=sink, **turn)

        return ReplyStream(self._nursery, answer, restartable=True)

    # --- what the router knows about its providers ----------------------------
    def status(self) -> list[ProviderStatus]:
        now = clock.now()
        health = self.fleet.health
        return [provider_status(p, health, self._limits(p.spec.name), now) for p in self.providers]

    def states(self) -> dict[str, ProviderState]:
        """Each provider's state (ok, busy, unavailable) and why: what probes read."""
        now = clock.now()
        marks = self.fleet.health.unreachable
        return {p.spec.name: provider_state(p, marks.get(p.spec.name), now) for p in self.providers}

    def best(self) -> ProviderStatus | None:
        now = clock.now()
        best = best_provider(self.providers, self.fleet.health, self.config.routing, now)
        if best is None:
            return None
        return provider_status(best, self.fleet.health, self._limits(best.spec.name), now)

    def state_status(self) -> dict[str, Any]:
        """Where shared state lives and whether it is reachable (for /health)."""
        if self.state is None:
            return {"store": "local", "status": "up"}
        return self.state.status()

    def report_failure(self, provider: str, reason: str) -> None:
        """A failure seen outside the router (e.g. by the app); lowers the health score."""
        self.fleet.health.report(provider, reason)

    def _limits(self, name: str) -> RateLimitInfo | None:
        backend = self.backends.get(name)
        return backend.last_limits if backend is not None else None


def client_for(config: LiveConfig, env: Mapping[str, str] | None = None) -> httpx.AsyncClient:
    """The httpx client the router opens for ``config`` when the app gives none: pool
    limits and HTTP/2 from ``[server]``, the connect timeout from ``[timeouts]`` (the
    attempt's watch bounds the rest: :mod:`actors.timeouts`), the machine's CAs (else
    certifi's), and proxies from ``server.proxy`` / ``server.no_proxy`` over ``env``'s
    (default: the process environment's) HTTPS_PROXY, HTTP_PROXY, ALL_PROXY and NO_PROXY."""
    server = config.server
    try:
        proxies = proxy_mounts(env, proxy=server.proxy, no_proxy=server.no_proxy)
    except ProxyURLError as exc:  # a bad variable: the config's own was checked on load
        raise ConfigError("environment", [str(exc)]) from None
    if proxies:
        https, http = (proxies.get(f"{s}://") for s in ("https", "http"))
        shown = [p.url if p is not None else "no proxy" for p in (https, http)]
        logger.info("provider proxies: https origins %s, http origins %s", *shown)
    tls = default_ssl_context()
    limits = httpx.Limits(
        max_connections=server.max_connections,
        max_keepalive_connections=server.max_connections,
        keepalive_expiry=server.keepalive_expiry,
    )

    def transport(proxy: httpx.Proxy | None) -> httpx.AsyncHTTPTransport:
        return httpx.AsyncHTTPTransport(
            verify=tls, http2=server.http2, limits=limits, proxy=proxy, trust_env=False
        )

    return httpx.AsyncClient(
        transport=transport(None),
        mounts={pattern: None if p is None else transport(p) for pattern, p in proxies.items()},
        # Reads and writes are the attempt's watch's (first byte, silence, total), and
        # waiting for a free connection counts toward the first byte.
        timeout=httpx.Timeout(connect=config.timeouts.connect, read=None, write=None, pool=None),
        trust_env=False,  # the environment's proxies are read above, from ``env``
        follow_redirects=False,
    )


@contextlib.asynccontextmanager
async def open_router(
    config: LiveConfig | str | Path,
    *,
    env: Mapping[str, str] | None = None,
    http_client: httpx.AsyncClient | None = None,
    log: DecisionLog | None = None,
    recorder: Recorder | None = None,
    on_transition: Callable[[Transition], None] | None = None,
    state: StateStore | None = None,
) -> AsyncIterator[LiveRouter]:
    """Start the live routing core over ``config``'s providers; stop everything on exit.

    ``config`` is a :class:`LiveConfig` or the path of a TOML file. Keys are
    read from ``env`` (default: the process environment) before anything starts.
    ``http_client`` shares a caller's connection pool (e.g. one with a test CA in
    its TLS context, or already warm); by default the router opens its own from
    ``config.server`` and closes it on exit.
    ``state`` is a store to share with other routers (e.g. one
    :class:`engine.serve.state.MemoryStore` for several routers in one process);
    without it, ``[state] redis`` names the Redis to share, if any.
    """
    try:
        async with _open_router(
            config, env, http_client, log, recorder, on_transition, state
        ) as live:
            yield live
    except BaseExceptionGroup as group:
        # The app's own error reaches it bare, not wrapped in the nurseries' groups.
        found = leaves(group)
        if len(found) != 1:
            raise
        raise found[0] from None


@contextlib.asynccontextmanager
async def _open_router(
    config: LiveConfig | str | Path,
    env: Mapping[str, str] | None,
    http_client: httpx.AsyncClient | None,
    log: DecisionLog | None,
    recorder: Recorder | None,
    on_transition: Callable[[Transition], None] | None,
    state: StateStore | None,
) -> AsyncIterator[LiveRouter]:
    if not isinstance(config, LiveConfig):
        config = load_config(config)
    env = os.environ if env is None else env
    endpoints = [p.endpoint(env, i) for i, p in enumerate(config.providers)]
    token = secrets.token_hex(3)
    async with contextlib.AsyncExitStack() as stack:
        shared = await stack.enter_async_context(open_shared_state(config.state, state, token))
        # Who hears of every breaker transition, in this order: the shared store, the app.
        subscribers: list[Callable[[Transition], None]] = []
        if shared is not None:
            subscribers.append(shared.on_transition)
        if on_transition is not None:
            subscribers.append(on_transition)
        if http_client is None:
            http_client = await stack.enter_async_context(client_for(config, env))
        tracing = None
        if config.traces.enabled:
            from engine.traces.tracing import live_tracing  # the SDK only when traced

            tracing = live_tracing(config.traces, upstreams(config), clock.now())
            # Pushed before the fleet opens, so it runs after the fleet has closed and
            # every request has been recorded: the last spans are flushed, then sent.
            stack.push_async_callback(_shut_down, tracing)
            recorder = (
                tracing.recorder if recorder is None else Recorders(recorder, tracing.recorder)
            )
        feeds = {e.name: LimitFeed() for e in endpoints}
        reach = {e.name: ReachFeed() for e in endpoints}
        backends = {
            e.name: HttpBackend(
                e,
                http_client,
                caps=config.upstream,
                max_retry_after=config.retry.max_retry_after,
                on_limits=feeds[e.name].report,
                on_reach=reach[e.name].report,
            )
            for e in endpoints
        }
        accounts = [
            Account(
                p.spec(),
                limited(shared, p.name, p.limits, backends[p.name]),
                feeds[p.name],
                reach[p.name],
            )
            for p in config.providers
        ]
        async with (
            open_fleet(
                accounts,
                config.router_config,
                seed=config.seed,
                log=log,
                recorder=recorder,
                on_transition=subscribers,
                # Unique per router process, so ids never repeat across restarts or replicas.
                request_id_prefix=f"r-{token}-",
                keep_history=KEPT_EVENTS,
                on_cache_store=shared.cache_written if shared is not None else None,
                attempt_details=tracing is not None,
            ) as fleet,
            trio.open_nursery() as nursery,
        ):
            shared_sessions = None
            if shared is not None:
                # A turn ends by its deadline; the margin covers writing its answer back.
                lock_ttl = config.retry.deadline + config.timeouts.first_byte
                idle = config.server.session_idle_timeout
                shared_sessions = shared.start(fleet, nursery, idle=idle, lock_ttl=lock_ttl)
            sessions = SessionRegistry(
                fleet.router,
                nursery,
                idle_timeout=config.server.session_idle_timeout,
                max_sessions=config.server.max_sessions,
                shared=shared_sessions,
            )
            nursery.start_soon(sessions.sweep_forever)
            every = config.health.reach_every
            if every is not None:
                # The client's connect timeout ends a check's connect (with a verdict);
                # then an answer has health.ping_timeout to come.
                connect = http_client.timeout.connect or config.timeouts.connect
                timeout = connect + config.health.ping_timeout
                nursery.start_soon(check_reach_forever, list(backends.values()), every, timeout)
            yield LiveRouter(config, fleet, backends, nursery, sessions, shared, tracing)
            nursery.cancel_scope.cancel()


def upstreams(config: LiveConfig) -> dict[str, Upstream]:
    """What the spans of each account's attempts say of it: its API kind (``openai``,
    ``anthropic``: ``gen_ai.provider.name``), model, and server address and port."""
    from engine.traces.spans import Upstream

    found = {}
    for p in config.providers:
        url = urlsplit(p.base_url)
        port = url.port or (443 if url.scheme == "https" else 80)
        found[p.name] = Upstream(p.kind, p.model, url.hostname, port)
    return found


async def _shut_down(tracing: Tracing) -> None:
    """Flush and stop the exporters in a worker thread, never on the trio loop; shielded,
    so a server stopped by a cancellation still sends its last spans."""
    with trio.CancelScope(shield=True):
        await trio.to_thread.run_sync(tracing.shutdown)
