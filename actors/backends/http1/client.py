"""The client API: ``request`` and ``stream`` over one keep-alive pool per origin."""

from __future__ import annotations

import contextlib
import ssl
from collections.abc import AsyncIterator, Mapping

import trio

from actors.backends.http1.connection import Connection, open_connection
from actors.backends.http1.errors import ConnectionLost
from actors.backends.http1.proxy import Proxy, ProxySettings
from actors.backends.http1.response import Response, read_response
from actors.backends.http1.trust import default_ssl_context
from actors.backends.http1.urls import Origin, split_url


class _Pool:
    """The connections to one origin: idle ones (LIFO), a bound on how many are open,
    and the proxy they go through, if any."""

    __slots__ = ("idle", "origin", "proxy", "proxy_header", "slots", "target_prefix")

    def __init__(
        self, max_connections: int, origin: Origin, host: str, proxy: Proxy | None
    ) -> None:
        self.idle: list[Connection] = []
        self.slots = trio.Semaphore(max_connections)
        self.origin = origin
        self.proxy = proxy
        #: A request to an http origin through a proxy names the origin (absolute form)
        #: and carries the proxy's credentials; https ones go through a tunnel instead.
        forwarded = proxy is not None and origin.scheme == "http"
        self.target_prefix = f"http://{host}" if forwarded else ""
        authorization = proxy.authorization if forwarded and proxy is not None else None
        self.proxy_header = f"proxy-authorization: {authorization}\r\n" if authorization else ""


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
        proxies: ProxySettings | None = None,
    ) -> None:
        """``proxies``: e.g. :func:`~actors.backends.http1.proxy.proxy_settings` of the
        environment; None (the default) reaches every origin directly."""
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
        self._proxies = proxies if proxies is not None and proxies.enabled else None
        self._pools: dict[Origin, _Pool] = {}
        self._closed = False

    def __repr__(self) -> str:
        return f"HttpClient(origins={len(self._pools)}, max_connections={self.max_connections})"

    def proxy_for(self, url: str) -> Proxy | None:
        """The proxy that requests to ``url`` go through, None if they go directly."""
        origin = split_url(url)[0]
        pool = self._pools.get(origin)
        if pool is not None:
            return pool.proxy
        return self._proxies.proxy_for(origin) if self._proxies is not None else None

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
        pool = self._pools.get(origin)
        if pool is None:
            proxy = self._proxies.proxy_for(origin) if self._proxies is not None else None
            pool = self._pools[origin] = _Pool(self.max_connections, origin, host, proxy)
        data = self._request_bytes(method, pool.target_prefix + target, host, headers, body, pool)
        await pool.slots.acquire()
        conn: Connection | None = None
        try:
            conn = await self._connection(pool)
            try:
                await conn.send(data)
                return await read_response(conn, method, self._release)
            except ConnectionLost:
                if not conn.retry_safe:
                    raise
                # The server had closed this kept-alive connection: nothing was answered,
                # so the request was not handled; send it once on a fresh connection.
                await conn.close()
                conn = None
                conn = await self._connect(pool)
                await conn.send(data)
                return await read_response(conn, method, self._release)
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
        pool: _Pool,
    ) -> bytes:
        lines = [f"{method} {target} HTTP/1.1\r\nhost: {host}\r\n{pool.proxy_header}"]
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

    async def _connection(self, pool: _Pool) -> Connection:
        """An idle connection that still looks open, else a new one."""
        now = trio.current_time()
        idle = pool.idle
        while idle:
            conn = idle.pop()
            if now - conn.idle_since <= self.keepalive_expiry and not conn.looks_closed():
                conn.retry_safe = True
                return conn
            await conn.close()
        return await self._connect(pool)

    async def _connect(self, pool: _Pool) -> Connection:
        origin = pool.origin
        context = None
        if origin.scheme == "https":
            if self._ssl_context is None:
                self._ssl_context = default_ssl_context()
            context = self._ssl_context
        return await open_connection(
            origin,
            connect_timeout=self.connect_timeout,
            read_timeout=self.read_timeout,
            ssl_context=context,
            proxy=pool.proxy,
            user_agent=self._user_agent,
        )

    async def _release(self, conn: Connection, reusable: bool) -> None:
        pool = self._pools[conn.origin]
        pool.slots.release()
        if reusable and not self._closed:
            conn.idle_since = trio.current_time()
            conn.retry_safe = False
            pool.idle.append(conn)
        else:
            await conn.close()
