"""The live router's config: real provider accounts plus the simulator's router tables.

A TOML file with ``[[providers]]`` entries (where each account lives, its
model, the environment variable holding its key, its limits and prices) and
the same ``[routing]``, ``[retry]``, ``[breaker]``, ``[cache]`` and ``[health]``
tables as a scenario, structured by the scenario's own converter, so both
worlds accept the same keys with the same errors. Keys are read from the
environment only when the router starts, and never kept in the config.
"""

from __future__ import annotations

import re
import tomllib
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import attrs

from actors.backends.caps import UpstreamCaps
from actors.backends.dialects import KINDS
from actors.backends.http import Endpoint, Secret
from actors.backends.proxies import PROXY_URL_FORM, ProxyURLError, parse_proxy
from actors.breaker import BreakerConfig
from actors.cache import CacheConfig
from actors.concurrency import ConcurrencyConfig
from actors.health import HealthConfig
from actors.limits import LimitSpec
from actors.messages import CAPABILITIES, OPENAI_FIELDS
from actors.provider import ProviderSpec
from actors.runtime.errors import InvalidSetting, require
from actors.timeouts import TimeoutOverrides, Timeouts
from engine.routing.config import CONVERTER, ConfigError, apply_override, describe_problems
from engine.routing.fleet import RouterConfig
from engine.routing.hedging import HedgingConfig
from engine.routing.moved import refuse_moved_settings
from engine.routing.policies import PolicyConfig
from engine.routing.retry import RetryConfig
from engine.routing.waiting import LineConfig
from engine.serve.callers.config import CallersConfig
from engine.serve.openai_format import UNKNOWN_FIELDS
from engine.serve.state.config import StateConfig
from engine.traces.config import TracesConfig

_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]*")
_ENV_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR")


@attrs.frozen
class ProviderConfig:
    """One real account. ``model`` is both the upstream model id and the name clients ask for."""

    name: str
    base_url: str
    kind: str = "openai"
    model: str = "default"
    api_key_env: str | None = None
    family: str | None = None
    tier: str = "strong"
    limits: tuple[LimitSpec, ...] = ()
    max_concurrency: int = 64
    queue_limit: int = 256
    #: Tokens the model takes in all: a request's prompt plus its max_tokens must fit.
    context_window: int = 8192
    input_cost_per_mtok: float = 0.0
    output_cost_per_mtok: float = 0.0
    priority: int = 0
    #: This account's own timeouts (e.g. a reasoning model's longer first_byte), each in
    #: place of ``[timeouts]``'s: a table, ``timeouts = {first_byte = 120}``.
    timeouts: TimeoutOverrides | None = None
    headers: dict[str, str] = attrs.field(factory=dict, repr=False)  # may hold credentials
    #: Ask this (OpenAI-compatible) account for the usage chunk of every stream, even when
    #: the client did not (stream_options.include_usage).
    stream_usage: bool = False
    anthropic_version: str = "2023-06-01"
    default_max_tokens: int = 1024
    #: What the model can do (tools, json_mode, vision); requests that need a
    #: capability go only to accounts that declare it. Default: all three.
    capabilities: tuple[str, ...] = CAPABILITIES

    def __attrs_post_init__(self) -> None:
        for capability in self.capabilities:
            require(
                "providers.capabilities",
                capability in CAPABILITIES,
                capability,
                " | ".join(CAPABILITIES),
            )
        require(
            "providers.name", bool(_NAME.fullmatch(self.name)), self.name, "letters, digits, . _ -"
        )
        require("providers.kind", self.kind in KINDS, self.kind, " | ".join(KINDS))
        require(
            "providers.base_url",
            self.base_url.startswith(("http://", "https://")),
            self.base_url,
            "an http:// or https:// URL",
        )
        require(
            "providers.api_key_env",
            self.api_key_env is None or bool(_ENV_NAME.fullmatch(self.api_key_env)),
            self.api_key_env,
            "the name of an environment variable, or unset for a server without keys",
        )
        require(
            "providers.default_max_tokens",
            self.default_max_tokens >= 1,
            self.default_max_tokens,
            ">= 1",
        )
        self.spec()  # the account's own checks (concurrency, prices ...) name their field

    def spec(self) -> ProviderSpec:
        return ProviderSpec(
            name=self.name,
            family=self.family or self.name,
            model=self.model,
            tier=self.tier,
            limits=self.limits,
            max_concurrency=self.max_concurrency,
            queue_limit=self.queue_limit,
            context_window=self.context_window,
            input_cost_per_mtok=self.input_cost_per_mtok,
            output_cost_per_mtok=self.output_cost_per_mtok,
            priority=self.priority,
            timeouts=self.timeouts,
            # An OpenAI-compatible account takes every field of OpenAI's API as sent.
            capabilities={*self.capabilities, *([OPENAI_FIELDS] if self.kind == "openai" else [])},
        )

    def endpoint(self, env: Mapping[str, str], index: int) -> Endpoint:
        """Where to reach this account, with its key read from ``env`` now."""
        key = None
        if self.api_key_env is not None:
            value = env.get(self.api_key_env, "")
            if not value:
                raise ConfigError(
                    "environment",
                    [
                        f"providers[{index}].api_key_env: environment variable "
                        f"{self.api_key_env!r} is not set (provider {self.name!r})"
                    ],
                )
            key = Secret(value)
        if self.kind == "anthropic":
            options: dict[str, Any] = {
                "version": self.anthropic_version,
                "default_max_tokens": self.default_max_tokens,
            }
        else:
            options = {"stream_usage": self.stream_usage}
        return Endpoint(
            self.name, self.kind, self.base_url, self.model, key, dict(self.headers), options
        )


@attrs.frozen
class ServerConfig:
    """``callboard serve`` only: where to listen, where to log, how many sessions to keep."""

    host: str = "127.0.0.1"
    port: int = 8080
    log_file: str = "callboard.log"
    log_level: str = "INFO"
    log_max_bytes: int = 10 * 1024 * 1024
    log_backups: int = 5
    max_body_bytes: int = 4 * 1024 * 1024
    session_idle_timeout: float = 3600.0
    max_sessions: int = 10_000
    #: On SIGTERM: seconds requests in flight may take to finish before they are cancelled.
    grace: float = 10.0
    #: Then, seconds to write the cancelled requests' answers before connections are cut.
    graceful_timeout: float = 5.0
    #: Clients: connections waiting to be accepted (the listen backlog; the kernel's
    #: net.core.somaxconn caps it). Thousands of interviews may connect at once.
    backlog: int = 4096
    #: Clients: seconds an idle kept-alive connection stays open, and the most a
    #: request's headers may take to arrive on a new one.
    keep_alive_timeout: float = 10.0
    #: Clients: seconds a request body may take to arrive whole (slower: 408).
    body_timeout: float = 30.0
    #: Clients: the most bytes of a request's line and headers.
    max_header_bytes: int = 16 * 1024
    #: Clients: a chat request field OpenAI's API does not have: "pass" it upstream
    #: untouched (servers with extensions take them), or "refuse" it with a 400 naming it.
    unknown_fields: str = "pass"
    #: Providers: open connections to every provider together (httpx's pool limit);
    #: each interview's streamed answer holds one while it is generated.
    max_connections: int = 4096
    #: Providers: seconds an idle connection is kept for reuse.
    keepalive_expiry: float = 30.0
    #: Providers: offer HTTP/2 (httpx with h2); servers that take it multiplex streams.
    http2: bool = False
    #: The proxy for every provider, "http(s)://[user:password@]host[:port]", over the
    #: environment's HTTPS_PROXY / HTTP_PROXY / ALL_PROXY; "": none; unset: the environment's.
    proxy: str | None = attrs.field(default=None, repr=False)  # may hold credentials
    #: Hosts reached without the proxy (NO_PROXY's form), over the environment's NO_PROXY.
    no_proxy: str | None = None

    def __attrs_post_init__(self) -> None:
        require("server.port", 0 <= self.port <= 65535, self.port, "0 .. 65535 (0: any free port)")
        require(
            "server.log_level", self.log_level in LOG_LEVELS, self.log_level, " | ".join(LOG_LEVELS)
        )
        require(
            "server.unknown_fields",
            self.unknown_fields in UNKNOWN_FIELDS,
            self.unknown_fields,
            " | ".join(UNKNOWN_FIELDS),
        )
        for name in (
            "log_max_bytes",
            "max_body_bytes",
            "max_sessions",
            "max_connections",
            "backlog",
            "max_header_bytes",
        ):
            require(f"server.{name}", getattr(self, name) >= 1, getattr(self, name), ">= 1")
        require("server.log_backups", self.log_backups >= 0, self.log_backups, ">= 0")
        require("server.grace", self.grace >= 0, self.grace, ">= 0 seconds")
        for name in (
            "session_idle_timeout",
            "graceful_timeout",
            "keep_alive_timeout",
            "body_timeout",
            "keepalive_expiry",
        ):
            require(f"server.{name}", getattr(self, name) > 0, getattr(self, name), "> 0 seconds")
        if self.proxy:
            try:
                parse_proxy(self.proxy, "server.proxy")
            except ProxyURLError as exc:  # shown without its credentials
                allowed = f'{PROXY_URL_FORM}, or "" for none ({exc.problem})'
                raise InvalidSetting("server.proxy", exc.shown, allowed) from None


@attrs.frozen
class LiveConfig:
    providers: tuple[ProviderConfig, ...]
    seed: int = 0
    routing: PolicyConfig = PolicyConfig()
    retry: RetryConfig = RetryConfig()
    timeouts: Timeouts = Timeouts()
    breaker: BreakerConfig = BreakerConfig()
    cache: CacheConfig = CacheConfig()
    health: HealthConfig = HealthConfig(ping_every=30.0)
    server: ServerConfig = ServerConfig()
    hedging: HedgingConfig = HedgingConfig()
    concurrency: ConcurrencyConfig = ConcurrencyConfig()
    line: LineConfig = LineConfig()
    state: StateConfig = StateConfig()
    upstream: UpstreamCaps = UpstreamCaps()
    callers: CallersConfig = CallersConfig()
    traces: TracesConfig = TracesConfig()

    def __attrs_post_init__(self) -> None:
        require("providers", len(self.providers) >= 1, self.providers, "at least one [[providers]]")
        names = [p.name for p in self.providers]
        duplicates = sorted({n for n in names if names.count(n) > 1})
        require("providers.name", not duplicates, duplicates, "distinct names")
        require("seed", self.seed >= 0, self.seed, "an integer >= 0")

    @property
    def router_config(self) -> RouterConfig:
        return RouterConfig.of(self)


def provider_entry(assignment: str, model: str = "default") -> dict[str, Any]:
    """The raw ``[[providers]]`` table for ``--provider NAME=BASE_URL`` (OpenAI-compatible)."""
    name, sep, url = assignment.partition("=")
    if not sep or not name.strip() or not url.strip():
        raise ConfigError("--provider", [f"{assignment!r} is not NAME=BASE_URL"])
    return {"name": name.strip(), "base_url": url.strip(), "kind": "openai", "model": model}


def structure_config(raw: dict[str, Any], source: str) -> LiveConfig:
    try:
        refuse_moved_settings(raw)
        return CONVERTER.structure(raw, LiveConfig)
    except Exception as exc:  # cattrs groups, InvalidSetting, ValueError: all listed by key
        raise ConfigError(source, describe_problems(exc, "config")) from None


def load_config(
    path: str | Path | None = None,
    *,
    providers: Sequence[str] = (),
    provider_model: str = "default",
    overrides: Iterable[str] = (),
    redis: str | None = None,
) -> LiveConfig:
    """A config file (or none), plus ``--provider`` entries, ``--redis`` and ``--set key=value``."""
    raw: dict[str, Any] = {}
    source = "command line"
    if path is not None:
        source = str(path)
        file = Path(path)
        if not file.is_file():
            raise ConfigError(source, ["no such file"])
        try:
            raw = tomllib.loads(file.read_text())
        except tomllib.TOMLDecodeError as exc:
            raise ConfigError(source, [f"not valid TOML: {exc}"]) from None
    extra = [provider_entry(p, provider_model) for p in providers]
    if extra:
        raw["providers"] = [*raw.get("providers", []), *extra]
    if redis is not None:
        state = raw.setdefault("state", {})
        if not isinstance(state, dict):
            raise ConfigError(source, ["state: a table ([state]), not a value"])
        state["redis"] = redis
    for assignment in overrides:
        apply_override(raw, assignment)
    if not raw.get("providers"):
        raise ConfigError(source, ["no providers: add [[providers]] tables or --provider NAME=URL"])
    return structure_config(raw, source)
