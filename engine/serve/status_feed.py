"""The status page's figures: one snapshot of the router, and a stream of them.

``/status.json`` answers one snapshot, ``/status/events`` sends one every ``every``
seconds as server-sent events; the page (:mod:`engine.serve.status_page`) draws each as it
arrives. A snapshot is read from what the actors publish (engine/serve/status.py), so a
page left open costs the routing core nothing but the reading.
"""

from __future__ import annotations

import math
import time
from collections.abc import AsyncGenerator, Callable
from typing import Any

import attrs
import trio

from engine.routing.books import Books
from engine.routing.errors import InvalidRequest
from engine.serve.callers import CallerGate
from engine.serve.live_router import LiveRouter
from engine.serve.sse import event
from engine.serve.status import fleet_status

#: Seconds between two snapshots on the stream: the default, and the bounds a page may ask.
EVERY, EVERY_MIN, EVERY_MAX = 1.0, 0.2, 60.0


def status_snapshot(live: LiveRouter, gate: CallerGate | None, draining: bool) -> dict[str, Any]:
    """Every account's state, the waiting line and the callers' budget use, now."""
    return {
        # Wall-clock seconds: the page says when the figures were read.
        "at": round(time.time(), 3),
        "status": fleet_status(list(live.states().values())),
        "draining": draining,
        "store": live.state_status(),
        "line": Books.of(live.router).as_json(),
        "providers": [s.as_json() for s in live.status()],
        # None: no caller key is configured, so nobody has a budget to show.
        "callers": (
            [attrs.asdict(use) for use in gate.usage()]
            if gate is not None and gate.enforcing
            else None
        ),
    }


def stream_every(raw: str | None) -> float:
    """The ``every`` query parameter: seconds between snapshots, within the bounds."""
    if raw is None:
        return EVERY
    try:
        every = float(raw)
    except ValueError:
        every = math.nan
    if not EVERY_MIN <= every <= EVERY_MAX:
        raise InvalidRequest("every", raw, f"seconds from {EVERY_MIN:g} to {EVERY_MAX:g}")
    return every


async def status_events(
    snapshot: Callable[[], dict[str, Any]], every: float, draining: Callable[[], bool]
) -> AsyncGenerator[bytes, None]:
    """A snapshot now and every ``every`` seconds, until the client leaves or the server
    drains (a drain waits for open requests: a page left open must not hold it up)."""
    while True:
        yield event(snapshot(), "status")
        if draining():
            return
        await trio.sleep(every)
