"""The interview session: it owns its history and notes which provider answered it."""

from __future__ import annotations

import attrs
import pytest

from actors.backends.sink import StreamSink
from actors.messages import ChatMessage, ChatRequest, Completion
from actors.runtime.errors import CallboardError
from actors.session import Completer, InterviewSession, Turn


class Scripted:
    """A router stand-in (a Completer) that answers from a script of (provider, cached)."""

    def __init__(self, answers: list[tuple[str, bool]]) -> None:
        self.answers = answers
        self.seen: list[tuple[ChatRequest, str | None]] = []

    async def complete(
        self,
        request: ChatRequest,
        session: InterviewSession | None = None,
        sink: StreamSink | None = None,
    ) -> Completion:
        assert session is not None
        self.seen.append((request, session.provider))
        provider, cached = self.answers[len(self.seen) - 1]
        answer = Completion("r", f"answer {len(self.seen)}", "m", provider, 1, 1, 0.1, 0.1)
        return attrs.evolve(answer, cached=cached)


async def test_the_session_records_its_provider_only_on_a_provider_answer():
    router: Completer = Scripted([("a", False), ("b", True), ("c", False)])
    session = InterviewSession("s", router)
    assert session.provider is None
    await session.turn(Turn("one"))
    assert session.provider == "a"
    await session.turn(Turn("two"))  # a cache hit: no provider served it
    assert session.provider == "a"
    await session.turn(Turn("three"))
    assert session.provider == "c"
    # The router saw where the session was last served, before each turn.
    assert [provider for _, provider in router.seen] == [None, "a", "a"]
    assert [m.content for m in session.history] == [
        "one",
        "answer 1",
        "two",
        "answer 2",
        "three",
        "answer 3",
    ]


async def test_a_direct_request_through_the_session_also_notes_the_provider():
    session = InterviewSession("s", Scripted([("a", False)]))
    request = ChatRequest(messages=())
    assert (await session.complete(request)).provider == "a"
    assert session.provider == "a" and session.history == []


class Flaky(Scripted):
    """Fails every turn whose candidate message says so, after noting the request."""

    async def complete(
        self,
        request: ChatRequest,
        session: InterviewSession | None = None,
        sink: StreamSink | None = None,
    ) -> Completion:
        if request.messages[-1].content.startswith("fail"):
            self.seen.append((request, None))
            self.answers.insert(len(self.seen) - 1, ("x", False))
            raise CallboardError("refused")
        return await super().complete(request, session)


async def test_a_turn_s_request_is_sized_as_if_its_whole_history_were_counted():
    """The session counts its history as it grows; whatever happens to the history
    (a failed turn taking its message back, messages appended by a subclass, the list
    replaced, a restart), each request's size is the one counting it all gives."""
    router = Flaky([("a", False)] * 12)
    session = InterviewSession("s", router, system_prompt="be brief")
    await session.turn(Turn("one"))
    with pytest.raises(CallboardError):
        await session.turn(Turn("fail: a message of another length"))
    await session.turn(Turn("two"))
    session.history.append(ChatMessage("assistant", "a question asked outside a turn"))
    await session.turn(Turn("three"))
    rewritten = list(session.history)  # a new list: the same messages, but the first
    rewritten[0] = ChatMessage("system", "a restored session's longer system prompt")
    session.history = rewritten
    await session.turn(Turn("four"))
    session.history.pop()
    session.history.pop()
    await session.turn(Turn("five, after two messages went"))
    session.on_start()
    await session.turn(Turn("six"))
    assert len(router.seen) == 7
    for request, _ in router.seen:
        recounted = ChatRequest(messages=tuple(request.messages))
        assert request.prompt_chars == recounted.prompt_chars
        assert request.prompt_tokens == recounted.prompt_tokens
        assert request == recounted


def test_sized_messages_survive_a_copy_and_a_pickle():
    import copy
    import pickle

    from actors.messages import SizedMessages

    messages = SizedMessages([ChatMessage("user", "hello")], 5)
    for clone in (copy.deepcopy(messages), pickle.loads(pickle.dumps(messages))):
        assert type(clone) is SizedMessages and clone == messages and clone.chars == 5
        assert ChatRequest(messages=clone).prompt_chars == 5
