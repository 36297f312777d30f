"""Fault schedules: what goes wrong with a provider, and when.

A schedule is a list of windows in simulation time. The virtual backend asks
it, on every call, which faults are active now; faults are data, so the same
schedule can drive a simulation or a live mock provider.
"""

from __future__ import annotations

import math
from collections.abc import Iterable

import attrs

from actors.failures import FaultKind
from actors.runtime.errors import InvalidSetting

_KINDS = frozenset(FaultKind)


def _check(index: int, field: str, ok: bool, value: object, allowed: str) -> None:
    if not ok:
        raise InvalidSetting(f"faults[{index}].{field}", value, allowed)


@attrs.frozen
class Fault:
    """One fault window ``[start, end)``.

    ``outage``: every affected call fails with HTTP ``status`` (default 503).
    ``latency``: calls take ``multiplier`` times longer.
    ``errors``: a ``share`` of calls fail with HTTP ``status`` (a brownout or burst).
    ``rate_limit``: a ``share`` of calls get 429 with ``retry_after``.
    ``overload``: a ``share`` of calls get 529 overloaded with ``retry_after`` (the
    provider short of capacity for everyone; each account cools down, none is broken).
    ``hang``: a ``share`` of calls are accepted and never answered.
    ``revoked``: the key is rejected with 401 (the account is disabled).
    ``flapping``: down (a ``share`` of calls fail with ``status``) for ``period``
    seconds, then up for ``period`` seconds, and so on, starting down at ``start``.
    ``slow_recovery``: the share of calls failing with ``status`` falls linearly
    from ``share`` at ``start`` to 0 at ``end`` (a provider coming back slowly).
    A call a fault fails ends with the error code of its kind: ``rate_limited`` for
    ``rate_limit``, ``overloaded`` for ``overload``, ``timeout`` for ``hang``
    (``timeouts.first_byte`` ends it), ``auth_failed`` for ``revoked``, ``upstream_error``
    for those with a ``status``.
    """

    kind: FaultKind
    start: float
    end: float = math.inf
    share: float = 1.0
    multiplier: float = 1.0
    status: int = 503
    retry_after: float = 60.0
    period: float = 60.0

    def validate(self, index: int) -> None:
        _check(index, "kind", self.kind in _KINDS, self.kind, " | ".join(FaultKind))
        _check(index, "start", self.start >= 0, self.start, ">= 0 seconds")
        _check(index, "end", self.end > self.start, self.end, f"> start ({self.start})")
        if self.kind == FaultKind.SLOW_RECOVERY:
            _check(
                index,
                "end",
                math.isfinite(self.end),
                self.end,
                "a finite time for slow_recovery (the share reaches 0 there)",
            )
        _check(index, "share", 0 < self.share <= 1, self.share, "a share in (0, 1]")
        _check(index, "multiplier", self.multiplier > 0, self.multiplier, "> 0")
        _check(index, "status", 400 <= self.status <= 599, self.status, "an HTTP error status")
        _check(index, "retry_after", self.retry_after >= 0, self.retry_after, ">= 0 seconds")
        _check(
            index,
            "period",
            0 < self.period < math.inf,
            self.period,
            "> 0 seconds (flapping: how long each down and each up phase lasts)",
        )

    def active(self, now: float) -> bool:
        """Whether the fault acts on a call made at ``now`` (a flapping one only while down)."""
        if not self.start <= now < self.end:
            return False
        if self.kind == FaultKind.FLAPPING:
            return int((now - self.start) // self.period) % 2 == 0
        return True

    def share_at(self, now: float) -> float:
        """The share of calls the fault hits at ``now`` (only slow_recovery varies)."""
        if self.kind == FaultKind.SLOW_RECOVERY:
            return self.share * (self.end - now) / (self.end - self.start)
        return self.share

    def down_phases(self, until: float) -> list[tuple[float, float]]:
        """The spans in which the fault acts, up to ``until`` (for figures and replays)."""
        end = min(self.end, until)
        if self.kind != FaultKind.FLAPPING or not math.isfinite(end):
            return [(self.start, end)] if end > self.start else []
        spans, t = [], self.start
        while t < end:
            spans.append((t, min(t + self.period, end)))
            t += 2 * self.period
        return spans


def _faults(faults: Iterable[Fault]) -> tuple[Fault, ...]:
    """attrs converter: typed, where ``converter=tuple`` gives mypy a generic it cannot solve."""
    return tuple(faults)


@attrs.frozen
class FaultSchedule:
    faults: tuple[Fault, ...] = attrs.field(default=(), converter=_faults)

    def __attrs_post_init__(self) -> None:
        for index, fault in enumerate(self.faults):
            fault.validate(index)

    def active(self, now: float) -> list[Fault]:
        return [f for f in self.faults if f.active(now)]
