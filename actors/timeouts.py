"""An attempt's time limits, one per phase, and the watch that applies them.

Each limit means one thing (the ``[timeouts]`` table, the same in a scenario and a live
config):

- ``connect``: reaching the provider (DNS, TCP, TLS, a proxy's tunnel); live only.
- ``first_byte``: from sending the request to the first byte of the provider's response.
  A whole (not streamed) answer is sent when it is done, so for it this bounds the
  generation; a streamed one starts with its first chunk.
- ``idle``: the longest silence between two pieces of a response once it has begun.
- ``total``: the router's own cap on one attempt, from sending to the last byte. A stream
  that keeps producing is cut by nothing else, and this cut is never the provider's fault.

Waiting for one of the account's own slots is the router's queue, not the provider's
time: only the request's deadline bounds it.
"""

from __future__ import annotations

import math

import attrs
import trio

from actors.errors import AnswerCapReached, AttemptError, AttemptTimeout, DeadlineReached
from actors.runtime.errors import require


def _positive(instance: object, attribute: attrs.Attribute, value: float) -> None:
    finite = attribute.name == "connect"
    ok = isinstance(value, int | float) and value > 0 and (math.isfinite(value) or not finite)
    require(f"timeouts.{attribute.name}", ok, value, "> 0 seconds" + ("" if finite else " or inf"))


@attrs.frozen
class Timeouts:
    """An attempt's four limits, in seconds, each meaning one thing. A stream that keeps
    producing is cut by none but ``total``; a cut by ``total`` is not the provider's fault."""

    #: Reaching the provider: DNS, TCP, TLS, a proxy's tunnel (live only).
    connect: float = attrs.field(default=10.0, validator=_positive)
    #: From sending the request to the first byte of the response (a whole answer is sent
    #: when done: for it, this bounds the generation).
    first_byte: float = attrs.field(default=30.0, validator=_positive)
    #: The longest silence within a response once it began (between stream chunks).
    idle: float = attrs.field(default=30.0, validator=_positive)
    #: The router's own cap on one attempt, from sending to the last byte.
    total: float = attrs.field(default=600.0, validator=_positive)

    @property
    def unbounded(self) -> bool:
        """Whether no limit but the request's deadline can cut an attempt."""
        return self.first_byte == self.idle == self.total == math.inf


DEFAULT_TIMEOUTS = Timeouts()


def _unset_or_positive(instance: object, attribute: attrs.Attribute, value: float | None) -> None:
    if value is not None:
        _positive(instance, attribute, value)


@attrs.frozen
class TimeoutOverrides:
    """One account's own limits (a reasoning model's longer ``first_byte``), each in place
    of the router's ``[timeouts]`` one; a limit left unset is the router's."""

    connect: float | None = attrs.field(default=None, validator=_unset_or_positive)
    first_byte: float | None = attrs.field(default=None, validator=_unset_or_positive)
    idle: float | None = attrs.field(default=None, validator=_unset_or_positive)
    total: float | None = attrs.field(default=None, validator=_unset_or_positive)

    def over(self, base: Timeouts) -> Timeouts:
        """``base`` with this account's own limits in place of its."""
        own = {name: value for name, value in attrs.asdict(self).items() if value is not None}
        return attrs.evolve(base, **own) if own else base


#: The phases an attempt's watch is in: waiting for a slot, for the response, within it.
QUEUED, FIRST_BYTE, FLOWING = "queued", "first_byte", "flowing"


class AnswerWatch:
    """One attempt's timeouts as one cancel scope whose deadline moves as the answer
    arrives: the provider opens it, the backend says when bytes come.

    One scope rather than one per phase: a scope costs its entry and exit on every
    attempt of a simulation, and moving a deadline costs less.
    """

    __slots__ = ("_cap", "_deadline", "phase", "scope", "sent_at", "timeouts")

    def __init__(self, timeouts: Timeouts, deadline: float) -> None:
        self.timeouts = timeouts
        self._deadline = deadline
        self._cap = deadline
        self.phase = QUEUED
        self.sent_at = math.nan
        #: Until the request is sent, only the request's deadline bounds the wait.
        self.scope = trio.CancelScope(deadline=deadline)

    def sent(self, now: float) -> None:
        """The request leaves for the provider: the first byte is due, the cap starts."""
        self.sent_at = now
        self._cap = min(now + self.timeouts.total, self._deadline)
        self.phase = FIRST_BYTE
        self.scope.deadline = min(now + self.timeouts.first_byte, self._cap)

    def arrived(self, now: float) -> None:
        """Bytes of the response came in: the next must come within ``idle``."""
        self.phase = FLOWING
        self.scope.deadline = min(now + self.timeouts.idle, self._cap)

    def expect(self, first_at: float, gap: float, end: float) -> None:
        """A modelled response (the virtual provider's): its first byte at ``first_at``,
        then a piece every ``gap`` seconds until ``end``. Sets the scope's deadline at once
        to the first moment a limit would cut it, so the model sleeps once."""
        timeouts = self.timeouts
        if first_at - self.sent_at > timeouts.first_byte:
            return  # cut while waiting for the first byte: sent() set that deadline
        self.phase = FLOWING
        quiet_until = first_at + timeouts.idle if gap > timeouts.idle else end + timeouts.idle
        cut = min(quiet_until, self._cap)
        scope = self.scope
        # Moving an entered scope's deadline costs a registration with trio: skip it when
        # the answer ends before the deadline set and no limit cuts it sooner.
        if cut < scope.deadline or end >= scope.deadline:
            scope.deadline = cut

    def failure(self, provider: str, began: float) -> AttemptError:
        """The error that names which limit cut the attempt (its scope was cancelled)."""
        cut = self.scope.deadline
        if cut >= self._deadline:
            return DeadlineReached(provider, self._deadline - began)
        if cut >= self._cap:
            return AnswerCapReached(provider, self.timeouts.total)
        if self.phase == FIRST_BYTE:
            return AttemptTimeout(provider, self.timeouts.first_byte, "first_byte")
        return AttemptTimeout(provider, self.timeouts.idle, "idle")
