"""The routing core: validation, cache, selection, retries, failover, deadlines.

One request's life: validate (fail fast, no provider call) -> cache lookup ->
pick an eligible provider (:mod:`engine.routing.selection`) with the policy ->
attempt with a per-attempt timeout -> on 429 fail over at once; on another error
fail over to a provider not yet tried, or back off (exponential, jittered, never
sooner than Retry-After) and retry -> when no provider can take it, wait for the
first one that can if that fits before the deadline, else give up with a named error.
Every request ends in exactly one outcome, counted in :class:`RouterCounters` and told to
the recorder as one :class:`engine.routing.recording.Outcome`. The router reads a
session's last provider (for stickiness) but never writes it: the session notes it.

Optional policies, each off unless configured: hedged attempts
(:mod:`engine.routing.hedging`), a retry budget (:class:`engine.routing.retry.RetryBudget`), and a
priority line with load shedding (:mod:`engine.routing.shedding`). With all of them off
a request takes exactly the path described above.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

import attrs
import trio

from actors.breaker import State
from actors.cache import Cache, request_key
from actors.errors import AttemptError, RateLimited
from actors.messages import ChatRequest, Completion
from actors.runtime import clock
from actors.runtime.errors import CallboardError
from actors.runtime.randomness import RandomStream
from engine.routing.books import RouterCounters
from engine.routing.decision_log import DecisionLog, log_value
from engine.routing.errors import (
    DeadlineExceeded,
    InvalidRequest,
    LineFull,
    NoProviderAvailable,
    RequestFailed,
    RetryBudgetExhausted,
)
from engine.routing.hedging import HedgeTimer, HedgingConfig, hedged_attempt
from engine.routing.policies import Policy, PolicyConfig
from engine.routing.recording import Outcome, Recorder
from engine.routing.retry import RetryBudget, RetryConfig
from engine.routing.selection import by_tier, eligible
from engine.routing.shedding import PriorityLine, SheddingConfig
from engine.routing.validation import validate

if TYPE_CHECKING:
    from actors.health import HealthMonitor
    from actors.provider import Provider
    from actors.session import InterviewSession


class Router:
    """Routes chat requests over a fleet of provider actors."""

    def __init__(
        self,
        providers: list[Provider],
        policy: Policy,
        retry: RetryConfig,
        *,
        cache: Cache | None,
        jitter: RandomStream,
        log: DecisionLog | None = None,
        recorder: Recorder | None = None,
        tiers: PolicyConfig | None = None,
        request_id_prefix: str = "r-",
        hedging: HedgingConfig | None = None,
        shedding: SheddingConfig | None = None,
        health: HealthMonitor | None = None,
    ) -> None:
        if not providers:
            raise InvalidRequest("providers", [], "at least one provider")
        names = [p.spec.name for p in providers]
        duplicates = sorted({n for n in names if names.count(n) > 1})
        if duplicates:
            raise InvalidRequest("providers.name", duplicates, "unique account names")
        self.providers = providers
        self.by_name = {p.spec.name: p for p in providers}
        self.policy = policy
        self.tiers = tiers
        self.retry = retry
        self.cache = cache
        self.log = log or DecisionLog()
        self.stats = RouterCounters()
        self.recorder = recorder
        self._jitter = jitter
        self._prefix = request_id_prefix
        self._next_id = 0
        self._line = trio.lowlevel.ParkingLot()
        self._line_head_taken = False
        self.hedge_timer = (
            HedgeTimer(hedging, health)
            if hedging is not None and hedging.enabled and health is not None
            else None
        )
        self.budget = RetryBudget(retry.budget) if retry.budget.enabled else None
        self.priority_line = (
            PriorityLine(shedding) if shedding is not None and shedding.enabled else None
        )
        self.max_waiting = shedding.max_waiting if shedding is not None else math.inf
        self._arrivals = 0
        self.context_windows: dict[str, int] = {}
        for p in providers:
            model = p.spec.model
            self.context_windows[model] = max(
                self.context_windows.get(model, 0), p.spec.context_window
            )
        self._largest_window = max(self.context_windows.values())

    @property
    def waiting(self) -> int:
        """Requests waiting in line for a provider to free up."""
        if self.priority_line is not None:
            return len(self.priority_line)
        return len(self._line) + self._line_head_taken

    def new_request_id(self) -> str:
        self._next_id += 1
        return f"{self._prefix}{self._next_id:08d}"

    async def complete(
        self, request: ChatRequest, session: InterviewSession | None = None
    ) -> Completion:
        """Answer ``request`` or raise a named :class:`CallboardError`.

        Every request ends in exactly one outcome, counted in :attr:`stats` and told to
        the recorder once: rejected, answered from the cache, answered by a provider,
        given up with a named error, or cancelled.
        """
        start = clock.now()
        request_id = request.request_id or self.new_request_id()
        self.stats.received += 1
        if self.log.active:
            detail = f"model={log_value(request.model)} kind={log_value(request.kind)}"
            self.log.emit(start, request_id, "received", detail)
        self._validate(request, request_id, start)
        cache = self.cache
        key = None
        if cache is not None and not request.bypass_cache:
            key = request_key(request)
            hit = cache.lookup(key)
            if hit is not None:
                return self._from_cache(hit, request, request_id, start)
        self.stats.in_flight += 1
        try:
            completion = await self._attempts(request, request_id, session, start)
        except CallboardError as exc:
            self._gave_up(request, request_id, start, exc)
            raise
        except BaseException:
            self._cancelled(request, request_id, start)
            raise
        self._delivered(request, start, completion)
        if key is not None:
            cache.store(key, completion)
        return completion

    def _validate(self, request: ChatRequest, request_id: str, start: float) -> None:
        """Refuse an invalid request before any provider sees it (its outcome: rejected)."""
        try:
            validate(request, self.context_windows, self._largest_window)
        except InvalidRequest as exc:
            self.stats.failed[exc.code] += 1
            if self.log.active:
                self.log.emit(start, request_id, "rejected", f"field={exc.field}")
            if self.recorder is not None:
                self.recorder.record(
                    Outcome(request.kind, start, 0.0, 0.0, 0, None, exc.code, False, 0.0)
                )
            raise

    def _from_cache(
        self, hit: Completion, request: ChatRequest, request_id: str, start: float
    ) -> Completion:
        """The cached answer to ``request``, at once and at no cost (its outcome: a cache hit)."""
        stats = self.stats
        stats.cache_hits += 1
        stats.answered += 1
        if self.log.active:
            self.log.emit(start, request_id, "cache_hit", f"provider={hit.provider}")
        if self.recorder is not None:
            self.recorder.record(Outcome(request.kind, start, 0.0, 0.0, 0, None, "ok", True, 0.0))
        return attrs.evolve(
            hit,
            request_id=request_id,
            latency=0.0,
            ttft=0.0,
            attempts=0,  # answered without calling any provider
            cached=True,
            cost=0.0,
            queue_wait=0.0,
        )

    def _left(self) -> float:
        """A request in flight leaves without an answer: out of the line; the time it left."""
        if self.priority_line is not None:
            self.priority_line.leave()
        self.stats.in_flight -= 1
        return clock.now()

    def _gave_up(
        self, request: ChatRequest, request_id: str, start: float, exc: CallboardError
    ) -> None:
        """Book a request that ended in the named error ``exc``."""
        end = self._left()
        self.stats.failed[exc.code] += 1
        if self.log.active:
            self.log.emit(end, request_id, "gave_up", f"error={exc.code}")
        if self.recorder is not None:
            attempts = len(getattr(exc, "attempts", ()))
            self.recorder.record(
                Outcome(request.kind, start, end - start, 0.0, attempts, None, exc.code, False, 0.0)
            )

    def _cancelled(self, request: ChatRequest, request_id: str, start: float) -> None:
        """Book a request whose caller went away (or whose scope was cancelled)."""
        end = self._left()
        self.stats.cancelled += 1
        if self.log.active:
            self.log.emit(end, request_id, "cancelled")
        if self.recorder is not None:
            self.recorder.record(
                Outcome(request.kind, start, end - start, 0.0, 0, None, "cancelled", False, 0.0)
            )

    def _delivered(self, request: ChatRequest, start: float, completion: Completion) -> None:
        """Book a request a provider answered."""
        stats = self.stats
        stats.in_flight -= 1
        stats.answered += 1
        if self.recorder is not None:
            self.recorder.record(
                Outcome(
                    request.kind,
                    start,
                    completion.latency,
                    completion.ttft,
                    completion.attempts,
                    completion.provider,
                    "ok",
                    False,
                    completion.cost,
                    completion.queue_wait,
                )
            )

    async def _wait_for_capacity(self, wait: float, deadline: float) -> None:
        """Wait in line for a provider to free up, then look again.

        Only the request at the head of the line sleeps until the soonest moment
        a provider could take it; the others park in FIFO order and are let go
        one at a time as the head leaves. Without the line, every waiting request
        would wake and rescan every provider at each refill: quadratic work in a
        large fleet under a binding rate limit.
        """
        if self._line_head_taken:
            with trio.move_on_at(deadline):
                await self._line.park()
            return
        self._line_head_taken = True
        try:
            await clock.sleep(wait)
        finally:
            self._line_head_taken = False
            self._line.unpark()

    async def _attempts(
        self,
        request: ChatRequest,
        request_id: str,
        session: InterviewSession | None,
        start: float,
    ) -> Completion:
        """Attempt ``request`` on provider after provider until one answers.

        Each pass: give up at the deadline; wait in line while no provider can take it;
        choose one; attempt it; after a failed attempt fail over, back off or give up.
        """
        pursuit = self._pursuit(request, request_id, session, start)
        while True:
            now = clock.now()
            if now >= pursuit.deadline:
                raise DeadlineExceeded(request_id, pursuit.deadline - start, pursuit.errors)
            ready, soonest = eligible(self.providers, request, now, pursuit.avoid, self.tiers)
            if not ready:
                await self._wait_for_a_provider(pursuit, now, soonest)
                continue
            self._dispatched(now)
            provider = self._choose(pursuit, ready, now)
            timeout = self._attempt_starts(pursuit, provider, now)
            try:
                # Awaited here, not in a helper: the attempt is where the request spends
                # its time, and each coroutine frame in between costs on every resumption.
                if self.hedge_timer is None:
                    answered_by = provider
                    completion = await provider.call(request, request_id, timeout)
                else:
                    completion, answered_by = await hedged_attempt(
                        self,
                        provider,
                        request,
                        request_id,
                        session,
                        (timeout, pursuit.deadline),
                        pursuit.errors,
                        pursuit.avoid,
                        pursuit.failed,
                    )
            except AttemptError as exc:
                delay = self._attempt_failed(pursuit, exc, provider.spec.name)
                if delay is not None:
                    await clock.sleep(delay)
                continue
            return self._answer(pursuit, completion, answered_by.spec.name, now)

    def _pursuit(
        self,
        request: ChatRequest,
        request_id: str,
        session: InterviewSession | None,
        start: float,
    ) -> _Pursuit:
        """A request starts its attempts: its deadline, a retry credit, its place in line."""
        deadline = start + (request.deadline or self.retry.deadline)
        if self.budget is not None:
            self.budget.deposit(start)
        self._arrivals += 1
        return _Pursuit(request, request_id, session, start, deadline, self._arrivals)

    async def _wait_for_a_provider(self, pursuit: _Pursuit, now: float, soonest: float) -> None:
        """No provider can take the request now: wait in line for one, or give up.

        It gives up when the soonest provider frees up too late for the deadline, when
        the line is full, or when the priority line sheds it.
        """
        request_id = pursuit.request_id
        if now + soonest >= pursuit.deadline:
            raise NoProviderAvailable(request_id, pursuit.errors, soonest)
        log = self.log
        if log.active:
            log.emit(now, request_id, "queued", f"wait={soonest:.3f}")
        line = self.priority_line
        if line is None:
            if self.waiting >= self.max_waiting:
                raise LineFull(request_id, pursuit.errors, self.waiting, soonest)
            await self._wait_for_capacity(soonest, pursuit.deadline)
            return
        try:
            await line.wait(
                request_id,
                pursuit.request.priority,
                pursuit.seq,
                soonest,
                pursuit.deadline,
                pursuit.errors,
            )
        except NoProviderAvailable:
            if log.active:
                log.emit(clock.now(), request_id, "shed", f"priority={pursuit.request.priority}")
            raise

    def _dispatched(self, now: float) -> None:
        """A request leaves the line for a provider."""
        line = self.priority_line
        if line is not None:
            line.dispatched(now)
        elif self._line and not self._line_head_taken:
            # Capacity is free: let the next waiting request look too, so a burst
            # of capacity (a window reset) drains the line instead of one slot.
            self._line.unpark()

    def _choose(self, pursuit: _Pursuit, ready: list[Provider], now: float) -> Provider:
        """The provider for the next attempt, among those ``ready`` for it.

        One that has not failed this request yet, of the request's tier, by the policy.
        """
        failed = pursuit.failed
        fresh = [p for p in ready if p.spec.name not in failed] if failed else ready
        candidates = by_tier(fresh or ready, pursuit.request, self.tiers)
        # A half-open provider's trial decides whether it comes back; a policy that
        # scores by health would never pick it, and it would stay half-open forever.
        for provider in candidates:
            if provider.breaker.core.state is State.HALF_OPEN:
                return provider
        return self.policy.choose(candidates, pursuit.request, pursuit.session, now)

    def _attempt_starts(self, pursuit: _Pursuit, provider: Provider, now: float) -> float:
        """An attempt on ``provider`` starts now: count and log it; its timeout."""
        self.stats.attempts += 1
        if self.log.active:
            detail = f"provider={provider.spec.name} attempt={len(pursuit.errors) + 1}"
            self.log.emit(now, pursuit.request_id, "attempt", detail)
        return min(self.retry.attempt_timeout, pursuit.deadline - now)

    def _attempt_failed(self, pursuit: _Pursuit, exc: AttemptError, name: str) -> float | None:
        """After provider ``name`` failed: raise if the request must give up, else how long
        to back off before the next attempt (None: fail over at once)."""
        if self.priority_line is not None:
            self.priority_line.freed()
        pursuit.errors.append(exc)
        end = clock.now()
        if self.log.active:
            self.log.emit(end, pursuit.request_id, "failed", f"provider={name} error={exc.code}")
        self._give_up_after(pursuit, exc, end)
        if isinstance(exc, RateLimited):
            pursuit.avoid[name] = end + exc.retry_after
            self.stats.rate_limited += 1
            self._failover(pursuit, name, "429", end)
            return None
        pursuit.failed.add(name)
        others, _ = eligible(self.providers, pursuit.request, end, pursuit.avoid, self.tiers)
        if any(p.spec.name not in pursuit.failed for p in others):
            self._failover(pursuit, name, exc.code, end)
            return None
        return self._backoff(pursuit, name, end)

    def _give_up_after(self, pursuit: _Pursuit, exc: AttemptError, end: float) -> None:
        """Raise if the failed attempt ``exc`` ends the request: it cannot be retried, the
        attempts are used up, or the retry budget is empty."""
        errors = pursuit.errors
        if not exc.retryable or len(errors) >= self.retry.max_attempts:
            reason = f"{len(errors)} attempts failed"
            raise RequestFailed(pursuit.request_id, reason, errors) from exc
        budget = self.budget
        if budget is not None and not budget.try_spend(end):
            self.stats.retries_denied += 1
            if self.log.active:
                self.log.emit(end, pursuit.request_id, "retry_denied", "budget=empty")
            raise RetryBudgetExhausted(
                pursuit.request_id, errors, getattr(exc, "retry_after", None)
            ) from exc

    def _failover(self, pursuit: _Pursuit, name: str, reason: str, end: float) -> None:
        """The next attempt goes to another provider than ``name``, at once."""
        self.stats.failovers += 1
        if self.log.active:
            self.log.emit(end, pursuit.request_id, "failover", f"from={name} reason={reason}")

    def _backoff(self, pursuit: _Pursuit, name: str, end: float) -> float:
        """No other provider can take it: how long to wait before retrying (never sooner
        than a Retry-After, never past the deadline)."""
        pursuit.retries += 1
        self.stats.retries += 1
        wait = self.retry.backoff(pursuit.retries, pursuit.avoid.get(name, end) - end, self._jitter)
        delay = min(wait, max(0.0, pursuit.deadline - end))
        if self.log.active:
            self.log.emit(end, pursuit.request_id, "backoff", f"provider={name} wait={delay:.3f}")
        return delay

    def _answer(
        self, pursuit: _Pursuit, completion: Completion, name: str, began: float
    ) -> Completion:
        """Provider ``name`` answered the attempt that ``began`` then: the request's answer."""
        end = clock.now()
        line = self.priority_line
        if line is not None:
            line.answered(end - began)
            line.freed()
        start = pursuit.start
        latency, ttft = end - start, completion.ttft + (began - start)
        attempts = len(pursuit.errors) + 1
        # The attempt's own completion already says it all when this first attempt
        # began as the request did (the common case): no second object.
        if (
            completion.latency != latency
            or completion.ttft != ttft
            or completion.attempts != attempts
            or completion.provider != name
        ):
            completion = Completion(
                request_id=pursuit.request_id,
                content=completion.content,
                model=completion.model,
                provider=name,
                prompt_tokens=completion.prompt_tokens,
                completion_tokens=completion.completion_tokens,
                latency=latency,
                ttft=ttft,
                attempts=attempts,
                cost=completion.cost,
                queue_wait=completion.queue_wait,
            )
        if self.log.active:
            detail = f"provider={name} attempts={completion.attempts}"
            self.log.emit(end, pursuit.request_id, "success", detail)
        return completion


class _Pursuit:
    """One request on its way through the attempts: what it tried, what it must avoid."""

    __slots__ = (
        "avoid",
        "deadline",
        "errors",
        "failed",
        "request",
        "request_id",
        "retries",
        "seq",
        "session",
        "start",
    )

    def __init__(
        self,
        request: ChatRequest,
        request_id: str,
        session: InterviewSession | None,
        start: float,
        deadline: float,
        seq: int,
    ) -> None:
        self.request = request
        self.request_id = request_id
        self.session = session
        self.start = start
        self.deadline = deadline
        self.seq = seq  # its arrival order, for the priority line's ties
        self.errors: list[AttemptError] = []
        self.avoid: dict[str, float] = {}  # provider -> until when (a 429's Retry-After)
        self.failed: set[str] = set()  # providers that failed this request
        self.retries = 0
