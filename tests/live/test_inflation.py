"""A compressed upstream body is inflated in bounded steps, the loop free between them.

A gzip bomb arrives as one small chunk that inflates to the whole cap; inflated in one
go it would hold trio's loop (every other request, ``/health``) for as long as that
takes. These tests count work per turn of the loop, never time: a trio instrument sees
each step of the decoding task (the run between two checkpoints), and the bytes
:func:`~actors.backends.caps.decoded` hands over in it.
"""

from __future__ import annotations

import gzip
import zlib
from collections.abc import AsyncIterator

import pytest
import trio
from hypothesis import given, settings
from hypothesis import strategies as st

from actors.backends.caps import (
    INFLATE_STEP,
    InflatedTooLarge,
    ReplyTooLarge,
    StreamTooLarge,
    UpstreamCaps,
    decoded,
)

CAP = 1024 * 1024
#: ~4 KiB of gzip inflating to 4x the cap: one chunk, as httpx would hand it over.
BOMB = gzip.compress(b"\0" * (4 * CAP), 9)


class Turns(trio.abc.Instrument):
    """The bytes one task took from ``decoded`` in each of its steps."""

    def __init__(self, task: trio.lowlevel.Task) -> None:
        self.task = task
        self.taken = 0  # the task adds each piece's size as it takes it
        self.per_step: list[int] = []
        self._before = 0

    def before_task_step(self, task: trio.lowlevel.Task) -> None:
        if task is self.task:
            self._before = self.taken

    def after_task_step(self, task: trio.lowlevel.Task) -> None:
        if task is self.task:
            self.per_step.append(self.taken - self._before)

    def stop(self) -> list[int]:
        """Stop watching (from the watched task); the step under way counts as a step."""
        trio.lowlevel.remove_instrument(self)
        self.after_task_step(self.task)
        return self.per_step


async def arriving(chunks: list[bytes]) -> AsyncIterator[bytes]:
    """A body's chunks handed over without a checkpoint (as from a client's read buffer)."""
    for data in chunks:
        yield data


async def take(pieces: AsyncIterator[bytes], turns: Turns) -> list[bytes]:
    taken = []
    async for piece in pieces:
        taken.append(piece)
        turns.taken += len(piece)
    return taken


def watching() -> Turns:
    turns = Turns(trio.lowlevel.current_task())
    trio.lowlevel.add_instrument(turns)
    return turns


async def test_a_bomb_inflates_one_step_per_turn_of_the_loop_and_ends_at_the_cap():
    caps = UpstreamCaps(max_inflated_bytes=CAP)
    turns = watching()
    pieces = decoded("bad", arriving([BOMB]), "gzip", caps, StreamTooLarge)
    with pytest.raises(InflatedTooLarge) as raised:
        await take(pieces, turns)
    per_step = turns.stop()
    assert str(raised.value) == f"bad: inflated body past upstream.max_inflated_bytes = {CAP} bytes"
    assert turns.taken == CAP  # every step up to the cap was handed over, none past it
    assert max(per_step) == INFLATE_STEP
    assert sum(1 for size in per_step if size) == CAP // INFLATE_STEP


async def test_another_task_runs_between_the_steps_of_a_bomb(nursery):
    ticks = 0

    async def ticker() -> None:
        nonlocal ticks
        while True:
            ticks += 1
            await trio.lowlevel.checkpoint()

    nursery.start_soon(ticker)
    while not ticks:
        await trio.lowlevel.checkpoint()
    caps = UpstreamCaps(max_inflated_bytes=CAP)
    seen = []
    with pytest.raises(InflatedTooLarge):
        async for _ in decoded("bad", arriving([BOMB]), "gzip", caps, ReplyTooLarge):
            seen.append(ticks)
    nursery.cancel_scope.cancel()
    # Both tasks run once in each pass of trio's scheduler (in either order), so the ticker
    # runs at least once between any two steps but a pass apart.
    assert len(seen) == CAP // INFLATE_STEP
    assert all(later > earlier for earlier, later in zip(seen, seen[2:], strict=False))


#: Bodies that inflate far past one step from a few bytes (runs), beside ones that barely
#: compress (random bytes).
BODIES = st.lists(
    st.one_of(
        st.binary(max_size=2048),
        st.builds(lambda byte, n: bytes([byte]) * n, st.integers(0, 255), st.integers(1, 300_000)),
    ),
    max_size=6,
).map(b"".join)
STRATEGIES = [
    zlib.Z_DEFAULT_STRATEGY,
    zlib.Z_FILTERED,
    zlib.Z_HUFFMAN_ONLY,
    zlib.Z_RLE,
    zlib.Z_FIXED,
]


def compressed(body: bytes, encoding: str, level: int, strategy: int) -> bytes:
    wbits = 16 + zlib.MAX_WBITS if encoding == "gzip" else zlib.MAX_WBITS
    packer = zlib.compressobj(level, zlib.DEFLATED, wbits, 9, strategy)
    return packer.compress(body) + packer.flush()


@settings(max_examples=80, deadline=None)
@given(
    body=BODIES,
    encoding=st.sampled_from(["gzip", "deflate"]),
    level=st.integers(0, 9),
    strategy=st.sampled_from(STRATEGIES),
    data=st.data(),
)
def test_stepped_inflation_is_one_shot_zlib_one_step_a_turn_in_any_chunking(
    body, encoding, level, strategy, data
):
    wire = compressed(body, encoding, level, strategy)
    cuts = sorted(data.draw(st.lists(st.integers(0, len(wire)), max_size=12)))
    chunks = [wire[a:b] for a, b in zip([0, *cuts], [*cuts, len(wire)], strict=True)]
    one_shot = zlib.decompress(wire, 16 + zlib.MAX_WBITS if encoding == "gzip" else zlib.MAX_WBITS)

    async def main() -> tuple[bytes, list[int]]:
        turns = watching()
        pieces = decoded("p", arriving(chunks), encoding, UpstreamCaps(), ReplyTooLarge)
        taken = await take(pieces, turns)
        return b"".join(taken), turns.stop()

    inflated, per_step = trio.run(main)
    assert inflated == one_shot == body
    assert max(per_step) <= INFLATE_STEP
