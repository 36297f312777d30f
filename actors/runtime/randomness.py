"""Named random streams derived from one seed.

Every entity (a provider, an interview, the workload) draws from its own
stream, keyed by its name, so adding an entity never shifts another entity's
draws, and a run is a function of (scenario, seed) alone.
"""

from __future__ import annotations

import hashlib
import threading
from array import array
from collections.abc import Callable
from typing import TYPE_CHECKING

# Imported by name: ``np.random`` goes through numpy's module __getattr__ on every use.
from numpy.random import PCG64, Generator, SeedSequence

if TYPE_CHECKING:
    import numpy as np

# Draws are made in blocks: one numpy call per block instead of one per draw,
# which keeps a draw on the simulation's hot path well under a microsecond. Blocks
# start small and double, so thousands of short-lived streams (one per interview)
# do not each pay for a thousand draws they never use.
_FIRST_BLOCK = 16
_MAX_BLOCK = 4096


def _name_key(name: str) -> tuple[int, ...]:
    """A stable integer key for a stream name (``hash()`` varies per process)."""
    digest = hashlib.blake2b(name.encode("utf-8"), digest_size=16).digest()
    return tuple(int.from_bytes(digest[i : i + 4], "little") for i in range(0, 16, 4))


#: Every stream's block of a kind before its first draw of it: one empty block, shared.
_NO_DRAWS: array[float] = array("d")


def _next_block(previous: int) -> int:
    return min(_MAX_BLOCK, max(_FIRST_BLOCK, 2 * previous))


class _Scratch(threading.local):
    """A generator per thread that streams without their own lend their state to."""

    def __init__(self) -> None:
        self.generator = Generator(PCG64(0))


_SCRATCH = _Scratch()


class RandomStream:
    """One entity's random stream, with cheap scalar draws.

    Each kind of draw keeps its current block and the index of its next draw. A block is
    an ``array.array`` of machine doubles, not a list of floats: the float object is made
    when drawn, so a block held by each of thousands of live interviews keeps 8 bytes a
    draw instead of 32 (numpy's ``tolist`` made them all up front). An index, not an
    iterator over the block: ``next()`` is 30-60 ns a draw cheaper, but an iterator
    costs ~64 bytes per kind, held by each live interview.

    Between blocks a stream keeps only its bit generator's state (two integers), not a
    numpy generator: a ``Generator`` with its ``PCG64`` and ``SeedSequence`` costs about
    1 KiB, once per each of 10,000 live interviews. A block is drawn by this thread's
    scratch generator set to that state, which draws exactly what the stream's own
    would. The state is seeded at the first draw; a stream whose :attr:`generator` is
    asked for (vectorised draws) keeps its own from then on.
    """

    __slots__ = (
        "_exp",
        "_exp_at",
        "_gen",
        "_norm",
        "_norm_at",
        "_state",
        "_uni",
        "_uni_at",
        "name",
        "seed",
    )

    def __init__(self, seed: int, name: str) -> None:
        self.seed = seed
        self.name = name
        self._gen: Generator | None = None
        #: The bit generator's (state, inc, has_uint32, uinteger) between blocks; None
        #: before the first draw and once the stream has its own generator.
        self._state: tuple[int, int, int, int] | None = None
        self._uni = self._exp = self._norm = _NO_DRAWS
        self._uni_at = self._exp_at = self._norm_at = 0

    def _seeded(self) -> Generator:
        sequence = SeedSequence(entropy=self.seed, spawn_key=_name_key(self.name))
        return Generator(PCG64(sequence))

    def _restored(self, generator: Generator) -> Generator:
        """``generator`` set to this stream's state."""
        assert self._state is not None
        state, inc, has_uint32, uinteger = self._state
        generator.bit_generator.state = {
            "bit_generator": "PCG64",
            "state": {"state": state, "inc": inc},
            "has_uint32": has_uint32,
            "uinteger": uinteger,
        }
        return generator

    @property
    def generator(self) -> Generator:
        """The underlying numpy generator, for vectorised draws."""
        if self._gen is None:
            if self._state is None:
                self._gen = self._seeded()
            else:
                self._gen = self._restored(Generator(PCG64(0)))
                self._state = None
        return self._gen

    def _block(self, draw: Callable[[Generator, int], np.ndarray], previous: int) -> array[float]:
        """The next block of ``draw`` from this stream, after one of ``previous`` draws."""
        n = _next_block(previous)
        generator = self._gen
        if generator is not None:
            return array("d", draw(generator, n).tobytes())
        generator = self._seeded() if self._state is None else self._restored(_SCRATCH.generator)
        block = array("d", draw(generator, n).tobytes())
        state = generator.bit_generator.state
        self._state = (
            state["state"]["state"],
            state["state"]["inc"],
            state["has_uint32"],
            state["uinteger"],
        )
        return block

    # The three draws are written out alike rather than through one helper taking the
    # kind: they are among the simulator's most frequent calls, and a helper is one more
    # call level on each.
    def uniform(self) -> float:
        """A draw from U[0, 1)."""
        block, at = self._uni, self._uni_at
        if at == len(block):
            block = self._uni = self._block(Generator.random, at)
            at = 0
        self._uni_at = at + 1
        return block[at]

    def standard_exponential(self) -> float:
        """A draw from Exp(1)."""
        block, at = self._exp, self._exp_at
        if at == len(block):
            block = self._exp = self._block(Generator.standard_exponential, at)
            at = 0
        self._exp_at = at + 1
        return block[at]

    def standard_normal(self) -> float:
        """A draw from N(0, 1)."""
        block, at = self._norm, self._norm_at
        if at == len(block):
            block = self._norm = self._block(Generator.standard_normal, at)
            at = 0
        self._norm_at = at + 1
        return block[at]


class RandomStreams:
    """The factory of named streams for one run."""

    def __init__(self, seed: int) -> None:
        if not isinstance(seed, int) or seed < 0:
            raise ValueError(f"seed must be a non-negative integer, got {seed!r}")
        self.seed = seed
        self._streams: dict[str, RandomStream] = {}

    def stream(self, name: str) -> RandomStream:
        """The stream for ``name``; the same object on every call."""
        stream = self._streams.get(name)
        if stream is None:
            stream = self._streams[name] = RandomStream(self.seed, name)
        return stream

    def unkept(self, name: str) -> RandomStream:
        """A stream for ``name`` that this factory does not keep, for an entity that asks
        for it once and may end long before the run (an interview): kept, a finished
        interview's stream and its blocks (~1 KiB) would live as long as the run. Each
        call starts the stream afresh: its caller is the one entity of that name."""
        return RandomStream(self.seed, name)
