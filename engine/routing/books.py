"""The router's books: where every request that entered it is at this moment.

A request that entered the router is in exactly one state: queued (waiting in
the router's line for a provider to free up), in flight (at a provider, or
backing off between attempts), answered, failed with a named error, or
cancelled (its caller went away, or the server stopped it). The router keeps its
running :class:`RouterCounters`; :class:`Books` is a snapshot of where requests are,
read from those counters without a round trip; ``balanced()`` is the invariant that
nothing was lost or counted twice.
"""

from __future__ import annotations

from collections import Counter
from typing import Any, Protocol

import attrs


@attrs.define
class RouterCounters:
    """The router's running counts, changed only by the router: how many requests it
    received and how each ended (what :class:`Books` is read from), and its activity."""

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


class Counted(Protocol):
    """What the books are read from: a router's counters and its line."""

    @property
    def stats(self) -> RouterCounters: ...

    @property
    def waiting(self) -> int: ...


@attrs.frozen
class Books:
    received: int
    queued: int
    in_flight: int
    answered: int
    cancelled: int
    failed: dict[str, int]

    @classmethod
    def of(cls, router: Counted) -> Books:
        stats = router.stats
        # Requests waiting in line are inside the router's in-flight window: split them out.
        queued = min(router.waiting, stats.in_flight)
        return cls(
            received=stats.received,
            queued=queued,
            in_flight=stats.in_flight - queued,
            answered=stats.answered,
            cancelled=stats.cancelled,
            failed={code: n for code, n in sorted(stats.failed.items()) if n},
        )

    @property
    def settled(self) -> int:
        """Requests that reached their one outcome."""
        return self.answered + self.cancelled + sum(self.failed.values())

    def balanced(self) -> bool:
        return (
            min(self.queued, self.in_flight, self.answered, self.cancelled) >= 0
            and self.received == self.queued + self.in_flight + self.settled
        )

    def as_json(self) -> dict[str, Any]:
        return {
            "received": self.received,
            "queued": self.queued,
            "in_flight": self.in_flight,
            "answered": self.answered,
            "failed": dict(self.failed),
            "cancelled": self.cancelled,
            "balanced": self.balanced(),
        }
