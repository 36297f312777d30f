"""Live-world fixtures: mock providers and ``callboard serve`` in-process, on loopback ports.

Every server runs in the test's own nursery on 127.0.0.1 with an ephemeral
port and stops with the test. Mock providers run at ``SPEED`` times their
real-time profiles, so a whole exchange takes milliseconds.
"""

from __future__ import annotations

import functools
from typing import Any

import attrs
import pytest
import trio

from engine.asgi import serve_app
from engine.live_config import LiveConfig, structure_config
from engine.mock_provider import MockProvider
from engine.server import serve_router

SPEED = 50.0
LOOPBACK = "127.0.0.1"


@attrs.define
class Upstream:
    """A mock provider served over HTTP; ``kill()`` makes its port refuse connections."""

    mock: MockProvider
    url: str
    scope: trio.CancelScope

    @property
    def name(self) -> str:
        return self.mock.name

    def kill(self) -> None:
        self.scope.cancel()


async def _serve_until_killed(
    app: Any, scope: trio.CancelScope, task_status: trio.TaskStatus
) -> None:
    with scope:
        await serve_app(app, LOOPBACK, 0, graceful_timeout=0.1, task_status=task_status)


async def start_mock(
    nursery: trio.Nursery, name: str, profile: str = "healthy", **options: Any
) -> Upstream:
    options.setdefault("speed", SPEED)
    mock = MockProvider(name, profile, **options)
    scope = trio.CancelScope()
    url = await nursery.start(_serve_until_killed, mock, scope)
    return Upstream(mock, url, scope)


def live_config(upstreams: list[Upstream], **tables: Any) -> LiveConfig:
    """A config over ``upstreams`` with quick test settings; ``tables`` override them."""
    raw: dict[str, Any] = {
        "providers": [{"name": u.name, "base_url": f"{u.url}/v1"} for u in upstreams],
        "retry": {"attempt_timeout": 1.0, "backoff_base": 0.05, "deadline": 10.0},
        "health": {"ping_every": None},
        "cache": {"enabled": False},
        "server": {"graceful_timeout": 0.1},
    }
    for key, value in tables.items():
        if isinstance(value, dict) and isinstance(raw.get(key), dict):
            raw[key] = {**raw[key], **value}
        else:
            raw[key] = value
    return structure_config(raw, "test")


async def start_router(
    nursery: trio.Nursery, config: LiveConfig, env: dict[str, str] | None = None
) -> str:
    """Start ``callboard serve`` for ``config``; returns its base URL."""
    return await nursery.start(
        functools.partial(serve_router, config, env=env or {}, host=LOOPBACK, port=0)
    )


@pytest.fixture
def user() -> list[dict[str, str]]:
    return [{"role": "user", "content": "Tell me about yourself."}]
