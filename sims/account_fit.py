"""What traces say of one account: its latency, its error rates over time, its limits.

Time to first token and time per output token are fitted separately (output length
drives the total); failures are shares of the attempts sent, by the code the simulator
models them with; limits are what rate-limit headers and 429s reveal, never guessed.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Iterable, Sequence
from statistics import median

import attrs
import numpy as np
from scipy import stats

from sims.fits import Z99, Fit, Interval, fit, rate
from sims.observed import ObservedAttempt, ObservedRequest

#: Answered attempts an account needs for its latency to be fitted.
MIN_ANSWERED = 30
#: Hours a trace must cover for error rates to be looked at hour by hour.
MIN_HOURS = 2
#: Attempts an hour needs before its rates are compared with the account's.
MIN_HOUR_ATTEMPTS = 30
#: How unlikely an hour's failures must be under the account's rate to become a window.
HOUR_P = 0.001
#: The error codes an account's ``[accounts.errors]`` models, and the names apps use.
ERROR_CODES = {
    "rate_limited": "rate_limited",
    "429": "rate_limited",
    "RateLimitError": "rate_limited",
    "overloaded": "overloaded",
    "529": "overloaded",
    "OverloadedError": "overloaded",
    "upstream_error": "upstream_error",
    "unreachable": "upstream_error",
    "stream_interrupted": "upstream_error",
    "500": "upstream_error",
    "502": "upstream_error",
    "503": "upstream_error",
    "504": "upstream_error",
    "InternalServerError": "upstream_error",
    "APIConnectionError": "upstream_error",
    "APIStatusError": "upstream_error",
    "timeout": "timeout",
    "APITimeoutError": "timeout",
    "malformed_reply": "malformed_reply",
}
#: Attempts the caller cut (its deadline, or it left): not the account's failure, and
#: a time to first token known only to be at least the attempt's length.
CUT = frozenset({"deadline", "cancelled", "answer_cap"})
#: Refused on the router's side (a breaker, a full queue): not the account's either.
REFUSED = frozenset({"circuit_open", "queue_full"})
#: The codes fitted as shares of attempts. Timeouts are not among them: a timed-out
#: attempt is a time to first token censored at its length (the simulator's own timeouts
#: then cut the fitted tail), so counting it as a rate too would count it twice.
RATES = ("malformed_reply", "overloaded", "rate_limited", "upstream_error")
#: Codes an hour can stand out in, as a fault window (a fault fails a call with one of
#: these; none ends in a malformed reply).
WINDOWED = ("overloaded", "rate_limited", "upstream_error")


def code_of(error: str | None) -> str | None:
    """The modelled code an ``error.type`` stands for (a qualified exception class by its
    name: ``openai.RateLimitError`` is ``RateLimitError``); None: no modelled code."""
    if error is None:
        return None
    return ERROR_CODES.get(error) or ERROR_CODES.get(error.rsplit(".", 1)[-1])


#: Limit units a scenario's ``[[accounts.limits]]`` takes.
LIMIT_UNITS = ("requests", "tokens", "input_tokens", "output_tokens")


@attrs.frozen
class HourRates:
    """One hour of the trace: attempts sent, and failures by modelled code."""

    hour: int  # hours since the first span
    attempts: int
    failures: dict[str, int]


@attrs.frozen
class Window:
    """An hour whose failures of one code stand out: a fault window in the scenario."""

    hour: int
    code: str
    share: Interval
    p_value: float


@attrs.frozen
class RevealedLimit:
    """A limit the rate-limit headers stated, per unit."""

    unit: str
    limit: float  # the largest limit stated
    lowest_remaining: float
    longest_reset: float | None
    responses: int  # responses that stated it


@attrs.frozen
class AccountFit:
    """One account (or, for bare GenAI spans, one model) as its traces show it."""

    name: str
    provider: str | None
    model: str | None
    attempts: int
    answered: int
    ttft: Fit | None  # None: too few spans carry a time to first token (see ``service``)
    service: Fit | None  # the whole call's duration, fitted only when ``ttft`` is None
    tokens_per_s: Interval | None  # output tokens / decoding seconds, answered attempts
    tpot: Fit | None  # seconds per output token, per attempt
    output_tokens: Fit | None
    errors: dict[str, Interval]  # code of RATES -> share of attempts (outside windows)
    timeouts: int  # attempts that timed out: censored times to first token
    other_errors: dict[str, int]  # error types seen that no modelled code stands for
    hours: tuple[HourRates, ...]  # empty when the trace covers under MIN_HOURS
    windows: tuple[Window, ...]
    retry_after: float | None  # median wait a 429 or overload asked for
    limits: tuple[RevealedLimit, ...]
    rate_limited_at: tuple[float, ...]  # when 429s came (seconds from the first span)
    minute_before_429: tuple[int, int] | None  # fewest, most attempts in the minute before one
    peak_concurrency: int


def attempts_of(
    requests: Sequence[ObservedRequest], by_model: bool
) -> dict[str, list[ObservedAttempt]]:
    """Attempts by account (or by model), each answering attempt with its request's output
    tokens (what the answer said it used), in start order."""
    groups: dict[str, list[ObservedAttempt]] = {}
    for request in requests:
        for attempt in request.attempts:
            if attempt.error is None and request.outcome == "ok" and request.output_tokens:
                attempt = attrs.evolve(attempt, output_tokens=request.output_tokens)
            model = attempt.request_model or attempt.model
            key = (model or attempt.account) if by_model else attempt.account
            groups.setdefault(key, []).append(attempt)
    return {key: sorted(value, key=lambda a: (a.start, a.end)) for key, value in groups.items()}


def answered(attempts: Sequence[ObservedAttempt]) -> list[ObservedAttempt]:
    """The attempts that answered, in a measurable time: what latency is fitted on."""
    return [a for a in attempts if a.error is None and a.end > a.start]


def fit_account(name: str, attempts: Sequence[ObservedAttempt], span: float) -> AccountFit:
    """``attempts`` of account ``name`` (at least :data:`MIN_ANSWERED` answered);
    ``span`` the seconds the traces cover."""
    done = answered(attempts)
    timed = [a for a in done if a.ttft is not None and a.ttft > 0]
    cut = [a.end - a.start for a in attempts if a.ttft is None and _cut(a)]
    decode = [_decoding(a) for a in timed if _decodes(a)]
    trials = [a for a in attempts if a.error not in CUT | REFUSED]
    hours = _hours(trials) if span >= MIN_HOURS * 3600 else ()
    windows = _windows(hours, trials)
    outside = [a for a in trials if (int(a.start // 3600)) not in {w.hour for w in windows}]
    counted = Counter(code_of(a.error) for a in outside)
    other = Counter(a.error for a in trials if a.error is not None and code_of(a.error) is None)
    waits = [a.retry_after for a in attempts if a.retry_after is not None]
    limited = [a for a in attempts if code_of(a.error) == "rate_limited"]
    tokens = [a.output_tokens for a in done if a.output_tokens]
    return AccountFit(
        name=name,
        provider=_most_common(a.provider for a in attempts),
        model=_most_common(a.model for a in attempts),
        attempts=len(attempts),
        answered=len(done),
        ttft=_ttft(timed, cut) if len(timed) >= MIN_ANSWERED else None,
        service=fit([a.end - a.start for a in done], cut) if len(timed) < MIN_ANSWERED else None,
        tokens_per_s=_tokens_per_s(decode) if len(decode) >= MIN_ANSWERED else None,
        tpot=fit([s / n for s, n in decode]) if len(decode) >= MIN_ANSWERED else None,
        output_tokens=fit(tokens) if len(tokens) >= MIN_ANSWERED else None,
        errors={code: rate(counted[code], len(outside)) for code in RATES},
        timeouts=sum(code_of(a.error) == "timeout" for a in trials),
        other_errors=dict(sorted(other.items())),
        hours=hours,
        windows=windows,
        retry_after=median(waits) if waits else None,
        limits=_limits(attempts),
        rate_limited_at=tuple(a.start for a in limited),
        minute_before_429=_minute_before(attempts, limited),
        peak_concurrency=_peak(attempts),
    )


def _ttft(timed: Sequence[ObservedAttempt], cut: Sequence[float]) -> Fit:
    return fit([a.ttft for a in timed if a.ttft is not None], cut)


def _cut(attempt: ObservedAttempt) -> bool:
    return attempt.error in CUT or code_of(attempt.error) == "timeout"


def _decodes(attempt: ObservedAttempt) -> bool:
    """Answered with tokens after the first (a whole answer's first byte is its last)."""
    assert attempt.ttft is not None
    return bool(attempt.output_tokens) and attempt.end - attempt.start - attempt.ttft > 1e-6


def _decoding(attempt: ObservedAttempt) -> tuple[float, int]:
    """(seconds decoding, output tokens) of an answered attempt."""
    assert attempt.ttft is not None and attempt.output_tokens is not None
    return attempt.end - attempt.start - attempt.ttft, attempt.output_tokens


def _tokens_per_s(decode: list[tuple[float, int]]) -> Interval:
    """Sum of tokens over sum of decoding time (what a constant rate must reproduce), with
    the ratio estimator's 99% interval (delta method)."""
    seconds = np.array([s for s, _ in decode])
    tokens = np.array([n for _, n in decode], dtype=float)
    ratio = float(tokens.sum() / seconds.sum())
    residual = tokens - ratio * seconds
    se = float(np.std(residual, ddof=1)) / (math.sqrt(len(decode)) * float(seconds.mean()))
    return Interval(ratio, ratio - Z99 * se, ratio + Z99 * se)


def _hours(trials: Sequence[ObservedAttempt]) -> tuple[HourRates, ...]:
    counts: dict[int, Counter[str]] = {}
    sent: Counter[int] = Counter()
    for attempt in trials:
        hour = int(attempt.start // 3600)
        sent[hour] += 1
        failures = counts.setdefault(hour, Counter())
        code = code_of(attempt.error)
        if code is not None:
            failures[code] += 1
    return tuple(HourRates(h, sent[h], dict(sorted(counts[h].items()))) for h in sorted(sent))


def _windows(hours: Sequence[HourRates], trials: Sequence[ObservedAttempt]) -> tuple[Window, ...]:
    """Hours whose share of one code is far above the account's (one-sided binomial test)."""
    if not hours:
        return ()
    total = len(trials)
    found = []
    for code in WINDOWED:
        overall = sum(h.failures.get(code, 0) for h in hours) / total
        for hour in hours:
            k = hour.failures.get(code, 0)
            if hour.attempts < MIN_HOUR_ATTEMPTS or k == 0:
                continue
            p = float(stats.binomtest(k, hour.attempts, overall, alternative="greater").pvalue)
            if p < HOUR_P:
                found.append(Window(hour.hour, code, rate(k, hour.attempts), p))
    return tuple(sorted(found, key=lambda w: (w.hour, w.code)))


def _limits(attempts: Sequence[ObservedAttempt]) -> tuple[RevealedLimit, ...]:
    seen: dict[str, list[dict[str, float]]] = {}
    for attempt in attempts:
        for unit, values in attempt.ratelimit.items():
            if "limit" in values:
                seen.setdefault(unit, []).append(values)
    return tuple(
        RevealedLimit(
            unit=unit,
            limit=max(v["limit"] for v in values),
            lowest_remaining=min(v.get("remaining", v["limit"]) for v in values),
            longest_reset=max((v["reset"] for v in values if "reset" in v), default=None),
            responses=len(values),
        )
        for unit, values in sorted(seen.items())
    )


def _minute_before(
    attempts: Sequence[ObservedAttempt], limited: Sequence[ObservedAttempt]
) -> tuple[int, int] | None:
    """Fewest and most attempts sent in the minute before each 429: the load that met it."""
    if not limited:
        return None
    starts = np.array([a.start for a in attempts])
    counts = [int(np.sum((starts >= a.start - 60.0) & (starts < a.start))) for a in limited]
    return min(counts), max(counts)


def _peak(attempts: Sequence[ObservedAttempt]) -> int:
    """The most attempts in flight at once."""
    events = sorted([(a.start, 1) for a in attempts] + [(a.end, -1) for a in attempts])
    peak = level = 0
    for _, step in events:
        level += step
        peak = max(peak, level)
    return peak


def _most_common(values: Iterable[str | None]) -> str | None:
    counted = Counter(v for v in values if v)
    return min(counted, key=lambda v: (-counted[v], v)) if counted else None
