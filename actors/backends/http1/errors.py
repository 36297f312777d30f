"""The client's errors, and short phrases for the OS and TLS failures behind them.

Every error names the origin (or host and port) and what went wrong; none ever
quotes a request header, so an API key cannot leak through one.
"""

from __future__ import annotations

import ssl

import trio


class HttpError(Exception):
    """No usable HTTP answer: the transport or the peer failed. Names the origin."""


class ConnectError(HttpError):
    """The connection could not be made: DNS, refused, unreachable."""


class ConnectTimeout(ConnectError):
    """DNS + TCP + TLS took longer than the connect timeout."""


class TLSError(ConnectError):
    """The TLS handshake failed: untrusted or mismatched certificate, or not TLS at all."""


class ProxyError(ConnectError):
    """The proxy would not open a tunnel to the origin (e.g. 407, 502) or broke off."""


class ReadTimeout(HttpError):
    """No byte arrived for the read timeout."""


class ConnectionLost(HttpError):
    """The peer closed or reset the connection before the answer was complete."""


class ProtocolError(HttpError):
    """The peer's bytes are not a valid HTTP/1.1 response."""


def describe(exc: BaseException) -> str:
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
