"""A lean HTTP/1.1 client on trio: keep-alive pools per origin, TLS, streamed bodies.

The live router's HTTP path to its providers. Why not httpx or httpcore (both
well kept, both tried): a keep-alive POST with a small JSON reply, 16 in flight
on loopback, costs ~1,040 µs of CPU through httpx on trio, ~850 µs through
httpcore, ~130 µs through h11 with a minimal pool (no stale-connection check,
no timeouts) and ~56 µs here (``benches/bench_http_clients.py``, all four in one
run). The router itself adds ~50 µs, so with h11 the all-in cost would be about
1.7x this one's, and the 30x CPU target against LiteLLM's Router (~5-6 ms a
request) would be at risk. What this package does is what a provider call needs
and no more:

- one pool per origin (scheme, host, port), LIFO idle connections, at most
  ``max_connections`` open per origin (callers wait for a free one), idle ones
  closed after ``keepalive_expiry`` seconds;
- HTTPS through :class:`trio.SSLStream` with certificate and host name
  verification (the system's CAs, else certifi's bundle, unless a context is given);
- Content-Length, chunked and read-until-close bodies; 1xx interim answers skipped;
- ``accept-encoding: identity`` asked for, gzip and deflate decoded anyway;
- HTTP proxies (``https_proxy``, ``http_proxy``, ``all_proxy``, ``no_proxy`` as curl
  and httpx read them, or given): a CONNECT tunnel for https, absolute-form requests
  for http;
- connect (DNS + TCP + TLS) and per-read timeouts as trio cancel scopes;
- a kept-alive connection the server closed meanwhile is noticed before reuse
  (a non-blocking peek) or when the request fails on it, and the request is sent
  once more on a fresh connection only if no byte of a response had arrived;
- response header names case-insensitive, repeated fields joined with ", ".

Errors are :class:`HttpError` subclasses that name the origin and what went
wrong; they never quote request headers, so an API key cannot leak through them.

The package, by responsibility:

- :mod:`~actors.backends.http1.client`: the request API and the pools;
- :mod:`~actors.backends.http1.connection`: TCP and TLS, timeouts, stale detection;
- :mod:`~actors.backends.http1.proxy`: which origins go through which proxy; CONNECT;
- :mod:`~actors.backends.http1.head`: a response's status line and header fields;
- :mod:`~actors.backends.http1.response`: body framing and decoding;
- :mod:`~actors.backends.http1.trust`: the CAs trusted by default;
- :mod:`~actors.backends.http1.urls`, :mod:`~actors.backends.http1.errors`.
"""

from actors.backends.http1.client import HttpClient
from actors.backends.http1.errors import (
    ConnectError,
    ConnectionLost,
    ConnectTimeout,
    HttpError,
    ProtocolError,
    ProxyError,
    ReadTimeout,
    TLSError,
)
from actors.backends.http1.head import MAX_HEAD_BYTES, Headers
from actors.backends.http1.proxy import Proxy, ProxySettings, parse_proxy, proxy_settings
from actors.backends.http1.response import MAX_LINE_BYTES, Response
from actors.backends.http1.trust import default_ssl_context
from actors.backends.http1.urls import Origin, split_url

__all__ = [
    "MAX_HEAD_BYTES",
    "MAX_LINE_BYTES",
    "ConnectError",
    "ConnectTimeout",
    "ConnectionLost",
    "Headers",
    "HttpClient",
    "HttpError",
    "Origin",
    "ProtocolError",
    "Proxy",
    "ProxyError",
    "ProxySettings",
    "ReadTimeout",
    "Response",
    "TLSError",
    "default_ssl_context",
    "parse_proxy",
    "proxy_settings",
    "split_url",
]
