"""How a request's cost grows with the fleet: the same load per account at each size.

    .venv/bin/python benches/bench_fleet_size.py [--accounts 30,125,500,1000] [--live 10,500]

Two curves, each against its own smallest fleet measured in the same run (the peer):

- **simulated**: CPU per simulated request of ``interview-day`` with its one account group
  grown to N accounts and ``--per-account`` interviews each (the same load per account),
  timed around the run itself (the scenario's loading is not counted);
- **live**: the router's own CPU per request over N accounts whose backend answers at
  once in the same process (no HTTP, no sleep: what is left is routing), ``--concurrency``
  requests in flight.

A flat curve (every ratio near 1x) means choosing a provider does not cost more as the
fleet grows; the target is within 1.3x from 30 to 1,000 accounts. The machine is shared:
each point is the median of ``--repeat`` runs, sizes interleaved.
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable

import attrs
import trio

from actors.backends import BackendReply, Usage
from actors.cache import CacheConfig
from actors.health import HealthConfig
from actors.messages import ChatMessage, ChatRequest
from actors.provider import ProviderSpec
from engine.routing.fleet import Account, RouterConfig, open_fleet
from sims.runner import simulate
from sims.scenario import Scenario, load


def sized(base: Scenario, accounts: int, per_account: int) -> Scenario:
    """``base`` with its one account group grown to ``accounts``, the load with it."""
    group = attrs.evolve(base.accounts[0], count=accounts)
    workload = attrs.evolve(base.workload, interviews=accounts * per_account)
    return attrs.evolve(base, accounts=(group,), workload=workload)


def simulated_cost(scenario: Scenario) -> tuple[float, int]:
    """(CPU seconds of the run, requests it made)."""
    began = time.process_time()
    data = simulate(scenario)
    spent = time.process_time() - began
    return spent, len(data.recorder.arrays()["latency"])


class Instant:
    """A backend that answers at once: the request's cost is the router's own."""

    async def complete(
        self,
        request: ChatRequest,
        request_id: str,
        usage: Usage,
        sink: object = None,
        watch: object = None,
    ) -> BackendReply:
        await trio.lowlevel.checkpoint()
        usage.input_tokens, usage.output_tokens = request.prompt_tokens, 1
        return BackendReply("ok", 1, 0.0)


def live_cost(accounts: int, requests: int, concurrency: int) -> float:
    """CPU seconds per request of the live routing core over ``accounts`` accounts."""
    fleet_accounts = [Account(ProviderSpec(name=f"a{i}"), Instant()) for i in range(accounts)]
    config = RouterConfig(cache=CacheConfig(enabled=False), health=HealthConfig(ping_every=None))
    spent = 0.0

    async def main() -> None:
        nonlocal spent
        async with open_fleet(fleet_accounts, config) as fleet:
            router = fleet.router
            left = iter(range(requests))

            async def client() -> None:
                for i in left:
                    message = ChatMessage("user", f"question {i}")
                    await router.complete(ChatRequest(messages=(message,), max_tokens=16))

            began = time.process_time()
            async with trio.open_nursery() as nursery:
                for _ in range(concurrency):
                    nursery.start_soon(client)
            spent = time.process_time() - began

    trio.run(main)
    return spent / requests


def medians(sizes: list[int], repeat: int, measure: Callable[[int], float]) -> dict[int, float]:
    """The median of ``repeat`` measurements per size, the sizes interleaved."""
    runs: dict[int, list[float]] = {n: [] for n in sizes}
    for _ in range(repeat):
        for n in sizes:
            runs[n].append(measure(n))
    return {n: statistics.median(values) for n, values in runs.items()}


def show(title: str, per_request: dict[int, float], unit: str = "accounts") -> None:
    sizes = sorted(per_request)
    peer = per_request[sizes[0]]
    print(title)
    print(f"  {unit:>8}  µs/request  vs {sizes[0]} {unit}")
    for n in sizes:
        print(f"  {n:>8}  {per_request[n] * 1e6:10.1f}  {per_request[n] / peer:6.2f}x")
    growth = per_request[sizes[-1]] / peer
    print(f"  {sizes[-1]} / {sizes[0]} {unit}: {growth:.2f}x (target: within 1.3x)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--accounts", default="30,125,500,1000", help="simulated fleet sizes")
    parser.add_argument("--per-account", type=int, default=4, help="interviews per account")
    parser.add_argument("--live", default="10,500", help="live fleet sizes")
    parser.add_argument("--requests", type=int, default=20_000, help="live requests per size")
    parser.add_argument("--concurrency", type=int, default=64)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    sizes = [int(n) for n in args.accounts.split(",")]
    base, _ = load("interview-day", [])
    requests: dict[int, int] = {}

    def simulated(n: int) -> float:
        spent, made = simulated_cost(sized(base, n, args.per_account))
        requests[n] = made
        return spent / made

    per_request = medians(sizes, args.repeat, simulated)
    show(
        f"simulated: interview-day, {args.per_account} interviews per account, "
        f"median of {args.repeat} (requests: " + ", ".join(f"{requests[n]:,}" for n in sizes) + ")",
        per_request,
    )
    live_sizes = [int(n) for n in args.live.split(",")]
    live = medians(live_sizes, args.repeat, lambda n: live_cost(n, args.requests, args.concurrency))
    print()
    show(
        f"live: the routing core's own CPU, {args.requests:,} requests, {args.concurrency} "
        f"in flight, an instant in-process backend, median of {args.repeat}",
        live,
    )


if __name__ == "__main__":
    main()
