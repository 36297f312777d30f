"""One streamed answer: the routed request runs in a task, its text comes out as it arrives.

:class:`ReplyStream` runs the request (a plain routed completion, or an
interview turn) in a task of the live router's nursery, handing it a
:class:`~actors.backends.sink.StreamSink` to stream into, and hands the
consumer the pieces through a bounded channel: a slow reader slows the
upstream read (back-pressure), never drops text. Closing the stream early
cancels the request, which the router then counts as cancelled.
"""

from __future__ import annotations

import contextlib
from collections.abc import Awaitable, Callable

import attrs
import trio

from actors.backends.answers import whole_delta
from actors.backends.sink import Delta, Restart, StreamSink
from actors.messages import Completion

#: Pieces of text buffered between the upstream reader and a slow consumer.
BUFFER = 64


@attrs.frozen
class Done:
    """The answer is complete; ``completion`` says who answered and how."""

    completion: Completion


@attrs.frozen
class _Failed:
    error: Exception


Event = Delta | Restart | Done


class ReplyStream:
    """Iterate for the answer's text; ``completion`` is set once it has ended.

    ``restartable`` streams (the interview WebSocket) may yield a
    :class:`Restart` from :meth:`next_event` when the router had to move to
    another provider after part of the answer was sent; plain ones fail instead.
    """

    def __init__(
        self,
        nursery: trio.Nursery,
        answer: Callable[[StreamSink], Awaitable[Completion]],
        *,
        restartable: bool = False,
    ) -> None:
        self._nursery = nursery
        self._answer = answer
        self._send, self._receive = trio.open_memory_channel[Event | _Failed](BUFFER)
        self._scope = trio.CancelScope()
        self._started = False
        self._finished = False
        self._ended = trio.Event()  # the request's task is over (its slot released)
        self.sink = StreamSink(self._send, restartable=restartable)
        self.completion: Completion | None = None

    def start(self) -> None:
        """Send the request now (the first read does it otherwise)."""
        if not self._started:
            self._started = True
            self._nursery.start_soon(self._run)

    async def _run(self) -> None:
        try:
            await self._answer_into_channel()
        finally:
            self._ended.set()

    async def _answer_into_channel(self) -> None:
        async with self._send:
            with self._scope:
                try:
                    completion = await self._answer(self.sink)
                    sink = self.sink
                    answer = completion.answer
                    whole = whole_delta(answer) if answer is not None else None
                    if sink.attempt_chars == 0 and (completion.text or whole):
                        # Not streamed (a cache hit, a backend that cannot stream): whole.
                        if sink.total_chars:
                            await self._send.send(Restart(completion.provider))
                        sink.model = completion.model
                        if answer is not None and whole:
                            await sink.piece(completion.text, whole, answer.logprobs)
                        else:
                            await sink.text(completion.text)
                    await self._send.send(Done(completion))
                except (trio.BrokenResourceError, trio.ClosedResourceError):
                    pass  # the consumer went away; the request is over either way
                except Exception as exc:
                    with contextlib.suppress(trio.BrokenResourceError, trio.ClosedResourceError):
                        await self._send.send(_Failed(exc))

    async def next_event(self) -> Event:
        """The next :class:`Delta`, :class:`Restart` or final :class:`Done`.

        Raises the request's error (a named CallboardError) if it failed, and
        ``StopAsyncIteration`` after :class:`Done`.
        """
        if self._finished:
            raise StopAsyncIteration
        self.start()
        try:
            event = await self._receive.receive()
        except trio.EndOfChannel:
            self._finished = True
            raise StopAsyncIteration from None
        if isinstance(event, _Failed):
            self._finished = True
            raise event.error
        if isinstance(event, Done):
            self._finished = True
            self.completion = event.completion
        return event

    def __aiter__(self) -> ReplyStream:
        return self

    async def __anext__(self) -> str:
        while True:
            event = await self.next_event()
            if isinstance(event, Delta):
                return event.text
            if isinstance(event, Done):
                raise StopAsyncIteration
            # A Restart only reaches restartable streams, whose readers use next_event().

    async def aclose(self) -> None:
        """Stop reading; an unfinished request is cancelled, and has unwound (its provider
        slot released) when this returns."""
        self._scope.cancel()
        await self._receive.aclose()
        if self._started:
            await self._ended.wait()

    async def __aenter__(self) -> ReplyStream:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()
