"""The records of a request and of its attempts, and recording them cheaply.

:class:`RequestRecord` and :class:`AttemptRecord` are the format both worlds record
traffic in: the live router's metrics count them, the simulator's results.json stores
them as columns (``sims.results``), and later they are what spans are exported as and
calibration reads.

Each column is an ``array.array`` of machine numbers: an append costs what a list
append does, but keeps 8 bytes instead of a 32-byte float object alive per value
(tens of MB in a long run, and less for the allocator and the cache to chew on).
The columns become numpy arrays when asked for: read-only arrays over the columns' own
buffers, not copies, which would double a long run's columns at its end.

The router hands each request's end to a :class:`Recorder` as one :class:`RequestRecord`
and each attempt's as one :class:`AttemptRecord`; :class:`RequestRecorder` keeps them for
results, the live server's metrics count them.
"""

from __future__ import annotations

from array import array
from typing import TYPE_CHECKING, Protocol

import attrs
import numpy as np

if TYPE_CHECKING:
    from actors.messages import ChatRequest, Completion
    from actors.provider import AttemptSeen

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


# Not frozen: a frozen attrs class sets each field through object.__setattr__, which made
# building one 3.6x dearer (683 ns against 187 ns); one is built per request and read
# once by the recorder, so nothing holds it long enough to need the guard.
@attrs.define(slots=True)
class RequestRecord:
    """How one request that entered the router ended: answered, or a named error.

    Times are in seconds on the router's clock (virtual in a simulation).
    """

    #: The request's turn kind (the workload's ``question``, ``evaluation`` ...).
    kind: str
    #: When it entered the router.
    start: float
    #: Seconds from ``start`` until it was answered or failed.
    latency: float
    #: Seconds from ``start`` to the answer's first token.
    ttft: float
    #: Attempts sent to providers for it (0 for a cache hit or a request that never left).
    attempts: int
    #: The account that answered (None for a cache hit or a failure).
    provider: str | None
    #: ``"ok"``, ``"cancelled"`` or the error's code (see :data:`OUTCOMES`).
    code: str
    #: Answered from the cache.
    cached: bool
    #: What every attempt for it was billed, the answering one and the ``wasted`` others
    #: (failed, timed out, cut off, a hedge's losing leg).
    cost: float
    #: The part of ``cost`` billed for attempts that gave no answer.
    wasted: float = 0.0
    #: Seconds waiting for a concurrency slot (the router's line while every slot was
    #: busy, and the account's own queue).
    slot_wait: float = 0.0
    #: Seconds waiting for a limit (rate limits, cool-downs, quarantines); the rest of
    #: ``latency`` after both waits is service (attempts and backoff).
    limit_wait: float = 0.0
    # What a trace of the request shows beyond the figures above: references to what the
    # router holds anyway, so recording them copies nothing. Not compared: two records
    # of the same figures are the same outcome.
    #: The router's id of the request (its attempts' records carry the same).
    request_id: str = attrs.field(default="", eq=False)
    #: The request as it entered the router (model, max_tokens, messages ...).
    request: ChatRequest | None = attrs.field(default=None, eq=False)
    #: The answer (None for a request that ended without one).
    completion: Completion | None = attrs.field(default=None, eq=False)
    #: The interview session the request was a turn of, if any.
    session: str | None = attrs.field(default=None, eq=False)


@attrs.define(slots=True)
class AttemptRecord:
    """One attempt on one provider ended with ``code`` (``"ok"`` or an error's), billed
    ``cost``."""

    #: The account the attempt was sent to.
    provider: str
    #: ``"ok"``, or the error code the attempt ended with.
    code: str
    #: What the provider billed for it (input tokens, and the output generated until it
    #: stopped).
    cost: float
    #: The id of the request it was an attempt for.
    request_id: str = attrs.field(default="", eq=False)
    #: Its times, tokens, breaker state, headers ... (None unless the fleet was opened
    #: with ``attempt_details``, as tracing opens it).
    seen: AttemptSeen | None = attrs.field(default=None, eq=False)


class Recorder(Protocol):
    """Whoever the router tells how each request ended (once per request), and what each
    attempt cost."""

    def record(self, outcome: RequestRecord) -> None: ...

    def record_attempt(self, attempt: AttemptRecord) -> None: ...


class Recorders:
    """Several recorders told of every record, in order (metrics, then traces)."""

    __slots__ = ("recorders",)

    def __init__(self, *recorders: Recorder) -> None:
        self.recorders = recorders

    def record(self, outcome: RequestRecord) -> None:
        for recorder in self.recorders:
            recorder.record(outcome)

    def record_attempt(self, attempt: AttemptRecord) -> None:
        for recorder in self.recorders:
            recorder.record_attempt(attempt)


class RequestRecorder:
    """One row per request that entered the router, whatever its fate, and one per
    attempt that reached a provider (a :class:`Recorder`)."""

    __slots__ = (
        "_attempt_code_index",
        "_attempts_lent",
        "_kind_index",
        "_lent",
        "_outcome_index",
        "_provider_index",
        "attempt_code",
        "attempt_codes",
        "attempt_cost",
        "attempt_provider",
        "attempts",
        "cached",
        "cost",
        "kind",
        "kinds",
        "latency",
        "limit_wait",
        "outcome",
        "provider",
        "providers",
        "slot_wait",
        "start",
        "ttft",
        "wasted",
    )

    def __init__(self, providers: list[str]) -> None:
        self.providers = list(providers)
        self._provider_index = {name: i for i, name in enumerate(self.providers)}
        self._outcome_index = {code: i for i, code in enumerate(OUTCOMES)}
        self.kinds: list[str] = []
        self._kind_index: dict[str, int] = {}
        self.start = array("d")
        self.latency = array("d")
        self.ttft = array("d")
        self.slot_wait = array("d")
        self.limit_wait = array("d")
        self.attempts = array("i")
        self.provider = array("i")
        self.outcome = array("i")
        self.cached = array("b")
        self.cost = array("d")
        self.wasted = array("d")
        self.kind = array("i")
        self.attempt_codes: list[str] = []
        self._attempt_code_index: dict[str, int] = {}
        self.attempt_provider = array("i")
        self.attempt_code = array("i")
        self.attempt_cost = array("d")
        # Whether arrays handed out hold the request (attempt) columns' buffers: a column
        # cannot grow while they do, so the next record copies the columns first.
        self._lent = False
        self._attempts_lent = False

    def __len__(self) -> int:
        return len(self.start)

    def record(self, outcome: RequestRecord) -> None:
        if self._lent:
            self._take_back()
        kind = outcome.kind
        kind_index = self._kind_index.get(kind)
        if kind_index is None:
            kind_index = self._kind_index[kind] = len(self.kinds)
            self.kinds.append(kind)
        self.kind.append(kind_index)
        self.start.append(outcome.start)
        self.latency.append(outcome.latency)
        self.ttft.append(outcome.ttft)
        self.slot_wait.append(outcome.slot_wait)
        self.limit_wait.append(outcome.limit_wait)
        self.attempts.append(outcome.attempts)
        provider = outcome.provider
        self.provider.append(-1 if provider is None else self._provider_index[provider])
        self.outcome.append(self._outcome_index.get(outcome.code, len(OUTCOMES) - 1))
        self.cached.append(outcome.cached)
        self.cost.append(outcome.cost)
        self.wasted.append(outcome.wasted)

    def record_attempt(self, attempt: AttemptRecord) -> None:
        code = attempt.code
        if code == "rejected":
            return  # refused by the account's own limits before it was sent: not an attempt
        if self._attempts_lent:
            self._take_back_attempts()
        index = self._attempt_code_index.get(code)
        if index is None:
            index = self._attempt_code_index[code] = len(self.attempt_codes)
            self.attempt_codes.append(code)
        self.attempt_provider.append(self._provider_index[attempt.provider])
        self.attempt_code.append(index)
        self.attempt_cost.append(attempt.cost)

    def arrays(self) -> dict[str, np.ndarray]:
        """The request columns as read-only numpy arrays over the columns' buffers."""
        self._lent = True
        return {
            "start": _lend(self.start, np.float64),
            "latency": _lend(self.latency, np.float64),
            "ttft": _lend(self.ttft, np.float64),
            "slot_wait": _lend(self.slot_wait, np.float64),
            "limit_wait": _lend(self.limit_wait, np.float64),
            "attempts": _lend(self.attempts, np.int32),
            "provider": _lend(self.provider, np.int32),
            "outcome": _lend(self.outcome, np.int32),
            "cached": _lend(self.cached, np.bool_),  # its bytes are 0 and 1
            "cost": _lend(self.cost, np.float64),
            "wasted": _lend(self.wasted, np.float64),
            "kind": _lend(self.kind, np.int32),
        }

    def attempt_arrays(self) -> dict[str, np.ndarray]:
        """One row per attempt sent to a provider: who, how it ended, what it was billed
        (read-only arrays over the attempt columns' buffers)."""
        self._attempts_lent = True
        return {
            "provider": _lend(self.attempt_provider, np.int32),
            "code": _lend(self.attempt_code, np.int32),
            "cost": _lend(self.attempt_cost, np.float64),
        }

    def _take_back(self) -> None:
        """Fresh copies of the request columns, to grow: the lent buffers stay as they were
        for the arrays that hold them."""
        self._lent = False
        for name in _REQUEST_COLUMNS:
            setattr(self, name, array(getattr(self, name).typecode, getattr(self, name)))

    def _take_back_attempts(self) -> None:
        """Fresh copies of the attempt columns, as :meth:`_take_back` makes."""
        self._attempts_lent = False
        for name in _ATTEMPT_COLUMNS:
            setattr(self, name, array(getattr(self, name).typecode, getattr(self, name)))


_REQUEST_COLUMNS = (
    "start",
    "latency",
    "ttft",
    "slot_wait",
    "limit_wait",
    "attempts",
    "provider",
    "outcome",
    "cached",
    "cost",
    "wasted",
    "kind",
)
_ATTEMPT_COLUMNS = ("attempt_provider", "attempt_code", "attempt_cost")


def _lend(column: array, dtype: type[np.generic]) -> np.ndarray:
    """``column`` as a read-only numpy array of ``dtype`` over its own buffer (the column
    cannot grow while the array lives)."""
    view = np.frombuffer(column, dtype=dtype)
    view.flags.writeable = False
    return view
