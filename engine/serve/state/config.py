"""``[state]``: where several routers keep what they share, and how little they wait for it.

Without ``redis`` a router keeps all its state in memory, alone (the default).
With ``redis = "redis://HOST:PORT/DB"`` it shares quarantines, rate-limit
buckets and quota counters, sessions, the response cache and health figures
with every router on that database; every call to Redis is bounded by
``timeout``, and after a failure Redis is left alone for ``retry_every``
seconds while the router serves on its local state.
"""

from __future__ import annotations

import re
import urllib.parse

import attrs

from actors.runtime.errors import require

_PREFIX = re.compile(r"[A-Za-z0-9][A-Za-z0-9._:-]*")
REDIS_URL_FORM = "redis://HOST:PORT/DB (DB an integer >= 0; redis://:PASSWORD@HOST:PORT/DB)"


def redacted(url: str) -> str:
    """``url`` with its password hidden: what logs, errors and /health may show."""
    parts = urllib.parse.urlsplit(url)
    if parts.password is None:
        return url
    host = parts.netloc.rpartition("@")[2]
    user = parts.username or ""
    return urllib.parse.urlunsplit(parts._replace(netloc=f"{user}:***@{host}"))


def check_redis_url(url: str) -> str:
    """``url`` if it is a usable redis:// URL; else an error that names ``state.redis``."""
    parts = urllib.parse.urlsplit(url) if isinstance(url, str) else None
    ok = parts is not None and parts.scheme == "redis" and bool(parts.hostname)
    if ok:
        try:
            port = parts.port
        except ValueError:
            ok = False
        else:
            db = parts.path.lstrip("/")
            ok = (port is None or 0 < port < 65536) and (db == "" or db.isdigit())
            ok = ok and not parts.query and not parts.fragment
    require("state.redis", ok, redacted(url) if isinstance(url, str) else url, REDIS_URL_FORM)
    return url


@attrs.frozen
class StateConfig:
    """Shared state for several routers; every duration is in seconds."""

    #: ``redis://HOST:PORT/DB``; unset: this router keeps its state to itself.
    redis: str | None = None
    #: Bound on every single Redis call; a request never waits longer for Redis.
    timeout: float = 0.1
    #: How often shared quarantines, cache entries and health figures are pulled.
    sync_every: float = 0.25
    #: After a failed call, how long Redis is left alone before it is tried again.
    retry_every: float = 1.0
    #: Prefix of every key, so several fleets can share one database.
    prefix: str = "callboard"

    def __attrs_post_init__(self) -> None:
        if self.redis is not None:
            check_redis_url(self.redis)
        for name in ("timeout", "sync_every", "retry_every"):
            value = getattr(self, name)
            require(f"state.{name}", 0 < value <= 60, value, "> 0 and <= 60 seconds")
        require(
            "state.prefix",
            bool(_PREFIX.fullmatch(self.prefix)),
            self.prefix,
            "letters, digits, . _ : -",
        )
