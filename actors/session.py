"""The interview session actor: it owns the conversation history.

Each turn appends the candidate's message, sends the whole history through the
router, and appends the answer. The history lives here, not with a provider,
so when the router moves the session to another provider mid-interview the new
provider receives the whole conversation, unchanged.
"""

from __future__ import annotations

import functools
from typing import TYPE_CHECKING, Protocol

import attrs

from actors.messages import ChatMessage, ChatRequest, Completion, SizedMessages, count_chars
from actors.runtime.actor import Actor
from actors.runtime.errors import CallboardError

if TYPE_CHECKING:
    from actors.backends.sink import StreamSink


class Completer(Protocol):
    """What a session needs from the router: an answer to a request, for this session,
    its text streamed into ``sink`` as it arrives when there is one.

    The router may read ``session.provider`` (where this session was last served) to
    keep the session where it was; it never writes it.
    """

    async def complete(
        self,
        request: ChatRequest,
        session: InterviewSession | None = None,
        sink: StreamSink | None = None,
    ) -> Completion: ...


@attrs.frozen
class Turn:
    """The candidate's next message, and what kind of turn it is for routing."""

    content: str
    kind: str = "chat"
    expected_output_tokens: int | None = None
    max_tokens: int | None = None
    priority: int = 0
    #: Whether the answer is streamed (a sink streams it whatever this says).
    stream: bool = False
    #: Filler characters after ``content`` in a modelled candidate's message
    #: (:class:`ChatMessage`).
    padding: int = 0


@functools.lru_cache(maxsize=64)
def system_message(prompt: str) -> ChatMessage:
    """The system message of ``prompt``: one object for every session of that prompt (a
    simulation's thousands of interviews share one)."""
    return ChatMessage("system", prompt)


class InterviewSession(Actor):
    __slots__ = (
        "_sized",
        "history",
        "provider",
        "providers_used",
        "router",
        "session_id",
        "system_prompt",
    )

    def __init__(self, session_id: str, router: Completer, system_prompt: str = "") -> None:
        super().__init__(f"session:{session_id}", mailbox_capacity=64)
        self.session_id = session_id
        self.router = router
        self.system_prompt = system_prompt
        self.on_start()

    def on_start(self) -> None:
        # A restarted session starts a fresh conversation rather than a half-written one.
        self.history: list[ChatMessage] = (
            [system_message(self.system_prompt)] if self.system_prompt else []
        )
        self.provider: str | None = None  # the provider that last answered this session
        self.providers_used: list[str] = []
        # A running count of the history's characters (see _sized_history).
        self._sized: tuple[list[ChatMessage], int, ChatMessage | None, int] = ([], 0, None, 0)

    def _sized_history(self) -> SizedMessages:
        """The whole history as a request's messages, sized by a running count.

        Only the messages appended since the last turn are counted. The history grows by
        appending; if it was replaced, cut or its last counted message changed (a failed
        turn takes its message back), it is counted again from the start.
        """
        history = self.history
        counted_list, counted, last, chars = self._sized
        if not (
            history is counted_list
            and len(history) >= counted
            and (counted == 0 or history[counted - 1] is last)
        ):
            counted, chars = 0, 0
        chars = count_chars(history[counted:], chars) if len(history) > counted else chars
        self._sized = (history, len(history), history[-1] if history else None, chars)
        return SizedMessages(history, chars)

    async def turn(self, turn: Turn, sink: StreamSink | None = None) -> Completion:
        """One exchange, its answer streamed into ``sink`` if given; on failure the history
        is left as it was before the turn."""
        self.history.append(ChatMessage("user", turn.content, turn.padding))
        request = ChatRequest(
            messages=self._sized_history(),
            kind=turn.kind,
            expected_output_tokens=turn.expected_output_tokens,
            max_tokens=turn.max_tokens,
            priority=turn.priority,
            stream=turn.stream or sink is not None,
        )
        try:
            completion = await self.complete(request, sink)
        except BaseException:
            self.history.pop()
            raise
        self.history.append(ChatMessage("assistant", completion.content, completion.padding))
        if not self.providers_used or self.providers_used[-1] != completion.provider:
            self.providers_used.append(completion.provider)
        return completion

    async def complete(self, request: ChatRequest, sink: StreamSink | None = None) -> Completion:
        """Send ``request`` through the router for this session; note who answered.

        A cache hit was served by no provider, so it leaves ``provider`` as it was.
        """
        completion = await self.router.complete(request, self, sink)
        if not completion.cached:
            self.provider = completion.provider
        return completion

    async def receive(self, message: object) -> Completion:
        if isinstance(message, Turn):
            return await self.turn(message)
        raise CallboardError(f"session {self.session_id!r} got an unknown message {message!r}")
