"""Scenario files: TOML in, validated attrs classes out, with errors that name the key.

A scenario says which accounts exist (by profile, with overrides), how the
router is configured, what the workload is, what goes wrong and when, and the
seed. ``--set key=value`` overrides apply to the raw TOML before structuring, so
they are validated exactly like the file.
"""

from __future__ import annotations

import copy
import hashlib
import json
import tomllib
from collections.abc import Iterable, Mapping
from importlib import resources
from pathlib import Path
from typing import Any

import attrs
import cattrs

from actors.autoscaler import AutoscalerConfig
from actors.backends.virtual import ErrorRates, LatencyModel
from actors.breaker import BreakerConfig
from actors.cache import CacheConfig
from actors.concurrency import ConcurrencyConfig
from actors.faults import Fault
from actors.health import HealthConfig
from actors.limits import LimitSpec
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
from sims.profiles import PROFILES
from sims.workload import WorkloadConfig


class ScenarioError(ConfigError):
    """A scenario that cannot run; lists every problem with its key."""

    noun = "scenario"


MAX_GROUP_ACCOUNTS = 5_000


@attrs.frozen
class AccountGroup:
    """``count`` accounts of one profile, named ``{name}-1`` .. ``{name}-{count}``.

    Any field left unset keeps the profile's value.
    """

    profile: str
    count: int = 1
    name: str | None = None
    limits: tuple[LimitSpec, ...] | None = None
    max_concurrency: int | None = None
    queue_limit: int | None = None
    model: str | None = None
    tier: str | None = None
    context_window: int | None = None
    input_cost_per_mtok: float | None = None
    output_cost_per_mtok: float | None = None
    monthly_fee: float | None = None
    priority: int = 0
    latency: LatencyModel | None = None
    errors: ErrorRates | None = None
    #: These accounts' own timeouts, each in place of the scenario's ``[timeouts]`` one.
    timeouts: TimeoutOverrides | None = None

    def __attrs_post_init__(self) -> None:
        require("accounts.profile", self.profile in PROFILES, self.profile, " | ".join(PROFILES))
        # Bounded: every account is built when the scenario loads (a typo of 10**9 would hang).
        require(
            "accounts.count",
            1 <= self.count <= MAX_GROUP_ACCOUNTS,
            self.count,
            f"1 .. {MAX_GROUP_ACCOUNTS}",
        )

    @property
    def prefix(self) -> str:
        return self.name or self.profile

    def specs(self) -> list[ProviderSpec]:
        base = PROFILES[self.profile].spec
        overrides = {
            field: getattr(self, field)
            for field in (
                "limits",
                "max_concurrency",
                "queue_limit",
                "model",
                "tier",
                "context_window",
                "timeouts",
                "input_cost_per_mtok",
                "output_cost_per_mtok",
                "monthly_fee",
            )
            if getattr(self, field) is not None
        }
        return [
            attrs.evolve(
                base,
                name=f"{self.prefix}-{i}",
                group=self.prefix,
                priority=self.priority,
                **overrides,
            )
            for i in range(1, self.count + 1)
        ]

    def behaviour(self) -> tuple[LatencyModel, ErrorRates]:
        profile = PROFILES[self.profile]
        return self.latency or profile.latency, self.errors or profile.errors


@attrs.frozen
class FaultSpec(Fault):
    """A fault window aimed at ``target``: one account, a group's prefix, or ``*`` (all)."""

    target: str = "*"

    def fault(self) -> Fault:
        return Fault(**{f.name: getattr(self, f.name) for f in attrs.fields(Fault)})


@attrs.frozen
class Scenario:
    name: str
    accounts: tuple[AccountGroup, ...]
    description: str = ""
    seed: int = 1
    duration: float = 6 * 3600.0
    sample_every: float = 10.0
    workload: WorkloadConfig = WorkloadConfig()
    routing: PolicyConfig = PolicyConfig()
    retry: RetryConfig = RetryConfig()
    timeouts: Timeouts = Timeouts()
    breaker: BreakerConfig = BreakerConfig()
    cache: CacheConfig = CacheConfig()
    health: HealthConfig = HealthConfig()
    faults: tuple[FaultSpec, ...] = ()
    autoscaler: AutoscalerConfig | None = None
    hedging: HedgingConfig = HedgingConfig()
    concurrency: ConcurrencyConfig = ConcurrencyConfig()
    line: LineConfig = LineConfig()

    def __attrs_post_init__(self) -> None:
        require("accounts", len(self.accounts) >= 1, self.accounts, "at least one account group")
        require("seed", self.seed >= 0, self.seed, "an integer >= 0")
        require("duration", self.duration > 0, self.duration, "> 0 seconds")
        require("sample_every", self.sample_every > 0, self.sample_every, "> 0 seconds")
        require(
            "health.reach_every",
            self.health.reach_every is None,
            self.health.reach_every,
            "unset: a simulated account has no connection to check (live configs only)",
        )
        names = [spec.name for spec in self.account_specs()]
        duplicates = sorted({n for n in names if names.count(n) > 1})
        require("accounts.name", not duplicates, duplicates, "distinct names per group")
        if self.autoscaler is not None:
            groups = {group.prefix: group for group in self.accounts}
            group = groups.get(self.autoscaler.group)
            require(
                "autoscaler.group", group is not None, self.autoscaler.group, " | ".join(groups)
            )
            require(
                "autoscaler.max_replicas",
                group is None or self.autoscaler.max_replicas <= group.count,
                self.autoscaler.max_replicas,
                f"at most the group's count ({group.count if group else '?'})",
            )
        for i, spec in enumerate(self.faults):
            targets = self.fault_targets(spec)
            require(f"faults[{i}].target", bool(targets), spec.target, "an account, a group or *")
            spec.fault().validate(i)

    @property
    def router_config(self) -> RouterConfig:
        return RouterConfig.of(self)

    def account_specs(self) -> list[ProviderSpec]:
        return [spec for group in self.accounts for spec in group.specs()]

    def fault_targets(self, fault: FaultSpec) -> list[str]:
        names: list[str] = []
        for group in self.accounts:
            for spec in group.specs():
                if fault.target in ("*", spec.name, group.prefix):
                    names.append(spec.name)
        return names

    def faults_for(self, account: str) -> list[Fault]:
        return [f.fault() for f in self.faults if account in self.fault_targets(f)]


def structure(raw: dict[str, Any], source: str) -> Scenario:
    """Build a :class:`Scenario` from parsed TOML, or raise :class:`ScenarioError`."""
    try:
        refuse_moved_settings(raw)
        return CONVERTER.structure(raw, Scenario)
    except cattrs.BaseValidationError as exc:
        raise ScenarioError(source, describe_problems(exc, "scenario")) from None
    except (InvalidSetting, ValueError) as exc:
        raise ScenarioError(source, [str(exc)]) from None


# --- files, built-ins and overrides --------------------------------------------------

SCENARIO_DIR = resources.files("sims") / "scenarios"


def builtin_names() -> list[str]:
    return sorted(p.name[:-5] for p in SCENARIO_DIR.iterdir() if p.name.endswith(".toml"))


def _read(name_or_path: str) -> tuple[str, str]:
    """(source label, TOML text) for a built-in name or a file path."""
    if name_or_path in builtin_names():
        return name_or_path, (SCENARIO_DIR / f"{name_or_path}.toml").read_text()
    path = Path(name_or_path)
    if path.suffix == ".toml" or path.exists():
        if path.is_dir():
            raise ScenarioError(
                str(path),
                ["is a folder, not a scenario file; give a built-in scenario name or a .toml file"],
            )
        if not path.is_file():
            raise ScenarioError(str(path), ["no such file"])
        return str(path), path.read_text()
    raise ScenarioError(
        name_or_path,
        [f"not a scenario file nor a built-in; built-ins: {', '.join(builtin_names())}"],
    )


def read_source(name_or_path: str) -> tuple[str, str]:
    """(source label, TOML text) of a built-in scenario or a scenario file."""
    return _read(name_or_path)


def load(
    name_or_path: str,
    overrides: Iterable[str] = (),
    seed: int | None = None,
    tables: Mapping[str, Any] | None = None,
) -> tuple[Scenario, dict[str, Any]]:
    """Load a scenario; returns it and the raw TOML it was built from (after overrides).

    ``tables`` replace the scenario's own, whole, before the overrides apply (a live
    router's tables: :func:`sims.router_file.router_tables`).
    """
    source, text = _read(name_or_path)
    try:
        raw = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ScenarioError(source, [f"not valid TOML: {exc}"]) from None
    if tables:
        raw.update(copy.deepcopy(dict(tables)))
    for assignment in overrides:
        apply_override(raw, assignment, ScenarioError)
    if seed is not None:
        raw["seed"] = seed
    return structure(raw, source), raw


def scenario_hash(scenario: Scenario) -> str:
    """A hash of everything that determines a run, but the seed."""
    body = CONVERTER.unstructure(scenario)
    body.pop("seed", None)
    canonical = json.dumps(body, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(canonical.encode()).hexdigest()[:16]
