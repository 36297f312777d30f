"""Whether a live account's provider can be reached: what each exchange with it says.

A connection that cannot be made at all (refused, a name that does not resolve, a TLS
handshake that fails, no connection within the connect timeout) says the provider is
unreachable; any HTTP answer, whatever its status, says it is reachable again. Nothing
else says either: an attempt cut short while connecting, or a connection that broke
after it was made, leaves the mark as it was.

The backend tells a :class:`ReachFeed` (made before both ends, like the limit feed),
and the health monitor, which keeps the mark, subscribes to it. (The HTTP backend tells
a failed connection from a broken one: :func:`actors.backends.http.connect_failed`. It
lives there, so that the simulator, which builds feeds too, never imports httpx.)
"""

from __future__ import annotations

from collections.abc import Callable

#: What a feed carries: the reason the provider could not be reached, or this (reached).
REACHED = ""


class ReachFeed:
    """Where a live account's backend reports whether it reached its provider.

    The backend is given :meth:`report` at construction; the health monitor subscribes
    when the fleet is built. A report is a reason (unreachable) or :data:`REACHED`.
    """

    __slots__ = ("_readers",)

    def __init__(self) -> None:
        self._readers: list[Callable[[str], None]] = []

    def subscribe(self, reader: Callable[[str], None]) -> None:
        self._readers.append(reader)

    def report(self, reason: str) -> None:
        for reader in self._readers:
            reader(reason)
