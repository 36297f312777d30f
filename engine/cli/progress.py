"""Progress of a long command on stderr: a tqdm bar on a terminal, one line per step elsewhere.

A bar that redraws itself is right on a terminal and wrong in a CI log or a pipe, where
each redraw would be a line of its own (or, as before, nothing at all for ten minutes).
There, each finished step (a fleet sized, a level decided, a seed run) prints one line
with the simulations done so far and the wall time since the start.
"""

from __future__ import annotations

import sys
import threading
import time
from collections.abc import Sequence
from typing import TYPE_CHECKING, Protocol, TextIO

if TYPE_CHECKING:
    from sims.sizing import LevelAnswer, Point
    from sims.slo import Slo


class Progress(Protocol):
    """What sizing and experiments report while they run; called from several threads."""

    def simulation(self) -> None:
        """One simulation finished."""

    def step(self, text: str) -> None:
        """A step finished; ``text`` says which and what it found."""

    def close(self) -> None: ...


class Silent:
    """``--quiet``: nothing."""

    def simulation(self) -> None:
        pass

    def step(self, text: str) -> None:
        pass

    def close(self) -> None:
        pass


class Bar:
    """A tqdm bar of simulations on a terminal; steps show only as the bar moves."""

    def __init__(self, total: int, stream: TextIO) -> None:
        from tqdm import tqdm

        self._bar = tqdm(total=total, unit="sim", file=stream, dynamic_ncols=True, leave=False)
        self._lock = threading.Lock()

    def simulation(self) -> None:
        with self._lock:
            self._bar.update(1)

    def step(self, text: str) -> None:
        pass

    def close(self) -> None:
        self._bar.close()


class Lines:
    """One line per finished step, prefixed with the command, for logs and pipes."""

    def __init__(self, command: str, stream: TextIO) -> None:
        self.command = command
        self.stream = stream
        self.simulations = 0
        self._started = time.monotonic()
        self._lock = threading.Lock()

    def simulation(self) -> None:
        with self._lock:
            self.simulations += 1

    def step(self, text: str) -> None:
        with self._lock:
            elapsed = round(time.monotonic() - self._started)
            minutes, seconds = divmod(elapsed, 60)
            print(
                f"{self.command}: {text} [{self.simulations} simulations, "
                f"{minutes}:{seconds:02d} elapsed]",
                file=self.stream,
                flush=True,
            )

    def close(self) -> None:
        pass


def open_progress(command: str, total: int, quiet: bool, stream: TextIO | None = None) -> Progress:
    """The progress display that suits where stderr goes: none, a bar, or lines."""
    stream = stream if stream is not None else sys.stderr
    if quiet:
        return Silent()
    if stream.isatty():
        return Bar(total, stream)
    return Lines(command, stream)


def _fleet(counts: dict[str, int]) -> str:
    """A kind a mix leaves out (0 accounts) is not named."""
    named = " + ".join(f"{count} x {group}" for group, count in counts.items() if count > 0)
    return named or "none of these kinds (the fixed groups alone)"


def point_step(point: Point, slos: Sequence[Slo]) -> str:
    """What one fleet tried at one level found, as a progress step."""
    met, ran = point.seeds_passing(slos), len(point.runs)
    verdict = {"met": ": shown to meet them", "unclear": ": unclear"}.get(point.verdict, "")
    return (
        f"{point.interviews:,} interviews on {_fleet(point.counts)}: "
        f"SLOs met on {met} of {ran} seed{'' if ran == 1 else 's'}{verdict}"
    )


def level_step(answer: LevelAnswer, slos: Sequence[Slo]) -> str:
    """What the search decided for one level, as a progress step."""
    tried = f"{len(answer.points)} fleets tried"
    if answer.recommended is None:
        return f"{answer.interviews:,} interviews: no fleet in the range meets the SLOs ({tried})"
    what = "cheapest mix" if answer.singles else "smallest fleet"
    return (
        f"{answer.interviews:,} interviews: {what} meeting the SLOs is "
        f"{_fleet(answer.recommended.counts)} ({tried}); met them on "
        f"{answer.holdout_met(slos)} of {len(answer.holdout)} fresh seeds"
    )
