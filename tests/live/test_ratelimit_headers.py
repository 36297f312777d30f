"""Rate-limit headers of every provider family, and the provider slowing down before a 429."""

from __future__ import annotations

import pytest

from actors.backends.ratelimit_headers import (
    LimitObservation,
    parse_duration,
    parse_rate_limit_headers,
    parse_retry_after,
    parse_rfc3339,
)
from actors.backends.virtual import ErrorRates, LatencyModel, VirtualBackend
from actors.breaker import BreakerConfig, CircuitBreaker
from actors.faults import FaultSchedule
from actors.limits import LimitSpec
from actors.messages import ChatMessage, ChatRequest
from actors.provider import AttemptFeed, Provider, ProviderSpec
from actors.runtime.randomness import RandomStreams

NOW = 1_700_000_000.0  # 2023-11-14T22:13:20Z


@pytest.mark.parametrize(
    ("text", "seconds"),
    [
        ("6m0s", 360.0),
        ("1.5s", 1.5),
        ("20ms", 0.02),
        ("1h2m3.5s", 3723.5),
        ("2m59.56s", 179.56),
        ("0s", 0.0),
        ("250us", 0.00025),
        ("7", 7.0),
        ("0.5", 0.5),
    ],
)
def test_durations_as_openai_writes_them(text, seconds):
    assert parse_duration(text) == pytest.approx(seconds)


@pytest.mark.parametrize("text", ["", "soon", "5x", "1m-3s", "m", "-2s", "1.5.5s"])
def test_unreadable_durations_are_none(text):
    assert parse_duration(text) is None


def test_retry_after_in_seconds_ms_and_http_date():
    assert parse_retry_after({"Retry-After": "30"}, NOW) == 30.0
    assert parse_retry_after({"retry-after": "1.5"}, NOW) == 1.5
    # retry-after-ms is the more precise of the two when both are sent.
    assert parse_retry_after({"retry-after-ms": "250", "retry-after": "1"}, NOW) == 0.25
    date = "Tue, 14 Nov 2023 22:13:50 GMT"  # NOW + 30 s
    assert parse_retry_after({"retry-after": date}, NOW) == pytest.approx(30.0)
    assert parse_retry_after({"retry-after": "Tue, 14 Nov 2023 22:00:00 GMT"}, NOW) == 0.0
    assert parse_retry_after({}, NOW) is None
    assert parse_retry_after({"retry-after": "whenever"}, NOW) is None


def test_http_date_is_read_against_the_providers_own_clock():
    # The provider's clock is 100 s ahead of ours: its Date header is the reference.
    headers = {
        "date": "Tue, 14 Nov 2023 22:15:00 GMT",
        "retry-after": "Tue, 14 Nov 2023 22:15:20 GMT",
    }
    assert parse_retry_after(headers, NOW) == pytest.approx(20.0)


def test_openai_headers():
    info = parse_rate_limit_headers(
        {
            "x-ratelimit-limit-requests": "500",
            "x-ratelimit-remaining-requests": "499",
            "x-ratelimit-reset-requests": "120ms",
            "x-ratelimit-limit-tokens": "200000",
            "x-ratelimit-remaining-tokens": "199000",
            "x-ratelimit-reset-tokens": "6m0s",
        },
        NOW,
    )
    assert info.retry_after is None
    assert info.limits == (
        LimitObservation("requests", 499.0, 500.0, 0.12),
        LimitObservation("tokens", 199000.0, 200000.0, 360.0),
    )


def test_anthropic_headers_with_rfc3339_resets():
    info = parse_rate_limit_headers(
        {
            "anthropic-ratelimit-requests-limit": "50",
            "anthropic-ratelimit-requests-remaining": "0",
            "anthropic-ratelimit-requests-reset": "2023-11-14T22:13:32Z",
            "anthropic-ratelimit-input-tokens-limit": "40000",
            "anthropic-ratelimit-input-tokens-remaining": "39000",
            "anthropic-ratelimit-input-tokens-reset": "2023-11-14T22:13:21.500+00:00",
            "retry-after": "12",
        },
        NOW,
    )
    assert info.retry_after == 12.0
    requests, tokens = info.limits
    assert requests == LimitObservation("requests", 0.0, 50.0, pytest.approx(12.0))
    assert tokens.dimension == "input_tokens"
    assert tokens.reset_in == pytest.approx(1.5)
    assert parse_rfc3339("2023-11-14T22:13:20") is None  # no zone: refused, not guessed


def test_ietf_draft_headers_as_huggingface_sends_them():
    info = parse_rate_limit_headers(
        {"RateLimit": '"api";r=12;t=95', "RateLimit-Policy": '"fixed window";"api";q=1000;w=300'},
        NOW,
    )
    assert info.limits == (LimitObservation("requests", 12.0, 1000.0, 95.0),)


def test_garbage_values_are_ignored_not_fatal():
    info = parse_rate_limit_headers(
        {
            "x-ratelimit-remaining-requests": "lots",
            "x-ratelimit-remaining-tokens": "10",
            "x-ratelimit-reset-tokens": "later",
            "anthropic-ratelimit-requests-remaining": "nan",
        },
        NOW,
    )
    assert info.limits == (LimitObservation("tokens", 10.0, None, None),)
    assert not parse_rate_limit_headers({"content-type": "application/json"}, NOW)


def _provider(*limits: LimitSpec) -> Provider:
    spec = ProviderSpec(name="p", limits=limits)
    backend = VirtualBackend("p", LatencyModel(), ErrorRates(), FaultSchedule(), RandomStreams(0))
    return Provider(spec, backend, CircuitBreaker("p", BreakerConfig()), AttemptFeed())


REQUEST = ChatRequest(messages=(ChatMessage("user", "hi"),), max_tokens=1)


def test_a_report_without_a_reset_lowers_the_matching_limiter():
    provider = _provider(
        LimitSpec("rpm", "requests", 30, 60.0),
        LimitSpec("rpd", "requests", 14_400, 86400.0, "window"),
    )
    assert provider.wait_before(REQUEST, 10.0) == 0.0
    # No reset: nothing says until when, so the size picks the configured limiter to lower
    # (Groq's request headers describe the daily limit) and its own window decides.
    provider.observe_limits([LimitObservation("requests", 0, 14_400, None)], 10.0)
    assert provider.wait_before(REQUEST, 10.0) == pytest.approx(86400.0 - 10.0)
    assert not provider.admission.reported


def test_groqs_daily_requests_rest_until_the_reported_reset_not_the_configured_day():
    provider = _provider(
        LimitSpec("rpm", "requests", 30, 60.0),
        LimitSpec("rpd", "requests", 14_400, 86400.0, "window"),
    )
    # The provider's day ends in 5,000 s, whatever the configured window's boundary says.
    provider.observe_limits([LimitObservation("requests", 0, 14_400, 5000.0)], 10.0)
    assert provider.wait_before(REQUEST, 10.0) == pytest.approx(5000.0)
    assert provider.wait_before(REQUEST, 5010.0) == 0.0


def test_reported_exhaustion_without_a_configured_limit_rests_until_the_reset():
    provider = _provider()
    provider.observe_limits([LimitObservation("requests", 3, None, 20.0)], 5.0)
    assert provider.wait_before(REQUEST, 5.0) == 0.0
    provider.observe_limits([LimitObservation("tokens", 0, 6000, 20.0)], 5.0)
    assert provider.wait_before(REQUEST, 5.0) == pytest.approx(20.0)
    assert provider.wait_before(REQUEST, 25.0) == 0.0


def test_anthropic_input_and_output_token_headers_land_on_itpm_and_otpm():
    provider = _provider(
        LimitSpec("rpm", "requests", 50, 60.0, enforce_every=1.0),
        LimitSpec("itpm", "input_tokens", 30_000, 60.0, enforce_every=1.0),
        LimitSpec("otpm", "output_tokens", 8_000, 60.0, enforce_every=1.0, adjust_output=True),
    )
    headers = {
        "anthropic-ratelimit-input-tokens-limit": "30000",
        "anthropic-ratelimit-input-tokens-remaining": "29000",
        "anthropic-ratelimit-input-tokens-reset": "2024-05-01T12:00:01Z",
        "anthropic-ratelimit-output-tokens-limit": "8000",
        "anthropic-ratelimit-output-tokens-remaining": "0",
        "anthropic-ratelimit-output-tokens-reset": "2024-05-01T12:00:30Z",
        "date": "Wed, 01 May 2024 12:00:00 GMT",
    }
    provider.observe_limits(parse_rate_limit_headers(headers, NOW).limits, 10.0)
    # 0 output tokens left until 12:00:30, the configured OTPM bucket's refill notwithstanding.
    assert provider.wait_before(REQUEST, 10.0) == pytest.approx(30.0)
    assert provider.stats.held_back["output_tokens (reported)"] == 1
    assert provider.wait_before(REQUEST, 40.0) == 0.0
    reported = provider.admission.reported
    assert (reported["input_tokens"].remaining, reported["input_tokens"].resets_at) == (29000, 11)
    assert (reported["output_tokens"].remaining, reported["output_tokens"].limit) == (0, 8000)
