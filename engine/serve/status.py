"""What the live router can say about each provider, for people, dashboards and probes.

Built from the snapshots the actors publish (health statistics, breaker
state, admission, reachability) without a round trip to any actor, so a health endpoint
polled every second costs the routing core nothing.

Each provider is in one of three states (:func:`provider_state`), which ``/health`` and
``/health/ready`` read:

- ``unavailable``: no answer is to be expected from it: its breaker is open (quarantined),
  it is disabled (a rejected key, a used-up quota, powered off), or no connection to it
  could be made (unreachable, until an exchange with it gets an HTTP answer).
- ``busy``: it answers, in turn: a rate limit or a 429's cool-down holds it back, every
  slot is taken, or its half-open trial call is out. Requests queue for it or are shed
  with a Retry-After, so a busy router is not pulled from a load balancer.
- ``ok``: it can take a request now.
"""

from __future__ import annotations

import math
from typing import Any

import attrs

from actors.backends.ratelimit_headers import RateLimitInfo
from actors.breaker import State
from actors.health import HealthMonitor, ReachMark
from actors.messages import ChatMessage, ChatRequest
from actors.provider import UNTIL_FREED, Provider
from engine.routing.policies import PolicyConfig, Weighted
from engine.routing.selection import reachable_first
from engine.serve.limit_view import UnitLimits, unit_limits

_PROBE = ChatRequest(messages=(ChatMessage("user", "probe"),), max_tokens=1)


def peek_wait(provider: Provider, now: float) -> float:
    """Seconds until ``provider`` could take a small request, without counting a hold-back.

    ``wait_before`` counts each limit that holds the router back; a status page
    looking is not the router being held back, so the count is put back.
    """
    held = provider.stats.held_back.copy()
    wait = provider.wait_before(_PROBE, now)
    provider.stats.held_back = held
    # Busy until a call ends: no timer says when (None in the status; not available).
    return math.inf if wait == UNTIL_FREED else wait


OK, BUSY, UNAVAILABLE = "ok", "busy", "unavailable"


@attrs.frozen
class ProviderState:
    """Whether a provider can answer, and why not."""

    #: ``ok``, ``busy`` or ``unavailable`` (see the module's docstring).
    state: str
    reasons: tuple[str, ...] = ()
    #: Seconds until an unavailable provider is back by a timer (its quarantine's end,
    #: its disabling's); None when unknown (unreachable: only an exchange tells) or busy.
    back_in: float | None = None


def provider_state(provider: Provider, mark: ReachMark | None, now: float) -> ProviderState:
    """The state of ``provider`` at ``now``; ``mark`` says it could not be reached."""
    reasons: list[str] = []
    ends: list[float] = []
    known = True
    if provider.disabled_until > now:
        left = provider.disabled_until - now
        reason = f"disabled: {provider.disabled_reason}"
        if math.isfinite(left):
            ends.append(left)
            reason += f" ({left:.1f} s left)"
        else:
            known = False
        reasons.append(reason)
    breaker = provider.breaker
    if breaker.state is State.OPEN and breaker.open_until > now:
        left = breaker.open_until - now
        ends.append(left)
        reasons.append(f"breaker open: quarantined for {left:.1f} s more")
    if mark is not None:
        known = False
        reasons.append(f"unreachable: {mark.reason}")
    if reasons:
        return ProviderState(UNAVAILABLE, tuple(reasons), max(ends) if known else None)
    wait = peek_wait(provider, now)
    if wait == 0:
        return ProviderState(OK)
    return ProviderState(BUSY, (_busy_reason(provider, wait, now),))


def _busy_reason(provider: Provider, wait: float, now: float) -> str:
    """Why an available provider cannot take a request at once (``wait``: peek_wait's)."""
    if provider.cooling_until > now:
        return f"cooling down after a 429: {wait:.1f} s"
    if provider.breaker.state is State.HALF_OPEN and math.isinf(wait):
        return "half-open: its trial call is out"
    if math.isinf(wait):
        slots = provider.slots
        return f"every slot taken: {slots.in_use} in use, {slots.queued} queued"
    return f"rate limit: admits a request in {wait:.1f} s"


def fleet_status(states: list[ProviderState]) -> str:
    """``ok`` (every provider can take a request now), ``degraded`` (some can, not all),
    ``saturated`` (none can now, but some answer in turn: requests queue or are shed with
    a Retry-After) or ``down`` (no provider is available)."""
    if all(s.state == OK for s in states):
        return "ok"
    if all(s.state == UNAVAILABLE for s in states):
        return "down"
    if not any(s.state == OK for s in states):
        return "saturated"
    return "degraded"


def _finite(value: float, digits: int = 4) -> float | None:
    return round(value, digits) if math.isfinite(value) else None


@attrs.frozen
class ProviderStatus:
    name: str
    model: str
    #: It can take a request now (state ``ok``).
    available: bool
    #: ``ok``, ``busy`` or ``unavailable``, and why not ok.
    state: str
    reasons: list[str]
    wait_s: float | None
    health_score: float
    error_rate: float
    latency_ms: dict[str, float | None]
    calls: int
    failures: int
    last_error: str
    breaker: str
    breaker_open_for_s: float | None
    quota_left: float
    #: What the last response's rate-limit headers said, as parsed.
    reported_limits: list[dict[str, Any]]
    #: What the router holds the account to, per unit: configured and reported, and
    #: which binds (:mod:`engine.serve.limit_view`).
    limits: list[UnitLimits]
    in_flight: int
    queued: int
    disabled: str
    #: Its latest outcomes other than an answer, newest first: code and seconds ago.
    recent_errors: list[dict[str, Any]]

    def as_json(self) -> dict[str, Any]:
        return attrs.asdict(self)


def provider_status(
    provider: Provider, health: HealthMonitor, limits: RateLimitInfo | None, now: float
) -> ProviderStatus:
    name = provider.spec.name
    snap = health.snapshot_of(name)
    state = provider_state(provider, health.unreachable.get(name), now)
    breaker = provider.breaker
    wait = peek_wait(provider, now)
    reported = [
        {
            "dimension": seen.dimension,
            "remaining": seen.remaining,
            "limit": seen.limit,
            "reset_in_s": seen.reset_in,
        }
        for seen in (limits.limits if limits is not None else ())
    ]
    return ProviderStatus(
        name=name,
        model=provider.spec.model,
        available=state.state == OK,
        state=state.state,
        reasons=list(state.reasons),
        wait_s=_finite(wait, 3) if wait > 0 else 0.0,
        health_score=round(snap.score, 4),
        error_rate=round(snap.error_rate, 4),
        latency_ms={
            "ewma": _finite(snap.latency_ewma * 1000, 2),
            "p50": _finite(snap.p50 * 1000, 2),
            "p95": _finite(snap.p95 * 1000, 2),
            "p99": _finite(snap.p99 * 1000, 2),
        },
        calls=snap.calls,
        failures=snap.failures,
        last_error=snap.last_error,
        breaker=breaker.state.value,
        breaker_open_for_s=_finite(breaker.open_until - now, 3)
        if breaker.open_until > now
        else None,
        quota_left=round(provider.quota_left(now), 4),
        reported_limits=reported,
        limits=unit_limits(provider.admission, now),
        in_flight=provider.slots.in_use,
        queued=provider.slots.queued,
        disabled=provider.disabled_reason if provider.disabled_until > now else "",
        recent_errors=[
            {"code": code, "ago_s": round(now - at, 3)} for at, code in reversed(snap.recent_errors)
        ],
    )


def best_provider(
    providers: list[Provider], health: HealthMonitor, config: PolicyConfig, now: float
) -> Provider | None:
    """The provider the weighted policy would pick now among those available, if any
    (one no connection reached only when every one is so marked, as the router does).

    Always the weighted score (health, quota, speed), whatever policy routes:
    it is side-effect free, where asking round-robin would move its cursor.
    """
    available = [p for p in providers if peek_wait(p, now) == 0]
    if not available:
        return None
    available = reachable_first(available, health.unreachable)
    return Weighted(config, health).choose(available, _PROBE, None, now)
