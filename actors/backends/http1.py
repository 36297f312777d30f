"""A lean HTTP/1.1 client on trio: keep-alive pools per origin, TLS, streamed bodies.

The live router's HTTP path to its providers. Why not httpx or httpcore (both
well kept, both tried): a keep-alive POST with a small JSON reply, 16 in flight
on loopback, costs ~1,040 µs of CPU through httpx on trio, ~850 µs through
httpcore, ~130 µs through h11 with a minimal pool (no stale-connection check,
no timeouts) and ~56 µs here (``benches/bench_http_clients.py``, all four in one
run). The router itself adds ~50 µs, so with h11 the all-in cost would be about
1.7x this one's, and the 30x CPU target against LiteLLM's Router (~5-6 ms a
request) would be at risk. What this module does is what a provider call needs
and no more:

- one pool per origin (scheme, host, port), LIFO idle connections, at most
  ``max_connections`` open per origin (callers wait for a free one), idle ones
  closed after ``keepalive_expiry`` seconds;
- HTTPS through :class:`trio.SSLStream` with certificate and host name
  verification (``ssl.create_default_context()`` unless a context is given);
- Content-Length, chunked and read-until-close bodies; 1xx interim answers skipped;
- ``accept-encoding: identity`` asked for, gzip and deflate decoded anyway;
- connect (DNS + TCP + TLS) and per-read timeouts as trio cancel scopes;
- a kept-alive connection the server closed meanwhile is noticed before reuse
  (a non-blocking peek) or when the request fails on it, and the request is sent
  once more on a fresh connection only if no byte of a response had arrived;
- response header names case-insensitive, repeated fields joined with ", ".

Errors are :class:`HttpError` subclasses that name the origin and what went
wrong; they never quote request headers, so an API key cannot leak through them.
"""

from __future__ import annotations

import contextlib
import functools
import select
import socket
import ssl
import zlib
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator, Mapping
from urllib.parse import urlsplit

import attrs
import trio

MAX_HEAD_BYTES = 64 * 1024
MAX_LINE_BYTES = 1024 * 1024
_RECEIVE_BYTES = 64 * 1024
_NO_BODY_STATUSES = frozenset({204, 304})
_PEEK_FLAGS = socket.MSG_PEEK | socket.MSG_DONTWAIT


class HttpError(Exception):
    """No usable HTTP answer: the transport or the peer failed. Names the origin."""


class ConnectError(HttpError):
    """The connection could not be made: DNS, refused, unreachable."""


class ConnectTimeout(ConnectError):
    """DNS + TCP + TLS took longer than the connect timeout."""


class TLSError(ConnectError):
    """The TLS handshake failed: untrusted or mismatched certificate, or not TLS at all."""


class ReadTimeout(HttpError):
    """No byte arrived for the read timeout."""


class ConnectionLost(HttpError):
    """The peer closed or reset the connection before the answer was complete."""


class ProtocolError(HttpError):
    """The peer's bytes are not a valid HTTP/1.1 response."""


@attrs.frozen
class Origin:
    scheme: str
    host: str
    port: int

    def __str__(self) -> str:
        return f"{self.scheme}://{self.host}:{self.port}"


@functools.lru_cache(maxsize=1024)
def split_url(url: str) -> tuple[Origin, str, str]:
    """(origin, request target, Host header) of an absolute http(s) URL."""
    parts = urlsplit(url)
    scheme = parts.scheme.lower()
    if scheme not in ("http", "https"):
        raise ValueError(f"URL scheme must be http or https, not {parts.scheme!r}: {url!r}")
    if not parts.hostname:
        raise ValueError(f"URL has no host: {url!r}")
    default = 443 if scheme == "https" else 80
    port = parts.port or default
    target = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
    host = parts.hostname
    shown = f"[{host}]" if ":" in host else host
    return Origin(scheme, host, port), target, shown if port == default else f"{shown}:{port}"


class Headers(Mapping[str, str]):
    """Response header fields; names are case-insensitive."""

    __slots__ = ("_fields",)

    def __init__(self, fields: dict[str, str]) -> None:
        self._fields = fields  # lower-case names

    def __getitem__(self, name: str) -> str:
        return self._fields[name.lower()]

    def get(self, name: str, default: str | None = None) -> str | None:  # type: ignore[override]
        return self._fields.get(name.lower(), default)

    def __contains__(self, name: object) -> bool:
        return isinstance(name, str) and name.lower() in self._fields

    def __iter__(self) -> Iterator[str]:
        return iter(self._fields)

    def __len__(self) -> int:
        return len(self._fields)

    def items(self):  # type: ignore[override]  # the dict's own view: Mapping's is slow
        return self._fields.items()

    def __repr__(self) -> str:
        return f"Headers({list(self._fields)})"


class _Connection:
    """One TCP (or TLS) connection and the bytes received on it but not consumed yet."""

    __slots__ = ("buffer", "idle_since", "origin", "retry_safe", "stream")

    def __init__(self, stream: trio.abc.Stream, origin: Origin) -> None:
        self.stream = stream
        self.origin = origin
        self.buffer = bytearray()
        self.idle_since = 0.0
        #: True while a reused connection has no byte of the current answer: a failure
        #: then means the server had closed it, and the request may be sent again.
        self.retry_safe = False

    def looks_closed(self) -> bool:
        """True if the peer closed this idle connection (or sent bytes nobody asked for)."""
        if self.buffer:
            return True
        stream = self.stream
        tls = isinstance(stream, trio.SSLStream)
        raw = stream.transport_stream if tls else stream
        sock = getattr(raw, "socket", None)
        if sock is None:
            return False
        if not _readable(sock.fileno()):
            return False  # nothing to read: still open
        if not tls:
            return True  # an idle plain connection has nothing to say but its end
        # Idle TLS may carry a late session ticket: only the end of the stream is final.
        peek = socket.socket(fileno=sock.fileno())
        try:
            return not peek.recv(1, _PEEK_FLAGS)
        except BlockingIOError:
            return False
        except OSError:
            return True
        finally:
            peek.detach()

    async def close(self) -> None:
        """Close at once, even in a cancelled scope (where the caller must still tidy up)."""
        with trio.CancelScope(shield=True):  # forceful: it cannot block
            await trio.aclose_forcefully(self.stream)


def _readable(fd: int) -> bool:
    """Whether ``fd`` has bytes (or its end) to read now; poll has no FD_SETSIZE limit."""
    if hasattr(select, "poll"):
        poller = select.poll()
        poller.register(fd, select.POLLIN)
        return bool(poller.poll(0))
    return bool(select.select([fd], [], [], 0)[0])  # Windows


class _Pool:
    """The connections to one origin: idle ones (LIFO) and a bound on how many are open."""

    __slots__ = ("idle", "slots")

    def __init__(self, max_connections: int) -> None:
        self.idle: list[_Connection] = []
        self.slots = trio.Semaphore(max_connections)


class Response:
    """A response whose head has arrived; its body is read with :meth:`read`, or piece by
    piece with :meth:`next_data` / :meth:`iter_lines` while it streams."""

    __slots__ = (
        "_chunk_left",
        "_client",
        "_conn",
        "_crlf_due",
        "_decoder",
        "_framing",
        "_left",
        "_reusable",
        "content",
        "headers",
        "origin",
        "reason",
        "status",
    )

    def __init__(
        self,
        client: HttpClient,
        conn: _Connection,
        status: int,
        reason: str,
        headers: Headers,
        framing: str,
        length: int,
        reusable: bool,
    ) -> None:
        self._client = client
        self._conn: _Connection | None = conn
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
                buffer += await self._client._receive(conn)
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
            await self._client._release(conn, self._framing == "done" and self._reusable)

    async def _next_raw(self) -> bytes:
        """The next piece of the body as framed on the wire; b"" at its end."""
        conn = self._conn
        framing = self._framing
        if conn is None or framing == "done":
            return b""
        receive = self._client._receive
        buffer = conn.buffer
        if framing == "length":
            if not buffer:
                buffer += await receive(conn)
            data = bytes(buffer[: self._left])
            del buffer[: len(data)]
            self._left -= len(data)
        elif framing == "close":
            if buffer:
                data = bytes(buffer)
                buffer.clear()
            else:
                data = await receive(conn, eof_ok=True)
            if not data:
                self._framing = "done"
                await self.aclose()
            return data
        else:
            data = await self._next_chunk(conn, buffer, receive)
        if (framing == "length" and self._left == 0) or (framing == "chunked" and not data):
            self._framing = "done"
            await self.aclose()
        return data

    async def _next_chunk(self, conn: _Connection, buffer: bytearray, receive: _Receive) -> bytes:
        if self._crlf_due:
            while len(buffer) < 2:
                buffer += await receive(conn)
            if buffer[:2] != b"\r\n":
                raise ProtocolError(f"{conn.origin}: a chunk does not end with CRLF")
            del buffer[:2]
            self._crlf_due = False
        if self._chunk_left == 0:
            size_line = await _line(conn, receive, "chunk size line")
            size_text = size_line.split(b";", 1)[0].strip()
            try:
                size = int(size_text, 16)
            except ValueError:
                size = -1
            if size < 0:
                raise ProtocolError(f"{conn.origin}: bad chunk size {size_text[:20]!r}")
            if size == 0:  # trailer fields, then the empty line
                while await _line(conn, receive, "trailer"):
                    pass
                return b""
            self._chunk_left = size
        if not buffer:
            buffer += await receive(conn)
        data = bytes(buffer[: self._chunk_left])
        del buffer[: len(data)]
        self._chunk_left -= len(data)
        self._crlf_due = self._chunk_left == 0
        return data


_Receive = Callable[..., Awaitable[bytes]]


async def _line(conn: _Connection, receive: _Receive, what: str) -> bytes:
    """The next CRLF-terminated line in ``conn``'s buffer (receiving as needed), without it."""
    buffer = conn.buffer
    while (end := buffer.find(b"\r\n")) < 0:
        if len(buffer) > MAX_HEAD_BYTES:
            raise ProtocolError(f"{conn.origin}: {what} over {MAX_HEAD_BYTES} bytes")
        buffer += await receive(conn)
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


def _parse_head(head: bytes, origin: Origin) -> tuple[int, str, bool, dict[str, str]]:
    """(status, reason, HTTP/1.1?, fields) of a response head (without its blank line)."""
    try:
        text = head.decode("latin-1")
        status_line, *lines = text.split("\r\n")
        version, _, rest = status_line.partition(" ")
        code, _, reason = rest.partition(" ")
        status = int(code)
    except ValueError:
        raise ProtocolError(f"{origin}: not an HTTP response: {head[:40]!r}") from None
    if version not in ("HTTP/1.1", "HTTP/1.0") or len(code) != 3 or not 100 <= status <= 999:
        raise ProtocolError(f"{origin}: not an HTTP/1.x status line: {status_line[:40]!r}")
    fields: dict[str, str] = {}
    for line in lines:
        name, colon, value = line.partition(":")
        if not colon or not name or name[-1] in " \t" or line[0] in " \t":
            raise ProtocolError(f"{origin}: malformed header line {line[:40]!r}")
        name = name.lower()
        value = value.strip(" \t")
        fields[name] = f"{fields[name]}, {value}" if name in fields else value
    return status, reason, version == "HTTP/1.1", fields


class HttpClient:
    """Keep-alive HTTP/1.1 to any number of origins; ``async with`` closes idle connections."""

    def __init__(
        self,
        *,
        max_connections: int = 256,
        connect_timeout: float = 10.0,
        read_timeout: float | None = None,
        keepalive_expiry: float = 30.0,
        ssl_context: ssl.SSLContext | None = None,
        user_agent: str = "callboard",
    ) -> None:
        if max_connections < 1:
            raise ValueError(f"max_connections must be >= 1, not {max_connections}")
        for name, value in (("connect_timeout", connect_timeout), ("read_timeout", read_timeout)):
            if value is not None and value <= 0:
                raise ValueError(f"{name} must be > 0 seconds, not {value}")
        self.max_connections = max_connections
        self.connect_timeout = connect_timeout
        self.read_timeout = read_timeout
        self.keepalive_expiry = keepalive_expiry
        self._ssl_context = ssl_context
        self._user_agent = user_agent
        self._pools: dict[Origin, _Pool] = {}
        self._closed = False

    def __repr__(self) -> str:
        return f"HttpClient(origins={len(self._pools)}, max_connections={self.max_connections})"

    async def __aenter__(self) -> HttpClient:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        self._closed = True
        for pool in self._pools.values():
            idle, pool.idle = pool.idle, []
            for conn in idle:
                await conn.close()

    def idle_connections(self, url: str) -> int:
        """Kept-alive connections to ``url``'s origin (for tests and status pages)."""
        pool = self._pools.get(split_url(url)[0])
        return len(pool.idle) if pool is not None else 0

    def connections_in_use(self, url: str) -> int:
        """Connections to ``url``'s origin that a request holds now."""
        pool = self._pools.get(split_url(url)[0])
        return self.max_connections - pool.slots.value if pool is not None else 0

    # --- requests ------------------------------------------------------------------
    async def request(
        self,
        method: str,
        url: str,
        *,
        headers: Mapping[str, str] | None = None,
        body: bytes = b"",
        limit: int | None = None,
    ) -> Response:
        """Send one request and read its whole answer (``response.content``, <= ``limit``)."""
        response = await self._send(method, url, headers, body)
        try:
            await response.read(limit)
        finally:
            await response.aclose()
        return response

    @contextlib.asynccontextmanager
    async def stream(
        self,
        method: str,
        url: str,
        *,
        headers: Mapping[str, str] | None = None,
        body: bytes = b"",
    ) -> AsyncIterator[Response]:
        """Send one request; the answer's body is read by the caller as it arrives."""
        response = await self._send(method, url, headers, body)
        try:
            yield response
        finally:
            await response.aclose()

    async def _send(
        self, method: str, url: str, headers: Mapping[str, str] | None, body: bytes
    ) -> Response:
        if self._closed:
            raise RuntimeError("this HttpClient is closed")
        origin, target, host = split_url(url)
        data = self._request_bytes(method, target, host, headers, body)
        pool = self._pools.get(origin)
        if pool is None:
            pool = self._pools[origin] = _Pool(self.max_connections)
        await pool.slots.acquire()
        conn: _Connection | None = None
        try:
            conn = await self._connection(pool, origin)
            try:
                return await self._exchange(conn, data, method)
            except ConnectionLost:
                if not conn.retry_safe:
                    raise
                # The server had closed this kept-alive connection: nothing was answered,
                # so the request was not handled; send it once on a fresh connection.
                await conn.close()
                conn = None
                conn = await self._connect(origin)
                return await self._exchange(conn, data, method)
        except BaseException:
            pool.slots.release()
            if conn is not None:
                await conn.close()
            raise

    def _request_bytes(
        self,
        method: str,
        target: str,
        host: str,
        headers: Mapping[str, str] | None,
        body: bytes,
    ) -> bytes:
        lines = [f"{method} {target} HTTP/1.1\r\nhost: {host}\r\n"]
        given = set()
        if headers:
            for name, value in headers.items():
                if "\n" in value or "\r" in value or "\n" in name or "\r" in name:
                    # Never quote the value: it may be an API key.
                    raise ValueError(f"header {name!r} contains a line break")
                given.add(name.lower())
                lines.append(f"{name}: {value}\r\n")
        if "accept-encoding" not in given:
            lines.append("accept-encoding: identity\r\n")
        if "user-agent" not in given:
            lines.append(f"user-agent: {self._user_agent}\r\n")
        if body or method not in ("GET", "HEAD"):
            lines.append(f"content-length: {len(body)}\r\n")
        lines.append("\r\n")
        try:
            return "".join(lines).encode("latin-1") + body
        except UnicodeEncodeError:
            # Never quote the text: it may hold an API key.
            raise ValueError("the URL or a header has characters outside latin-1") from None

    async def _connection(self, pool: _Pool, origin: Origin) -> _Connection:
        """An idle connection that still looks open, else a new one."""
        now = trio.current_time()
        idle = pool.idle
        while idle:
            conn = idle.pop()
            if now - conn.idle_since <= self.keepalive_expiry and not conn.looks_closed():
                conn.retry_safe = True
                return conn
            await conn.close()
        return await self._connect(origin)

    async def _connect(self, origin: Origin) -> _Connection:
        where = f"{origin.host}:{origin.port}"
        stream: trio.abc.Stream | None = None
        try:
            with trio.fail_after(self.connect_timeout):
                stream = await trio.open_tcp_stream(origin.host, origin.port)
                if origin.scheme == "https":
                    stream = await self._tls(stream, origin)
        except BaseException as exc:
            if stream is not None:  # e.g. the TLS handshake timed out or was cancelled
                await _Connection(stream, origin).close()
            if isinstance(exc, trio.TooSlowError):
                raise ConnectTimeout(
                    f"connecting to {where} took over {self.connect_timeout:g} s"
                ) from None
            if isinstance(exc, socket.gaierror):
                raise ConnectError(
                    f"cannot resolve {origin.host!r}: {exc.strerror or exc}"
                ) from None
            if isinstance(exc, OSError):
                raise ConnectError(f"cannot connect to {where}: {_reason(exc)}") from None
            raise
        return _Connection(stream, origin)

    async def _tls(self, tcp: trio.SocketStream, origin: Origin) -> trio.SSLStream:
        if self._ssl_context is None:
            self._ssl_context = ssl.create_default_context()
        # https_compatible: a server that ends without TLS close_notify (many do) ends the
        # stream like a TCP close; truncation is still caught by the body's framing.
        stream = trio.SSLStream(
            tcp, self._ssl_context, server_hostname=origin.host, https_compatible=True
        )
        try:
            await stream.do_handshake()
        except (trio.BrokenResourceError, ssl.SSLError) as exc:
            cause = exc.__cause__ if isinstance(exc, trio.BrokenResourceError) else exc
            raise TLSError(
                f"TLS handshake with {origin.host}:{origin.port} failed: "
                f"{_reason(cause) if cause is not None else 'the connection closed'}"
            ) from None
        return stream

    async def _exchange(self, conn: _Connection, data: bytes, method: str) -> Response:
        stream = conn.stream
        try:
            await stream.send_all(data)
        except (trio.BrokenResourceError, OSError) as exc:
            raise ConnectionLost(
                f"{conn.origin}: sending the request failed: {_reason(exc)}"
            ) from None
        origin = conn.origin
        buffer = conn.buffer
        while True:
            start = 0
            while (end := buffer.find(b"\r\n\r\n", start)) < 0:
                if len(buffer) > MAX_HEAD_BYTES:
                    raise ProtocolError(f"{origin}: response head over {MAX_HEAD_BYTES} bytes")
                start = max(0, len(buffer) - 3)
                buffer += await self._receive(conn)
            status, reason, keep_alive, fields = _parse_head(bytes(buffer[:end]), origin)
            del buffer[: end + 4]
            if status >= 200 or status == 101:
                break  # 1xx interim answers (100 Continue, 103 Early Hints) are skipped
        connection = fields.get("connection", "").lower()
        reusable = ("keep-alive" in connection) if not keep_alive else "close" not in connection
        headers = Headers(fields)
        if method == "HEAD" or status in _NO_BODY_STATUSES or status < 200:
            reusable = reusable and status != 101  # after 101 the bytes are another protocol's
            return Response(self, conn, status, reason, headers, "length", 0, reusable)
        coding = fields.get("transfer-encoding")
        if coding is not None:
            if coding.lower().rsplit(",", 1)[-1].strip() == "chunked":
                return Response(self, conn, status, reason, headers, "chunked", 0, reusable)
            return Response(self, conn, status, reason, headers, "close", 0, False)
        length = fields.get("content-length")
        if length is None:
            return Response(self, conn, status, reason, headers, "close", 0, False)
        values = {v.strip() for v in length.split(",")}
        if len(values) != 1 or not (size := values.pop()).isdigit():
            raise ProtocolError(f"{origin}: bad content-length {length[:40]!r}")
        return Response(self, conn, status, reason, headers, "length", int(size), reusable)

    async def _receive(self, conn: _Connection, eof_ok: bool = False) -> bytes:
        """The next bytes from the peer; the end of the stream is an error unless ``eof_ok``."""
        try:
            if self.read_timeout is None:
                data = await conn.stream.receive_some(_RECEIVE_BYTES)
            else:
                with trio.fail_after(self.read_timeout):
                    data = await conn.stream.receive_some(_RECEIVE_BYTES)
        except trio.TooSlowError:
            raise ReadTimeout(
                f"{conn.origin}: no byte for {self.read_timeout:g} s (read timeout)"
            ) from None
        except (trio.BrokenResourceError, OSError) as exc:
            raise ConnectionLost(f"{conn.origin}: connection lost: {_reason(exc)}") from None
        if not data and not eof_ok:
            raise ConnectionLost(f"{conn.origin}: the server closed the connection mid-answer")
        if data:
            conn.retry_safe = False
        return data

    async def _release(self, conn: _Connection, reusable: bool) -> None:
        pool = self._pools[conn.origin]
        pool.slots.release()
        if reusable and not self._closed:
            conn.idle_since = trio.current_time()
            conn.retry_safe = False
            pool.idle.append(conn)
        else:
            await conn.close()


def _reason(exc: BaseException) -> str:
    """An exception as a short phrase: the OS or TLS reason, else its type and text."""
    cause = exc.__cause__ if isinstance(exc, trio.BrokenResourceError) else None
    if cause is not None:
        exc = cause
    if isinstance(exc, ssl.SSLCertVerificationError):
        return f"certificate verify failed: {exc.verify_message}"
    if isinstance(exc, ssl.SSLError):
        return exc.reason or str(exc)
    if isinstance(exc, OSError) and exc.strerror:
        return exc.strerror
    text = str(exc)
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__
