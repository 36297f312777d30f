"""Cost per timed event: our VirtualClock versus trio's MockClock(autojump_threshold=0).

A simulation is a pile of virtual sleeps, so what one sleep costs bounds how fast a
scenario can run. Three ways to run the same workload are compared in the same process:

- ``VirtualClock + clock.sleep``: ``actors.runtime.clock.run_virtual`` with the engine's own
  timer heap, woken from ``deadline_to_sleep_time`` (the path the sim uses);
- ``VirtualClock + trio.sleep``: the same clock, but the sleeps go through trio's own
  deadline machinery (what ``move_on_after`` / ``fail_after`` cost under it);
- ``MockClock + trio.sleep``: ``trio.testing.MockClock(autojump_threshold=0)``, which
  jumps through a system task woken by ``wait_all_tasks_blocked`` (the usual way).

Workload: N tasks, each doing K sleeps of seeded pseudo-random durations (so wake-ups
rarely tie), i.e. N*K timed events. Each variant is run ``--repeat`` times, interleaved,
and the median wall time of a whole ``trio.run`` is divided by N*K. ``run_virtual`` pins
trio's scheduling order (a sorted, seeded shuffle); that cost is part of what is measured.
As a sanity check that the variants do the same work, all must end at the same virtual time.
"""

from __future__ import annotations

import argparse
import math
import random
import statistics
import time
from collections.abc import Awaitable, Callable

import trio
import trio.testing

from actors.runtime import clock

SleepFn = Callable[[float], Awaitable[None]]


def make_durations(tasks: int, sleeps: int, seed: int) -> list[list[float]]:
    rng = random.Random(seed)
    return [[rng.uniform(0.001, 1.0) for _ in range(sleeps)] for _ in range(tasks)]


async def workload(sleep: SleepFn, durations: list[list[float]]) -> float:
    """Run one task per row of ``durations``; return the final virtual time."""

    async def sleeper(row: list[float]) -> None:
        for seconds in row:
            await sleep(seconds)

    async with trio.open_nursery() as nursery:
        for row in durations:
            nursery.start_soon(sleeper, row)
    return trio.current_time()


def run_virtual_own_heap(durations: list[list[float]]) -> float:
    return clock.run_virtual(workload, clock.sleep, durations)


def run_virtual_trio_sleep(durations: list[list[float]]) -> float:
    return clock.run_virtual(workload, trio.sleep, durations)


def run_mock_clock(durations: list[list[float]]) -> float:
    mock = trio.testing.MockClock(autojump_threshold=0)
    return trio.run(workload, trio.sleep, durations, clock=mock)


VARIANTS: dict[str, Callable[[list[list[float]]], float]] = {
    "VirtualClock + clock.sleep": run_virtual_own_heap,
    "VirtualClock + trio.sleep": run_virtual_trio_sleep,
    "MockClock(0) + trio.sleep": run_mock_clock,
}


def compare(factor: float, subject: str, peer: str, what: str) -> str:
    if factor >= 1.0:
        return f"{subject} is {factor:.1f}x cheaper {what} than {peer}"
    return f"{subject} is {1.0 / factor:.1f}x MORE EXPENSIVE {what} than {peer}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tasks", type=int, default=200, help="concurrent sleeping tasks (N)")
    parser.add_argument("--sleeps", type=int, default=25, help="sleeps per task (K)")
    parser.add_argument("--repeat", type=int, default=7, help="runs per variant; median is kept")
    parser.add_argument("--seed", type=int, default=1, help="seed for the sleep durations")
    args = parser.parse_args()

    durations = make_durations(args.tasks, args.sleeps, args.seed)
    events = args.tasks * args.sleeps
    expected_end = max(math.fsum(row) for row in durations)

    walls: dict[str, list[float]] = {name: [] for name in VARIANTS}
    ends: dict[str, float] = {}
    for _ in range(args.repeat):
        for name, run in VARIANTS.items():  # interleaved, so noise hits every variant alike
            start = time.perf_counter()
            ends[name] = run(durations)
            walls[name].append(time.perf_counter() - start)

    for name, end in ends.items():
        assert math.isclose(end, expected_end, rel_tol=1e-9), (name, end, expected_end)

    per_event_us = {name: statistics.median(w) / events * 1e6 for name, w in walls.items()}
    print(
        f"{args.tasks} tasks x {args.sleeps} sleeps = {events} timed events, "
        f"median of {args.repeat} runs; every variant ends at t={expected_end:.6f}"
    )
    for name, us in per_event_us.items():
        print(f"  {name:28s} {us:7.2f} µs/event")
    ours = per_event_us["VirtualClock + clock.sleep"]
    ours_trio = per_event_us["VirtualClock + trio.sleep"]
    mock = per_event_us["MockClock(0) + trio.sleep"]
    what = "per timed event"
    print(compare(mock / ours, "VirtualClock", "MockClock(autojump_threshold=0)", what))
    print(
        compare(
            mock / ours_trio, "trio.sleep on VirtualClock", "MockClock(autojump_threshold=0)", what
        )
    )
    print(compare(ours_trio / ours, "clock.sleep", "trio.sleep on the same VirtualClock", what))


if __name__ == "__main__":
    main()
