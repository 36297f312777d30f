"""Reading an HTTP/1.1 response off a connection: its head, then its body as framed on
the wire (Content-Length, chunked, or until the close) and decoded (gzip, deflate),
whole or piece by piece while it streams."""

from __future__ import annotations

import zlib
from collections.abc import AsyncIterator, Awaitable, Callable

from actors.backends.http1.connection import Connection
from actors.backends.http1.errors import ProtocolError
from actors.backends.http1.head import MAX_HEAD_BYTES, Headers, parse_head, read_head
from actors.backends.http1.urls import Origin

MAX_LINE_BYTES = 1024 * 1024
_NO_BODY_STATUSES = frozenset({204, 304})

#: Gives a connection back to its pool (True: reusable) or closes it (False).
Release = Callable[[Connection, bool], Awaitable[None]]


class Response:
    """A response whose head has arrived; its body is read with :meth:`read`, or piece by
    piece with :meth:`next_data` / :meth:`iter_lines` while it streams."""

    __slots__ = (
        "_chunk_left",
        "_conn",
        "_crlf_due",
        "_decoder",
        "_framing",
        "_left",
        "_release",
        "_reusable",
        "content",
        "headers",
        "origin",
        "reason",
        "status",
    )

    def __init__(
        self,
        release: Release,
        conn: Connection,
        status: int,
        reason: str,
        headers: Headers,
        framing: str,
        length: int,
        reusable: bool,
    ) -> None:
        self._release = release
        self._conn: Connection | None = conn
        self.origin = conn.origin
        self.status = status
        self.reason = reason
        self.headers = headers
        self._framing = framing  # "length" | "chunked" | "close"; "done" at the end
        self._left = length  # bytes of a Content-Length body still to come
        self._chunk_left = 0  # bytes of the current chunk still to come
        self._crlf_due = False  # the CRLF after a chunk's data is still to come
        self._reusable = reusable
        self._decoder = _decoder(headers.get("content-encoding"), conn.origin)
        self.content = b""
        if framing == "length" and length == 0:
            self._framing = "done"

    def __repr__(self) -> str:
        return f"Response({self.status} {self.reason!r})"

    @property
    def text(self) -> str:
        return self.content.decode("utf-8", "replace")

    async def read(self, limit: int | None = None) -> bytes:
        """The whole (decoded) body, at most ``limit`` bytes; the connection is given back."""
        conn = self._conn
        if conn is not None and self._framing == "length" and self._decoder is None:
            # The common case in one piece: a Content-Length body, often already buffered.
            if limit is not None and self._left > limit:
                raise ProtocolError(f"{self.origin}: body of {self._left} bytes, over {limit}")
            buffer = conn.buffer
            while len(buffer) < self._left:
                buffer += await conn.receive()
            self.content = bytes(buffer[: self._left])
            del buffer[: self._left]
            self._framing = "done"
            await self.aclose()
            return self.content
        parts = []
        size = 0
        while data := await self.next_data():
            size += len(data)
            if limit is not None and size > limit:
                raise ProtocolError(f"{self.origin}: body over {limit} bytes")
            parts.append(data)
        self.content = b"".join(parts)
        return self.content

    async def next_data(self) -> bytes:
        """The next piece of the (decoded) body as it arrives; b"" at its end."""
        decoder = self._decoder
        while True:
            raw = await self._next_raw()
            if decoder is None:
                return raw
            try:
                if raw:
                    data = decoder.decompress(raw)
                else:
                    data = decoder.flush()
                    if not decoder.eof:
                        raise ProtocolError(f"{self.origin}: the compressed body ended early")
                    self._decoder = None
            except zlib.error as exc:
                raise ProtocolError(f"{self.origin}: undecodable compressed body: {exc}") from None
            if data or not raw:
                return data

    async def iter_lines(self) -> AsyncIterator[str]:
        """The body's lines (without their ``\\n`` or ``\\r\\n``) as they arrive, as UTF-8."""
        pending = b""
        while data := await self.next_data():
            pending += data
            if b"\n" not in data:
                if len(pending) > MAX_LINE_BYTES:
                    raise ProtocolError(f"{self.origin}: a line over {MAX_LINE_BYTES} bytes")
                continue
            *lines, pending = pending.split(b"\n")
            for line in lines:
                yield line.removesuffix(b"\r").decode("utf-8", "replace")
        if pending:
            yield pending.removesuffix(b"\r").decode("utf-8", "replace")

    async def aclose(self) -> None:
        """Give the connection back if the body was read to its end, else close it."""
        conn, self._conn = self._conn, None
        if conn is not None:
            await self._release(conn, self._framing == "done" and self._reusable)

    async def _next_raw(self) -> bytes:
        """The next piece of the body as framed on the wire; b"" at its end."""
        conn = self._conn
        framing = self._framing
        if conn is None or framing == "done":
            return b""
        buffer = conn.buffer
        if framing == "length":
            if not buffer:
                buffer += await conn.receive()
            data = bytes(buffer[: self._left])
            del buffer[: len(data)]
            self._left -= len(data)
        elif framing == "close":
            if buffer:
                data = bytes(buffer)
                buffer.clear()
            else:
                data = await conn.receive(eof_ok=True)
            if not data:
                self._framing = "done"
                await self.aclose()
            return data
        else:
            data = await self._next_chunk(conn, buffer)
        if (framing == "length" and self._left == 0) or (framing == "chunked" and not data):
            self._framing = "done"
            await self.aclose()
        return data

    async def _next_chunk(self, conn: Connection, buffer: bytearray) -> bytes:
        if self._crlf_due:
            while len(buffer) < 2:
                buffer += await conn.receive()
            if buffer[:2] != b"\r\n":
                raise ProtocolError(f"{conn.origin}: a chunk does not end with CRLF")
            del buffer[:2]
            self._crlf_due = False
        if self._chunk_left == 0:
            size_line = await _line(conn, "chunk size line")
            size_text = size_line.split(b";", 1)[0].strip()
            try:
                size = int(size_text, 16)
            except ValueError:
                size = -1
            if size < 0:
                raise ProtocolError(f"{conn.origin}: bad chunk size {size_text[:20]!r}")
            if size == 0:  # trailer fields, then the empty line
                while await _line(conn, "trailer"):
                    pass
                return b""
            self._chunk_left = size
        if not buffer:
            buffer += await conn.receive()
        data = bytes(buffer[: self._chunk_left])
        del buffer[: len(data)]
        self._chunk_left -= len(data)
        self._crlf_due = self._chunk_left == 0
        return data


async def read_response(conn: Connection, method: str, release: Release) -> Response:
    """The response to the request just sent on ``conn``, once its head has arrived."""
    origin = conn.origin
    while True:
        head = await read_head(conn.buffer, conn.receive, origin)
        status, reason, keep_alive, fields = parse_head(head, origin)
        if status >= 200 or status == 101:
            break  # 1xx interim answers (100 Continue, 103 Early Hints) are skipped
    connection = fields.get("connection", "").lower()
    reusable = ("keep-alive" in connection) if not keep_alive else "close" not in connection
    headers = Headers(fields)
    if method == "HEAD" or status in _NO_BODY_STATUSES or status < 200:
        reusable = reusable and status != 101  # after 101 the bytes are another protocol's
        return Response(release, conn, status, reason, headers, "length", 0, reusable)
    coding = fields.get("transfer-encoding")
    if coding is not None:
        if coding.lower().rsplit(",", 1)[-1].strip() == "chunked":
            return Response(release, conn, status, reason, headers, "chunked", 0, reusable)
        return Response(release, conn, status, reason, headers, "close", 0, False)
    length = fields.get("content-length")
    if length is None:
        return Response(release, conn, status, reason, headers, "close", 0, False)
    values = {v.strip() for v in length.split(",")}
    if len(values) != 1 or not (size := values.pop()).isdigit():
        raise ProtocolError(f"{origin}: bad content-length {length[:40]!r}")
    return Response(release, conn, status, reason, headers, "length", int(size), reusable)


async def _line(conn: Connection, what: str) -> bytes:
    """The next CRLF-terminated line in ``conn``'s buffer (receiving as needed), without it."""
    buffer = conn.buffer
    while (end := buffer.find(b"\r\n")) < 0:
        if len(buffer) > MAX_HEAD_BYTES:
            raise ProtocolError(f"{conn.origin}: {what} over {MAX_HEAD_BYTES} bytes")
        buffer += await conn.receive()
    line = bytes(buffer[:end])
    del buffer[: end + 2]
    return line


def _decoder(encoding: str | None, origin: Origin):
    """A decompressor for the body's Content-Encoding, None for identity."""
    if encoding is None:
        return None
    name = encoding.strip().lower()
    if name in ("", "identity"):
        return None
    if name in ("gzip", "x-gzip"):
        return zlib.decompressobj(16 + zlib.MAX_WBITS)
    if name == "deflate":
        return zlib.decompressobj(zlib.MAX_WBITS)
    raise ProtocolError(f"{origin}: unsupported content-encoding {encoding[:40]!r}")
