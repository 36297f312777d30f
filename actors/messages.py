"""The data that flows through the router: chat requests, messages, completions."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

import attrs

ROLES = ("system", "developer", "user", "assistant", "tool")

#: What a request may need of a provider's model (``needs``), declared per provider.
CAPABILITIES = ("tools", "json_mode", "vision")
#: The need of a field only OpenAI's wire format carries (``seed``, ``logprobs`` ...):
#: providers that speak it have it; Anthropic's Messages API has no counterpart.
OPENAI_FIELDS = "openai_fields"


def estimate_tokens(chars: int, messages: int) -> int:
    """Prompt tokens by the common rules: ~4 characters a token, ~4 tokens a message.

    A real tokenizer per model would cost the hot path far more than the
    accuracy is worth for admission control and simulation.
    """
    return chars // 4 + 4 * messages


_FILLER = (
    "Tell me about a time you had to trade off speed against reliability, what you chose, "
    "how you measured it and what you would do differently with what you know now. "
) * 400


# Texts up to this long are made once per length and shared (at most ~8 MB in all): a
# simulation asks for a few thousand lengths hundreds of thousands of times, and every
# interview's history keeps what it got.
_SHARED_UP_TO = 4096
_FILLERS: dict[int, str] = {}
# Each padding length as one int object, shared: a padding above 256 is an object of its
# own (32 bytes), and each of a simulation's hundreds of thousands of history messages
# holds one; there are at most len(_FILLER) lengths.
_LENGTHS: dict[int, int] = {}


def filler_length(chars: int) -> int:
    """How many characters :func:`filler_text` gives for ``chars``: a padding's length."""
    length = max(0, min(chars, len(_FILLER)))
    return _LENGTHS.setdefault(length, length)


def padded(content: str, padding: int) -> str:
    """A modelled text whole: its distinct ``content`` and ``padding`` characters of filler
    (:class:`ChatMessage`)."""
    return content + filler_text(padding) if padding else content


def filler_text(chars: int) -> str:
    """Text of about ``chars`` characters, for modelled answers and prompts of a known size."""
    text = _FILLERS.get(chars)
    if text is None:
        text = _FILLER[: max(0, min(chars, len(_FILLER)))]
        if chars <= _SHARED_UP_TO:
            _FILLERS[chars] = text
    return text


@attrs.frozen(slots=True)
class ChatMessage:
    """One message. ``padding``: characters of :func:`filler_text` that follow ``content``,
    which a modelled conversation counts without holding them (its texts are a distinct
    head and shared filler, so 10,000 interviews' histories need not be kept in full);
    ``text`` is the whole. Messages from clients and real providers have none."""

    role: str
    content: str
    padding: int = 0

    @property
    def text(self) -> str:
        return padded(self.content, self.padding)


class SizedMessages(tuple[ChatMessage, ...]):
    """Messages with the total length of their texts, counted by whoever built them.

    An interview session keeps a running count as its history grows, so the request it
    builds from the whole history every turn need not walk that history again to size
    it. ``chars`` is what :class:`ChatRequest` would count: the sum of the contents'
    lengths, or -1 if a content is not text (validation then names that message).
    """

    chars: int

    def __new__(cls, messages: Iterable[ChatMessage], chars: int) -> SizedMessages:
        self = super().__new__(cls, messages)
        self.chars = chars
        return self

    def __getnewargs__(self) -> tuple[tuple[ChatMessage, ...], int]:
        return tuple(self), self.chars


def _as_messages(value: Iterable[ChatMessage]) -> tuple[ChatMessage, ...]:
    """A request's messages as a tuple (sized messages stay as they are)."""
    kind = type(value)
    if kind is tuple or kind is SizedMessages:
        return value  # type: ignore[return-value]
    return tuple(value)


@attrs.frozen(slots=True)
class ChatRequest:
    """One chat completion request, as an app or the simulator sends it.

    ``kind`` names the turn (``small_talk``, ``question``, ``follow_up``,
    ``evaluation`` ...) for capability-aware routing; ``cache_key`` overrides the
    normalised-request key; ``expected_output_tokens`` lets a virtual provider
    model how long the answer is.
    """

    messages: tuple[ChatMessage, ...] = attrs.field(converter=_as_messages)
    model: str = "auto"
    #: None: the client set none, and none is sent (the provider's default applies).
    temperature: float | None = None
    max_tokens: int | None = None
    request_id: str | None = None
    kind: str = "chat"
    cache_key: str | None = None
    bypass_cache: bool = False
    expected_output_tokens: int | None = None
    deadline: float | None = None
    priority: int = 0
    #: Whether the answer is streamed to the caller: it then starts with its first token,
    #: which ``timeouts.first_byte`` bounds, where a whole answer's first byte is its last.
    stream: bool = False
    #: The client's own body in OpenAI's Chat Completions shape (every field as it sent
    #: it), passed to OpenAI-compatible upstreams untouched and translated for others;
    #: None for requests the router builds itself (simulations, interview turns).
    body: Mapping[str, Any] | None = attrs.field(default=None, hash=False, repr=False)
    #: (capability, the field that needs it) pairs: only providers whose model has
    #: every capability may answer (e.g. ``("tools", "tools")``, ``("vision",
    #: "messages[0].content[1]")``, ``("openai_fields", "seed")``).
    needs: tuple[tuple[str, str], ...] = ()
    # Sizes are read several times per request (validation, admission, cost): count once.
    prompt_chars: int = attrs.field(init=False, eq=False, repr=False)
    prompt_tokens: int = attrs.field(init=False, eq=False, repr=False)

    def __attrs_post_init__(self) -> None:
        messages = self.messages
        # Sized messages were counted as they were built.
        chars = messages.chars if type(messages) is SizedMessages else count_chars(messages)
        object.__setattr__(self, "prompt_chars", chars)
        object.__setattr__(self, "prompt_tokens", estimate_tokens(chars, len(messages)))


def count_chars(messages: Iterable[ChatMessage], chars: int = 0) -> int:
    """``chars`` plus the length of every message's content; -1 if one is not text."""
    # One plain loop over a long history: on CPython 3.11 it beats map() with
    # attrgetter, whose attribute lookups are not specialised like the loop's.
    if chars < 0:
        return -1
    try:
        for message in messages:
            content = message.content
            if type(content) is not str:
                return -1  # not text; validation then names the bad message
            chars += len(content) + message.padding
    except AttributeError:
        return -1
    return chars


def _answer(value: Any) -> Answer | None:
    """An Answer, also from the dict a shared cache entry holds (``attrs.asdict``)."""
    if value is None or isinstance(value, Answer):
        return value
    return Answer(**value)


@attrs.frozen(slots=True)
class Answer:
    """A provider's whole answer in OpenAI's shape, beyond its text: what the client gets.

    ``message`` is the assistant message as OpenAI writes it (``content``, which is
    null beside ``tool_calls``; ``refusal`` ...); ``usage`` the provider's own usage
    object; ``prompt_tokens`` / ``completion_tokens`` its figures, None where it gave none.
    """

    message: dict[str, Any] = attrs.field(factory=dict)
    finish_reason: str | None = "stop"
    logprobs: Any = None
    system_fingerprint: str | None = None
    usage: dict[str, Any] = attrs.field(factory=dict)
    prompt_tokens: int | None = None
    completion_tokens: int | None = None

    @property
    def text(self) -> str:
        content = self.message.get("content")
        return content if isinstance(content, str) else ""


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
    queue_wait: float = 0.0
    #: The provider's whole answer (tool calls, refusal, logprobs, its usage); None for
    #: modelled providers, whose answer is its text.
    answer: Answer | None = attrs.field(default=None, converter=_answer)
    #: (provider, error code) of each attempt that failed before this answer, in order
    #: (the access log names them): this request's story, not the answer's, so a cache
    #: hit and other routers' copies of a cached answer have none.
    failed_attempts: tuple[tuple[str, str], ...] = ()
    #: Filler characters that follow ``content`` in a modelled answer (see
    #: :class:`ChatMessage`); 0 from real providers.
    padding: int = 0

    @property
    def text(self) -> str:
        """The whole answer's text: ``content`` and its padding."""
        return padded(self.content, self.padding)
