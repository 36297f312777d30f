"""Pinning trio's scheduling order so that a simulation is a function of its seed.

Trio shuffles each batch of runnable tasks with a module-level ``random.Random``
(``trio._core._run._r``) and, unless ``_ALLOW_DETERMINISTIC_SCHEDULING`` is set,
keeps them in arrival order, which for deadlines that expire together is
``id()`` order. With the flag set, trio sorts each batch by task creation order
and shuffles it with ``_r``; seeding ``_r`` then makes the whole interleaving a
function of the seed. These are private names: :func:`check_trio_scheduling_hooks`
fails loudly, and a test fails, if a trio upgrade moves them.
"""

from __future__ import annotations

import random
from collections.abc import Iterator
from contextlib import contextmanager

import trio

_RUN_MODULE = trio._core._run


def check_trio_scheduling_hooks() -> None:
    """Raise if trio no longer has the hooks that determinism relies on."""
    missing = [
        name for name in ("_r", "_ALLOW_DETERMINISTIC_SCHEDULING") if not hasattr(_RUN_MODULE, name)
    ]
    if missing or not isinstance(getattr(_RUN_MODULE, "_r", None), random.Random):
        raise RuntimeError(
            f"trio {trio.__version__} lacks the scheduling hooks "
            f"{missing or ['_r (random.Random)']} in trio._core._run; "
            "simulations cannot be made reproducible on this trio version"
        )


@contextmanager
def pinned_trio_scheduling(seed: int) -> Iterator[None]:
    """Make trio's task order deterministic for the duration of the block."""
    check_trio_scheduling_hooks()
    rng: random.Random = _RUN_MODULE._r
    saved_state = rng.getstate()
    saved_flag = _RUN_MODULE._ALLOW_DETERMINISTIC_SCHEDULING
    rng.seed(seed)
    _RUN_MODULE._ALLOW_DETERMINISTIC_SCHEDULING = True
    try:
        yield
    finally:
        _RUN_MODULE._ALLOW_DETERMINISTIC_SCHEDULING = saved_flag
        rng.setstate(saved_state)
