"""What sharing state in Redis costs a routed request, against the in-memory store.

One trio process runs three live routers (``engine.open_router``) side by side
over the same upstream, a ``callboard mock-provider`` subprocess on loopback
(no rate limit, at a speed that makes its answers instant):

- ``local``: no shared state (the default of ``callboard serve``);
- ``memory``: the shared-state wiring over a :class:`engine.serve.state.MemoryStore`;
- ``redis``: the same wiring over a real ``redis-server`` (started here, on a
  free loopback port, no persistence), through coredis.

The one account has a rate limit, so every request takes its token from the
shared bucket (one Lua script call in Redis) before its upstream call; the
cache is off, so no request is answered without that call. A round runs
``--n`` sequential requests through each router in a rotating order and
records each request's latency (``time.perf_counter``) and each batch's CPU
(``time.process_time``, this process only: Redis' own CPU is not counted).
Medians over ``--rounds`` rounds are printed, with the ratio redis / memory
per round and its median, and the median latency of the shared-limit script
call alone (what the Redis store adds to each request at the least).
"""

from __future__ import annotations

import argparse
import contextlib
import os
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import trio

import engine
from engine.serve.live_config import structure_config
from engine.serve.state import MemoryStore
from engine.serve.state.store import Charge

MESSAGES = [{"role": "user", "content": "Say hello in two words."}]
VARIANTS = ("local", "memory", "redis")


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@contextlib.contextmanager
def redis_server() -> Iterator[str]:
    binary = shutil.which("redis-server")
    if binary is None:
        sys.exit("bench_redis: redis-server is not on PATH (apt-get install redis-server)")
    port = _free_port()
    args = ["--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"]
    process = subprocess.Popen([binary, *args], stdout=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 10
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
                break
            except OSError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.01)
        yield f"redis://127.0.0.1:{port}/0"
    finally:
        process.kill()
        process.wait()


@contextlib.contextmanager
def mock_provider() -> Iterator[str]:
    """``callboard mock-provider`` without limits, at a speed that makes every answer instant."""
    command = Path(sys.executable).parent / "callboard"
    process = subprocess.Popen(
        # "slow" is the built-in profile without a rate limit; 100,000x faster it is instant.
        [str(command), "mock-provider", "--port", "0", "--profile", "slow", "--speed", "100000"],
        stderr=subprocess.PIPE,
        stdout=subprocess.DEVNULL,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    try:
        assert process.stderr is not None
        for line in process.stderr:
            text = line.decode(errors="replace")
            if text.startswith("listening on "):
                yield text.split()[-1]
                break
        else:
            raise RuntimeError("mock-provider did not start")
    finally:
        process.send_signal(signal.SIGINT)
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()


def _config(upstream: str, redis: str | None):
    raw = {
        "providers": [
            {
                "name": "m",
                "base_url": f"{upstream}/v1",
                "limits": [{"name": "rpm", "unit": "requests", "limit": 1e9, "per": 60}],
            }
        ],
        "cache": {"enabled": False},
        "health": {"ping_every": None},
        "retry": {"deadline": 30},
        "timeouts": {"first_byte": 10},
        # A generous timeout: a call slowed by this busy machine must not trip the store
        # into its local fallback, which would skip the very call being measured.
        "state": {"redis": redis, "timeout": 2.0} if redis else {},
    }
    return structure_config(raw, "bench")


@contextlib.asynccontextmanager
async def routers(upstream: str, redis: str) -> AsyncIterator[dict[str, engine.LiveRouter]]:
    async with (
        engine.open_router(_config(upstream, None)) as local,
        engine.open_router(_config(upstream, None), state=MemoryStore()) as memory,
        engine.open_router(_config(upstream, redis)) as shared,
    ):
        yield {"local": local, "memory": memory, "redis": shared}


async def batch(router: engine.LiveRouter, n: int) -> tuple[float, float]:
    """(median latency s, CPU s per request) of ``n`` sequential requests."""
    latencies = []
    cpu = time.process_time()
    for _ in range(n):
        start = time.perf_counter()
        await router.complete(MESSAGES, max_tokens=4)
        latencies.append(time.perf_counter() - start)
    return statistics.median(latencies), (time.process_time() - cpu) / n


async def take_latency(router: engine.LiveRouter, n: int) -> float:
    """Median latency of the shared-limit script call alone, as a request makes it."""
    assert router.state is not None
    guard = router.state.guard
    spec = router.config.providers[0].limits[0]
    charges = [Charge("bench/rpm", spec, 1.0)]
    latencies = []
    for _ in range(n):
        start = time.perf_counter()
        await guard.call("take", guard.store.take, charges)
        latencies.append(time.perf_counter() - start)
    return statistics.median(latencies)


async def main(args: argparse.Namespace) -> None:
    with redis_server() as redis, mock_provider() as upstream:
        async with routers(upstream, redis) as by_name:
            assert by_name["redis"].state is not None and by_name["redis"].state.guard.up
            for router in by_name.values():  # warm up connections and code paths
                await batch(router, 50)
            takes = []
            latency = {v: [] for v in VARIANTS}
            cpu = {v: [] for v in VARIANTS}
            for r in range(args.rounds):
                order = VARIANTS[r % 3 :] + VARIANTS[: r % 3]
                for variant in order:
                    median, per_request = await batch(by_name[variant], args.n)
                    latency[variant].append(median)
                    cpu[variant].append(per_request)
                takes.append(await take_latency(by_name["redis"], args.n))
            guard = by_name["redis"].state.guard
            assert guard.up and not guard.failures, guard.status()
    print(f"{args.rounds} rounds x {args.n} sequential requests per router, medians over rounds")
    print(f"{'store':<8} {'latency p50 (us)':>17} {'CPU/request (us)':>17}")
    for variant in VARIANTS:
        lat = statistics.median(latency[variant]) * 1e6
        per = statistics.median(cpu[variant]) * 1e6
        print(f"{variant:<8} {lat:>17.0f} {per:>17.0f}")
    ratios = [r / m for r, m in zip(latency["redis"], latency["memory"], strict=True)]
    cpu_ratios = [r / m for r, m in zip(cpu["redis"], cpu["memory"], strict=True)]
    added = [(r - m) * 1e6 for r, m in zip(latency["redis"], latency["memory"], strict=True)]
    print(
        f"redis / memory: latency {statistics.median(ratios):.2f}x "
        f"(rounds {min(ratios):.2f}-{max(ratios):.2f}), +{statistics.median(added):.0f} us "
        f"a request; CPU {statistics.median(cpu_ratios):.2f}x"
    )
    take = statistics.median(takes) * 1e6
    print(f"the shared-limit script call alone (one Redis round trip): {take:.0f} us")
    mem = [m / loc for m, loc in zip(latency["memory"], latency["local"], strict=True)]
    print(f"memory / local (the wiring itself): latency {statistics.median(mem):.2f}x")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--n", type=int, default=100, help="requests per batch")
    parser.add_argument("--rounds", type=int, default=21)
    trio.run(main, parser.parse_args())
