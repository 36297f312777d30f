"""Realistic account profiles for virtual providers, with where each figure comes from.

Published limits change; these are the figures as documented when the profile
was written, and the profile says so. Latencies are medians and 95th
percentiles of public measurements for the named model class, fitted as
lognormals. Scenario files may override any field.
"""

from __future__ import annotations

from typing import Any

import attrs

from actors.backends.virtual import ErrorRates, LatencyModel
from actors.limits import LimitSpec
from actors.provider import ProviderSpec
from actors.runtime.distributions import LogNormal
from actors.runtime.errors import InvalidSetting

MINUTE = 60.0
HOUR = 3600.0
DAY = 86400.0
#: Where the figures of each provider come from (cited in each limit's ``source``).
GROQ_DOCS = "console.groq.com/docs/rate-limits"
OPENAI_DOCS = "platform.openai.com/docs/guides/rate-limits"
#: "Rate limits can be quantized, meaning they are enforced over shorter periods of time
#: (e.g. 60,000 requests/minute may be enforced as 1,000 requests/second)".
OPENAI_QUANTIZED = "help.openai.com/en/articles/6891753"
ANTHROPIC_DOCS = "docs.anthropic.com/en/api/rate-limits"
HF_HUB_DOCS = "huggingface.co/docs/hub/rate-limits"
#: A sub-minute slice: OpenAI's and Anthropic's example (per minute enforced per second).
SLICE = 1.0


@attrs.frozen
class Profile:
    """An account template: limits and prices (``spec``) and behaviour (``latency``, ``errors``)."""

    name: str
    spec: ProviderSpec
    latency: LatencyModel
    errors: ErrorRates
    source: str

    def account(self, name: str, **overrides: Any) -> ProviderSpec:
        """A concrete account of this profile."""
        return attrs.evolve(self.spec, name=name, **overrides)


GROQ_FREE = Profile(
    name="groq-free",
    spec=ProviderSpec(
        name="groq-free",
        family="groq",
        model="llama-3.1-8b-instant",
        tier="light",
        limits=(
            LimitSpec("rpm", "requests", 30, MINUTE, source=GROQ_DOCS),
            LimitSpec("rpd", "requests", 14_400, DAY, mode="window", source=GROQ_DOCS),
            LimitSpec("tpm", "tokens", 6_000, MINUTE, source=GROQ_DOCS),
            LimitSpec(
                "tpd",
                "tokens",
                500_000,
                DAY,
                source=(
                    f"{GROQ_DOCS} (500K TPD); a refilling bucket, as Groq's own 429 shows: "
                    "'TPD: Limit 100000, Used 97050, Requested 3619. Please try again in "
                    "9m38.016s' is 669 tokens short at 100,000/86,400 per second "
                    "(github.com/continuedev/continue/issues/10920)"
                ),
            ),
        ),
        max_concurrency=30,
        queue_limit=0,
        context_window=131_072,
    ),
    latency=LatencyModel(ttft=LogNormal.from_median_p95(0.25, 0.8), tokens_per_s=600.0),
    errors=ErrorRates(upstream_error=0.002),
    source=(
        "Groq free plan, llama-3.1-8b-instant: 30 requests/minute, 14,400 requests/day, "
        "6,000 tokens/minute, 500,000 tokens/day (console.groq.com/docs/rate-limits). Groq "
        "refills per-minute limits continuously, and its tokens per day too (the wait its 429 "
        "names is the shortfall at the daily rate); its x-ratelimit-*-requests headers "
        "describe the daily limit and -tokens the per-minute one. Decode speed of several "
        "hundred tokens/s for an 8B model on Groq's LPUs; no concurrency cap is published, "
        "so the RPM bounds it."
    ),
)

HUGGINGFACE = Profile(
    name="huggingface",
    spec=ProviderSpec(
        name="huggingface",
        family="huggingface",
        model="llama-3.1-8b-instruct",
        tier="light",
        limits=(
            LimitSpec(
                "requests_5min",
                "requests",
                83,
                5 * MINUTE,
                mode="window",
                source=(
                    f"{HF_HUB_DOCS}: 'All quotas are calculated over 5-minute fixed windows' "
                    "(the Hub's API, resolver and page buckets); ~1,000/hour as 83 per window"
                ),
            ),
        ),
        max_concurrency=16,
        queue_limit=64,
        context_window=8_192,
        monthly_fee=9.0,
    ),
    latency=LatencyModel(ttft=LogNormal.from_median_p95(0.5, 2.0), tokens_per_s=70.0),
    errors=ErrorRates(upstream_error=0.01, timeout=0.002),
    source=(
        "A HuggingFace account at about 1,000 requests/hour, counted the way HuggingFace "
        "documents its Hub rate limits: fixed 5-minute windows (huggingface.co/docs/hub/"
        "rate-limits, which lists per-plan quotas per 5 minutes for the Hub API, resolvers "
        "and pages, and sends IETF RateLimit headers naming a 'fixed window'). That page does "
        "not cover inference, which is now billed by credits (Inference Providers); the older "
        "serverless Inference API answered 'You reached free usage limit (reset hourly)' and "
        "was reported at ~300 requests/hour free: see the huggingface-hourly profile. Shared "
        "serverless GPUs: slower and more variable than dedicated APIs (text-generation-"
        "inference serving an 8B model on a shared GPU decodes at roughly 50-100 tokens/s), "
        "with occasional 5xx while models load. The PRO subscription costs $9 a month."
    ),
)

HUGGINGFACE_HOURLY = Profile(
    name="huggingface-hourly",
    spec=attrs.evolve(
        HUGGINGFACE.spec,
        name="huggingface-hourly",
        limits=(
            LimitSpec(
                "requests_hour",
                "requests",
                1_000,
                HOUR,
                mode="window",
                source=(
                    "the serverless Inference API's 429: 'Rate limit reached. You reached free "
                    "usage limit (reset hourly)' (huggingface.co/mistralai/Mistral-7B-Instruct-"
                    "v0.2/discussions/108); ~1,000/hour for PRO, ~300 reported for free"
                ),
            ),
        ),
    ),
    latency=HUGGINGFACE.latency,
    errors=HUGGINGFACE.errors,
    source=(
        "The huggingface account with the limit the serverless Inference API reported: a "
        "free-usage allowance that resets every hour, here 1,000 requests per hourly fixed "
        "window. A whole hour's allowance can go in one burst, where the 5-minute windows "
        "of the huggingface profile spread it out."
    ),
)

_OPENAI_SLICED = f"{OPENAI_DOCS}, tier 1; enforced per second, as {OPENAI_QUANTIZED} says it may be"

OPENAI_PAID = Profile(
    name="openai-paid",
    spec=ProviderSpec(
        name="openai-paid",
        family="openai",
        model="gpt-4o-mini",
        tier="strong",
        limits=(
            LimitSpec("rpm", "requests", 500, MINUTE, enforce_every=SLICE, source=_OPENAI_SLICED),
            LimitSpec("tpm", "tokens", 200_000, MINUTE, enforce_every=SLICE, source=_OPENAI_SLICED),
            LimitSpec("rpd", "requests", 10_000, DAY, mode="window", source=OPENAI_DOCS),
        ),
        max_concurrency=100,
        queue_limit=0,
        context_window=128_000,
        input_cost_per_mtok=0.15,
        output_cost_per_mtok=0.60,
    ),
    latency=LatencyModel(ttft=LogNormal.from_median_p95(0.5, 1.5), tokens_per_s=75.0),
    errors=ErrorRates(upstream_error=0.001),
    source=(
        "OpenAI usage tier 1, gpt-4o-mini: 500 requests/minute, 200,000 tokens/minute, "
        "10,000 requests/day (platform.openai.com/docs/guides/rate-limits); limits refill "
        "continuously and reset headers are durations like '6m0s'. The per-minute limits are "
        "enforced per second (a burst of 8 requests, 3,333 tokens), as OpenAI says they may be "
        "(help.openai.com/en/articles/6891753): a plan that holds then holds under the whole-"
        "minute reading too. A request's tokens count its max_tokens ('calculated as the "
        "maximum of max_tokens and the estimated number of tokens'), not refunded. Price "
        "$0.15 per million input tokens and $0.60 per million output tokens."
    ),
)

OPENAI_STRONG = Profile(
    name="openai-strong",
    spec=ProviderSpec(
        name="openai-strong",
        family="openai",
        model="gpt-4o",
        tier="strong",
        limits=(
            LimitSpec("rpm", "requests", 500, MINUTE, enforce_every=SLICE, source=_OPENAI_SLICED),
            LimitSpec("tpm", "tokens", 30_000, MINUTE, enforce_every=SLICE, source=_OPENAI_SLICED),
            LimitSpec("rpd", "requests", 10_000, DAY, mode="window", source=OPENAI_DOCS),
        ),
        max_concurrency=100,
        queue_limit=0,
        context_window=128_000,
        input_cost_per_mtok=2.50,
        output_cost_per_mtok=10.00,
    ),
    latency=LatencyModel(ttft=LogNormal.from_median_p95(0.6, 1.8), tokens_per_s=60.0),
    errors=ErrorRates(upstream_error=0.001),
    source=(
        "OpenAI usage tier 1, gpt-4o: 500 requests/minute and 30,000 tokens/minute "
        "(platform.openai.com/docs/guides/rate-limits), continuous refill, enforced per second "
        "like openai-paid (a burst of 500 tokens: a longer prompt waits for a full bucket). "
        "Price $2.50 per "
        "million input tokens and $10.00 per million output tokens: the strong model that "
        "cost-aware routing saves turns from."
    ),
)

_ANTHROPIC_SLICED = (
    f"{ANTHROPIC_DOCS}, tier 1; a token bucket ('capacity is continuously replenished'), "
    "enforced per second as Anthropic says it may be ('60 RPM may be enforced as 1 request "
    "per second')"
)
_ANTHROPIC_OTPM = (
    f"{_ANTHROPIC_SLICED}; 'OTPM rate limits are estimated based on max_tokens at the "
    "beginning of each request, and the estimate is adjusted at the end of the request'"
)


def _anthropic_limits(rpm: int, itpm: int, otpm: int) -> tuple[LimitSpec, ...]:
    """Anthropic's three limits: requests, input tokens and output tokens per minute."""
    return (
        LimitSpec("rpm", "requests", rpm, MINUTE, enforce_every=SLICE, source=_ANTHROPIC_SLICED),
        LimitSpec(
            "itpm", "input_tokens", itpm, MINUTE, enforce_every=SLICE, source=_ANTHROPIC_SLICED
        ),
        LimitSpec(
            "otpm",
            "output_tokens",
            otpm,
            MINUTE,
            enforce_every=SLICE,
            adjust_output=True,
            source=_ANTHROPIC_OTPM,
        ),
    )


ANTHROPIC_TIER1 = Profile(
    name="anthropic-tier1",
    spec=ProviderSpec(
        name="anthropic-tier1",
        family="anthropic",
        model="claude-sonnet-4",
        tier="strong",
        limits=_anthropic_limits(50, 30_000, 8_000),
        max_concurrency=50,
        queue_limit=0,
        context_window=200_000,
        input_cost_per_mtok=3.0,
        output_cost_per_mtok=15.0,
    ),
    latency=LatencyModel(ttft=LogNormal.from_median_p95(1.2, 3.0), tokens_per_s=55.0),
    errors=ErrorRates(upstream_error=0.002),
    source=(
        "Anthropic usage tier 1 ($5 credit purchase, at most $100 of usage a month), Claude "
        "Sonnet 4: 50 requests/minute, 30,000 input tokens/minute, 8,000 output tokens/minute "
        "(docs.anthropic.com/en/api/rate-limits), token buckets, output estimated from "
        "max_tokens and corrected to the actual output at the end of each call. Price $3 per "
        "million input tokens and $15 per million output tokens (docs.anthropic.com/en/docs/"
        "about-claude/pricing). Latency: roughly a second to the first token and ~50-60 "
        "tokens/s for a Sonnet-class model (public measurements, approximate); no "
        "concurrency cap is published, so the RPM bounds it."
    ),
)

ANTHROPIC_HAIKU_TIER1 = Profile(
    name="anthropic-haiku-tier1",
    spec=ProviderSpec(
        name="anthropic-haiku-tier1",
        family="anthropic",
        model="claude-3-5-haiku",
        tier="light",
        limits=_anthropic_limits(50, 50_000, 10_000),
        max_concurrency=50,
        queue_limit=0,
        context_window=200_000,
        input_cost_per_mtok=0.80,
        output_cost_per_mtok=4.0,
    ),
    latency=LatencyModel(ttft=LogNormal.from_median_p95(0.7, 2.0), tokens_per_s=65.0),
    errors=ErrorRates(upstream_error=0.002),
    source=(
        "Anthropic usage tier 1, Claude Haiku 3.5: 50 requests/minute, 50,000 input "
        "tokens/minute (cache reads count), 10,000 output tokens/minute "
        "(docs.anthropic.com/en/api/rate-limits), limits as in anthropic-tier1. Price $0.80 "
        "per million input tokens and $4 per million output tokens. Latency: under a second "
        "to the first token, ~65 tokens/s (public measurements, approximate)."
    ),
)

SELF_HOSTED_70B = Profile(
    name="selfhosted-70b",
    spec=ProviderSpec(
        name="selfhosted-70b",
        family="self-hosted",
        model="llama-3.1-70b-instruct",
        tier="strong",
        max_concurrency=32,
        queue_limit=256,
        context_window=32_768,
        cold_start=180.0,
        hourly_cost=4.0,
    ),
    latency=LatencyModel(ttft=LogNormal.from_median_p95(0.5, 1.5), tokens_per_s=30.0),
    errors=ErrorRates(upstream_error=0.001),
    source=(
        "A 70B model served by vLLM on 2 x A100 80 GB: about 3 minutes from power-on to "
        "serving (provisioning the node, pulling ~140 GB of weights, loading them and warming "
        "CUDA graphs), 32 concurrent sequences at ~30 tokens/s each, about $4 per GPU-pair "
        "hour on demand."
    ),
)

SELF_HOSTED_8B = Profile(
    name="selfhosted-8b",
    spec=ProviderSpec(
        name="selfhosted-8b",
        family="self-hosted",
        model="llama-3.1-8b-instruct",
        tier="light",
        max_concurrency=64,
        queue_limit=256,
        context_window=32_768,
        cold_start=20.0,
        hourly_cost=1.0,
    ),
    latency=LatencyModel(ttft=LogNormal.from_median_p95(0.2, 0.6), tokens_per_s=90.0),
    errors=ErrorRates(upstream_error=0.001),
    source=(
        "An 8B model served by vLLM on one L4/A10G-class GPU from a cached image: ~20 s to "
        "serve, 64 concurrent sequences at ~90 tokens/s each, about $1 per GPU hour."
    ),
)

PROFILES: dict[str, Profile] = {
    p.name: p
    for p in (
        GROQ_FREE,
        HUGGINGFACE,
        HUGGINGFACE_HOURLY,
        OPENAI_PAID,
        OPENAI_STRONG,
        ANTHROPIC_TIER1,
        ANTHROPIC_HAIKU_TIER1,
        SELF_HOSTED_70B,
        SELF_HOSTED_8B,
    )
}


def profile(name: str) -> Profile:
    try:
        return PROFILES[name]
    except KeyError:
        raise InvalidSetting("profile", name, " | ".join(PROFILES)) from None
