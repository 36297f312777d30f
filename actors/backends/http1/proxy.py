"""HTTP proxies: which origin goes through which proxy, and the CONNECT tunnel.

The rules are those of curl, httpx and urllib, which companies' proxy settings are
written for:

- ``https_proxy`` serves https origins, ``http_proxy`` http ones, ``all_proxy``
  both when its own is unset; a lower-case variable wins over its upper-case
  twin, and an empty one turns that proxy off (urllib's rule); ``HTTP_PROXY`` is
  ignored in a CGI process, where a client's ``Proxy:`` header could set it;
- a proxy URL is ``http://[user:password@]host[:port]`` (``http://`` may be left
  out; the port defaults to 80); the credentials go to the proxy as
  ``Proxy-Authorization: Basic`` and appear in no repr, log line or error;
- ``no_proxy`` is a comma list of host names (each matches itself and its
  subdomains, a leading dot changes nothing), IP addresses or CIDR networks,
  ``host:port`` entries, ``scheme://host[:port]`` entries, or ``*`` for every
  host. Loopback addresses are proxied like any other unless listed, as in curl
  and httpx: put ``localhost,127.0.0.1,::1`` in it for local providers.

An https origin is reached through a tunnel (``CONNECT host:port``, then TLS with
the origin inside it), an http origin by sending the request in absolute form to
the proxy. Only http:// proxies are supported: an https:// or SOCKS proxy URL is
an error that names where it came from.
"""

from __future__ import annotations

import base64
import ipaddress
import os
from collections.abc import Mapping
from urllib.parse import unquote, urlsplit

import attrs
import trio

from actors.backends.http1.errors import ProtocolError, ProxyError, describe
from actors.backends.http1.head import parse_head, read_head
from actors.backends.http1.urls import Origin

_IpNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network


@attrs.frozen
class Proxy:
    """One http:// proxy; its credentials are kept out of its repr and str."""

    host: str
    port: int
    authorization: str | None = attrs.field(default=None, repr=False)

    def __str__(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}"


PROXY_URL_FORM = "http://[user:password@]host[:port]"


class ProxyURLError(ValueError):
    """A proxy URL that cannot be used; ``shown`` is the URL without its credentials."""

    def __init__(self, source: str, shown: str, problem: str) -> None:
        super().__init__(f"{source}: {problem}: {shown!r}; expected {PROXY_URL_FORM}")
        self.source = source
        self.shown = shown
        self.problem = problem


def parse_proxy(url: str, source: str) -> Proxy:
    """The proxy at ``url``; a :class:`ProxyURLError` naming ``source`` (a variable or a
    config key) says what is wrong, showing the URL without its credentials."""
    text = url.strip()
    if "://" not in text:
        text = f"http://{text}"  # "proxy.corp:3128", as curl and httpx read it
    parts = urlsplit(text)
    shown = _without_credentials(text)
    scheme = parts.scheme.lower()
    if scheme != "http":
        raise ProxyURLError(source, shown, f"{scheme}:// proxies are not supported, only http://")
    try:
        port = parts.port or 80
    except ValueError:
        raise ProxyURLError(source, shown, "bad port") from None
    if not parts.hostname:
        raise ProxyURLError(source, shown, "no host")
    if parts.path not in ("", "/") or parts.query or parts.fragment:
        raise ProxyURLError(source, shown, "a path, query or fragment")
    authorization = None
    if parts.username is not None or parts.password is not None:
        pair = f"{unquote(parts.username or '')}:{unquote(parts.password or '')}"
        authorization = "Basic " + base64.b64encode(pair.encode()).decode("ascii")
    return Proxy(parts.hostname, port, authorization)


def _without_credentials(url: str) -> str:
    scheme, sep, rest = url.partition("://")
    authority, slash, path = rest.partition("/")
    if "@" in authority:
        authority = "***@" + authority.rpartition("@")[2]
    return f"{scheme}{sep}{authority}{slash}{path}"


@attrs.frozen
class NoProxyEntry:
    """One ``no_proxy`` entry."""

    host: str | None = None  # a name: itself and its subdomains
    network: _IpNetwork | None = None  # an address or a CIDR network
    port: int | None = None
    scheme: str | None = None

    def matches(self, origin: Origin, address: _IpNetwork | None) -> bool:
        if self.scheme is not None and self.scheme != origin.scheme:
            return False
        if self.port is not None and self.port != origin.port:
            return False
        if self.network is not None:
            network = self.network
            return (
                address is not None
                and address.version == network.version
                and address.subnet_of(network)  # type: ignore[arg-type]
            )
        host = origin.host.lower().rstrip(".")
        return host == self.host or host.endswith(f".{self.host}")


def parse_no_proxy(value: str) -> tuple[NoProxyEntry, ...] | None:
    """The entries of a ``no_proxy`` list; None if it is ``*`` (no host is proxied)."""
    entries = []
    for raw in value.split(","):
        entry = raw.strip().lower()
        if not entry:
            continue
        if entry == "*":
            return None
        scheme = None
        if "://" in entry:
            scheme, _, entry = entry.partition("://")
            entry = entry.rstrip("/")
        host, port = _split_port(entry)
        try:
            network = ipaddress.ip_network(host, strict=False)
        except ValueError:
            entries.append(
                NoProxyEntry(host=host.lstrip(".").rstrip("."), port=port, scheme=scheme)
            )
        else:
            entries.append(NoProxyEntry(network=network, port=port, scheme=scheme))
    return tuple(entries)


def _split_port(entry: str) -> tuple[str, int | None]:
    """``host:port``, ``[v6]:port``, or a bare host / address / network (``::1`` too)."""
    if entry.startswith("["):
        host, _, rest = entry[1:].partition("]")
        port = rest.removeprefix(":")
    elif entry.count(":") == 1:
        host, _, port = entry.partition(":")
    else:
        return entry, None
    return host, int(port) if port.isdigit() else None


@attrs.frozen
class ProxySettings:
    """Which proxy, if any, each origin is reached through."""

    http: Proxy | None = None
    https: Proxy | None = None
    #: None: ``no_proxy = "*"``, every origin is reached directly.
    exempt: tuple[NoProxyEntry, ...] | None = ()

    def proxy_for(self, origin: Origin) -> Proxy | None:
        proxy = self.https if origin.scheme == "https" else self.http
        if proxy is None or self.exempt is None:
            return None
        try:
            address = ipaddress.ip_network(origin.host)
        except ValueError:
            address = None
        if any(entry.matches(origin, address) for entry in self.exempt):
            return None
        return proxy

    @property
    def enabled(self) -> bool:
        return self.exempt is not None and (self.http is not None or self.https is not None)


def proxy_settings(
    env: Mapping[str, str] | None = None,
    *,
    proxy: str | None = None,
    no_proxy: str | None = None,
) -> ProxySettings:
    """The proxies of the environment (``os.environ`` by default); ``proxy`` (one URL for
    every origin, ``""``: none) and ``no_proxy`` override the environment's."""
    env = os.environ if env is None else env
    found = _proxy_variables(env)
    exempt = parse_no_proxy(found.get("no", "") if no_proxy is None else no_proxy)
    if proxy is not None:
        if not proxy.strip():
            return ProxySettings()
        one = parse_proxy(proxy, "proxy")
        return ProxySettings(one, one, exempt)
    chosen = {}
    for scheme in ("http", "https"):
        name = scheme if found.get(scheme) else "all"
        value = found.get(name)
        chosen[scheme] = None if not value else parse_proxy(value, f"{name}_proxy".upper())
    return ProxySettings(chosen["http"], chosen["https"], exempt)


def _proxy_variables(env: Mapping[str, str]) -> dict[str, str]:
    """``{"http": ..., "https": ..., "all": ..., "no": ...}`` as urllib reads them."""
    found: dict[str, str] = {}
    for name, value in env.items():  # upper case first, then lower case overrides
        lower = name.lower()
        if value and lower.endswith("_proxy") and name != lower:
            found[lower[:-6]] = value
    if "REQUEST_METHOD" in env:
        found.pop("http", None)  # a CGI request's "Proxy:" header sets HTTP_PROXY
    for name, value in env.items():
        if name.endswith("_proxy") and name == name.lower():
            if value:
                found[name[:-6]] = value
            else:
                found.pop(name[:-6], None)
    return found


async def open_tunnel(
    stream: trio.abc.Stream, proxy: Proxy, origin: Origin, user_agent: str
) -> None:
    """Ask ``proxy`` (connected on ``stream``) for a tunnel to ``origin``; raise
    :class:`ProxyError` unless it answers 2xx."""
    host = f"[{origin.host}]" if ":" in origin.host else origin.host
    target = f"{host}:{origin.port}"
    lines = [f"CONNECT {target} HTTP/1.1\r\nhost: {target}\r\nuser-agent: {user_agent}\r\n"]
    if proxy.authorization is not None:
        lines.append(f"proxy-authorization: {proxy.authorization}\r\n")
    lines.append("\r\n")
    where = f"proxy {proxy} (tunnel to {target})"
    buffer = bytearray()

    async def receive() -> bytes:
        data = await stream.receive_some(4096)
        if not data:
            raise ProxyError(f"{where}: the proxy closed the connection before answering")
        return data

    try:
        await stream.send_all("".join(lines).encode("latin-1"))
        head = await read_head(buffer, receive, origin)
    except (trio.BrokenResourceError, OSError) as exc:
        raise ProxyError(f"{where}: connection lost: {describe(exc)}") from None
    except ProtocolError as exc:
        raise ProxyError(f"{where}: not an HTTP answer to CONNECT ({exc})") from None
    try:
        status, reason, _, _ = parse_head(head, origin)
    except ProtocolError as exc:
        raise ProxyError(f"{where}: not an HTTP answer to CONNECT ({exc})") from None
    if not 200 <= status < 300:
        hint = ""
        if status == 407:
            hint = " (credentials missing or rejected)"
        raise ProxyError(f"{where}: the proxy refused: {status} {reason}{hint}".rstrip())
    if buffer:
        raise ProxyError(f"{where}: the proxy sent bytes before the TLS handshake")
