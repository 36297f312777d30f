"""What several routers share, behind one interface, and its in-memory implementation.

A :class:`StateStore` holds what must be one truth across routers: quarantines,
rate-limit buckets and quota windows (charged atomically, all of a request's
limits at once), interview sessions, the response cache (as a log that every
router replays into its own local cache) and per-router health figures.
:class:`MemoryStore` keeps all of it in this process: several routers embedded
in one process can share it, and it is the peer the Redis store is measured
against. Durations cross the interface as seconds remaining, never as
timestamps, so routers need not agree on a clock.
"""

from __future__ import annotations

import collections
from collections.abc import Sequence
from typing import Any, Protocol

import attrs

from actors.limits import FixedWindow, LimitSpec
from actors.runtime import clock


class StoreUnavailable(Exception):
    """The store failed, was too slow, or is being left alone after a failure."""


@attrs.frozen
class Charge:
    """``amount`` units of one limit of one account (``key`` names account and limit)."""

    key: str
    spec: LimitSpec
    amount: float


@attrs.frozen
class Correction:
    """Add ``amount`` units (negative: give back) to a charge made ``elapsed`` seconds
    ago: a limit with ``adjust_output`` swaps the output estimate it was charged for
    what was generated. A window that has closed since keeps what it counted."""

    key: str
    spec: LimitSpec
    amount: float
    elapsed: float


#: What keeps a provider out: its breaker opened, or it answered 429 (its Retry-After).
HOLD_KINDS = ("breaker", "cooling")


@attrs.frozen
class Taken:
    """What :meth:`StateStore.take` did: charged (``wait`` 0) or not, and where each limit is.

    ``used[i]``: units of charge i's limit used after the call (all routers together);
    ``resets_in[i]``: seconds until a window limit starts afresh (0 for a bucket).
    """

    wait: float
    binding: str
    used: tuple[float, ...]
    resets_in: tuple[float, ...]


@attrs.frozen
class Quarantine:
    """A provider held off by router ``origin`` for ``remaining`` more seconds."""

    provider: str
    remaining: float
    ejections: int
    reason: str
    origin: str
    stamp: str  # unique per opening, so a router adopts each one once
    kind: str = "breaker"  # one of HOLD_KINDS; one of each kind per provider at a time


@attrs.frozen
class SessionRecord:
    session_id: str
    system_prompt: str
    history: tuple[tuple[str, str], ...]  # (role, content)
    providers_used: tuple[str, ...]
    version: int  # turns completed; the highest version is the truth


@attrs.frozen
class CacheEntry:
    key: str
    value: str  # a JSON completion
    remaining: float
    origin: str


class StateStore(Protocol):
    """What a shared-state backend offers; every method may raise on failure."""

    name: str

    async def ping(self) -> None: ...

    async def take(self, charges: Sequence[Charge]) -> Taken:
        """Charge every limit if all have room (wait 0); else say how long to wait and
        which charge binds, and charge nothing. Atomic across routers."""
        ...

    async def adjust(self, corrections: Sequence[Correction]) -> None:
        """Apply each correction to its limit (all routers see it)."""
        ...

    async def put_quarantine(self, quarantine: Quarantine) -> None: ...

    async def quarantines(self, providers: Sequence[str]) -> list[Quarantine]: ...

    async def save_session(self, record: SessionRecord, ttl: float) -> None: ...

    async def load_session(self, session_id: str) -> SessionRecord | None: ...

    async def lock_session(self, session_id: str, owner: str, ttl: float) -> bool:
        """Hold ``session_id`` for one turn; False if another router holds it."""
        ...

    async def unlock_session(self, session_id: str, owner: str) -> None: ...

    async def put_cache(self, entry: CacheEntry, max_entries: int) -> None: ...

    async def cache_since(self, cursor: str, count: int) -> tuple[list[CacheEntry], str]:
        """Entries added after ``cursor`` ("" for the oldest kept), and the next cursor."""
        ...

    async def put_health(self, provider: str, origin: str, figures: dict[str, Any], ttl: float): ...

    async def health(self, providers: Sequence[str]) -> dict[str, dict[str, dict[str, Any]]]:
        """Per provider, each live router's latest figures."""
        ...


class _Expiring:
    """A dict whose entries expire on the engine's clock."""

    def __init__(self) -> None:
        self._items: dict[str, tuple[float, Any]] = {}

    def get(self, key: str) -> tuple[float, Any] | None:
        """(seconds left, value), or None if absent or expired."""
        item = self._items.get(key)
        if item is None:
            return None
        left = item[0] - clock.now()
        if left <= 0:
            del self._items[key]
            return None
        return left, item[1]

    def set(self, key: str, value: Any, ttl: float) -> None:
        self._items[key] = (clock.now() + ttl, value)

    def pop(self, key: str) -> None:
        self._items.pop(key, None)

    def keys(self, prefix: str) -> list[str]:
        return [key for key in self._items if key.startswith(prefix)]


class MemoryStore:
    """The state store in this process: one truth for routers that share the object."""

    name = "memory"

    def __init__(self) -> None:
        self._limits: dict[str, Any] = {}
        self._values = _Expiring()
        self._cache: collections.deque[tuple[int, float, CacheEntry]] = collections.deque()
        self._cache_seq = 0

    async def ping(self) -> None:
        return None

    async def take(self, charges: Sequence[Charge]) -> Taken:
        # The same limiters a provider enforces locally, keyed by account and limit.
        now = clock.now()
        limiters = []
        worst, binding = 0.0, ""
        for charge in charges:
            limiter = self._limits.get(charge.key)
            if limiter is None:
                limiter = self._limits[charge.key] = charge.spec.build()
            limiters.append(limiter)
            wait = limiter.wait_for(now, charge.amount)
            if wait > worst:
                worst, binding = wait, charge.key
        if worst <= 0:
            binding = ""
            for limiter, charge in zip(limiters, charges, strict=True):
                limiter.take(now, charge.amount)
        used, resets = [], []
        for limiter in limiters:
            if isinstance(limiter, FixedWindow):
                used.append(limiter.used(now))
                resets.append(limiter.resets_at(now) - now)
            else:
                used.append(limiter.capacity - limiter.level(now))
                resets.append(0.0)
        return Taken(max(worst, 0.0), binding, tuple(used), tuple(resets))

    async def adjust(self, corrections: Sequence[Correction]) -> None:
        now = clock.now()
        for correction in corrections:
            limiter = self._limits.get(correction.key)
            if limiter is not None:
                limiter.adjust(now - correction.elapsed, now, correction.amount)

    async def put_quarantine(self, quarantine: Quarantine) -> None:
        key = f"{quarantine.kind}:{quarantine.provider}"
        self._values.set(key, quarantine, quarantine.remaining)

    async def quarantines(self, providers: Sequence[str]) -> list[Quarantine]:
        found = []
        for kind in HOLD_KINDS:
            for provider in providers:
                item = self._values.get(f"{kind}:{provider}")
                if item is not None:
                    found.append(attrs.evolve(item[1], remaining=item[0]))
        return found

    async def save_session(self, record: SessionRecord, ttl: float) -> None:
        self._values.set(f"s:{record.session_id}", record, ttl)

    async def load_session(self, session_id: str) -> SessionRecord | None:
        item = self._values.get(f"s:{session_id}")
        return None if item is None else item[1]

    async def lock_session(self, session_id: str, owner: str, ttl: float) -> bool:
        held = self._values.get(f"lock:{session_id}")
        if held is not None and held[1] != owner:
            return False
        self._values.set(f"lock:{session_id}", owner, ttl)
        return True

    async def unlock_session(self, session_id: str, owner: str) -> None:
        held = self._values.get(f"lock:{session_id}")
        if held is not None and held[1] == owner:
            self._values.pop(f"lock:{session_id}")

    async def put_cache(self, entry: CacheEntry, max_entries: int) -> None:
        self._cache_seq += 1
        self._cache.append((self._cache_seq, clock.now() + entry.remaining, entry))
        while len(self._cache) > max_entries:
            self._cache.popleft()

    async def cache_since(self, cursor: str, count: int) -> tuple[list[CacheEntry], str]:
        after = int(cursor) if cursor else 0
        now = clock.now()
        entries, last = [], after
        for seq, expires, entry in self._cache:
            if seq <= after or expires <= now:
                continue
            entries.append(attrs.evolve(entry, remaining=expires - now))
            last = seq
            if len(entries) >= count:
                break
        return entries, str(last)

    async def put_health(self, provider: str, origin: str, figures: dict[str, Any], ttl: float):
        self._values.set(f"h:{provider}:{origin}", (origin, figures), ttl)

    async def health(self, providers: Sequence[str]) -> dict[str, dict[str, dict[str, Any]]]:
        result: dict[str, dict[str, dict[str, Any]]] = {p: {} for p in providers}
        for key in self._values.keys("h:"):
            item = self._values.get(key)
            provider = key[2:].rpartition(":")[0]
            if item is not None and provider in result:
                origin, figures = item[1]
                result[provider][origin] = figures
        return result
