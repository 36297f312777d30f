"""The actor runtime: bounded mailboxes, tell/ask, supervision.

An actor is a trio task that owns private state and handles one message at a
time. Mailboxes and reply slots are built on trio's lowest-level parking
primitives rather than memory channels: a ``tell`` is a deque append, an
``ask`` parks the caller once, and a reply needs no channel pair (a channel
round trip costs ~35 µs here; see ``benches/bench_actor.py``). State that
hot-path readers need (a breaker's state, a provider's limits) is read in place
from the owner's attributes: plain methods that never wait run without
interleaving under trio, so a read needs no round trip and no copy.
"""

from __future__ import annotations

import collections
import math
from collections.abc import Callable
from typing import Any

import outcome
import trio
from trio.lowlevel import Abort, Task, current_task, reschedule, wait_task_rescheduled

from actors.runtime import clock
from actors.runtime.errors import ActorCrashed, CallboardError, Overloaded, leaves


class Reply:
    """A one-shot reply slot: set once by the actor, awaited once by the asker."""

    __slots__ = ("_abandoned", "_result", "_task")

    def __init__(self) -> None:
        self._task: Task | None = None
        self._result: outcome.Outcome | None = None
        self._abandoned = False

    def _deliver(self, result: outcome.Outcome) -> None:
        if self._result is not None or self._abandoned:
            return
        if self._task is not None:
            task, self._task = self._task, None
            self._result = result
            reschedule(task, result)
        else:
            self._result = result

    def set(self, value: Any) -> None:
        self._deliver(outcome.Value(value))

    def fail(self, error: BaseException) -> None:
        self._deliver(outcome.Error(error))

    async def wait(self) -> Any:
        if self._result is not None:
            await trio.lowlevel.checkpoint()
            return self._result.unwrap()
        self._task = current_task()

        def abort(_: object) -> Abort:
            # The asker was cancelled: the message stays delivered, its reply is dropped.
            self._task = None
            self._abandoned = True
            return Abort.SUCCEEDED

        return await wait_task_rescheduled(abort)


class _StartSignal(Reply):
    """The ``task_status`` an actor gets from :meth:`Supervisor.start`: a one-shot reply."""

    __slots__ = ()

    def started(self, value: object = None) -> None:
        self.set(value)

    @property
    def settled(self) -> bool:
        return self._result is not None or self._abandoned

    @property
    def abandoned(self) -> bool:
        return self._abandoned


# What an empty mailbox holds until a message comes: an empty deque costs ~600 bytes
# (its first block), and most of the thousands of actors of a simulation (interviews)
# never get a message.
_NO_ITEMS: tuple[()] = ()


class Mailbox:
    """A bounded FIFO of (message, reply) with one receiving task.

    Its queue (a deque) and its line of senders waiting for room (a parking lot) are
    made when first needed: an interview's mailbox is mostly never used.
    """

    __slots__ = ("_items", "_owner", "_receiver", "_senders", "capacity", "on_first_message")

    def __init__(self, owner: str, capacity: int) -> None:
        if capacity < 1:
            raise ValueError(f"mailbox capacity of {owner!r} must be >= 1, got {capacity!r}")
        self._owner = owner
        self.capacity = capacity
        self._items: collections.deque[tuple[Any, Reply | None]] | tuple[()] = _NO_ITEMS
        self._receiver: Task | None = None
        self._senders: trio.lowlevel.ParkingLot | None = None
        #: Called (once) when a message arrives and nobody serves the mailbox yet.
        self.on_first_message: Callable[[], None] | None = None

    def __len__(self) -> int:
        return len(self._items)

    def put_nowait(self, message: Any, reply: Reply | None = None) -> None:
        if len(self._items) >= self.capacity:
            raise Overloaded(
                f"mailbox of actor {self._owner!r} is full ({self.capacity} messages)",
                retry_after=None,
            )
        items = self._items
        if isinstance(items, tuple):
            items = self._items = collections.deque()
        items.append((message, reply))
        if self._receiver is not None:
            task, self._receiver = self._receiver, None
            reschedule(task)
        elif self.on_first_message is not None:
            start_serving, self.on_first_message = self.on_first_message, None
            start_serving()

    async def put(self, message: Any, reply: Reply | None = None) -> None:
        """Wait for room (back-pressure), then enqueue."""
        while len(self._items) >= self.capacity:
            if self._senders is None:
                self._senders = trio.lowlevel.ParkingLot()
            await self._senders.park()
        self.put_nowait(message, reply)
        await trio.lowlevel.cancel_shielded_checkpoint()

    async def take_all(self) -> collections.deque[tuple[Any, Reply | None]]:
        """Wait until the mailbox holds something, then take everything in it."""
        if not self._items:
            self._receiver = current_task()

            def abort(_: object) -> Abort:
                self._receiver = None
                return Abort.SUCCEEDED

            await wait_task_rescheduled(abort)
        batch, self._items = self._items, _NO_ITEMS
        assert not isinstance(batch, tuple), "woken with an empty mailbox"
        if self._senders:
            self._senders.unpark_all()
        return batch

    def put_back(self, batch: collections.deque[tuple[Any, Reply | None]]) -> None:
        """Put what a taken batch has not handled back at the head, in its order."""
        items = self._items
        if isinstance(items, tuple):
            items = self._items = collections.deque()
        items.extendleft(reversed(batch))

    def fail_all(self, error: BaseException) -> None:
        """Fail every pending ask (used when the actor stops for good)."""
        items = self._items
        if isinstance(items, tuple):
            return
        while items:
            _, reply = items.popleft()
            if reply is not None:
                reply.fail(error)


class _Refusing(Mailbox):
    """The mailbox of an actor that serves none (:attr:`Actor.serves_mailbox`): every
    message is refused with a named error, never left unread."""

    __slots__ = ()

    def put_nowait(self, message: Any, reply: Reply | None = None) -> None:
        raise CallboardError(f"actor {self._owner!r} plays a script and takes no messages")

    async def put(self, message: Any, reply: Reply | None = None) -> None:
        self.put_nowait(message, reply)


class Actor:
    """Base class: subclasses implement :meth:`receive` and :meth:`on_start`.

    ``receive`` handles one message; its return value answers an ``ask``.
    ``on_start`` builds fresh private state; it runs at start and after every
    restart by the supervisor, so a crash never leaks half-updated state.
    """

    # Slots, not a __dict__, down the line of a simulated interview (Actor, InterviewSession,
    # ScriptedInterview): ~100 bytes less for each of thousands. Other actors keep a dict.
    __slots__ = ("_nursery", "mailbox", "name")

    mailbox_capacity = 4096
    #: Whether it serves a mailbox (beside its script, if it has one). An actor that only
    #: plays its script (a simulated interview) says no: it then runs without a nursery
    #: of its own (trio's nursery, cancel scope and their sets, ~1.2 KiB, once per each of
    #: thousands of interviews), and a message to it is refused with a named error.
    serves_mailbox = True

    def __init__(self, name: str, *, mailbox_capacity: int | None = None) -> None:
        self.name = name
        capacity = self.mailbox_capacity if mailbox_capacity is None else mailbox_capacity
        self.mailbox = Mailbox(name, capacity) if self.serves_mailbox else _Refusing(name, capacity)
        self._nursery: trio.Nursery | None = None

    # --- to override -------------------------------------------------------
    def on_start(self) -> None:
        """Initialise private state (called on start and on every restart)."""

    async def receive(self, message: Any) -> Any:
        raise NotImplementedError(f"actor {self.name!r} does not handle {message!r}")

    async def script(self) -> None:
        """Optional work the actor does on its own, beside its mailbox.

        An actor that overrides it (an interview that plays its turns) stops
        when the script returns.
        """

    # --- talking to an actor -----------------------------------------------
    def tell(self, message: Any) -> None:
        """Send without waiting; raises :class:`Overloaded` if the mailbox is full."""
        self.mailbox.put_nowait(message)

    async def send(self, message: Any) -> None:
        """Send, waiting for room in the mailbox if it is full."""
        await self.mailbox.put(message)

    async def ask(self, message: Any) -> Any:
        """Send and wait for the reply (back-pressure if the mailbox is full)."""
        reply = Reply()
        if len(self.mailbox) >= self.mailbox.capacity:
            await self.mailbox.put(message, reply)
        else:
            self.mailbox.put_nowait(message, reply)
        return await reply.wait()

    # --- for subclasses ----------------------------------------------------
    def after(self, delay: float, message: Any) -> None:
        """Deliver ``message`` to this actor after ``delay`` seconds on the run's clock."""
        assert self._nursery is not None, f"actor {self.name!r} is not running"
        self._nursery.start_soon(self._deliver_later, delay, message)

    async def _deliver_later(self, delay: float, message: Any) -> None:
        await clock.sleep(delay)
        await self.mailbox.put(message)

    def every(self, interval: float, message_factory: Callable[[], Any]) -> None:
        """Deliver a fresh message every ``interval`` seconds while the actor runs."""
        if not (interval > 0 and math.isfinite(interval)):
            raise ValueError(f"interval of actor {self.name!r} must be > 0, got {interval!r}")
        assert self._nursery is not None, f"actor {self.name!r} is not running"
        self._nursery.start_soon(self._tick_forever, interval, message_factory)

    async def _tick_forever(self, interval: float, message_factory: Callable[[], Any]) -> None:
        while True:
            await clock.sleep(interval)
            await self.mailbox.put(message_factory())

    # --- the loop ----------------------------------------------------------
    async def _run(self, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        """Serve the mailbox (beside the script, if any) in a nursery of the actor's own; an
        actor that serves none is played by its supervisor (:meth:`Supervisor._supervise`)."""
        async with trio.open_nursery() as nursery:
            self._nursery = nursery
            self.on_start()
            task_status.started()
            if type(self).script is Actor.script:
                await self._serve()
            else:
                # A scripted actor (a simulated interview) plays its script in its own
                # task and starts serving its mailbox only when a message arrives:
                # most never get one, and a task less per actor counts when there
                # are thousands of them.
                if self.mailbox:
                    nursery.start_soon(self._serve)
                else:
                    # A bound method, not a closure: ~64 bytes against ~370 per actor.
                    self.mailbox.on_first_message = self._start_serving
                await self.script()
                self.mailbox.on_first_message = None
                if nursery.child_tasks:  # cancelling costs trio a repr() of the task
                    nursery.cancel_scope.cancel()

    def _start_serving(self) -> None:
        """Serve the mailbox in a task of this actor's nursery (a scripted actor's first
        message)."""
        assert self._nursery is not None, f"actor {self.name!r} is not running"
        self._nursery.start_soon(self._serve)

    async def _serve(self) -> None:
        receive = self.receive
        while True:
            batch = await self.mailbox.take_all()
            while batch:
                message, reply = batch.popleft()
                try:
                    result = await receive(message)
                except CallboardError as exc:
                    # A named error answers the asker; with nobody asking it would be
                    # lost, so then it crashes the actor like any other error.
                    if reply is None:
                        self.mailbox.put_back(batch)
                        raise
                    reply.fail(exc)
                    continue
                except BaseException as exc:
                    # Put back what this batch has not handled yet: nothing is lost.
                    self.mailbox.put_back(batch)
                    if reply is not None:
                        reply.fail(ActorCrashed(self.name, exc))
                    raise
                if reply is not None:
                    reply.set(result)


#: The name trio gives a supervised actor's task, made once: trio would format it for each
#: task (~90 bytes apiece, for each of thousands of interviews).
_SUPERVISE_TASK = f"{__name__}.Supervisor._supervise"


class Supervisor:
    """Starts actors in its nursery and decides what a crash means.

    ``restart``: the crashed actor gets fresh state (``on_start``) and keeps its
    mailbox, up to ``max_restarts`` within ``window`` seconds; past that, or with
    ``escalate``, the crash ends the supervisor's scope as :class:`ActorCrashed`
    naming the actor.
    """

    def __init__(
        self,
        nursery: trio.Nursery,
        *,
        strategy: str = "restart",
        max_restarts: int = 3,
        window: float = 60.0,
        on_event: Callable[[str, str, BaseException | None], None] | None = None,
    ) -> None:
        if strategy not in ("restart", "escalate"):
            raise ValueError(f"strategy must be 'restart' or 'escalate', got {strategy!r}")
        self._nursery = nursery
        self.strategy = strategy
        self.max_restarts = max_restarts
        self.window = window
        self._on_event = on_event
        self.restarts: dict[str, int] = {}

    async def start(self, actor: Actor) -> Actor:
        """Start ``actor`` under this supervisor; return once it runs (``on_start`` done).

        What ``nursery.start`` does, without the throwaway nursery it opens per call
        (~40 µs, paid by every one of thousands of simulated interviews). The
        scheduler passes are the same (the starter parks, the actor runs until it is
        started, the starter resumes), so runs interleave exactly as they did. As with
        ``nursery.start``, a crash before the actor is running is raised here, not in the
        supervisor's scope, and an actor whose starter is cancelled first never runs.
        """
        signal = _StartSignal()
        self._nursery.start_soon(self._supervise, actor, signal, name=_SUPERVISE_TASK)
        await signal.wait()
        return actor

    def _emit(self, kind: str, actor: Actor, error: BaseException | None) -> None:
        if self._on_event is not None:
            self._on_event(kind, actor.name, error)

    async def _supervise(self, actor: Actor, signal: _StartSignal) -> None:
        if signal.abandoned:
            return  # its starter was cancelled before it ran
        # Restart times within the window: a list, not a deque (56 bytes against ~600 for
        # an empty deque), made at the first crash (most actors never restart).
        recent: list[float] | None = None
        try:
            while True:
                try:
                    if actor.serves_mailbox:
                        await actor._run(signal)
                        return
                    # An actor that only plays its script is played here, not in a
                    # coroutine of its own: ~240 bytes less for each of thousands of
                    # simulated interviews.
                    try:
                        actor.on_start()
                        signal.started()
                        await actor.script()
                    finally:
                        # The schedule point a nursery's exit makes, kept: a run interleaves
                        # exactly as it did when every actor had a nursery.
                        await trio.lowlevel.cancel_shielded_checkpoint()
                    return
                except Exception as exc:
                    found = leaves(exc)
                    error = found[0] if len(found) == 1 else exc
                    now = clock.now()
                    if recent is None:
                        recent = []
                    while recent and recent[0] <= now - self.window:
                        del recent[0]
                    if self.strategy == "escalate" or len(recent) >= self.max_restarts:
                        crash = ActorCrashed(actor.name, error)
                        actor.mailbox.fail_all(crash)
                        self._emit("escalated", actor, error)
                        if not signal.settled:
                            signal.fail(crash)  # the starter's error, as nursery.start has it
                            return
                        raise crash from error
                    recent.append(now)
                    self.restarts[actor.name] = self.restarts.get(actor.name, 0) + 1
                    self._emit("restarted", actor, error)
        finally:
            if not signal.settled:  # stopped (cancelled) before it ran: never leave it waiting
                signal.fail(ActorCrashed(actor.name, RuntimeError("stopped before it started")))
