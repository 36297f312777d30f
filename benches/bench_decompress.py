"""What a gzip bomb costs the event loop: inflating in steps against inflating in one go.

One trio process feeds a gzip bomb (``--inflated`` MiB of zeros at level 9, about a
thousandth of that on the wire) to a decoder in one task, in 64 KiB chunks as httpx
reads them (a checkpoint before each chunk, as a socket read is), under the inflation
cap ``--cap`` (callboard's default ``max_inflated_bytes``, 64 MiB), which ends every run
with ``InflatedTooLarge``. Meanwhile a watcher task sleeps ``--interval`` in a loop and
keeps the longest gap between two of its wake-ups: how long the loop was held, as
another request or ``/health`` would have waited. The default interval, 0, wakes it on
every pass of trio's scheduler, the finest grain there is (a positive sleep is rounded
up to the 1 ms of epoll's timeout, above a step's hold). Trio runs the tasks of a pass in
a random order, so the watcher's worst gap under stepped inflation is two steps (its
median gap, one step). The decoders:

- ``stepped``: :func:`actors.backends.caps.decoded`, the router's path (zlib's
  ``max_length`` steps of ``INFLATE_STEP``, a checkpoint after each);
- ``one-shot``: the peer, written here: each received chunk inflated by zlib at once
  under the same cap (``max_length`` = what is left of the cap, plus one byte to see it
  passed), as httpx's decoders inflate a chunk (without a cap).

Both keep their pieces in a list, as the backend's reader of a whole body does. A round
runs the watcher alone (the floor of the gap at this interval), then both decoders in
alternating order; the medians over ``--repeat`` rounds are printed, with the ratios
stepped / one-shot per round (worst stall, and throughput: the cap's bytes over the
time from the first chunk to the error) and their medians. ``--smoke`` runs a small
bomb a few times (CI: the path works, not the figures).
"""

from __future__ import annotations

import argparse
import statistics
import time
import zlib
from collections.abc import AsyncIterator, Callable

import trio

from actors.backends.caps import (
    INFLATE_STEP,
    InflatedTooLarge,
    ReplyTooLarge,
    UpstreamCaps,
    decoded,
)

MiB = 1024 * 1024
CHUNK = 64 * 1024  # what httpx (httpcore) reads from a socket at once


def gzip_bomb(inflated: int) -> bytes:
    """``inflated`` bytes of zeros, gzipped at level 9, built without holding them."""
    packer = zlib.compressobj(9, zlib.DEFLATED, 16 + zlib.MAX_WBITS)
    block = bytes(MiB)
    parts = [packer.compress(block[: min(MiB, inflated - at)]) for at in range(0, inflated, MiB)]
    return b"".join(parts) + packer.flush()


async def received(wire: bytes) -> AsyncIterator[bytes]:
    for at in range(0, len(wire), CHUNK):
        await trio.lowlevel.checkpoint()  # a socket read is a checkpoint
        yield wire[at : at + CHUNK]


async def one_shot(raw: AsyncIterator[bytes], cap: int) -> AsyncIterator[bytes]:
    """The peer: each chunk inflated at once, under the same cap."""
    inflater = zlib.decompressobj(16 + zlib.MAX_WBITS)
    size = 0
    async for data in raw:
        piece = inflater.decompress(data, cap - size + 1)
        size += len(piece)
        if size > cap:
            raise InflatedTooLarge("bench", cap)
        yield piece


def stepped(raw: AsyncIterator[bytes], cap: int) -> AsyncIterator[bytes]:
    return decoded("bench", raw, "gzip", UpstreamCaps(max_inflated_bytes=cap), ReplyTooLarge)


DECODERS: dict[str, Callable[[AsyncIterator[bytes], int], AsyncIterator[bytes]]] = {
    "one-shot": one_shot,
    "stepped": stepped,
}


async def watched(
    wire: bytes, cap: int, interval: float, decoder: str | None
) -> tuple[float, float]:
    """(worst gap between the watcher's wake-ups s, seconds to the cap) of one run."""
    worst = 0.0
    wakes = 0

    async def watcher(task_status: trio.TaskStatus[None]) -> None:
        nonlocal worst, wakes
        last = time.perf_counter()
        task_status.started()
        while True:
            await trio.sleep(interval)
            now = time.perf_counter()
            worst = max(worst, now - last)
            last = now
            wakes += 1

    async with trio.open_nursery() as nursery:
        await nursery.start(watcher)
        await trio.sleep(interval * 3)  # the watcher asleep in its loop
        worst = 0.0
        start = time.perf_counter()
        if decoder is None:
            await trio.sleep(0.05)
        else:
            pieces: list[bytes] = []
            try:
                async for piece in DECODERS[decoder](received(wire), cap):
                    pieces.append(piece)
            except InflatedTooLarge:
                pass
            else:
                raise AssertionError(f"{decoder}: the bomb ended below the cap")
        took = time.perf_counter() - start
        ended = wakes
        while wakes == ended:  # the gap the decoder's end interrupted is counted too
            await trio.lowlevel.checkpoint()
        nursery.cancel_scope.cancel()
    return worst, took


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--cap", type=int, default=64, help="max_inflated_bytes, MiB")
    parser.add_argument("--inflated", type=int, default=128, help="the bomb inflated, MiB")
    parser.add_argument("--interval", type=float, default=0.0, help="watcher's sleep, s")
    parser.add_argument("--repeat", type=int, default=7, help="rounds; medians are kept")
    parser.add_argument("--smoke", action="store_true", help="a 4 MiB cap, 3 rounds (CI)")
    args = parser.parse_args()
    if args.smoke:
        args.cap, args.inflated, args.repeat = 4, 8, 3
    cap = args.cap * MiB
    wire = gzip_bomb(args.inflated * MiB)

    stall: dict[str, list[float]] = {"idle": [], **{name: [] for name in DECODERS}}
    speed: dict[str, list[float]] = {name: [] for name in DECODERS}
    for r in range(args.repeat):
        stall["idle"].append(trio.run(watched, wire, cap, args.interval, None)[0])
        names = list(DECODERS)[r % 2 :] + list(DECODERS)[: r % 2]  # alternating order
        for name in names:
            worst, took = trio.run(watched, wire, cap, args.interval, name)
            stall[name].append(worst)
            speed[name].append(cap / took / 1e6)

    wakes = f"sleeps {args.interval * 1e3:g} ms" if args.interval else "wakes every pass"
    print(
        f"gzip bomb: {args.inflated} MiB of zeros in {len(wire) / 1024:.0f} KiB;"
        f" cap {args.cap} MiB; step {INFLATE_STEP // 1024} KiB; the watcher {wakes};"
        f" medians of {args.repeat} rounds"
    )
    print(f"{'decoder':<9} {'worst loop stall (ms)':>22} {'inflated (MB/s)':>16}")
    for name in stall:
        rate = f"{statistics.median(speed[name]):16.0f}" if name in speed else f"{'-':>16}"
        print(f"{name:<9} {statistics.median(stall[name]) * 1e3:22.2f} {rate}")
    stalls = [s / o for s, o in zip(stall["stepped"], stall["one-shot"], strict=True)]
    rates = [s / o for s, o in zip(speed["stepped"], speed["one-shot"], strict=True)]
    print(
        f"stepped / one-shot: worst stall {statistics.median(stalls):.3f}x"
        f" (rounds {min(stalls):.3f}-{max(stalls):.3f}),"
        f" throughput {statistics.median(rates):.2f}x (rounds {min(rates):.2f}-{max(rates):.2f})"
    )


if __name__ == "__main__":
    main()
