"""Scenario files: TOML in, validated attrs classes out, with errors that name the key.

A scenario says which accounts exist (by profile, with overrides), how the
router is configured, what the workload is, what goes wrong and when, and the
seed. ``--set key=value`` overrides apply to the raw TOML before structuring, so
they are validated exactly like the file.
"""

from __future__ import annotations

import hashlib
import json
import math
import re
import tomllib
import typing
from collections.abc import Iterable
from importlib import resources
from pathlib import Path
from typing import Any

import attrs
import cattrs
from cattrs.errors import ForbiddenExtraKeysError
from cattrs.v import format_exception, transform_error

from actors.autoscaler import AutoscalerConfig
from actors.backends.virtual import ErrorRates, LatencyModel
from actors.breaker import BreakerConfig
from actors.cache import CacheConfig
from actors.concurrency import ConcurrencyConfig
from actors.faults import Fault
from actors.health import HealthConfig
from actors.limits import LimitSpec
from actors.provider import ProviderSpec
from actors.runtime.distributions import Constant, Empirical, Exponential, LogNormal
from actors.runtime.errors import InvalidSetting, require
from engine.routing.fleet import RouterConfig
from engine.routing.hedging import HedgingConfig
from engine.routing.policies import PolicyConfig
from engine.routing.retry import RetryConfig
from engine.routing.shedding import SheddingConfig
from sims.profiles import PROFILES
from sims.workload import WorkloadConfig


class ScenarioError(ValueError):
    """A scenario that cannot run; lists every problem with its key."""

    #: What the file is, in the message: a scenario here, a config for the live router.
    noun = "scenario"

    def __init__(self, source: str, problems: list[str]) -> None:
        listed = "\n".join(f"  - {p}" for p in problems)
        super().__init__(f"invalid {self.noun} {source}:\n{listed}")
        self.source = source
        self.problems = problems


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
    breaker: BreakerConfig = BreakerConfig()
    cache: CacheConfig = CacheConfig()
    health: HealthConfig = HealthConfig()
    faults: tuple[FaultSpec, ...] = ()
    autoscaler: AutoscalerConfig | None = None
    hedging: HedgingConfig = HedgingConfig()
    concurrency: ConcurrencyConfig = ConcurrencyConfig()
    shedding: SheddingConfig = SheddingConfig()

    def __attrs_post_init__(self) -> None:
        require("accounts", len(self.accounts) >= 1, self.accounts, "at least one account group")
        require("seed", self.seed >= 0, self.seed, "an integer >= 0")
        require("duration", self.duration > 0, self.duration, "> 0 seconds")
        require("sample_every", self.sample_every > 0, self.sample_every, "> 0 seconds")
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


# --- structuring ---------------------------------------------------------------------

_DISTRIBUTIONS = {
    "constant": Constant,
    "exponential": Exponential,
    "lognormal": LogNormal,
    "empirical": Empirical,
}
_DISTRIBUTION_TYPES = frozenset(_DISTRIBUTIONS.values())


class _BadValue(ValueError):
    """A value of the wrong type; the message shows it."""


def _structure_distribution(value: Any, _: type) -> Any:
    if value is None:
        return None
    if isinstance(value, int | float) and not isinstance(value, bool):
        return Constant(float(value))
    if not isinstance(value, dict) or "kind" not in value:
        raise _BadValue(
            f"expected a number or a table with kind = {' | '.join(_DISTRIBUTIONS)}, got {value!r}"
        )
    fields = dict(value)
    kind = fields.pop("kind")
    if kind not in _DISTRIBUTIONS:
        raise _BadValue(
            f"unknown distribution kind {kind!r}; allowed: {' | '.join(_DISTRIBUTIONS)}"
        )
    if kind == "lognormal" and "median" in fields:
        if set(fields) != {"median", "p95"}:
            raise _BadValue(
                f"lognormal takes median and p95, or mu and sigma; got {sorted(fields)}"
            )
        return _build(LogNormal.from_median_p95, fields["median"], fields["p95"])
    cls = _DISTRIBUTIONS[kind]
    allowed = [a.name for a in attrs.fields(cls)]
    unknown = sorted(set(fields) - set(allowed))
    if unknown:
        raise _BadValue(f"{kind} takes {allowed}, got unknown {unknown}")
    return _build(cls, **fields)


def _build(factory: Any, *args: Any, **kwargs: Any) -> Any:
    """Construct a distribution, turning its own complaint into a shown one."""
    try:
        return factory(*args, **kwargs)
    except (TypeError, ValueError) as exc:
        raise _BadValue(str(exc)) from None


def _is_distribution_type(t: Any) -> bool:
    args = [a for a in typing.get_args(t) if a is not type(None)]
    return bool(args) and all(a in _DISTRIBUTION_TYPES for a in args)


def _strict_int(value: Any, _: type) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise _BadValue(f"expected an integer, got {value!r}")
    return value


def _strict_float(value: Any, _: type) -> float:
    if isinstance(value, str) and value.strip().lower() in ("inf", "infinity"):
        return math.inf
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise _BadValue(f"expected a number, got {value!r}")
    return float(value)


def _strict_str(value: Any, _: type) -> str:
    if not isinstance(value, str):
        raise _BadValue(f"expected a string, got {value!r}")
    return value


def _strict_bool(value: Any, _: type) -> bool:
    if not isinstance(value, bool):
        raise _BadValue(f"expected true or false, got {value!r}")
    return value


def _converter() -> cattrs.Converter:
    converter = cattrs.Converter(forbid_extra_keys=True)
    converter.register_structure_hook(int, _strict_int)
    converter.register_structure_hook(float, _strict_float)
    converter.register_structure_hook(str, _strict_str)
    converter.register_structure_hook(bool, _strict_bool)
    converter.register_structure_hook_func(_is_distribution_type, _structure_distribution)
    for cls in _DISTRIBUTION_TYPES:
        converter.register_structure_hook(cls, _structure_distribution)
    converter.register_unstructure_hook_func(_is_distribution_type, _unstructure_distribution)
    for cls in _DISTRIBUTION_TYPES:
        converter.register_unstructure_hook(cls, _unstructure_distribution)
    converter.register_unstructure_hook(float, _unstructure_float)
    return converter


def _unstructure_float(value: float) -> float | str:
    return "inf" if value == math.inf else value


def _unstructure_distribution(value: Any) -> Any:
    if value is None:
        return None
    kind = next(k for k, cls in _DISTRIBUTIONS.items() if isinstance(value, cls))
    fields = attrs.asdict(value)
    if isinstance(value, Empirical):
        fields["points"] = [list(p) for p in value.points]
    return {"kind": kind, **fields}


CONVERTER = _converter()


def _describe(exc: BaseException, type_: type | None) -> str:
    if isinstance(exc, InvalidSetting):
        return f"{exc.field} = {exc.value!r} is not allowed; allowed: {exc.allowed}"
    if isinstance(exc, ForbiddenExtraKeysError):
        allowed = ", ".join(a.name for a in attrs.fields(exc.cl)) if attrs.has(exc.cl) else "?"
        return f"unknown key(s) {sorted(exc.extra_fields)}; allowed keys: {allowed}"
    if isinstance(exc, _BadValue):
        return str(exc)
    if isinstance(exc, KeyError):
        return "required key is missing"  # its path names it
    return format_exception(exc, type_)


def _by_key(exc: cattrs.BaseValidationError, root: str) -> list[str]:
    """Every problem as ``key: what is wrong``, the key first as a user types it.

    cattrs writes ``description @ root.key``; a description that already starts with its
    key (``breaker.failure_threshold = 0 is not allowed``) keeps it, with the list index
    the path has (``accounts.profile = ...`` in ``accounts[0]`` reads ``accounts[0].profile``).
    """
    problems = []
    for line in transform_error(exc, root, _describe):
        message, _, path = line.rpartition(" @ ")
        key = path.removeprefix(root).lstrip(".")
        unindexed = re.sub(r"\[\d+\]", "", key)
        if not key or message.startswith(key):
            problems.append(message)
        elif message.startswith(f"{unindexed}."):
            problems.append(key + message.removeprefix(unindexed))
        else:
            problems.append(f"{key}: {message}")
    return problems


def structure(raw: dict[str, Any], source: str) -> Scenario:
    """Build a :class:`Scenario` from parsed TOML, or raise :class:`ScenarioError`."""
    try:
        return CONVERTER.structure(raw, Scenario)
    except cattrs.BaseValidationError as exc:
        raise ScenarioError(source, _by_key(exc, "scenario")) from None
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


def _parse_value(text: str) -> Any:
    try:
        return tomllib.loads(f"v = {text}")["v"]
    except tomllib.TOMLDecodeError:
        return text


def _no_item(parts: list[str], items: list[Any]) -> ScenarioError:
    """``accounts.5: no such [[accounts]] table; there is 1 (accounts.0)``."""
    where, part = ".".join(parts[:-1]), parts[-1]
    tables = bool(items) and all(isinstance(item, dict) for item in items)
    what = f"[[{where}]] table" if tables else f"item of {where}"
    count = len(items)
    if count == 0:
        there = f"{where} is empty"
    elif count == 1:
        there = f"there is 1 ({where}.0)"
    else:
        there = f"there are {count} ({where}.0 .. {where}.{count - 1})"
    index = "" if part.isdigit() else f" ({part!r} is not an index)"
    return ScenarioError("--set", [f"{'.'.join(parts)}: no such {what}{index}; {there}"])


def apply_override(raw: dict[str, Any], assignment: str) -> None:
    """Apply ``key.sub=value`` (``accounts.0.count=3`` indexes a list) to raw TOML."""
    if "=" not in assignment:
        raise ScenarioError("--set", [f"{assignment!r} is not key=value"])
    key, text = assignment.split("=", 1)
    parts = key.strip().split(".")
    node: Any = raw
    for depth, part in enumerate(parts[:-1]):
        where = ".".join(parts[: depth + 1])
        if isinstance(node, list):
            if not part.isdigit() or int(part) >= len(node):
                raise _no_item(parts[: depth + 1], node)
            node = node[int(part)]
        else:
            node = node.setdefault(part, {})
            if not isinstance(node, dict | list):
                raise ScenarioError("--set", [f"{where} is a value, not a table"])
    last = parts[-1]
    value = _parse_value(text.strip())
    if isinstance(node, list):
        if not last.isdigit() or int(last) >= len(node):
            raise _no_item(parts, node)
        node[int(last)] = value
    else:
        node[last] = value


def load(
    name_or_path: str, overrides: Iterable[str] = (), seed: int | None = None
) -> tuple[Scenario, dict[str, Any]]:
    """Load a scenario; returns it and the raw TOML it was built from (after overrides)."""
    source, text = _read(name_or_path)
    try:
        raw = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ScenarioError(source, [f"not valid TOML: {exc}"]) from None
    for assignment in overrides:
        apply_override(raw, assignment)
    if seed is not None:
        raw["seed"] = seed
    return structure(raw, source), raw


def scenario_hash(scenario: Scenario) -> str:
    """A hash of everything that determines a run, but the seed."""
    body = CONVERTER.unstructure(scenario)
    body.pop("seed", None)
    canonical = json.dumps(body, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(canonical.encode()).hexdigest()[:16]


def describe_problems(exc: BaseException, root: str) -> list[str]:
    """Every problem of a failed ``CONVERTER.structure``, by key, for other config files."""
    if isinstance(exc, cattrs.BaseValidationError):
        return _by_key(exc, root)
    return [str(exc)]
