"""The interview session: it owns its history and notes which provider answered it."""

from __future__ import annotations

import attrs

from actors.messages import ChatRequest, Completion
from actors.session import Completer, InterviewSession, Turn


class Scripted:
    """A router stand-in (a Completer) that answers from a script of (provider, cached)."""

    def __init__(self, answers: list[tuple[str, bool]]) -> None:
        self.answers = answers
        self.seen: list[tuple[ChatRequest, str | None]] = []

    async def complete(
        self, request: ChatRequest, session: InterviewSession | None = None
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
