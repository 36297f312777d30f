"""Logs of the live router: key=value lines with the request id, to the console and a rotating file.

The router's decision log (``callboard.router``) already writes one line per
routing step with its ``request_id``; the HTTP surface adds one access line per
response (``callboard.http``). Every handler also scrubs the API keys it is
given, as a last line of defence: no code path is meant to log one, and this
makes sure a future one cannot.
"""

from __future__ import annotations

import contextlib
import logging
import logging.handlers
import sys
from collections.abc import Iterable, Iterator
from pathlib import Path

from actors.backends.http import Secret

FORMAT = "%(asctime)s %(levelname)s %(name)s %(message)s"


class ScrubSecrets(logging.Filter):
    """Replaces every known key in a record's final message with ``***``."""

    def __init__(self, secrets: Iterable[Secret]) -> None:
        super().__init__()
        self.secrets = [s for s in secrets if s is not None]

    def filter(self, record: logging.LogRecord) -> bool:
        if not self.secrets:
            return True
        message = record.getMessage()
        scrubbed = message
        for secret in self.secrets:
            scrubbed = secret.scrub(scrubbed)
        if record.exc_info and record.exc_text is None:
            record.exc_text = logging.Formatter().formatException(record.exc_info)
        if record.exc_text:
            for secret in self.secrets:
                record.exc_text = secret.scrub(record.exc_text)
        if scrubbed != message:
            record.msg, record.args = scrubbed, None
        return True


@contextlib.contextmanager
def logging_to(
    log_file: str | Path | None,
    *,
    level: str = "INFO",
    secrets: Iterable[Secret] = (),
    console: bool = True,
    max_bytes: int = 10 * 1024 * 1024,
    backups: int = 5,
) -> Iterator[list[logging.Handler]]:
    """Send ``callboard.*`` logs to stderr and a rotating file while the block runs.

    Configure it before the router starts: the decision log decides once, at
    start, whether its INFO lines are wanted.
    """
    handlers: list[logging.Handler] = []
    if console:
        handlers.append(logging.StreamHandler(sys.stderr))
    if log_file:
        Path(log_file).parent.mkdir(parents=True, exist_ok=True)
        handlers.append(
            logging.handlers.RotatingFileHandler(
                log_file, maxBytes=max_bytes, backupCount=backups, encoding="utf-8"
            )
        )
    scrub = ScrubSecrets(secrets)
    formatter = logging.Formatter(FORMAT)
    for handler in handlers:
        handler.setFormatter(formatter)
        handler.addFilter(scrub)
    root = logging.getLogger("callboard")
    previous_level, previous_propagate = root.level, root.propagate
    root.setLevel(level)
    root.propagate = False
    for handler in handlers:
        root.addHandler(handler)
    try:
        yield handlers
    finally:
        for handler in handlers:
            root.removeHandler(handler)
            handler.close()
        root.setLevel(previous_level)
        root.propagate = previous_propagate
