"""Caller budgets, enforced like the accounts' own limits and shared like them.

A request is admitted by an atomic ``take`` over every limit of its key's
budget: one request, and the smallest unit of tokens and of money (so a key
whose token or cost budget is spent is refused, and a key with room is not held
back by a guess of what the answer will cost). When the answer is known its
tokens and cost, as the provider reported and priced them, are added to the
admission's charge, which may leave a minute's bucket in debt or a day's window past its cap: the
key then waits until the bucket refills or the window ends, as Anthropic does
with its output-token limit. Failed requests count as requests only.

The limiters are :mod:`actors.limits`' buckets and windows. With shared state
(``[state] redis``), the same charges go to the store, keyed by key id, so every
router counts one budget; the local limiters still apply, and are what holds
while the store is down.
"""

from __future__ import annotations

import contextlib
import functools
import logging
import math

import attrs
import trio

from actors.limits import Limiter, LimitSpec
from actors.messages import Completion
from actors.runtime import clock
from actors.runtime.errors import CallboardError
from engine.serve.callers.config import BudgetConfig
from engine.serve.callers.keys import CallerKey
from engine.serve.state.guard import GuardedStore
from engine.serve.state.store import Charge, Correction, StoreUnavailable

logger = logging.getLogger("callboard.callers")

#: What admission charges of each unit before the answer's cost is known.
ADMISSION = {"requests": 1.0, "tokens": 1.0, "dollars": 1e-6}
#: Settlements waiting to be written to the shared store; past it one is dropped, counted.
OUTBOX_SIZE = 1024


class OverBudget(CallboardError):
    """The key's budget is spent for now: 429 with a Retry-After, in OpenAI's shape."""

    code = "rate_limit_exceeded"
    status = 429

    def __init__(self, key_id: str, limit: str, retry_after: float) -> None:
        when = (
            "never (the budget is smaller than one request)"
            if math.isinf(retry_after)
            else (f"in {retry_after:.1f} s")
        )
        super().__init__(f"API key {key_id!r} is over its budget {limit}; it has room again {when}")
        self.key_id = key_id
        self.limit = limit
        self.retry_after = retry_after if math.isfinite(retry_after) else None


@functools.lru_cache(maxsize=1024)
def budget_limits(budget: BudgetConfig) -> tuple[LimitSpec, ...]:
    """A budget's limits, built once per distinct budget (not on every request)."""
    return budget.limits()


@attrs.frozen
class Ticket:
    """One admitted request of ``key``, admitted at ``at`` (the engine's clock)."""

    key: CallerKey
    at: float


@attrs.frozen
class BudgetUse:
    """One limit of a key's budget as the status page shows it: how much of it is spent."""

    name: str
    unit: str
    limit: float
    #: What it has counted in its window, or the bucket's level below full.
    used: float


@attrs.define
class _Local:
    specs: tuple[LimitSpec, ...]
    limiters: list[Limiter]


class CallerBudgets:
    """Admits and charges each key's requests; run :meth:`run` to write shared charges."""

    def __init__(self, guard: GuardedStore | None = None) -> None:
        self.guard = guard
        self._local: dict[str, _Local] = {}
        self._outbox_send, self._outbox = trio.open_memory_channel[list[Correction]](OUTBOX_SIZE)
        self.dropped = 0

    def _limiters(self, key: CallerKey, specs: tuple[LimitSpec, ...]) -> list[Limiter]:
        local = self._local.get(key.id)
        if local is None or local.specs != specs:  # new, or its budget changed in the file
            local = self._local[key.id] = _Local(specs, [spec.build() for spec in specs])
        return local.limiters

    def use(self, key: CallerKey, now: float) -> list[BudgetUse]:
        """What ``key`` has spent of each limit of its budget, as this router counts it."""
        specs = budget_limits(key.budget)
        return [
            BudgetUse(spec.name, spec.unit, spec.limit, round(spec.limit - limiter.room(now), 6))
            for spec, limiter in zip(specs, self._limiters(key, specs), strict=True)
        ]

    def _charges(self, key: CallerKey, specs: tuple[LimitSpec, ...], amounts: dict[str, float]):
        return [Charge(f"caller:{key.id}/{s.name}", s, amounts[s.unit]) for s in specs]

    async def admit(self, key: CallerKey) -> Ticket:
        """Charge one request of ``key``'s budget, or raise :class:`OverBudget`."""
        specs = budget_limits(key.budget)
        if not specs:
            return Ticket(key, clock.now())
        now = clock.now()
        limiters = self._limiters(key, specs)
        worst, binding = 0.0, ""
        for spec, limiter in zip(specs, limiters, strict=True):
            wait = limiter.wait_for(now, ADMISSION[spec.unit])
            if wait > worst:
                worst, binding = wait, spec.name
        if worst > 0:
            raise OverBudget(key.id, binding, worst)
        if self.guard is not None:
            try:
                taken = await self.guard.call(
                    "take", self.guard.store.take, self._charges(key, specs, ADMISSION)
                )
            except StoreUnavailable:
                pass  # the local limiters are what holds while the store is down
            else:
                if taken.wait > 0:
                    raise OverBudget(key.id, taken.binding.rpartition("/")[2], taken.wait)
        now = clock.now()
        for spec, limiter in zip(specs, limiters, strict=True):
            limiter.take(now, ADMISSION[spec.unit])
        return Ticket(key, now)

    def settle(self, ticket: Ticket, completion: Completion) -> None:
        """Add to the admission's charge what the answer used: its tokens and its cost.

        A day's window that has closed since the admission keeps what it counted."""
        key = ticket.key
        specs = budget_limits(key.budget)
        if not specs:
            return
        used = {
            "requests": 0.0,
            "tokens": completion.prompt_tokens + completion.completion_tokens - ADMISSION["tokens"],
            "dollars": completion.cost - ADMISSION["dollars"],
        }
        now = clock.now()
        for spec, limiter in zip(specs, self._limiters(key, specs), strict=True):
            if used[spec.unit]:
                limiter.adjust(ticket.at, now, used[spec.unit])
        if self.guard is not None:
            corrections = [
                Correction(c.key, c.spec, c.amount, now - ticket.at)
                for c in self._charges(key, specs, used)
                if c.amount
            ]
            if corrections:
                try:
                    self._outbox_send.send_nowait(corrections)
                except trio.WouldBlock:
                    self.dropped += 1
                    logger.warning("callers: shared charge of key %s dropped (outbox full)", key.id)

    async def run(self) -> None:
        """Write settled charges to the shared store (no request waits for it)."""
        if self.guard is None:
            return
        async for corrections in self._outbox:
            with contextlib.suppress(StoreUnavailable):
                await self.guard.call("adjust", self.guard.store.adjust, corrections)
