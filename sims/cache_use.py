"""What the cache answered per turn kind, and why each of its misses missed.

The interviews note every request they send (a :class:`CacheLedger` row: turn kind,
cache key, start, end, how it ended); everything here is computed from those rows
alone, never from the sampler or a report setting. A request looked the cache up
unless validation rejected it first. Each lookup that missed gets one cause, tested
in this order:

- ``first``: no request with the same key had looked the cache up before it;
- ``answered_earlier``: an identical request had been answered by a provider before it
  started, yet the entry was gone (expired, or evicted by the cache's size bound);
- ``after_failure``: an identical request had ended before it started without an answer
  (an error, or cancelled), so it never filled the cache: a miss due to a failure;
- ``in_flight``: every identical earlier request was still waiting for its answer (the
  cache does not merge identical requests in flight).

"Before" is strictly earlier on the clock: an answer written at the very instant a
request looks the cache up may not be in it yet, so that request counts as ``in_flight``.
"""

from __future__ import annotations

import hashlib
from array import array
from typing import Any

import attrs
import numpy as np

#: How a request ended, as the ledger stores it.
ANSWERED, HIT, FAILED, REJECTED = 0, 1, 2, 3
#: Why a lookup missed, in the order the causes are tested.
CAUSES = ("first", "answered_earlier", "after_failure", "in_flight")
_NO_CAUSE = -1


def key_id(key: str) -> int:
    """A cache key as 64 bits: 8 bytes a row instead of a string kept for the whole run."""
    return int.from_bytes(hashlib.blake2b(key.encode(), digest_size=8).digest(), "little")


class CacheLedger:
    """One row per request an interview sent, in the order they started."""

    __slots__ = ("_kind_index", "end", "ending", "key", "kind", "kinds", "start")

    def __init__(self) -> None:
        self.kinds: list[str] = []
        self._kind_index: dict[str, int] = {}
        self.kind = array("i")
        self.key = array("Q")
        self.start = array("d")
        self.end = array("d")
        self.ending = array("b")

    def __len__(self) -> int:
        return len(self.start)

    def begin(self, kind: str, key: str, now: float) -> int:
        """Note a request about to be sent; returns its row for :meth:`finish`."""
        index = self._kind_index.get(kind)
        if index is None:
            index = self._kind_index[kind] = len(self.kinds)
            self.kinds.append(kind)
        self.kind.append(index)
        self.key.append(key_id(key))
        self.start.append(now)
        self.end.append(now)
        self.ending.append(FAILED)  # until it says otherwise
        return len(self.start) - 1

    def finish(self, row: int, now: float, ending: int) -> None:
        self.end[row] = now
        self.ending[row] = ending

    def arrays(self) -> dict[str, np.ndarray]:
        return {
            "kind": np.array(self.kind, dtype=np.int32),
            "key": np.array(self.key, dtype=np.uint64),
            "start": np.array(self.start, dtype=float),
            "end": np.array(self.end, dtype=float),
            "ending": np.array(self.ending, dtype=np.int8),
        }


def _earlier_min(
    values: np.ndarray, group: np.ndarray, opens: np.ndarray, never: int
) -> np.ndarray:
    """Per row, the least value among the rows before it in its group (``never`` if none).

    Rows are sorted by group; ``values`` are ranks in ``[0, never]``. Lifting each group
    above every later one lets a single running minimum stay inside its group.
    """
    lift = (group[-1] - group).astype(np.int64) * (never + 1)
    running = np.minimum.accumulate(values + lift) - lift
    earlier = np.empty_like(running)
    earlier[0] = never
    earlier[1:] = running[:-1]
    earlier[opens] = never
    return earlier


def miss_causes(
    key: np.ndarray, start: np.ndarray, end: np.ndarray, ending: np.ndarray
) -> np.ndarray:
    """Per row (in start order): the index in :data:`CAUSES` of its miss, or -1 (a hit,
    or rejected before the cache)."""
    causes = np.full(len(key), _NO_CAUSE, dtype=np.int8)
    lookups = np.flatnonzero(ending != REJECTED)
    if len(lookups) == 0:
        return causes
    order = lookups[np.argsort(key[lookups], kind="stable")]  # by key, then start order
    sorted_key = key[order]
    opens = np.ones(len(order), dtype=bool)
    opens[1:] = sorted_key[1:] != sorted_key[:-1]
    group = np.cumsum(opens) - 1
    # Times as ranks: exact comparisons, and "never" is one past the last time.
    times = np.unique(np.concatenate((start[order], end[order])))
    never = len(times)
    began = np.searchsorted(times, start[order])
    ended = np.searchsorted(times, end[order])
    how = ending[order]
    answered = _earlier_min(np.where(how == ANSWERED, ended, never), group, opens, never) < began
    failed = _earlier_min(np.where(how == FAILED, ended, never), group, opens, never) < began
    cause = np.select([opens, answered, failed], [0, 1, 2], default=3)
    causes[order] = np.where(how == HIT, _NO_CAUSE, cause)
    return causes


@attrs.frozen
class CacheCounts:
    """Lookups, hits and misses by cause, of some of a run's requests."""

    #: Requests sent.
    requests: int
    #: Requests that looked the cache up (all but those validation rejected first).
    lookups: int
    #: Lookups the cache answered.
    hits: int
    #: ``hits`` over ``lookups``.
    hit_rate: float
    #: Lookups that missed; each has one cause below.
    misses: int
    #: Misses with no earlier lookup of the same key.
    first: int
    #: Misses after an identical request had been answered, its entry gone.
    answered_earlier: int
    #: Misses after an identical request had ended without an answer.
    after_failure: int
    #: Misses while every identical earlier request was still waiting for its answer.
    in_flight: int


@attrs.frozen
class KindCacheCounts(CacheCounts):
    """The cache counts of one turn kind."""

    #: The turn kind.
    kind: str


@attrs.frozen
class CacheUse:
    """What the cache answered; ``kinds`` and ``all`` are absent when it was off."""

    #: Whether the run had a cache.
    enabled: bool
    #: Per turn kind, in the order kinds first appeared.
    kinds: list[KindCacheCounts] | None = None
    #: Over all requests.
    all: CacheCounts | None = None


def _counts(kind: np.ndarray, ending: np.ndarray, causes: np.ndarray) -> dict[str, Any]:
    lookups = int(np.count_nonzero(ending != REJECTED))
    hits = int(np.count_nonzero(ending == HIT))
    by_cause = {cause: int(np.count_nonzero(causes == i)) for i, cause in enumerate(CAUSES)}
    return {
        "requests": len(kind),
        "lookups": lookups,
        "hits": hits,
        "hit_rate": hits / lookups if lookups else 0.0,
        "misses": lookups - hits,
        **by_cause,
    }


def cache_use(ledger: CacheLedger) -> CacheUse:
    """Lookups, hits and misses by cause: per turn kind (in the order kinds first
    appeared) and over all requests."""
    columns = ledger.arrays()
    kind, ending = columns["kind"], columns["ending"]
    causes = miss_causes(columns["key"], columns["start"], columns["end"], ending)
    by_kind = []
    for index, name in enumerate(ledger.kinds):
        mine = kind == index
        by_kind.append(
            KindCacheCounts(kind=name, **_counts(kind[mine], ending[mine], causes[mine]))
        )
    return CacheUse(enabled=True, kinds=by_kind, all=CacheCounts(**_counts(kind, ending, causes)))
