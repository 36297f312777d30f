"""Provider backends: what actually produces a completion for a provider actor."""

from __future__ import annotations

from typing import Protocol

import attrs

from actors.messages import ChatRequest


@attrs.frozen(slots=True)
class BackendReply:
    content: str
    completion_tokens: int
    ttft: float


class Backend(Protocol):
    """Answers one request or raises an :class:`actors.errors.AttemptError`."""

    async def complete(self, request: ChatRequest, request_id: str) -> BackendReply: ...
