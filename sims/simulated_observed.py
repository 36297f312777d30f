"""A simulated run's requests as the trace reader gives observed ones.

`callboard compare` judges the simulated fleet against traces; computing both sides'
figures from the same types (:class:`sims.observed.ObservedRequest`) is what makes them
the same figures. This recorder builds them from the router's records as the span
recorder (:mod:`engine.traces.spans`) would write them and the reader read them back,
without the encoding: the same attempts (those sent), the same times, the same errors.
"""

from __future__ import annotations

import math

from engine.routing.recording import AttemptRecord, RequestRecord
from sims.observed import ObservedAttempt, ObservedRequest


class ObservingRecorder:
    """A :class:`~engine.routing.recording.Recorder` keeping each request as observed
    (needs a fleet opened with ``attempt_details``, as :func:`sims.runner.simulate` opens
    it for extra recorders)."""

    def __init__(self) -> None:
        self.requests: list[ObservedRequest] = []
        self._attempts: dict[str, list[ObservedAttempt]] = {}

    def record_attempt(self, attempt: AttemptRecord) -> None:
        seen = attempt.seen
        if attempt.code == "rejected" or seen is None:
            return  # refused by the account's own limits before it was sent: no call
        self._attempts.setdefault(attempt.request_id, []).append(
            ObservedAttempt(
                account=attempt.provider,
                model=None,
                start=seen.start,
                end=seen.end,
                ttft=None if math.isnan(seen.ttft) else seen.ttft,
                input_tokens=seen.input_tokens,
                output_tokens=seen.output_tokens,
                error=None if attempt.code == "ok" else attempt.code,
                retry_after=seen.retry_after,
                ratelimit={},
            )
        )

    def record(self, outcome: RequestRecord) -> None:
        attempts = sorted(self._attempts.pop(outcome.request_id, ()), key=lambda a: a.start)
        completion = outcome.completion
        self.requests.append(
            ObservedRequest(
                request_id=outcome.request_id,
                start=outcome.start,
                end=outcome.start + outcome.latency,
                ttft=None if completion is None else outcome.ttft,
                session=outcome.session,
                kind=outcome.kind,
                outcome=outcome.code,
                cached=outcome.cached,
                input_tokens=None if completion is None else completion.prompt_tokens,
                output_tokens=None if completion is None else completion.completion_tokens,
                attempts=tuple(attempts),
            )
        )
