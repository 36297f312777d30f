"""Where a streaming backend sends text as it arrives, without changing the routing core.

The router, provider and session call ``backend.complete`` and get one
:class:`BackendReply` back. A caller that wants the text as it is generated
passes a :class:`StreamSink` down the call: ``router.complete(request,
sink=sink)`` hands it to every attempt (``provider.call(..., sink)``), which
hands it to its backend; an HTTP backend pushes every text delta into it while
the router keeps doing retries, failover, breakers and metrics as for any
request. Backends that cannot stream ignore the sink; the consumer then gets
the whole answer at the end.

Failover after text was already sent is the hard case: a ``restartable`` sink
(the interview WebSocket) tells its consumer to discard the partial answer and
lets the router try another provider; a plain one (an OpenAI-style SSE stream)
refuses a second attempt with :class:`StreamAlreadyStarted`, since appending
another provider's answer to a half-sent one would corrupt it.
"""

from __future__ import annotations

from typing import Any

import attrs
import trio

from actors.errors import AttemptError
from actors.failures import ErrorCode


class StreamAlreadyStarted(AttemptError):
    """Another attempt would append a second answer to the half-sent first one."""

    code = ErrorCode.STREAM_INTERRUPTED
    retryable = False


@attrs.frozen
class Delta:
    """A piece of the answer: its text, and the provider's own delta when it carries more
    (tool calls, a refusal) in OpenAI's shape, with the piece's logprobs."""

    text: str
    delta: dict[str, Any] | None = None
    logprobs: Any = None


@attrs.frozen
class Restart:
    """Discard the text received so far: ``provider`` answers from the start."""

    provider: str


class StreamSink:
    """The sending side of one streamed answer; counts what it has delivered."""

    def __init__(self, send: trio.MemorySendChannel, *, restartable: bool = False) -> None:
        self._send = send
        self.restartable = restartable
        #: Characters delivered by the current attempt, and by every attempt.
        self.attempt_chars = 0
        self.total_chars = 0
        #: The model answering now (the account's, not ``auto``), for every chunk's label.
        self.model = ""

    async def start_attempt(self, provider: str, model: str = "") -> None:
        """Called by a backend before it streams; refuses or restarts after partial text."""
        if self.attempt_chars == 0:
            self.model = model or self.model
            return
        self.model = model or self.model
        if not self.restartable:
            raise StreamAlreadyStarted(provider, "an earlier attempt already streamed part")
        self.attempt_chars = 0
        await self._send.send(Restart(provider))

    async def text(self, chunk: str) -> None:
        if not chunk:
            return
        self.attempt_chars += len(chunk)
        self.total_chars += len(chunk)
        await self._send.send(Delta(chunk))

    async def piece(self, text: str, delta: dict[str, Any], logprobs: Any = None) -> None:
        """A piece that may carry more than text (tool calls, a refusal, logprobs)."""
        size = len(text) or 1  # a tool call's piece counts as sent, like text
        self.attempt_chars += size
        self.total_chars += size
        await self._send.send(Delta(text, delta, logprobs))

    @property
    def started(self) -> bool:
        """Whether the current attempt already sent text (a failure now is visible)."""
        return self.attempt_chars > 0


class DiscardingSink(StreamSink):
    """Where a streamed answer goes when nobody reads it as it arrives.

    A request may ask for a stream (``request.stream``) without a sink, as the
    replayed interviews do: the provider is still called streaming, so the first
    token is timed as the virtual providers time it, and the text is kept only
    in the reply at the end. Nothing was shown to anyone, so a failure part-way
    through may always fail over (it is restartable, without a restart notice).
    """

    def __init__(self) -> None:
        self.restartable = True
        self.attempt_chars = 0
        self.total_chars = 0
        self.model = ""

    async def start_attempt(self, provider: str, model: str = "") -> None:
        self.model = model or self.model
        self.attempt_chars = 0

    async def text(self, chunk: str) -> None:
        self.attempt_chars += len(chunk)
        self.total_chars += len(chunk)

    async def piece(self, text: str, delta: dict[str, Any], logprobs: Any = None) -> None:
        size = len(text) or 1
        self.attempt_chars += size
        self.total_chars += size
