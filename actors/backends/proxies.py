"""Which provider goes through which proxy: ``[server] proxy`` / ``no_proxy`` over the environment.

httpx reads ``HTTPS_PROXY``, ``HTTP_PROXY``, ``ALL_PROXY`` and ``NO_PROXY`` from the
process environment itself (``trust_env``); the router reads them from the mapping
it is given (an app's or a test's, the process environment by default), lets the
config override them, and hands httpx the result as its ``mounts``: one proxy per
URL scheme, and a direct route for each ``no_proxy`` entry. The rules are httpx's
(which are curl's):

- ``https_proxy`` serves https origins, ``http_proxy`` http ones, ``all_proxy``
  both when its own is unset; a lower-case variable wins over its upper-case twin
  and an empty one turns that proxy off; ``HTTP_PROXY`` is ignored in a CGI process,
  where a client's ``Proxy:`` header could set it (urllib's rules);
- a proxy URL is ``scheme://[user:password@]host[:port]`` with scheme http or https
  (``socks5://`` with ``pip install 'httpx[socks]'``), ``http://`` if left out; its
  credentials go to the proxy only and appear in no repr, log line or error;
- ``no_proxy`` is a comma list of host names (each matches itself and its
  subdomains; a leading dot changes nothing), IP addresses, ``host:port`` or
  ``scheme://host[:port]`` entries, or ``*`` for every host. Loopback is proxied like
  any other host unless listed. httpx has no CIDR networks: such an entry is skipped
  with a warning.
"""

from __future__ import annotations

import importlib.util
import ipaddress
import logging
import os
from collections.abc import Mapping

import httpx

logger = logging.getLogger("callboard.http")

PROXY_URL_FORM = "http(s)://[user:password@]host[:port]"
_SCHEMES = ("http", "https", "socks5", "socks5h")


class ProxyURLError(ValueError):
    """A proxy URL that cannot be used; ``shown`` is the URL without its credentials."""

    def __init__(self, source: str, shown: str, problem: str) -> None:
        super().__init__(f"{source}: {problem}: {shown!r}; expected {PROXY_URL_FORM}")
        self.source = source
        self.shown = shown
        self.problem = problem


def parse_proxy(url: str, source: str) -> httpx.Proxy:
    """The proxy at ``url``; a :class:`ProxyURLError` naming ``source`` (a variable or a
    config key) says what is wrong, showing the URL without its credentials."""
    text = url.strip()
    if "://" not in text:
        text = f"http://{text}"  # "proxy.corp:3128", as curl and httpx read it
    scheme, _, rest = text.partition("://")
    authority, slash, path = rest.partition("/")
    userinfo, at, host = authority.rpartition("@")
    shown = f"{scheme}://{'***@' if at else ''}{host}{slash}{path}"
    if scheme.lower() not in _SCHEMES:
        raise ProxyURLError(source, shown, f"{scheme}:// proxies are not supported")
    if scheme.lower().startswith("socks") and importlib.util.find_spec("socksio") is None:
        problem = f"{scheme}:// proxies need pip install 'httpx[socks]'"
        raise ProxyURLError(source, shown, problem)
    if path or "?" in host or "#" in host:
        raise ProxyURLError(source, shown, "a path, query or fragment")
    try:
        return httpx.Proxy(text)
    except (ValueError, httpx.InvalidURL) as exc:
        problem = str(exc).replace(userinfo, "***") if userinfo else str(exc)
        raise ProxyURLError(source, shown, problem) from None


def _variables(env: Mapping[str, str]) -> dict[str, str]:
    """``{"https": url, "http": url, "all": url, "no": hosts}`` as urllib reads them."""
    found: dict[str, str] = {}
    for upper_first in (True, False):
        for name, value in env.items():
            lowered = name.lower()
            if not lowered.endswith("_proxy") or (name != lowered) is not upper_first:
                continue
            if value:
                found[lowered[:-6]] = value
            else:
                found.pop(lowered[:-6], None)
    if "REQUEST_METHOD" in env:
        found.pop("http", None)
    return found


def _direct(entry: str) -> str | None:
    """The httpx mount pattern of one ``no_proxy`` entry (None: skipped)."""
    if "://" in entry:
        return entry
    host = entry.lstrip(".")
    if "/" in host:
        logger.warning("no_proxy entry %r skipped: httpx matches no CIDR networks", entry)
        return None
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        return f"all://*{host}" if host.lower() != "localhost" else "all://localhost"
    return f"all://[{host}]" if address.version == 6 else f"all://{host}"


def proxy_mounts(
    env: Mapping[str, str] | None = None,
    *,
    proxy: str | None = None,
    no_proxy: str | None = None,
) -> dict[str, httpx.Proxy | None]:
    """httpx mount patterns: a scheme's proxy, or None (direct) for a no_proxy host.

    ``proxy`` (``[server] proxy``) serves both schemes over the environment's
    variables; ``""`` means none. ``no_proxy`` replaces the environment's NO_PROXY.
    """
    variables = _variables(os.environ if env is None else env)
    if proxy is not None:
        urls = {"https": proxy, "http": proxy} if proxy else {}
        source = "server.proxy"
    else:
        urls = {
            scheme: variables.get(scheme) or variables.get("all", "")
            for scheme in ("https", "http")
        }
        source = ""
    hosts = variables.get("no", "") if no_proxy is None else no_proxy
    mounts: dict[str, httpx.Proxy | None] = {}
    for scheme, url in urls.items():
        if url:
            origin = source or (f"{scheme.upper()}_PROXY" if variables.get(scheme) else "ALL_PROXY")
            mounts[f"{scheme}://"] = parse_proxy(url, origin)
    if not mounts:
        return {}
    for entry in (h.strip() for h in hosts.split(",")):
        if entry == "*":
            return {}
        pattern = _direct(entry) if entry else None
        if pattern is not None:
            mounts[pattern] = None
    return mounts
