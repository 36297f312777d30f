"""Reachability checks (``[health] reach_every``): is each provider's host reachable?

A completion ping (``health.ping_every``) costs a completion per account; this costs a
GET of each distinct base URL, without credentials, whose answer (any status: a 404 or
a 401 will do) says the host is reachable, and whose failed connection says it is not.
The verdict marks or clears every account at that URL (:mod:`actors.backends.reach`), so
readiness turns red before the first client meets a dead upstream, and an account that
was unreachable comes back without a request having to risk it.
"""

from __future__ import annotations

from collections.abc import Sequence

import trio

from actors.backends.http import HttpBackend
from actors.runtime import clock


async def check_reach_forever(
    backends: Sequence[HttpBackend], every: float, timeout: float
) -> None:
    """Check every base URL now, then every ``every`` seconds after the last round ended;
    a check with no verdict after ``timeout`` seconds changes nothing."""
    groups: dict[str, list[HttpBackend]] = {}
    for backend in backends:
        groups.setdefault(backend.endpoint.base_url, []).append(backend)
    while True:
        async with trio.open_nursery() as nursery:
            for group in groups.values():
                nursery.start_soon(check_reach, group, timeout)
        await clock.sleep(every)


async def check_reach(group: Sequence[HttpBackend], timeout: float) -> None:
    """One check of the accounts of ``group`` (one base URL), through the first of them."""
    first, *rest = group
    with trio.move_on_after(timeout):
        reason = await first.reach()
        if reason is not None:
            for backend in rest:
                backend.note_reach(reason)
