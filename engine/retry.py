"""Retry settings and backoff: exponential, jittered, never sooner than Retry-After."""

from __future__ import annotations

import math

import attrs

from engine.errors import InvalidRequest
from engine.streams import Stream


def _check(field: str, ok: bool, value: object, allowed: str) -> None:
    if not ok:
        raise InvalidRequest(f"retry.{field}", value, allowed)


@attrs.frozen
class RetryConfig:
    """How hard the router tries before it gives up on a request.

    ``max_attempts`` counts every attempt, failovers included. The n-th backoff
    is ``backoff_base * backoff_factor ** (n - 1)`` capped at ``backoff_max``,
    shortened by up to ``jitter`` of itself at random, and never shorter than
    the Retry-After the provider last sent.
    """

    max_attempts: int = 4
    backoff_base: float = 2.0
    backoff_factor: float = 2.0
    backoff_max: float = 30.0
    jitter: float = 0.2
    attempt_timeout: float = 30.0
    deadline: float = 120.0

    def __attrs_post_init__(self) -> None:
        _check("max_attempts", self.max_attempts >= 1, self.max_attempts, ">= 1")
        _check("backoff_base", self.backoff_base >= 0, self.backoff_base, ">= 0 seconds")
        _check("backoff_factor", self.backoff_factor >= 1, self.backoff_factor, ">= 1")
        _check("backoff_max", self.backoff_max >= 0, self.backoff_max, ">= 0 seconds")
        _check("jitter", 0 <= self.jitter <= 1, self.jitter, "a share in [0, 1]")
        _check(
            "attempt_timeout", self.attempt_timeout > 0, self.attempt_timeout, "> 0 seconds or inf"
        )
        _check("deadline", self.deadline > 0, self.deadline, "> 0 seconds or inf")

    def backoff(self, retry_number: int, retry_after: float, stream: Stream) -> float:
        """Seconds to wait before retry ``retry_number`` (1 for the first retry)."""
        delay = min(self.backoff_max, self.backoff_base * self.backoff_factor ** (retry_number - 1))
        if self.jitter > 0 and delay > 0:
            delay *= 1.0 - self.jitter * stream.uniform()
        return max(delay, retry_after if math.isfinite(retry_after) else 0.0)
