"""The virtual clock: jumps, trio's timeouts on it, tie order, pinned scheduling."""

from __future__ import annotations

import math
import random
import threading
import time
import tomllib
from pathlib import Path

import pytest
import trio

from actors.runtime import clock, trio_hooks
from actors.runtime.clock import VirtualClock, run_virtual
from actors.runtime.trio_hooks import missing_scheduling_hooks, pinned_trio_scheduling


def test_an_hour_of_sleeping_takes_no_wall_time():
    async def main() -> float:
        for _ in range(60):
            await clock.sleep(60.0)
        return trio.current_time()

    assert run_virtual(main) == 3600.0


async def test_move_on_after_and_fail_after_keep_working(virtual_clock):
    with trio.move_on_after(2.5) as scope:
        await clock.sleep(10.0)
    assert scope.cancelled_caught and clock.now() == 2.5
    with pytest.raises(trio.TooSlowError):
        with trio.fail_after(1.0):
            await trio.sleep(5.0)
    assert clock.now() == 3.5
    await trio.sleep(0.5)  # trio's own deadlines jump too
    assert trio.current_time() == 4.0


async def test_a_cancelled_sleep_leaves_no_timer_behind(virtual_clock: VirtualClock):
    with trio.move_on_after(1.0):
        await clock.sleep(100.0)
    await clock.sleep(1.0)
    assert clock.now() == 2.0  # the abandoned 100 s timer did not pull time forward


async def test_sleepers_wake_in_time_order_with_ties_in_arrival_order(virtual_clock):
    woke: list[tuple[float, int]] = []

    async def sleeper(index: int, seconds: float) -> None:
        await clock.sleep(seconds)
        woke.append((clock.now(), index))

    async with trio.open_nursery() as nursery:
        for index, seconds in enumerate([3.0, 1.0, 2.0, 1.0]):
            nursery.start_soon(sleeper, index, seconds)
    assert [t for t, _ in woke] == [1.0, 1.0, 2.0, 3.0]
    assert virtual_clock.timed_events == 4


async def test_cancelled_sleepers_of_a_shared_time_leave_the_others_to_wake(virtual_clock):
    woke: list[tuple[float, str]] = []

    async def sleeper(name: str, until: float, cancel_at: float | None = None) -> None:
        with trio.move_on_after(math.inf if cancel_at is None else cancel_at):
            await clock.sleep_until(until)
            woke.append((clock.now(), name))

    async with trio.open_nursery() as nursery:
        nursery.start_soon(sleeper, "alone, cancelled", 5.0, 1.0)
        nursery.start_soon(sleeper, "first of two, cancelled", 3.0, 1.0)
        nursery.start_soon(sleeper, "second of two", 3.0)
        await clock.sleep(2.0)
        nursery.start_soon(sleeper, "after a cancelled one", 5.0)
    assert woke == [(3.0, "second of two"), (5.0, "after a cancelled one")]
    assert virtual_clock.timed_events == 3  # the two, and this test's own 2 s sleep


async def test_sleep_zero_or_negative_is_a_checkpoint(virtual_clock):
    await clock.sleep(0)
    await clock.sleep_until(-5.0)
    assert clock.now() == 0.0


def _interleaving(scheduling_seed: int) -> list[int]:
    """The order in which 50 tasks woken at the same instant run."""

    async def main() -> list[int]:
        order: list[int] = []

        async def task(i: int) -> None:
            await clock.sleep(1.0)
            order.append(i)

        async with trio.open_nursery() as nursery:
            for i in range(50):
                nursery.start_soon(task, i)
        return order

    return run_virtual(main, scheduling_seed=scheduling_seed)


def test_pinned_scheduling_makes_the_interleaving_a_function_of_the_seed():
    assert missing_scheduling_hooks() == []
    random.seed()  # whatever the global random state, the pinned run is the same
    assert _interleaving(7) == _interleaving(7)
    # If a trio upgrade stopped shuffling through the hook we pin, different seeds
    # would give the same order and this would fail: determinism would be luck.
    orders = {tuple(_interleaving(seed)) for seed in range(4)}
    assert len(orders) > 1


def test_pinning_is_undone_after_the_run():
    state = trio._core._run._r.getstate()
    flag = trio._core._run._ALLOW_DETERMINISTIC_SCHEDULING
    with pinned_trio_scheduling(3):
        assert trio._core._run._ALLOW_DETERMINISTIC_SCHEDULING is True
    assert trio._core._run._r.getstate() == state
    assert flag == trio._core._run._ALLOW_DETERMINISTIC_SCHEDULING


def test_real_io_and_threads_still_work_in_a_virtual_run():
    # run_virtual polls the kernel for I/O less often; what does I/O must still finish.
    async def main() -> tuple[int, bytes]:
        from_thread = await trio.to_thread.run_sync(lambda: 6 * 7)
        left, right = trio.socket.socketpair()
        with left, right:
            await left.send(b"ping")
            received = await right.recv(4)
        await clock.sleep(5.0)
        return from_thread, received

    assert run_virtual(main) == (42, b"ping")


def test_a_thread_finishes_even_while_timers_keep_virtual_time_moving():
    async def main() -> str:
        async def ticker() -> None:
            while True:
                await clock.sleep(1.0)

        async with trio.open_nursery() as nursery:
            nursery.start_soon(ticker)
            result = await trio.to_thread.run_sync(lambda: time.sleep(0.05) or "done")
            nursery.cancel_scope.cancel()
        return result

    assert run_virtual(main) == "done"


def test_instruments_still_work_in_a_virtual_run():
    class Steps(trio.abc.Instrument):
        def __init__(self) -> None:
            self.steps = 0

        def before_task_step(self, task: trio.lowlevel.Task) -> None:
            self.steps += 1

    steps = Steps()

    async def main() -> int:
        trio.lowlevel.add_instrument(steps)
        await clock.sleep(1.0)
        await clock.sleep(1.0)
        seen = steps.steps
        trio.lowlevel.remove_instrument(steps)
        await clock.sleep(1.0)
        with pytest.raises(KeyError):
            trio.lowlevel.remove_instrument(steps)
        return seen

    assert run_virtual(main) == 2 == steps.steps  # two wake-ups seen, none after removal


def test_this_trio_has_every_hook_and_is_the_pinned_release():
    assert trio_hooks.missing_scheduling_hooks() == []
    assert trio_hooks.missing_speed_hooks() == []
    assert trio_hooks.missing_parking_hooks() == []
    pyproject = tomllib.loads((Path(__file__).parents[2] / "pyproject.toml").read_text())
    pins = [d for d in pyproject["project"]["dependencies"] if d.startswith("trio")]
    assert pins == [f"trio{trio_hooks.TESTED_TRIO}"]


def test_without_the_scheduling_hook_a_run_still_runs_and_says_it_is_not_pinned(monkeypatch):
    class MovedGenerator:  # what trio would hold if it stopped using random.Random
        def random(self) -> float:
            return 0.25

        def shuffle(self, batch: list) -> None:
            batch.reverse()

    monkeypatch.setattr(trio._core._run, "_r", MovedGenerator())
    with pytest.warns(trio_hooks.TrioHookMissing, match="not reproducible"):
        order = _interleaving(7)
    assert sorted(order) == list(range(50))


def test_without_the_speed_hooks_a_virtual_run_is_only_slower(monkeypatch):
    monkeypatch.setattr(trio_hooks, "_INSTRUMENTS", None)

    async def main() -> float:
        await clock.sleep(90.0)
        return clock.now()

    with pytest.warns(trio_hooks.TrioHookMissing, match="Instruments.*slower"):
        assert run_virtual(main) == 90.0


def test_without_the_parking_hook_sleeps_park_as_trio_parks_them(monkeypatch):
    monkeypatch.setattr(trio_hooks, "_RESCHEDULED_TRAP", None)

    async def main() -> float:
        await clock.sleep(90.0)
        with trio.move_on_after(1.0):
            await clock.sleep(100.0)  # cancelled: its abort still takes it off the clock
        await clock.sleep(1.0)
        return clock.now()

    with pytest.warns(trio_hooks.TrioHookMissing, match="WaitTaskRescheduled.*bytes more"):
        assert run_virtual(main) == 92.0


def test_pinned_runs_in_two_threads_take_turns():
    # A Dask worker runs simulations in several threads of one process; trio's shuffler
    # is process-wide, so a second pinned block must wait until the first has ended.
    entered = threading.Event()
    states: list[object] = []

    def second() -> None:
        with pinned_trio_scheduling(2):
            states.append(trio._core._run._r.getstate())
            entered.set()

    with pinned_trio_scheduling(1):
        first_state = trio._core._run._r.getstate()
        other = threading.Thread(target=second)
        other.start()
        assert not entered.wait(timeout=0.3)  # still held back
        assert trio._core._run._r.getstate() == first_state  # nobody reseeded our stream
    other.join()
    assert entered.is_set() and states and states[0] != first_state
