"""Prometheus metrics for the live router.

Request outcomes come from the router itself: :class:`LiveMetrics` is a
:class:`engine.routing.recording.Recorder`, so every request
that enters the router is counted exactly once, whatever its fate. Provider
gauges (health, breaker, quota, slots, limits configured and reported) are read from
the actors' published state when Prometheus scrapes, not kept up to date on the hot path.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING

from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from actors.breaker import Transition
from engine.routing.books import Books
from engine.routing.recording import AttemptRecord, RequestRecord
from engine.serve.limit_view import SOURCES

if TYPE_CHECKING:
    from engine.serve.live_router import LiveRouter
    from engine.serve.state.shared import SharedState

CONTENT_TYPE = b"text/plain; version=0.0.4; charset=utf-8"
_LATENCY_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1, 2, 4, 8, 15, 30, 60, 120)
_BREAKER_STATES = ("closed", "half_open", "open")


class LiveMetrics:
    """One registry per server (tests run several side by side)."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.rejected_early = 0
        r = self.registry
        self.requests = Counter(
            "callboard_requests",
            "Requests that entered the router, by outcome and answering provider",
            ["outcome", "provider"],
            registry=r,
        )
        self.latency = Histogram(
            "callboard_request_latency_seconds",
            "Time from receipt to answer or failure",
            ["outcome"],
            buckets=_LATENCY_BUCKETS,
            registry=r,
        )
        self.ttft = Histogram(
            "callboard_request_ttft_seconds",
            "Time to first token of answered requests",
            buckets=_LATENCY_BUCKETS,
            registry=r,
        )
        self.attempts = Counter(
            "callboard_request_attempts", "Provider attempts made for requests", registry=r
        )
        self.cost = Counter(
            "callboard_cost_dollars",
            "What providers billed for attempts, by provider and how the attempt ended",
            ["provider", "outcome"],
            registry=r,
        )
        self.transitions = Counter(
            "callboard_breaker_transitions",
            "Circuit breaker transitions, by provider and target state",
            ["provider", "state"],
            registry=r,
        )
        self.http = Counter(
            "callboard_http_responses",
            "HTTP responses, by route and status",
            ["route", "status"],
            registry=r,
        )

    # --- the Recorder protocol the router calls ---------------------------
    def record(self, outcome: RequestRecord) -> None:
        code = outcome.code
        label = "cache" if outcome.cached else (outcome.provider or "none")
        self.requests.labels(code, label).inc()
        self.latency.labels(code).observe(outcome.latency)
        if code == "ok":
            self.ttft.observe(outcome.ttft)
        self.attempts.inc(outcome.attempts)

    def record_attempt(self, attempt: AttemptRecord) -> None:
        if attempt.cost:
            self.cost.labels(attempt.provider, attempt.code).inc(attempt.cost)

    def rejected_before_router(self) -> None:
        """A request refused while its body was read (not JSON, wrong types): still counted."""
        self.rejected_early += 1
        self.requests.labels("invalid_request", "none").inc()
        self.latency.labels("invalid_request").observe(0.0)

    def on_transition(self, transition: Transition) -> None:
        self.transitions.labels(transition.provider, transition.target.value).inc()

    def response(self, route: str, status: int) -> None:
        self.http.labels(route, str(status)).inc()

    def attach(self, live: LiveRouter) -> None:
        self.registry.register(_FleetCollector(live, self))

    def render(self) -> bytes:
        return generate_latest(self.registry)


class _FleetCollector(Collector):
    def __init__(self, live: LiveRouter, metrics: LiveMetrics) -> None:
        self.live = live
        self.metrics = metrics

    def collect(self) -> Iterator[Metric]:
        router = self.live.router
        stats = router.stats
        books = Books.of(router)
        # received = queued + in flight + every outcome counted in callboard_requests_total.
        received = CounterMetricFamily(
            "callboard_requests_received",
            "Requests that entered the router (or were refused while their body was read)",
        )
        received.add_metric([], books.received + self.metrics.rejected_early)
        yield received
        queued = GaugeMetricFamily(
            "callboard_requests_queued", "Requests waiting in the router's line for a provider"
        )
        queued.add_metric([], books.queued)
        yield queued
        in_flight = GaugeMetricFamily(
            "callboard_requests_in_flight", "Requests at a provider or between attempts"
        )
        in_flight.add_metric([], books.in_flight)
        yield in_flight
        for name, value, help_text in (
            ("callboard_retries", stats.retries, "Retries after a backoff"),
            ("callboard_failovers", stats.failovers, "Moves to another provider"),
            ("callboard_upstream_rate_limited", stats.rate_limited, "429s met by requests"),
        ):
            family = CounterMetricFamily(name, help_text)
            family.add_metric([], value)
            yield family
        sessions = GaugeMetricFamily("callboard_sessions", "Interview sessions held")
        sessions.add_metric([], len(self.live.sessions))
        yield sessions
        gauges = {
            "health_score": GaugeMetricFamily(
                "callboard_provider_health_score", "Health score in [0, 1]", labels=["provider"]
            ),
            "error_rate": GaugeMetricFamily(
                "callboard_provider_error_rate", "Error rate (EWMA)", labels=["provider"]
            ),
            "quota_left": GaugeMetricFamily(
                "callboard_provider_quota_left", "Tightest limit's share left", labels=["provider"]
            ),
            "in_flight": GaugeMetricFamily(
                "callboard_provider_in_flight", "Calls holding a slot", labels=["provider"]
            ),
            "available": GaugeMetricFamily(
                "callboard_provider_available", "1 if it can take a call now", labels=["provider"]
            ),
        }
        latency = GaugeMetricFamily(
            "callboard_provider_latency_seconds",
            "Latency percentiles of recent calls",
            labels=["provider", "quantile"],
        )
        breaker = GaugeMetricFamily(
            "callboard_provider_breaker_state",
            "1 for the breaker's current state",
            labels=["provider", "state"],
        )
        limit_remaining = GaugeMetricFamily(
            "callboard_provider_limit_remaining",
            "What a unit's limit admits now: the tightest configured limiter, or the "
            "provider's last report less what was sent since",
            labels=["provider", "unit", "source"],
        )
        limit_reset = GaugeMetricFamily(
            "callboard_provider_limit_reset_seconds",
            "Seconds until the provider's reported limit of a unit resets",
            labels=["provider", "unit"],
        )
        limit_binding = GaugeMetricFamily(
            "callboard_provider_limit_binding",
            "1 for the source of a unit's limit that binds now",
            labels=["provider", "unit", "source"],
        )
        for status in self.live.status():
            name = status.name
            gauges["health_score"].add_metric([name], status.health_score)
            gauges["error_rate"].add_metric([name], status.error_rate)
            gauges["quota_left"].add_metric([name], status.quota_left)
            gauges["in_flight"].add_metric([name], status.in_flight)
            gauges["available"].add_metric([name], 1.0 if status.available else 0.0)
            for quantile in ("p50", "p95", "p99"):
                ms = status.latency_ms[quantile]
                if ms is not None:
                    latency.add_metric([name, quantile[1:]], ms / 1000)
            for state in _BREAKER_STATES:
                breaker.add_metric([name, state], 1.0 if status.breaker == state else 0.0)
            for unit in status.limits:
                if unit.configured:
                    room = min(limit.remaining for limit in unit.configured)
                    limit_remaining.add_metric([name, unit.unit, "configured"], room)
                if unit.reported is not None:
                    limit_remaining.add_metric(
                        [name, unit.unit, "reported"], unit.reported.remaining
                    )
                    limit_reset.add_metric([name, unit.unit], unit.reported.reset_in_s)
                for source in SOURCES:
                    held = 1.0 if unit.binding == source else 0.0
                    limit_binding.add_metric([name, unit.unit, source], held)
        yield from gauges.values()
        yield latency
        yield breaker
        yield limit_remaining
        yield limit_reset
        yield limit_binding
        if self.live.state is not None:
            yield from _state_metrics(self.live.state)


def _state_metrics(state: SharedState) -> Iterator[Metric]:
    """The shared store: reachable or not, and what fell back to local state meanwhile."""
    guard = state.guard
    up = GaugeMetricFamily(
        "callboard_state_store_up", "1 while the shared state store answers", labels=["store"]
    )
    up.add_metric([guard.label], 1.0 if guard.up else 0.0)
    yield up
    for name, counts, help_text in (
        ("callboard_state_store_calls", guard.calls, "Calls made to the shared store"),
        ("callboard_state_store_failures", guard.failures, "Store calls that failed or timed out"),
        (
            "callboard_state_store_skipped",
            guard.skipped,
            "Store calls not made while it was down (served on local state)",
        ),
    ):
        family = CounterMetricFamily(name, help_text, labels=["op"])
        for op in sorted(counts):
            family.add_metric([op], counts[op])
        yield family
    for name, value, help_text in (
        ("callboard_state_store_outages", guard.outages, "Times the shared store went down"),
        ("callboard_state_writes_dropped", state.dropped, "Shared writes dropped, outbox full"),
        ("callboard_state_quarantines_adopted", state.adopted, "Quarantines taken from others"),
        (
            "callboard_state_rate_limits_adopted",
            state.coolings_adopted,
            "Provider 429 cool-downs taken from others",
        ),
        ("callboard_state_cache_copied", state.cache_copied, "Cache entries copied from others"),
    ):
        family = CounterMetricFamily(name, help_text)
        family.add_metric([], value)
        yield family
