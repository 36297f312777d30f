"""``GET /v1/models``: what clients may ask for, in OpenAI's list shape.

Each model the fleet serves is listed once, with the capabilities and the largest
context window any of its accounts declares, beside ``auto`` (the router chooses).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from actors.messages import CAPABILITIES
from actors.provider import Provider


def models_body(providers: Sequence[Provider]) -> dict[str, Any]:
    models: dict[str, dict[str, Any]] = {}
    for provider in providers:
        spec = provider.spec
        entry = models.setdefault(
            spec.model,
            {
                "id": spec.model,
                "object": "model",
                "created": 0,
                "owned_by": "callboard",
                "providers": [],
                "capabilities": set(),
                "context_window": 0,
            },
        )
        entry["providers"].append(spec.name)
        entry["capabilities"] |= spec.capabilities & set(CAPABILITIES)
        entry["context_window"] = max(entry["context_window"], spec.context_window)
    listed = [{**m, "capabilities": sorted(m["capabilities"])} for m in models.values()]
    auto = {
        "id": "auto",
        "object": "model",
        "created": 0,
        "owned_by": "callboard",
        "providers": [p.spec.name for p in providers],
        "capabilities": sorted({c for m in listed for c in m["capabilities"]}),
        "context_window": max((m["context_window"] for m in listed), default=0),
    }
    return {"object": "list", "data": [auto, *listed]}
