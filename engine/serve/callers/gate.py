"""The door of ``callboard serve``: who is calling, may they spend, what did they spend.

:class:`CallerGate` is what the HTTP surface asks: the caller key of a request
(401 without a valid one), admission by its budget (429 with a Retry-After), and
the charge of its answer. Without any key configured it lets everyone in, which
:func:`check_exposure` allows only on a loopback address unless the operator
says otherwise (``callers.allow_no_keys``, ``callboard serve --allow-no-keys``).
"""

from __future__ import annotations

import ipaddress
from collections import Counter
from collections.abc import Iterable, Mapping

import attrs
from prometheus_client import CollectorRegistry

from actors.messages import Completion
from actors.runtime import clock
from actors.runtime.errors import CallboardError
from engine.routing.config import ConfigError
from engine.serve.callers.budget import BudgetUse, CallerBudgets, OverBudget, Ticket
from engine.serve.callers.config import ADMIN_ROUTES, CallersConfig
from engine.serve.callers.keys import CallerKey, KeyRing, Unauthorized
from engine.serve.callers.metrics import CallerMetrics
from engine.serve.state.guard import GuardedStore


def is_loopback(host: str) -> bool:
    """Whether ``host`` is reachable from this machine only."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False  # a host name, or "" (every interface): assume reachable


def check_exposure(host: str, keys_configured: bool, config: CallersConfig) -> None:
    """Refuse to listen beyond loopback with no caller key, unless told to."""
    if keys_configured or config.allow_no_keys or is_loopback(host):
        return
    raise ConfigError(
        "server.host",
        [
            f"{host or 'every interface'!s}: not a loopback address, and no caller key is "
            f"configured, so anyone who reaches the port spends the accounts' quota. Set "
            f"{config.keys_env} or callers.keys_file, or say so explicitly: "
            "--allow-no-keys (callers.allow_no_keys = true)"
        ],
    )


@attrs.frozen
class CallerUse:
    """One caller key on the status page: its requests and what it spent of its budget."""

    id: str
    revoked: bool
    admitted: int
    over_budget: int
    budget: list[BudgetUse]


class NotAdmin(CallboardError):
    """A valid caller key that may not read the router's status: 403."""

    code = "not_admin"
    status = 403

    def __init__(self, key_id: str) -> None:
        super().__init__(
            f"API key {key_id!r} may not read the router's status: list its id in "
            "callers.admins (or the route in callers.public)"
        )


@attrs.define
class CallerGate:
    """Authenticates, admits and bills callers; open to all when no key is configured."""

    config: CallersConfig
    keyring: KeyRing
    budgets: CallerBudgets
    metrics: CallerMetrics
    #: Requests admitted and refused over budget, by key id (the status page's counts).
    admitted: Counter[str] = attrs.field(factory=Counter)
    over_budget: Counter[str] = attrs.field(factory=Counter)

    @classmethod
    def open(
        cls,
        config: CallersConfig,
        env: Mapping[str, str],
        registry: CollectorRegistry,
        guard: GuardedStore | None = None,
    ) -> CallerGate:
        """The gate for ``config``, its keys read now (a bad key or file stops the start)."""
        return cls(config, KeyRing(config, env), CallerBudgets(guard), CallerMetrics(registry))

    @property
    def enforcing(self) -> bool:
        return self.keyring.configured

    def check(self, route: str, headers: Iterable[tuple[bytes, bytes]]) -> CallerKey | None:
        """The caller of a request to ``route``; None when no key is needed."""
        if not self.enforcing or route in self.config.public:
            return None
        try:
            caller = self.keyring.authenticate(headers)
        except Unauthorized as exc:
            self.metrics.unauthorized.labels(exc.reason).inc()
            raise
        if route in ADMIN_ROUTES and caller.id not in self.config.admins:
            raise NotAdmin(caller.id)
        return caller

    async def admit(self, key: CallerKey) -> Ticket:
        """One request of ``key``, charged to its budget, or :class:`OverBudget`."""
        try:
            ticket = await self.budgets.admit(key)
        except OverBudget:
            self.metrics.requests.labels(key.id, "over_budget").inc()
            self.over_budget[key.id] += 1
            raise
        self.metrics.requests.labels(key.id, "admitted").inc()
        self.admitted[key.id] += 1
        return ticket

    def usage(self) -> list[CallerUse]:
        """Every key in force with its requests and budget use, by id."""
        now = clock.now()
        return [
            CallerUse(
                key.id,
                key.revoked,
                self.admitted[key.id],
                self.over_budget[key.id],
                self.budgets.use(key, now),
            )
            for key in sorted(self.keyring.keys(), key=lambda k: k.id)
        ]

    def settle(self, ticket: Ticket, completion: Completion) -> None:
        """Charge the ticket's key what its answer used."""
        self.budgets.settle(ticket, completion)
        self.metrics.answered(ticket.key.id, completion)

    def meter(self, key: CallerKey | None) -> Meter | None:
        """Admission and billing bound to one caller (a WebSocket's turns)."""
        return None if key is None else Meter(self, key)


@attrs.define
class Meter:
    """One caller's admission and billing, for code that routes on its behalf."""

    gate: CallerGate
    key: CallerKey

    async def admit(self) -> Ticket:
        return await self.gate.admit(self.key)

    def settle(self, ticket: Ticket, completion: Completion) -> None:
        self.gate.settle(ticket, completion)
