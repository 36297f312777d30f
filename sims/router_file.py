"""A live router's config as a simulation's routing: ``--router router.toml``.

A sizing is worth what its routing is: run it with the server's own settings, and the
fleet it finds is sized for the router that will be deployed. The live config is loaded
and checked as ``callboard serve`` would (its keys are not read), and its router tables
replace the scenario's, whole and with the live defaults filled in: a key the server
leaves at its live default (``health.ping_every = 30``, the cache on) is that default in
the simulation too. The accounts, their limits and prices stay the scenario's: they are
what the simulation varies. A setting with no meaning there is refused, named.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from engine.routing.config import CONVERTER, ConfigError
from engine.serve.live_config import LiveConfig, load_config

#: The tables a live config and a scenario both take, which carry over.
CARRIED = (
    "routing",
    "retry",
    "timeouts",
    "breaker",
    "cache",
    "health",
    "hedging",
    "concurrency",
    "line",
)


def router_tables(path: str | Path) -> dict[str, Any]:
    """The router tables of the live config at ``path``, as a scenario's raw TOML has them."""
    config = load_config(path)
    problems = _cannot_carry(config)
    if problems:
        raise ConfigError(f"--router {path}", problems)
    return {name: _plain(CONVERTER.unstructure(getattr(config, name))) for name in CARRIED}


def _cannot_carry(config: LiveConfig) -> list[str]:
    problems = []
    if config.health.reach_every is not None:
        problems.append(
            "health.reach_every: cannot carry over to a simulation: a simulated account has "
            "no connection to check (remove it, or simulate without --router)"
        )
    for i, provider in enumerate(config.providers):
        if provider.timeouts is not None:
            problems.append(
                f"providers[{i}].timeouts: an account's own timeouts cannot carry over: the "
                "simulated accounts are the scenario's (set them on its account group)"
            )
    return problems


def _plain(value: Any) -> Any:
    """``value`` without its unset (None) keys, which TOML cannot hold: unset is the
    default there, as in the live config."""
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items() if v is not None}
    return value
