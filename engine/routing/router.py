"""The routing core: validation, cache, selection, retries, failover, deadlines.

One request's life: validate (fail fast, no provider call) -> cache lookup ->
pick an eligible provider (:mod:`engine.routing.selection`) with the policy ->
attempt with a per-attempt timeout -> on 429 fail over at once; on another error
fail over to a provider not yet tried, or back off (exponential, jittered, never
sooner than Retry-After) and retry -> when no provider can take it, wait in line for
one if it could still answer before the deadline, else give up with a named error.

The line is woken by events, never by polling: a timer for what a timer frees (a
refill, a window, a cool-down, a quarantine ending) and the end of a call for what a
call frees (a slot, a half-open trial), which every provider tells the router
(:class:`actors.provider.AttemptListener`). Requests of one class (same model and
tier need, first try or retry) are served first come first served; only the head of
each class's line keeps the time, the others park.
Every request ends in exactly one outcome, counted in :class:`RouterCounters` and told to
the recorder as one :class:`engine.routing.recording.RequestRecord`. The router reads a
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
from actors.errors import AttemptError, DeadlineReached, RateLimited
from actors.messages import ChatRequest, Completion
from actors.runtime import clock
from actors.runtime.errors import CallboardError, InvalidSetting
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
from engine.routing.recording import AttemptRecord, Recorder, RequestRecord
from engine.routing.retry import RetryBudget, RetryConfig
from engine.routing.selection import Eligible, by_tier, eligible, needs_strong
from engine.routing.shedding import PriorityLine, SheddingConfig
from engine.routing.validation import check_needs, validate

# An enum member read off its class costs several global reads on CPython 3.11.
_HALF_OPEN = State.HALF_OPEN

if TYPE_CHECKING:
    from actors.backends.sink import StreamSink
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
            raise InvalidSetting("providers", [], "at least one provider")
        names = [p.spec.name for p in providers]
        duplicates = sorted({n for n in names if names.count(n) > 1})
        if duplicates:
            raise InvalidSetting("providers.name", duplicates, "unique account names")
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
        self._lines: dict[tuple[str, bool, bool], _Line] = {}
        # What the failed attempts of requests in flight cost, by request id.
        self._wasted: dict[str, float] = {}
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
        #: Each model's distinct capability sets, to refuse at once what none can answer.
        self.capabilities: dict[str, set[frozenset[str]]] = {}
        for p in providers:
            self.capabilities.setdefault(p.spec.model, set()).add(p.spec.capabilities)

    @property
    def waiting(self) -> int:
        """Requests waiting in line for a provider to free up."""
        if self.priority_line is not None:
            return len(self.priority_line)
        return sum(len(line) for line in self._lines.values())

    # --- what the providers tell (actors.provider.AttemptListener) -----------
    def attempt_ended(self, request_id: str, provider: str, code: str, cost: float) -> None:
        """An attempt ended: book what it cost, and wake the line to what it freed."""
        if code != "ok" and cost:
            wasted = self._wasted
            wasted[request_id] = wasted.get(request_id, 0.0) + cost
        recorder = self.recorder
        if recorder is not None:
            recorder.record_attempt(AttemptRecord(provider, code, cost))
        self.capacity_freed()

    def capacity_freed(self) -> None:
        """Something a waiting request may need came free: the heads of the lines look."""
        if self.priority_line is not None:
            self.priority_line.freed()
            return
        for line in self._lines.values():
            if line.head_taken:
                line.head.unpark()

    def new_request_id(self) -> str:
        self._next_id += 1
        return f"{self._prefix}{self._next_id:08d}"

    async def complete(
        self,
        request: ChatRequest,
        session: InterviewSession | None = None,
        sink: StreamSink | None = None,
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
        pursuit = self._pursuit(request, request_id, session, start)
        try:
            # The attempts, written out here rather than in a helper: the attempt is where
            # the request spends its time, and each coroutine frame between the caller
            # and the clock is resumed on every wake-up.
            # Each pass: give up at the deadline; wait in line while no provider can take
            # it; choose one; attempt it; after a failed attempt fail over, back off or
            # give up.
            deadline = pursuit.deadline
            while True:
                now = clock.now()
                if now >= deadline:
                    raise DeadlineExceeded(request_id, deadline - pursuit.start, pursuit.errors)
                if self.priority_line is None and pursuit.line is None:
                    line = self._line_of(pursuit)
                    if line.head_taken or line.parked:  # others of its class wait: it goes behind
                        await self._wait_in_line(pursuit, line, math.inf, line.busy)
                        continue
                found = eligible(
                    self.providers, request, now, pursuit.avoid, self.tiers, deadline - now
                )
                if not found.ready:
                    await self._wait_for_a_provider(pursuit, now, found)
                    continue
                if self.priority_line is not None or pursuit.line is not None:
                    self._dispatched(pursuit, now)
                provider = self._choose(pursuit, found.ready, now)
                self.stats.attempts += 1
                if self.log.active:
                    self._attempt_starts(pursuit, provider, now)
                try:
                    if self.hedge_timer is None:
                        answered_by = provider
                        completion = await provider.call(
                            request, request_id, self.retry.attempt_timeout, deadline, sink
                        )
                    else:
                        completion, answered_by = await hedged_attempt(
                            self,
                            provider,
                            request,
                            request_id,
                            pursuit.session,
                            (self.retry.attempt_timeout, deadline),
                            pursuit.errors,
                            pursuit.avoid,
                            pursuit.failed,
                            sink,
                        )
                except AttemptError as exc:
                    delay = self._attempt_failed(pursuit, exc, provider.spec.name)
                    if delay is not None:
                        await clock.sleep(delay)
                    continue
                completion = self._answer(pursuit, completion, answered_by.spec.name, now)
                break
        except CallboardError as exc:
            self._gave_up(pursuit, exc)
            raise
        except BaseException:
            self._cancelled(pursuit)
            raise
        self._delivered(pursuit, completion)
        if key is not None:
            cache.store(key, completion)
        return completion

    def _validate(self, request: ChatRequest, request_id: str, start: float) -> None:
        """Refuse an invalid request before any provider sees it (its outcome: rejected)."""
        try:
            validate(request, self.context_windows, self._largest_window)
            if request.needs:
                check_needs(request, self.capabilities)
        except InvalidRequest as exc:
            self.stats.failed[exc.code] += 1
            if self.log.active:
                self.log.emit(start, request_id, "rejected", f"field={exc.field}")
            if self.recorder is not None:
                self.recorder.record(
                    RequestRecord(request.kind, start, 0.0, 0.0, 0, None, exc.code, False, 0.0)
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
            self.recorder.record(
                RequestRecord(request.kind, start, 0.0, 0.0, 0, None, "ok", True, 0.0)
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

    def _left(self, pursuit: _Pursuit) -> float:
        """A request in flight leaves without an answer: out of the line; the time it left."""
        if self.priority_line is not None:
            self.priority_line.leave()
        elif pursuit.line is not None:
            pursuit.line.pass_on()
        self.stats.in_flight -= 1
        return clock.now()

    def _gave_up(self, pursuit: _Pursuit, exc: CallboardError) -> None:
        """Book a request that ended in the named error ``exc``."""
        end = self._left(pursuit)
        self.stats.failed[exc.code] += 1
        if self.log.active:
            self.log.emit(end, pursuit.request_id, "gave_up", f"error={exc.code}")
        self._ended(pursuit, end, exc.code, len(getattr(exc, "attempts", ())))

    def _cancelled(self, pursuit: _Pursuit) -> None:
        """Book a request whose caller went away (or whose scope was cancelled)."""
        end = self._left(pursuit)
        self.stats.cancelled += 1
        if self.log.active:
            self.log.emit(end, pursuit.request_id, "cancelled")
        self._ended(pursuit, end, "cancelled", len(pursuit.errors))

    def _ended(self, pursuit: _Pursuit, end: float, code: str, attempts: int) -> None:
        """Tell the recorder of a request that ended without an answer."""
        wasted = self._wasted.pop(pursuit.request_id, 0.0) if self._wasted else 0.0
        if self.recorder is not None:
            self.recorder.record(
                RequestRecord(
                    pursuit.request.kind,
                    pursuit.start,
                    end - pursuit.start,
                    0.0,
                    attempts,
                    None,
                    code,
                    False,
                    wasted,
                    wasted,
                    pursuit.slot_wait,
                    pursuit.limit_wait,
                )
            )

    def _delivered(self, pursuit: _Pursuit, completion: Completion) -> None:
        """Book a request a provider answered."""
        stats = self.stats
        stats.in_flight -= 1
        stats.answered += 1
        wasted = self._wasted.pop(pursuit.request_id, 0.0) if self._wasted else 0.0
        if self.recorder is not None:
            self.recorder.record(
                RequestRecord(
                    pursuit.request.kind,
                    pursuit.start,
                    completion.latency,
                    completion.ttft,
                    completion.attempts,
                    completion.provider,
                    "ok",
                    False,
                    completion.cost + wasted,
                    wasted,
                    pursuit.slot_wait + completion.queue_wait,
                    pursuit.limit_wait,
                )
            )

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

    def _line_of(self, pursuit: _Pursuit) -> _Line:
        """The line of the request's class: requests that every provider treats alike."""
        request = pursuit.request
        key = (
            request.model,
            needs_strong(request, self.tiers),
            bool(pursuit.avoid or pursuit.failed),
        )
        line = self._lines.get(key)
        if line is None:
            line = self._lines[key] = _Line()
        return line

    async def _wait_for_a_provider(self, pursuit: _Pursuit, now: float, found: Eligible) -> None:
        """No provider can take the request now: wait in line for one, or give up.

        It gives up when no provider could answer before the deadline (none busy, and
        the soonest timer too late), when the line is full, or when the priority line
        sheds it.
        """
        request_id = pursuit.request_id
        soonest, busy = found.soonest, found.busy
        if not busy and now + soonest >= pursuit.deadline:
            raise NoProviderAvailable(request_id, pursuit.errors, found.retry_after)
        log = self.log
        if log.active:
            log.emit(now, request_id, "queued", f"wait={soonest:.3f} busy={int(busy)}")
        line = self.priority_line
        if line is None:
            await self._wait_in_line(pursuit, pursuit.line or self._line_of(pursuit), soonest, busy)
            return
        began = clock.now()
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
        finally:
            pursuit.waited(clock.now() - began, busy)

    async def _wait_in_line(
        self, pursuit: _Pursuit, line: _Line, soonest: float, busy: bool
    ) -> None:
        """Wait in the request's line until it should look for a provider again.

        The head sleeps until the soonest timer or until a call ends; the others park
        in arrival order and are let go one at a time (:meth:`_Line.pass_on`).
        """
        began = clock.now()
        if pursuit.line is None:
            if self.waiting >= self.max_waiting:
                retry_after = soonest if soonest < math.inf else self._drain_estimate()
                raise LineFull(pursuit.request_id, pursuit.errors, self.waiting, retry_after)
            pursuit.line = line
        if line.head_taken or (line.parked and not pursuit.had_turn):
            try:
                await line.park(pursuit.deadline)
            finally:
                pursuit.had_turn = True
                pursuit.waited(clock.now() - began, line.busy)
            return
        line.head_taken = True
        line.busy = busy
        try:
            with trio.move_on_at(min(began + soonest, pursuit.deadline)):
                await line.head.park()
        finally:
            line.head_taken = False
            pursuit.had_turn = True
            pursuit.waited(clock.now() - began, busy)

    def _drain_estimate(self) -> float:
        """Seconds until the line would clear if every account's slots turned over at its
        typical service time (a Retry-After for a request refused by a full line)."""
        rate = sum(
            p.slots.capacity / p.typical_service for p in self.providers if p.typical_service > 0
        )
        return (self.waiting + 1) / rate if rate > 0 else 1.0

    def _dispatched(self, pursuit: _Pursuit, now: float) -> None:
        """A request leaves the line for a provider."""
        line = self.priority_line
        if line is not None:
            line.dispatched(now)
        elif pursuit.line is not None:
            # Capacity is free: let the next waiting request look too, so a burst
            # of capacity (a window reset) drains the line instead of one slot.
            pursuit.line.pass_on()
            pursuit.line = None
            pursuit.had_turn = False

    def _choose(self, pursuit: _Pursuit, ready: list[Provider], now: float) -> Provider:
        """The provider for the next attempt, among those ``ready`` for it.

        One that has not failed this request yet, of the request's tier, by the policy.
        """
        failed = pursuit.failed
        fresh = [p for p in ready if p.spec.name not in failed] if failed else ready
        tiers = self.tiers
        candidates = fresh or ready
        if tiers is not None:
            candidates = by_tier(candidates, pursuit.request, tiers)
        # A half-open provider's trial decides whether it comes back; a policy that
        # scores by health would never pick it, and it would stay half-open forever.
        for provider in candidates:
            if provider.breaker.state is _HALF_OPEN:
                return provider
        return self.policy.choose(candidates, pursuit.request, pursuit.session, now)

    def _attempt_starts(self, pursuit: _Pursuit, provider: Provider, now: float) -> None:
        """Log that an attempt on ``provider`` starts now (the caller counts it)."""
        detail = f"provider={provider.spec.name} attempt={len(pursuit.errors) + 1}"
        self.log.emit(now, pursuit.request_id, "attempt", detail)

    def _attempt_failed(self, pursuit: _Pursuit, exc: AttemptError, name: str) -> float | None:
        """After provider ``name`` failed: raise if the request must give up, else how long
        to back off before the next attempt (None: fail over at once)."""
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
        others = eligible(
            self.providers, pursuit.request, end, pursuit.avoid, self.tiers, pursuit.deadline - end
        )
        if any(p.spec.name not in pursuit.failed for p in others.ready):
            self._failover(pursuit, name, exc.code, end)
            return None
        return self._backoff(pursuit, name, end)

    def _give_up_after(self, pursuit: _Pursuit, exc: AttemptError, end: float) -> None:
        """Raise if the failed attempt ``exc`` ends the request: it cannot be retried, the
        attempts are used up, or the retry budget is empty."""
        errors = pursuit.errors
        if isinstance(exc, DeadlineReached):
            raise DeadlineExceeded(pursuit.request_id, pursuit.deadline - pursuit.start, errors)
        if not exc.retryable or len(errors) >= self.retry.max_attempts:
            reason = f"{len(errors)} attempts failed"
            raise RequestFailed(pursuit.request_id, reason, errors) from exc
        budget = self.budget
        if budget is not None and not budget.try_spend(end):
            self.stats.retries_denied += 1
            if self.log.active:
                self.log.emit(end, pursuit.request_id, "retry_denied", "budget=empty")
            raise RetryBudgetExhausted(pursuit.request_id, errors, exc.retry_after) from exc

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
                answer=completion.answer,
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
        "had_turn",
        "limit_wait",
        "line",
        "request",
        "request_id",
        "retries",
        "seq",
        "session",
        "slot_wait",
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
        self.line: _Line | None = None  # the line it waits in, until it is dispatched
        self.had_turn = False  # it was let go to look, so it keeps its place if it waits on
        self.slot_wait = 0.0  # seconds in line while a provider was only busy (every slot)
        self.limit_wait = 0.0  # seconds in line for a rate limit, cool-down or quarantine

    def waited(self, seconds: float, busy: bool) -> None:
        """Book ``seconds`` in line: for a slot when a provider was merely busy, else for
        a limit (the timers: rate limits, cool-downs, quarantines)."""
        if busy:
            self.slot_wait += seconds
        else:
            self.limit_wait += seconds


class _Line:
    """Requests of one class waiting for a provider, first come first served.

    The head parks in ``head`` until its soonest timer or until a call ends (the router
    unparks it); the others park in ``parked`` in arrival order. One is let go to
    look (:meth:`pass_on`) when the head leaves, so someone always keeps the time.
    """

    __slots__ = ("busy", "head", "head_taken", "parked")

    def __init__(self) -> None:
        self.head = trio.lowlevel.ParkingLot()
        self.parked = trio.lowlevel.ParkingLot()
        self.head_taken = False
        self.busy = False  # what the head waits for: a call's end (True) or a timer

    def __len__(self) -> int:
        return len(self.parked) + self.head_taken

    async def park(self, deadline: float) -> None:
        """Wait behind the head until let go, or until ``deadline``."""
        with trio.move_on_at(deadline):
            await self.parked.park()

    def pass_on(self) -> None:
        """Let the next waiter look, unless a head keeps the time already."""
        if self.parked and not self.head_taken:
            self.parked.unpark()
