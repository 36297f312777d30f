"""What the live router can say about each provider, for people and dashboards.

Built from the snapshots the actors publish (health statistics, breaker
state, admission) without a round trip to any actor, so a health endpoint
polled every second costs the routing core nothing.
"""

from __future__ import annotations

import math
from typing import Any

import attrs

from actors.backends.ratelimit_headers import RateLimitInfo
from actors.health import HealthMonitor
from actors.messages import ChatMessage, ChatRequest
from actors.provider import UNTIL_FREED, Provider
from engine.routing.policies import PolicyConfig, Weighted
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


def _finite(value: float, digits: int = 4) -> float | None:
    return round(value, digits) if math.isfinite(value) else None


@attrs.frozen
class ProviderStatus:
    name: str
    model: str
    available: bool
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

    def as_json(self) -> dict[str, Any]:
        return attrs.asdict(self)


def provider_status(
    provider: Provider, health: HealthMonitor, limits: RateLimitInfo | None, now: float
) -> ProviderStatus:
    name = provider.spec.name
    snap = health.snapshot_of(name)
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
        available=wait == 0,
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
    )


def best_provider(
    providers: list[Provider], health: HealthMonitor, config: PolicyConfig, now: float
) -> Provider | None:
    """The provider the weighted policy would pick now among those available, if any.

    Always the weighted score (health, quota, speed), whatever policy routes:
    it is side-effect free, where asking round-robin would move its cursor.
    """
    available = [p for p in providers if peek_wait(p, now) == 0]
    if not available:
        return None
    return Weighted(config, health).choose(available, _PROBE, None, now)
