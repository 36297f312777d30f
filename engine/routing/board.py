"""The fleet kept by readiness, so choosing an account does not ask every account.

Each account is *open* (it may take a request now), *resting* until a moment (a limit's
refill or window, a cool-down, a quarantine, a cold start) or *held* until one of its
calls ends (every slot busy, its half-open trial out). Whatever may change an account (a
call starting or ending, a command, a limit report, a breaker moving, a health statistic)
marks it *dirty*; a dirty account is read again before the next choice, and a heap of
moments (a rest's end, a window's reset, a latency measurement growing too old) marks
the accounts whose figures move with time alone. Keeping the board costs what changed
since the last choice, not the size of the fleet.

Beside readiness the board keeps, one array entry per account, every figure a policy
ranks on (health, latency, load, quota share left, priority) and what a request's
filters read (model, tier, context window, typical service time). A policy
(:mod:`engine.routing.policies`) ranks the open accounts with a few numpy operations
over these arrays (about a microsecond each up to thousands of accounts, where a Python
pass costs microseconds per account) and checks exactly only the accounts it picks.

The board also keeps when each resting account's rest ends, so a request that no account
can take now learns when one could from the few whose end could be the soonest
(:meth:`by_rest_end`), and a call's end wakes the waiting line only when its account
could serve a waiting request (:meth:`frees`).
"""

from __future__ import annotations

import heapq
import math
from collections.abc import Callable, Iterator, Sequence
from typing import TYPE_CHECKING

import numpy as np

from actors.breaker import State
from actors.limits import FixedWindow, TokenBucket

if TYPE_CHECKING:
    from actors.health import HealthMonitor
    from actors.provider import Provider

_INF = math.inf
_HALF_OPEN = State.HALF_OPEN

#: Moments are kept this much early (relative): a look that comes early finds the
#: account unchanged and files it again; one that came late would miss a ready account.
_EARLY = 1e-12


def slack(moment: float) -> float:
    """How far a moment kept on the board may be off the one its account would say, by
    rounding: moments closer than this are one moment to whoever reads the board."""
    return 1e-12 * (1.0 + abs(moment))


#: Whether the account at an index may take the request at hand, checked exactly.
Accept = Callable[[int], bool]

Mask = np.ndarray


class Board:
    """The fleet's accounts by readiness, and the figures the policies rank them on.

    ``latency_ttl`` is the policies' own: a latency measured longer ago is unknown.
    """

    def __init__(
        self, providers: Sequence[Provider], health: HealthMonitor, latency_ttl: float
    ) -> None:
        self.providers = list(providers)
        self.health = health
        self.ttl = latency_ttl
        self.index = {p.spec.name: i for i, p in enumerate(self.providers)}
        n = len(self.providers)
        specs = [p.spec for p in self.providers]
        #: Accounts that may take a request now (a request's own size may still not fit).
        self.open = np.zeros(n, dtype=bool)
        #: 1 - error EWMA.
        self.health_score = np.zeros(n)
        #: The latency EWMA, NaN when unknown (none measured, or measured too long ago);
        #: whether it is unknown; and the latency where known, else inf.
        self.latency = np.full(n, math.nan)
        self.unknown = np.ones(n, dtype=bool)
        self.known_latency = np.full(n, _INF)
        #: How many accounts' latency is unknown, and how many is 0 (an instant backend):
        #: with none, a policy skips the operations that only they need.
        self.unknowns = n
        self.zero_latencies = 0
        # The same two facts per account as Python values (numpy's item reads are slow).
        self._unknown = [True] * n
        self._zero = [False] * n
        #: Whether any account has a configured limit (else every quota share is 1).
        self.limited = any(p.spec.limits for p in self.providers)
        #: 1 + the busy share of the account's slots.
        self.load1 = np.ones(n)
        #: The least share left of the account's fixed windows (1 with none).
        self.window_share = np.ones(n)
        #: Typical service time (what an attempt needs left before the deadline), and at
        #: least the longest of them (a request with more time left needs no check).
        #: Kept for every account, open or not: the deadline also bounds which resting
        #: account a waiting request counts on.
        self.typical = np.zeros(n)
        self.slowest = 0.0
        self.priority = np.array([float(s.priority) for s in specs])
        self.context = np.array([s.context_window for s in specs])
        self.smallest_context = min((s.context_window for s in specs), default=0)
        self.models = np.array([s.model for s in specs], dtype=object)
        self.strong = np.array([s.tier == "strong" for s in specs])
        self.light = np.array([s.tier == "light" for s in specs])
        #: When each resting account could take the smallest request (inf for the
        #: others): no request's wait there is shorter, so a request that must wait asks
        #: only the accounts whose moment could be its soonest (:meth:`by_rest_end`).
        self.rest_until = np.full(n, _INF)
        #: Accounts held until a call of theirs ends.
        self.held = np.zeros(n, dtype=bool)
        #: Accounts with a limit of tokens or characters: their wait depends on the
        #: request's size, so a held one may instead rest for a particular request.
        self.sized = np.zeros(n, dtype=bool)
        self._capable: dict[frozenset[str], Mask] = {}
        self._of_model: dict[str, Mask] = {}
        # The token buckets, one column per bucket of an account (padded with a full
        # bucket of no refill): each row's level, as of when, rate and capacity.
        width = max((len(self._buckets(p)) for p in self.providers), default=0)
        self.bucket_level = np.ones((n, width))
        self.bucket_since = np.zeros((n, width))
        self.bucket_rate = np.zeros((n, width))
        self.bucket_capacity = np.ones((n, width))
        #: Accounts whose breaker is half-open (the router gives the earliest its trial,
        #: whatever the policy).
        self.half_open: set[int] = set()
        self._due = [_INF] * n
        self._moments: list[tuple[float, int]] = []
        self._dirty: list[int] = list(range(n))
        self._is_dirty = [True] * n

    @staticmethod
    def _buckets(provider: Provider) -> list[TokenBucket]:
        return [lim for lim in provider.admission.limiters if isinstance(lim, TokenBucket)]

    # --- what a request's filters read -------------------------------------------
    def of_model(self, model: str) -> Mask:
        mask = self._of_model.get(model)
        if mask is None:
            mask = self._of_model[model] = self.models == model
        return mask

    def capable(self, needs: frozenset[str]) -> Mask:
        mask = self._capable.get(needs)
        if mask is None:
            mask = self._capable[needs] = np.array(
                [needs <= p.spec.capabilities for p in self.providers]
            )
        return mask

    def by_rest_end(self, mask: Mask) -> Iterator[tuple[float, int]]:
        """The resting accounts of ``mask``, soonest rest end first, as (moment, index);
        a caller stops at the first moment past what it looks for, so it reads a few."""
        moments = np.where(mask, self.rest_until, _INF)
        while True:
            i = int(moments.argmin())
            moment = float(moments[i])
            if moment == _INF:
                return
            moments[i] = _INF
            yield moment, i

    def quota(self, now: float) -> np.ndarray:
        """Every account's quota share left at ``now`` (``Provider.quota_left``): the
        least of its windows' shares and its buckets' levels over their capacities."""
        share = self.window_share
        if self.bucket_level.shape[1]:
            since = self.bucket_since
            level = np.where(
                now > since,
                np.minimum(
                    self.bucket_capacity, self.bucket_level + (now - since) * self.bucket_rate
                ),
                self.bucket_level,
            )
            buckets = np.maximum(0.0, level) / self.bucket_capacity
            share = np.minimum(share, buckets.min(axis=1))
        return share

    # --- keeping it -------------------------------------------------------------
    def changed(self, name: str) -> None:
        """Account ``name`` may have changed: read it again before the next choice."""
        i = self.index.get(name)
        if i is not None and not self._is_dirty[i]:
            self._is_dirty[i] = True
            self._dirty.append(i)

    def frees(self, name: str, now: float, deadline: float) -> bool:
        """Whether account ``name``, read again at ``now`` (a call of its ended), may take
        a request now, or rests until a moment from which it could still answer before
        ``deadline`` (the latest of the waiting requests'): else the call's end frees
        nothing a waiting request can use (the account rests past every deadline, or is
        still busy)."""
        self.changed(name)
        self.update(now)
        i = self.index[name]
        moment = float(self.rest_until[i]) + float(self.typical[i])
        return bool(self.open[i]) or moment < deadline + slack(deadline)

    def update(self, now: float) -> None:
        """Read again every account that changed, or whose moment came, by ``now``."""
        moments, due = self._moments, self._due
        while moments and moments[0][0] <= now:
            at, i = heapq.heappop(moments)
            if at == due[i]:
                due[i] = _INF
                if not self._is_dirty[i]:
                    self._is_dirty[i] = True
                    self._dirty.append(i)
        if self._dirty:
            dirty, self._dirty = self._dirty, []
            for i in dirty:
                self._is_dirty[i] = False
                self._read(i, now)

    def _at(self, i: int, moment: float, now: float) -> None:
        """Read account ``i`` again at ``moment`` (a little early, and after ``now``)."""
        moment -= abs(moment) * _EARLY
        if moment <= now:
            moment = math.nextafter(now, _INF)
        if moment < self._due[i]:
            self._due[i] = moment
            heapq.heappush(self._moments, (moment, i))

    def _read(self, i: int, now: float) -> None:
        """Read account ``i`` afresh."""
        provider = self.providers[i]
        if provider.breaker.state is _HALF_OPEN:
            self.half_open.add(i)
        else:
            self.half_open.discard(i)
        typical = self.typical[i] = provider.typical_service
        if typical > self.slowest:
            self.slowest = typical
        self.sized[i] = any(unit for _, unit in provider.admission.checks)
        wait = provider.ready_in(now)
        if wait != 0:
            self.open[i] = False
            self.held[i] = wait < 0
            self.rest_until[i] = now + wait if wait > 0 else _INF
            if 0 < wait < _INF:
                self._at(i, now + wait, now)
            return
        self.open[i] = True
        self.held[i] = False
        self.rest_until[i] = _INF
        stats = self.health.providers[provider.spec.name]
        latency = stats.latency_at(now, self.ttl)
        unknown = latency != latency
        if not unknown:
            self._at(i, stats.measured_at + self.ttl, now)
        if unknown is not self._unknown[i]:
            self.unknowns += 1 if unknown else -1
            self._unknown[i] = self.unknown[i] = unknown
        zero = latency == 0.0
        if zero is not self._zero[i]:
            self.zero_latencies += 1 if zero else -1
            self._zero[i] = zero
        self.known_latency[i] = _INF if unknown else latency
        self.latency[i] = latency
        self.health_score[i] = 1.0 - stats.error_ewma
        self.load1[i] = 1.0 + provider.load()
        if not self.limited:
            return
        share = 1.0
        column = 0
        for limiter in provider.admission.limiters:
            if isinstance(limiter, FixedWindow):
                # Exact until the window resets.
                window = limiter.remaining_fraction(now)
                if window < share:
                    share = window
                self._at(i, limiter.resets_at(now), now)
            else:
                level, since = limiter.settled()
                self.bucket_level[i, column] = level
                self.bucket_since[i, column] = since
                self.bucket_rate[i, column] = limiter.rate
                self.bucket_capacity[i, column] = limiter.capacity
                column += 1
        self.window_share[i] = share
