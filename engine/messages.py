"""The data that flows through the router: chat requests, messages, completions."""

from __future__ import annotations

import attrs

ROLES = ("system", "user", "assistant", "tool")


def estimate_tokens(text: str) -> int:
    """Tokens in ``text`` by the common ~4 characters per token rule.

    A real tokenizer per model would cost the hot path far more than the
    accuracy is worth for admission control and simulation.
    """
    return len(text) // 4 + 1


@attrs.frozen(slots=True)
class ChatMessage:
    role: str
    content: str


@attrs.frozen(slots=True)
class ChatRequest:
    """One chat completion request, as an app or the simulator sends it.

    ``kind`` names the turn (``small_talk``, ``question``, ``follow_up``,
    ``evaluation`` ...) for capability-aware routing; ``cache_key`` overrides the
    normalised-request key; ``expected_output_tokens`` lets a virtual provider
    model how long the answer is.
    """

    messages: tuple[ChatMessage, ...] = attrs.field(converter=tuple)
    model: str = "auto"
    temperature: float = 1.0
    max_tokens: int | None = None
    request_id: str | None = None
    kind: str = "chat"
    cache_key: str | None = None
    bypass_cache: bool = False
    expected_output_tokens: int | None = None
    deadline: float | None = None

    @property
    def prompt_chars(self) -> int:
        return sum(len(m.content) for m in self.messages)

    @property
    def prompt_tokens(self) -> int:
        return sum(estimate_tokens(m.content) for m in self.messages)


@attrs.frozen(slots=True)
class Completion:
    """A successful answer, with how it was obtained."""

    request_id: str
    content: str
    model: str
    provider: str
    prompt_tokens: int
    completion_tokens: int
    latency: float
    ttft: float
    attempts: int = 1
    cached: bool = False
    cost: float = 0.0
