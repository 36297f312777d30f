"""The routing core: validation, cache, selection, retries, failover, deadlines.

One request's life: validate (fail fast, no provider call) -> cache lookup ->
pick an eligible provider (:mod:`engine.routing.selection`) with the policy (for a
fleet of many accounts, from the board that keeps them by readiness,
:mod:`engine.routing.board`, without asking each one) ->
attempt with a per-attempt timeout -> on 429 fail over at once; on another error
fail over to a provider not yet tried, or back off (exponential, jittered, never
sooner than Retry-After) and retry -> when no provider can take it, wait in line for
one if it could still answer before the deadline, else give up with a named error.

The router holds one waiting line (:class:`engine.routing.waiting.WaitingLine`: first
come first served, or priority with shedding) and never asks which. The line is woken by
events, never by polling: a timer for what a timer frees (a refill, a window, a
cool-down, a quarantine ending) and the end of a call for what a call frees (a slot, a
half-open trial), which every provider tells the router
(:class:`actors.provider.AttemptListener`). A request's own state on the way (its
errors, what it avoids, how long it waited) is its :class:`engine.routing.pursuit.Pursuit`.
Every request ends in exactly one outcome, counted in :class:`RouterCounters` and told to
the recorder as one :class:`engine.routing.recording.RequestRecord`. The router reads a
session's last provider (for stickiness) but never writes it: the session notes it.

Optional policies, each off unless configured: hedged attempts
(:mod:`engine.routing.hedging`) and a retry budget (:class:`engine.routing.retry.RetryBudget`).
With both off a request takes exactly the path described above.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

import attrs
import numpy as np

from actors.breaker import State
from actors.cache import Cache, request_key
from actors.errors import AttemptError, DeadlineReached, ProviderOverloaded, RateLimited
from actors.messages import ChatRequest, Completion
from actors.runtime import clock
from actors.runtime.errors import CallboardError, InvalidSetting
from actors.runtime.randomness import RandomStream
from engine.routing.board import Accept, Board, Mask, slack
from engine.routing.books import RouterCounters
from engine.routing.decision_log import DecisionLog, log_value
from engine.routing.errors import (
    DeadlineExceeded,
    InvalidRequest,
    NoProviderAvailable,
    RequestFailed,
    RetryBudgetExhausted,
)
from engine.routing.hedging import HedgeTimer, HedgingConfig, hedged_attempt
from engine.routing.policies import Policy, PolicyConfig
from engine.routing.pursuit import Pursuit
from engine.routing.recording import AttemptRecord, Recorder, RequestRecord
from engine.routing.retry import RetryBudget, RetryConfig
from engine.routing.selection import (
    Eligible,
    Looking,
    by_tier,
    eligible,
    needs_strong,
    reachable_first,
)
from engine.routing.validation import check_needs, validate
from engine.routing.waiting import LineConfig, WaitingLine, open_line

# An enum member read off its class costs several global reads on CPython 3.11.
_HALF_OPEN = State.HALF_OPEN

#: Fleets of at least this many accounts are chosen from on a board: a pass over a smaller
#: fleet costs less than keeping the board and ranking on it (about 1 µs an account
#: against about 25 µs a request; the live core broke even at 16-32 accounts, 2026-12).
BOARD_FROM = 24

if TYPE_CHECKING:
    from actors.backends.sink import StreamSink
    from actors.health import HealthMonitor
    from actors.provider import AttemptSeen, Provider
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
        line: LineConfig | None = None,
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
        # What the failed attempts of requests in flight cost, by request id.
        self._wasted: dict[str, float] = {}
        self.hedge_timer = (
            HedgeTimer(hedging, health)
            if hedging is not None and hedging.enabled and health is not None
            else None
        )
        self.budget = RetryBudget(retry.budget) if retry.budget.enabled else None
        #: Accounts no connection reached, read in place (the health monitor keeps them).
        self.unreachable = health.unreachable if health is not None else {}
        #: Where requests wait for a provider; the router never asks which discipline.
        self.line: WaitingLine = open_line(line or LineConfig(), providers, tiers)
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
        #: The accounts kept by readiness with what the policies rank on, so the policy
        #: picks without a pass over the fleet (a large one; needs the health monitor).
        self.board: Board | None = None
        if health is not None and len(providers) >= BOARD_FROM:
            self.board = Board(providers, health, (tiers or PolicyConfig()).latency_ttl)
            health.watch(self.board.changed)

    @property
    def waiting(self) -> int:
        """Requests waiting in line for a provider to free up."""
        return len(self.line)

    # --- what the providers tell (actors.provider.AttemptListener) -----------
    def attempt_ended(
        self, request_id: str, provider: str, code: str, cost: float, seen: AttemptSeen | None
    ) -> None:
        """An attempt ended: book what it cost, and wake the line if what it freed may let
        a waiting request go: with a board, only when the account may take a request now,
        or could after its rest and still answer before a waiting request's deadline (a
        call's end on an account that stays busy, or at a limit past every deadline,
        wakes nobody)."""
        if code != "ok" and cost:
            wasted = self._wasted
            wasted[request_id] = wasted.get(request_id, 0.0) + cost
        recorder = self.recorder
        if recorder is not None:
            recorder.record_attempt(AttemptRecord(provider, code, cost, request_id, seen))
        line = self.line
        board = self.board
        if board is None or board.frees(provider, clock.now(), line.latest_deadline()):
            line.freed()

    def capacity_freed(self) -> None:
        """Something a waiting request may need came free: the line looks."""
        self.line.freed()

    def account_changed(self, provider: str) -> None:
        """What ``provider``'s readiness or ranking reads may have changed: the board
        files it again before the next choice."""
        if self.board is not None:
            self.board.changed(provider)

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
        self._validate(request, request_id, start, session)
        cache = self.cache
        key = None
        if cache is not None and not request.bypass_cache:
            key = request_key(request)
            hit = cache.lookup(key)
            if hit is not None:
                return self._from_cache(hit, request, request_id, start, session)
        self.stats.in_flight += 1
        pursuit = self._pursuit(request, request_id, session, start, sink)
        try:
            # The attempts, written out here rather than in a helper: the attempt is where
            # the request spends its time, and each coroutine frame between the caller
            # and the clock is resumed on every wake-up.
            # Each pass: give up at the deadline; wait in line while no provider can take
            # it; choose one; attempt it; after a failed attempt fail over, back off or
            # give up.
            deadline = pursuit.deadline
            line = self.line
            while True:
                now = clock.now()
                if now >= deadline:
                    raise DeadlineExceeded(request_id, deadline - pursuit.start, pursuit.errors)
                if line.others_first(pursuit):  # it waits its turn before it looks
                    await self._wait_in_line(pursuit, math.inf, False)
                    continue
                # The board's pick, or when it cannot say (nothing it may take, a
                # half-open trial due, a fallback to a wider set), one pass over the fleet.
                picked = self._pick(pursuit, now) if self.board is not None else None
                if picked is None:
                    found = (
                        eligible(
                            self.providers, request, now, pursuit.avoid, self.tiers, deadline - now
                        )
                        if self.board is None
                        else self._look(self.board, pursuit, now)
                    )
                    if not found.ready:
                        self._may_wait(pursuit, now, found)
                        await self._wait_in_line(pursuit, found.soonest, found.busy)
                        continue
                    provider = self._choose(pursuit, found.ready, now)
                else:
                    provider = picked
                line.dispatched(pursuit, now)
                self.stats.attempts += 1
                if self.log.active:
                    self._attempt_starts(pursuit, provider, now)
                try:
                    if self.hedge_timer is None:
                        answered_by = provider
                        completion = await provider.call(request, request_id, deadline, sink)
                    else:
                        completion, answered_by = await hedged_attempt(
                            self, provider, pursuit, sink
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
        if cache is not None and key is not None:
            cache.store(key, completion)
        return completion

    def _validate(
        self,
        request: ChatRequest,
        request_id: str,
        start: float,
        session: InterviewSession | None,
    ) -> None:
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
                    RequestRecord(
                        request.kind,
                        start,
                        0.0,
                        0.0,
                        0,
                        None,
                        exc.code,
                        False,
                        0.0,
                        0.0,
                        0.0,
                        0.0,
                        request_id,
                        request,
                        None,
                        None if session is None else session.session_id,
                    )
                )
            raise

    def _from_cache(
        self,
        hit: Completion,
        request: ChatRequest,
        request_id: str,
        start: float,
        session: InterviewSession | None,
    ) -> Completion:
        """The cached answer to ``request``, at once and at no cost (its outcome: a cache hit)."""
        stats = self.stats
        stats.cache_hits += 1
        stats.answered += 1
        if self.log.active:
            self.log.emit(start, request_id, "cache_hit", f"provider={hit.provider}")
        answer = attrs.evolve(
            hit,
            request_id=request_id,
            latency=0.0,
            ttft=0.0,
            attempts=0,  # answered without calling any provider
            cached=True,
            cost=0.0,
            queue_wait=0.0,
            failed_attempts=(),
        )
        if self.recorder is not None:
            self.recorder.record(
                RequestRecord(
                    request.kind,
                    start,
                    0.0,
                    0.0,
                    0,
                    None,
                    "ok",
                    True,
                    0.0,
                    0.0,
                    0.0,
                    0.0,
                    request_id,
                    request,
                    answer,
                    None if session is None else session.session_id,
                )
            )
        return answer

    def _left(self, pursuit: Pursuit) -> float:
        """A request in flight leaves without an answer: out of the line; the time it left."""
        self.line.left(pursuit)
        self.stats.in_flight -= 1
        return clock.now()

    def _gave_up(self, pursuit: Pursuit, exc: CallboardError) -> None:
        """Book a request that ended in the named error ``exc``."""
        end = self._left(pursuit)
        self.stats.failed[exc.code] += 1
        if self.log.active:
            self.log.emit(end, pursuit.request_id, "gave_up", f"error={exc.code}")
        self._ended(pursuit, end, exc.code)

    def _cancelled(self, pursuit: Pursuit) -> None:
        """Book a request whose caller went away (or whose scope was cancelled)."""
        end = self._left(pursuit)
        self.stats.cancelled += 1
        if self.log.active:
            self.log.emit(end, pursuit.request_id, "cancelled")
        self._ended(pursuit, end, "cancelled")

    def _ended(self, pursuit: Pursuit, end: float, code: str) -> None:
        """Tell the recorder of a request that ended without an answer (its attempts: the
        failed ones its pursuit holds, the same list a RequestFailed names)."""
        wasted = self._wasted.pop(pursuit.request_id, 0.0) if self._wasted else 0.0
        if self.recorder is not None:
            self.recorder.record(
                RequestRecord(
                    pursuit.request.kind,
                    pursuit.start,
                    end - pursuit.start,
                    0.0,
                    len(pursuit.errors),
                    None,
                    code,
                    False,
                    wasted,
                    wasted,
                    pursuit.slot_wait,
                    pursuit.limit_wait,
                    pursuit.request_id,
                    pursuit.request,
                    None,
                    None if pursuit.session is None else pursuit.session.session_id,
                )
            )

    def _delivered(self, pursuit: Pursuit, completion: Completion) -> None:
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
                    pursuit.request_id,
                    pursuit.request,
                    completion,
                    None if pursuit.session is None else pursuit.session.session_id,
                )
            )

    def _pursuit(
        self,
        request: ChatRequest,
        request_id: str,
        session: InterviewSession | None,
        start: float,
        sink: StreamSink | None,
    ) -> Pursuit:
        """A request starts its attempts: its deadline, a retry credit, its place in line."""
        deadline = start + (request.deadline or self.retry.deadline)
        if self.budget is not None:
            self.budget.deposit(start)
        self._arrivals += 1
        return Pursuit(request, request_id, session, start, deadline, self._arrivals, sink=sink)

    def _may_wait(self, pursuit: Pursuit, now: float, found: Eligible) -> None:
        """No provider can take the request now: raise if none could answer before the
        deadline (none busy, and the soonest timer too late), else it waits in line."""
        if not found.busy and now + found.soonest >= pursuit.deadline:
            raise NoProviderAvailable(pursuit.request_id, pursuit.errors, found.retry_after)
        if self.log.active:
            detail = f"wait={found.soonest:.3f} busy={int(found.busy)}"
            self.log.emit(now, pursuit.request_id, "queued", detail)

    async def _wait_in_line(self, pursuit: Pursuit, soonest: float, busy: bool) -> None:
        """Wait in line until the request should look for a provider again, unless the
        line refuses it (full) or sheds it (:meth:`WaitingLine.wait`)."""
        try:
            await self.line.wait(pursuit, soonest, busy)
        except NoProviderAvailable as exc:
            if self.log.active:
                detail = f"priority={pursuit.request.priority}"
                self.log.emit(clock.now(), pursuit.request_id, exc.code, detail)
            raise

    def _choose(self, pursuit: Pursuit, ready: list[Provider], now: float) -> Provider:
        """The provider for the next attempt, among those ``ready`` for it.

        One that has not failed this request yet, of the request's tier, by the policy;
        a half-open one first (its trial), and one that could not be reached last.
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
        if self.unreachable:
            candidates = reachable_first(candidates, self.unreachable)
        return self.policy.choose(candidates, pursuit.request, pursuit.session, now)

    def _pick(self, pursuit: Pursuit, now: float) -> Provider | None:
        """What :meth:`_choose` would choose over what :func:`eligible` finds ready, picked
        from the board's open accounts; None when the board cannot say it cheaply: none of
        them may take the request (it waits, or a wider set applies: a strong account for
        a light turn, one that failed it, one that could not be reached), or a breaker is
        half-open (its trial goes first)."""
        board = self.board
        assert board is not None
        board.update(now)
        if board.half_open:
            return None
        mask = self._candidates(board, pursuit, now, narrow=True)
        accept = self._acceptor(board, pursuit.request, now)
        return self.policy.pick(board, mask, accept, pursuit.session, now)

    def _fresh_ready(self, board: Board, pursuit: Pursuit, now: float) -> bool:
        """Whether an account that has not failed the request could take it now."""
        board.update(now)
        accept = self._acceptor(board, pursuit.request, now)
        mask = self._candidates(board, pursuit, now, narrow=False)
        return any(accept(int(i)) for i in np.flatnonzero(mask))

    def _candidates(self, board: Board, pursuit: Pursuit, now: float, narrow: bool) -> Mask:
        """The board's open accounts that pass every check of :func:`eligible` but the
        request's own limits, less those the request failed on; ``narrow``: less also
        those :meth:`_choose` takes only when nothing else is left (a strong account for a
        light turn by kind, one that could not be reached)."""
        request = pursuit.request
        tiers = self.tiers
        mask = self._fitting(board, request, board.open.copy())
        time_left = pursuit.deadline - now
        if time_left <= board.slowest:
            mask &= board.typical < time_left
        index = board.index
        for name, until in pursuit.avoid.items():
            if until - now > 0.0:
                mask[index[name]] = False
        for name in pursuit.failed:
            mask[index[name]] = False
        if narrow:
            if tiers is not None and tiers.tiers == "by_kind" and request.kind in tiers.light_kinds:
                mask &= board.light
            for name in self.unreachable:
                mask[index[name]] = False
        return mask

    def _fitting(self, board: Board, request: ChatRequest, mask: Mask) -> Mask:
        """``mask`` less the accounts :func:`eligible` never considers for ``request``
        (another model, a light one where only a strong one may answer, a context window
        too small, a capability missing)."""
        size = request.prompt_tokens + (request.max_tokens or 0)
        if size > board.smallest_context:
            mask &= board.context >= size
        if request.model != "auto":
            mask &= board.of_model(request.model)
        if needs_strong(request, self.tiers):
            mask &= board.strong
        if request.needs:
            mask &= board.capable(frozenset(need for need, _ in request.needs))
        return mask

    def _look(self, board: Board, pursuit: Pursuit, now: float) -> Eligible:
        """What :func:`eligible` finds for the request, read off the board.

        Asked exactly, as the pass asks each: the open accounts (the request's tokens may
        not fit), the held ones whose wait depends on its size, the ones it avoids, and
        the resting ones soonest rest end first, until the next one's end cannot come
        before the soonest wait found (a rest ends when the smallest request could go: no
        request's wait there is shorter). The other held ones wait for a call's end, as
        they were read. A request that must give up learns when any account could take
        it (its Retry-After) the same way, over every resting account.
        """
        board.update(now)
        request = pursuit.request
        providers = board.providers
        time_left = pursuit.deadline - now
        avoid = pursuit.avoid
        mask = self._fitting(board, request, np.ones(len(providers), dtype=bool))
        exact = board.open | (board.held & board.sized)
        for name, until in avoid.items():
            if until - now > 0.0:
                exact[board.index[name]] = True
        exact &= mask
        looking = Looking(request, now, avoid, time_left)
        looking.busy = bool((board.typical[mask & board.held & ~exact] < time_left).any())
        resting = mask & ~exact
        looked: list[int] = np.flatnonzero(exact).tolist()
        ready: list[int] = []

        def look(i: int) -> None:
            if looking.ready(providers[i]):
                ready.append(i)

        for i in looked:
            look(i)
        # The resting ones that could answer in time (a rest's end and a typical service
        # before the deadline, give or take the moments' rounding), soonest end first.
        in_time = board.rest_until + board.typical < pursuit.deadline + slack(pursuit.deadline)
        for moment, i in board.by_rest_end(resting & in_time):
            if moment - now >= looking.soonest - slack(moment):
                break
            looked.append(i)
            look(i)
        ready.sort()
        if not ready and not looking.busy and now + looking.soonest >= pursuit.deadline:
            # It will give up: when could any account take it, in time or not.
            resting[looked] = False
            for moment, i in board.by_rest_end(resting):
                if moment - now >= looking.hint - slack(moment):
                    break
                look(i)
        return Eligible([providers[i] for i in ready], looking.soonest, looking.busy, looking.hint)

    @staticmethod
    def _acceptor(board: Board, request: ChatRequest, now: float) -> Accept:
        """The check of the request's own limits (its tokens), made only for the accounts a
        policy would pick."""
        providers = board.providers
        seen: dict[int, bool] = {}

        def accept(i: int) -> bool:
            ok = seen.get(i)
            if ok is None:
                ok = seen[i] = providers[i].wait_before(request, now, count=False) == 0.0
            return ok

        return accept

    def _attempt_starts(self, pursuit: Pursuit, provider: Provider, now: float) -> None:
        """Log that an attempt on ``provider`` starts now (the caller counts it)."""
        detail = f"provider={provider.spec.name} attempt={len(pursuit.errors) + 1}"
        self.log.emit(now, pursuit.request_id, "attempt", detail)

    def _attempt_failed(self, pursuit: Pursuit, exc: AttemptError, name: str) -> float | None:
        """After provider ``name`` failed: raise if the request must give up, else how long
        to back off before the next attempt (None: fail over at once)."""
        end = clock.now()
        pursuit.attempt_failed(exc, name, end)
        if self.log.active:
            self.log.emit(end, pursuit.request_id, "failed", f"provider={name} error={exc.code}")
        self._give_up_after(pursuit, exc, end)
        if isinstance(exc, RateLimited):
            self.stats.rate_limited += 1
            self._failover(pursuit, name, "429", end)
            return None
        if isinstance(exc, ProviderOverloaded):  # the account cools down; others may not
            self._failover(pursuit, name, exc.code, end)
            return None
        if self.board is not None:
            fresh = self._fresh_ready(self.board, pursuit, end)
        else:
            others = eligible(
                self.providers,
                pursuit.request,
                end,
                pursuit.avoid,
                self.tiers,
                pursuit.deadline - end,
            )
            fresh = any(p.spec.name not in pursuit.failed for p in others.ready)
        if fresh:
            self._failover(pursuit, name, exc.code, end)
            return None
        return self._backoff(pursuit, name, end)

    def _give_up_after(self, pursuit: Pursuit, exc: AttemptError, end: float) -> None:
        """Raise if the failed attempt ``exc`` ends the request: it cannot be retried, the
        attempts are used up, or the retry budget is empty."""
        errors = pursuit.errors
        if isinstance(exc, DeadlineReached):
            raise DeadlineExceeded(pursuit.request_id, pursuit.deadline - pursuit.start, errors)
        if pursuit.answer_begun:
            # Part of the answer reached the caller: another provider's answer cannot be
            # appended to it, so none is asked (nor charged).
            reason = "the answer broke off after it had begun"
            raise RequestFailed(pursuit.request_id, reason, errors) from exc
        if not exc.retryable or len(errors) >= self.retry.max_attempts:
            if isinstance(exc, RateLimited | ProviderOverloaded):
                self._all_cooling(pursuit, end)
            reason = f"{len(errors)} attempts failed"
            raise RequestFailed(pursuit.request_id, reason, errors) from exc
        budget = self.budget
        if budget is not None and not budget.try_spend(end):
            self.stats.retries_denied += 1
            if self.log.active:
                self.log.emit(end, pursuit.request_id, "retry_denied", "budget=empty")
            raise RetryBudgetExhausted(pursuit.request_id, errors, exc.retry_after) from exc

    def _all_cooling(self, pursuit: Pursuit, now: float) -> None:
        """The attempts ran out on a 429 or an overload: if no account can take the request
        now, it gets a 503 with the soonest moment one could (no provider is broken)."""
        found = eligible(self.providers, pursuit.request, now, pursuit.avoid, self.tiers)
        if not found.ready:
            raise NoProviderAvailable(pursuit.request_id, pursuit.errors, found.retry_after)

    def _failover(self, pursuit: Pursuit, name: str, reason: str, end: float) -> None:
        """The next attempt goes to another provider than ``name``, at once."""
        self.stats.failovers += 1
        if self.log.active:
            self.log.emit(end, pursuit.request_id, "failover", f"from={name} reason={reason}")

    def _backoff(self, pursuit: Pursuit, name: str, end: float) -> float:
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
        self, pursuit: Pursuit, completion: Completion, name: str, began: float
    ) -> Completion:
        """Provider ``name`` answered the attempt that ``began`` then: the request's answer."""
        end = clock.now()
        self.line.answered(end - began)
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
                padding=completion.padding,
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
                failed_attempts=tuple((e.provider, e.code) for e in pursuit.errors),
            )
        if self.log.active:
            detail = f"provider={name} attempts={completion.attempts}"
            self.log.emit(end, pursuit.request_id, "success", detail)
        return completion
