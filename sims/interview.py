"""A simulated interview: a session actor that plays its own turns.

Its script waits for its start time, then for each turn waits the candidate's
think time and sends the turn through the router, exactly as the live session
does; only the candidate is modelled. An error on a turn is what the candidate
would see: it is counted, and the interview goes on to its next turn. With a
:class:`~sims.cache_use.CacheLedger` it keys each request itself (the key the router
would compute, passed along so it is computed once) and notes how it ended.
"""

from __future__ import annotations

import bisect
import functools
from collections.abc import Sequence
from typing import Any

import attrs
import trio

from actors.backends.sink import StreamSink
from actors.cache import request_key
from actors.messages import ChatMessage, ChatRequest, Completion, filler_text
from actors.runtime import clock
from actors.runtime.actor import Supervisor
from actors.runtime.errors import CallboardError
from actors.runtime.randomness import RandomStream, RandomStreams
from actors.session import InterviewSession, Turn, system_message
from engine.routing.errors import InvalidRequest
from engine.routing.router import Router
from sims.cache_use import ANSWERED, FAILED, HIT, REJECTED, CacheLedger
from sims.workload import WorkloadConfig, candidate_answer


@attrs.define
class InterviewTally:
    """What the candidates experienced, over all interviews of a run."""

    #: Interviews started.
    started: int = 0
    #: Interviews that reached their last turn.
    completed: int = 0
    #: Interviews with at least one failed turn.
    with_error: int = 0
    #: Failed turns over all interviews.
    errors: int = 0
    #: Each interview's length in seconds (sorted in results.json).
    durations: list[float] = attrs.Factory(list)


@functools.lru_cache(maxsize=4096)
def _ask_for_question(rank: int) -> ChatMessage:
    """The message asking for question ``rank``; the same few hundred for every interview."""
    return ChatMessage("user", f"Ask interview question #{rank} of the bank.")


class ScriptedInterview(InterviewSession):
    __slots__ = (
        "asked",
        "index",
        "question_cdf",
        "start_at",
        "stream",
        "system_message",
        "tally",
        "time_scale",
        "workload",
    )
    # It plays its turns and nobody sends it any: no mailbox served, no nursery.
    serves_mailbox = False

    def __init__(
        self,
        index: int,
        start_at: float,
        router: Router,
        workload: WorkloadConfig,
        stream: RandomStream,
        question_cdf: Sequence[float],
        tally: InterviewTally,
        time_scale: float = 1.0,
    ) -> None:
        """``start_at`` is on the clock; think times are divided by ``time_scale`` (a live
        replay runs the workload that many times faster) and durations multiplied back."""
        super().__init__(
            f"interview-{index:05d}",
            router,
            system_prompt=filler_text(workload.system_prompt_chars),
        )
        self.system_message = system_message(self.system_prompt)
        self.start_at = start_at
        self.workload = workload
        self.stream = stream
        self.question_cdf = question_cdf
        self.tally = tally
        self.time_scale = time_scale
        self.index = index
        #: The bank ranks this interview has asked, sorted (kept only without repeats; until
        #: the first, a shared empty tuple rather than a list per interview).
        self.asked: list[int] | tuple[()] = ()

    def _question(self, priority: int = 0) -> ChatRequest:
        """A standalone request for one question of the bank (popular ones more often)."""
        workload = self.workload
        rank = self._draw_rank()
        return ChatRequest(
            messages=(self.system_message, _ask_for_question(rank)),
            kind="question",
            expected_output_tokens=int(workload.question_tokens.sample(self.stream)),
            max_tokens=workload.max_tokens,
            priority=priority,
            stream=workload.stream,
        )

    def _draw_rank(self) -> int:
        """Which question of the bank to ask: one uniform draw through the popularity CDF,
        over the questions not yet asked when ``repeat_questions`` is off."""
        cdf = self.question_cdf
        target = self.stream.uniform()
        last = len(cdf) - 1
        if self.workload.repeat_questions:
            return min(bisect.bisect_left(cdf, target), last)
        asked = self.asked
        total = cdf[-1] - sum(cdf[a] - (cdf[a - 1] if a else 0.0) for a in asked)
        target *= total
        # Map the draw from the free mass back onto the whole CDF, skipping asked questions.
        for a in asked:
            low = cdf[a - 1] if a else 0.0
            if low <= target:
                target += cdf[a] - low
        rank = min(bisect.bisect_right(cdf, target), last)
        while rank in asked:  # only at the top edge, from rounding
            rank -= 1
        if isinstance(asked, tuple):
            asked = self.asked = []
        bisect.insort(asked, rank)
        return rank

    async def _play(self, turn: int, kind: str, priority: int) -> None:
        """Turn ``turn``: a question of the bank, or the candidate's answer.

        A coroutine of its own so that the turn's request and answer end with it: in the
        script's frame they lived on through the next think time (~400 bytes an interview).
        """
        if kind == "question":
            completion = await self.complete(self._question(priority))
            self.history.append(ChatMessage("assistant", completion.content, completion.padding))
            return
        workload = self.workload
        chars = int(workload.answer_chars.sample(self.stream))
        head, padding = candidate_answer(self.index, turn, chars)
        tokens = int(workload.output_tokens(kind).sample(self.stream))
        await self.turn(
            Turn(head, kind, tokens, workload.max_tokens, priority, workload.stream, padding)
        )

    async def script(self) -> None:
        workload = self.workload
        stream = self.stream
        tally = self.tally
        await clock.sleep_until(self.start_at)
        tally.started += 1
        began = clock.now()
        errors = 0
        priority = workload.first_turn_priority  # an interview not yet under way
        plan = workload.turn_plan
        # By index, not enumerate(): an enumerate and its pair (~110 bytes) per live
        # interview, for the whole interview.
        for turn in range(len(plan)):
            kind = plan[turn]
            await clock.sleep(workload.think_time.sample(stream) / self.time_scale)
            try:
                await self._play(turn, kind, priority)
            except CallboardError:
                errors += 1
            priority = 0
        tally.completed += 1
        tally.errors += errors
        tally.with_error += errors > 0
        tally.durations.append((clock.now() - began) * self.time_scale)


class LedgeredInterview(ScriptedInterview):
    """A scripted interview that notes each request in a :class:`CacheLedger`.

    A subclass (:func:`play_interviews` picks it when given a ledger) rather than a
    branch in ``complete``: without a ledger the session's own ``complete`` is called
    directly, one await level fewer on every wake-up of every request.
    """

    __slots__ = ("ledger",)

    def __init__(self, *args: Any, ledger: CacheLedger, **kwargs: Any) -> None:
        """A :class:`ScriptedInterview` of the same arguments, noting its requests in ``ledger``."""
        super().__init__(*args, **kwargs)
        self.ledger = ledger

    async def complete(self, request: ChatRequest, sink: StreamSink | None = None) -> Completion:
        """The session's send, noted in the ledger with how it ended."""
        ledger = self.ledger
        key = request_key(request)
        row = ledger.begin(request.kind, key, clock.now())
        ending = FAILED  # an error, or cancelled
        try:
            completion = await super().complete(attrs.evolve(request, cache_key=key), sink)
        except InvalidRequest:
            ending = REJECTED  # refused before the cache was looked at
            raise
        else:
            ending = HIT if completion.cached else ANSWERED
            return completion
        finally:
            ledger.finish(row, clock.now(), ending)


async def play_interviews(
    router: Router,
    workload: WorkloadConfig,
    streams: RandomStreams,
    tally: InterviewTally,
    duration: float,
    started: float = 0.0,
    time_scale: float = 1.0,
    ledger: CacheLedger | None = None,
) -> None:
    """Play every interview of ``workload`` through ``router`` until all end or ``duration``.

    Arrival ``k`` starts at ``started + start_k / time_scale``; the simulator plays at
    scale 1 on virtual time, a live replay faster on real time. A crash in an interview
    is a bug: it ends the run, naming the interview.
    """
    starts = workload.start_times(streams.stream("workload:arrivals"))
    interview: type[ScriptedInterview] | functools.partial[LedgeredInterview] = (
        ScriptedInterview if ledger is None else functools.partial(LedgeredInterview, ledger=ledger)
    )
    question_cdf = workload.question_weights().tolist()  # bisect on a list: no numpy scalars
    with trio.move_on_after(duration):
        async with trio.open_nursery() as nursery:
            interviews = Supervisor(nursery, strategy="escalate")
            for index, start_at in enumerate(starts):
                await interviews.start(
                    interview(
                        index,
                        started + float(start_at) / time_scale,
                        router,
                        workload,
                        streams.unkept(f"interview:{index}"),
                        question_cdf,
                        tally,
                        time_scale=time_scale,
                    )
                )
