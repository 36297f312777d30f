"""What the router believes of an account's limits: configured, reported, and which binds.

An account is held by the stricter of its configured limits and what the provider
last reported (:class:`actors.limits.Admission`); a status page that showed only the
reported headers could not say why an account was, or was not, being sent to. Per
unit this says what the configured limiters admit now, what the report admits now (its
remaining less what the router sent since) and until when, and which of the two binds.
Read from the account's admission state, without a round trip: the status endpoint and
``/metrics`` show the same figures.
"""

from __future__ import annotations

import math

import attrs

from actors.limits import UNITS, Admission, Limiter, ReportedWindow

#: Where a unit's binding limit comes from.
SOURCES = ("configured", "reported")


@attrs.frozen
class ConfiguredLimit:
    """One configured limiter: its name and size, and what it admits at once now."""

    name: str
    limit: float
    remaining: float


@attrs.frozen
class ReportedLimit:
    """The provider's last report of a unit that has not reset yet."""

    #: The size the provider reported (None when its headers did not say).
    limit: float | None
    #: What it admits until the reset: the reported remaining less ``sent_since``.
    remaining: float
    sent_since: float
    reset_in_s: float


@attrs.frozen
class UnitLimits:
    """Both sources of one unit's limit, and the one that binds now.

    ``binding``: the source that holds a request of one unit back longer, else the one
    with less room. ``binding_until_s``: for a reported limit, seconds until its reset,
    when the configured limits alone decide again; None for a configured one, which
    always applies.
    """

    unit: str
    configured: list[ConfiguredLimit]
    reported: ReportedLimit | None
    binding: str
    binding_until_s: float | None


def unit_limits(admission: Admission, now: float) -> list[UnitLimits]:
    """Per unit with a configured limiter or a live report, in :data:`UNITS` order."""
    views = []
    for unit in UNITS:
        limiters = [lim for lim in admission.limiters if lim.unit == unit]
        window = admission.reported.get(unit)
        if window is not None and window.resets_at <= now:
            window = None  # past its reset: over, until the next report drops it
        if not limiters and window is None:
            continue
        views.append(_unit(unit, limiters, window, now))
    return views


def _unit(
    unit: str, limiters: list[Limiter], window: ReportedWindow | None, now: float
) -> UnitLimits:
    configured = [ConfiguredLimit(lim.name, lim.limit, _round(lim.room(now))) for lim in limiters]
    if window is None:
        return UnitLimits(unit, configured, None, "configured", None)
    reset_in = window.resets_at - now
    reported = ReportedLimit(
        window.limit, _round(window.room(now)), _round(window.sent), _round(reset_in)
    )
    # (wait for one unit, -room): the larger holds back longer, else admits less.
    by_report = (window.wait_for(now, 1.0), -window.room(now))
    by_config = (
        max((lim.wait_for(now, 1.0) for lim in limiters), default=-math.inf),
        -min((lim.room(now) for lim in limiters), default=math.inf),
    )
    if by_report > by_config:
        return UnitLimits(unit, configured, reported, "reported", reported.reset_in_s)
    return UnitLimits(unit, configured, reported, "configured", None)


def _round(value: float) -> float:
    return round(value, 3)
