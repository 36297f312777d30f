"""The live router in an asyncio app (FastAPI, Starlette, Django async): trio as a guest.

``async with engine.open_asyncio_router(config) as router`` starts trio in guest mode
(:func:`trio.lowlevel.start_guest_run`) on the app's own asyncio loop, in the same
thread: trio's scheduler runs as callbacks of the asyncio loop, and only its wait for
I/O sits in a helper thread. The router inside is the same :class:`LiveRouter` as
``open_router`` gives a trio app, so nothing of the routing core is duplicated or
translated; this module only carries calls and results across.

Why guest mode rather than trio in a thread of its own, or the router on anyio: both
loops share one thread, so the router's objects (a session's history, a completion) are
read from asyncio with no lock, and a call costs a callback, not a thread hop; and the
routing core keeps trio's cancel scopes and virtual clock, which the simulator needs.

Cancellation crosses in both directions:

- an asyncio task cancelled while it awaits a call cancels the trio task running that
  call (through its cancel scope) and waits for it to unwind, so the provider slot and
  rate-limit reservation are released before the ``CancelledError`` reaches the app;
- a call that trio cancels (the router closing while it runs) ends in the app as
  ``asyncio.CancelledError``; every other error arrives as itself.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any, TypeVar

import outcome
import trio

from actors.backends.sink import Delta
from actors.messages import Completion
from actors.session import InterviewSession
from engine.serve.live_config import LiveConfig
from engine.serve.live_router import LiveRouter, Messages, open_router
from engine.serve.reply_stream import Done, ReplyStream
from engine.serve.status import ProviderStatus

T = TypeVar("T")


class _Guest:
    """One guest run of trio on an asyncio loop, holding the live router open."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.loop = loop
        self.started: asyncio.Future[None] = loop.create_future()
        self.finished: asyncio.Future[outcome.Outcome[None]] = loop.create_future()
        self.live: LiveRouter | None = None
        self._nursery: trio.Nursery | None = None
        self._token: trio.lowlevel.TrioToken | None = None
        self._stop: trio.Event | None = None
        self._reported = False  # the run's outcome was raised (an outcome unwraps once)

    def start(self, config: LiveConfig | str | Path, options: dict[str, Any]) -> None:
        try:
            trio.lowlevel.start_guest_run(
                self._main,
                config,
                options,
                run_sync_soon_threadsafe=self.loop.call_soon_threadsafe,
                run_sync_soon_not_threadsafe=self.loop.call_soon,
                done_callback=self._done,
                # asyncio's signal handling owns the wakeup fd: trio must leave it alone.
                host_uses_signal_set_wakeup_fd=True,
            )
        except RuntimeError as exc:
            raise RuntimeError(
                f"open_asyncio_router: trio is already running in this thread ({exc}); "
                "open one asyncio router per event loop and share it"
            ) from None

    async def _main(self, config: LiveConfig | str | Path, options: dict[str, Any]) -> None:
        async with open_router(config, **options) as live, trio.open_nursery() as nursery:
            self.live, self._nursery = live, nursery
            self._token = trio.lowlevel.current_trio_token()
            self._stop = trio.Event()
            _resolve(self.started, None)
            await self._stop.wait()
            nursery.cancel_scope.cancel()

    def _done(self, run: outcome.Outcome[None]) -> None:
        if not self.finished.done():
            self.finished.set_result(run)

    async def wait_started(self) -> None:
        """Return once the router runs; raise what stopped it from starting."""
        await asyncio.wait((self.started, self.finished), return_when=asyncio.FIRST_COMPLETED)
        if not self.started.done():
            self._reported = True
            self.finished.result().unwrap()
            raise RuntimeError("the router's trio run ended before it started")

    async def stop(self) -> None:
        """Close the router (calls still running are cancelled) and wait for trio to end."""
        if not self.finished.done():
            with contextlib.suppress(trio.RunFinishedError):
                assert self._token is not None and self._stop is not None
                self._token.run_sync_soon(self._stop.set)
        # Trio must finish before the loop does; a second cancellation must not cut it short.
        while not self.finished.done():
            with contextlib.suppress(asyncio.CancelledError):
                await asyncio.shield(self.finished)
        if not self._reported:
            self._reported = True
            self.finished.result().unwrap()

    async def call(self, fn: Callable[[], Awaitable[T]]) -> T:
        """``await fn()`` in a trio task of the router; its outcome comes back here."""
        result: asyncio.Future[T] = self.loop.create_future()
        result.add_done_callback(_retrieved)
        scope = trio.CancelScope()

        async def run() -> None:
            try:
                with scope:
                    value = await fn()
                    _resolve(result, value)
                    return
            except Exception as exc:
                if not result.done():
                    result.set_exception(exc)
                return
            except BaseException:  # trio.Cancelled from outside: the router is closing
                if not result.done():
                    result.cancel()
                raise
            # The scope absorbed a cancellation: the asyncio side cancelled the call.
            if not result.done():
                result.cancel()

        def spawn() -> None:
            assert self._nursery is not None
            try:
                self._nursery.start_soon(run)
            except RuntimeError:  # the nursery is closed: the router is stopping
                result.cancel()

        if self._token is None or self.finished.done():
            raise RuntimeError("the router is not running: use it inside open_asyncio_router")
        try:
            self._token.run_sync_soon(spawn)
        except trio.RunFinishedError:
            raise RuntimeError("the router has stopped") from None
        try:
            return await asyncio.shield(result)
        except asyncio.CancelledError:
            if not result.done():
                with contextlib.suppress(trio.RunFinishedError):
                    self._token.run_sync_soon(scope.cancel)
                # Wait for trio to unwind the call (slots and reservations released).
                with contextlib.suppress(BaseException):
                    await asyncio.shield(result)
            raise


def _resolve(future: asyncio.Future[T], value: T) -> None:
    if not future.done():
        future.set_result(value)


def _retrieved(future: asyncio.Future[Any]) -> None:
    """Mark an error as seen: a call whose caller went away must not log one later."""
    if not future.cancelled():
        future.exception()


class AsyncioReplyStream:
    """A streamed answer for asyncio: ``async with router.stream(...) as reply``, then
    ``async for text in reply``; ``completion`` is set once it has ended. Leaving the
    ``async with`` early cancels the request."""

    def __init__(self, guest: _Guest, reply: ReplyStream) -> None:
        self._guest = guest
        self._reply = reply

    @property
    def completion(self) -> Completion | None:
        return self._reply.completion

    async def _next_text(self) -> str | None:
        while True:
            try:
                event = await self._reply.next_event()
            except StopAsyncIteration:
                return None
            if isinstance(event, Delta):
                return event.text
            if isinstance(event, Done):
                return None

    def __aiter__(self) -> AsyncioReplyStream:
        return self

    async def __anext__(self) -> str:
        text = await self._guest.call(self._next_text)
        if text is None:
            raise StopAsyncIteration
        return text

    async def aclose(self) -> None:
        """Stop reading; an unfinished request is cancelled."""
        await self._guest.call(self._reply.aclose)

    async def __aenter__(self) -> AsyncioReplyStream:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()


class AsyncioRouter:
    """:class:`LiveRouter`'s API for asyncio code; every method is safe to call concurrently."""

    def __init__(self, guest: _Guest, live: LiveRouter) -> None:
        self._guest = guest
        #: The trio-side router (for trio code only; its objects are safe to read here).
        self.live = live

    async def complete(self, messages: Messages, **options: Any) -> Completion:
        """Answer one chat request, or raise a named :class:`~engine.CallboardError`."""
        request = self.live.request(messages, **options)  # a bad request fails here, at once
        return await self._guest.call(lambda: self.live.complete_request(request))

    def stream(self, messages: Messages, **options: Any) -> AsyncioReplyStream:
        """The answer's text as it arrives: ``async with router.stream(...) as reply``."""
        return AsyncioReplyStream(self._guest, self.live.stream(messages, **options))

    async def session(self, session_id: str, system_prompt: str = "") -> InterviewSession:
        """The interview session ``session_id`` (started if new); it owns the history."""
        return await self._guest.call(lambda: self.live.session(session_id, system_prompt))

    async def turn(self, session_id: str, content: str, **turn: Any) -> Completion:
        """One candidate message in a session; refused while another turn is answering."""
        return await self._guest.call(lambda: self.live.turn(session_id, content, **turn))

    def stream_turn(self, session_id: str, content: str, **turn: Any) -> AsyncioReplyStream:
        """One session turn, streamed."""
        return AsyncioReplyStream(self._guest, self.live.stream_turn(session_id, content, **turn))

    def status(self) -> list[ProviderStatus]:
        """Per provider: breaker state, health score, latency percentiles, ..."""
        return self.live.status()

    def best(self) -> ProviderStatus | None:
        return self.live.best()

    def report_failure(self, provider: str, reason: str) -> None:
        self.live.report_failure(provider, reason)


@contextlib.asynccontextmanager
async def open_asyncio_router(
    config: LiveConfig | str | Path, **options: Any
) -> AsyncIterator[AsyncioRouter]:
    """:func:`engine.open_router` for asyncio apps: the router runs on trio as a guest of
    the running asyncio loop until the block ends. ``options`` are ``open_router``'s
    (``env``, ``http_client``, ``state``, ...); one such router per loop at a time."""
    guest = _Guest(asyncio.get_running_loop())
    guest.start(config, options)
    try:
        await guest.wait_started()
        assert guest.live is not None
        yield AsyncioRouter(guest, guest.live)
    finally:
        await guest.stop()
