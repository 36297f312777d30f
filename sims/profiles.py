"""Realistic account profiles for virtual providers, with where each figure comes from.

Published limits change; these are the figures as documented when the profile
was written, and the profile says so. Latencies are medians and 95th
percentiles of public measurements for the named model class, fitted as
lognormals. Scenario files may override any field.
"""

from __future__ import annotations

import attrs

from actors.backends.virtual import ErrorRates, LatencyModel
from actors.limits import LimitSpec
from actors.provider import ProviderSpec
from actors.runtime.distributions import LogNormal
from actors.runtime.errors import InvalidSetting

MINUTE = 60.0
DAY = 86400.0


@attrs.frozen
class Profile:
    """An account template: limits and prices (``spec``) and behaviour (``latency``, ``errors``)."""

    name: str
    spec: ProviderSpec
    latency: LatencyModel
    errors: ErrorRates
    source: str

    def account(self, name: str, **overrides: object) -> ProviderSpec:
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
            LimitSpec("rpm", "requests", 30, MINUTE),
            LimitSpec("rpd", "requests", 14_400, DAY, mode="window"),
            LimitSpec("tpm", "tokens", 6_000, MINUTE),
        ),
        max_concurrency=30,
        queue_limit=0,
        context_window=131_072,
    ),
    latency=LatencyModel(ttft=LogNormal.from_median_p95(0.25, 0.8), tokens_per_s=600.0),
    errors=ErrorRates(upstream_error=0.002),
    source=(
        "Groq free plan, llama-3.1-8b-instant: 30 requests/minute, 14,400 requests/day, "
        "6,000 tokens/minute (console.groq.com/docs/rate-limits). Groq refills per-minute "
        "limits continuously and counts requests per day; its x-ratelimit-*-requests headers "
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
        limits=(LimitSpec("requests_5min", "requests", 83, 5 * MINUTE, mode="window"),),
        max_concurrency=16,
        queue_limit=64,
        context_window=8_192,
        monthly_fee=9.0,
    ),
    latency=LatencyModel(ttft=LogNormal.from_median_p95(0.5, 2.0), tokens_per_s=70.0),
    errors=ErrorRates(upstream_error=0.01, timeout=0.002),
    source=(
        "A HuggingFace Inference account at about 1,000 requests/hour. HuggingFace defines "
        "its rate limits over fixed 5-minute windows (huggingface.co/docs/hub/rate-limits), "
        "so 1,000/hour is modelled as 83 requests per 5-minute window. Free accounts have "
        "been reported at ~300 requests/hour and PRO at ~1,000. Shared serverless GPUs: "
        "slower and more variable than dedicated APIs (text-generation-inference serving an 8B "
        "model on a shared GPU decodes at roughly 50-100 tokens/s), with occasional 5xx while "
        "models load. The PRO subscription that gives ~1,000/hour costs $9 a month."
    ),
)

OPENAI_PAID = Profile(
    name="openai-paid",
    spec=ProviderSpec(
        name="openai-paid",
        family="openai",
        model="gpt-4o-mini",
        tier="strong",
        limits=(
            LimitSpec("rpm", "requests", 500, MINUTE),
            LimitSpec("tpm", "tokens", 200_000, MINUTE),
            LimitSpec("rpd", "requests", 10_000, DAY, mode="window"),
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
        "continuously and reset headers are durations like '6m0s'. Price $0.15 per million "
        "input tokens and $0.60 per million output tokens."
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
            LimitSpec("rpm", "requests", 500, MINUTE),
            LimitSpec("tpm", "tokens", 30_000, MINUTE),
            LimitSpec("rpd", "requests", 10_000, DAY, mode="window"),
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
        "(platform.openai.com/docs/guides/rate-limits), continuous refill. Price $2.50 per "
        "million input tokens and $10.00 per million output tokens: the strong model that "
        "cost-aware routing saves turns from."
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
    for p in (GROQ_FREE, HUGGINGFACE, OPENAI_PAID, OPENAI_STRONG, SELF_HOSTED_70B, SELF_HOSTED_8B)
}


def profile(name: str) -> Profile:
    try:
        return PROFILES[name]
    except KeyError:
        raise InvalidSetting("profile", name, " | ".join(PROFILES)) from None
