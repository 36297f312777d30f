"""The decision log: one structured line per routing decision, and an event record.

Lines look like ``request_id=r-00000001 action=attempt provider=hf-1 attempt=1``
and go to the ``callboard.router`` logger; a value a client chose (a request id, a
model name) is quoted by :func:`log_value` unless it is a plain token. When ``keep``
is on, every event is also kept as a tuple (time, request id, action, detail) so a
run can be compared event by event with another (determinism tests, experiment replays).
"""

from __future__ import annotations

import json
import logging
import re

logger = logging.getLogger("callboard.router")

_BARE = re.compile(r"[A-Za-z0-9._:/@+-]{1,200}")


def log_value(value: object) -> str:
    """``value`` fit for a ``key=value`` log line: bare if it is a plain token, else
    JSON-quoted (spaces, ``=``, quotes, newlines and control characters escaped), so
    a value a client sent can neither add a field nor plant a line."""
    text = str(value)
    return text if _BARE.fullmatch(text) else json.dumps(text[:1000])


class DecisionLog:
    __slots__ = ("_log_enabled", "active", "events", "keep")

    def __init__(self, keep: bool = False) -> None:
        self.keep = keep
        self.events: list[tuple[float, str, str, str]] = []
        # Whether the logger takes INFO is decided when the log is made (once per run).
        self._log_enabled = logger.isEnabledFor(logging.INFO)
        #: Whether emitting does anything; callers skip building details when not.
        self.active = keep or self._log_enabled

    def emit(self, now: float, request_id: str, action: str, detail: str = "") -> None:
        if self.keep:
            self.events.append((now, request_id, action, detail))
        if self._log_enabled:
            logger.info(
                "t=%.6f request_id=%s action=%s%s",
                now,
                log_value(request_id),
                action,
                " " + detail if detail else "",
            )
