"""The router's books: where every request that entered it is at this moment.

A request that entered the router is in exactly one state: queued (waiting in
the router's line for a provider to free up), in flight (at a provider, or
backing off between attempts), answered, failed with a named error, or
cancelled (its caller went away, or the server stopped it). :class:`Books` is a
snapshot of those counts, read from the router's own counters without a round
trip; ``balanced()`` is the invariant that nothing was lost or counted twice.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import attrs

if TYPE_CHECKING:
    from engine.routing.router import Router


@attrs.frozen
class Books:
    received: int
    queued: int
    in_flight: int
    answered: int
    cancelled: int
    failed: dict[str, int]

    @classmethod
    def of(cls, router: Router) -> Books:
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
