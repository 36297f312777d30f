"""The response cache: exact match on a normalised request (or an explicit key).

:class:`CacheCore` is the pure LRU + TTL table (tested with hypothesis);
:class:`Cache` is its actor: lookups are plain methods (they never wait), writes
arrive as messages, and a periodic sweep drops expired entries so memory stays
flat when keys are never asked for again.
"""

from __future__ import annotations

import collections
import hashlib
import json
import math
from collections.abc import Callable
from typing import Any

import attrs

from actors.messages import ChatRequest, Completion
from actors.runtime import clock
from actors.runtime.actor import Actor
from actors.runtime.errors import InvalidSetting

#: Body fields that change how or to whom an answer is delivered, never what it says.
ANSWER_NEUTRAL = frozenset(
    {
        "stream",
        "stream_options",
        "user",
        "metadata",
        "store",
        "model",  # the request's model is keyed on its own
        "request_id",
        "kind",
        "deadline",
        "bypass_cache",
        "cache_key",
        "priority",
    }
)


def request_key(request: ChatRequest) -> str:
    """The cache key: the explicit one, or a hash of the normalised request.

    A client's whole body (tools, response_format, seed, stop, logit_bias ...) is
    keyed field by field, bar those in :data:`ANSWER_NEUTRAL`, so two requests share
    an answer only when nothing that shapes it differs.
    """
    if request.cache_key is not None:
        return request.cache_key
    digest = hashlib.blake2b(digest_size=16)
    body = request.body
    if body is not None:
        shaping = {k: v for k, v in body.items() if k not in ANSWER_NEUTRAL}
        digest.update(request.model.encode() + b"\x1f")
        digest.update(json.dumps(shaping, sort_keys=True, separators=(",", ":")).encode())
        return digest.hexdigest()
    temperature = request.temperature
    # float(): a temperature of 0 and of 0.0 is the same request.
    shown = "None" if temperature is None else repr(float(temperature))
    settings = f"{request.model}\x1f{shown}\x1f{request.max_tokens!r}"
    digest.update(settings.encode())
    for message in request.messages:
        digest.update(f"\x1e{message.role}\x1f".encode())
        digest.update(_collapse_whitespace(message.content).encode())
        if message.padding:  # filler follows: its length says all of it
            digest.update(b"\x1d%d" % message.padding)
    return digest.hexdigest()


#: What str.split() splits an ASCII text at, besides one space: any other ASCII
#: whitespace, and two spaces in a row.
_ASCII_BREAKS = ("  ", "\n", "\t", "\r", "\x0b", "\x0c", "\x1c", "\x1d", "\x1e", "\x1f")


def _collapse_whitespace(text: str) -> str:
    """``text`` with each run of whitespace made one space, and none at either end.

    ``" ".join(text.split())`` does it several times faster than a regex; most texts
    (and every text of a simulation) have nothing to collapse, which a few substring
    searches of an ASCII text find faster still, without splitting it into words.
    """
    if text.isascii() and text[:1] != " " and text[-1:] != " ":
        for needle in _ASCII_BREAKS:
            if needle in text:
                break
        else:
            return text
    return " ".join(text.split())


@attrs.frozen
class CacheConfig:
    enabled: bool = True
    ttl: float = 30 * 86400.0
    max_entries: int = 10_000
    sweep_every: float = 300.0

    def __attrs_post_init__(self) -> None:
        if not self.ttl > 0:
            raise InvalidSetting("cache.ttl", self.ttl, "> 0 seconds")
        if self.max_entries < 1:
            raise InvalidSetting("cache.max_entries", self.max_entries, ">= 1")
        if not (self.sweep_every > 0 and math.isfinite(self.sweep_every)):
            raise InvalidSetting("cache.sweep_every", self.sweep_every, "> 0 seconds")


class CacheCore:
    """LRU table with per-entry expiry; counts hits, misses and evictions."""

    def __init__(self, ttl: float, max_entries: int) -> None:
        self.ttl = ttl
        self.max_entries = max_entries
        self._entries: collections.OrderedDict[str, tuple[float, Any]] = collections.OrderedDict()
        self.hits = 0
        self.misses = 0
        self.evictions = 0
        self.expirations = 0

    def __len__(self) -> int:
        return len(self._entries)

    def get(self, now: float, key: str) -> Any | None:
        entry = self._entries.get(key)
        if entry is None:
            self.misses += 1
            return None
        if entry[0] <= now:
            del self._entries[key]
            self.expirations += 1
            self.misses += 1
            return None
        self._entries.move_to_end(key)
        self.hits += 1
        return entry[1]

    def put(self, now: float, key: str, value: Any, ttl: float | None = None) -> None:
        self._entries[key] = (now + (self.ttl if ttl is None else ttl), value)
        self._entries.move_to_end(key)
        while len(self._entries) > self.max_entries:
            self._entries.popitem(last=False)
            self.evictions += 1

    def sweep(self, now: float) -> int:
        expired = [k for k, (expires, _) in self._entries.items() if expires <= now]
        for key in expired:
            del self._entries[key]
        self.expirations += len(expired)
        return len(expired)


@attrs.frozen
class Store:
    key: str
    value: Completion


@attrs.frozen
class Sweep:
    pass


class Cache(Actor):
    """The cache actor; one per router."""

    def __init__(
        self,
        config: CacheConfig,
        name: str = "cache",
        on_store: Callable[[str, Completion], None] | None = None,
    ) -> None:
        super().__init__(name)
        self.config = config
        self.core = CacheCore(config.ttl, config.max_entries)
        #: Called after each write (shared state copies entries to other routers).
        self.on_store = on_store

    def on_start(self) -> None:
        self.core = CacheCore(self.config.ttl, self.config.max_entries)
        self.every(self.config.sweep_every, Sweep)

    def lookup(self, key: str) -> Completion | None:
        return self.core.get(clock.now(), key)

    def store(self, key: str, completion: Completion) -> None:
        """Queue a write; failures are never offered, only completions."""
        self.tell(Store(key, completion))

    def adopt(self, key: str, completion: Completion, ttl: float) -> None:
        """Keep an entry another router wrote, for its remaining ``ttl``: at once (lookups
        find it from now on), and not offered to ``on_store`` again."""
        self.core.put(clock.now(), key, completion, ttl)

    async def receive(self, message: object) -> None:
        match message:
            case Store(key, value):
                self.core.put(clock.now(), key, value)
                if self.on_store is not None:
                    self.on_store(key, value)
            case Sweep():
                self.core.sweep(clock.now())
            case _:
                raise TypeError(f"cache got an unknown message {message!r}")
