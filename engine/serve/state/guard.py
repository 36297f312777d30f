"""A circuit around the state store: no request ever waits long for it, or fails because of it.

Every call is bounded by ``state.timeout``. The first failure or timeout marks
the store down: for ``state.retry_every`` seconds callers are refused at once
(:class:`StoreUnavailable`) and serve on local state; then the sync loop's next
call probes it, and the first success marks it up again and runs the
``on_recovered`` hook (resynchronisation). Each change is logged once, counted,
and shown in ``/health`` and ``/metrics``.
"""

from __future__ import annotations

import logging
import math
from collections import Counter
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

import trio

from actors.runtime import clock
from engine.serve.state.store import StateStore, StoreUnavailable

logger = logging.getLogger("callboard.state")

T = TypeVar("T")


class GuardedStore:
    """A :class:`StateStore` behind timeouts and a circuit; read its status for /health."""

    def __init__(
        self,
        store: StateStore,
        *,
        timeout: float,
        retry_every: float,
        label: str | None = None,
    ) -> None:
        self.store = store
        self.timeout = timeout
        self.retry_every = retry_every
        self.label = label or store.name
        self._errors: tuple[type[BaseException], ...] = getattr(store, "errors", ())
        self.up = True
        self.down_since = -math.inf
        self._retry_at = -math.inf
        self.last_error = ""
        self.calls: Counter[str] = Counter()
        self.failures: Counter[str] = Counter()
        #: Calls refused while the store was down: each is a fallback to local state.
        self.skipped: Counter[str] = Counter()
        self.outages = 0
        self.on_recovered: Callable[[], None] | None = None

    async def call(self, op: str, fn: Callable[..., Awaitable[T]], *args: Any) -> T:
        """``await fn(*args)`` within the timeout; StoreUnavailable if it fails or is down."""
        now = clock.now()
        if not self.up and now < self._retry_at:
            self.skipped[op] += 1
            raise StoreUnavailable(f"{self.label} is down: {self.last_error}")
        self.calls[op] += 1
        try:
            with trio.move_on_after(self.timeout) as scope:
                result = await fn(*args)
        except self._errors as exc:
            self._failed(op, f"{type(exc).__name__}: {exc}")
            raise StoreUnavailable(f"{self.label} {op} failed: {exc}") from None
        if scope.cancelled_caught:
            self._failed(op, f"no answer within {self.timeout * 1000:.0f} ms")
            raise StoreUnavailable(f"{self.label} {op} timed out")
        if not self.up:
            self._recovered()
        return result

    def _failed(self, op: str, error: str) -> None:
        now = clock.now()
        self.failures[op] += 1
        self.last_error = f"{op}: {error}"
        self._retry_at = now + self.retry_every
        if self.up:
            self.up = False
            self.down_since = now
            self.outages += 1
            logger.warning(
                "state store=%s status=down error=%r: serving on local state, retry every %.1f s",
                self.label,
                self.last_error,
                self.retry_every,
            )

    def _recovered(self) -> None:
        self.up = True
        logger.warning(
            "state store=%s status=up after %.1f s down: resynchronising",
            self.label,
            clock.now() - self.down_since,
        )
        if self.on_recovered is not None:
            self.on_recovered()

    def status(self) -> dict[str, Any]:
        """What /health shows about the store."""
        body: dict[str, Any] = {"store": self.label, "status": "up" if self.up else "down"}
        if not self.up:
            body["down_for_s"] = round(clock.now() - self.down_since, 3)
            body["last_error"] = self.last_error
        body["outages"] = self.outages
        body["fallbacks"] = sum(self.skipped.values()) + sum(self.failures.values())
        # The calls that waited for the store (failed, or no answer within state.timeout);
        # the other fallbacks did not wait at all: the circuit was open.
        body["waited"] = sum(self.failures.values())
        return body
