"""Caller keys: read from the environment or from a file of hashes, checked per request.

Only SHA-256 digests are kept, in memory and in the file. A fast hash suffices
because the keys are long random tokens (``callboard caller-key`` makes 256-bit
ones; keys from the environment must be 32 characters or more): a slow KDF
(bcrypt, scrypt, argon2) protects guessable passwords from brute force, which a
256-bit secret does not need, and would cost every request tens of milliseconds
of CPU. A digest is looked up in a dict; its timing tells an attacker nothing
about any key, since they cannot choose inputs by their digests.

The file is re-read when it changes (looked at no more than every
``reload_every`` seconds, when a request comes), so revoking or adding a key
needs no restart; a file that no longer parses keeps the keys in force and is
logged.
"""

from __future__ import annotations

import hashlib
import logging
import os
import secrets
import time
import tomllib
from collections.abc import Iterable, Mapping
from pathlib import Path

import attrs

from actors.runtime.errors import CallboardError, InvalidSetting
from engine.routing.config import CONVERTER, ConfigError, describe_problems
from engine.serve.callers.config import KEY_ID, BudgetConfig, CallersConfig

logger = logging.getLogger("callboard.callers")

#: The shortest key accepted from the environment (hashing it must not make it guessable).
MIN_KEY_CHARS = 32
KEY_PREFIX = "cb-"
_DIGEST_CHARS = frozenset("0123456789abcdef")


def digest(key: str) -> str:
    """The hex SHA-256 of ``key``: what is stored and compared, never the key."""
    return hashlib.sha256(key.encode()).hexdigest()


def new_key() -> str:
    """A fresh caller key: 256 random bits, URL-safe."""
    return KEY_PREFIX + secrets.token_urlsafe(32)


#: The code of a request that sent no key at all (an unknown or revoked one is the class's).
MISSING_API_KEY = "missing_api_key"


class Unauthorized(CallboardError):
    """No key, an unknown key or a revoked one: 401, in OpenAI's shape."""

    code = "invalid_api_key"
    status = 401

    def __init__(self, message: str, reason: str) -> None:
        super().__init__(message)
        #: missing | unknown | revoked: what the metrics count (never the key).
        self.reason = reason
        if reason == "missing":
            self.code = MISSING_API_KEY
        self.headers = {"www-authenticate": 'Bearer realm="callboard"'}


@attrs.frozen
class CallerKey:
    """One caller: its id (what logs and metrics name), its key's digest and budget."""

    id: str
    digest: str = attrs.field(repr=False)
    budget: BudgetConfig = BudgetConfig()
    revoked: bool = False


@attrs.frozen
class KeyEntry:
    """One ``[[keys]]`` table of a keys file."""

    id: str
    sha256: str
    revoked: bool = False
    budget: BudgetConfig | None = None

    def __attrs_post_init__(self) -> None:
        if not KEY_ID.fullmatch(self.id):
            raise InvalidSetting("id", self.id, "letters, digits, . _ - (at most 64)")
        ok = len(self.sha256) == 64 and set(self.sha256) <= _DIGEST_CHARS
        if not ok:
            raise InvalidSetting("sha256", self.sha256, "64 lower-case hex digits")


@attrs.frozen
class _KeysFile:
    keys: tuple[KeyEntry, ...] = ()


def keys_from_env(config: CallersConfig, env: Mapping[str, str]) -> list[CallerKey]:
    """The keys in ``env[config.keys_env]`` (``ID=KEY,ID=KEY``); errors never show a key."""
    text = env.get(config.keys_env, "").strip()
    found: list[CallerKey] = []
    problems = []
    for n, pair in enumerate(p.strip() for p in text.split(",") if p.strip()):
        key_id, sep, key = pair.partition("=")
        key_id, key = key_id.strip(), key.strip()
        where = f"{config.keys_env} entry {n + 1}"
        if not sep or not KEY_ID.fullmatch(key_id):
            problems.append(f"{where}: not ID=KEY with an id of letters, digits, . _ -")
        elif len(key) < MIN_KEY_CHARS:
            problems.append(
                f"{where} (id {key_id!r}): key of {len(key)} characters; "
                f"allowed: {MIN_KEY_CHARS} or more (make one with `callboard caller-key`)"
            )
        else:
            budget = config.budgets.get(key_id, config.budget)
            found.append(CallerKey(key_id, digest(key), budget))
    if problems:
        raise ConfigError("environment", problems)
    return found


def keys_from_file(config: CallersConfig, path: Path) -> list[CallerKey]:
    """The keys of a keys file; a ConfigError lists every bad entry by its index."""
    source = str(path)
    try:
        raw = tomllib.loads(path.read_text())
    except FileNotFoundError:
        raise ConfigError(source, ["no such file (callers.keys_file)"]) from None
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
        raise ConfigError(source, [f"cannot be read as TOML: {exc}"]) from None
    try:
        entries = CONVERTER.structure(raw, _KeysFile).keys
    except Exception as exc:
        raise ConfigError(source, describe_problems(exc, "keys")) from None
    return [
        CallerKey(
            e.id,
            e.sha256,
            e.budget or config.budgets.get(e.id, config.budget),
            e.revoked,
        )
        for e in entries
    ]


def entry_toml(key_id: str, key: str) -> str:
    """The ``[[keys]]`` table for ``key``, to append to a keys file."""
    return f'\n[[keys]]\nid = "{key_id}"\nsha256 = "{digest(key)}"\n'


class KeyRing:
    """Every caller key in force, by digest; re-reads the keys file when it changes."""

    def __init__(self, config: CallersConfig, env: Mapping[str, str]) -> None:
        self.config = config
        self._env_keys = keys_from_env(config, env)
        self._path = Path(config.keys_file) if config.keys_file else None
        self._stamp: tuple[float, int] | None = None
        self._looked = -float("inf")
        file_keys = self._read() if self._path is not None else []
        self._by_digest = self._index(file_keys)

    @property
    def configured(self) -> bool:
        """Whether any key is configured (else the server is open to anyone)."""
        return bool(self._env_keys) or self._path is not None

    def keys(self) -> list[CallerKey]:
        return list(self._by_digest.values())

    def _read(self) -> list[CallerKey]:
        assert self._path is not None
        try:
            stat = os.stat(self._path)
            self._stamp = (stat.st_mtime, stat.st_size)
        except OSError:
            self._stamp = None
        return keys_from_file(self.config, self._path)

    def _index(self, file_keys: Iterable[CallerKey]) -> dict[str, CallerKey]:
        index: dict[str, CallerKey] = {}
        ids: dict[str, str] = {}
        for key in [*self._env_keys, *file_keys]:
            if ids.setdefault(key.id, key.digest) != key.digest:
                raise ConfigError("callers", [f"key id {key.id!r}: given twice, with two keys"])
            index[key.digest] = key
        return index

    def reload_if_changed(self) -> None:
        """Re-read the keys file if it changed; a bad one keeps the keys in force."""
        if self._path is None:
            return
        now = time.monotonic()  # the file changes on the wall clock, in any world
        if now - self._looked < self.config.reload_every:
            return
        self._looked = now
        try:
            stat = os.stat(self._path)
            stamp: tuple[float, int] | None = (stat.st_mtime, stat.st_size)
        except OSError:
            stamp = None
        if stamp == self._stamp:
            return
        try:
            self._by_digest = self._index(self._read())
        except ConfigError as exc:
            logger.error("callers keys file not reloaded, the keys in force stay: %s", exc)
            return
        logger.info("callers keys file reloaded: %d key(s)", len(self._by_digest))

    def authenticate(self, headers: Iterable[tuple[bytes, bytes]]) -> CallerKey:
        """The caller presenting ``Authorization: Bearer KEY`` or ``x-api-key: KEY``."""
        key = presented_key(headers)
        if key is None:
            raise Unauthorized(
                "missing API key: send it as Authorization: Bearer KEY or x-api-key: KEY",
                "missing",
            )
        self.reload_if_changed()
        caller = self._by_digest.get(digest(key))
        if caller is None:
            raise Unauthorized("incorrect API key provided", "unknown")
        if caller.revoked:
            raise Unauthorized(f"API key {caller.id!r} has been revoked", "revoked")
        return caller


def presented_key(headers: Iterable[tuple[bytes, bytes]]) -> str | None:
    """The key in the request's headers: the Authorization bearer token, else x-api-key."""
    bearer = api_key = None
    for name, value in headers:
        lowered = name.lower()
        if lowered == b"authorization":
            scheme, _, token = value.decode("latin-1").strip().partition(" ")
            if scheme.lower() == "bearer" and token.strip():
                bearer = token.strip()
        elif lowered == b"x-api-key" and value.strip():
            api_key = value.decode("latin-1").strip()
    return bearer or api_key
