"""The routing core: validation, cache, selection, retries, failover, deadlines.

One request's life: validate (fail fast, no provider call) -> cache lookup ->
pick an eligible provider with the policy -> attempt with a per-attempt
timeout -> on 429 fail over at once; on another error fail over to a provider
not yet tried, or back off (exponential, jittered, never sooner than
Retry-After) and retry -> when no provider can take it, wait for the first one
that can if that fits before the deadline, else give up with a named error.
Every request ends in exactly one outcome, counted in :class:`RouterStats`.

Optional policies, each off unless configured: hedged attempts
(:mod:`engine.routing.hedging`), a retry budget (:class:`engine.routing.retry.RetryBudget`), and a
priority line with load shedding (:mod:`engine.routing.shedding`). With all of them off
a request takes exactly the path described above.
"""

from __future__ import annotations

import math
from collections import Counter
from typing import TYPE_CHECKING

import attrs
import trio

from actors.breaker import State
from actors.cache import Cache, request_key
from actors.errors import AttemptError, RateLimited
from actors.messages import ChatRequest, Completion
from actors.runtime import clock
from actors.runtime.errors import CallboardError
from actors.runtime.randomness import Stream
from engine.routing.decision_log import DecisionLog
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


@attrs.define
class RouterStats:
    """The books: every request received is in exactly one of these places."""

    received: int = 0
    in_flight: int = 0
    answered: int = 0
    cache_hits: int = 0
    cancelled: int = 0
    failed: Counter = attrs.Factory(Counter)
    attempts: int = 0
    retries: int = 0
    failovers: int = 0
    rate_limited: int = 0
    #: Second attempts sent by hedging, and how many of them answered first.
    hedges: int = 0
    hedge_wins: int = 0
    #: Failed attempts not retried because the retry budget was empty.
    retries_denied: int = 0

    def balanced(self) -> bool:
        return self.received == (
            self.in_flight + self.answered + self.cancelled + sum(self.failed.values())
        )


class Router:
    """Routes chat requests over a fleet of provider actors."""

    def __init__(
        self,
        providers: list[Provider],
        policy: Policy,
        retry: RetryConfig,
        *,
        cache: Cache | None,
        jitter: Stream,
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
        self.stats = RouterStats()
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
        """Answer ``request`` or raise a named :class:`CallboardError`."""
        start = clock.now()
        request_id = request.request_id or self.new_request_id()
        log = self.log
        stats = self.stats
        stats.received += 1
        if log.active:
            log.emit(start, request_id, "received", f"model={request.model} kind={request.kind}")
        recorder = self.recorder
        try:
            validate(request, self.context_windows, self._largest_window)
        except InvalidRequest as exc:
            stats.failed[exc.code] += 1
            if log.active:
                log.emit(start, request_id, "rejected", f"field={exc.field}")
            if recorder is not None:
                recorder.record(
                    Outcome(request.kind, start, 0.0, 0.0, 0, None, exc.code, False, 0.0)
                )
            raise
        cache = self.cache
        key = None
        if cache is not None and not request.bypass_cache:
            key = request_key(request)
            hit = cache.lookup(key)
            if hit is not None:
                stats.cache_hits += 1
                stats.answered += 1
                if log.active:
                    log.emit(start, request_id, "cache_hit", f"provider={hit.provider}")
                if recorder is not None:
                    recorder.record(
                        Outcome(request.kind, start, 0.0, 0.0, 0, None, "ok", True, 0.0)
                    )
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
        stats.in_flight += 1
        try:
            completion = await self._attempts(request, request_id, session, start)
        except CallboardError as exc:
            if self.priority_line is not None:
                self.priority_line.leave()
            stats.in_flight -= 1
            stats.failed[exc.code] += 1
            end = clock.now()
            if log.active:
                log.emit(end, request_id, "gave_up", f"error={exc.code}")
            if recorder is not None:
                attempts = len(getattr(exc, "attempts", ()))
                recorder.record(
                    Outcome(
                        request.kind, start, end - start, 0.0, attempts, None, exc.code, False, 0.0
                    )
                )
            raise
        except BaseException:
            if self.priority_line is not None:
                self.priority_line.leave()
            stats.in_flight -= 1
            stats.cancelled += 1
            end = clock.now()
            if log.active:
                log.emit(end, request_id, "cancelled")
            if recorder is not None:
                recorder.record(
                    Outcome(request.kind, start, end - start, 0.0, 0, None, "cancelled", False, 0.0)
                )
            raise
        stats.in_flight -= 1
        stats.answered += 1
        if recorder is not None:
            recorder.record(
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
        if key is not None:
            cache.store(key, completion)
        return completion

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
        retry = self.retry
        log = self.log
        stats = self.stats
        deadline = start + (request.deadline or retry.deadline)
        errors: list[AttemptError] = []
        avoid: dict[str, float] = {}  # provider -> until when (a 429's Retry-After)
        failed: set[str] = set()  # providers that failed this request
        retries = 0
        budget = self.budget
        if budget is not None:
            budget.deposit(start)
        line = self.priority_line
        self._arrivals += 1
        seq = self._arrivals
        while True:
            now = clock.now()
            if now >= deadline:
                raise DeadlineExceeded(request_id, deadline - start, errors)
            ready, soonest = eligible(self.providers, request, now, avoid, self.tiers)
            if not ready:
                if now + soonest >= deadline:
                    raise NoProviderAvailable(request_id, errors, soonest)
                if log.active:
                    log.emit(now, request_id, "queued", f"wait={soonest:.3f}")
                if line is None:
                    if self.waiting >= self.max_waiting:
                        raise LineFull(request_id, errors, self.waiting, soonest)
                    await self._wait_for_capacity(soonest, deadline)
                else:
                    try:
                        await line.wait(
                            request_id, request.priority, seq, soonest, deadline, errors
                        )
                    except NoProviderAvailable:
                        if log.active:
                            detail = f"priority={request.priority}"
                            log.emit(clock.now(), request_id, "shed", detail)
                        raise
                continue
            if line is not None:
                line.dispatched(now)
            elif self._line and not self._line_head_taken:
                # Capacity is free: let the next waiting request look too, so a burst
                # of capacity (a window reset) drains the line instead of one slot.
                self._line.unpark()
            fresh = [p for p in ready if p.spec.name not in failed] if failed else ready
            candidates = by_tier(fresh or ready, request, self.tiers)
            # A half-open provider's trial decides whether it comes back; a policy that
            # scores by health would never pick it, and it would stay half-open forever.
            for provider in candidates:
                if provider.breaker.core.state is State.HALF_OPEN:
                    break
            else:
                provider = self.policy.choose(candidates, request, session, now)
            name = provider.spec.name
            stats.attempts += 1
            if log.active:
                log.emit(now, request_id, "attempt", f"provider={name} attempt={len(errors) + 1}")
            timeout = min(retry.attempt_timeout, deadline - now)
            try:
                if self.hedge_timer is None:
                    completion = await provider.call(request, request_id, timeout)
                else:
                    completion, provider = await hedged_attempt(
                        self,
                        provider,
                        request,
                        request_id,
                        session,
                        (timeout, deadline),
                        errors,
                        avoid,
                        failed,
                    )
                    name = provider.spec.name
            except AttemptError as exc:
                if line is not None:
                    line.freed()
                errors.append(exc)
                end = clock.now()
                if log.active:
                    log.emit(end, request_id, "failed", f"provider={name} error={exc.code}")
                if not exc.retryable or len(errors) >= retry.max_attempts:
                    reason = f"{len(errors)} attempts failed"
                    raise RequestFailed(request_id, reason, errors) from exc
                if budget is not None and not budget.try_spend(end):
                    stats.retries_denied += 1
                    if log.active:
                        log.emit(end, request_id, "retry_denied", "budget=empty")
                    raise RetryBudgetExhausted(
                        request_id, errors, getattr(exc, "retry_after", None)
                    ) from exc
                if isinstance(exc, RateLimited):
                    stats.rate_limited += 1
                    avoid[name] = end + exc.retry_after
                    stats.failovers += 1
                    if log.active:
                        log.emit(end, request_id, "failover", f"from={name} reason=429")
                    continue
                failed.add(name)
                others, _ = eligible(self.providers, request, end, avoid, self.tiers)
                if any(p.spec.name not in failed for p in others):
                    stats.failovers += 1
                    if log.active:
                        log.emit(end, request_id, "failover", f"from={name} reason={exc.code}")
                    continue
                retries += 1
                stats.retries += 1
                delay = retry.backoff(retries, avoid.get(name, end) - end, self._jitter)
                delay = min(delay, max(0.0, deadline - end))
                if log.active:
                    log.emit(end, request_id, "backoff", f"provider={name} wait={delay:.3f}")
                await clock.sleep(delay)
                continue
            end = clock.now()
            if line is not None:
                line.answered(end - now)
                line.freed()
            latency, ttft, attempts = end - start, completion.ttft + (now - start), len(errors) + 1
            # The attempt's own completion already says it all when this first attempt
            # began as the request did (the common case): no second object.
            if (
                completion.latency != latency
                or completion.ttft != ttft
                or completion.attempts != attempts
                or completion.provider != name
            ):
                completion = Completion(
                    request_id=request_id,
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
            if log.active:
                log.emit(
                    end,
                    request_id,
                    "success",
                    f"provider={name} attempts={completion.attempts}",
                )
            return completion
