"""The state store in Redis, through coredis (which runs on trio through anyio).

Everything that must be atomic across routers is one Lua script: taking
rate-limit tokens (every limit of a request checked, then all charged, or none),
appending to the cache log, releasing a session lock only if this router holds
it. Scripts read the time with Redis ``TIME``, so buckets refill and windows
roll on one clock whichever router asks, and hand back seconds remaining.
Timeouts and failures are not handled here: :class:`engine.serve.state.guard.GuardedStore`
bounds every call.
"""

from __future__ import annotations

import contextlib
import json
import math
from collections.abc import AsyncIterator, Sequence
from typing import Any

import coredis
from coredis.retry import NoRetryPolicy
from coredis.typing import RedisError

from actors.limits import LimitSpec
from engine.serve.state.store import (
    HOLD_KINDS,
    CacheEntry,
    Charge,
    Correction,
    Quarantine,
    SessionRecord,
    Taken,
)

# Errors a Redis call can end in besides a timeout; the guard turns them into
# StoreUnavailable. (coredis raises the builtin TimeoutError for its own timeouts.)
# ValueError and KeyError: a value under our prefix that is not one of ours; the
# router must not stop for it.
ERRORS: tuple[type[BaseException], ...] = (RedisError, OSError, TimeoutError, ValueError, KeyError)

# ARGV per limit: mode ("bucket" | "window"), size, per (s), amount, burst (what a full
# bucket holds: the size, or one slice's share when the limit is enforced over slices; an
# amount above it enters only a full bucket and leaves it in debt). Returns
# {"0", 0} when charged, else {seconds to wait, 1-based index of the binding
# limit} ("inf" when the amount can never fit); then per limit the units used
# and the seconds until its window resets. Numbers go back as strings: Redis
# would truncate a Lua number to an integer.
_TAKE = """
local t = redis.call('TIME')
local now = tonumber(t[1]) + tonumber(t[2]) / 1000000
local worst, binding = 0, 0
local levels = {}
for i = 1, #KEYS do
  local b = (i - 1) * 5
  local mode, size = ARGV[b + 1], tonumber(ARGV[b + 2])
  local per, amount = tonumber(ARGV[b + 3]), tonumber(ARGV[b + 4])
  local burst = tonumber(ARGV[b + 5])
  local wait = 0
  if mode == 'bucket' then
    local rate = size / per
    local h = redis.call('HMGET', KEYS[i], 'level', 'at')
    local level = tonumber(h[1]) or burst
    local at = tonumber(h[2]) or now
    if now > at then level = math.min(burst, level + (now - at) * rate) end
    levels[i] = level
    local need = math.min(amount, burst)
    if amount > size then wait = math.huge
    elseif need - level > 1e-9 * burst then wait = (need - level) / rate end
  else
    local window = math.floor(now / per)
    local h = redis.call('HMGET', KEYS[i], 'window', 'used')
    local used = 0
    if tonumber(h[1]) == window then used = tonumber(h[2]) or 0 end
    levels[i] = used
    if amount > size then wait = math.huge
    elseif used + amount > size then wait = (window + 1) * per - now end
  end
  if wait > worst then worst, binding = wait, i end
end
local charged = worst <= 0
local out = {'0', 0}
if not charged then
  if worst == math.huge then out = {'inf', binding}
  else out = {string.format('%.6f', worst), binding} end
end
-- Then per limit: units used after this call, and seconds until a window resets.
for i = 1, #KEYS do
  local b = (i - 1) * 5
  local mode, size = ARGV[b + 1], tonumber(ARGV[b + 2])
  local per, amount = tonumber(ARGV[b + 3]), tonumber(ARGV[b + 4])
  local burst = tonumber(ARGV[b + 5])
  if not charged then amount = 0 end
  if mode == 'bucket' then
    if charged then
      redis.call('HSET', KEYS[i], 'level', string.format('%.17g', levels[i] - amount),
        'at', string.format('%.6f', now))
      -- A bucket left alone for `per` seconds is full again: the key may go.
      redis.call('PEXPIRE', KEYS[i], math.ceil(per * 1000) + 1000)
    end
    out[#out + 1] = string.format('%.17g', burst - (levels[i] - amount))
    out[#out + 1] = '0'
  else
    local window = math.floor(now / per)
    if charged then
      redis.call('HSET', KEYS[i], 'window', string.format('%d', window),
        'used', string.format('%.17g', levels[i] + amount))
      redis.call('PEXPIREAT', KEYS[i], math.ceil((window + 1) * per * 1000) + 1000)
    end
    out[#out + 1] = string.format('%.17g', levels[i] + amount)
    out[#out + 1] = string.format('%.6f', (window + 1) * per - now)
  end
end
return out
"""

# KEYS: limit keys. ARGV, 6 per key: mode, size, per, amount (negative: give back),
# seconds since the charge, burst. A bucket moves its level (never above its burst); a
# window corrects what it counted only if the charge fell in the window still open.
_ADJUST = """
local t = redis.call('TIME')
local now = tonumber(t[1]) + tonumber(t[2]) / 1000000
for i = 1, #KEYS do
  local b = (i - 1) * 6
  local mode, size = ARGV[b + 1], tonumber(ARGV[b + 2])
  local per, amount = tonumber(ARGV[b + 3]), tonumber(ARGV[b + 4])
  local elapsed, burst = tonumber(ARGV[b + 5]), tonumber(ARGV[b + 6])
  if mode == 'bucket' then
    local h = redis.call('HMGET', KEYS[i], 'level', 'at')
    local level, at = tonumber(h[1]), tonumber(h[2])
    if level then
      if now > at then level = math.min(burst, level + (now - at) * size / per) end
      level = math.min(burst, level - amount)
      redis.call('HSET', KEYS[i], 'level', string.format('%.17g', level),
        'at', string.format('%.6f', now))
      -- The key may go once the bucket is full again: later than usual if left in debt.
      local refill = (burst - level) / (size / per)
      redis.call('PEXPIRE', KEYS[i], math.ceil(math.max(per, refill) * 1000) + 1000)
    end
  else
    local h = redis.call('HMGET', KEYS[i], 'window', 'used')
    if tonumber(h[1]) == math.floor((now - elapsed) / per) then
      local used = math.max(0, (tonumber(h[2]) or 0) + amount)
      redis.call('HSET', KEYS[i], 'used', string.format('%.17g', used))
    end
  end
end
return 1
"""

# KEYS: quarantine keys. Returns {value or false, pttl, ...}.
_QUARANTINES = """
local out = {}
for i = 1, #KEYS do
  out[2 * i - 1] = redis.call('GET', KEYS[i])
  out[2 * i] = redis.call('PTTL', KEYS[i])
end
return out
"""

_UNLOCK = """
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
"""

# KEYS[1]: the cache log (a stream). ARGV: key, value, ttl ms, origin, max entries.
_PUT_CACHE = """
local t = redis.call('TIME')
local now_ms = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
redis.call('XADD', KEYS[1], 'MAXLEN', '~', ARGV[5], '*', 'k', ARGV[1], 'v', ARGV[2],
  'exp', string.format('%d', now_ms + tonumber(ARGV[3])), 'o', ARGV[4])
return 1
"""

# KEYS[1]: the cache log. ARGV: cursor ("" for the start), count. Returns {now ms, entries}.
_CACHE_SINCE = """
local t = redis.call('TIME')
local now_ms = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local start = '-'
if ARGV[1] ~= '' then start = '(' .. ARGV[1] end
return {string.format('%d', now_ms),
  redis.call('XRANGE', KEYS[1], start, '+', 'COUNT', tonumber(ARGV[2]))}
"""

# KEYS[1]: one provider's health hash. ARGV: origin, figures JSON, ttl ms.
_PUT_HEALTH = """
local t = redis.call('TIME')
local now_ms = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local expires = string.format('%d', now_ms + tonumber(ARGV[3]))
redis.call('HSET', KEYS[1], ARGV[1], expires .. '|' .. ARGV[2])
redis.call('PEXPIRE', KEYS[1], tonumber(ARGV[3]))
return 1
"""

# KEYS: health hashes. Drops expired routers' fields; returns {now ms, hgetall, ...}.
_HEALTH = """
local t = redis.call('TIME')
local now_ms = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local out = {}
for i = 1, #KEYS do
  local fields = redis.call('HGETALL', KEYS[i])
  local live = {}
  for j = 1, #fields, 2 do
    local value = fields[j + 1]
    local bar = string.find(value, '|', 1, true)
    if tonumber(string.sub(value, 1, bar - 1)) > now_ms then
      live[#live + 1] = fields[j]
      live[#live + 1] = string.sub(value, bar + 1)
    else
      redis.call('HDEL', KEYS[i], fields[j])
    end
  end
  out[i] = live
end
return out
"""


def _limit_args(spec: LimitSpec, *values: float) -> list[str]:
    """A limit's script arguments: mode, size and period, then ``values``. Numbers go as
    ``repr`` of floats: exact, and never truncated to integers."""
    return [spec.mode, repr(float(spec.limit)), repr(float(spec.per))] + [
        repr(float(v)) for v in values
    ]


class RedisStore:
    """Shared state in one Redis database; enter :meth:`connected` before use."""

    name = "redis"
    errors = ERRORS

    def __init__(self, url: str, *, prefix: str = "callboard", timeout: float = 0.1) -> None:
        self.url = url
        self.prefix = prefix
        # No retries inside coredis: the guard decides when Redis is tried again,
        # and a retried call could outlive the caller's short timeout.
        self.client = coredis.Redis.from_url(
            url,
            decode_responses=True,
            connect_timeout=timeout,
            stream_timeout=timeout,
            retry_policy=NoRetryPolicy(),
        )
        register = self.client.register_script
        self._take = register(_TAKE)
        self._adjust = register(_ADJUST)
        self._quarantines = register(_QUARANTINES)
        self._unlock = register(_UNLOCK)
        self._put_cache = register(_PUT_CACHE)
        self._cache_since = register(_CACHE_SINCE)
        self._put_health = register(_PUT_HEALTH)
        self._health = register(_HEALTH)

    @contextlib.asynccontextmanager
    async def connected(self) -> AsyncIterator[RedisStore]:
        """The client's lifetime (coredis 6 clients are async context managers).

        Entering does not need Redis to be up: connections are made on first use.
        """
        async with self.client:
            yield self

    def _key(self, *parts: str) -> str:
        return ":".join((self.prefix, *parts))

    async def ping(self) -> None:
        await self.client.ping()

    async def take(self, charges: Sequence[Charge]) -> Taken:
        keys = [self._key("limit", c.key) for c in charges]
        args = [a for c in charges for a in _limit_args(c.spec, c.amount, c.spec.burst)]
        reply: list[Any] = await self._take(keys=keys, args=args)  # a script's reply: a list
        wait, binding, *levels = reply
        seconds = math.inf if wait == "inf" else float(wait)
        used = tuple(float(x) for x in levels[::2])
        resets_in = tuple(float(x) for x in levels[1::2])
        if seconds <= 0:
            return Taken(0.0, "", used, resets_in)
        return Taken(seconds, charges[int(binding) - 1].key, used, resets_in)

    async def adjust(self, corrections: Sequence[Correction]) -> None:
        keys = [self._key("limit", c.key) for c in corrections]
        args = [
            a for c in corrections for a in _limit_args(c.spec, c.amount, c.elapsed, c.spec.burst)
        ]
        await self._adjust(keys=keys, args=args)

    async def put_quarantine(self, quarantine: Quarantine) -> None:
        value = json.dumps(
            {
                "ejections": quarantine.ejections,
                "reason": quarantine.reason,
                "origin": quarantine.origin,
                "stamp": quarantine.stamp,
            }
        )
        ms = max(1, math.ceil(quarantine.remaining * 1000))
        await self.client.set(self._hold_key(quarantine.kind, quarantine.provider), value, px=ms)

    def _hold_key(self, kind: str, provider: str) -> str:
        return self._key("quarantine" if kind == "breaker" else kind, provider)

    async def quarantines(self, providers: Sequence[str]) -> list[Quarantine]:
        if not providers:
            return []
        held = [(kind, p) for kind in HOLD_KINDS for p in providers]
        reply: list[Any] = await self._quarantines(
            keys=[self._hold_key(kind, p) for kind, p in held]
        )
        found = []
        for (kind, provider), value, pttl in zip(held, reply[::2], reply[1::2], strict=True):
            if value is None or int(pttl) <= 0:
                continue
            data = json.loads(value)
            found.append(
                Quarantine(
                    provider,
                    int(pttl) / 1000,
                    int(data["ejections"]),
                    str(data["reason"]),
                    str(data["origin"]),
                    str(data["stamp"]),
                    kind,
                )
            )
        return found

    async def save_session(self, record: SessionRecord, ttl: float) -> None:
        value = json.dumps(
            {
                "system_prompt": record.system_prompt,
                "history": record.history,
                "providers_used": record.providers_used,
                "version": record.version,
            }
        )
        await self.client.set(
            self._key("session", record.session_id), value, px=max(1, math.ceil(ttl * 1000))
        )

    async def load_session(self, session_id: str) -> SessionRecord | None:
        value = await self.client.get(self._key("session", session_id))
        if value is None:
            return None
        data = json.loads(value)
        return SessionRecord(
            session_id,
            data["system_prompt"],
            tuple((role, content) for role, content in data["history"]),
            tuple(data["providers_used"]),
            int(data["version"]),
        )

    async def lock_session(self, session_id: str, owner: str, ttl: float) -> bool:
        key = self._key("session-lock", session_id)
        ms = max(1, math.ceil(ttl * 1000))
        if await self.client.set(key, owner, condition=coredis.PureToken.NX, px=ms):
            return True
        return await self.client.get(key) == owner

    async def unlock_session(self, session_id: str, owner: str) -> None:
        await self._unlock(keys=[self._key("session-lock", session_id)], args=[owner])

    async def put_cache(self, entry: CacheEntry, max_entries: int) -> None:
        ms = max(1, math.ceil(entry.remaining * 1000))
        args = [entry.key, entry.value, str(ms), entry.origin, str(max_entries)]
        await self._put_cache(keys=[self._key("cache")], args=args)

    async def cache_since(self, cursor: str, count: int) -> tuple[list[CacheEntry], str]:
        reply: list[Any] = await self._cache_since(
            keys=[self._key("cache")], args=[cursor, str(count)]
        )
        now_ms, rows = reply
        now = int(now_ms)
        entries = []
        for entry_id, flat in rows:
            fields = dict(zip(flat[::2], flat[1::2], strict=True))
            cursor = entry_id
            left = (int(fields["exp"]) - now) / 1000
            if left > 0:
                entries.append(CacheEntry(fields["k"], fields["v"], left, fields["o"]))
        return entries, cursor

    async def put_health(self, provider: str, origin: str, figures: dict[str, Any], ttl: float):
        ms = str(max(1, math.ceil(ttl * 1000)))
        args = [origin, json.dumps(figures), ms]
        await self._put_health(keys=[self._key("health", provider)], args=args)

    async def health(self, providers: Sequence[str]) -> dict[str, dict[str, dict[str, Any]]]:
        if not providers:
            return {}
        reply: list[Any] = await self._health(keys=[self._key("health", p) for p in providers])
        return {
            provider: {
                origin: json.loads(value)
                for origin, value in zip(fields[::2], fields[1::2], strict=True)
            }
            for provider, fields in zip(providers, reply, strict=True)
        }
