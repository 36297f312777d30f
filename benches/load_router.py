"""Load test over loopback: the live router's held load, latency, shedding and memory.

Starts ``--mocks`` ``callboard mock-provider --profile unlimited`` processes and, per
run, 1 or 2 ``callboard serve`` processes over them (each router gives every mock
``--slots`` concurrent calls and no queue, so the providers saturate before the CPU
does), then drives them open-loop from this process (httpx on trio, requests spread
round-robin over the routers) in two phases of ``--seconds`` each:

- nominal: ``--rate`` requests/s per router, under the providers' capacity;
- overload: ``--overload`` times that, far beyond it, where the routers must shed
  with 503 and Retry-After rather than let anyone wait past ``--deadline``.

Per phase it prints offered and answered requests/s, latency p50/p95/p99 of the
answered ones, the slowest response of any kind, refusals by code (and whether every
503 had a Retry-After), and the routers' peak RSS. Runs with 1 and 2 routers are
interleaved ``--repeats`` times (this machine is shared and noisy) and the medians
printed, with the 2-router figures as ratios of the 1-router ones. Everything is
bounded: at most rate x overload x seconds requests per phase, clients time out at
the deadline plus 5 s, every process is stopped at the end.

    .venv/bin/python benches/load_router.py              # ~2 minutes
    .venv/bin/python benches/load_router.py --repeats 1 --seconds 4   # a quick look
"""

from __future__ import annotations

import argparse
import collections
import os
import re
import selectors
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx
import trio

ROOT = Path(__file__).resolve().parents[1]
BODY = {"messages": [{"role": "user", "content": "Tell me about yourself."}], "max_tokens": 8}


def start(*argv: str) -> tuple[subprocess.Popen, str]:
    """A callboard command as a process; returns it and the URL it announces."""
    process = subprocess.Popen(
        [sys.executable, "-m", "engine.cli.main", *argv],
        cwd=ROOT,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    selector = selectors.DefaultSelector()
    selector.register(process.stderr, selectors.EVENT_READ)
    seen, deadline = b"", time.monotonic() + 30
    while time.monotonic() < deadline and process.poll() is None:
        if selector.select(timeout=1):
            seen += os.read(process.stderr.fileno(), 65536)
            found = re.search(rb"listening on (\S+)", seen)
            if found:
                # Keep reading its stderr in the background so the pipe never fills.
                subprocess.Popen(["cat"], stdin=process.stderr, stdout=subprocess.DEVNULL)
                return process, found[1].decode()
    process.kill()
    raise SystemExit(f"{argv[0]} did not start: {seen.decode(errors='replace')}")


def stop(process: subprocess.Popen) -> None:
    process.send_signal(signal.SIGTERM)
    try:
        process.wait(timeout=20)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


def rss_mib(pid: int, field: str = "VmRSS") -> float:
    text = Path(f"/proc/{pid}/status").read_text()
    return int(re.search(rf"{field}:\s+(\d+) kB", text)[1]) / 1024


def router_config(folder: Path, mocks: list[str], args: argparse.Namespace) -> Path:
    providers = "".join(
        f'[[providers]]\nname = "m{i}"\nbase_url = "{url}/v1"\n'
        f"max_concurrency = {args.slots}\nqueue_limit = 0\n"
        for i, url in enumerate(mocks)
    )
    path = folder / "router.toml"
    path.write_text(
        providers
        + f"[retry]\ndeadline = {args.deadline}\n[timeouts]\nfirst_byte = {args.deadline}\n"
        "[cache]\nenabled = false\n"
        f"[line]\nmax_waiting = {args.max_waiting}\nrate_window = 5\n"
        '[server]\nlog_file = ""\nlog_level = "WARNING"\n'
    )
    return path


async def phase(urls: list[str], rate: float, seconds: float, deadline: float) -> dict:
    """Open-loop load: ``rate`` requests/s in all, spread over ``urls``, for ``seconds``."""
    answered: list[float] = []
    finished: list[float] = []  # when each answer came
    lags: list[float] = []  # how late this generator sent each request (its own CPU)
    slowest = 0.0
    codes: collections.Counter[str] = collections.Counter()
    missing_retry_after = 0
    limits = httpx.Limits(max_connections=None, max_keepalive_connections=2000)

    async with httpx.AsyncClient(timeout=deadline + 5, limits=limits) as http:

        async def one(url: str, due: float) -> None:
            nonlocal slowest, missing_retry_after
            lags.append(trio.current_time() - due)
            start = time.perf_counter()
            try:
                response = await http.post(f"{url}/v1/chat/completions", json=BODY)
            except httpx.HTTPError as exc:
                codes[f"client {type(exc).__name__}"] += 1
                return
            took = time.perf_counter() - start
            slowest = max(slowest, took)
            if response.status_code == 200:
                answered.append(took)
                finished.append(trio.current_time())
                return
            codes[f"{response.status_code} {response.json()['error']['code']}"] += 1
            if response.status_code == 503 and "retry-after" not in response.headers:
                missing_retry_after += 1

        begin = trio.current_time()
        total = int(rate * seconds)
        async with trio.open_nursery() as nursery:
            for i in range(total):
                await trio.sleep_until(begin + i / rate)
                nursery.start_soon(one, urls[i % len(urls)], begin + i / rate)
    quantiles = statistics.quantiles(answered, n=100) if len(answered) >= 2 else [0.0] * 99
    return {
        "offered_rps": total / seconds,
        # Load held: answers that came while the phase was sending, per second.
        "answered_rps": sum(t <= begin + seconds for t in finished) / seconds,
        "p50": quantiles[49],
        "p95": quantiles[94],
        "p99": quantiles[98],
        "slowest": slowest,
        "refused": sum(n for code, n in codes.items() if code.startswith("503")),
        "codes": dict(codes),
        "missing_retry_after": missing_retry_after,
        "lag_p99": statistics.quantiles(lags, n=100)[98] if len(lags) >= 2 else 0.0,
    }


def run(instances: int, mocks: list[str], args: argparse.Namespace) -> dict[str, dict]:
    with tempfile.TemporaryDirectory() as folder:
        config = router_config(Path(folder), mocks, args)
        routers = [start("serve", str(config), "--port", "0") for _ in range(instances)]
        try:
            urls = [url for _, url in routers]
            peak = [0.0] * instances

            async def main() -> dict[str, dict]:
                async def sample() -> None:
                    while True:
                        for i, (process, _) in enumerate(routers):
                            peak[i] = max(peak[i], rss_mib(process.pid))
                        await trio.sleep(0.25)

                async with trio.open_nursery() as nursery:
                    nursery.start_soon(sample)
                    # Warm up: connections, and the routers' drain-rate estimates.
                    await phase(urls, args.rate * instances / 2, 2.0, args.deadline)
                    out = {}
                    for name, factor in (("nominal", 1.0), ("overload", args.overload)):
                        rate = args.rate * instances * factor
                        out[name] = await phase(urls, rate, args.seconds, args.deadline)
                        out[name]["rss_mib"] = max(peak)
                    nursery.cancel_scope.cancel()
                return out

            return trio.run(main)
        finally:
            for process, _ in routers:
                stop(process)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mocks", type=int, default=2)
    parser.add_argument("--slots", type=int, default=2, help="per mock, per router")
    parser.add_argument("--speed", type=float, default=3.0, help="mock speed (~0.25 s a call)")
    parser.add_argument("--rate", type=float, default=10.0, help="nominal requests/s per router")
    parser.add_argument("--overload", type=float, default=4.0, help="overload x nominal")
    parser.add_argument("--seconds", type=float, default=8.0)
    parser.add_argument("--deadline", type=float, default=5.0)
    parser.add_argument("--max-waiting", type=int, default=64)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()

    mocks = [
        start(
            "mock-provider",
            "--port",
            "0",
            "--profile",
            "unlimited",
            "--speed",
            str(args.speed),
            "--name",
            f"m{i}",
            "--seed",
            str(i),
        )
        for i in range(args.mocks)
    ]
    results: dict[int, list[dict[str, dict]]] = {1: [], 2: []}
    try:
        for repeat in range(args.repeats):
            for instances in (1, 2) if repeat % 2 == 0 else (2, 1):
                results[instances].append(run(instances, [url for _, url in mocks], args))
                print(f"repeat {repeat + 1}, {instances} router(s): done", file=sys.stderr)
    finally:
        for process, _ in mocks:
            stop(process)

    print(
        f"\n{args.mocks} mocks x {args.slots} slots per router, ~0.25 s a call; deadline "
        f"{args.deadline:g} s; median of {args.repeats} interleaved runs; 'lag p99': how late "
        "the generator itself sent requests (large: it, not the router, was short of CPU)\n"
    )
    header = (
        f"{'routers':>7} {'phase':>8} {'offered/s':>9} {'answered/s':>10} {'p50 s':>6} "
        f"{'p95 s':>6} {'p99 s':>6} {'slowest s':>9} {'shed/s':>7} {'RSS MiB':>7} {'lag p99':>7}"
    )
    print(header)
    medians: dict[tuple[int, str], dict[str, float]] = {}
    for instances in (1, 2):
        for name in ("nominal", "overload"):
            runs = [r[name] for r in results[instances]]
            m = {k: statistics.median(r[k] for r in runs) for k in runs[0] if k != "codes"}
            medians[instances, name] = m
            print(
                f"{instances:>7} {name:>8} {m['offered_rps']:>9.0f} {m['answered_rps']:>10.1f} "
                f"{m['p50']:>6.3f} {m['p95']:>6.3f} {m['p99']:>6.3f} {m['slowest']:>9.3f} "
                f"{m['refused'] / args.seconds:>7.1f} {m['rss_mib']:>7.1f} {m['lag_p99']:>7.3f}"
            )
    for instances in (1, 2):
        for name in ("nominal", "overload"):
            codes: collections.Counter[str] = collections.Counter()
            missing = 0
            for r in results[instances]:
                codes.update(r[name]["codes"])
                missing += r[name]["missing_retry_after"]
            print(
                f"{instances} router(s), {name}: refusals {dict(codes) or 'none'}; "
                f"503 without Retry-After: {missing}"
            )
    for name in ("nominal", "overload"):
        one, two = medians[1, name], medians[2, name]
        print(
            f"2 routers / 1, {name}: answered/s x{two['answered_rps'] / one['answered_rps']:.2f}, "
            f"p99 x{two['p99'] / max(one['p99'], 1e-9):.2f}"
        )


if __name__ == "__main__":
    main()
