"""Selection policies: which eligible provider gets the next attempt.

Each policy sees only providers that can take the request now (not disabled,
not quarantined, not out of quota or rate limit), and picks in one linear pass
over them, reading the health monitor's live statistics without a round trip.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Protocol

import attrs

from actors.messages import ChatRequest
from actors.runtime.errors import InvalidSetting

if TYPE_CHECKING:
    from actors.health import HealthMonitor
    from actors.provider import Provider
    from actors.session import InterviewSession

POLICIES = ("weighted", "lowest_latency", "round_robin", "priority", "sticky")
TIER_MODES = ("any", "by_kind", "strong_only")


@attrs.frozen
class PolicyConfig:
    """Which policy, the weighted policy's weights, and how model tiers are used.

    ``tiers``: ``any`` ignores them; ``by_kind`` sends the turn kinds in
    ``light_kinds`` to ``light`` accounts (or to a strong one when no light one is
    free) and every other kind to ``strong`` accounts only, so a reasoning turn is
    never answered by a weaker model; ``strong_only`` never uses a light account
    (the baseline cost-aware routing is judged against).
    """

    policy: str = "weighted"
    health_weight: float = 0.4
    quota_weight: float = 0.3
    speed_weight: float = 0.3
    min_health: float = 0.5
    tiers: str = "any"
    light_kinds: tuple[str, ...] = ("small_talk", "question")
    #: A latency measurement older than this counts as unknown, so the provider is retried.
    latency_ttl: float = 300.0

    def __attrs_post_init__(self) -> None:
        if self.policy not in POLICIES:
            raise InvalidSetting("routing.policy", self.policy, " | ".join(POLICIES))
        if self.tiers not in TIER_MODES:
            raise InvalidSetting("routing.tiers", self.tiers, " | ".join(TIER_MODES))
        if not self.latency_ttl > 0:
            raise InvalidSetting("routing.latency_ttl", self.latency_ttl, "> 0 seconds")
        for field in ("health_weight", "quota_weight", "speed_weight"):
            value = getattr(self, field)
            if not (value >= 0 and math.isfinite(value)):
                raise InvalidSetting(f"routing.{field}", value, "a finite number >= 0")
        if not 0 <= self.min_health <= 1:
            raise InvalidSetting("routing.min_health", self.min_health, "a score in [0, 1]")


class Policy(Protocol):
    def choose(
        self,
        candidates: list[Provider],
        request: ChatRequest,
        session: InterviewSession | None,
        now: float,
    ) -> Provider: ...


class Weighted:
    """Highest ``w_h * health + w_q * quota left + w_s * speed`` wins.

    Speed is the fastest candidate's expected response time over this one's,
    where the expected time is the latency EWMA inflated by the account's slot
    and queue occupancy.
    Ties go to the earlier provider in the config.
    """

    def __init__(self, config: PolicyConfig, health: HealthMonitor) -> None:
        self.config = config
        self.health = health

    def choose(
        self,
        candidates: list[Provider],
        request: ChatRequest,
        session: InterviewSession | None,
        now: float,
    ) -> Provider:
        if len(candidates) == 1:
            return candidates[0]
        cfg = self.config
        stats = self.health.providers
        ttl = cfg.latency_ttl
        healths = [stats[p.spec.name] for p in candidates]
        latencies = [h.latency_at(now, ttl) for h in healths]
        measured = [x for x in latencies if x == x]
        # An unmeasured provider is assumed twice as fast as the fastest measured one,
        # so it gets tried (and measured), while its queue still counts against it,
        # so a burst does not pile onto it.
        prior = 0.5 * min(measured) if measured else 1.0
        expected = [
            (prior if latency != latency else latency) * (1.0 + p.load())
            for p, latency in zip(candidates, latencies, strict=True)
        ]
        fastest = min(expected)
        use_quota = cfg.quota_weight > 0
        best, best_score = candidates[0], -math.inf
        for provider, health, exp in zip(candidates, healths, expected, strict=True):
            score = cfg.health_weight * (1.0 - health.error_ewma) + cfg.speed_weight * (
                1.0 if exp <= 0.0 else fastest / exp
            )
            if use_quota:
                score += cfg.quota_weight * provider.quota_left(now)
            if score > best_score:
                best, best_score = provider, score
        return best


class LowestLatency:
    """The healthy candidate with the lowest latency EWMA (unmeasured first)."""

    def __init__(self, config: PolicyConfig, health: HealthMonitor) -> None:
        self.min_health = config.min_health
        self.latency_ttl = config.latency_ttl
        self.health = health

    def choose(
        self,
        candidates: list[Provider],
        request: ChatRequest,
        session: InterviewSession | None,
        now: float,
    ) -> Provider:
        stats = self.health.providers
        best, best_key = candidates[0], (True, math.inf)
        for provider in candidates:
            health = stats[provider.spec.name]
            latency = health.latency_at(now, self.latency_ttl)
            key = (
                1.0 - health.error_ewma < self.min_health,
                -1.0 if latency != latency else latency,
            )
            if key < best_key:
                best, best_key = provider, key
        return best


class RoundRobin:
    """Each attempt goes to the next account in config order, skipping ineligible ones."""

    def __init__(self, providers: list[Provider]) -> None:
        self._order = {p: i for i, p in enumerate(providers)}  # actors hash by identity
        self._size = len(providers)
        self._cursor = 0

    def choose(
        self,
        candidates: list[Provider],
        request: ChatRequest,
        session: InterviewSession | None,
        now: float,
    ) -> Provider:
        order, cursor, size = self._order, self._cursor, self._size
        best, best_distance, best_index = candidates[0], size, 0
        for provider in candidates:
            index = order[provider]
            distance = (index - cursor) % size
            if distance < best_distance:
                best, best_distance, best_index = provider, distance, index
                if distance == 0:
                    break
        self._cursor = (best_index + 1) % size
        return best


class Priority:
    """The first eligible provider by ``priority`` (lower first), then config order."""

    def choose(
        self,
        candidates: list[Provider],
        request: ChatRequest,
        session: InterviewSession | None,
        now: float,
    ) -> Provider:
        return min(candidates, key=lambda p: p.spec.priority)


class Sticky:
    """Keep a session on its provider while it is eligible; else pick by weight and re-pin."""

    def __init__(self, fallback: Policy) -> None:
        self.fallback = fallback

    def choose(
        self,
        candidates: list[Provider],
        request: ChatRequest,
        session: InterviewSession | None,
        now: float,
    ) -> Provider:
        if session is not None and session.provider is not None:
            for provider in candidates:
                if provider.spec.name == session.provider:
                    return provider
        return self.fallback.choose(candidates, request, session, now)


def build_policy(config: PolicyConfig, providers: list[Provider], health: HealthMonitor) -> Policy:
    match config.policy:
        case "weighted":
            return Weighted(config, health)
        case "lowest_latency":
            return LowestLatency(config, health)
        case "round_robin":
            return RoundRobin(providers)
        case "priority":
            return Priority()
        case "sticky":
            return Sticky(Weighted(config, health))
    raise InvalidSetting("routing.policy", config.policy, " | ".join(POLICIES))
