"""What one upstream answer may cost the router: bytes, lines, events, inflation.

httpx frames the response (h11 or h2) and bounds time; it bounds no size. A
provider that sends an endless stream, one endless line, one endless event or a
gzip bomb would otherwise hold the router's memory until its attempt times out.
Every cap here is a setting of the ``[upstream]`` table, and each exceeded cap
is a named :class:`AnswerTooLarge` (a malformed reply of that provider: counted
by its breaker and health, and failed over like any other).

Two pieces are written here rather than taken from httpx, each for a reason:

- :class:`Inflater`: httpx inflates each received chunk whole, so 64 KiB of
  gzip can become 64 MiB in one step; zlib's own ``max_length`` inflates it
  in bounded steps instead, each counted against the cap, and :func:`decoded`
  gives trio's loop a turn after each (a bomb would otherwise hold the loop, and
  every other request and ``/health`` with it, while it inflates the whole cap:
  ``/health`` was seen to wait 0.5 s at the default 64 MiB).
- :class:`EventReader`: ``Response.aiter_lines`` keeps no limit on a line. The
  lines of a server-sent event stream are split here with a checkpoint (each
  byte is scanned once, however the line is chunked) and a cap on the line and
  on the event.
"""

from __future__ import annotations

import re
import zlib
from collections.abc import AsyncGenerator, AsyncIterator, Iterator

import attrs
import trio

from actors.errors import MalformedReply
from actors.runtime.errors import require

MiB = 1024 * 1024
#: The most one inflation step produces; it is counted against the cap, and the loop gets
#: a turn before the next. zlib inflates a bomb at ~0.5 GB/s on a busy 2-core machine, so a
#: step holds the loop ~0.1-0.2 ms, while the checkpoint after it (~4 us) adds ~3%; it is
#: also what httpx reads from a socket at once, so a step is no larger than a plain chunk.
INFLATE_STEP = 64 * 1024
_NEWLINE = re.compile(rb"[\r\n]")


def _positive(instance: object, attribute: attrs.Attribute, value: int) -> None:
    require(
        f"upstream.{attribute.name}",
        isinstance(value, int) and not isinstance(value, bool) and value >= 1,
        value,
        "an integer >= 1 (bytes)",
    )


@attrs.frozen
class UpstreamCaps:
    """The most one provider's answer may take, in bytes; past one, the attempt fails."""

    #: A whole (not streamed) reply body or error page, as received.
    max_reply_bytes: int = attrs.field(default=16 * MiB, validator=_positive)
    #: A streamed answer, as received, from its first byte to its end.
    max_stream_bytes: int = attrs.field(default=64 * MiB, validator=_positive)
    #: One line of a server-sent event stream.
    max_line_bytes: int = attrs.field(default=1 * MiB, validator=_positive)
    #: One server-sent event (its data lines together).
    max_event_bytes: int = attrs.field(default=4 * MiB, validator=_positive)
    #: A body once inflated (gzip, deflate), streamed or not; inflated in 64 KiB steps,
    #: the event loop free between them.
    max_inflated_bytes: int = attrs.field(default=64 * MiB, validator=_positive)


DEFAULT_CAPS = UpstreamCaps()


class AnswerTooLarge(MalformedReply):
    """The provider's answer went past one of the ``[upstream]`` caps."""

    #: The ``[upstream]`` key of the cap, and what went past it.
    cap = ""
    what = ""

    def __init__(self, provider: str, limit: int) -> None:
        super().__init__(provider, f"{self.what} past upstream.{self.cap} = {limit} bytes")
        self.limit = limit


class ReplyTooLarge(AnswerTooLarge):
    cap, what = "max_reply_bytes", "reply body"


class StreamTooLarge(AnswerTooLarge):
    cap, what = "max_stream_bytes", "streamed answer"


class LineTooLong(AnswerTooLarge):
    cap, what = "max_line_bytes", "event stream line"


class EventTooLarge(AnswerTooLarge):
    cap, what = "max_event_bytes", "event"


class InflatedTooLarge(AnswerTooLarge):
    cap, what = "max_inflated_bytes", "inflated body"


class Inflater:
    """A body's bytes decoded from its Content-Encoding, counted against the caps.

    ``identity`` (or none) passes through; gzip and deflate inflate in bounded steps
    with zlib; any other encoding (the router asks for gzip only) is a malformed reply.
    Input a step leaves unread (zlib's ``unconsumed_tail``) is kept for the next, so the
    pieces are byte for byte what one ``zlib.decompress`` of the whole body gives.
    """

    def __init__(self, provider: str, encoding: str, caps: UpstreamCaps) -> None:
        self.provider = provider
        self.limit = caps.max_inflated_bytes
        self.size = 0
        encoding = encoding.strip().lower()
        if encoding in ("", "identity"):
            self._zlib = None
        elif encoding in ("gzip", "x-gzip"):
            self._zlib = zlib.decompressobj(16 + zlib.MAX_WBITS)
        elif encoding == "deflate":
            self._zlib = zlib.decompressobj()
        else:
            raise MalformedReply(provider, f"content-encoding {encoding[:40]!r} was not asked for")

    def feed(self, data: bytes) -> Iterator[bytes]:
        """The decoded pieces of ``data``, one step each: a piece is inflated only when the
        one before it has been taken (so the caller may give the loop a turn in between)."""
        inflater = self._zlib
        if inflater is None:
            self._count(len(data))
            yield data
            return
        while True:
            try:
                piece = inflater.decompress(data, INFLATE_STEP)
            except zlib.error as exc:
                raise MalformedReply(self.provider, f"body does not inflate: {exc}") from None
            data = inflater.unconsumed_tail
            if piece:
                self._count(len(piece))
                yield piece
            if not data and len(piece) < INFLATE_STEP:
                return

    @property
    def inflating(self) -> bool:
        """Whether the body is compressed (its pieces cost inflating, not just reading)."""
        return self._zlib is not None

    def finish(self) -> None:
        """The body ended: a compressed one must have ended too."""
        if self._zlib is not None and not self._zlib.eof:
            raise MalformedReply(self.provider, "compressed body ends early")

    def _count(self, size: int) -> None:
        self.size += size
        if self.size > self.limit:
            raise InflatedTooLarge(self.provider, self.limit)


async def decoded(
    provider: str,
    raw: AsyncIterator[bytes],
    encoding: str,
    caps: UpstreamCaps,
    wire_cap: type[AnswerTooLarge],
) -> AsyncGenerator[bytes, None]:
    """The decoded pieces of a body read from ``raw``, within ``wire_cap`` and the inflation cap.

    An inflated piece is followed by a checkpoint, so no stretch of the task between two
    turns of the loop inflates more than one step (a received chunk is one step's worth
    of reading already; it passes through as it came).
    """
    limit = getattr(caps, wire_cap.cap)
    inflater = Inflater(provider, encoding, caps)
    received = 0
    async for data in raw:
        received += len(data)
        if received > limit:
            raise wire_cap(provider, limit)
        for piece in inflater.feed(data):
            yield piece
            if inflater.inflating:
                await trio.lowlevel.checkpoint()
    inflater.finish()


class EventReader:
    """Server-sent events, as (event name, data), from a body's decoded pieces.

    Lines end in CR LF, LF or CR; comments and ids are skipped; an event ends at a
    blank line (or at the end of the body).
    """

    def __init__(self, provider: str, caps: UpstreamCaps) -> None:
        self.provider = provider
        self.max_line = caps.max_line_bytes
        self.max_event = caps.max_event_bytes
        self._buffer = bytearray()
        self._scanned = 0  # bytes of the buffer known to hold no line end
        self._after_cr = False  # the last line ended in CR: an LF next belongs to it
        self._event: str | None = None
        self._data: list[str] = []
        self._size = 0

    def feed(self, piece: bytes) -> list[tuple[str | None, str]]:
        """The events completed by ``piece``."""
        buffer = self._buffer
        buffer += piece
        events: list[tuple[str | None, str]] = []
        start = 0
        while True:
            if self._after_cr and start < len(buffer):
                self._after_cr = False
                if buffer[start] == 0x0A:
                    start += 1
                    continue
            found = _NEWLINE.search(buffer, max(start, self._scanned))
            if found is None:
                break
            end = found.start()
            if end - start > self.max_line:
                raise LineTooLong(self.provider, self.max_line)
            self._line(bytes(buffer[start:end]), events)
            self._after_cr = buffer[end] == 0x0D
            start = end + 1
        del buffer[:start]
        self._scanned = len(buffer)
        if self._scanned > self.max_line:
            raise LineTooLong(self.provider, self.max_line)
        return events

    def finish(self) -> list[tuple[str | None, str]]:
        """The body ended: its last line and event, if unterminated."""
        events: list[tuple[str | None, str]] = []
        if self._buffer:
            self._line(bytes(self._buffer), events)
            self._buffer.clear()
        if self._data:
            events.append((self._event, "\n".join(self._data)))
        return events

    def _line(self, raw: bytes, events: list[tuple[str | None, str]]) -> None:
        if not raw:
            if self._data:
                events.append((self._event, "\n".join(self._data)))
            self._event, self._data, self._size = None, [], 0
            return
        line = raw.decode("utf-8", "replace")
        if line.startswith(":"):
            return
        field, _, value = line.partition(":")
        value = value.removeprefix(" ")
        if field == "data":
            self._size += len(raw)
            if self._size > self.max_event:
                raise EventTooLarge(self.provider, self.max_event)
            self._data.append(value)
        elif field == "event":
            self._event = value
