"""Selection policies: which eligible provider gets the next attempt.

Each policy sees only providers that can take the request now (not disabled,
not quarantined, not out of quota or rate limit), reading the health monitor's live
statistics without a round trip. It picks two ways with one meaning: ``choose``, one
pass over a list of candidates; ``pick``, a few numpy operations over the arrays of the
:class:`~engine.routing.board.Board` (the fleet kept by readiness), which cost about the
same for ten accounts or a thousand and make the same pick, ties included. ``pick``
ranks the accounts of a mask that may hold some the request cannot use after all (a
token limit too short for it): each one it would pick is checked exactly, and one that
fails is dropped from the mask and the ranking done again.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Protocol

import attrs
import numpy as np

from actors.messages import ChatRequest
from actors.runtime.errors import InvalidSetting

if TYPE_CHECKING:
    from actors.health import HealthMonitor
    from actors.provider import Provider
    from actors.session import InterviewSession
    from engine.routing.board import Accept, Board, Mask

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

    def pick(
        self, board: Board, mask: Mask, accept: Accept, session: InterviewSession | None, now: float
    ) -> Provider | None:
        """What :meth:`choose` would choose among the accounts of ``mask`` that ``accept``
        takes (None if it takes none); ``mask`` is the caller's, to strike accounts from."""
        ...


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

    def pick(
        self, board: Board, mask: Mask, accept: Accept, session: InterviewSession | None, now: float
    ) -> Provider | None:
        # choose() over arrays: the same operations in the same order, so the same floats.
        # Its three choices (the quickest measured, the fastest expected, the best score)
        # each depend on the candidates, so each is checked, and a refusal starts over.
        cfg = self.config
        # Without limits every share is 1, which adds w_q to each score the same way.
        quota = (board.quota(now) if board.limited else 1.0) if cfg.quota_weight > 0 else None
        known, latency, unknown = board.known_latency, board.latency, board.unknown
        known_only = not board.unknowns  # then the prior is never used
        while True:
            prior = 1.0
            if not known_only:
                k = int(np.where(mask, known, math.inf).argmin())
                if not mask[k]:
                    return None  # an empty mask
                if known[k] != math.inf:
                    if not accept(k):
                        mask[k] = False
                        continue
                    prior = 0.5 * float(known[k])
            expected = (latency if known_only else np.where(unknown, prior, latency)) * board.load1
            k = int(np.where(mask, expected, math.inf).argmin())
            if not mask[k]:
                return None  # an empty mask
            if not accept(k):
                mask[k] = False
                continue
            fastest = float(expected[k])
            if (known_only or prior > 0.0) and not board.zero_latencies:
                speed = fastest / expected  # every expected time is > 0
            else:
                speed = np.divide(fastest, expected, out=np.ones_like(expected), where=expected > 0)
            score = cfg.health_weight * board.health_score + cfg.speed_weight * speed
            if quota is not None:
                score += cfg.quota_weight * quota
            k = int(np.where(mask, score, -math.inf).argmax())  # the first of equal scores
            if accept(k):
                return board.providers[k]
            mask[k] = False


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

    def pick(
        self, board: Board, mask: Mask, accept: Accept, session: InterviewSession | None, now: float
    ) -> Provider | None:
        latency = np.where(np.isnan(board.latency), -1.0, board.latency)
        while mask.any():
            healthy = mask & (board.health_score >= self.min_health)
            pool = healthy if healthy.any() else mask
            best = int(np.where(pool, latency, math.inf).argmin())
            if accept(best):
                return board.providers[best]
            mask[best] = False
        return None


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

    def pick(
        self, board: Board, mask: Mask, accept: Accept, session: InterviewSession | None, now: float
    ) -> Provider | None:
        cursor = self._cursor
        while True:
            after = mask[cursor:]
            if after.any():
                best = cursor + int(after.argmax())
            elif mask.any():
                best = int(mask.argmax())
            else:
                return None
            if accept(best):
                self._cursor = (best + 1) % self._size
                return board.providers[best]
            mask[best] = False


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

    def pick(
        self, board: Board, mask: Mask, accept: Accept, session: InterviewSession | None, now: float
    ) -> Provider | None:
        while mask.any():
            best = int(np.where(mask, board.priority, math.inf).argmin())
            if accept(best):
                return board.providers[best]
            mask[best] = False
        return None


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

    def pick(
        self, board: Board, mask: Mask, accept: Accept, session: InterviewSession | None, now: float
    ) -> Provider | None:
        if session is not None and session.provider is not None:
            pinned = board.index.get(session.provider)
            if pinned is not None and mask[pinned] and accept(pinned):
                return board.providers[pinned]
        return self.fallback.pick(board, mask, accept, session, now)


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
