"""One connection to an origin: opening it (TCP, a proxy's tunnel, TLS), reading and
writing with timeouts, and telling whether a kept-alive one was closed meanwhile."""

from __future__ import annotations

import select
import socket
import ssl

import trio

from actors.backends.http1.errors import (
    ConnectError,
    ConnectionLost,
    ConnectTimeout,
    ReadTimeout,
    TLSError,
    describe,
)
from actors.backends.http1.proxy import Proxy, open_tunnel
from actors.backends.http1.urls import Origin

_RECEIVE_BYTES = 64 * 1024
_PEEK_FLAGS = socket.MSG_PEEK | socket.MSG_DONTWAIT


class Connection:
    """One TCP (or TLS) connection and the bytes received on it but not consumed yet."""

    __slots__ = ("buffer", "idle_since", "origin", "read_timeout", "retry_safe", "stream")

    def __init__(self, stream: trio.abc.Stream, origin: Origin, read_timeout: float | None) -> None:
        self.stream = stream
        self.origin = origin
        self.read_timeout = read_timeout
        self.buffer = bytearray()
        self.idle_since = 0.0
        #: True while a reused connection has no byte of the current answer: a failure
        #: then means the server had closed it, and the request may be sent again.
        self.retry_safe = False

    async def send(self, data: bytes) -> None:
        try:
            await self.stream.send_all(data)
        except (trio.BrokenResourceError, OSError) as exc:
            raise ConnectionLost(
                f"{self.origin}: sending the request failed: {describe(exc)}"
            ) from None

    async def receive(self, eof_ok: bool = False) -> bytes:
        """The next bytes from the peer; the end of the stream is an error unless ``eof_ok``."""
        try:
            if self.read_timeout is None:
                data = await self.stream.receive_some(_RECEIVE_BYTES)
            else:
                with trio.fail_after(self.read_timeout):
                    data = await self.stream.receive_some(_RECEIVE_BYTES)
        except trio.TooSlowError:
            raise ReadTimeout(
                f"{self.origin}: no byte for {self.read_timeout:g} s (read timeout)"
            ) from None
        except (trio.BrokenResourceError, OSError) as exc:
            raise ConnectionLost(f"{self.origin}: connection lost: {describe(exc)}") from None
        if not data and not eof_ok:
            raise ConnectionLost(f"{self.origin}: the server closed the connection mid-answer")
        if data:
            self.retry_safe = False
        return data

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
        await close_stream(self.stream)


async def close_stream(stream: trio.abc.Stream) -> None:
    with trio.CancelScope(shield=True):  # forceful: it cannot block
        await trio.aclose_forcefully(stream)


def _readable(fd: int) -> bool:
    """Whether ``fd`` has bytes (or its end) to read now; poll has no FD_SETSIZE limit."""
    if hasattr(select, "poll"):
        poller = select.poll()
        poller.register(fd, select.POLLIN)
        return bool(poller.poll(0))
    return bool(select.select([fd], [], [], 0)[0])  # Windows


async def open_connection(
    origin: Origin,
    *,
    connect_timeout: float,
    read_timeout: float | None,
    ssl_context: ssl.SSLContext | None,
    proxy: Proxy | None = None,
    user_agent: str = "callboard",
) -> Connection:
    """A new connection to ``origin``, TLS with ``ssl_context`` if one is given (the
    client gives one for https origins), through ``proxy`` if one is given (a CONNECT
    tunnel for TLS), all within ``connect_timeout``."""
    if proxy is None:
        host, port = origin.host, origin.port
        where = f"{host}:{port}"
    else:
        host, port = proxy.host, proxy.port
        where = f"proxy {proxy} (for {origin.host}:{origin.port})"
    stream: trio.abc.Stream | None = None
    try:
        with trio.fail_after(connect_timeout):
            stream = await trio.open_tcp_stream(host, port)
            if ssl_context is not None:
                if proxy is not None:
                    await open_tunnel(stream, proxy, origin, user_agent)
                stream = await _tls(stream, origin, ssl_context)
    except BaseException as exc:
        if stream is not None:  # e.g. the TLS handshake timed out or was cancelled
            await close_stream(stream)
        if isinstance(exc, trio.TooSlowError):
            raise ConnectTimeout(f"connecting to {where} took over {connect_timeout:g} s") from None
        if isinstance(exc, socket.gaierror):
            of = "" if proxy is None else " (the proxy)"
            raise ConnectError(f"cannot resolve {host!r}{of}: {exc.strerror or exc}") from None
        if isinstance(exc, OSError):
            raise ConnectError(f"cannot connect to {where}: {describe(exc)}") from None
        raise
    return Connection(stream, origin, read_timeout)


async def _tls(tcp: trio.abc.Stream, origin: Origin, context: ssl.SSLContext) -> trio.SSLStream:
    # https_compatible: a server that ends without TLS close_notify (many do) ends the
    # stream like a TCP close; truncation is still caught by the body's framing.
    stream = trio.SSLStream(tcp, context, server_hostname=origin.host, https_compatible=True)
    try:
        await stream.do_handshake()
    except (trio.BrokenResourceError, ssl.SSLError) as exc:
        cause = exc.__cause__ if isinstance(exc, trio.BrokenResourceError) else exc
        raise TLSError(
            f"TLS handshake with {origin.host}:{origin.port} failed: "
            f"{describe(cause) if cause is not None else 'the connection closed'}"
        ) from None
    return stream
