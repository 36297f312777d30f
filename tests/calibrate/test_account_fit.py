"""One account's fit from attempts: 429s a stated limit explains are the limit's, not a
share of failures; other 429s are a share."""

from __future__ import annotations

from sims.account_fit import fit_account
from sims.observed import ObservedAttempt


def _attempt(n: int, error: str | None = None, remaining: float = 100.0) -> ObservedAttempt:
    return ObservedAttempt(
        account="a",
        model="m",
        start=n * 1.0,
        end=n * 1.0 + 0.5,
        ttft=None if error else 0.1 + (n % 7) / 100,
        input_tokens=10,
        output_tokens=None if error else 20 + n % 5,
        error=error,
        retry_after=1.5 if error else None,
        ratelimit={"requests": {"limit": 60.0, "remaining": remaining, "reset": 2.0}},
    )


def test_429s_at_a_used_up_limit_are_the_limits_and_the_others_a_share():
    attempts = [_attempt(n) for n in range(40)]
    attempts += [_attempt(40 + n, "rate_limited", remaining=0.0) for n in range(5)]
    attempts += [_attempt(45 + n, "rate_limited") for n in range(5)]
    fit = fit_account("a", attempts, span=60.0)
    assert fit.at_limit == 5
    assert fit.errors["rate_limited"].estimate == 5 / 45  # the others, of the rest
    (limit,) = fit.limits
    assert (limit.unit, limit.limit, limit.lowest_remaining) == ("requests", 60.0, 0.0)
    assert len(fit.rate_limited_at) == 10 and fit.retry_after == 1.5
