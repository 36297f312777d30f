"""The actor runtime: mailboxes, tell/ask, supervision, shutdown."""

from __future__ import annotations

import pytest
import trio

from actors.runtime import clock
from actors.runtime.actor import Actor, Supervisor
from actors.runtime.errors import ActorCrashed, CallboardError, Overloaded


class Counter(Actor):
    """Counts "add" messages; "boom" crashes it; "refuse" answers with a named error."""

    def on_start(self) -> None:
        self.total = 0
        self.starts = getattr(self, "starts", 0) + 1

    async def receive(self, message: object) -> int:
        if message == "boom":
            raise RuntimeError("exploded")
        if message == "refuse":
            raise CallboardError("not today")
        if message == "slow":
            await clock.sleep(1.0)
        self.total += 1
        return self.total


async def test_tell_and_ask_are_handled_in_order(virtual_clock):
    async with trio.open_nursery() as nursery:
        actor = await Supervisor(nursery).start(Counter("counter"))
        for _ in range(5):
            actor.tell("add")
        assert await actor.ask("add") == 6
        nursery.cancel_scope.cancel()


async def test_full_mailbox_raises_overloaded_naming_the_actor(virtual_clock):
    async with trio.open_nursery() as nursery:
        actor = await Supervisor(nursery).start(Counter("tiny", mailbox_capacity=2))
        actor.tell("slow")
        await clock.sleep(0.5)  # the actor is inside "slow" until t=1
        actor.tell("add")
        actor.tell("add")
        with pytest.raises(Overloaded, match=r"'tiny'.*full"):
            actor.tell("add")
        # send() waits for room instead of failing.
        await actor.send("add")
        assert await actor.ask("add") == 5
        nursery.cancel_scope.cancel()


async def test_a_named_error_answers_the_asker_without_crashing(virtual_clock):
    async with trio.open_nursery() as nursery:
        actor = await Supervisor(nursery).start(Counter("polite"))
        await actor.ask("add")
        with pytest.raises(CallboardError, match="not today"):
            await actor.ask("refuse")
        assert await actor.ask("add") == 2 and actor.starts == 1
        nursery.cancel_scope.cancel()


async def test_crash_restarts_with_fresh_state_and_keeps_queued_messages(virtual_clock):
    events: list[tuple[str, str]] = []
    async with trio.open_nursery() as nursery:
        supervisor = Supervisor(nursery, on_event=lambda kind, name, _: events.append((kind, name)))
        actor = await supervisor.start(Counter("phoenix"))
        actor.tell("add")
        actor.tell("add")
        reply_error = None
        try:
            await actor.ask("boom")
        except ActorCrashed as exc:
            reply_error = exc
        assert reply_error is not None and "'phoenix'" in str(reply_error)
        assert "exploded" in str(reply_error)
        assert await actor.ask("add") == 1  # fresh state after the restart
        assert actor.starts == 2
        assert events == [("restarted", "phoenix")]
        nursery.cancel_scope.cancel()


def leaves(group: BaseExceptionGroup) -> list[BaseException]:
    found: list[BaseException] = []
    for exc in group.exceptions:
        found.extend(leaves(exc) if isinstance(exc, BaseExceptionGroup) else [exc])
    return found


async def test_repeated_crashes_escalate_with_the_actor_name(virtual_clock):
    with pytest.raises(BaseExceptionGroup) as raised:
        async with trio.open_nursery() as nursery:
            actor = await Supervisor(nursery, max_restarts=2, window=60.0).start(Counter("fragile"))
            for _ in range(3):
                actor.tell("boom")
            await clock.sleep(10.0)
    [crash] = leaves(raised.value)
    assert isinstance(crash, ActorCrashed) and crash.actor == "fragile"
    assert "exploded" in str(crash) and isinstance(crash.error, RuntimeError)


async def test_escalate_strategy_fails_pending_asks_and_ends_the_scope(virtual_clock):
    outcome: list[BaseException] = []

    async def asker(actor: Actor) -> None:
        try:
            await actor.ask("add")
        except BaseException as exc:  # cancelled or crashed: either is an answer
            outcome.append(exc)
            raise

    with pytest.raises(BaseExceptionGroup) as raised:
        async with trio.open_nursery() as nursery:
            actor = await Supervisor(nursery, strategy="escalate").start(Counter("strict"))
            actor.tell("slow")
            await clock.sleep(0.5)  # the actor is busy with "slow" until t=1
            actor.tell("boom")
            nursery.start_soon(asker, actor)  # its "add" waits behind "boom"
            await clock.sleep(5.0)
    assert all(isinstance(e, ActorCrashed) for e in leaves(raised.value))
    # The ask queued behind the crash got the crash as its answer rather than hanging.
    assert len(outcome) == 1 and isinstance(outcome[0], ActorCrashed)


async def test_cancelling_the_owner_stops_every_actor(virtual_clock):
    with trio.move_on_after(5.0):
        async with trio.open_nursery() as nursery:
            supervisor = Supervisor(nursery)
            actors = [await supervisor.start(Counter(f"a{i}")) for i in range(10)]
            for actor in actors:
                actor.every(1.0, lambda: "add")
    assert clock.now() == 5.0
    assert all(actor.total == 4 for actor in actors)  # ticks at 1..4; the one at 5 never ran


async def test_cancelled_asker_drops_its_reply_but_the_message_is_handled(virtual_clock):
    async with trio.open_nursery() as nursery:
        actor = await Supervisor(nursery).start(Counter("patient"))
        with trio.move_on_after(0.5):
            await actor.ask("slow")
        assert await actor.ask("add") == 2
        nursery.cancel_scope.cancel()


def test_bad_settings_are_rejected():
    with pytest.raises(ValueError, match="capacity"):
        Counter("x", mailbox_capacity=0)
    with pytest.raises(ValueError, match="strategy"):
        Supervisor(None, strategy="pray")  # type: ignore[arg-type]


class Player(Actor):
    """Plays a script of 3 steps; answers "status" asks while it plays."""

    def on_start(self) -> None:
        self.steps = 0

    async def script(self) -> None:
        for _ in range(3):
            await clock.sleep(10.0)
            self.steps += 1

    async def receive(self, message: object) -> int:
        return self.steps


async def test_a_scripted_actor_serves_its_mailbox_and_stops_when_the_script_ends(virtual_clock):
    async with trio.open_nursery() as nursery:
        player = await Supervisor(nursery, strategy="escalate").start(Player("player"))
        await clock.sleep(15.0)
        assert await player.ask("status") == 1
        await clock.sleep(10.0)
        assert await player.ask("status") == 2
    # The nursery closed by itself: the actor stopped when its script ended.
    assert clock.now() == 30.0 and player.steps == 3


class Solo(Player):
    """Plays the same script, and serves no mailbox."""

    serves_mailbox = False


async def test_an_actor_that_serves_no_mailbox_plays_its_script_and_refuses_messages(
    virtual_clock,
):
    async with trio.open_nursery() as nursery:
        solo = await Supervisor(nursery, strategy="escalate").start(Solo("solo"))
        await clock.sleep(15.0)
        with pytest.raises(CallboardError, match="'solo' plays a script and takes no messages"):
            solo.tell("status")
        with pytest.raises(CallboardError, match="takes no messages"):
            await solo.ask("status")
    assert clock.now() == 30.0 and solo.steps == 3


class FailsToStart(Counter):
    """Crashes in on_start the first ``failures`` times it is started."""

    def __init__(self, name: str, failures: int) -> None:
        self.failures = failures
        super().__init__(name)

    def on_start(self) -> None:
        super().on_start()
        if self.starts <= self.failures:
            raise RuntimeError("bad config")


async def test_a_crash_while_starting_is_the_starters_error_and_spares_the_others(virtual_clock):
    async with trio.open_nursery() as nursery:
        supervisor = Supervisor(nursery, strategy="escalate")
        steady = await supervisor.start(Counter("steady"))
        with pytest.raises(ActorCrashed) as crash:
            await supervisor.start(FailsToStart("broken", failures=1))
        assert crash.value.actor == "broken" and "bad config" in str(crash.value)
        assert await steady.ask("add") == 1  # the supervisor's scope lives on
        nursery.cancel_scope.cancel()


async def test_a_restarted_actor_still_finishes_starting(virtual_clock):
    async with trio.open_nursery() as nursery:
        supervisor = Supervisor(nursery)
        actor = await supervisor.start(FailsToStart("flaky", failures=2))
        assert actor.starts == 3 and supervisor.restarts == {"flaky": 2}
        assert await actor.ask("add") == 1
        nursery.cancel_scope.cancel()


async def test_an_actor_whose_starter_is_cancelled_first_never_runs(virtual_clock):
    async with trio.open_nursery() as nursery:
        supervisor = Supervisor(nursery)
        actor = Counter("never")
        with trio.CancelScope() as scope:
            scope.cancel()
            await supervisor.start(actor)
        await clock.sleep(1.0)
        assert not hasattr(actor, "starts")  # on_start never ran
        assert len(nursery.child_tasks) == 0
        nursery.cancel_scope.cancel()
