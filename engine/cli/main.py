"""The ``callboard`` command line: it parses, delegates, and prints; nothing else."""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
import textwrap
import threading
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import attrs

from actors.runtime.errors import CallboardError, InvalidSetting

DEFAULT_SCENARIO = "interview-day"


def _json_line(value: object) -> str:
    """One strict-JSON line: a figure that does not exist (NaN, inf) is null."""

    def clean(item: object) -> object:
        if isinstance(item, float) and not math.isfinite(item):
            return None
        if isinstance(item, dict):
            return {k: clean(v) for k, v in item.items()}
        if isinstance(item, list | tuple):
            return [clean(v) for v in item]
        return item

    return json.dumps(clean(value), sort_keys=True, allow_nan=False)


def _share(option: str, text: str) -> float:
    """A share written as ``95%`` or ``0.95``."""
    try:
        return float(text[:-1]) / 100 if text.strip().endswith("%") else float(text)
    except ValueError:
        raise InvalidSetting(option, text, "a share like 95% or 0.95") from None


def check_out(option: str, text: str) -> Path:
    """``--out`` as a folder the report can go in, refused before any simulation runs.

    Checked first so that a long run (``size`` runs hundreds of simulations) is not
    lost to a path that was unusable from the start.
    """
    path = Path(text)
    if path.exists() and not path.is_dir():
        raise InvalidSetting(option, text, "a folder; this is an existing file")
    existing = path
    while not existing.exists():  # the nearest folder that is there: where it would be made
        existing = existing.parent
    if not existing.is_dir():
        raise InvalidSetting(
            option, text, f"a folder that can be created; {str(existing)!r} is a file"
        )
    if not os.access(existing, os.W_OK | os.X_OK):
        raise InvalidSetting(
            option, text, f"a folder that can be written; {str(existing)!r} is not"
        )
    return path


def _new_run_dir(root: Path, label: str) -> Path:
    """A fresh folder under ``root``: never overwrite an earlier run's report."""
    root.mkdir(parents=True, exist_ok=True)
    for n in range(1, 10_000):
        candidate = root / f"{label}-{n:03d}"
        try:
            candidate.mkdir()
        except FileExistsError:
            continue
        return candidate
    raise RuntimeError(f"no free run folder under {root}")


def _progress_bar(total: int, enabled: bool):
    """A tqdm bar on stderr showing requests done and virtual time; None when disabled."""
    if not enabled:
        return None, None
    from tqdm import tqdm

    bar = tqdm(total=total, unit="req", file=sys.stderr, dynamic_ncols=True, leave=False)

    def update(now: float, requests: int) -> None:
        bar.n = min(requests, total)
        bar.set_postfix_str(f"virtual {now / 60:6.1f} min", refresh=False)
        bar.refresh()

    return bar, update


def _load(name: str, args: argparse.Namespace):
    """Scenario ``name`` with the command's overrides, validated."""
    from sims.scenario import load

    overrides = list(args.set or [])
    if args.interviews is not None:
        overrides.append(f"workload.interviews={args.interviews}")
    return load(name, overrides, seed=args.seed, tables=_router(args))[0]


def _router(args: argparse.Namespace) -> dict[str, Any] | None:
    """The router tables of ``--router``'s live config, if given."""
    if args.router is None:
        return None
    from sims.router_file import router_tables

    return router_tables(args.router)


def _simulate(scenario, args: argparse.Namespace):
    """Run ``scenario`` (with a progress bar unless quiet); returns its data and results."""
    from sims.runner import simulate
    from sims.summarise import summarise

    show_progress = not args.quiet and sys.stderr.isatty()
    bar, update = _progress_bar(scenario.workload.expected_requests, show_progress)
    traces = getattr(args, "traces_file", None)
    try:
        data = simulate(scenario, progress=update, traces=None if traces is None else Path(traces))
    finally:
        if bar is not None:
            bar.close()
    return data, summarise(data)


def cmd_simulate(args: argparse.Namespace) -> int:
    if args.scenario is None:
        if args.traces_file is not None:
            from actors.runtime.errors import InvalidSetting

            allowed = "with a scenario named (the default run is two scenarios and a sizing)"
            raise InvalidSetting("--traces-file", args.traces_file, allowed)
        return _simulate_headline(args)
    from reports.render import write_report
    from reports.summary import (
        FAMILY_HEADERS,
        PROVIDER_HEADERS,
        family_rows,
        format_table,
        provider_rows,
        run_settings,
        summary_rows,
    )
    from sims.results import RESULTS

    scenario = _load(args.scenario, args)
    data, results = _simulate(scenario, args)
    out = (
        Path(args.out)
        if args.out
        else _new_run_dir(Path("runs"), f"{scenario.name}-seed{scenario.seed}")
    )
    files = write_report(results, out)
    if args.json:
        line = {
            **RESULTS.unstructure(results.summary),
            "wall_s": round(data.wall_s, 4),
            "report": str(files.html),
        }
        print(_json_line(line))
        return 0
    _say(f"{scenario.name} (seed {scenario.seed}): {run_settings(results.meta.config)}.")
    _say(_described(scenario.description, args) + "\n")
    print(format_table(summary_rows(results), ("figure", "value")))
    print()
    if len(results.providers) > 20:
        print(format_table(family_rows(results), FAMILY_HEADERS))
    else:
        print(format_table(provider_rows(results), PROVIDER_HEADERS))
    print(f"\nsimulated {data.simulated_s / 60:.1f} min in {data.wall_s:.2f} s of wall time")
    print(f"report: {files.markdown}\n        {files.html}")
    return 0


def _described(description: str, args: argparse.Namespace) -> str:
    """The scenario's own description, said to be about its file's settings when the
    command changed them (the header above gives the run's)."""
    text = " ".join(description.split())
    changed = [*(args.set or []), *([] if args.interviews is None else ["--interviews"])]
    if not text:
        return "The scenario has no description."
    if changed:
        changes = ", ".join(changed)
        return f"The scenario file says, of its own settings (changed here: {changes}): {text}"
    return text


def _simulate_headline(args: argparse.Namespace) -> int:
    """The default run: the claim's readings, each a full run, and their comparison."""
    from reports.headline import (
        answer_sentence,
        headline_headers,
        headline_rows,
        reading_sentence,
        write_headline_report,
    )
    from reports.render import write_report
    from reports.summary import format_table
    from sims.headline import READINGS, judge

    started = time.perf_counter()
    scenarios = [_load(reading.scenario, args) for reading in READINGS]  # all valid first
    runs, reports, simulated, wall = [], [], [], 0.0
    for reading, scenario in zip(READINGS, scenarios, strict=True):
        data, results = _simulate(scenario, args)
        runs.append((reading, scenario, results))
        simulated.append(f"{data.simulated_s / 60:.1f}")
        wall += data.wall_s
    sizing = _Sizing()
    needed = [None] * len(READINGS) if args.no_size else sizing.run(READINGS, scenarios, args)
    headline = judge(runs, needed=needed)
    seed = runs[0][1].seed
    out = Path(args.out) if args.out else _new_run_dir(Path("runs"), f"headline-seed{seed}")
    for _, scenario, results in runs:
        reports.append(write_report(results, out / scenario.name))
    files = write_headline_report(headline, out)
    if args.json:
        line = {"readings": list(headline.readings), "wall_s": round(wall, 4)}
        print(_json_line({**line, "report": str(files.html)}))
        return 0
    for found in headline.readings:
        _say(answer_sentence(found))
    _say(f'\nThe claim: "{headline.claim}".')
    _say(f"Judged on {' and '.join(headline.slos)} (the sizing defaults), seed {seed}.\n")
    print(format_table(headline_rows(headline), headline_headers(headline)))
    for found in headline.readings:
        _say(f"\n{reading_sentence(found)}")
    total = _duration(time.perf_counter() - started)
    ran = f"wall time {total}: simulating {' + '.join(simulated)} min took {_duration(wall)}"
    if not args.no_size:
        ran += f", sizing ({sizing.simulations:,} simulations) {_duration(sizing.wall_s)}"
    _say(f"\n{ran}")
    print(f"report: {files.markdown}\n        {files.html}")
    for report in reports:
        print(f"        {report.html}")
    return 0


def _say(text: str) -> None:
    """Print prose wrapped to the terminal width the tables fit in (blank lines kept)."""
    from reports.summary import TERMINAL_WIDTH

    lead = text[: len(text) - len(text.lstrip("\n"))]
    tail = text[len(text.rstrip("\n")) :]
    body = textwrap.fill(text.strip("\n"), TERMINAL_WIDTH, break_on_hyphens=False)
    print(f"{lead}{body}{tail}")


def _duration(seconds: float) -> str:
    """Wall time as "2.98 s", or "1 min 45 s" once it is over a minute."""
    if seconds < 60:
        return f"{seconds:.2f} s"
    whole = round(seconds)
    return f"{whole // 60} min {whole % 60} s"


@attrs.define
class _Sizing:
    """Sizes each reading of the headline, counting its simulations and wall time."""

    simulations: int = 0
    wall_s: float = 0.0

    def run(self, readings, scenarios, args: argparse.Namespace) -> list[dict]:
        """What each reading takes to meet the SLOs, with progress on stderr."""
        from engine.cli.progress import open_progress
        from sims.headline import fleet_needed

        started = time.perf_counter()
        needed = []
        progress = open_progress("simulate: sizing", 0, args.quiet)

        lock = threading.Lock()

        def counted() -> None:
            with lock:
                self.simulations += 1
            progress.simulation()

        try:
            for reading, scenario in zip(readings, scenarios, strict=True):
                fleet = fleet_needed(
                    reading.scenario,
                    scenario.workload.interviews,
                    args.set or [],
                    args.seed,
                    on_simulation=counted,
                )
                progress.step(f"{reading.label}: {fleet['accounts']} x {fleet['group']}")
                needed.append(fleet)
        finally:
            progress.close()
            self.wall_s = time.perf_counter() - started
        return needed


def cmd_size(args: argparse.Namespace) -> int:
    from engine.cli.progress import level_step, open_progress, point_step
    from reports.capacity import write_capacity_report
    from reports.summary import format_table
    from sims.confidence import Rule
    from sims.sizing import AccountRange, Sizing, SizingInterrupted, expected_simulations, size
    from sims.slo import DEFAULT_SLOS, Slo

    try:
        levels = [int(x) for x in args.interviews.split(",") if x.strip()]
    except ValueError:
        raise InvalidSetting("--interviews", args.interviews, "counts like 500,1000,2000") from None
    slos = [Slo.parse(text) for text in (args.slo or DEFAULT_SLOS)]
    ranges = [AccountRange.parse(text) for text in args.accounts or []]
    from sims.scenario import load

    router = _router(args)
    scenario, _ = load(args.scenario, args.set or [], seed=args.seed, tables=router)
    from sims.sizing import default_range

    rule = Rule(_share("--confidence", args.confidence), args.replications, args.max_replications)
    total = expected_simulations(
        len(levels), ranges or [default_range(scenario)], rule, args.holdout, args.mix
    )
    progress = open_progress("size", total * (2 if args.baseline else 1), args.quiet)

    def run(extra: list[str], label: str) -> Sizing:
        return size(
            args.scenario,
            levels,
            slos,
            ranges,
            rule=rule,
            holdout_seeds=args.holdout,
            overrides=[*(args.set or []), *extra],
            seed=args.seed,
            workers=args.workers,
            on_simulation=progress.simulation,
            cluster=args.cluster,
            on_point=lambda point: progress.step(label + point_step(point, slos)),
            on_level=lambda answer: progress.step(label + level_step(answer, slos)),
            mix=args.mix,
            router=router,
            resolution=_share("--resolution", args.resolution),
        )

    sizing: Sizing | None = None
    try:
        sizing = run([], "")
        baseline = run(args.baseline, "baseline: ") if args.baseline else None
    except SizingInterrupted as stop:
        progress.close()
        return _keep_decided(sizing or stop.decided, args, scenario.name)
    finally:
        progress.close()
    out = Path(args.out) if args.out else _new_run_dir(Path("runs"), f"size-{scenario.name}")
    data, files = write_capacity_report(sizing, out, baseline, " and ".join(args.baseline or []))
    if args.json:
        line = {
            str(level["interviews"]): (
                {
                    "fleet": level["recommended"]["counts"],
                    "accounts": level["recommended"]["accounts"],
                    "naive_accounts": level["naive_accounts"],
                    "cost_per_interview": level["cost_per_interview"],
                    "monthly_cost": level["monthly_cost"],
                    "binding_limit": level["binding_limit"],
                    "seeds_run": level["seeds_run"],
                    "fresh_seeds": len(level["holdout"]["seeds"]),
                    "fresh_seeds_met": level["holdout"]["met"],
                }
                if level["feasible"]
                else None
            )
            for level in data["levels"]
        }
        found: dict[str, Any] = {"recommendation": line, "report": str(files.html)}
        if args.mix:
            found["mix"] = {str(level["interviews"]): level["mix"] for level in data["levels"]}
        print(_json_line(found))
        return 0
    from reports.capacity import (
        HEADERS,
        comparison_sections,
        level_row,
        level_sentence,
        mix_sections,
    )
    from reports.document import Table

    for level in data["levels"]:
        _say(level_sentence(level, data["meta"]))
    print()
    print(format_table([level_row(level) for level in data["levels"]], HEADERS))
    if data["meta"].get("fixed"):
        held = " + ".join(f"{n} x {group}" for group, n in data["meta"]["fixed"].items())
        print(f"(held fixed, on top of each fleet: {held})")
    for section in [*mix_sections(data), *comparison_sections(data)]:
        print(f"\n{section.title}:")
        table = next(block for block in section.blocks if isinstance(block, Table))
        print(format_table(table.rows, table.headers))
    print(f"\nreport: {files.markdown}\n        {files.html}")
    return 0


def cmd_experiment(args: argparse.Namespace) -> int:
    from engine.cli.progress import open_progress
    from reports.experiment import write_experiment_report
    from reports.experiment_document import metric_value
    from reports.summary import format_table
    from sims.experiment import METRICS, SeedRun, load_experiment, run_experiment
    from sims.experiment_data import ALL_METRICS, json_line

    prepared = load_experiment(args.experiment, args.seeds, args.set or [])
    total = len(prepared.seeds) * len(prepared.spec.variants)
    progress = open_progress(f"experiment {prepared.spec.name}", total, args.quiet)

    def on_run(variant: str, run: SeedRun) -> None:
        progress.simulation()
        figures = ", ".join(
            f"{ALL_METRICS[key].label} {metric_value(ALL_METRICS[key], run.summary[key])}"
            for key in ("success_rate", "p95")
        )
        progress.step(f"{variant}, seed {run.seed}: {figures}")

    try:
        experiment = run_experiment(
            args.experiment,
            args.seeds,
            args.set or [],
            workers=args.workers,
            on_run=on_run,
            cluster=args.cluster,
        )
    finally:
        progress.close()
    out = (
        Path(args.out)
        if args.out
        else _new_run_dir(Path("runs"), f"experiment-{prepared.spec.name}")
    )
    data, files = write_experiment_report(experiment, out)
    if args.json:
        print(json.dumps(json_line(data, files.html), sort_keys=True))
        return 0
    seeds = data["meta"]["seeds"]
    print(f"{prepared.spec.name}: {len(seeds)} seeds ({seeds[0]}..{seeds[-1]}), paired\n")
    rows = [
        (
            v["name"] + (" (control)" if i == 0 else ""),
            *(metric_value(ALL_METRICS[k], v["means"][k]) for k in METRICS),
        )
        for i, v in enumerate(data["variants"])
    ]
    print(format_table(rows, ("variant", *(m.label for m in METRICS.values()))))
    _say(f"\n{data['verdict']['sentence']}")
    if data["verdict"]["tradeoffs"]:
        _say("Also changed significantly: " + "; ".join(data["verdict"]["tradeoffs"]) + ".")
    print(f"\nreport: {files.markdown}\n        {files.html}")
    return 0


def cmd_replay(args: argparse.Namespace) -> int:
    from reports.summary import format_table
    from sims.replay import HONESTY, overhead_note, replay, write_report

    comparison = replay(
        args.scenario,
        time_scale=args.time_scale,
        interviews=args.interviews,
        seed=args.seed,
        overrides=args.set or [],
        traces=None if args.traces_file is None else Path(args.traces_file),
    )
    scenario = comparison.scenario
    out = Path(args.out) if args.out else _new_run_dir(Path("runs"), f"replay-{scenario.name}")
    report = write_report(comparison, out)
    if args.json:
        print(_json_line({**comparison.as_json(), "report": str(report)}))
        return 0
    _say(
        f"{scenario.name} (seed {scenario.seed}): {scenario.workload.interviews} interviews "
        f"replayed {comparison.time_scale:g}x faster than real time through the live router, "
        "beside the simulation\n"
    )
    print(format_table(comparison.rows(), ("figure", "live replay", "simulation")))
    print(
        f"\nlive: {comparison.live_wall_s:.1f} s of wall time over "
        f"{len(comparison.urls)} loopback mock providers; "
        f"simulation: {comparison.simulation_wall_s:.2f} s"
    )
    _say(f"\n{overhead_note(comparison)}")
    _say(HONESTY)
    print(f"\nreport: {report}")
    return 0


def cmd_compare(args: argparse.Namespace) -> int:
    from reports.compare import (
        HEADERS,
        lead,
        seeds_text,
        side_rows,
        verdict_lines,
        write_comparison,
    )
    from reports.summary import format_table
    from sims.compare import compare

    if len(args.inputs) < 2:
        raise InvalidSetting(
            "compare", args.inputs, "TRACES... SCENARIO: trace files, then a scenario"
        )
    *traces, ref = args.inputs
    names = {}
    for pair in args.account or []:
        observed, sep, simulated = pair.partition("=")
        if not (sep and observed and simulated):
            raise InvalidSetting("--account", pair, "TRACES_NAME=SCENARIO_NAME")
        names[observed] = simulated
    comparison = compare(
        traces, ref, seed=args.seed, overrides=args.set or [], names=names, runs=args.runs
    )
    scenario = comparison.scenario
    out = Path(args.out) if args.out else _new_run_dir(Path("runs"), f"compare-{scenario.name}")
    files = write_comparison(comparison, out)
    if args.json:
        from reports.compare import comparison_json
        from sims.results import round_floats

        body = {**round_floats(comparison_json(comparison)), "report": str(files.markdown)}
        print(_json_line(body))
        return 0
    _say(
        f"{comparison.replayed:,} observed requests replayed through {scenario.name} "
        f"({seeds_text(comparison)}); {comparison.cached_left_out:,} cache hits left out"
    )
    for traced, ours in comparison.by_group:
        _say(f"traced {traced} is the scenario's {ours}, its group of one account")
    print()
    for side in comparison.sides:
        unit = "requests" if side is comparison.overall else "attempts"
        print(f"{side.name}:")
        print(format_table(side_rows(side, unit), HEADERS))
        print()
    for line in verdict_lines(comparison):
        print(line)
    print(f"\n{lead(comparison)}")
    if comparison.missing_in_scenario or comparison.missing_in_traces:
        print(
            f"accounts only in the traces: {', '.join(comparison.missing_in_scenario) or 'none'}; "
            f"only in the scenario: {', '.join(comparison.missing_in_traces) or 'none'}"
        )
    print(f"\nreport: {files.markdown}\n        {files.html}")
    return 0


def cmd_experiments(args: argparse.Namespace) -> int:
    from sims.experiment import builtin_experiments, load_experiment

    for name in builtin_experiments():
        prepared = load_experiment(name)
        first_line = " ".join(prepared.spec.description.split())
        print(f"{name:<22}{first_line}")
    return 0


def cmd_scenarios(args: argparse.Namespace) -> int:
    from sims.headline import READINGS
    from sims.scenario import builtin_names, load

    headline = [reading.scenario for reading in READINGS]
    names = builtin_names()
    width = max(len(name) for name in names) + 2
    for name in names:
        scenario, _ = load(name)
        first_line = " ".join(scenario.description.split())
        marker = " (default run)" if name in headline else ""
        print(f"{name:<{width}}{first_line}{marker}")
    return 0


#: What ``--set`` does for a command that runs one scenario.
OVERRIDE_HELP = "override any scenario key, e.g. --set retry.max_attempts=2 (repeatable)"


def _add_cluster_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--cluster",
        metavar="tcp://HOST:PORT",
        help="run the simulations on this Dask scheduler's workers instead of local processes "
        "(same results; needs pip install 'callboard[cluster]')",
    )


def _add_run_options(parser: argparse.ArgumentParser, set_help: str) -> None:
    """The options every command that runs a scenario takes alike: its seed, its keys
    (``set_help`` says for what), and where the report goes."""
    parser.add_argument("--seed", type=int, help="override the scenario's seed")
    parser.add_argument("--set", action="append", metavar="KEY=VALUE", help=set_help)
    parser.add_argument("--out", help="report folder (default: a new folder under ./runs/)")


def _add_router_option(parser: argparse.ArgumentParser) -> None:
    """``--router``: simulate with a live config's routing (sims/router_file.py)."""
    parser.add_argument(
        "--router",
        metavar="ROUTER.toml",
        help="route as this live config (callboard serve's) does: its [routing], [retry], "
        "[timeouts], [breaker], [cache], [health], [hedging], [concurrency] and [line] "
        "replace the scenario's, --set still applies after",
    )


def _version() -> str:
    """The installed package's version: what a bug report should quote."""
    from importlib import metadata

    try:
        return metadata.version("callboard")
    except metadata.PackageNotFoundError:
        return "unknown (not installed)"


class _Help(argparse.ArgumentDefaultsHelpFormatter):
    """Shows an option's default unless its help already says it (or it has none)."""

    def _get_help_string(self, action: argparse.Action) -> str | None:
        text = action.help or ""
        unset = action.default is None or action.default is False  # `is`: 0 is a default
        if "default" in text or unset or action.default == argparse.SUPPRESS:
            return text
        return super()._get_help_string(action)


class _Parser(argparse.ArgumentParser):
    """Every subcommand's parser: its ``--help`` shows each option's default."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        kwargs.setdefault("formatter_class", _Help)
        super().__init__(*args, **kwargs)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="callboard",
        description="Route LLM traffic across provider accounts, and simulate it in virtual time.",
    )
    parser.add_argument("--version", action="version", version=f"callboard {_version()}")
    commands = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)

    simulate = commands.add_parser(
        "simulate", help="run one seeded simulation and write its report"
    )
    simulate.add_argument(
        "scenario",
        nargs="?",
        help="a built-in scenario name or a TOML file (default: the headline, the "
        "interview-day claim read two ways: two scenarios side by side)",
    )
    simulate.add_argument("--interviews", type=int, help="override workload.interviews")
    _add_run_options(simulate, OVERRIDE_HELP)
    _add_router_option(simulate)
    simulate.add_argument("--json", action="store_true", help="print the summary as one JSON line")
    simulate.add_argument("--quiet", action="store_true", help="no progress bar")
    simulate.add_argument(
        "--traces-file",
        metavar="PATH",
        help="also write every request and attempt as OpenTelemetry spans on virtual time "
        "(OTLP JSON, one export request a line; docs/simulate.md#traces)",
    )
    simulate.add_argument(
        "--no-size",
        action="store_true",
        help="the default run: skip sizing each reading (what it takes to meet the SLOs)",
    )
    simulate.set_defaults(handler=cmd_simulate)

    size = commands.add_parser(
        "size", help="smallest fleet per concurrency level that meets the SLOs"
    )
    size.add_argument(
        "scenario",
        nargs="?",
        default=DEFAULT_SCENARIO,
        help="a built-in scenario name or a TOML file",
    )
    size.add_argument(
        "--interviews", default="500,1000,2000", help="comma-separated concurrency levels"
    )
    size.add_argument(
        "--slo",
        action="append",
        help='an objective like "provider_p95<=3s" or "success>=99.9%%" (repeatable; '
        "default: provider_p95<=5s and success>=99.5%%; metrics: docs/size.md)",
    )
    size.add_argument(
        "--accounts",
        action="append",
        metavar="GROUP=MIN..MAX",
        help="account group to size and its range (repeatable; groups grow together, "
        "or with --mix each on its own; default: the scenario's first group, from 1 to "
        "max(64, 4 x its count))",
    )
    size.add_argument(
        "--mix",
        action="store_true",
        help="find the cheapest mix of the --accounts kinds per level (each kind sized on "
        "its own range, MIN may be 0), beside each kind alone",
    )
    size.add_argument(
        "--baseline",
        action="append",
        metavar="KEY=VALUE",
        help="also size the scenario with these overrides and compare costs, e.g. "
        "--baseline \"routing.tiers='strong_only'\"",
    )
    size.add_argument(
        "--confidence",
        default="95%",
        help="share of fresh seeds the recommended fleet should meet the SLOs on "
        "(default 95%%; the rule: docs/size.md)",
    )
    size.add_argument(
        "--replications",
        type=int,
        default=3,
        help="fewest seeds a recommended fleet runs (default 3; the search probes other "
        "fleets on one seed, and stops a fleet at its first failing seed)",
    )
    size.add_argument(
        "--max-replications",
        type=int,
        default=12,
        help="most seeds a fleet runs before its verdict counts as unclear (default 12)",
    )
    size.add_argument(
        "--holdout",
        type=int,
        default=10,
        help="fresh seeds each recommendation is checked on after the search (default 10)",
    )
    size.add_argument(
        "--resolution",
        default="1%",
        help="how far above the smallest fleet an answer may be, as a share of its accounts "
        "(default 1%%: exact below 100 accounts; 0: exact)",
    )
    size.add_argument("--workers", type=int, help="simulation processes (default: all cores)")
    _add_cluster_option(size)
    _add_run_options(size, OVERRIDE_HELP)
    _add_router_option(size)
    size.add_argument(
        "--json", action="store_true", help="print the recommendation as one JSON line"
    )
    size.add_argument("--quiet", action="store_true", help="no progress display")
    size.set_defaults(handler=cmd_size)

    experiment = commands.add_parser(
        "experiment",
        help="run policy variants against the same faults and seeds; paired comparison",
    )
    experiment.add_argument(
        "experiment", help="a built-in experiment (see: callboard experiments) or a TOML file"
    )
    experiment.add_argument(
        "--seeds", type=int, help="seeds per variant (default: the experiment's own)"
    )
    experiment.add_argument(
        "--set",
        action="append",
        metavar="KEY=VALUE",
        help="override a scenario key for every variant (repeatable)",
    )
    experiment.add_argument("--workers", type=int, help="simulation processes (default: all cores)")
    _add_cluster_option(experiment)
    experiment.add_argument("--out", help="report folder (default: a new folder under ./runs/)")
    experiment.add_argument(
        "--json",
        action="store_true",
        help="print each variant's headline figures and the paired differences as one JSON line",
    )
    experiment.add_argument("--quiet", action="store_true", help="no progress display")
    experiment.set_defaults(handler=cmd_experiment)

    replay = commands.add_parser(
        "replay",
        help="play a scenario through the live router in scaled real time, beside its simulation",
    )
    replay.add_argument(
        "scenario", help="a built-in scenario, a scenario file, or an experiment (its control)"
    )
    replay.add_argument(
        "--time-scale",
        type=float,
        default=60.0,
        help="scenario seconds per real second (default: 60, an hour in a minute)",
    )
    replay.add_argument(
        "--interviews",
        type=int,
        default=20,
        help="override workload.interviews, for both runs (default: 20)",
    )
    _add_run_options(replay, "override any scenario key, for both runs (repeatable)")
    replay.add_argument(
        "--traces-file",
        metavar="PATH",
        help="the live router writes its spans here (OTLP JSON, as callboard serve's "
        "--traces-file), in real seconds: with --time-scale 1, the scenario's",
    )
    replay.add_argument("--json", action="store_true", help="print both columns as one JSON line")
    replay.set_defaults(handler=cmd_replay)

    compare = commands.add_parser(
        "compare",
        help="replay traces' observed arrivals through a scenario's simulated fleet; "
        "observed beside simulated",
    )
    compare.add_argument(
        "inputs",
        nargs="+",
        metavar="TRACES... SCENARIO",
        help="OTLP JSON trace files (--traces-file of serve or simulate), then a built-in "
        "scenario or a scenario file",
    )
    _add_run_options(compare, "override any scenario key (repeatable)")
    compare.add_argument(
        "--account",
        action="append",
        metavar="TRACES_NAME=SCENARIO_NAME",
        help="an account of the traces is this account of the scenario (repeatable); "
        "otherwise accounts are matched by name only",
    )
    compare.add_argument(
        "--runs",
        type=int,
        default=5,
        metavar="N",
        help="simulate on N seeds (the scenario's and those after it) and pool them, so "
        "the simulated side's own sampling noise shrinks (default 5)",
    )
    compare.add_argument(
        "--json", action="store_true", help="print the comparison as one JSON line"
    )
    compare.set_defaults(handler=cmd_compare)

    experiments = commands.add_parser("experiments", help="list the built-in experiments")
    experiments.set_defaults(handler=cmd_experiments)

    scenarios = commands.add_parser("scenarios", help="list the built-in scenarios")
    scenarios.set_defaults(handler=cmd_scenarios)

    from engine.cli.calibrate import add_calibrate_parser
    from engine.cli.live import add_caller_key_parser, add_mock_provider_parser, add_serve_parser

    add_serve_parser(commands)
    add_mock_provider_parser(commands)
    add_caller_key_parser(commands)
    add_calibrate_parser(commands)
    return parser


def _interrupted(command: str, kept: str = "") -> int:
    """Ctrl-C is the user's choice, not a failure: one line, and the shell's 128 + SIGINT."""
    print(f"\ncallboard {command}: interrupted{kept}", file=sys.stderr)
    return 130


def _keep_decided(decided: Any, args: argparse.Namespace, name: str) -> int:
    """``size`` stopped by Ctrl-C: the levels it had decided, written as a report."""
    from reports.capacity import write_capacity_report
    from reports.summary import count

    if not decided.levels:
        return _interrupted("size", " before any level was decided: nothing to keep")
    out = Path(args.out) if args.out else _new_run_dir(Path("runs"), f"size-{name}")
    _, files = write_capacity_report(decided, out)
    shown = ", ".join(count(level.interviews) for level in decided.levels)
    return _interrupted("size", f"; the levels decided before it ({shown}) are in {files.markdown}")


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        if getattr(args, "out", None):
            check_out("--out", args.out)
        return args.handler(args)
    except KeyboardInterrupt:
        return _interrupted(args.command)
    except BaseExceptionGroup as group:  # Ctrl-C inside a trio nursery (replay's live run)
        if group.split(KeyboardInterrupt)[1] is not None:
            raise  # something else failed too: that must not be hidden
        return _interrupted(args.command)
    except BrokenPipeError:
        # The reader went away (e.g. `| head`): nothing left to say, and no traceback
        # when Python flushes stdout on the way out.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0
    except CallboardError as exc:  # a ConfigError too: every named error, one line
        print(f"callboard: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
