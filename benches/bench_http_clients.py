"""CPU per keep-alive POST on trio, HTTP client by HTTP client, in one process, one run.

Why ``actors/backends/http1/`` exists. One upstream process (the instant
OpenAI-style server of ``bench_overhead.py``) answers every POST at once; this
process sends ``--n`` POSTs per client per round with ``--concurrency`` in
flight and parses each JSON reply, for:

- ``httpx.AsyncClient.post`` (what the router used before);
- ``httpcore.AsyncConnectionPool.request`` (httpx's transport, without httpx);
- ``h11`` over trio streams with a minimal pool written here;
- ``actors.backends.http1.HttpClient.request`` (the router's client).

Clients alternate in batches of ``--batch`` within a round, rounds repeat
``--repeat`` times; CPU is ``time.process_time`` per request, the median of
the per-round figures is printed with each client's ratio to ``http1``.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable

import trio

BODY = {"model": "bench", "messages": [{"role": "user", "content": "Hi"}], "max_tokens": 8}
HEADERS = {"authorization": "Bearer sk-bench", "content-type": "application/json"}


def _httpx(url: str):
    import httpx

    client = httpx.AsyncClient(
        timeout=httpx.Timeout(None, connect=10.0),
        limits=httpx.Limits(max_connections=None, max_keepalive_connections=256),
    )

    async def call() -> str:
        response = await client.post(url, json=BODY, headers=HEADERS)
        return response.json()["choices"][0]["message"]["content"]

    return client, call


def _httpcore(url: str):
    import httpcore

    pool = httpcore.AsyncConnectionPool(max_connections=256)

    async def call() -> str:
        response = await pool.request(
            "POST", url, headers=list(HEADERS.items()), content=json.dumps(BODY).encode()
        )
        return json.loads(response.content)["choices"][0]["message"]["content"]

    return pool, call


def _h11(port: int, path: str):
    import h11

    idle: list[tuple[trio.SocketStream, h11.Connection]] = []
    headers = [("host", f"127.0.0.1:{port}"), *HEADERS.items()]

    async def call() -> str:
        if idle:
            stream, conn = idle.pop()
        else:
            stream, conn = await trio.open_tcp_stream("127.0.0.1", port), h11.Connection(h11.CLIENT)
        body = json.dumps(BODY).encode()
        out = conn.send(
            h11.Request(
                method="POST",
                target=path,
                headers=[*headers, ("content-length", str(len(body)))],
            )
        )
        out += conn.send(h11.Data(data=body)) + conn.send(h11.EndOfMessage())
        await stream.send_all(out)
        parts = []
        while True:
            event = conn.next_event()
            if event is h11.NEED_DATA:
                conn.receive_data(await stream.receive_some(65536))
            elif isinstance(event, h11.Data):
                parts.append(event.data)
            elif isinstance(event, h11.EndOfMessage):
                break
        conn.start_next_cycle()
        idle.append((stream, conn))
        return json.loads(b"".join(parts))["choices"][0]["message"]["content"]

    return None, call


def _http1(url: str):
    from actors.backends.http1 import HttpClient

    client = HttpClient()

    async def call() -> str:
        response = await client.request(
            "POST", url, headers=HEADERS, body=json.dumps(BODY).encode()
        )
        return json.loads(response.content)["choices"][0]["message"]["content"]

    return client, call


async def _batch(call: Callable[[], Awaitable[str]], count: int, concurrency: int) -> float:
    left = [count]

    async def worker() -> None:
        while left[0] > 0:
            left[0] -= 1
            assert await call()

    before = time.process_time()
    async with trio.open_nursery() as nursery:
        for _ in range(concurrency):
            nursery.start_soon(worker)
    await trio.sleep(0.02)  # let trailing work land in this batch
    return (time.process_time() - before) / count


async def _main(args: argparse.Namespace, port: int) -> None:
    url = f"http://127.0.0.1:{port}/v1/chat/completions"
    clients = {
        "httpx": _httpx(url),
        "httpcore": _httpcore(url),
        "h11 + own pool": _h11(port, "/v1/chat/completions"),
        "http1 (callboard)": _http1(url),
    }
    calls = {name: call for name, (_, call) in clients.items()}
    for call in calls.values():
        await _batch(call, args.batch, args.concurrency)  # warm up
    rounds: dict[str, list[float]] = {name: [] for name in calls}
    for r in range(args.repeat):
        names = list(calls) if r % 2 == 0 else list(calls)[::-1]
        sums = dict.fromkeys(names, 0.0)
        for _ in range(max(1, args.n // args.batch)):
            for name in names:
                sums[name] += await _batch(calls[name], args.batch, args.concurrency)
        for name in names:
            rounds[name].append(sums[name] / max(1, args.n // args.batch))
    ours = statistics.median(rounds["http1 (callboard)"])
    print(
        f"CPU per keep-alive POST + JSON reply on trio, {args.concurrency} in flight, "
        f"median of {args.repeat} rounds of {args.n}\n"
    )
    print(f"  {'client':<20} {'CPU/request':>12} {'range':>18} {'vs http1':>9}")
    for name, values in rounds.items():
        med = statistics.median(values)
        spread = f"[{min(values) * 1e6:,.0f} .. {max(values) * 1e6:,.0f}]"
        print(f"  {name:<20} {med * 1e6:9,.0f} µs {spread:>18} {med / ours:8.1f}x")
    for owner, _ in clients.values():
        if owner is not None:
            await owner.aclose()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--n", type=int, default=2000, help="requests per client per round")
    parser.add_argument("--batch", type=int, default=250)
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    overhead = os.path.join(os.path.dirname(os.path.abspath(__file__)), "bench_overhead.py")
    upstream = subprocess.Popen(
        [sys.executable, overhead, "--role", "upstream"],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert upstream.stdout is not None
        port = int(upstream.stdout.readline())
        trio.run(_main, args, port)
    finally:
        assert upstream.stdin is not None
        upstream.stdin.close()
        upstream.wait(timeout=10)


if __name__ == "__main__":
    main()
