"""The provider actor: one per account / API key.

It admits a call only if every rate limit of the account has room (a refusal is
a 429 with Retry-After), holds one of the account's concurrency slots (FIFO
queue of bounded length) for the call's duration, dispatches to its backend,
and reports each outcome to its circuit breaker and the health monitor.

``call`` runs in the caller's task: admission never waits, the slot queue
parks the caller directly, and the backend's time is spent by the caller, so a
routed request costs no extra task switch. Commands that change the account
(disable, enable) arrive through the mailbox.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Iterable
from typing import TYPE_CHECKING, Protocol

import attrs

from actors.backends import Backend, BackendReply, Usage
from actors.breaker import CircuitBreaker, State
from actors.concurrency import AdaptiveLimit, ConcurrencyConfig
from actors.errors import (
    AttemptError,
    AuthFailed,
    BackendFailed,
    CircuitOpen,
    ProviderOverloaded,
    QueueFull,
    RateLimited,
)
from actors.limits import UNITS, Admission, Limiter, LimitSpec, check_account_unit
from actors.messages import CAPABILITIES, OPENAI_FIELDS, ChatRequest, Completion
from actors.quota import QuotaWatch
from actors.runtime import clock
from actors.runtime.actor import Actor
from actors.runtime.errors import InvalidSetting
from actors.slots import QueueIsFull, Slots
from actors.timeouts import DEFAULT_TIMEOUTS, AnswerWatch, TimeoutOverrides, Timeouts

# An enum member read off its class costs several global reads on CPython 3.11.
_OPEN, _HALF_OPEN = State.OPEN, State.HALF_OPEN

if TYPE_CHECKING:
    from actors.backends.ratelimit_headers import LimitFeed, LimitObservation, RateLimitInfo
    from actors.backends.sink import StreamSink
    from actors.health import HealthMonitor
    from actors.quota import QuotaTracker


#: What :meth:`Provider.wait_before` says of an account that no timer frees: every slot
#: busy with no queue room, or its half-open trial out. The end of a call frees it, and
#: the provider tells its :class:`AttemptFeed` then, so whoever waits is woken at
#: that moment instead of guessing one.
UNTIL_FREED = -1.0


@attrs.define(slots=True)
class AttemptSeen:
    """What one attempt saw besides its outcome: what a trace of it shows.

    Built only when the :class:`AttemptFeed` is ``detailed`` (someone traces), so an
    untraced run pays one attribute check per attempt. Times are on the clock.
    """

    #: When the provider was asked, and when the attempt ended.
    start: float
    end: float
    #: Seconds it waited for one of the account's concurrency slots.
    slot_wait: float
    #: Seconds from ``start`` to the first token; NaN when none came, or when the answer
    #: came whole (not streamed): its first token is then its end live, a draw of the
    #: model in a simulation, and neither is what the caller saw.
    ttft: float
    #: What the provider processed (its bill): input, and output until it stopped.
    input_tokens: int
    output_tokens: int
    #: The account's breaker state as the attempt went out (``closed``, ``half_open``).
    breaker: str
    #: The wait the provider asked for (429 / overload), capped as the router honours it.
    retry_after: float | None
    #: Why the answer ended (``stop``, ``length``, ``tool_calls`` ...); None if none came.
    finish_reason: str | None
    #: The rate-limit headers of its response, if any.
    limits: RateLimitInfo | None


class AttemptListener(Protocol):
    """Who hears of every attempt's end (the router): to wake requests waiting for the
    capacity it held, and to book what it cost."""

    def attempt_ended(
        self, request_id: str, provider: str, code: str, cost: float, seen: AttemptSeen | None
    ) -> None: ...

    def capacity_freed(self) -> None:
        """Capacity came back without an attempt ending (an account enabled again)."""

    def account_changed(self, provider: str) -> None:
        """Something ``provider``'s readiness or ranking reads may have changed (a call
        starting, a command, a report, a breaker moving), with nothing freed for the line:
        whoever keeps the accounts ordered looks at it again, no waiter is woken."""


class AttemptFeed:
    """Every provider of a fleet tells this one feed of its attempts' ends.

    The fleet builder creates it first and hands it to each provider at construction;
    whoever must hear (the router, built over the providers) subscribes to it. One
    list of subscribers, told in the order they subscribed.
    """

    __slots__ = ("_listeners", "detailed")

    def __init__(self, detailed: bool = False) -> None:
        self._listeners: list[AttemptListener] = []
        #: Whether providers tell each attempt's :class:`AttemptSeen` (tracing needs it).
        self.detailed = detailed

    def subscribe(self, listener: AttemptListener) -> None:
        self._listeners.append(listener)

    def attempt_ended(
        self,
        request_id: str,
        provider: str,
        code: str,
        cost: float,
        seen: AttemptSeen | None = None,
    ) -> None:
        for listener in self._listeners:
            listener.attempt_ended(request_id, provider, code, cost, seen)

    def capacity_freed(self) -> None:
        for listener in self._listeners:
            listener.capacity_freed()

    def account_changed(self, provider: str) -> None:
        for listener in self._listeners:
            listener.account_changed(provider)


def _at_least(minimum: float):
    def check(instance: object, attribute: attrs.Attribute, value: float) -> None:
        if not (isinstance(value, int | float) and value >= minimum):
            raise InvalidSetting(f"provider.{attribute.name}", value, f">= {minimum}")

    return check


def _limit_specs(specs: Iterable[LimitSpec]) -> tuple[LimitSpec, ...]:
    """attrs converter: typed, where ``converter=tuple`` gives mypy a generic it cannot solve."""
    return tuple(specs)


def _names(names: Iterable[str]) -> frozenset[str]:
    return frozenset(names)


@attrs.frozen
class ProviderSpec:
    """One account: its limits, capacity, model and prices.

    ``family`` groups the accounts of one provider (round-robin rotates among
    them); ``tier`` says what the model is good for (``light`` or ``strong``).
    """

    name: str
    family: str = "virtual"
    #: The account group it was made from (scenario groups; autoscaled replicas).
    group: str = ""
    model: str = "default"
    tier: str = "strong"
    limits: tuple[LimitSpec, ...] = attrs.field(default=(), converter=_limit_specs)

    @limits.validator
    def _account_units(self, attribute: attrs.Attribute, value: tuple[LimitSpec, ...]) -> None:
        for spec in value:
            check_account_unit(spec)

    max_concurrency: int = attrs.field(default=64, validator=_at_least(1))
    queue_limit: int = attrs.field(default=256, validator=_at_least(0))
    context_window: int = attrs.field(default=8192, validator=_at_least(1))
    input_cost_per_mtok: float = attrs.field(default=0.0, validator=_at_least(0))
    output_cost_per_mtok: float = attrs.field(default=0.0, validator=_at_least(0))
    monthly_fee: float = attrs.field(default=0.0, validator=_at_least(0))
    #: Self-hosted replicas: seconds from power-on to serving, and price per powered hour.
    cold_start: float = attrs.field(default=0.0, validator=_at_least(0))
    hourly_cost: float = attrs.field(default=0.0, validator=_at_least(0))
    priority: int = 0
    #: What the model can do (:data:`actors.messages.CAPABILITIES`), plus ``openai_fields``
    #: for an account that speaks OpenAI's wire format: requests needing more go elsewhere.
    capabilities: frozenset[str] = attrs.field(
        default=frozenset((*CAPABILITIES, OPENAI_FIELDS)), converter=_names
    )
    #: This account's own timeouts (a reasoning model's longer first byte), over the
    #: router's ``[timeouts]``.
    timeouts: TimeoutOverrides | None = None


@attrs.frozen
class Disable:
    """Take the account out of service until ``until``; ``limit`` names a used-up quota."""

    reason: str
    until: float = math.inf
    limit: str | None = None


@attrs.frozen
class Enable:
    reason: str


@attrs.define
class ProviderStats:
    calls: int = 0
    answered: int = 0
    failures: Counter = attrs.Factory(Counter)
    rejections: Counter = attrs.Factory(Counter)
    # Times a pass over the fleet (no account the board keeps open could take the request
    # at once) found this account at a limit: the limits that made requests look wider or wait.
    held_back: Counter = attrs.Factory(Counter)
    busy_time: float = 0.0
    tokens_in: int = 0
    tokens_out: int = 0
    cost: float = 0.0
    # Seconds powered on before the current stretch (a self-hosted replica's paid time).
    powered_time: float = 0.0


@attrs.frozen
class PowerOn:
    """Start a (self-hosted) replica; it serves after its cold start."""


@attrs.frozen
class PowerOff:
    """Stop a replica: it takes no more requests and costs nothing while off."""


class Provider(Actor):
    def __init__(
        self,
        spec: ProviderSpec,
        backend: Backend,
        breaker: CircuitBreaker,
        attempts: AttemptFeed,
        health: HealthMonitor | None = None,
        quota: QuotaTracker | None = None,
        concurrency: ConcurrencyConfig | None = None,
        limits: LimitFeed | None = None,
        timeouts: Timeouts = DEFAULT_TIMEOUTS,
        overload_cooldown: float = 5.0,
    ) -> None:
        super().__init__(f"provider:{spec.name}")
        self.spec = spec
        #: How long an attempt may take, phase by phase (the ``[timeouts]`` table).
        self.timeouts = timeouts
        self._unbounded = timeouts.unbounded
        #: Seconds an overloaded account rests when its provider gives no Retry-After.
        self.overload_cooldown = overload_cooldown
        self.backend = backend
        self.breaker = breaker
        self.health = health
        self.quota = quota
        self.concurrency = concurrency if concurrency is not None and concurrency.adaptive else None
        if limits is not None:
            limits.subscribe(self._limits_reported)
        #: Where every attempt's end is told (the router hears it); kept across restarts.
        self.attempts = attempts
        self.on_start()

    def on_start(self) -> None:
        self.admission = Admission(self.spec.limits)
        self.quota_watch = QuotaWatch(self.spec.name, self.admission.limiters)
        self.slots = Slots(self.spec.max_concurrency, self.spec.queue_limit)
        self.adaptive = (
            AdaptiveLimit(self.concurrency, self.spec.max_concurrency)
            if self.concurrency is not None
            else None
        )
        self.stats = ProviderStats()
        self.disabled_until = -math.inf
        self.disabled_reason = ""
        self.disabled_limit: str | None = None
        self.powered = True
        self.powered_since: float | None = None  # None: since the run began
        # Set by the latest upstream 429's Retry-After (the latest wins, even if sooner).
        self.cooling_until = -math.inf
        #: Seconds an answer from this account typically takes once it has a slot: the
        #: moving average of its answered calls' service times (0 before the first). An
        #: attempt with less time than this left before the request's deadline would more
        #: likely be cut off than answered, so the router does not start it.
        self.typical_service = 0.0
        self.attempts.account_changed(self.spec.name)

    # --- what selection policies read (never waits) -------------------------
    def wait_before(self, request: ChatRequest, now: float, count: bool = True) -> float:
        """Seconds until this account could take ``request`` (0: now); ``count``: book a
        limit that holds it back (``stats.held_back``), as a pass over the fleet does."""
        if self.disabled_until > now:
            return self.disabled_until - now
        if self.cooling_until > now:
            return self.cooling_until - now
        breaker = self.breaker
        state = breaker.state
        if state is _OPEN:
            wait = breaker.open_until - now
            if wait > 0:
                return wait
        elif state is _HALF_OPEN and not breaker.would_allow(now):
            return UNTIL_FREED  # a trial call is out; its end decides
        slots = self.slots
        full = slots.in_use >= slots.capacity and slots.queued >= slots.queue_limit
        if full and self.adaptive is not None:
            # Its adaptive limit is reached: sending more would only be refused.
            if count:
                self.stats.held_back["concurrency"] += 1
            return UNTIL_FREED
        admission = self.admission
        if admission.checks:
            # The output estimate (_output_estimate) written out: this runs for every
            # account on every look for a provider.
            wait, binding = admission.wait_for(
                now,
                1,
                request.prompt_tokens,
                request.max_tokens or request.expected_output_tokens or 0,
                request.prompt_chars,
            )
            if wait > 0:
                if count:
                    self.stats.held_back[binding] += 1
                return wait
        if full:
            # Every slot busy, no queue room: a call would only be refused, so the request
            # waits in the router's line (bounded, shed by priority) for a call to end.
            if count:
                self.stats.held_back["concurrency"] += 1
            return UNTIL_FREED
        return 0.0

    def ready_in(self, now: float) -> float:
        """Seconds until this account could take the smallest request (0: it may take one
        now; :data:`UNTIL_FREED`: only a call's end frees it): a lower bound of
        :meth:`wait_before` for every request, by which a router can set the account
        aside until then without asking again. Counts nothing."""
        # The checks wait_before opens with, written out again rather than shared through
        # a helper: both run for many accounts per request, where a call more shows.
        if self.disabled_until > now:
            return self.disabled_until - now
        if self.cooling_until > now:
            return self.cooling_until - now
        breaker = self.breaker
        state = breaker.state
        if state is _OPEN:
            wait = breaker.open_until - now
            if wait > 0:
                return wait
        elif state is _HALF_OPEN and not breaker.would_allow(now):
            return UNTIL_FREED
        slots = self.slots
        full = slots.in_use >= slots.capacity and slots.queued >= slots.queue_limit
        if full and self.adaptive is not None:
            return UNTIL_FREED
        if self.admission.checks:
            # One request of no tokens: each limit's wait grows with the amount asked.
            wait = self.admission.wait_for(now, 1, 0, 0, 0)[0]
            if wait > 0:
                return wait
        return UNTIL_FREED if full else 0.0

    def powered_seconds(self, now: float) -> float:
        """Seconds this account has been powered on so far (runs start at time 0)."""
        current = now - (self.powered_since or 0.0) if self.powered else 0.0
        return self.stats.powered_time + current

    def quota_left(self, now: float) -> float:
        return self.admission.remaining_fraction(now)

    def load(self) -> float:
        """Busy share of the account's slots (its current limit), counting its queue."""
        return (self.slots.in_use + self.slots.queued) / self.slots.capacity

    def observe_limits(self, observations: Iterable[LimitObservation], now: float) -> None:
        """Hold admission to the limits the provider just reported (live headers).

        This is how a live account slows down *before* its 429. A report with a reset
        replaces the unit's reported window (:meth:`Admission.report`): until the reset
        the account takes no more than the reported remaining less what it was sent
        since, whatever a configured limiter of that unit would allow, and a stricter
        configured limiter still binds; with no limiter of that unit configured, a
        reported 0 rests the account until the reset. A report without a reset cannot
        say until when: it only lowers the configured limiter of the same unit (and
        size, when several share a unit, like Groq's per-day requests beside a
        per-minute one), which then refills at its configured rate.
        """
        freed = False
        admission = self.admission
        for seen in observations:
            if seen.dimension not in UNITS:
                continue
            if seen.reset_in is not None:
                resets_at = now + seen.reset_in
                freed |= admission.report(
                    now, seen.dimension, seen.remaining, resets_at, seen.limit
                )
                continue
            limiters = [lim for lim in admission.limiters if lim.unit == seen.dimension]
            if seen.limit is not None and len(limiters) > 1:
                limiters = [lim for lim in limiters if _size(lim) == seen.limit]
            if len(limiters) == 1:
                limiters[0].set_remaining(now, seen.remaining)
        self.attempts.account_changed(self.spec.name)
        if freed:
            # A request waiting for the window the last report closed may go now.
            self.attempts.capacity_freed()

    def cool_down(self, until: float) -> bool:
        """Keep off the account until ``until`` (a 429 another router was answered);
        False if it was cooling down that long already."""
        if until <= self.cooling_until:
            return False
        self.cooling_until = until
        self.attempts.account_changed(self.spec.name)
        return True

    def _limits_reported(self, info: RateLimitInfo) -> None:
        self.observe_limits(info.limits, clock.now())

    def _check_quotas(self, now: float) -> None:
        """Report quota thresholds crossed; at 100% disable the account until the reset."""
        for alert in self.quota_watch.check(now):
            if self.quota is not None:
                self.quota.tell(alert)
            if alert.level >= 1.0:
                self.tell(Disable(f"{alert.limit} quota used up", alert.resets_at, alert.limit))

    def _output_estimate(self, request: ChatRequest) -> int:
        """The output tokens charged at admission: ``max_tokens``, else what is expected."""
        return request.max_tokens or request.expected_output_tokens or 0

    # --- the call -----------------------------------------------------------
    async def call(
        self,
        request: ChatRequest,
        request_id: str,
        deadline: float = math.inf,
        sink: StreamSink | None = None,
    ) -> Completion:
        """One attempt on this account; raises an AttemptError on failure.

        The account's :class:`~actors.timeouts.Timeouts` bound the attempt from the moment
        it is sent (its wait for one of the account's slots is the router's own, bounded
        by ``deadline`` alone); ``deadline`` is the request's, on the clock: an attempt it
        cuts off ends in :class:`DeadlineReached`, which is not the provider's failure.
        ``sink`` takes the answer's text as it arrives, from a backend that can stream.
        """
        name = self.spec.name
        # What the call takes (a slot, its limits' room, a half-open trial) is taken
        # before its first wait: whoever keeps the accounts ordered looks after that.
        self.attempts.account_changed(name)
        start = clock.now()
        breaker = self.breaker
        permit = breaker.allow(start)
        if permit is None:
            raise CircuitOpen(name, "circuit breaker is open")
        breaker_state = breaker.state
        if self.disabled_until > start:
            self._refused(permit, request_id, start)
            if self.disabled_limit is not None:
                raise RateLimited(name, self.disabled_limit, self.disabled_until - start)
            raise AuthFailed(name, f"account disabled: {self.disabled_reason}")
        if self.admission.checks:
            wait, limit = self.admission.try_admit(
                start,
                1,
                request.prompt_tokens,
                self._output_estimate(request),
                request.prompt_chars,
            )
            if wait > 0:
                self.stats.rejections[limit] += 1
                self._refused(permit, request_id, start)
                raise RateLimited(name, limit, wait)
            if self.quota_watch.quotas:
                self._check_quotas(start)
        stats = self.stats
        stats.calls += 1
        slots = self.slots
        code = "cancelled"
        retry_after: float | None = None
        service_start = start
        usage = Usage()
        acquired = slots.try_acquire()
        try:
            try:
                if deadline == math.inf and self._unbounded:
                    # Nothing can cut it (a queueing model): no watch, no cancel scope.
                    if not acquired:
                        await slots.acquire()
                        acquired = True
                        service_start = clock.now()
                    reply = await self.backend.complete(request, request_id, usage, sink)
                else:
                    watch = AnswerWatch(self.timeouts, deadline)
                    if acquired:
                        # Sent at once: the deadline is set before the scope is entered,
                        # where setting it costs no registration with trio.
                        watch.sent(start)
                    watched: BackendReply | None = None
                    with watch.scope:
                        if not acquired:
                            await slots.acquire()
                            acquired = True
                            service_start = clock.now()
                            watch.sent(service_start)
                        watched = await self.backend.complete(
                            request, request_id, usage, sink, watch
                        )
                    if watched is None:
                        raise watch.failure(name, start)
                    reply = watched
            except QueueIsFull as exc:
                raise QueueFull(name, f"queue full: {exc}") from None
            except AttemptError:
                raise
            except Exception as exc:
                # Whatever else a backend raises is this provider's failed attempt (counted
                # by its breaker and health, failed over), never the request's 500.
                raise BackendFailed(name, exc) from exc
        except AttemptError as exc:
            code = exc.code
            retry_after = exc.retry_after
            stats.failures[code] += 1
            if isinstance(exc, AuthFailed):
                self.tell(Disable(str(exc)))
            elif isinstance(exc, RateLimited):
                self.cooling_until = clock.now() + exc.retry_after
            elif isinstance(exc, ProviderOverloaded):
                rest = exc.retry_after
                self.cooling_until = clock.now() + (
                    self.overload_cooldown if rest is None else rest
                )
            raise
        else:
            code = "ok"
            stats.answered += 1
        finally:
            end = clock.now()
            if acquired:
                slots.release()
                service = end - service_start
                stats.busy_time += service
                if code == "ok":
                    typical = self.typical_service
                    self.typical_service = (
                        service if not typical else typical + 0.1 * (service - typical)
                    )
                if self.adaptive is not None and (code == "ok" or code == "timeout"):
                    self.adaptive.observe(service, slots)
            breaker.record(permit, end, code, end - start)
            health = self.health
            if health is not None:
                health.observe(name, code, end - start, end)
            if self.admission.limiters:
                # Limits that charged an output estimate take back what was not generated.
                self.admission.settle(
                    start, end, self._output_estimate(request), usage.output_tokens
                )
            cost = self._bill(usage)
            feed = self.attempts
            if feed.detailed:
                seen = AttemptSeen(
                    start,
                    end,
                    service_start - start,
                    math.nan,
                    usage.input_tokens,
                    usage.output_tokens,
                    breaker_state.value,
                    retry_after,
                    None,
                    usage.limits,
                )
                if code == "ok" and (request.stream or sink is not None):
                    seen.ttft = (service_start - start) + reply.ttft
                    seen.finish_reason = (
                        "stop" if reply.answer is None else reply.answer.finish_reason
                    )
                feed.attempt_ended(request_id, name, code, cost, seen)
            else:
                feed.attempt_ended(request_id, name, code, cost)
        answer = reply.answer
        return Completion(
            request_id=request_id,
            content=reply.content,
            padding=reply.padding,
            model=self.spec.model,
            provider=name,
            # The provider's count of the prompt when it gave one, else the router's estimate.
            prompt_tokens=request.prompt_tokens
            if answer is None or answer.prompt_tokens is None
            else answer.prompt_tokens,
            completion_tokens=reply.completion_tokens,
            latency=end - start,
            ttft=(service_start - start) + reply.ttft,
            cost=cost,
            queue_wait=service_start - start,
            answer=answer,
        )

    def _refused(self, permit: int, request_id: str, now: float) -> None:
        """The account refused the call before sending it: its breaker permit goes back
        (a half-open trial is free again), and whoever waits for it hears so."""
        self.breaker.record(permit, now, "rejected", 0.0)
        self.attempts.attempt_ended(request_id, self.spec.name, "rejected", 0.0)

    def _bill(self, usage: Usage) -> float:
        """What the provider charges for an attempt that processed ``usage``."""
        stats = self.stats
        stats.tokens_in += usage.input_tokens
        stats.tokens_out += usage.output_tokens
        spec = self.spec
        cost = (
            usage.input_tokens * spec.input_cost_per_mtok
            + usage.output_tokens * spec.output_cost_per_mtok
        ) / 1e6
        stats.cost += cost
        return cost

    async def receive(self, message: object) -> None:
        match message:
            case Disable(reason, until, limit):
                self.disabled_until = until if until > clock.now() else math.inf
                self.disabled_reason = reason
                self.disabled_limit = limit
            case PowerOn() if not self.powered:
                now = clock.now()
                self.powered, self.powered_since = True, now
                self.disabled_until = now + self.spec.cold_start
                self.disabled_reason = "starting (cold start)"
                self.disabled_limit = None
            case PowerOff() if self.powered:
                now = clock.now()
                self.stats.powered_time += now - (self.powered_since or 0.0)
                self.powered, self.powered_since = False, None
                self.disabled_until = math.inf
                self.disabled_reason = "powered off"
                self.disabled_limit = None
            case PowerOn() | PowerOff():
                pass
            case Enable():
                self.disabled_until = -math.inf
                self.disabled_reason = ""
                self.disabled_limit = None
                self.attempts.capacity_freed()
            case _:
                raise TypeError(f"provider {self.spec.name!r} got an unknown message {message!r}")
        self.attempts.account_changed(self.spec.name)


def _size(limiter: Limiter) -> float:
    """A limiter's published size (a sliced bucket holds less at once)."""
    return limiter.limit
