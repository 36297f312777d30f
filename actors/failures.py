"""One vocabulary for how a provider fails: fault kinds, error codes, mock profiles.

Three words name one failure, each where its reader meets it: a scenario's fault kind
(``kind = "rate_limit"``: what goes wrong), the error code an attempt then fails with
(``rate_limited``: in results.json, logs and metrics) and the mock provider's profile that
shows it over HTTP (``callboard mock-provider --profile rate-limited``). :data:`FAILURES`
ties them in one table; the fault schedule (:mod:`actors.faults`), the attempt errors
(:mod:`actors.errors`), the virtual backend and the mock provider all read these enums.
They are :class:`~enum.StrEnum`: each compares, hashes and serialises as its text, so
files, JSON and logs read the same words as before.
"""

from __future__ import annotations

from enum import StrEnum

import attrs


class FaultKind(StrEnum):
    """What goes wrong with a provider in a fault window (:class:`actors.faults.Fault`)."""

    OUTAGE = "outage"
    LATENCY = "latency"
    ERRORS = "errors"
    RATE_LIMIT = "rate_limit"
    OVERLOAD = "overload"
    HANG = "hang"
    REVOKED = "revoked"
    FLAPPING = "flapping"
    SLOW_RECOVERY = "slow_recovery"


class ErrorCode(StrEnum):
    """How one attempt against one provider failed: the ``code`` of each attempt error."""

    ATTEMPT_FAILED = "attempt_failed"
    RATE_LIMITED = "rate_limited"
    UPSTREAM_ERROR = "upstream_error"
    #: No connection at all (refused, DNS, TLS, connect timeout): the account is marked
    #: unreachable until an exchange with it gets an HTTP answer.
    UNREACHABLE = "unreachable"
    UPSTREAM_REJECTED = "upstream_rejected"
    TIMEOUT = "timeout"
    DEADLINE = "deadline"
    MALFORMED_REPLY = "malformed_reply"
    AUTH_FAILED = "auth_failed"
    QUEUE_FULL = "queue_full"
    CIRCUIT_OPEN = "circuit_open"
    STREAM_INTERRUPTED = "stream_interrupted"
    OVERLOADED = "overloaded"
    ANSWER_CAP = "answer_cap"


class MockProfileName(StrEnum):
    """A behaviour of ``callboard mock-provider`` (:mod:`sims.mock_provider`)."""

    HEALTHY = "healthy"
    SLOW = "slow"
    FLAKY = "flaky"
    RATE_LIMITED = "rate-limited"
    OVERLOADED = "overloaded"
    DOWN = "down"
    HANG = "hang"
    UNLIMITED = "unlimited"


@attrs.frozen
class Failure:
    """One failure in the three words: ``code`` is None for a fault that fails no call
    (it slows them), ``profile`` None where no mock profile shows that fault alone."""

    kind: FaultKind
    code: ErrorCode | None
    profile: MockProfileName | None


#: Every fault kind: the code its calls fail with, the mock profile that shows it.
FAILURES: tuple[Failure, ...] = (
    Failure(FaultKind.OUTAGE, ErrorCode.UPSTREAM_ERROR, MockProfileName.DOWN),
    Failure(FaultKind.LATENCY, None, MockProfileName.SLOW),
    Failure(FaultKind.ERRORS, ErrorCode.UPSTREAM_ERROR, MockProfileName.FLAKY),
    Failure(FaultKind.RATE_LIMIT, ErrorCode.RATE_LIMITED, MockProfileName.RATE_LIMITED),
    Failure(FaultKind.OVERLOAD, ErrorCode.OVERLOADED, MockProfileName.OVERLOADED),
    Failure(FaultKind.HANG, ErrorCode.TIMEOUT, MockProfileName.HANG),
    Failure(FaultKind.REVOKED, ErrorCode.AUTH_FAILED, None),
    Failure(FaultKind.FLAPPING, ErrorCode.UPSTREAM_ERROR, None),
    Failure(FaultKind.SLOW_RECOVERY, ErrorCode.UPSTREAM_ERROR, None),
)

#: The error code a call hit by a fault of each kind fails with (None: it only slows).
FAULT_CODES: dict[str, ErrorCode | None] = {f.kind: f.code for f in FAILURES}
