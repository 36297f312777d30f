"""callboard's runtime. ``engine.open_router`` starts the live router for apps that embed it."""

from __future__ import annotations

from typing import Any


def __getattr__(name: str) -> Any:
    # Lazy, so the simulator never imports the HTTP stack.
    if name == "open_router":
        from engine.serve.live_router import open_router

        return open_router
    raise AttributeError(f"module 'engine' has no attribute {name!r}")
