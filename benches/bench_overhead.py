"""What routing costs per request: callboard against LiteLLM's Router, and against no router.

Part 1, over HTTP on 127.0.0.1. One upstream process answers every
``POST /v1/chat/completions`` at once with a fixed OpenAI-style completion (a
minimal asyncio HTTP/1.1 server with keep-alive, written here: ``callboard
mock-provider`` has no zero-latency setting, and its own per-request work would
only slow both routers down alike). Two long-lived worker processes call it, one
per event loop, each comparing a router with its floor:

- trio worker: ``engine.open_router(config)`` on its default HTTP path (the
  ``httpx.AsyncClient`` of ``engine.serve.live_router.client_for``), with one
  provider at the upstream, cache off, no health pings, generous timeouts,
  ``await router.complete(messages)``; its floor is another client made by
  ``client_for`` from the same config, called directly (``client.post`` +
  ``response.json()``);
- asyncio worker: the same httpx floor on asyncio, and ``litellm.Router`` with one
  deployment ``openai/bench`` at ``api_base`` = the upstream, otherwise its
  defaults, ``await router.acompletion(...)`` (LiteLLM's OpenAI path is the
  ``openai`` SDK on httpx, with aiohttp as httpx's transport).

A round is ``--n`` requests of each kind with ``--concurrency`` in flight, the
router and its floor alternating in batches of ``--batch`` so both see the same
machine (this one is shared and noisy). Per kind a worker sums its batches' wall
time and CPU (``time.process_time``: every thread of the process, read once the
process is idle again, so work trailing the last answer is counted) and takes the
median per-request latency. Workers warm up first; rounds are interleaved
between the workers. The medians over the rounds are printed. A router's added
latency is paired per round with its floor's; its added CPU is the median of the
differences between adjacent batches, which a neighbour's burst barely moves.
The default ``--n`` is 1,000 rather than 2,000 to stay within about two minutes:
LiteLLM's Router spends several ms of CPU per request here.

Part 2, in process: the routing core (``engine.routing.fleet.open_fleet``, one account
whose backend is a zero-latency :class:`VirtualBackend`, no cache, trio's real
clock) against the same backend's ``complete`` called directly, ``--inproc-n``
sequential calls each, timed one by one with ``time.perf_counter_ns`` in
interleaved chunks; the difference of the medians is the router's own overhead.

Part 3, in process: the HTTP surface (``engine.serve.app.RouterApp``, the ASGI app that
``callboard serve`` runs under hypercorn) against the same live router called from Python.
One ``LiveRouter`` (``open_router`` on the config of part 1, its httpx client on an
``httpx.MockTransport`` that answers at once with part 1's completion) serves both:
``POST /v1/chat/completions`` handed to the app as an ASGI call (scope, one body message,
the response collected in memory) against ``live.complete(messages)``, ``--inproc-n``
sequential calls each in interleaved chunks. The difference of the medians is what the
HTTP surface adds per routed request on top of hypercorn (which parses HTTP/1.1 and is the
same for any ASGI app): reading and parsing the body, validating it, routing, caller keys,
the access log line, metrics and the JSON answer (no caller keys are configured: their
middleware passes the request through).

Part 4, in process: what tracing costs. Three live routers as in part 3 (the mock
transport): ``[traces]`` off; spans to an OTLP JSON file (``traces.file``, a temporary
one); spans to an OTLP/HTTP collector (``traces.otlp_endpoint``: part 1's upstream
process, which answers every POST 200). Both traced ones go through the SDK's batch
processor, whose thread encodes and writes. ``--inproc-n`` / 4 sequential
``live.complete`` calls each per chunk, each router first in turn. Each chunk is timed in
process CPU (every thread; the collector's own work is in its process, not counted), the
traced ones through a flush of their spans, so the exporter's work is counted; the
medians over the chunks are printed, and their ratios to tracing off.

Workers refuse any connection outside loopback (they count the attempts), and
LiteLLM reads its bundled model-cost map instead of fetching it.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import socket
import statistics
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable
from typing import Any

import trio

MODEL = "bench"
MESSAGES = [{"role": "user", "content": "Say hello in two words."}]
MAX_TOKENS = 8
ROUND_TIMEOUT_S = 120.0
KINDS = ("direct-trio", "callboard", "direct-asyncio", "litellm")
LABELS = {
    "direct-trio": "httpx direct (trio)",
    "direct-asyncio": "httpx direct (asyncio)",
    "callboard": "callboard open_router",
    "litellm": "LiteLLM Router",
}
FLOOR = {"callboard": "direct-trio", "litellm": "direct-asyncio"}


# --- the upstream: an instant OpenAI-compatible answer --------------------------------------
def _reply_bytes() -> bytes:
    body = json.dumps(
        {
            "id": "chatcmpl-bench",
            "object": "chat.completion",
            "created": 1700000000,
            "model": MODEL,
            "choices": [
                {
                    "index": 0,
                    "message": {"role": "assistant", "content": "Hello there."},
                    "finish_reason": "stop",
                }
            ],
            "usage": {"prompt_tokens": 7, "completion_tokens": 3, "total_tokens": 10},
        }
    ).encode()
    head = (
        "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\n"
        f"content-length: {len(body)}\r\nconnection: keep-alive\r\n\r\n"
    )
    return head.encode() + body


class _Upstream(asyncio.Protocol):
    """HTTP/1.1 with keep-alive: every complete request gets the same 200 at once."""

    reply = _reply_bytes()

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport: Any = transport
        self.buffer = bytearray()

    def data_received(self, data: bytes) -> None:
        buffer = self.buffer
        buffer += data
        while True:
            end = buffer.find(b"\r\n\r\n")
            if end < 0:
                return
            head = bytes(buffer[:end]).lower()
            if b"transfer-encoding:" in head:  # no client here sends chunked bodies
                self.transport.write(b"HTTP/1.1 411 Length Required\r\ncontent-length: 0\r\n\r\n")
                self.transport.close()
                return
            length = 0
            at = head.find(b"\r\ncontent-length:")
            if at >= 0:
                stop = head.find(b"\r\n", at + 2)
                length = int(head[at + 17 : stop if stop >= 0 else len(head)])
            total = end + 4 + length
            if len(buffer) < total:
                return
            del buffer[:total]
            self.transport.write(self.reply)


async def _serve_upstream() -> None:
    loop = asyncio.get_running_loop()
    server = await loop.create_server(_Upstream, "127.0.0.1", 0, backlog=1024)
    port = server.sockets[0].getsockname()[1]
    print(port, flush=True)
    # Stop when the parent closes our stdin (or dies).
    await asyncio.to_thread(sys.stdin.read)
    server.close()


# --- loopback only ----------------------------------------------------------------------------
BLOCKED: list[str] = []
PROTOCOL: Any = sys.stdout  # a worker's answers to the orchestrator


def _loopback_only() -> None:
    """Refuse connections that leave the machine; the attempts are counted and reported."""
    original = socket.socket.connect
    original_ex = socket.socket.connect_ex

    def allowed(address: Any) -> bool:
        if isinstance(address, tuple) and address and isinstance(address[0], str):
            return address[0].startswith("127.") or address[0] in ("::1", "localhost")
        return True  # unix sockets

    def connect(sock: socket.socket, address: Any) -> None:
        if not allowed(address):
            BLOCKED.append(str(address[0]))
            raise ConnectionRefusedError(f"bench_overhead: {address[0]} is not loopback")
        return original(sock, address)

    def connect_ex(sock: socket.socket, address: Any) -> int:
        if not allowed(address):
            BLOCKED.append(str(address[0]))
            return 111  # ECONNREFUSED
        return original_ex(sock, address)

    socket.socket.connect = connect  # type: ignore[method-assign]
    socket.socket.connect_ex = connect_ex  # type: ignore[method-assign]


# --- measured rounds, for either event loop -------------------------------------------------
Call = Callable[[], Awaitable[str]]
Sleep = Callable[[float], Awaitable[None]]
RunClients = Callable[[Callable[[], Awaitable[None]], int], Awaitable[None]]


async def _settle(sleep: Sleep) -> None:
    """Wait until the process is idle, so that work trailing a batch is counted to it."""
    for _ in range(50):
        before = time.process_time()
        await sleep(0.01)
        if time.process_time() - before < 0.001:
            return


async def _round(
    calls: dict[str, Call],
    n: int,
    concurrency: int,
    batch: int,
    flip: bool,
    sleep: Sleep,
    run_clients: RunClients,
) -> dict[str, dict[str, Any]]:
    """``n`` calls of each kind, in alternating batches of ``batch``, ``concurrency`` in flight.

    Alternating small batches in one process makes the floor and the router share the
    machine's state of the moment, so their difference survives a noisy neighbour.
    """
    kinds = list(calls)[::-1] if flip else list(calls)
    latencies: dict[str, list[int]] = {k: [] for k in kinds}
    cpu = dict.fromkeys(kinds, 0.0)
    batch_cpu: dict[str, list[float]] = {k: [] for k in kinds}  # per request, batch by batch
    wall = dict.fromkeys(kinds, 0.0)
    done = dict.fromkeys(kinds, 0)
    await _settle(sleep)
    while any(done[k] < n for k in kinds):
        for kind in kinds:
            count = min(batch, n - done[kind])
            if count <= 0:
                continue
            left = [count]
            out = latencies[kind]
            call = calls[kind]

            async def client(left: list[int] = left, out: list[int] = out, call: Call = call):
                clock = time.perf_counter_ns
                while left[0] > 0:
                    left[0] -= 1
                    start = clock()
                    text = await call()
                    out.append(clock() - start)
                    assert text, "empty answer"

            cpu0, wall0 = time.process_time(), time.perf_counter()
            await run_clients(client, min(concurrency, count))
            wall[kind] += time.perf_counter() - wall0
            await _settle(sleep)
            spent = time.process_time() - cpu0
            cpu[kind] += spent
            batch_cpu[kind].append(spent / count)
            done[kind] += count
    summary = {}
    for kind in kinds:
        ordered = sorted(latencies[kind])
        summary[kind] = {
            "n": n,
            "wall_s": wall[kind],
            "cpu_per_req_s": cpu[kind] / n,
            "batch_cpu_s": batch_cpu[kind],
            "lat_p50_s": ordered[len(ordered) // 2] / 1e9,
            "lat_p99_s": ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))] / 1e9,
            "blocked": len(BLOCKED),
        }
    return summary


async def _trio_clients(client: Callable[[], Awaitable[None]], count: int) -> None:
    async with trio.open_nursery() as nursery:
        for _ in range(count):
            nursery.start_soon(client)


async def _asyncio_clients(client: Callable[[], Awaitable[None]], count: int) -> None:
    async with asyncio.TaskGroup() as group:
        for _ in range(count):
            group.create_task(client())


# The one chat request every direct call sends (the routers build theirs from MESSAGES).
_CHAT_BODY = {
    "model": MODEL,
    "messages": MESSAGES,
    "temperature": 1.0,
    "stream": False,
    "max_tokens": MAX_TOKENS,
}


def _direct_call(client: Any, port: int) -> Call:
    url = f"http://127.0.0.1:{port}/v1/chat/completions"

    async def call() -> str:
        response = await client.post(url, json=_CHAT_BODY)
        response.raise_for_status()
        return response.json()["choices"][0]["message"]["content"]

    return call


async def _serve_rounds(
    args: argparse.Namespace,
    calls: dict[str, Call],
    sleep: Sleep,
    run_clients: RunClients,
    read_line: Callable[[], Awaitable[str]],
) -> None:
    """Warm up, then one JSON line per ``run FLIP`` line on stdin, until EOF."""

    def round_(n: int, flip: bool) -> Awaitable[dict[str, dict[str, Any]]]:
        return _round(calls, n, args.concurrency, args.batch, flip, sleep, run_clients)

    await round_(args.warmup, False)
    print(json.dumps({"ready": True}), file=PROTOCOL, flush=True)
    while (line := (await read_line()).split())[:1] == ["run"]:
        print(json.dumps(await round_(args.n, line[1] == "1")), file=PROTOCOL, flush=True)


def _config(port: int, concurrency: int) -> Any:
    """The router's config; its default HTTP client (``client_for``) is every floor's too."""
    from actors.cache import CacheConfig
    from actors.health import HealthConfig
    from actors.timeouts import Timeouts
    from engine.routing.retry import RetryConfig
    from engine.serve.live_config import LiveConfig, ProviderConfig

    return LiveConfig(
        providers=(
            ProviderConfig(
                name="upstream",
                base_url=f"http://127.0.0.1:{port}/v1",
                model=MODEL,
                max_concurrency=max(64, concurrency),
                queue_limit=max(256, concurrency),
            ),
        ),
        cache=CacheConfig(enabled=False),
        health=HealthConfig(ping_every=None),  # no pings mixed into the measured traffic
        retry=RetryConfig(deadline=300.0),
        timeouts=Timeouts(first_byte=60.0),
    )


async def _trio_worker(args: argparse.Namespace) -> None:
    import engine
    from engine.serve.live_router import client_for

    config = _config(args.port, args.concurrency)
    # The router opens its default client; the floor is another one made the same way.
    async with client_for(config) as floor, engine.open_router(config) as router:

        async def routed() -> str:
            answer = await router.complete(MESSAGES, max_tokens=MAX_TOKENS)
            return answer.content

        async def read_line() -> str:
            return await trio.to_thread.run_sync(sys.stdin.readline)

        calls = {"direct-trio": _direct_call(floor, args.port), "callboard": routed}
        with trio.fail_after(ROUND_TIMEOUT_S * (args.repeat + 1)):
            await _serve_rounds(args, calls, trio.sleep, _trio_clients, read_line)


async def _asyncio_worker(args: argparse.Namespace) -> None:
    os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")  # no fetch from GitHub
    import litellm

    router = litellm.Router(
        model_list=[
            {
                "model_name": MODEL,
                "litellm_params": {
                    "model": f"openai/{MODEL}",
                    "api_base": f"http://127.0.0.1:{args.port}/v1",
                    "api_key": "unused",
                },
            }
        ]
    )

    async def routed() -> str:
        response = await router.acompletion(model=MODEL, messages=MESSAGES, max_tokens=MAX_TOKENS)
        return response.choices[0].message.content

    async def read_line() -> str:
        return await asyncio.to_thread(sys.stdin.readline)

    from engine.serve.live_router import client_for

    async with client_for(_config(args.port, args.concurrency)) as client:
        calls = {"direct-asyncio": _direct_call(client, args.port), "litellm": routed}
        async with asyncio.timeout(ROUND_TIMEOUT_S * (args.repeat + 1)):
            await _serve_rounds(args, calls, asyncio.sleep, _asyncio_clients, read_line)


# --- the orchestrator -----------------------------------------------------------------------
def _spawn(args: list[str]) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, os.path.abspath(__file__), *args],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
        bufsize=1,
    )


def _read_json(process: subprocess.Popen[str], what: str) -> dict[str, Any]:
    assert process.stdout is not None
    line = process.stdout.readline()
    if not line:
        raise SystemExit(f"bench_overhead: the {what} worker exited (code {process.wait()})")
    return json.loads(line)


def _run_http(args: argparse.Namespace) -> dict[str, list[dict[str, Any]]]:
    """Start the upstream and the two workers, run the interleaved rounds, stop them all."""
    rounds: dict[str, list[dict[str, Any]]] = {kind: [] for kind in KINDS}
    children: list[subprocess.Popen[str]] = []
    try:
        upstream = _spawn(["--role", "upstream"])
        children.append(upstream)
        assert upstream.stdout is not None
        port = int(upstream.stdout.readline())
        workers: dict[str, subprocess.Popen[str]] = {}
        for loop in ("trio", "asyncio"):
            options = ["--role", f"{loop}-worker", "--port", str(port)]
            for name in ("n", "concurrency", "repeat", "warmup", "batch"):
                options += [f"--{name}", str(getattr(args, name))]
            workers[loop] = _spawn(options)
            children.append(workers[loop])
        for loop, worker in workers.items():
            _read_json(worker, loop)  # started and warmed up
        began = time.monotonic()
        for repeat in range(args.repeat):
            if repeat and time.monotonic() - began > args.budget:
                print(f"(stopped after {repeat} rounds: --budget {args.budget:g} s reached)\n")
                break
            order = ("trio", "asyncio") if repeat % 2 == 0 else ("asyncio", "trio")
            for loop in order:
                worker = workers[loop]
                assert worker.stdin is not None
                worker.stdin.write(f"run {repeat // 2 % 2}\n")
                worker.stdin.flush()
                for kind, summary in _read_json(worker, loop).items():
                    rounds[kind].append(summary)
    finally:
        for child in children:
            if child.stdin is not None:
                child.stdin.close()  # EOF: the child stops by itself
        for child in children:
            try:
                child.wait(timeout=10)
            except subprocess.TimeoutExpired:
                child.kill()
                child.wait()
    return rounds


def _paired(router: list[dict], floor: list[dict], key: str) -> list[float]:
    """Per round, the router's figure minus its floor's, measured in the same process."""
    return [a[key] - b[key] for a, b in zip(router, floor, strict=True)]


def _paired_batches(router: list[dict], floor: list[dict]) -> list[list[float]]:
    """Per round, the router's CPU per request minus its floor's, batch by adjacent batch."""
    return [
        [x - y for x, y in zip(a["batch_cpu_s"], b["batch_cpu_s"], strict=True)]
        for a, b in zip(router, floor, strict=True)
    ]


def http_part(args: argparse.Namespace) -> None:
    rounds = _run_http(args)
    done = len(rounds["callboard"])
    print(
        "Part 1: routed requests over HTTP on 127.0.0.1, one instant upstream (own process)\n"
        f"  {args.n} requests per kind per round, {args.concurrency} in flight; router and floor "
        f"alternate in batches of {args.batch}\n  in one process per event loop; medians of "
        f"{done} interleaved rounds; 'added' is paired with the floor beside it\n"
    )
    print(
        f"  {'':24} {'req/s':>6} {'p50 latency':>12} {'added p50':>10} "
        f"{'CPU/request':>12} {'added CPU':>10}"
    )
    med = statistics.median
    cpu = {k: med(r["cpu_per_req_s"] for r in rounds[k]) for k in KINDS}
    net: dict[str, float] = {}
    net_rounds: dict[str, list[float]] = {}
    for kind in KINDS:
        rs = rounds[kind]
        rate = med(r["n"] / r["wall_s"] for r in rs)
        lat = med(r["lat_p50_s"] for r in rs)
        added = extra = ""
        if kind in FLOOR:
            added = f"+{med(_paired(rs, rounds[FLOOR[kind]], 'lat_p50_s')) * 1e6:,.0f} µs"
            # Median of adjacent-batch differences: robust to a neighbour's burst.
            batches = _paired_batches(rs, rounds[FLOOR[kind]])
            net[kind] = med(d for diffs in batches for d in diffs)
            net_rounds[kind] = [med(diffs) for diffs in batches]
            extra = f"+{net[kind] * 1e6:,.0f} µs"
        print(
            f"  {LABELS[kind]:<24} {rate:6,.0f} {lat * 1e6:9,.0f} µs {added:>10} "
            f"{cpu[kind] * 1e6:9,.0f} µs {extra:>10}"
        )

    def spread(values: list[float]) -> str:
        return f"[{min(values) * 1e6:,.0f} .. {max(values) * 1e6:,.0f}]"

    net_cb, net_ll = net["callboard"], net["litellm"]
    gross = cpu["litellm"] / cpu["callboard"]
    gross_each = [
        a["cpu_per_req_s"] / b["cpu_per_req_s"]
        for a, b in zip(rounds["litellm"], rounds["callboard"], strict=True)
    ]
    print()
    print(
        "  added CPU per routed request (net of its HTTP client; median of adjacent-batch\n"
        "  differences, [range of per-round medians]):"
    )
    print(
        f"    callboard {net_cb * 1e6:,.0f} µs {spread(net_rounds['callboard'])} (floor: httpx on "
        "trio, the router's own client settings)"
    )
    print(
        f"    LiteLLM   {net_ll * 1e6:,.0f} µs {spread(net_rounds['litellm'])} (floor: the same "
        "httpx client on asyncio)"
    )
    net_ratio = f"{net_ll / net_cb:.0f}x" if net_cb > 0 else "n/a (callboard at its floor)"
    client_share = cpu["direct-trio"] / cpu["callboard"]
    print(
        f"  LiteLLM / callboard CPU per routed request: {net_ratio} net of each one's HTTP "
        f"client,\n    {gross:.1f}x [{min(gross_each):.1f} .. {max(gross_each):.1f}] all-in; "
        f"httpx is {client_share:.0%} of callboard's all-in CPU"
    )
    blocked = max(r["blocked"] for rs in rounds.values() for r in rs)
    print(f"  connections refused outside loopback: {blocked}\n")


async def _inproc(n: int, repeat: int, warmup: int) -> tuple[list[int], list[int], list[float]]:
    from actors.backends import Usage
    from actors.backends.virtual import ErrorRates, LatencyModel, VirtualBackend
    from actors.cache import CacheConfig
    from actors.faults import FaultSchedule
    from actors.messages import ChatMessage, ChatRequest
    from actors.provider import ProviderSpec
    from actors.runtime.distributions import Constant
    from actors.runtime.randomness import RandomStreams
    from engine.routing.fleet import Account, RouterConfig, open_fleet

    backend = VirtualBackend(
        "virtual",
        LatencyModel(service=Constant(0.0)),
        ErrorRates(),
        FaultSchedule(),
        RandomStreams(0),
    )
    request = ChatRequest(messages=(ChatMessage("user", MESSAGES[0]["content"]),), max_tokens=8)
    config = RouterConfig(cache=CacheConfig(enabled=False))
    async with open_fleet([Account(ProviderSpec(name="virtual"), backend)], config) as fleet:
        router = fleet.router

        async def routed(count: int, out: list[int]) -> None:
            clock = time.perf_counter_ns
            for _ in range(count):
                start = clock()
                await router.complete(request)
                out.append(clock() - start)

        async def direct(count: int, out: list[int]) -> None:
            clock = time.perf_counter_ns
            for i in range(count):
                start = clock()
                await backend.complete(request, f"r-{i:08d}", Usage())
                out.append(clock() - start)

        return await _interleaved(direct, routed, n, repeat, warmup)


def inproc_part(args: argparse.Namespace) -> None:
    floor, ours, chunks = trio.run(_inproc, args.inproc_n, args.repeat, args.inproc_warmup)

    overhead, ratio = _print_pair(
        f"Part 2: the routing core in process, {len(ours)} sequential calls each, zero-latency\n"
        f"  VirtualBackend, no cache, trio's real clock, {len(chunks)} interleaved chunks\n",
        ("VirtualBackend.complete direct", floor),
        ("router.complete (open_fleet)", ours),
    )
    print(
        f"\n  router's own overhead at the median: {overhead:.1f} µs per request "
        f"({ratio:.1f}x the direct call; per chunk {min(chunks) / 1e3:.1f} .. "
        f"{max(chunks) / 1e3:.1f} µs)"
    )
    print(f"  target: at most 100 µs at the median: {'MET' if overhead <= 100 else 'NOT MET'}")


def _asgi_call(app: Any, body: bytes) -> Callable[[], Awaitable[int]]:
    """One ``POST /v1/chat/completions`` through ``app`` in memory; returns the status."""
    headers = [
        (b"host", b"bench"),
        (b"content-type", b"application/json"),
        (b"content-length", str(len(body)).encode()),
    ]

    async def call() -> int:
        scope = {
            "type": "http",
            "asgi": {"version": "3.0", "spec_version": "2.3"},
            "http_version": "1.1",
            "method": "POST",
            "scheme": "http",
            "path": "/v1/chat/completions",
            "raw_path": b"/v1/chat/completions",
            "query_string": b"",
            "root_path": "",
            "headers": headers,
            "client": ("127.0.0.1", 50000),
            "server": ("127.0.0.1", 8000),
        }
        pending = [{"type": "http.request", "body": body, "more_body": False}]
        sent: list[dict[str, Any]] = []

        async def receive() -> dict[str, Any]:
            if pending:
                return pending.pop()
            await trio.sleep_forever()  # the client stays until the answer is sent
            raise AssertionError

        async def send(message: dict[str, Any]) -> None:
            sent.append(message)

        await app(scope, receive, send)
        if sent[0]["status"] != 200:
            raise AssertionError(sent)
        return sent[0]["status"]

    return call


def _instant_upstream() -> Any:
    """An ``httpx.MockTransport`` answering every call at once with part 1's completion."""
    import httpx

    reply = _reply_bytes().split(b"\r\n\r\n", 1)[1]

    class Body(httpx.AsyncByteStream):
        async def __aiter__(self):  # a stream, as a socket's body is (bytes are read at once)
            yield reply

    def upstream(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, stream=Body(), headers={"content-type": "application/json"})

    return httpx.MockTransport(upstream)


async def _app_inproc(n: int, repeat: int, warmup: int) -> tuple[list[int], list[int], list[float]]:
    import httpx

    from engine.serve.app import RouterApp
    from engine.serve.live_router import open_router
    from engine.serve.metrics import LiveMetrics

    config = _config(9, 1)  # port 9 is never dialled: the mock transport answers
    metrics = LiveMetrics()
    body = json.dumps({"model": MODEL, "messages": MESSAGES, "max_tokens": MAX_TOKENS}).encode()
    async with (
        httpx.AsyncClient(transport=_instant_upstream()) as client,
        open_router(config, env={}, http_client=client, recorder=metrics) as live,
    ):
        metrics.attach(live)
        app = RouterApp(live, metrics, max_body_bytes=1 << 20)
        call = _asgi_call(app, body)

        async def served(count: int, out: list[int]) -> None:
            clock = time.perf_counter_ns
            for _ in range(count):
                start = clock()
                status = await call()
                out.append(clock() - start)
                assert status == 200, status

        async def direct(count: int, out: list[int]) -> None:
            clock = time.perf_counter_ns
            for _ in range(count):
                start = clock()
                await live.complete(MESSAGES, max_tokens=MAX_TOKENS)
                out.append(clock() - start)

        return await _interleaved(direct, served, n, repeat, warmup)


Timed = Callable[[int, list[int]], Awaitable[None]]


async def _interleaved(
    floor_calls: Timed, our_calls: Timed, n: int, repeat: int, warmup: int
) -> tuple[list[int], list[int], list[float]]:
    """Per-call times of both, in ``repeat`` chunks that alternate which goes first."""
    await our_calls(warmup, [])
    await floor_calls(warmup, [])
    floor: list[int] = []
    ours: list[int] = []
    chunk_overheads: list[float] = []
    chunk = max(1, n // repeat)
    for r in range(repeat):
        a: list[int] = []
        b: list[int] = []
        if r % 2 == 0:
            await floor_calls(chunk, a)
            await our_calls(chunk, b)
        else:
            await our_calls(chunk, b)
            await floor_calls(chunk, a)
        floor += a
        ours += b
        chunk_overheads.append(statistics.median(b) - statistics.median(a))
    return floor, ours, chunk_overheads


def app_part(args: argparse.Namespace) -> None:
    n = max(1, args.inproc_n // 4)  # a routed call costs ~10x part 2's
    floor, ours, chunks = trio.run(_app_inproc, n, args.repeat, args.inproc_warmup)
    overhead, ratio = _print_pair(
        f"\nPart 3: the HTTP surface in process, {len(ours)} sequential calls each, the live\n"
        f"  router on an instant mock upstream, {len(chunks)} interleaved chunks\n",
        ("live.complete (Python API)", floor),
        ("POST through RouterApp (ASGI)", ours),
    )
    print(
        f"\n  the HTTP surface's own cost at the median: {overhead:.1f} µs per routed request "
        f"({ratio:.2f}x the Python call; per chunk "
        f"{min(chunks) / 1e3:.1f} .. {max(chunks) / 1e3:.1f} µs)\n"
    )


#: Part 4's routers: traces off, to a file, to a collector.
TRACED = ("off", "file", "otlp")


async def _traces_inproc(
    n: int, repeat: int, warmup: int, folder: str, sink_port: int
) -> dict[str, list[float]]:
    """CPU µs per request of a router with traces off, to a file and to a collector."""
    import contextlib

    import attrs
    import httpx

    from engine.serve.live_router import open_router
    from engine.traces.config import TracesConfig

    off = _config(9, 1)  # port 9 is never dialled: the mock transport answers
    configs = {
        "off": off,
        "file": attrs.evolve(off, traces=TracesConfig(file=os.path.join(folder, "t.jsonl"))),
        "otlp": attrs.evolve(
            off, traces=TracesConfig(otlp_endpoint=f"http://127.0.0.1:{sink_port}")
        ),
    }
    cpu: dict[str, list[float]] = {name: [] for name in TRACED}
    async with contextlib.AsyncExitStack() as stack:
        routers = {}
        for name, config in configs.items():
            client = httpx.AsyncClient(transport=_instant_upstream())
            await stack.enter_async_context(client)
            routers[name] = await stack.enter_async_context(
                open_router(config, env={}, http_client=client)
            )

        async def chunk(name: str, count: int) -> float:
            live = routers[name]
            start = time.process_time()
            for _ in range(count):
                await live.complete(MESSAGES, max_tokens=MAX_TOKENS)
            if live.tracing is not None:
                await trio.to_thread.run_sync(live.tracing.flush)
            return (time.process_time() - start) / count * 1e6

        for name in TRACED:
            await chunk(name, warmup)
        for r in range(repeat):
            for name in TRACED[r % 3 :] + TRACED[: r % 3]:  # each goes first in turn
                cpu[name].append(await chunk(name, n))
    return cpu


def traces_part(args: argparse.Namespace) -> None:
    import tempfile

    n = max(1, args.inproc_n // 4)
    sink = _spawn(["--role", "upstream"])  # answers every POST 200: a collector that takes all
    try:
        assert sink.stdout is not None
        port = int(sink.stdout.readline())
        with tempfile.TemporaryDirectory() as folder:
            cpu = trio.run(_traces_inproc, n, args.repeat, args.inproc_warmup, folder, port)
    finally:
        sink.communicate(timeout=10)  # closing its stdin stops it
    median = {name: statistics.median(values) for name, values in cpu.items()}
    print(
        f"\nPart 4: tracing, in process, {len(cpu['off'])} chunks of {n} sequential calls each,\n"
        "  the live router on an instant mock upstream, CPU per request (all threads)\n"
    )
    labels = {
        "off": "traces off",
        "file": "traces to an OTLP JSON file",
        "otlp": "traces to OTLP/HTTP",
    }
    for name in TRACED:
        values = cpu[name]
        print(
            f"  {labels[name]:<30} {median[name]:7.1f} µs  "
            f"(per chunk {min(values):.1f} .. {max(values):.1f})"
        )
    for name in ("otlp", "file"):
        ratio, added = median[name] / median["off"], median[name] - median["off"]
        print(f"  tracing on / off, {name:<4}: {ratio:.2f}x CPU per request (+{added:.1f} µs)")
    print()


def _pct(values: list[int], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(len(ordered) * q))] / 1e3


def _print_pair(
    title: str, floor: tuple[str, list[int]], ours: tuple[str, list[int]]
) -> tuple[float, float]:
    """Print a part's title and both rows' percentiles; (ours - floor, ours / floor) at the
    median, in µs."""
    print(title)
    _print_percentiles((floor, ours))
    return _pct(ours[1], 0.5) - _pct(floor[1], 0.5), _pct(ours[1], 0.5) / _pct(floor[1], 0.5)


def _print_percentiles(rows: tuple[tuple[str, list[int]], ...]) -> None:
    print(f"  {'µs per call':<34} {'p50':>7} {'p90':>7} {'p99':>7}")
    for label, values in rows:
        p50, p90, p99 = (_pct(values, q) for q in (0.5, 0.9, 0.99))
        print(f"  {label:<34} {p50:7.1f} {p90:7.1f} {p99:7.1f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--n", type=int, default=1000, help="HTTP requests per kind per round")
    parser.add_argument("--concurrency", type=int, default=16, help="HTTP requests in flight")
    parser.add_argument("--repeat", type=int, default=5, help="interleaved rounds / chunks")
    parser.add_argument("--batch", type=int, default=200, help="HTTP requests per batch")
    parser.add_argument("--warmup", type=int, default=200, help="HTTP requests per kind first")
    parser.add_argument(
        "--budget", type=float, default=75.0, help="start no HTTP round after this many s"
    )
    parser.add_argument("--inproc-n", type=int, default=20_000, help="in-process calls each")
    parser.add_argument("--inproc-warmup", type=int, default=1000)
    parser.add_argument("--skip-http", action="store_true")
    parser.add_argument("--skip-inproc", action="store_true")
    parser.add_argument("--skip-app", action="store_true")
    parser.add_argument("--skip-traces", action="store_true")
    parser.add_argument(
        "--role",
        choices=("main", "upstream", "trio-worker", "asyncio-worker"),
        default="main",
        help=argparse.SUPPRESS,
    )
    parser.add_argument("--port", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    for name in ("n", "concurrency", "repeat", "batch", "inproc_n"):
        if getattr(args, name) < 1:
            parser.error(f"--{name.replace('_', '-')} must be >= 1")

    if args.role == "upstream":
        asyncio.run(_serve_upstream())
    elif args.role.endswith("-worker"):
        _loopback_only()
        # The protocol gets its own copy of stdout; anything a library prints goes to stderr.
        global PROTOCOL
        PROTOCOL = os.fdopen(os.dup(1), "w", buffering=1)
        os.dup2(2, 1)
        sys.stdout = sys.stderr
        if args.role == "trio-worker":
            trio.run(_trio_worker, args)
        else:
            asyncio.run(_asyncio_worker(args))
    else:
        if not args.skip_http:
            http_part(args)
        if not args.skip_inproc:
            inproc_part(args)
        if not args.skip_app:
            app_part(args)
        if not args.skip_traces:
            traces_part(args)


if __name__ == "__main__":
    main()
