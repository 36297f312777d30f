"""Prometheus counters per caller key, named by the key's id (never the key)."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter

from actors.messages import Completion


class CallerMetrics:
    """Requests, refusals, tokens and cost by key id, in the server's registry."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self.requests = Counter(
            "callboard_caller_requests",
            "Requests by caller key id: admitted, or refused as over its budget",
            ["key", "outcome"],
            registry=registry,
        )
        self.unauthorized = Counter(
            "callboard_caller_unauthorized",
            "Requests refused with 401: no key, an unknown key, or a revoked one",
            ["reason"],
            registry=registry,
        )
        self.tokens = Counter(
            "callboard_caller_tokens",
            "Tokens of answers, by caller key id",
            ["key"],
            registry=registry,
        )
        self.cost = Counter(
            "callboard_caller_cost_dollars",
            "Cost of answers, by caller key id",
            ["key"],
            registry=registry,
        )

    def answered(self, key_id: str, completion: Completion) -> None:
        self.tokens.labels(key_id).inc(completion.prompt_tokens + completion.completion_tokens)
        self.cost.labels(key_id).inc(completion.cost)
