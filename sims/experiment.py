"""Failure-injection experiments: policy variants against the same faults and seeds.

An experiment (TOML, see ``sims/experiments/``) names a base scenario and a list
of variants, each a list of overrides in ``--set`` syntax. Every variant runs on
the same seeds; because every random draw comes from a stream named after its
entity (each provider account, each interview, the arrivals), seed i gives every
variant the same arrivals and the same provider behaviour (common random numbers),
so per-seed differences measure the policy, not the luck. Simulations run in
separate processes or on a Dask cluster (:class:`sims.pool.Pool`), like
``callboard size``; each depends only on (scenario,
variant, seed), so the same inputs give the same numbers however they are
scheduled.
"""

from __future__ import annotations

import copy
import math
import tomllib
from collections.abc import Callable, Sequence
from importlib import resources
from pathlib import Path
from typing import Any

import attrs
import cattrs

from actors.faults import Fault
from actors.runtime.errors import InvalidSetting, require
from engine.routing.config import CONVERTER, apply_override, describe_problems
from sims.pool import Pool
from sims.scenario import (
    Scenario,
    ScenarioError,
    builtin_names,
    read_source,
    scenario_hash,
    structure,
)
from sims.scenario import load as load_scenario
from sims.stats import Paired, paired

EXPERIMENT_DIR = resources.files("sims") / "experiments"


@attrs.frozen
class Metric:
    key: str  # in a run's summary
    label: str
    higher_is_better: bool
    unit: str  # share | seconds | count | money


#: What experiments compare; ``judge`` picks the one that decides the winner.
METRICS: dict[str, Metric] = {
    "success_rate": Metric("success_rate", "success rate", True, "share"),
    "p95": Metric("p95", "p95 latency (answered)", False, "seconds"),
    "p99": Metric("p99", "p99 latency (answered)", False, "seconds"),
    "retries": Metric("retries", "retries sent", False, "count"),
    "cost": Metric("cost_total", "cost", False, "money"),
}
#: Also reported per variant (and their paired differences), never judged.
EXTRA = {
    "upstream_calls": Metric("upstream_calls", "upstream calls", False, "count"),
    "hedges": Metric("hedges", "hedges sent", False, "count"),
    "retries_denied": Metric("retries_denied", "retries denied by the budget", False, "count"),
    "shed": Metric("shed", "requests shed", False, "count"),
    "breaker_openings": Metric("breaker_openings", "breaker openings", False, "count"),
    "interviews_without_error": Metric(
        "interviews_without_error", "interviews without an error", True, "share"
    ),
}


@attrs.frozen
class Variant:
    name: str
    set: tuple[str, ...] = ()
    description: str = ""


@attrs.frozen
class ExperimentSpec:
    """An experiment file: the base scenario, the variants (the first is the control)."""

    name: str
    scenario: str
    variants: tuple[Variant, ...]
    description: str = ""
    seeds: int = 10
    judge: str = "success_rate"
    #: Overrides applied to every variant (before the variant's own).
    set: tuple[str, ...] = ()
    #: Width of the time windows of the over-time figures, in seconds.
    window: float = 60.0

    def __attrs_post_init__(self) -> None:
        require("variants", len(self.variants) >= 2, len(self.variants), "at least 2 variants")
        names = [v.name for v in self.variants]
        duplicates = sorted({n for n in names if names.count(n) > 1})
        require("variants.name", not duplicates, duplicates, "distinct variant names")
        require("seeds", self.seeds >= 1, self.seeds, ">= 1 (>= 2 for confidence intervals)")
        require("judge", self.judge in METRICS, self.judge, " | ".join(METRICS))
        require("window", 0 < self.window < math.inf, self.window, "> 0 seconds")


class ExperimentError(ScenarioError):
    """An experiment that cannot run; lists every problem with its key."""

    noun = "experiment"


def builtin_experiments() -> list[str]:
    return sorted(p.name[:-5] for p in EXPERIMENT_DIR.iterdir() if p.name.endswith(".toml"))


def _read(ref: str) -> tuple[str, str, Path | None]:
    """(source label, TOML text, folder relative paths start from) for a name or a file."""
    if ref in builtin_experiments():
        folder = Path(str(EXPERIMENT_DIR))
        return ref, (EXPERIMENT_DIR / f"{ref}.toml").read_text(), folder
    path = Path(ref)
    if path.suffix == ".toml" or path.exists():
        if not path.is_file():
            raise ExperimentError(str(path), ["no such file"])
        return str(path), path.read_text(), path.parent
    raise ExperimentError(
        ref,
        [f"not an experiment file nor a built-in; built-ins: {', '.join(builtin_experiments())}"],
    )


@attrs.frozen
class Prepared:
    """A loaded experiment: each variant's raw scenario, validated before any run."""

    spec: ExperimentSpec
    source: str
    #: Where the scenario was read from (for messages), and the base as the file names it.
    scenario_source: str
    scenario_label: str
    control: Scenario
    raws: tuple[dict[str, Any], ...]
    scenarios: tuple[Scenario, ...]
    seeds: tuple[int, ...]


def load_experiment(ref: str, seeds: int | None = None, overrides: Sequence[str] = ()) -> Prepared:
    """Load an experiment and check every variant's scenario, before any work starts."""
    source, text, folder = _read(ref)
    try:
        raw = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ExperimentError(source, [f"not valid TOML: {exc}"]) from None
    try:
        spec = CONVERTER.structure(raw, ExperimentSpec)
    except (cattrs.BaseValidationError, InvalidSetting, ValueError) as exc:
        raise ExperimentError(source, describe_problems(exc, "experiment")) from None
    if seeds is not None and seeds < 1:
        raise InvalidSetting("--seeds", seeds, ">= 1 (>= 2 for confidence intervals)")
    scenario_ref = spec.scenario
    if scenario_ref not in builtin_names() and folder is not None:
        relative = folder / scenario_ref
        if relative.is_file():
            scenario_ref = str(relative)
    scenario_source, scenario_text = read_source(scenario_ref)
    try:
        base = tomllib.loads(scenario_text)
    except tomllib.TOMLDecodeError as exc:
        raise ScenarioError(scenario_source, [f"not valid TOML: {exc}"]) from None
    raws, scenarios, problems = [], [], []
    for variant in spec.variants:
        variant_raw = copy.deepcopy(base)
        try:
            for assignment in (*spec.set, *overrides, *variant.set):
                apply_override(variant_raw, assignment, ScenarioError)
            scenarios.append(structure(variant_raw, f"{scenario_source} [{variant.name}]"))
        except ScenarioError as exc:
            problems += [f"variant {variant.name!r}: {p}" for p in exc.problems]
            continue
        raws.append(variant_raw)
    if problems:
        raise ExperimentError(source, problems)
    first_seed = scenarios[0].seed
    count = seeds if seeds is not None else spec.seeds
    return Prepared(
        spec=spec,
        source=source,
        scenario_source=scenario_source,
        scenario_label=spec.scenario,
        control=scenarios[0],
        raws=tuple(raws),
        scenarios=tuple(scenarios),
        seeds=tuple(first_seed + i for i in range(count)),
    )


# --- one run ------------------------------------------------------------------------

_KEEP = tuple(sorted({m.key for m in (*METRICS.values(), *EXTRA.values())} | {"requests", "p50"}))


@attrs.frozen
class Timeline:
    """What the over-time figures need from one run, per window of request start time."""

    width: float
    started: tuple[int, ...]
    failed: tuple[int, ...]
    p95: tuple[float, ...]
    #: Answered by a provider (not the cache), per account, per window.
    served: dict[str, tuple[int, ...]]
    #: The sampler's times and how many accounts' breakers were open / half-open.
    sample_t: tuple[float, ...]
    open: tuple[int, ...]
    half_open: tuple[int, ...]
    end: float


@attrs.frozen
class SeedRun:
    """One seeded simulation of one variant, reduced to what the report needs (picklable)."""

    seed: int
    summary: dict[str, Any]
    timeline: Timeline


def simulate_variant(raw: dict[str, Any], source: str, seed: int, window: float) -> SeedRun:
    """Run one variant on one seed (in a worker process)."""
    import numpy as np

    from sims import result_views
    from sims.results import summary_subset
    from sims.runner import simulate
    from sims.summarise import summarise

    raw = copy.deepcopy(raw)
    raw["seed"] = seed
    results = summarise(simulate(structure(raw, source)))
    summary = summary_subset(results.summary, _KEEP)
    requests = result_views.requests(results)
    end = results.summary.simulated_s
    edges = result_views.window_edges(max(end, window), window)
    groups = result_views.binned(requests.start, edges)
    latency = np.where(requests.answered_facing, requests.latency, np.nan)
    p95 = result_views.windowed_percentiles(latency, groups, (95,))[:, 0]
    names = results.meta.providers
    by_provider = requests.answered & ~requests.cached  # every turn kind, as failures
    served = {
        name: tuple(
            int(np.count_nonzero(by_provider[g] & (requests.provider[g] == i))) for g in groups
        )
        for i, name in enumerate(names)
    }
    series = result_views.sampled(results)
    codes = (
        np.vstack([own.breaker for own in series.providers.values()])
        if series.providers
        else np.zeros((1, len(series.t)))
    )
    timeline = Timeline(
        width=window,
        started=tuple(len(g) for g in groups),
        failed=tuple(int(np.count_nonzero(requests.failed[g])) for g in groups),
        p95=tuple(float(v) for v in p95),
        served=served,
        sample_t=tuple(float(t) for t in series.t),
        open=tuple(int(v) for v in (codes == 2).sum(axis=0)),
        half_open=tuple(int(v) for v in (codes == 1).sum(axis=0)),
        end=end,
    )
    return SeedRun(seed, summary, timeline)


# --- the whole experiment ------------------------------------------------------------


@attrs.frozen
class Experiment:
    """Every variant's runs, seed by seed (the same seeds, in the same order)."""

    prepared: Prepared
    runs: tuple[tuple[SeedRun, ...], ...]  # [variant][seed]

    @property
    def spec(self) -> ExperimentSpec:
        return self.prepared.spec

    def values(self, variant: int, key: str) -> list[float]:
        return [_number(run.summary.get(key)) for run in self.runs[variant]]

    def difference(self, variant: int, key: str) -> Paired:
        """``variant - control`` for one summary key, paired by seed."""
        return paired(self.values(variant, key), self.values(0, key))


def _number(value: Any) -> float:
    try:
        return float(value)
    except (TypeError, ValueError):
        return math.nan


def run_experiment(
    ref: str,
    seeds: int | None = None,
    overrides: Sequence[str] = (),
    workers: int | None = None,
    on_run: Callable[[str, SeedRun], None] | None = None,
    cluster: str | None = None,
) -> Experiment:
    """Run every variant of ``ref`` on the same seeds, in parallel.

    On ``workers`` local processes (default: every core), or on the Dask scheduler at
    ``cluster`` (``tcp://HOST:PORT``): the same numbers either way. ``on_run`` is told
    of each variant's run on each seed as it is collected, for progress displays.
    """
    pool = Pool(workers=workers, cluster=cluster)
    prepared = load_experiment(ref, seeds, overrides)
    with pool.open() as processes:
        futures = [
            [
                processes.submit(
                    simulate_variant,
                    raw,
                    f"{prepared.scenario_source} [{variant.name}]",
                    seed,
                    prepared.spec.window,
                )
                for seed in prepared.seeds
            ]
            for raw, variant in zip(prepared.raws, prepared.spec.variants, strict=True)
        ]
        runs = []
        for row, variant in zip(futures, prepared.spec.variants, strict=True):
            done = []
            for future in row:
                done.append(future.result())
                if on_run is not None:
                    on_run(variant.name, done[-1])
            runs.append(tuple(done))
    return Experiment(prepared, tuple(runs))


def variant_hashes(prepared: Prepared) -> list[str]:
    return [scenario_hash(s) for s in prepared.scenarios]


def replay_faults(ref: str, account: str) -> list[Fault]:
    """The faults a scenario (or an experiment's base scenario) aims at ``account``.

    For ``callboard mock-provider --replay``: one mock per account, each replaying its
    own faults, puts the experiment's fault schedule behind ``callboard serve``.
    """
    if ref in builtin_experiments() or is_experiment_file(ref):
        scenario = load_experiment(ref, seeds=1).control
    else:
        scenario, _ = load_scenario(ref)
    names = [spec.name for spec in scenario.account_specs()]
    if account not in names:
        raise InvalidSetting("--account", account, " | ".join(names))
    return scenario.faults_for(account)


def is_experiment_file(ref: str) -> bool:
    path = Path(ref)
    if not path.is_file():
        return False
    try:
        return "variants" in tomllib.loads(path.read_text())
    except tomllib.TOMLDecodeError:
        return False
