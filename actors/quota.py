"""Quota tracking: daily and monthly allowances, alerts at 80% and 90%, cut-off at 100%.

A quota is an account limit counted over a fixed window of a day or more (requests
per day, characters per month). Each provider watches its own quotas after every
admitted call (a few comparisons) and tells the tracker when one crosses a
threshold; at 100% the account is disabled until the window resets. The tracker
keeps the alerts with their times for logs, the HTTP surface and reports.
"""

from __future__ import annotations

import collections
import logging
from collections.abc import Sequence
from typing import TypeGuard

import attrs

from actors.limits import FixedWindow
from actors.runtime.actor import Actor

ALERT_LEVELS = (0.8, 0.9, 1.0)
QUOTA_MIN_WINDOW_S = 86400.0

logger = logging.getLogger("callboard.quota")


def is_quota(limiter: object) -> TypeGuard[FixedWindow]:
    return isinstance(limiter, FixedWindow) and limiter.per >= QUOTA_MIN_WINDOW_S


@attrs.frozen
class QuotaAlert:
    """An account's use of a quota crossed an alert level."""

    #: When the use crossed the level.
    time: float
    #: The account.
    provider: str
    #: The quota's name.
    limit: str
    #: The share of the allowance crossed (0.8, 0.9, 1.0).
    level: float
    #: What had been used of the allowance.
    used: float
    #: What the quota allows per window.
    allowance: float
    #: When the quota's window resets.
    resets_at: float


class QuotaWatch:
    """One provider's view of its quotas: which alert levels each has crossed."""

    __slots__ = ("_crossed", "provider", "quotas")

    def __init__(self, provider: str, limiters: Sequence[object]) -> None:
        self.provider = provider
        self.quotas: list[FixedWindow] = [lim for lim in limiters if is_quota(lim)]
        self._crossed: dict[str, tuple[int, int]] = {}  # limit -> (window, levels crossed)

    def check(self, now: float) -> list[QuotaAlert]:
        """Alerts newly due after a call at ``now`` (empty almost always)."""
        alerts = []
        for quota in self.quotas:
            window = int(now // quota.per)
            seen_window, crossed = self._crossed.get(quota.name, (window, 0))
            if seen_window != window:
                crossed = 0
            share = quota.used(now) / quota.limit
            while crossed < len(ALERT_LEVELS) and share >= ALERT_LEVELS[crossed] - 1e-12:
                alerts.append(
                    QuotaAlert(
                        now,
                        self.provider,
                        quota.name,
                        ALERT_LEVELS[crossed],
                        quota.used(now),
                        quota.limit,
                        quota.resets_at(now),
                    )
                )
                crossed += 1
            self._crossed[quota.name] = (window, crossed)
        return alerts


class QuotaTracker(Actor):
    """Collects quota alerts from every provider: all of them, or the latest ``keep``."""

    def __init__(self, name: str = "quota", keep: int | None = None) -> None:
        super().__init__(name)
        self.alerts: collections.deque[QuotaAlert] = collections.deque(maxlen=keep)

    def on_start(self) -> None:
        # Alerts already seen stay: a restart must not forget that an account ran dry.
        pass

    async def receive(self, message: object) -> None:
        if not isinstance(message, QuotaAlert):
            raise TypeError(f"quota tracker got an unknown message {message!r}")
        self.alerts.append(message)
        level = "warning" if message.level < 1.0 else "error"
        getattr(logger, level)(
            "quota provider=%s limit=%s used=%.0f of %.0f (%.0f%%) resets_at=%.0f",
            message.provider,
            message.limit,
            message.used,
            message.allowance,
            message.level * 100,
            message.resets_at,
        )
