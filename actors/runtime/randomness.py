"""Named random streams derived from one seed.

Every entity (a provider, an interview, the workload) draws from its own
stream, keyed by its name, so adding an entity never shifts another entity's
draws, and a run is a function of (scenario, seed) alone.
"""

from __future__ import annotations

import hashlib
from array import array
from collections.abc import Iterator

# Imported by name: ``np.random`` goes through numpy's module __getattr__ on every use.
from numpy.random import PCG64, Generator, SeedSequence

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


def _next_block(previous: int) -> int:
    return min(_MAX_BLOCK, max(_FIRST_BLOCK, 2 * previous))


class RandomStream:
    """One entity's random stream, with cheap scalar draws.

    Each kind of draw keeps an iterator over its current block: ``next()`` on an
    iterator is the cheapest scalar draw Python offers (a few per simulated request).
    A block is an ``array.array`` of machine doubles, not a list of floats: the float
    object is made when drawn, so a block held by each of thousands of live interviews
    keeps 8 bytes a draw instead of 32 (numpy's ``tolist`` made them all up front).
    """

    __slots__ = ("_exp", "_exp_n", "_gen", "_norm", "_norm_n", "_uni", "_uni_n", "name")

    def __init__(self, seed: int, name: str) -> None:
        self.name = name
        sequence = SeedSequence(entropy=seed, spawn_key=_name_key(name))
        self._gen = Generator(PCG64(sequence))
        self._uni: Iterator[float] = iter(())
        self._uni_n = 0
        self._exp: Iterator[float] = iter(())
        self._exp_n = 0
        self._norm: Iterator[float] = iter(())
        self._norm_n = 0

    @property
    def generator(self) -> Generator:
        """The underlying numpy generator, for vectorised draws."""
        return self._gen

    def uniform(self) -> float:
        """A draw from U[0, 1)."""
        value = next(self._uni, None)
        if value is None:
            self._uni_n = _next_block(self._uni_n)
            self._uni = iter(array("d", self._gen.random(self._uni_n).tobytes()))
            value = next(self._uni)
        return value

    def standard_exponential(self) -> float:
        """A draw from Exp(1)."""
        value = next(self._exp, None)
        if value is None:
            self._exp_n = _next_block(self._exp_n)
            self._exp = iter(array("d", self._gen.standard_exponential(self._exp_n).tobytes()))
            value = next(self._exp)
        return value

    def standard_normal(self) -> float:
        """A draw from N(0, 1)."""
        value = next(self._norm, None)
        if value is None:
            self._norm_n = _next_block(self._norm_n)
            self._norm = iter(array("d", self._gen.standard_normal(self._norm_n).tobytes()))
            value = next(self._norm)
        return value


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
