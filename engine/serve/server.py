"""``callboard serve``: the live router behind its HTTP surface, on trio with hypercorn.

:func:`serve_router` starts the routing core (:func:`engine.serve.live_router.open_router`),
wires its outcomes into Prometheus metrics, and serves :class:`RouterApp` until
the shutdown trigger fires (or forever). It runs inside the caller's nursery,
so tests start a whole server on an ephemeral loopback port in-process.
"""

from __future__ import annotations

import os
from collections.abc import Awaitable, Callable, Mapping

import trio

from engine.routing.decision_log import DecisionLog
from engine.serve.app import RouterApp
from engine.serve.asgi import Listening, serve_app
from engine.serve.callers import CallerGate, check_exposure
from engine.serve.live_config import LiveConfig
from engine.serve.live_router import open_router
from engine.serve.metrics import LiveMetrics


async def serve_router(
    config: LiveConfig,
    *,
    env: Mapping[str, str] | None = None,
    host: str | None = None,
    port: int | None = None,
    shutdown_trigger: Callable[[], Awaitable[None]] | None = None,
    grace: float | None = None,
    task_status: trio.TaskStatus[str] = trio.TASK_STATUS_IGNORED,
) -> None:
    """Serve ``config``'s router; ``task_status`` gets the URL it listens on.

    When ``shutdown_trigger`` returns (SIGTERM), new requests are refused, those in
    flight get ``grace`` s (default ``server.grace``) to finish, and the rest are
    cancelled with a 503 ``shutting_down`` answer.

    Logging must be configured before (see :func:`engine.serve.logs.logging_to`):
    the decision log decides at start whether its lines are wanted.
    """
    server = config.server
    grace = server.grace if grace is None else grace
    host = server.host if host is None else host
    metrics = LiveMetrics()
    env = os.environ if env is None else env
    # Caller keys are read, and the address checked, before anything starts.
    gate = CallerGate.open(config.callers, env, metrics.registry)
    check_exposure(host, gate.enforcing, config.callers)
    async with open_router(
        config,
        env=env,
        log=DecisionLog(),
        recorder=metrics,
        on_transition=metrics.on_transition,
    ) as live:
        metrics.attach(live)
        if live.state is not None:  # budgets shared like the accounts' limits
            gate.budgets.guard = live.state.guard
        app = RouterApp(
            live,
            metrics,
            max_body_bytes=server.max_body_bytes,
            body_timeout=server.body_timeout,
            gate=gate if gate.enforcing else None,
        )
        async with trio.open_nursery() as nursery:
            nursery.start_soon(gate.budgets.run)

            async def stop_when_told() -> None:
                # Returning makes hypercorn close its listeners and idle connections at
                # once; the app drains what is in flight meanwhile.
                await (shutdown_trigger or trio.sleep_forever)()
                nursery.start_soon(app.drain, grace)

            await serve_app(
                app,
                host,
                server.port if port is None else port,
                graceful_timeout=grace + server.graceful_timeout,
                listening=Listening(
                    server.backlog, server.keep_alive_timeout, server.max_header_bytes
                ),
                shutdown_trigger=stop_when_told,
                task_status=task_status,
            )
            nursery.cancel_scope.cancel()
