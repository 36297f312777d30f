"""Settings that moved: an old config or scenario is refused with what to write instead,
never silently ignored (an unknown key would only say that it is unknown)."""

from __future__ import annotations

from typing import Any

from actors.runtime.errors import InvalidSetting

#: (table, key or None for the whole table) -> what to write instead.
MOVED: dict[tuple[str, str | None], str] = {
    ("shedding", None): (
        'a [line] table instead: discipline = "priority" (was enabled = true, now the default '
        'in both worlds) or "fifo" (was enabled = false), with max_waiting and rate_window '
        "as before"
    ),
    ("retry", "attempt_timeout"): (
        "[timeouts] instead: first_byte (the wait for a response to start: the old limit "
        "for a whole answer), idle (the longest silence within one), total (the router's "
        "cap on an attempt, 600 s by default)"
    ),
    ("server", "connect_timeout"): "[timeouts] connect instead (the same seconds)",
    ("server", "read_timeout"): (
        "[timeouts] idle instead (the longest silence within a response), with first_byte "
        "for the wait before it starts"
    ),
}


def refuse_moved_settings(raw: dict[str, Any]) -> None:
    """Raise :class:`InvalidSetting` for the first setting of ``raw`` that has moved."""
    for (table, key), instead in MOVED.items():
        value = raw.get(table)
        if key is None and table in raw:
            raise InvalidSetting(table, value, instead)
        if key is not None and isinstance(value, dict) and key in value:
            raise InvalidSetting(f"{table}.{key}", value[key], instead)
