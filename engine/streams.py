"""Named random streams derived from one seed.

Every entity (a provider, an interview, the workload) draws from its own
stream, keyed by its name, so adding an entity never shifts another entity's
draws, and a run is a function of (scenario, seed) alone.
"""

from __future__ import annotations

import hashlib

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


def _next_block(previous: int) -> int:
    return min(_MAX_BLOCK, max(_FIRST_BLOCK, 2 * previous))


class Stream:
    """One entity's random stream, with cheap scalar draws."""

    __slots__ = ("_exp", "_exp_i", "_gen", "_norm", "_norm_i", "_uni", "_uni_i", "name")

    def __init__(self, seed: int, name: str) -> None:
        self.name = name
        sequence = np.random.SeedSequence(entropy=seed, spawn_key=_name_key(name))
        self._gen = np.random.Generator(np.random.PCG64(sequence))
        self._uni: list[float] = []
        self._uni_i = 0
        self._exp: list[float] = []
        self._exp_i = 0
        self._norm: list[float] = []
        self._norm_i = 0

    @property
    def generator(self) -> np.random.Generator:
        """The underlying numpy generator, for vectorised draws."""
        return self._gen

    def uniform(self) -> float:
        """A draw from U[0, 1)."""
        i = self._uni_i
        if i >= len(self._uni):
            self._uni = self._gen.random(_next_block(len(self._uni))).tolist()
            i = 0
        self._uni_i = i + 1
        return self._uni[i]

    def standard_exponential(self) -> float:
        """A draw from Exp(1)."""
        i = self._exp_i
        if i >= len(self._exp):
            self._exp = self._gen.standard_exponential(_next_block(len(self._exp))).tolist()
            i = 0
        self._exp_i = i + 1
        return self._exp[i]

    def standard_normal(self) -> float:
        """A draw from N(0, 1)."""
        i = self._norm_i
        if i >= len(self._norm):
            self._norm = self._gen.standard_normal(_next_block(len(self._norm))).tolist()
            i = 0
        self._norm_i = i + 1
        return self._norm[i]


class RandomStreams:
    """The factory of named streams for one run."""

    def __init__(self, seed: int) -> None:
        if not isinstance(seed, int) or seed < 0:
            raise ValueError(f"seed must be a non-negative integer, got {seed!r}")
        self.seed = seed
        self._streams: dict[str, Stream] = {}

    def stream(self, name: str) -> Stream:
        """The stream for ``name``; the same object on every call."""
        stream = self._streams.get(name)
        if stream is None:
            stream = self._streams[name] = Stream(self.seed, name)
        return stream
