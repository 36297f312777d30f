"""The door of ``callboard serve``: who is calling, may they spend, what did they spend.

:class:`CallerGate` is what the HTTP surface asks: the caller key of a request
(401 without a valid one), admission by its budget (429 with a Retry-After), and
the charge of its answer. Without any key configured it lets everyone in, which
:func:`check_exposure` allows only on a loopback address unless the operator
says otherwise (``callers.allow_no_keys``, ``callboard serve --allow-no-keys``).
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable, Mapping

import attrs
from prometheus_client import CollectorRegistry

from actors.messages import Completion
from engine.routing.config import ConfigError
from engine.serve.callers.budget import CallerBudgets, OverBudget, Ticket
from engine.serve.callers.config import CallersConfig
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


@attrs.define
class CallerGate:
    """Authenticates, admits and bills callers; open to all when no key is configured."""

    config: CallersConfig
    keyring: KeyRing
    budgets: CallerBudgets
    metrics: CallerMetrics

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
            return self.keyring.authenticate(headers)
        except Unauthorized as exc:
            self.metrics.unauthorized.labels(exc.reason).inc()
            raise

    async def admit(self, key: CallerKey) -> Ticket:
        """One request of ``key``, charged to its budget, or :class:`OverBudget`."""
        try:
            ticket = await self.budgets.admit(key)
        except OverBudget:
            self.metrics.requests.labels(key.id, "over_budget").inc()
            raise
        self.metrics.requests.labels(key.id, "admitted").inc()
        return ticket

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
