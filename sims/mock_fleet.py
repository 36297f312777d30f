"""The mock providers of a replay: one per account of a scenario, in a process of their own.

``callboard replay`` measures the live router against a model of its providers. Were the
mocks served by the router's own trio loop, every piece of a streamed answer they write
would wait behind the router's work and the router's behind theirs, and the live
latencies would carry that queueing, which the model does not have. In a process of
their own (the machine's other core) they answer when their model says, as real
providers do; the parent only learns their URLs and says when the run starts.
"""

from __future__ import annotations

import contextlib
import functools
import multiprocessing
import signal
from collections.abc import AsyncIterator
from multiprocessing.connection import Connection
from typing import Any

import attrs
import trio

from actors.backends.virtual import LatencyModel
from actors.runtime.distributions import DistributionSpec
from actors.runtime.randomness import RandomStream
from engine.serve.asgi import serve_app
from sims.mock_provider import MockProfile, MockProvider
from sims.scenario import Scenario

LOOPBACK = "127.0.0.1"
#: What the parent sends: the run starts (fault schedules from now), or it is over.
START, STOP = "start", "stop"
#: How long the mocks' process may take to end once told, before it is killed.
STOP_GRACE_S = 10.0
#: The least real time between two pieces of a streamed answer. A piece every four tokens
#: at a replay's time scale would be hundreds a second per stream, and what the router
#: spends reading them, multiplied back by the scale, would be latency the model lacks;
#: fewer, longer pieces keep the first token's and the last's moments all the same.
MIN_PIECE_GAP_S = 0.01


@attrs.frozen
class Scaled:
    """A distribution whose every draw is multiplied by ``factor``."""

    inner: Any
    factor: float

    def sample(self, stream: RandomStream) -> float:
        return float(self.inner.sample(stream)) * self.factor


def _faster(spec: DistributionSpec, scale: float) -> DistributionSpec:
    """``spec`` drawn ``scale`` times shorter."""
    # Scaled samples as every DistributionSpec does; LatencyModel's fields are annotated with
    # the union of the families a scenario file names, which cattrs structures them from.
    return Scaled(spec, 1 / scale)  # type: ignore[return-value]


def scaled_latency(latency: LatencyModel, scale: float) -> LatencyModel:
    """``latency`` run ``scale`` times faster (same output lengths)."""
    return LatencyModel(
        ttft=_faster(latency.ttft, scale),
        tokens_per_s=latency.tokens_per_s * scale,
        output_tokens=latency.output_tokens,
        service=None if latency.service is None else _faster(latency.service, scale),
        error_ttft=_faster(latency.error_ttft, scale),
    )


def mocks_for(scenario: Scenario, scale: float) -> list[MockProvider]:
    """One mock per account: its own latency and errors, its own faults, ``scale`` x faster."""
    mocks = []
    for group in scenario.accounts:
        latency, errors = group.behaviour()
        profile = MockProfile(
            "scenario",
            f"account group {group.prefix!r} of scenario {scenario.name!r}, {scale:g}x",
            scaled_latency(latency, scale),
            attrs.evolve(errors, rate_limited_retry_after=errors.rate_limited_retry_after / scale),
        )
        for spec in group.specs():
            mocks.append(
                MockProvider(
                    spec.name,
                    "scenario",
                    speed=scale,
                    seed=scenario.seed,
                    faults=scenario.faults_for(spec.name),
                    time_scale=scale,
                    profiles=[profile],
                    min_piece_gap=MIN_PIECE_GAP_S,
                )
            )
    return mocks


async def _serve(scenario: Scenario, scale: float, conn: Connection) -> None:
    """Serve every mock until told to stop (or the parent is gone)."""
    mocks = mocks_for(scenario, scale)
    async with trio.open_nursery() as servers:
        urls = []
        for mock in mocks:
            serve = functools.partial(serve_app, mock, LOOPBACK, 0, graceful_timeout=0.1)
            urls.append(await servers.start(serve))
        conn.send(urls)
        with contextlib.suppress(EOFError):
            while (message := await trio.to_thread.run_sync(conn.recv)) != STOP:
                if message == START:
                    for mock in mocks:  # every mock's fault schedule starts now, together
                        mock.restart_replay(0.0)
        servers.cancel_scope.cancel()


def _child(scenario: Scenario, scale: float, conn: Connection) -> None:
    # The parent stops this process; a Ctrl-C at the terminal reaches both.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    trio.run(_serve, scenario, scale, conn)


@attrs.frozen
class MockFleet:
    """The running mocks: their URLs (one per account, in the scenario's order)."""

    urls: tuple[str, ...]
    _conn: Connection

    def start(self) -> None:
        """The run starts now: every mock's fault schedule from its beginning."""
        self._conn.send(START)


@contextlib.asynccontextmanager
async def mock_fleet(scenario: Scenario, scale: float) -> AsyncIterator[MockFleet]:
    """Serve ``scenario``'s mocks (``scale`` x faster) in a process of their own."""
    context: Any = multiprocessing.get_context("spawn")  # no copy of the parent's loop
    ours, theirs = context.Pipe()
    process = context.Process(target=_child, args=(scenario, scale, theirs), daemon=True)
    process.start()
    theirs.close()
    try:
        try:
            urls = await trio.to_thread.run_sync(ours.recv)
        except EOFError:
            await trio.to_thread.run_sync(process.join)
            raise RuntimeError(
                f"the mock providers' process ended before serving (exit code {process.exitcode})"
            ) from None
        yield MockFleet(tuple(urls), ours)
    finally:
        with contextlib.suppress(OSError):
            ours.send(STOP)
        await trio.to_thread.run_sync(process.join, STOP_GRACE_S)
        if process.is_alive():
            process.kill()
            await trio.to_thread.run_sync(process.join)
        ours.close()
