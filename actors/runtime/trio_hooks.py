"""Every use of trio's private internals, in one module, each with a plain-trio fallback.

Two hooks make a simulation reproducible and fast; neither is public trio API:

- **Scheduling.** Trio shuffles each batch of runnable tasks with a module-level
  ``random.Random`` (``trio._core._run._r``) and, unless
  ``_ALLOW_DETERMINISTIC_SCHEDULING`` is set, keeps them in arrival order, which for
  deadlines that expire together is ``id()`` order. With the flag set, trio sorts each
  batch by task creation order and shuffles it with ``_r``; seeding ``_r`` then makes
  the whole interleaving a function of the seed.
- **Speed.** A virtual-time run swaps in an I/O manager that polls the kernel less
  often and an instrument registry that answers "any instrument?" at C speed.
- **Memory.** A virtual sleep parks its task by yielding trio's trap itself
  (:func:`park`), one generator frame where ``wait_task_rescheduled`` holds two.

The trio versions these were tested on are pinned in ``pyproject.toml``
(:data:`TESTED_TRIO`). If a trio upgrade moves a name, the run goes on with plain
trio and a :class:`TrioHookMissing` warning says what is lost: speed for the speed
hooks, memory for the parking hook, run-to-run reproducibility for the scheduling hook.
The test suite fails on a missing hook, so an upgrade cannot lose one unnoticed.
"""

from __future__ import annotations

import random
import threading
import types
import warnings
from collections.abc import Awaitable, Callable, Generator, Iterator
from contextlib import contextmanager
from typing import Any, TypeVar

import trio
from trio.lowlevel import Abort, wait_task_rescheduled

T = TypeVar("T")

#: The trio releases these hooks were tested on (also pinned in pyproject.toml).
TESTED_TRIO = ">=0.35,<0.36"


class TrioHookMissing(RuntimeWarning):
    """This trio lacks a private name callboard hooks into; the run uses plain trio."""


def _private(path: str) -> Any:
    """``trio._core.<path>``, or None when this trio release does not have it."""
    node: Any = getattr(trio, "_core", None)
    for part in path.split("."):
        node = getattr(node, part, None)
    return node


def _warn_missing(hooks: list[str], lost: str) -> None:
    warnings.warn(
        f"trio {trio.__version__} lacks {', '.join(hooks)} (tested: trio{TESTED_TRIO}); "
        f"running on plain trio: {lost}",
        TrioHookMissing,
        stacklevel=3,
    )


# --- scheduling ----------------------------------------------------------------------


def missing_scheduling_hooks() -> list[str]:
    """The private names that pinning trio's task order needs and this trio lacks."""
    run = _private("_run")
    missing = [
        f"trio._core._run.{name}"
        for name in ("_r", "_ALLOW_DETERMINISTIC_SCHEDULING")
        if not hasattr(run, name)
    ]
    if not missing and not isinstance(run._r, random.Random):
        missing.append("trio._core._run._r (a random.Random)")
    return missing


#: Trio's shuffler and flag are process-wide: two pinned runs in two threads of one
#: process (a Dask worker with several threads) would draw from one stream in an
#: interleaving of the threads' making, so pinned runs take turns.
_PINNED = threading.Lock()


@contextmanager
def pinned_trio_scheduling(seed: int) -> Iterator[None]:
    """Make trio's task order a function of ``seed`` for the duration of the block.

    One pinned block runs at a time per process; another thread's waits for it.
    Without the hooks the block runs with trio's own (random) order, after a warning.
    """
    missing = missing_scheduling_hooks()
    if missing:
        _warn_missing(missing, "task order is not pinned, so runs are not reproducible")
        yield
        return
    run = _private("_run")
    rng: random.Random = run._r
    with _PINNED:
        saved_state = rng.getstate()
        saved_flag = run._ALLOW_DETERMINISTIC_SCHEDULING
        rng.seed(seed)
        run._ALLOW_DETERMINISTIC_SCHEDULING = True
        try:
            yield
        finally:
            run._ALLOW_DETERMINISTIC_SCHEDULING = saved_flag
            rng.setstate(saved_state)


# --- speed ---------------------------------------------------------------------------


class _FewerPolls:
    """Trio's I/O manager, asking the kernel on one zero-timeout pass in ``every``.

    Between two events of a virtual-time run trio polls epoll with a zero
    timeout, though nothing in a simulation does I/O: py-spy attributes 15% of a
    reference run to that syscall; skipping most of them saved 2-18% of the wall
    time in interleaved runs (the machine is shared and noisy). Waits with a
    timeout (nothing runnable, no timer pending) always poll, and so does every
    ``every``-th zero-timeout pass, so I/O and wake-ups from
    threads are still seen. Trio's managers are slotted classes, hence a wrapper;
    ``process_events`` is bound directly because trio calls it on every pass.
    """

    def __init__(self, io_manager: Any, every: int = 64) -> None:
        self._io_manager = io_manager
        self._skipped = 0
        self.every = every
        self.process_events = io_manager.process_events

    def get_events(self, timeout: float) -> Any:
        if timeout == 0:
            self._skipped += 1
            if self._skipped < self.every:
                return ()  # falsy: "the timeout passed with no I/O", as trio expects
            self._skipped = 0
        return self._io_manager.get_events(timeout)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._io_manager, name)


def _instruments_class() -> type | None:
    """Trio's instrument registry as a plain dict, or None if trio's registry moved.

    Trio asks its registry five times per scheduler pass whether any instrument
    wants a hook (``"before_task_step" in runner.instruments``); the registry is a
    ``UserDict``, so each question is a Python call: ~2% of a reference run. Over a
    dict the question is answered at C speed. Trio's own methods are reused, reading
    the dict as their ``data``, so adding and removing instruments work as before.
    """
    registry = _private("_instrumentation.Instruments")
    methods = ("add_instrument", "remove_instrument", "call")
    if registry is None or not all(hasattr(registry, name) for name in methods):
        return None

    class _Instruments(dict[str, Any]):
        add_instrument = registry.add_instrument
        remove_instrument = registry.remove_instrument
        call = registry.call

        @property
        def data(self) -> dict[str, Any]:
            return self

    return _Instruments


_INSTRUMENTS = _instruments_class()


# --- parking ------------------------------------------------------------------------

#: The trap ``wait_task_rescheduled`` yields to trio's run loop.
_RESCHEDULED_TRAP: Any = _private("_traps.WaitTaskRescheduled")


@types.coroutine
def park(abort_func: Callable[[Any], Abort]) -> Generator[Any, Any, Any]:
    """What ``trio.lowlevel.wait_task_rescheduled(abort_func)`` does, in one frame.

    Trio's is a coroutine that awaits another (``_async_yield``); a task asleep holds
    both, ~400 bytes, and a simulation's thousands of live interviews are mostly asleep.
    Without the trap's name (a trio upgrade moved it) this is trio's own.
    """
    if _RESCHEDULED_TRAP is None:
        return (yield from wait_task_rescheduled(abort_func).__await__())
    return (yield _RESCHEDULED_TRAP(abort_func)).unwrap()


def missing_parking_hooks() -> list[str]:
    """The private names :func:`park` needs and this trio lacks."""
    return [] if _RESCHEDULED_TRAP is not None else ["trio._core._traps.WaitTaskRescheduled"]


def missing_speed_hooks() -> list[str]:
    """The private names the speed hooks need and this trio lacks."""
    missing = []
    if _private("_run.GLOBAL_RUN_CONTEXT") is None:
        missing.append("trio._core._run.GLOBAL_RUN_CONTEXT")
    if _INSTRUMENTS is None:
        missing.append("trio._core._instrumentation.Instruments")
    return missing


async def tuned_loop(async_fn: Callable[..., Awaitable[T]], *args: Any) -> T:
    """Run ``async_fn`` with the I/O manager and instrument registry of a virtual run.

    Without the hooks, ``async_fn`` runs on trio's own (slower), after a warning; so it
    does, with its sleeps parked by trio's own, without the parking hook.
    """
    if missing_parking_hooks():
        _warn_missing(missing_parking_hooks(), "every sleeping task holds ~400 bytes more")
    missing = missing_speed_hooks()
    runner: Any = getattr(_private("_run.GLOBAL_RUN_CONTEXT"), "runner", None)
    io_manager = getattr(runner, "io_manager", None)
    instruments: Any = getattr(runner, "instruments", None)
    if io_manager is None or not hasattr(instruments, "data"):
        missing.append("the run's io_manager and instruments")
    if missing or _INSTRUMENTS is None:  # missing names it; tested again for the type checker
        _warn_missing(missing, "virtual-time runs are slower")
        return await async_fn(*args)
    runner.io_manager = _FewerPolls(io_manager)
    runner.instruments = _INSTRUMENTS(instruments.data)
    return await async_fn(*args)
