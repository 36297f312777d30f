"""The virtual backend: a modelled provider behind every simulation.

A call takes time to first token plus output tokens / decode speed, fails by
kind at configured rates, and obeys the fault schedule active at that moment.
Every draw comes from the account's own named streams, so two policies run
against the same seed see the same provider behaviour (common random numbers).
"""

from __future__ import annotations

from collections.abc import Callable

import attrs
import trio

from actors.backends import BackendReply, Usage
from actors.backends.sink import StreamSink
from actors.errors import (
    AuthFailed,
    MalformedReply,
    ProviderOverloaded,
    RateLimited,
    UpstreamError,
)
from actors.failures import FAULT_CODES, ErrorCode, FaultKind
from actors.faults import FaultSchedule
from actors.messages import ChatRequest, filler_length
from actors.runtime import clock
from actors.runtime.distributions import Constant, DistributionSpec, LogNormal
from actors.runtime.errors import InvalidSetting
from actors.runtime.randomness import RandomStreams
from actors.timeouts import AnswerWatch

#: The codes a call fails with at a configured share (:class:`ErrorRates`, by field);
#: ``timeout`` is a call taken in and never answered.
ERROR_RATE_CODES = (
    ErrorCode.RATE_LIMITED,
    ErrorCode.OVERLOADED,
    ErrorCode.UPSTREAM_ERROR,
    ErrorCode.TIMEOUT,
    ErrorCode.MALFORMED_REPLY,
)


@attrs.frozen
class LatencyModel:
    """How long a call takes.

    ``service``, if set, is the whole call's duration (a queueing-model server);
    otherwise a call takes ``ttft`` + output tokens / ``tokens_per_s``.
    ``output_tokens`` is used when the request does not say how long its answer is.
    """

    ttft: DistributionSpec = LogNormal.from_median_p95(0.4, 1.2)
    tokens_per_s: float = 80.0
    output_tokens: DistributionSpec = Constant(150)
    service: DistributionSpec | None = None
    error_ttft: DistributionSpec = Constant(0.2)

    def __attrs_post_init__(self) -> None:
        if not self.tokens_per_s > 0:
            raise InvalidSetting("latency.tokens_per_s", self.tokens_per_s, "> 0 tokens/s")


@attrs.frozen
class ErrorRates:
    """Share of calls failing with each error code (a field per code), independent of faults."""

    rate_limited: float = 0.0
    #: Overloaded (529) without a Retry-After: the router's overload cool-down applies.
    overloaded: float = 0.0
    upstream_error: float = 0.0
    timeout: float = 0.0
    malformed_reply: float = 0.0
    rate_limited_retry_after: float = 1.0

    def __attrs_post_init__(self) -> None:
        total = 0.0
        for code in ERROR_RATE_CODES:
            rate = getattr(self, code)
            if not 0 <= rate <= 1:
                raise InvalidSetting(f"errors.{code}", rate, "a share in [0, 1]")
            total += rate
        if total > 1:
            raise InvalidSetting("errors", total, "error shares that add up to at most 1")


class VirtualBackend:
    """One account's modelled behaviour."""

    def __init__(
        self,
        account: str,
        latency: LatencyModel,
        errors: ErrorRates,
        faults: FaultSchedule,
        streams: RandomStreams,
        fault_clock: Callable[[], float] | None = None,
        fault_time_scale: float = 1.0,
    ) -> None:
        """``fault_clock`` gives the time the fault schedule is read at (default: the
        clock's own); a replay runs the schedule ``fault_time_scale`` times faster than
        real time, and a fault's Retry-After shrinks with it."""
        self.account = account
        self.latency = latency
        self.errors = errors
        self.faults = faults
        self.fault_clock = fault_clock
        self.fault_time_scale = fault_time_scale
        self._timing = streams.stream(f"provider:{account}:latency")
        self._fate = streams.stream(f"provider:{account}:errors")
        self._cumulative = self._cumulative_rates(errors)

    @staticmethod
    def _cumulative_rates(errors: ErrorRates) -> list[tuple[float, ErrorCode]]:
        total, table = 0.0, []
        for code in ERROR_RATE_CODES:
            rate = getattr(errors, code)
            if rate > 0:
                total += rate
                table.append((total, code))
        return table

    def _duration(self, request: ChatRequest) -> tuple[float, float, int]:
        """(ttft, total duration, output tokens) for a successful call."""
        model = self.latency
        timing = self._timing
        service = model.service.sample(timing) if model.service is not None else None
        tokens = request.expected_output_tokens or int(model.output_tokens.sample(timing))
        if request.max_tokens is not None:
            tokens = min(tokens, request.max_tokens)  # a provider stops at max_tokens
        if service is not None:
            return service, service, tokens
        ttft = model.ttft.sample(timing)
        return ttft, ttft + tokens / model.tokens_per_s, tokens

    def _fault_fate(self, now: float) -> tuple[ErrorCode | None, float, float, int]:
        """(error code or None, latency multiplier, retry_after, status) from active faults."""
        multiplier, fate, retry_after, status = 1.0, None, 0.0, 503
        for fault in self.faults.active(now):
            if fault.kind == FaultKind.LATENCY:
                multiplier *= fault.multiplier
                continue
            # One draw per fault window, so adding a window never reshuffles the others.
            if fate is None and self._fate.uniform() < fault.share_at(now):
                fate, retry_after, status = FAULT_CODES[fault.kind], fault.retry_after, fault.status
        return fate, multiplier, retry_after, status

    async def complete(
        self,
        request: ChatRequest,
        request_id: str,
        usage: Usage,
        sink: StreamSink | None = None,
        watch: AnswerWatch | None = None,
    ) -> BackendReply:
        """One modelled answer; it sends no text to ``sink`` (its caller gets the answer
        whole), but a request that streams (``request.stream``, or a sink) is timed as a
        stream: its first byte comes with its first token, then a token at a time."""
        ttft, duration, tokens = self._duration(request)
        fate: ErrorCode | None = None
        multiplier, retry_after, status = 1.0, self.errors.rate_limited_retry_after, 500
        # A fault's Retry-After; a 529 drawn from the error rates sends none.
        overload_hint: float | None = None
        if self.faults.faults:  # an empty schedule, the common case, costs no call
            now = clock.now() if self.fault_clock is None else self.fault_clock()
            fate, multiplier, fault_retry, fault_status = self._fault_fate(now)
            if fate is not None:
                retry_after, status = fault_retry / self.fault_time_scale, fault_status
                overload_hint = retry_after
        if fate is None and self._cumulative:
            u = self._fate.uniform()
            for threshold, code in self._cumulative:
                if u < threshold:
                    fate = code
                    break
        if fate is None or fate is ErrorCode.MALFORMED_REPLY:
            # The model reads the prompt and generates: billed even if cut short.
            usage.input_tokens = request.prompt_tokens
            # Generating: ``duration`` spent producing ``tokens`` after ``ttft``; ``usage``
            # keeps what was generated when it stops (decoding runs at a steady pace after
            # the first token; a server modelled by its whole service time decodes
            # throughout it). Written out here, not in a helper: one await level less on
            # the simulator's hottest path.
            ttft, duration = ttft * multiplier, duration * multiplier
            began = clock.now()
            first = 0.0 if ttft >= duration else ttft
            if watch is not None:
                if request.stream or sink is not None:
                    gap = multiplier / self.latency.tokens_per_s
                    watch.expect(began + ttft, gap, began + duration)
                else:  # a whole answer is sent when it is done: its first byte is its last
                    watch.expect(began + duration, 0.0, began + duration)
            finished = False
            try:
                await clock.sleep(duration)
                finished = True
            finally:
                # A whole answer is all its tokens; only one cut short is counted from the
                # clock (now - began can fall a rounding short of the duration slept).
                if finished:
                    usage.output_tokens = tokens
                else:
                    done = clock.now() - began - first
                    if done > 0:
                        usage.output_tokens = min(tokens, int(tokens * done / (duration - first)))
            if fate is not None:
                raise MalformedReply(self.account, "reply body is not a valid completion")
            head = f"[{self.account}] answer to {request_id}: "
            # As long as the tokens it stands for, so that histories grow as they would:
            # the distinct head, then filler counted but not held.
            return BackendReply(head, tokens, ttft, padding=filler_length(4 * tokens - len(head)))
        if fate is ErrorCode.TIMEOUT:
            # Taken in, then stuck: the input is billed, nothing comes out.
            usage.input_tokens = request.prompt_tokens
            await trio.sleep_forever()
        # Refused before any work (429, 5xx, 401): providers bill nothing for these.
        await clock.sleep(self.latency.error_ttft.sample(self._timing) * multiplier)
        if fate is ErrorCode.RATE_LIMITED:
            raise RateLimited(self.account, "upstream", retry_after)
        if fate is ErrorCode.OVERLOADED:
            raise ProviderOverloaded(self.account, overload_hint, "HTTP 529 Overloaded")
        if fate is ErrorCode.AUTH_FAILED:
            raise AuthFailed(self.account, "HTTP 401 invalid API key")
        raise UpstreamError(self.account, status)
