"""Provider backends: what actually produces a completion for a provider actor."""

from __future__ import annotations

from typing import TYPE_CHECKING, Protocol

import attrs

from actors.messages import Answer, ChatRequest, padded

if TYPE_CHECKING:
    from actors.backends.ratelimit_headers import RateLimitInfo
    from actors.backends.sink import StreamSink
    from actors.timeouts import AnswerWatch


@attrs.frozen(slots=True)
class BackendReply:
    content: str
    completion_tokens: int
    ttft: float
    #: The whole answer as the provider gave it (HTTP backends); None: its text is all.
    answer: Answer | None = None
    #: Filler characters after ``content`` in a modelled answer (:class:`ChatMessage`).
    padding: int = 0

    @property
    def text(self) -> str:
        """The whole answer's text: ``content`` and its padding."""
        return padded(self.content, self.padding)


@attrs.define(slots=True)
class Usage:
    """What the provider has processed of one attempt so far: what it bills for it.

    The backend fills it in as the attempt goes, so an attempt cut short (timed out,
    cancelled, a hedge's losing leg) is still billed as the provider bills it: the
    input once the provider started on it, the output generated until it stopped.
    """

    input_tokens: int = 0
    output_tokens: int = 0
    #: The rate-limit headers of the attempt's response (live backends; None: none came),
    #: which a trace of the attempt shows.
    limits: RateLimitInfo | None = None


class Backend(Protocol):
    """Answers one request or raises an :class:`actors.errors.AttemptError`, keeping
    ``usage`` up to date as the provider works on it.

    With a ``sink`` the caller wants the text as it is generated: a backend that can
    stream sends it there as it arrives (and still returns the whole reply); one that
    cannot ignores it, and the caller gets the answer whole at the end.

    With a ``watch`` (the provider's, always), the backend tells it when the response's
    bytes arrive, so that the attempt's timeouts cut silence and never a working answer;
    without one (a mock provider's own model, a benchmark) no timeout applies.
    """

    async def complete(
        self,
        request: ChatRequest,
        request_id: str,
        usage: Usage,
        sink: StreamSink | None = None,
        watch: AnswerWatch | None = None,
    ) -> BackendReply: ...
