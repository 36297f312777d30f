"""``[callers]``: who may call ``callboard serve``, and how much each caller may spend.

Keys come from the environment (``CALLBOARD_KEYS="web=KEY,batch=KEY"``) or from a
file of their SHA-256 hashes (``callers.keys_file``, see :mod:`engine.serve.callers.keys`).
A budget caps a key's requests, tokens and cost per minute (a refilling bucket, as
OpenAI and Anthropic enforce their per-minute limits) and per day (a fixed window, as
daily quotas reset), with the same limiters as the provider accounts' own limits.
"""

from __future__ import annotations

import math
import re

import attrs

from actors.limits import LimitSpec
from actors.runtime.errors import require

MINUTE = 60.0
DAY = 86_400.0
#: Budget fields: (unit of the limit, seconds it counts over, mode).
BUDGET_FIELDS: dict[str, tuple[str, float, str]] = {
    "requests_per_minute": ("requests", MINUTE, "bucket"),
    "requests_per_day": ("requests", DAY, "window"),
    "tokens_per_minute": ("tokens", MINUTE, "bucket"),
    "tokens_per_day": ("tokens", DAY, "window"),
    "cost_per_minute": ("dollars", MINUTE, "bucket"),
    "cost_per_day": ("dollars", DAY, "window"),
}
#: Routes a caller may reach without a key when listed in ``callers.public``.
PUBLIC_ROUTES = (
    "health",
    "health_live",
    "health_ready",
    "metrics",
    "openapi",
    "stats",
    "models_health",
    "models_best",
    "status",
    "status_events",
)
#: Routes that show every account and every caller's spending: a key needs to be listed
#: in ``callers.admins`` (or the route in ``callers.public``).
ADMIN_ROUTES = frozenset({"status", "status_events"})
KEY_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}")
_ENV_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


def _limit(instance: object, attribute: attrs.Attribute, value: float | None) -> None:
    ok = value is None or (
        isinstance(value, int | float)
        and not isinstance(value, bool)
        and math.isfinite(value)
        and value > 0
    )
    require(f"budget.{attribute.name}", ok, value, "a finite number > 0, or unset for no cap")


@attrs.frozen
class BudgetConfig:
    """What one key may spend; every field unset (the default): no cap."""

    requests_per_minute: float | None = attrs.field(default=None, validator=_limit)
    requests_per_day: float | None = attrs.field(default=None, validator=_limit)
    tokens_per_minute: float | None = attrs.field(default=None, validator=_limit)
    tokens_per_day: float | None = attrs.field(default=None, validator=_limit)
    #: Dollars, as the providers' prices bill the answers.
    cost_per_minute: float | None = attrs.field(default=None, validator=_limit)
    cost_per_day: float | None = attrs.field(default=None, validator=_limit)

    def limits(self) -> tuple[LimitSpec, ...]:
        """The limits to enforce, named as the fields (what a 429 names as binding)."""
        specs = []
        for name, (unit, per, mode) in BUDGET_FIELDS.items():
            value = getattr(self, name)
            if value is not None:
                specs.append(LimitSpec(name, unit, float(value), per, mode=mode))
        return tuple(specs)


@attrs.frozen
class CallersConfig:
    """Caller keys and budgets of ``callboard serve``; no key anywhere: no authentication."""

    #: The environment variable holding ``ID=KEY`` pairs, comma-separated.
    keys_env: str = "CALLBOARD_KEYS"
    #: A TOML file of ``[[keys]]`` with ``id``, ``sha256`` and optional ``revoked`` and
    #: budget fields; re-read when it changes (a revoked key is refused from then on).
    keys_file: str | None = None
    #: The budget of every key that has none of its own.
    budget: BudgetConfig = BudgetConfig()
    #: Budgets by key id (for keys from the environment, or over the file's).
    budgets: dict[str, BudgetConfig] = attrs.field(factory=dict)
    #: Listen on an address other than loopback with no key configured (anyone who can
    #: reach the port spends the accounts' quota). Off: such a server refuses to start.
    allow_no_keys: bool = False
    #: Routes open without a key (load balancers' and scrapers' own): a subset of
    #: health | health_live | health_ready | metrics | openapi | stats | models_health |
    #: models_best | status | status_events.
    public: tuple[str, ...] = ("health", "health_live", "health_ready")
    #: Key ids that may read the status page's figures (``/status.json``,
    #: ``/status/events``): every account's state and every caller's spending.
    admins: tuple[str, ...] = ()
    #: Seconds between looks at whether the keys file changed.
    reload_every: float = 1.0

    def __attrs_post_init__(self) -> None:
        require(
            "callers.keys_env",
            bool(_ENV_NAME.fullmatch(self.keys_env)),
            self.keys_env,
            "the name of an environment variable",
        )
        for route in self.public:
            require("callers.public", route in PUBLIC_ROUTES, route, " | ".join(PUBLIC_ROUTES))
        for key_id in self.budgets:
            require("callers.budgets", bool(KEY_ID.fullmatch(key_id)), key_id, "a key id")
        for key_id in self.admins:
            require("callers.admins", bool(KEY_ID.fullmatch(key_id)), key_id, "a key id")
        require(
            "callers.allow_no_keys",
            self.allow_no_keys in (True, False),
            self.allow_no_keys,
            "true | false",
        )
        require(
            "callers.reload_every",
            0 < self.reload_every <= 3600,
            self.reload_every,
            "> 0 and <= 3600 seconds",
        )
