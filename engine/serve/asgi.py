"""Serving an ASGI app (the router's, the mock provider's; both on Starlette) with hypercorn.

hypercorn runs on trio inside the caller's nursery, so tests start a server on an
ephemeral loopback port in milliseconds. hypercorn bounds a connection's headers and
its idle time (:class:`Listening`); the bounds of a body are the app's
(:mod:`engine.serve.context`).
"""

from __future__ import annotations

import errno
import logging
from collections.abc import Awaitable, Callable

import attrs
import trio
from hypercorn.config import Config
from hypercorn.trio import serve

from actors.runtime.errors import CallboardError, leaves


@attrs.frozen
class Listening:
    """How a server takes its clients' connections (``[server]`` keys of the same names)."""

    backlog: int = 4096
    keep_alive_timeout: float = 10.0
    max_header_bytes: int = 16 * 1024


def hypercorn_config(
    host: str, port: int, graceful_timeout: float = 5.0, listening: Listening = Listening()
) -> Config:
    config = Config()
    config.bind = [f"[{host}]:{port}" if ":" in host else f"{host}:{port}"]
    config.graceful_timeout = graceful_timeout
    config.backlog = listening.backlog
    # Also bounds how long a new connection may take to send its first request's headers.
    config.keep_alive_timeout = listening.keep_alive_timeout
    config.h11_max_incomplete_size = listening.max_header_bytes
    config.accesslog = None
    config.errorlog = logging.getLogger("callboard.hypercorn")
    return config


class AddressInUse(CallboardError):
    """The address to listen on is taken (another server, or this one already running)."""

    code = "address_in_use"

    def __init__(self, host: str, port: int) -> None:
        super().__init__(f"cannot listen on {host}:{port}: address already in use")


async def serve_app(
    app: Callable[..., Awaitable[None]],
    host: str,
    port: int,
    *,
    graceful_timeout: float = 5.0,
    listening: Listening = Listening(),
    shutdown_trigger: Callable[[], Awaitable[None]] | None = None,
    task_status: trio.TaskStatus[str] = trio.TASK_STATUS_IGNORED,
) -> None:
    """Serve ``app`` with hypercorn; ``task_status`` gets the bound URL (port 0: any free one).

    A taken address is an :class:`AddressInUse` naming it, not hypercorn's traceback.
    """
    config = hypercorn_config(host, port, graceful_timeout, listening)

    # hypercorn reports the sockets it bound as a list; hand on the first URL.
    class _Status:
        def started(self, binds: list[str] | None = None) -> None:
            task_status.started((binds or [""])[0])

    try:
        await serve(app, config, shutdown_trigger=shutdown_trigger, task_status=_Status())
    except (OSError, BaseExceptionGroup) as error:
        if any(getattr(e, "errno", None) == errno.EADDRINUSE for e in leaves(error)):
            raise AddressInUse(host, port) from None
        raise
