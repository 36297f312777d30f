"""``callboard serve``: the live router behind its HTTP surface, on trio with hypercorn.

:func:`serve_router` starts the routing core (:func:`engine.live.open_router`),
wires its outcomes into Prometheus metrics, and serves :class:`RouterApp` until
the shutdown trigger fires (or forever). It runs inside the caller's nursery,
so tests start a whole server on an ephemeral loopback port in-process.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping

import trio

from engine.asgi import serve_app
from engine.events import DecisionLog
from engine.http_app import RouterApp
from engine.live import open_router
from engine.live_config import LiveConfig
from engine.live_metrics import LiveMetrics


async def serve_router(
    config: LiveConfig,
    *,
    env: Mapping[str, str] | None = None,
    host: str | None = None,
    port: int | None = None,
    shutdown_trigger: Callable[[], Awaitable[None]] | None = None,
    task_status: trio.TaskStatus[str] = trio.TASK_STATUS_IGNORED,
) -> None:
    """Serve ``config``'s router; ``task_status`` gets the URL it listens on.

    Logging must be configured before (see :func:`engine.live_logging.logging_to`):
    the decision log decides at start whether its lines are wanted.
    """
    server = config.server
    metrics = LiveMetrics()
    async with open_router(
        config,
        env=env,
        log=DecisionLog(),
        recorder=metrics,
        on_transition=metrics.on_transition,
    ) as live:
        metrics.attach(live)
        app = RouterApp(live, metrics, max_body_bytes=server.max_body_bytes)
        await serve_app(
            app,
            server.host if host is None else host,
            server.port if port is None else port,
            graceful_timeout=server.graceful_timeout,
            shutdown_trigger=shutdown_trigger,
            task_status=task_status,
        )
