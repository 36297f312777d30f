"""callboard's embedding API: everything an app needs to route through callboard.

>>> import engine
>>> async with engine.open_router("router.toml") as router:    # doctest: +SKIP
...     answer = await router.complete([{"role": "user", "content": "Hello"}])

An asyncio app (FastAPI, Starlette) uses ``engine.open_asyncio_router`` the same way.

The request and answer types and the errors (drawn as one tree in :mod:`engine.errors`)
are imported here directly. The live router (``open_router``, ``LiveRouter``), its
sessions' errors and its config (``load_config``, ``LiveConfig``) load on first use, so
a simulation, which imports the routing core under this package, never loads the HTTP
stack; type checkers see them all.
"""

from __future__ import annotations

from importlib import import_module
from typing import TYPE_CHECKING, Any

from actors.messages import ChatMessage, ChatRequest, Completion
from engine import errors
from engine.errors import *  # noqa: F403  (the error tree: its __all__ joins ours below)

if TYPE_CHECKING:
    from engine.serve.asyncio_router import AsyncioRouter, open_asyncio_router
    from engine.serve.live_config import LiveConfig, load_config
    from engine.serve.live_router import LiveRouter, open_router
    from engine.serve.sessions import SessionBusy, UnknownSession

# Loaded on first use: name -> the module that defines it.
_LIVE = {
    "open_router": "engine.serve.live_router",
    "LiveRouter": "engine.serve.live_router",
    "load_config": "engine.serve.live_config",
    "LiveConfig": "engine.serve.live_config",
    "open_asyncio_router": "engine.serve.asyncio_router",
    "AsyncioRouter": "engine.serve.asyncio_router",
    "SessionBusy": "engine.serve.sessions",
    "UnknownSession": "engine.serve.sessions",
}

__all__ = [
    "AsyncioRouter",
    "ChatMessage",
    "ChatRequest",
    "Completion",
    "LiveConfig",
    "LiveRouter",
    "SessionBusy",
    "UnknownSession",
    "load_config",
    "open_asyncio_router",
    "open_router",
]
__all__ += errors.__all__


def __getattr__(name: str) -> Any:
    module = _LIVE.get(name)
    if module is None:
        raise AttributeError(f"module 'engine' has no attribute {name!r}")
    value = getattr(import_module(module), name)
    globals()[name] = value  # the next lookup is a plain attribute read
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
