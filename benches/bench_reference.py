"""The ``reference`` scenario beside a SimPy model of the same system, in one run.

The model (sims/scenarios/reference.toml): N interviews start at uniform times in
[0, 60) s; each plays 17 turns, with an exponential think time of mean 30 s before
each; requests go to 4 servers in global round-robin order; each server has 64
slots and a FIFO queue; service time is lognormal (mu 0, sigma 0.5) s.

callboard runs it through its whole routing core (router, provider actors,
breakers, health monitor, recorder) on the virtual clock; SimPy runs the bare
model. A third model, the same bare model as plain trio tasks on callboard's
virtual clock (no router, no actors), shows what trio's scheduler alone costs:
the floor of any trio simulation of this model. All three are timed on the
simulation alone (no start-up, no reports), repeated and interleaved on this
noisy machine, and the medians compared (``--cpu`` times them by process CPU
time, which other work on the machine disturbs less). The latency distributions
must agree: they are simulations of one model, with different random draws.
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable

import numpy as np
import simpy
import trio

from actors.runtime import clock
from actors.slots import Slots
from sims.runner import simulate
from sims.scenario import load

TURNS = 17
SERVERS = 4
SLOTS = 64


def simpy_reference(
    interviews: int, seed: int, timer: Callable[[], float] = time.perf_counter
) -> tuple[float, np.ndarray]:
    """(seconds by ``timer``, request latencies) of the SimPy model."""
    rng = np.random.default_rng(seed)
    env = simpy.Environment()
    servers = [simpy.Resource(env, capacity=SLOTS) for _ in range(SERVERS)]
    turn = [0]
    latencies: list[float] = []

    def interview() -> simpy.events.ProcessGenerator:
        yield env.timeout(rng.uniform(0.0, 60.0))
        for _ in range(TURNS):
            yield env.timeout(rng.exponential(30.0))
            server = servers[turn[0] % SERVERS]
            turn[0] += 1
            asked = env.now
            with server.request() as slot:
                yield slot
                yield env.timeout(rng.lognormal(0.0, 0.5))
            latencies.append(env.now - asked)

    for _ in range(interviews):
        env.process(interview())
    start = timer()
    env.run()
    return timer() - start, np.asarray(latencies)


def trio_floor(
    interviews: int, seed: int, timer: Callable[[], float] = time.perf_counter
) -> tuple[float, np.ndarray]:
    """(seconds by ``timer``, request latencies) of the bare model as trio tasks."""
    rng = np.random.default_rng(seed)
    servers = [Slots(SLOTS, queue_limit=interviews) for _ in range(SERVERS)]
    turn = [0]
    latencies: list[float] = []

    async def interview() -> None:
        await clock.sleep_until(rng.uniform(0.0, 60.0))
        for _ in range(TURNS):
            await clock.sleep(rng.exponential(30.0))
            server = servers[turn[0] % SERVERS]
            turn[0] += 1
            asked = clock.now()
            await server.acquire()
            try:
                await clock.sleep(rng.lognormal(0.0, 0.5))
            finally:
                server.release()
            latencies.append(clock.now() - asked)

    async def main() -> None:
        async with trio.open_nursery() as nursery:
            for _ in range(interviews):
                nursery.start_soon(interview)

    start = timer()
    clock.run_virtual(main, scheduling_seed=seed)
    return timer() - start, np.asarray(latencies)


def callboard_reference(
    interviews: int, seed: int, timer: Callable[[], float] = time.perf_counter
) -> tuple[float, np.ndarray]:
    """(seconds by ``timer``, request latencies) of callboard's ``reference`` run."""
    scenario, _ = load("reference", [f"workload.interviews={interviews}"], seed=seed)
    start = timer()
    data = simulate(scenario)
    spent = timer() - start
    arrays = data.recorder.arrays()
    assert (arrays["outcome"] == 0).all(), "the reference model has no failures"
    return (data.wall_s if timer is time.perf_counter else spent), arrays["latency"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--interviews", type=int, default=2000)
    parser.add_argument("--repeat", type=int, default=5, help="interleaved runs of each")
    parser.add_argument(
        "--cpu",
        action="store_true",
        help="time by this process's CPU time instead of the wall clock (steadier when "
        "other work shares the machine)",
    )
    args = parser.parse_args()
    timer = time.process_time if args.cpu else time.perf_counter
    what = "CPU" if args.cpu else "wall"
    ours: list[float] = []
    theirs: list[float] = []
    floor: list[float] = []
    our_latency = their_latency = floor_latency = np.empty(0)
    for i in range(args.repeat):
        spent, their_latency = simpy_reference(args.interviews, seed=i + 1, timer=timer)
        theirs.append(spent)
        spent, floor_latency = trio_floor(args.interviews, seed=i + 1, timer=timer)
        floor.append(spent)
        spent, our_latency = callboard_reference(args.interviews, seed=i + 1, timer=timer)
        ours.append(spent)
    simpy_s = statistics.median(theirs)
    ratio = statistics.median(ours) / simpy_s
    # Each run's ratio against the SimPy run of the same round: the spread a noisy machine gives.
    pairs = sorted(o / t for o, t in zip(ours, theirs, strict=True))
    requests = args.interviews * TURNS
    print(
        f"reference model, {args.interviews} interviews x {TURNS} turns = {requests} requests, "
        f"median of {args.repeat} interleaved runs"
    )
    print(
        f"  {what} time: callboard {statistics.median(ours):.3f} s, "
        f"bare trio {statistics.median(floor):.3f} s, SimPy {simpy_s:.3f} s"
    )
    print(
        f"  callboard / SimPy {what} time: {ratio:.2f}x "
        f"(run by run: {pairs[0]:.2f}x .. {pairs[-1]:.2f}x)"
    )
    print(f"  bare trio / SimPy {what} time: {statistics.median(floor) / simpy_s:.2f}x")
    # The design target (docs/performance.md): callboard within 2x of the bare-trio floor.
    floor_pairs = sorted(o / f for o, f in zip(ours, floor, strict=True))
    print(
        f"  callboard / bare trio {what} time: "
        f"{statistics.median(ours) / statistics.median(floor):.2f}x "
        f"(run by run: {floor_pairs[0]:.2f}x .. {floor_pairs[-1]:.2f}x; target: at most 2x)"
    )
    print(
        f"  per request: callboard {statistics.median(ours) / requests * 1e6:.1f} µs, "
        f"bare trio {statistics.median(floor) / requests * 1e6:.1f} µs, "
        f"SimPy {simpy_s / requests * 1e6:.1f} µs"
    )
    print("  latency (s)        p50     p95     p99    mean")
    for name, values in (
        ("callboard", our_latency),
        ("bare trio", floor_latency),
        ("SimPy", their_latency),
    ):
        p50, p95, p99 = np.percentile(values, (50, 95, 99))
        print(f"  {name:<12} {p50:7.3f} {p95:7.3f} {p99:7.3f} {values.mean():7.3f}")


if __name__ == "__main__":
    main()
