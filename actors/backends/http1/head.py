"""The head of an HTTP/1.x response: its status line and header fields, read off a buffer.

Shared by responses and by a proxy's answer to CONNECT.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterator, Mapping

from actors.backends.http1.errors import ProtocolError
from actors.backends.http1.urls import Origin

MAX_HEAD_BYTES = 64 * 1024


class Headers(Mapping[str, str]):
    """Response header fields; names are case-insensitive."""

    __slots__ = ("_fields",)

    def __init__(self, fields: dict[str, str]) -> None:
        self._fields = fields  # lower-case names

    def __getitem__(self, name: str) -> str:
        return self._fields[name.lower()]

    def get(self, name: str, default: str | None = None) -> str | None:  # type: ignore[override]
        return self._fields.get(name.lower(), default)

    def __contains__(self, name: object) -> bool:
        return isinstance(name, str) and name.lower() in self._fields

    def __iter__(self) -> Iterator[str]:
        return iter(self._fields)

    def __len__(self) -> int:
        return len(self._fields)

    def items(self):  # type: ignore[override]  # the dict's own view: Mapping's is slow
        return self._fields.items()

    def __repr__(self) -> str:
        return f"Headers({list(self._fields)})"


async def read_head(
    buffer: bytearray, receive: Callable[[], Awaitable[bytes]], origin: Origin
) -> bytes:
    """The next head in ``buffer`` (receiving as needed), without its blank line; the
    bytes after it stay in ``buffer``."""
    start = 0
    while (end := buffer.find(b"\r\n\r\n", start)) < 0:
        if len(buffer) > MAX_HEAD_BYTES:
            raise ProtocolError(f"{origin}: response head over {MAX_HEAD_BYTES} bytes")
        start = max(0, len(buffer) - 3)
        buffer += await receive()
    head = bytes(buffer[:end])
    del buffer[: end + 4]
    return head


def parse_head(head: bytes, origin: Origin) -> tuple[int, str, bool, dict[str, str]]:
    """(status, reason, HTTP/1.1?, fields) of a response head (without its blank line)."""
    try:
        text = head.decode("latin-1")
        status_line, *lines = text.split("\r\n")
        version, _, rest = status_line.partition(" ")
        code, _, reason = rest.partition(" ")
        status = int(code)
    except ValueError:
        raise ProtocolError(f"{origin}: not an HTTP response: {head[:40]!r}") from None
    if version not in ("HTTP/1.1", "HTTP/1.0") or len(code) != 3 or not 100 <= status <= 999:
        raise ProtocolError(f"{origin}: not an HTTP/1.x status line: {status_line[:40]!r}")
    fields: dict[str, str] = {}
    for line in lines:
        name, colon, value = line.partition(":")
        if not colon or not name or name[-1] in " \t" or line[0] in " \t":
            raise ProtocolError(f"{origin}: malformed header line {line[:40]!r}")
        name = name.lower()
        value = value.strip(" \t")
        fields[name] = f"{fields[name]}, {value}" if name in fields else value
    return status, reason, version == "HTTP/1.1", fields
