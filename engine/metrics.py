"""Recording every request's outcome, cheaply, for results and reports.

Appending to plain lists costs well under a microsecond per request; the lists
become numpy arrays once, when the run ends.
"""

from __future__ import annotations

import numpy as np

#: Outcome codes in the order of their index in the ``outcome`` array.
OUTCOMES = (
    "ok",
    "cancelled",
    "invalid_request",
    "no_provider",
    "deadline_exceeded",
    "request_failed",
    "overloaded",
    "shed",
    "retry_budget_exhausted",
    "error",
)


class RequestRecorder:
    """One row per request that entered the router, whatever its fate."""

    __slots__ = (
        "_kind_index",
        "_outcome_index",
        "_provider_index",
        "attempts",
        "cached",
        "cost",
        "kind",
        "kinds",
        "latency",
        "outcome",
        "provider",
        "providers",
        "queue_wait",
        "start",
        "ttft",
    )

    def __init__(self, providers: list[str]) -> None:
        self.providers = list(providers)
        self._provider_index = {name: i for i, name in enumerate(self.providers)}
        self._outcome_index = {code: i for i, code in enumerate(OUTCOMES)}
        self.kinds: list[str] = []
        self._kind_index: dict[str, int] = {}
        self.start: list[float] = []
        self.latency: list[float] = []
        self.ttft: list[float] = []
        self.queue_wait: list[float] = []
        self.attempts: list[int] = []
        self.provider: list[int] = []
        self.outcome: list[int] = []
        self.cached: list[bool] = []
        self.cost: list[float] = []
        self.kind: list[int] = []

    def __len__(self) -> int:
        return len(self.start)

    def record(
        self,
        kind: str,
        start: float,
        latency: float,
        ttft: float,
        attempts: int,
        provider: str | None,
        outcome: str,
        cached: bool,
        cost: float,
        queue_wait: float = 0.0,
    ) -> None:
        kind_index = self._kind_index.get(kind)
        if kind_index is None:
            kind_index = self._kind_index[kind] = len(self.kinds)
            self.kinds.append(kind)
        self.kind.append(kind_index)
        self.start.append(start)
        self.latency.append(latency)
        self.ttft.append(ttft)
        self.queue_wait.append(queue_wait)
        self.attempts.append(attempts)
        self.provider.append(-1 if provider is None else self._provider_index[provider])
        self.outcome.append(self._outcome_index.get(outcome, len(OUTCOMES) - 1))
        self.cached.append(cached)
        self.cost.append(cost)

    def arrays(self) -> dict[str, np.ndarray]:
        return {
            "start": np.asarray(self.start, dtype=float),
            "latency": np.asarray(self.latency, dtype=float),
            "ttft": np.asarray(self.ttft, dtype=float),
            "queue_wait": np.asarray(self.queue_wait, dtype=float),
            "attempts": np.asarray(self.attempts, dtype=np.int32),
            "provider": np.asarray(self.provider, dtype=np.int32),
            "outcome": np.asarray(self.outcome, dtype=np.int32),
            "cached": np.asarray(self.cached, dtype=bool),
            "cost": np.asarray(self.cost, dtype=float),
            "kind": np.asarray(self.kind, dtype=np.int32),
        }
