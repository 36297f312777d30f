"""Rate-limit headers as providers send them, parsed into one shape.

Providers disagree on how they say "slow down": OpenAI and Groq send
``x-ratelimit-{limit,remaining,reset}-{requests,tokens}`` with resets as Go-style
durations ("6m0s", "1.5s", "20ms"); Anthropic sends ``anthropic-ratelimit-*``
with resets as RFC 3339 timestamps; HuggingFace sends the IETF draft's
structured ``ratelimit`` / ``ratelimit-policy`` pair; and a 429 or 503 carries
``retry-after`` (seconds or an HTTP date) or ``retry-after-ms``. This module
turns all of them into :class:`RateLimitInfo` so the provider actor can slow
down *before* the 429. Pure functions, no clock: absolute times are read
against the response's own ``Date`` header when it has one (the provider's
clock, immune to skew), else against the ``now`` the caller passes.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Mapping
from datetime import datetime
from email.utils import parsedate_to_datetime

import attrs

DIMENSIONS = ("requests", "tokens", "input_tokens", "output_tokens")

_DURATION_PART = re.compile(r"(\d+(?:\.\d*)?|\.\d+)(h|ms|us|µs|ns|m|s)")
#: Every header name this module reads starts with one of these (``date`` only with them).
_RELEVANT = ("x-ratelimit-", "anthropic-ratelimit-", "ratelimit", "retry-after")
_UNIT_SECONDS = {"h": 3600.0, "m": 60.0, "s": 1.0, "ms": 1e-3, "us": 1e-6, "µs": 1e-6, "ns": 1e-9}


@attrs.frozen
class LimitObservation:
    """What the provider says about one limit: units left, its size, seconds to reset."""

    dimension: str
    remaining: float
    limit: float | None = None
    reset_in: float | None = None


@attrs.frozen
class RateLimitInfo:
    """Everything rate-limit related in one response's headers."""

    retry_after: float | None = None
    limits: tuple[LimitObservation, ...] = ()

    def __bool__(self) -> bool:
        return self.retry_after is not None or bool(self.limits)

    def capped(self, longest: float) -> RateLimitInfo:
        """The same, with every wait (Retry-After, a reset) at most ``longest`` seconds:
        a provider's hint must never bench it for longer (``Retry-After: 1e9``)."""
        retry_after = self.retry_after
        if retry_after is not None and retry_after > longest:
            retry_after = longest
        if retry_after is self.retry_after and all(
            o.reset_in is None or o.reset_in <= longest for o in self.limits
        ):
            return self
        limits = tuple(
            o if o.reset_in is None or o.reset_in <= longest else attrs.evolve(o, reset_in=longest)
            for o in self.limits
        )
        return RateLimitInfo(retry_after, limits)


class LimitFeed:
    """Where a live account's backend reports the rate-limit headers of each response.

    Made before both ends, since the backend is built before the provider over it:
    the backend is given :meth:`report` at construction, the provider subscribes to
    the feed at its own. Reports reach the subscribers at once, in the order they
    subscribed, so an account slows down while a long answer still streams.
    """

    __slots__ = ("_readers",)

    def __init__(self) -> None:
        self._readers: list[Callable[[RateLimitInfo], None]] = []

    def subscribe(self, reader: Callable[[RateLimitInfo], None]) -> None:
        self._readers.append(reader)

    def report(self, info: RateLimitInfo) -> None:
        for reader in self._readers:
            reader(info)


_NOTHING = RateLimitInfo()


def parse_number(text: str) -> float | None:
    """A finite non-negative number, or None."""
    try:
        value = float(text.strip())
    except ValueError:
        return None
    return value if math.isfinite(value) and value >= 0 else None


def parse_duration(text: str) -> float | None:
    """Seconds in a Go-style duration ("6m0s", "1h2m3.5s", "20ms") or a bare number."""
    text = text.strip()
    if not text:
        return None
    bare = parse_number(text)
    if bare is not None:
        return bare
    total, position = 0.0, 0
    for match in _DURATION_PART.finditer(text):
        if match.start() != position:
            return None
        total += float(match.group(1)) * _UNIT_SECONDS[match.group(2)]
        position = match.end()
    return total if position == len(text) else None


def parse_http_date(text: str) -> float | None:
    """Epoch seconds of an RFC 9110 HTTP date ("Wed, 21 Oct 2015 07:28:00 GMT"), or None."""
    try:
        return parsedate_to_datetime(text.strip()).timestamp()
    except (TypeError, ValueError, IndexError):
        return None


def parse_rfc3339(text: str) -> float | None:
    """Epoch seconds of an RFC 3339 timestamp ("2024-05-01T12:00:30Z"), or None."""
    text = text.strip()
    if text.endswith(("Z", "z")):
        text = text[:-1] + "+00:00"
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        return None
    return moment.timestamp() if moment.tzinfo is not None else None


def _lower(headers: Mapping[str, str]) -> dict[str, str]:
    return {key.lower(): value for key, value in headers.items()}


def _reference_time(headers: dict[str, str], now: float) -> float:
    """The provider's own clock (its Date header) when it sent one, else ``now``."""
    date = headers.get("date")
    sent = parse_http_date(date) if date else None
    return sent if sent is not None else now


def parse_retry_after(headers: Mapping[str, str], now: float) -> float | None:
    """Seconds to wait, from ``retry-after-ms`` or ``retry-after`` (seconds or HTTP date)."""
    lowered = _lower(headers)
    millis = lowered.get("retry-after-ms")
    if millis is not None:
        value = parse_number(millis)
        if value is not None:
            return value / 1000.0
    text = lowered.get("retry-after")
    if text is None:
        return None
    seconds = parse_number(text)
    if seconds is not None:
        return seconds
    when = parse_http_date(text)
    if when is None:
        return None
    return max(0.0, when - _reference_time(lowered, now))


def _openai_style(headers: dict[str, str]) -> list[LimitObservation]:
    """``x-ratelimit-*-requests`` / ``-tokens`` (OpenAI, Groq, Together, vLLM gateways)."""
    found = []
    for dimension in ("requests", "tokens"):
        remaining = headers.get(f"x-ratelimit-remaining-{dimension}")
        value = parse_number(remaining) if remaining is not None else None
        if value is None:
            continue
        limit = headers.get(f"x-ratelimit-limit-{dimension}")
        reset = headers.get(f"x-ratelimit-reset-{dimension}")
        found.append(
            LimitObservation(
                dimension,
                value,
                parse_number(limit) if limit is not None else None,
                parse_duration(reset) if reset is not None else None,
            )
        )
    return found


def _anthropic_style(headers: dict[str, str], now: float) -> list[LimitObservation]:
    """``anthropic-ratelimit-{requests,tokens,input-tokens,output-tokens}-*``."""
    found = []
    reference = None
    for dimension in DIMENSIONS:
        prefix = "anthropic-ratelimit-" + dimension.replace("_", "-")
        remaining = headers.get(f"{prefix}-remaining")
        value = parse_number(remaining) if remaining is not None else None
        if value is None:
            continue
        limit = headers.get(f"{prefix}-limit")
        reset = headers.get(f"{prefix}-reset")
        reset_in = None
        when = parse_rfc3339(reset) if reset is not None else None
        if when is not None:
            if reference is None:
                reference = _reference_time(headers, now)
            reset_in = max(0.0, when - reference)
        found.append(
            LimitObservation(
                dimension, value, parse_number(limit) if limit is not None else None, reset_in
            )
        )
    return found


def _structured_param(text: str, name: str) -> float | None:
    match = re.search(rf";\s*{name}\s*=\s*([0-9.]+)", text)
    return parse_number(match.group(1)) if match else None


def _ietf_style(headers: dict[str, str]) -> list[LimitObservation]:
    """IETF draft ``ratelimit: "api";r=0;t=120`` with ``ratelimit-policy: ...;q=1000;w=300``.

    HuggingFace counts requests in fixed windows this way.
    """
    current = headers.get("ratelimit")
    if current is None:
        return []
    remaining = _structured_param(current, "r")
    if remaining is None:
        return []
    policy = headers.get("ratelimit-policy", "")
    return [
        LimitObservation(
            "requests", remaining, _structured_param(policy, "q"), _structured_param(current, "t")
        )
    ]


def parse_rate_limit_headers(headers: Mapping[str, str], now: float) -> RateLimitInfo:
    """Everything the response says about rate limits; unparseable values are ignored.

    ``now`` is the caller's wall clock (epoch seconds), used only for absolute
    times in a response without a ``Date`` header.
    """
    lowered = _lower(headers)
    if not any(name.startswith(_RELEVANT) for name in lowered):
        return _NOTHING  # most responses of most providers: a quick no
    limits = _openai_style(lowered) + _anthropic_style(lowered, now) + _ietf_style(lowered)
    return RateLimitInfo(parse_retry_after(lowered, now), tuple(limits))
