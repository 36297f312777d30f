"""A small HTTP proxy on loopback for the client's proxy tests, written with trio sockets.

It opens CONNECT tunnels and forwards absolute-form requests, like a company's
proxy, to upstreams named by host: ``routes`` maps ``host:port`` (names that do
not resolve, such as ``api.provider.test``) to a loopback port, so a request can
only arrive by way of the proxy. It counts the tunnels it made and the requests
it forwarded, keeps every CONNECT target and every Proxy-Authorization it was
given, answers 407 without the expected credentials and the status in
``refuse`` (e.g. 502) for the targets listed there.
"""

from __future__ import annotations

import base64
import contextlib
import functools
from urllib.parse import urlsplit

import attrs
import trio

from tests.live.conftest import LOOPBACK


@attrs.define
class LoopbackProxy:
    routes: dict[str, int]
    credentials: str | None = None  # "user:password" required, else 407
    refuse: dict[str, int] = attrs.Factory(dict)
    url: str = ""
    tunnels: int = 0
    forwarded: int = 0
    targets: list[str] = attrs.Factory(list)  # CONNECT targets and absolute-form URLs
    authorizations: list[str | None] = attrs.Factory(list)
    #: Open tunnels' client streams, so a test can break one off (a proxy's idle timeout).
    open_tunnels: list[trio.SocketStream] = attrs.Factory(list)

    def url_with(self, userinfo: str) -> str:
        return self.url.replace("http://", f"http://{userinfo}@")


async def start_proxy(
    nursery: trio.Nursery,
    routes: dict[str, int],
    *,
    credentials: str | None = None,
    refuse: dict[str, int] | None = None,
) -> LoopbackProxy:
    proxy = LoopbackProxy(routes, credentials, refuse or {})
    listeners = await nursery.start(
        functools.partial(trio.serve_tcp, functools.partial(_handle, proxy), 0, host=LOOPBACK)
    )
    proxy.url = f"http://{LOOPBACK}:{listeners[0].socket.getsockname()[1]}"
    return proxy


async def _read_head(stream: trio.abc.Stream, buffer: bytearray) -> list[str] | None:
    while b"\r\n\r\n" not in buffer:
        data = await stream.receive_some(65536)
        if not data:
            return None
        buffer += data
    end = buffer.index(b"\r\n\r\n")
    lines = bytes(buffer[:end]).decode("latin-1").split("\r\n")
    del buffer[: end + 4]
    return lines


def _field(lines: list[str], wanted: str) -> str | None:
    for line in lines[1:]:
        name, _, value = line.partition(":")
        if name.strip().lower() == wanted:
            return value.strip()
    return None


async def _answer(stream: trio.abc.Stream, status: int, reason: str) -> None:
    extra = 'proxy-authenticate: Basic realm="test"\r\n' if status == 407 else ""
    head = f"HTTP/1.1 {status} {reason}\r\n{extra}content-length: 0\r\nconnection: close\r\n\r\n"
    await stream.send_all(head.encode())


async def _pipe(source: trio.abc.Stream, sink: trio.abc.Stream) -> None:
    with contextlib.suppress(trio.BrokenResourceError, trio.ClosedResourceError, OSError):
        while data := await source.receive_some(65536):
            await sink.send_all(data)


async def _handle(proxy: LoopbackProxy, client: trio.SocketStream) -> None:
    buffer = bytearray()
    try:
        lines = await _read_head(client, buffer)
        if lines is None:
            return
        method, target, _ = lines[0].split(" ", 2)
        authorization = _field(lines, "proxy-authorization")
        proxy.targets.append(target)
        proxy.authorizations.append(authorization)
        if proxy.credentials is not None:
            expected = "Basic " + base64.b64encode(proxy.credentials.encode()).decode()
            if authorization != expected:
                await _answer(client, 407, "Proxy Authentication Required")
                return
        if method == "CONNECT":
            await _tunnel(proxy, client, target, buffer)
        else:
            await _forward(proxy, client, lines, buffer)
    except (trio.BrokenResourceError, trio.ClosedResourceError, OSError):
        pass
    finally:
        await trio.aclose_forcefully(client)


async def _tunnel(
    proxy: LoopbackProxy, client: trio.SocketStream, target: str, buffer: bytearray
) -> None:
    if target in proxy.refuse:
        await _answer(client, proxy.refuse[target], "Refused By Policy")
        return
    if target not in proxy.routes:
        await _answer(client, 502, "Bad Gateway")
        return
    try:
        upstream = await trio.open_tcp_stream(LOOPBACK, proxy.routes[target])
    except OSError:
        await _answer(client, 502, "Bad Gateway")
        return
    await client.send_all(b"HTTP/1.1 200 Connection established\r\n\r\n")
    proxy.tunnels += 1
    proxy.open_tunnels.append(client)
    async with upstream:
        if buffer:
            await upstream.send_all(bytes(buffer))
        async with trio.open_nursery() as both:
            both.start_soon(_pipe_then_cancel, client, upstream, both.cancel_scope)
            both.start_soon(_pipe_then_cancel, upstream, client, both.cancel_scope)


async def _pipe_then_cancel(
    source: trio.abc.Stream, sink: trio.abc.Stream, scope: trio.CancelScope
) -> None:
    await _pipe(source, sink)
    scope.cancel()  # either side's end ends the tunnel


async def _forward(
    proxy: LoopbackProxy, client: trio.SocketStream, lines: list[str], buffer: bytearray
) -> None:
    """Absolute-form requests, each rewritten to origin form; answers relayed as they are."""
    first = urlsplit(lines[0].split(" ")[1])
    where = f"{first.hostname}:{first.port or 80}"
    if where not in proxy.routes:
        await _answer(client, 502, "Bad Gateway")
        return
    upstream = await trio.open_tcp_stream(LOOPBACK, proxy.routes[where])
    async with upstream, trio.open_nursery() as both:
        both.start_soon(_pipe_then_cancel, upstream, client, both.cancel_scope)
        head: list[str] | None = lines
        while head is not None:
            method, target, version = head[0].split(" ", 2)
            parts = urlsplit(target)
            path = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
            kept = [f"{method} {path} {version}"]
            kept += [h for h in head[1:] if not h.lower().startswith("proxy-authorization:")]
            length = int(_field(head, "content-length") or 0)
            while len(buffer) < length:
                buffer += await client.receive_some(65536)
            body = bytes(buffer[:length])
            del buffer[:length]
            proxy.forwarded += 1
            await upstream.send_all(("\r\n".join(kept) + "\r\n\r\n").encode("latin-1") + body)
            head = await _read_head(client, buffer)
            if head is not None:
                proxy.targets.append(head[0].split(" ")[1])
                proxy.authorizations.append(_field(head, "proxy-authorization"))
        both.cancel_scope.cancel()
