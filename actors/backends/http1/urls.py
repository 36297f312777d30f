"""Absolute http(s) URLs split into what the client needs: origin, target, Host header."""

from __future__ import annotations

import functools
from urllib.parse import urlsplit

import attrs


@attrs.frozen
class Origin:
    """Where a connection goes; one pool of kept-alive connections per origin."""

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
