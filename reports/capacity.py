"""The capacity report: what fleet each concurrency level needs, and why.

``capacity_data`` turns a :class:`sims.sizing.Sizing` into plain JSON-able data
(capacity.json); the figures, the Markdown and the HTML are all drawn from that
data, through the same Document the simulation report uses, so they agree.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import attrs
import matplotlib

matplotlib.use("Agg")
from matplotlib.figure import Figure
from matplotlib.ticker import FuncFormatter, PercentFormatter

from reports import summary
from reports.document import Document, FigureRef, Section, Table, write_file
from reports.html import document_html
from reports.markdown import document_markdown
from sims.confidence import holdout_interval
from sims.fleet_cost import DAYS_PER_MONTH, fee_table, monthly_cost
from sims.mix import passing
from sims.results import callboard_version, round_floats
from sims.scenario import scenario_hash
from sims.sizing import Point, Sizing
from sims.slo import Slo
from sims.slo_metrics import COVERS

#: Runners-up the report's table lists per level (capacity.json has every one).
RUNNERS_UP_SHOWN = 8


def _requests_per_hour(spec: Any) -> float:
    """An account's request allowance per hour under its tightest request limit."""
    hourly = [lim.limit * 3600.0 / lim.per for lim in spec.limits if lim.unit == "requests"]
    return min(hourly, default=math.inf)


def _worst(point: Point, slo: Slo) -> float:
    """The objective's value on the seed that did worst on it."""
    values = [slo.value(run.summary) for run in point.runs]
    return max(values) if slo.op == "<=" else min(values)


def _binding(point: Point) -> str:
    """The limit that most often held requests back; else the busiest constraint."""
    held: dict[str, int] = {}
    for run in point.runs:
        for limit, n in run.summary.get("held_back_by_limits", {}).items():
            held[limit] = held.get(limit, 0) + n
    if held:
        return max(held.items(), key=lambda item: (item[1], item[0]))[0]
    peak = max(
        (group["peak_utilisation"] for run in point.runs for group in run.groups.values()),
        default=0.0,
    )
    return "concurrency" if peak > 0.8 else "none (latency of the model)"


def _plotted(sizing: Sizing) -> Slo:
    """The latency objective the figure shows: the first one asked for, else the default."""
    latency = [slo for slo in sizing.slos if slo.is_latency]
    return latency[0] if latency else Slo.parse("provider_p95<=5s")


def _level_data(sizing: Sizing, level: Any) -> dict[str, Any]:
    groups = {group.prefix: group for group in sizing.scenario.accounts}
    specs = {prefix: group.specs()[0] for prefix, group in groups.items()}
    curve = [
        {
            "accounts": point.accounts,
            "counts": point.counts,
            "passed": point.passed,
            "verdict": point.verdict,
            "bounds": point.bounds,
            "seeds_passing": point.seeds_passing(sizing.slos),
            "latency": [_plotted(sizing).value(run.summary) for run in point.runs],
            "seeds_run": len(point.runs),
            "success_rate": [run.summary["success_rate"] for run in point.runs],
            "slo_values": {
                slo.text: [slo.value(run.summary) for run in point.runs] for slo in sizing.slos
            },
        }
        for point in level.points
    ]
    entry: dict[str, Any] = {
        "interviews": level.interviews,
        "feasible": level.recommended is not None,
        "monotone": level.monotone,
        "curve": curve,
    }
    if sizing.mix:
        entry["mix"] = _mix_data(sizing, level)
    point = level.recommended
    if point is None:
        best = max(level.points, key=lambda p: p.accounts)
        entry["best_tried"] = {
            "counts": best.counts,
            "slo_values": {
                slo.text: [slo.value(r.summary) for r in best.runs] for slo in sizing.slos
            },
        }
        return entry
    runs = point.runs
    cost_per_interview = sum(r.summary["cost_per_interview"] for r in runs) / len(runs)
    cache_hit = sum(r.summary["cache_hit_rate"] for r in runs) / len(runs)
    month = monthly_cost(fee_table(sizing.scenario), point)
    turns = len(sizing.scenario.workload.turn_plan)
    # The back-of-envelope: requests per hour over each account's hourly allowance,
    # as if the interviews spread evenly over an hour (the simulated cache rate given).
    per_account = sum(
        _requests_per_hour(specs[prefix]) * count for prefix, count in point.counts.items()
    ) / max(1, point.accounts)
    needed = level.interviews * turns * (1 - cache_hit)
    naive = math.ceil(needed / per_account) if math.isfinite(per_account) else None
    utilisation = {
        prefix: {
            "mean": sum(r.groups[prefix]["utilisation"] for r in runs) / len(runs),
            "peak": max(r.groups[prefix]["peak_utilisation"] for r in runs),
        }
        for prefix, count in point.counts.items()
        if count > 0  # a kind the mix leaves out ran no accounts
    }
    held_met = level.holdout_met(sizing.slos)
    entry.update(
        recommended={"counts": point.counts, "accounts": point.accounts},
        seeds_passing=point.seeds_passing(sizing.slos),
        seeds_run=len(runs),
        bounds=point.bounds,
        holdout={
            "seeds": [run.seed for run in level.holdout],
            "met": held_met,
            "interval": holdout_interval(held_met, len(level.holdout)),
            "slo_values": {
                slo.text: [slo.value(r.summary) for r in level.holdout] for slo in sizing.slos
            },
        },
        slo_values={slo.text: [slo.value(r.summary) for r in runs] for slo in sizing.slos},
        headroom={
            slo.text: (
                slo.target - _worst(point, slo)
                if slo.op == "<="
                else _worst(point, slo) - slo.target
            )
            for slo in sizing.slos
        },
        utilisation=utilisation,
        binding_limit=_binding(point),
        naive_accounts=naive,
        cache_hit_rate=cache_hit,
        cost_per_interview=cost_per_interview,
        monthly_usage_cost=month.usage,
        monthly_fees=month.fees,
        monthly_cost=month.total,
    )
    return entry


def _priced(fees: dict[str, float], point: Point) -> dict[str, Any]:
    """A fleet's month as the mix search ranked it: on the level's first seed."""
    month = monthly_cost(fees, point, seeds=1)
    return {
        "counts": point.counts,
        "accounts": point.accounts,
        "verdict": point.verdict,
        "seeds_run": len(point.runs),
        "monthly_usage_cost": month.usage,
        "monthly_fees": month.fees,
        "monthly_cost": month.total,
    }


def _mix_data(sizing: Sizing, level: Any) -> dict[str, Any]:
    """The cheapest-mix search's view of a level: every passing fleet it visited, by cost
    (the chosen one first when there is one), and each kind's fleet alone."""
    fees = fee_table(sizing.scenario)
    kinds = [r.group for r in sizing.ranges]
    candidates = [_priced(fees, p) for p in level.points if passing(p)]
    chosen = level.recommended

    def rank(entry: dict[str, Any]) -> tuple[Any, ...]:
        first = chosen is not None and entry["counts"] == chosen.counts
        mix = tuple(entry["counts"][k] for k in kinds)
        return (not first, entry["monthly_cost"], entry["accounts"], mix)

    return {
        "candidates": sorted(candidates, key=rank),
        "single_kind": {
            kind: None if point is None else _priced(fees, point)
            for kind, point in level.singles.items()
        },
    }


def capacity_data(
    sizing: Sizing, baseline: Sizing | None = None, baseline_label: str = ""
) -> dict[str, Any]:
    scenario = sizing.scenario
    comparison = None
    if baseline is not None:
        comparison = {
            "label": baseline_label,
            "levels": [_level_data(baseline, level) for level in baseline.levels],
        }
    return round_floats(
        {
            "baseline": comparison,
            "meta": {
                "scenario": scenario.name,
                "scenario_hash": scenario_hash(scenario),
                "seed": scenario.seed,
                "callboard_version": callboard_version(),
                "slos": [slo.text for slo in sizing.slos],
                "plotted_latency": _plotted(sizing).metric,
                "ranges": [attrs.asdict(r) for r in sizing.ranges],
                "mix": sizing.mix,
                "confidence": sizing.rule.confidence,
                "min_seeds": sizing.rule.min_seeds,
                "max_seeds": sizing.rule.max_seeds,
                "holdout_seeds": sizing.holdout_seeds,
                "resolution": sizing.resolution,
                "days_per_month": DAYS_PER_MONTH,
                "fixed": {
                    group.prefix: group.count
                    for group in scenario.accounts
                    if group.prefix not in {r.group for r in sizing.ranges}
                },
            },
            "levels": [_level_data(sizing, level) for level in sizing.levels],
        }
    )


# --- figures ---------------------------------------------------------------------


def plain_number(value: float, _position: object = None) -> str:
    """A tick label as a reader writes the number: "60", "4", "0.5", never "6x10^1"."""
    return f"{value:g}"


def _off_scale(ax: Any, x: list[int], colour: Any) -> None:
    """Points whose value is infinite, as triangles at the top edge of the axes."""
    ax.plot(
        x,
        [0.97] * len(x),
        "^",
        markersize=9,
        color=colour,
        markeredgecolor="black",
        markeredgewidth=0.5,
        transform=ax.get_xaxis_transform(),  # x in data, y in axes: always at the top
        clip_on=False,
        linestyle="none",
        gid="off-scale",
    )


def curve_figure(data: dict[str, Any], key: str, metric: str, label: str, title: str) -> Figure:
    """Median seed (line), all seeds (band) and the pick (star) per interview level, with
    the objectives on ``metric`` drawn as dashed lines. A fleet with an infinite latency on
    a seed (more turns failed than the percentile allows) is a triangle at the top edge. A
    mix's fleets of one size differ in kind, so they are dots, not a line."""
    fig = Figure(figsize=(9, 4.8), layout="constrained")
    ax = fig.subplots()
    latency = key == "latency"
    quantile = metric.rpartition("_")[2]
    off_scale = False
    for level in data["levels"]:
        points = sorted(level["curve"], key=lambda p: p["accounts"])
        x = [p["accounts"] for p in points]
        values = [sorted(float(v) for v in p[key]) for p in points]
        shown = [[v if math.isfinite(v) else math.nan for v in seeds] for seeds in values]
        mid = [seeds[len(seeds) // 2] for seeds in shown]
        mix = bool(data["meta"].get("mix"))
        style = "o" if mix else "-o"
        line = ax.plot(x, mid, style, markersize=4, label=f"{level['interviews']:,} interviews")[0]
        if not mix:
            ax.fill_between(
                x,
                [seeds[0] for seeds in shown],
                [seeds[-1] for seeds in shown],
                color=line.get_color(),
                alpha=0.15,
                linewidth=0,
            )
        infinite = [n for n, seeds in zip(x, values, strict=True) if math.inf in seeds]
        if infinite:
            _off_scale(ax, infinite, line.get_color())
            off_scale = True
        if level["feasible"]:
            counts = level["recommended"]["counts"]
            pick = next(i for i, p in enumerate(points) if p["counts"] == counts)
            ax.plot([x[pick]], [mid[pick]], "*", markersize=15, color=line.get_color())
    for text in data["meta"]["slos"]:
        slo = Slo.parse(text)
        if slo.metric == metric:
            ax.axhline(
                slo.target, color="#c0392b", linestyle="--", linewidth=1, label=f"SLO {text}"
            )
    if off_scale:  # one legend entry for the triangles of every level, in no level's colour
        label = f"∞ on a seed: more turns failed than the {quantile} allows"
        ax.plot([], [], "^", color="#999999", markeredgecolor="black", label=label)
    if latency:
        ax.set_yscale("log")
        ax.yaxis.set_major_formatter(FuncFormatter(plain_number))
        ax.yaxis.set_minor_formatter(FuncFormatter(_minor_label))
    else:
        ax.yaxis.set_major_formatter(PercentFormatter(xmax=1.0))
    ax.set_xlabel("accounts in the fleet")
    ax.set_ylabel(label)
    ax.set_title(title, fontsize=10.5)
    meta = data["meta"]
    fig.suptitle(f"{meta['scenario']} (seed {meta['seed']})", fontsize=11.5)
    ax.grid(True, alpha=0.3)
    ax.legend(fontsize=8)
    return fig


def _minor_label(value: float, position: object = None) -> str:
    """Label the 2s and 5s between decades, so a latency axis spanning less than a decade
    still has numbers on it."""
    leading = round(value / 10 ** math.floor(math.log10(value)), 6) if value > 0 else 0
    return plain_number(value) if leading in (2, 5) else ""


def capacity_figures(data: dict[str, Any], out_dir: Path) -> list[FigureRef]:
    out_dir.mkdir(parents=True, exist_ok=True)
    metric = data["meta"]["plotted_latency"]
    family, _, quantile = metric.rpartition("_")
    legend = (
        "(dot: a fleet's median seed; star: pick)"
        if data["meta"].get("mix")
        else "(line: median seed; band: all seeds; star: pick)"
    )
    made = []
    for name, key, slo_metric, label, title, caption in (
        (
            "sizing_latency",
            "latency",
            metric,
            f"{metric} (s, log scale)",
            f"{quantile} {family} latency against fleet size {legend}",
            f"Each point is one fleet size the search simulated, over every seed; {metric} "
            f"covers {COVERS[family]}, a failed turn counted as missing the objective. A "
            f"triangle at the top edge marks a fleet where more turns failed than the "
            f"{quantile} allows on some seed (an infinite {metric}, off the scale).",
        ),
        (
            "sizing_success",
            "success_rate",
            "success",
            "requests answered (% of all requests)",
            f"Success rate against fleet size {legend}",
            "Below the dashed line the fleet fails the success objective.",
        ),
    ):
        fig = curve_figure(data, key, slo_metric, label, title)
        path = out_dir / f"{name}.png"
        fig.savefig(path, dpi=110, metadata={"Software": None})
        made.append(FigureRef(f"figures/{path.name}", path, title.split(" (")[0], caption))
    return made


# --- document --------------------------------------------------------------------

HEADERS = (
    "interviews",
    "recommended fleet",
    "naive arithmetic",
    "worst seed vs SLOs",
    "fresh seeds meeting SLOs",
    "utilisation mean / peak",
    "binding limit",
    "cost / interview (usage + fees)",
    "cost / month: usage + fees",
)


#: How the report names a fleet's verdict (sims.confidence).
VERDICTS = {
    "met": "shown to meet",
    "missed": "missed",
    "unclear": "unclear",
    "open": "probe: met on its seed",
}


def _held_out(holdout: dict[str, Any]) -> str:
    """``k of n (95% interval low-high)`` for the recommendation's fresh seeds."""
    n = len(holdout["seeds"])
    if n == 0:
        return "not checked (--holdout 0)"
    low, high = holdout["interval"]
    return f"{holdout['met']} of {n} ({summary.percent(low)}-{summary.percent(high)} of all seeds)"


def _fleet(counts: dict[str, int]) -> str:
    """``2 x fast + 3 x cheap``: a kind the mix leaves out (0) is not named."""
    named = " + ".join(f"{n} x {group}" for group, n in counts.items() if n > 0)
    return named or "none of these kinds (the fixed groups alone)"


def _slo_text(values: dict[str, list[float]]) -> str:
    parts = []
    for slo, seeds in values.items():
        metric = slo.split("<=")[0].split(">=")[0]
        worst = max(seeds) if "<=" in slo else min(seeds)
        shown = (
            summary.percent(worst)
            if "success" in slo or "without" in slo
            else summary.seconds(worst)
        )
        parts.append(f"{metric} {shown}")
    return ", ".join(parts)


def level_sentence(level: dict[str, Any], meta: dict[str, Any]) -> str:
    """One level's answer in a sentence: the fleet, what 'shown' means, the fresh check."""
    slos = " and ".join(meta["slos"])
    head = summary.plural(level["interviews"], "interview")
    if not level["feasible"]:
        best = _fleet(level["best_tried"]["counts"])
        return f"{head}: no fleet in the range met {slos} (the largest tried: {best})."
    fleet = _fleet(level["recommended"]["counts"])
    fresh = level["holdout"]
    checked = (
        "; "
        + summary.fresh_check(
            fresh["met"], len(fresh["seeds"]), meta["confidence"], "the search never saw"
        )
        if fresh["seeds"]
        else ""
    )
    what = "the cheapest mix" if meta.get("mix") else "the smallest fleet"
    resolution = meta.get("resolution", 0.0)
    accounts = sum(level["recommended"]["counts"].values())
    if not meta.get("mix") and math.floor(resolution * accounts) >= 1:
        what = f"the smallest fleet, to {summary.percent(resolution)},"  # not exact: say so
    return (
        f"{head}: {fleet} is {what} shown to meet {slos} on at least "
        f"{summary.percent(meta['confidence'])} of days{checked}."
    )


def level_row(level: dict[str, Any]) -> tuple[str, ...]:
    if not level["feasible"]:
        best = level["best_tried"]
        return (
            summary.count(level["interviews"]),
            f"none within range (best tried: {_fleet(best['counts'])})",
            "",
            _slo_text(best["slo_values"]),
            "",
            "",
            "",
            "",
            "",
        )
    utilisation = " · ".join(
        f"{summary.percent(u['mean'])} / {summary.percent(u['peak'])}"
        for u in level["utilisation"].values()
    )
    naive = level["naive_accounts"]
    return (
        summary.count(level["interviews"]),
        _fleet(level["recommended"]["counts"]),
        "n/a" if naive is None else summary.plural(naive, "account"),
        f"{_slo_text(level['slo_values'])} ({level['seeds_run']} seeds)",
        _held_out(level["holdout"]),
        utilisation,
        str(level["binding_limit"]),
        summary.money(level["monthly_cost"] / (level["interviews"] * DAYS_PER_MONTH)),
        f"{summary.money(level['monthly_cost'])}: {summary.money(level['monthly_usage_cost'])}"
        f" + {summary.money(level['monthly_fees'])}",
    )


def capacity_document(data: dict[str, Any], figures: list[FigureRef]) -> Document:
    meta = data["meta"]
    levels = data["levels"]
    feasible = [lv for lv in levels if lv["feasible"]]
    confidence = summary.percent(meta["confidence"])
    lead = " ".join(level_sentence(level, meta) for level in levels)
    notes = [
        f"Confidence: a fleet is recommended once {meta['min_seeds']} to {meta['max_seeds']} "
        "seeds all met every objective and, for each objective, the one-sided normal "
        "tolerance bound over its seeds is within the threshold (90% sure that "
        f"{confidence} of all seeds meet every objective together); one seed that misses "
        "rules a fleet out (docs/size.md). Each "
        f"recommendation then ran on {meta['holdout_seeds']} fresh seeds the search never "
        "saw: the share that met every objective, with its exact 95% (Clopper-Pearson) "
        "interval, is the 'fresh seeds' column (--confidence, --replications, "
        "--max-replications, --holdout).",
        f"Resolution: the search stops once the fleet it recommends is at most "
        f"{summary.percent(meta['resolution'])} of its accounts above the smallest fleet "
        "that could still be the answer (exact below 1 / resolution accounts); the fleet is "
        "shown to meet the objectives by the same rule either way (--resolution).",
        "Naive arithmetic divides the requests of all interviews (less the simulated cache "
        "hits) by each account's hourly allowance, as if the interviews spread evenly over "
        "an hour: the usual back-of-envelope. The simulation sees the bursts, the queueing "
        "and the limit windows it ignores.",
        f"Cost per month: the usage cost per interview times this many interviews a day for "
        f"{meta['days_per_month']} days, plus the accounts' monthly fees; cost per interview "
        "is that month's cost over its interviews, so the fees are in it too.",
    ]
    if meta.get("fixed"):
        notes.append(
            f"Held fixed while sizing: {_fleet(meta['fixed'])} (not in --accounts); "
            "the fleets above come on top of them."
        )
    for level in levels:
        if not level["monotone"]:
            notes.append(
                f"At {level['interviews']} interviews a larger fleet failed where a smaller one "
                "passed: the search assumes more accounts never hurt, so check that curve."
            )
    curve_rows = []
    for level in levels:
        for point in sorted(level["curve"], key=lambda p: p["accounts"]):
            curve_rows.append(
                (
                    summary.count(level["interviews"]),
                    _fleet(point["counts"]),
                    f"{point['seeds_passing']} of {point['seeds_run']}",
                    VERDICTS[point["verdict"]],
                    _slo_text(point["slo_values"]),
                )
            )
    sections = [
        Section(
            "Recommendation",
            (Table(HEADERS, tuple(level_row(lv) for lv in levels)), *notes),
        ),
        *mix_sections(data),
        *comparison_sections(data),
        Section(
            "Every fleet the search tried",
            (
                Table(
                    ("interviews", "fleet", "seeds meeting all SLOs", "verdict", "worst seed"),
                    tuple(curve_rows),
                ),
                "A fleet that misses an objective on one seed has failed, so the search "
                "probes each fleet on one seed and runs more only on the fleet it would "
                "recommend, until the verdict is clear; a fleet stops at its first seed "
                "that misses. 'Unclear': the bound still crossed a threshold after "
                f"{meta['max_seeds']} seeds, or would at today's spread.",
            ),
        ),
        Section("Figures", tuple(figures)),
    ]
    if not feasible:
        sections[0] = Section(
            "Recommendation",
            (
                Table(HEADERS, tuple(level_row(lv) for lv in levels)),
                "No level met its objectives within the account range: widen --accounts, "
                "or relax an objective the model cannot reach (see the best tried).",
                *notes,
            ),
        )
    footer = (
        f"scenario {meta['scenario']} · hash {meta['scenario_hash']} · seed {meta['seed']} · "
        f"callboard {meta['callboard_version']}. All times are simulated."
    )
    return Document(
        title=f"callboard capacity: {meta['scenario']}",
        lead=lead,
        description="",
        sections=tuple(sections),
        footer=footer,
    )


MIX_HEADERS = (
    "interviews",
    "mix",
    "cost / month, first seed: usage + fees",
    "verdict",
    "seeds run",
)
SINGLE_HEADERS = (
    "interviews",
    "kind alone",
    "smallest fleet",
    "cost / month, first seed: usage + fees",
)


def _month(entry: dict[str, Any]) -> str:
    return (
        f"{summary.money(entry['monthly_cost'])}: {summary.money(entry['monthly_usage_cost'])}"
        f" + {summary.money(entry['monthly_fees'])}"
    )


def mix_sections(data: dict[str, Any]) -> list[Section]:
    """The cheapest mix per level, its runners-up by cost, and each kind's fleet alone."""
    if not data["meta"].get("mix"):
        return []
    mixes, singles = [], []
    for level in data["levels"]:
        interviews = summary.count(level["interviews"])
        candidates = level["mix"]["candidates"]
        for i, entry in enumerate(candidates[:RUNNERS_UP_SHOWN]):
            chosen = i == 0 and level["feasible"]
            verdict = "cheapest: " + VERDICTS["met"] if chosen else VERDICTS[entry["verdict"]]
            seeds = str(entry["seeds_run"])
            mixes.append((interviews, _fleet(entry["counts"]), _month(entry), verdict, seeds))
        if len(candidates) > RUNNERS_UP_SHOWN:
            more = len(candidates) - RUNNERS_UP_SHOWN
            mixes.append((interviews, f"(and {more} more in capacity.json)", "", "", ""))
        if not candidates:
            mixes.append((interviews, "none within the ranges", "", "", ""))
        for kind, entry in level["mix"]["single_kind"].items():
            if entry is None:
                singles.append((interviews, kind, "none within range", ""))
            else:
                singles.append((interviews, kind, _fleet(entry["counts"]), _month(entry)))
    ranges = ", ".join(f"{r['group']} {r['low']}..{r['high']}" for r in data["meta"]["ranges"])
    return [
        Section(
            "The cheapest mix",
            (
                Table(MIX_HEADERS, tuple(mixes)),
                f"Each kind is sized on its own range ({ranges}); per level, the passing "
                "fleets the search visited, cheapest first: the first was shown to meet "
                "every objective and checked on fresh seeds; a runner-up marked 'probe' met "
                "them on its one seed and was not run further, as it cost more. Each is priced "
                "on the level's first seed, which every fleet ran (the same day, so they "
                "compare like with like; the recommendation's cost above is its mean over "
                "all its seeds). The search "
                "walks the frontier of smallest fleets (for each count of the other kinds, "
                "the fewest of the last kind that passes) and skips fleets whose fees alone "
                "cost more than the cheapest found (docs/size.md).",
            ),
        ),
        Section(
            "Each kind alone",
            (
                Table(SINGLE_HEADERS, tuple(singles)),
                "The smallest fleet of each kind with the other kinds left out, shown to "
                "meet every objective by the same rule: what the mix saves against buying "
                "one kind.",
            ),
        ),
    ]


COMPARISON_HEADERS = (
    "interviews",
    "this routing: fleet",
    "cost / month",
    "baseline: fleet",
    "cost / month",
    "saved",
)


def comparison_sections(data: dict[str, Any]) -> list[Section]:
    """This configuration against the baseline, each at its own smallest passing fleet."""
    baseline = data.get("baseline")
    if not baseline:
        return []
    rows = []
    for ours, theirs in zip(data["levels"], baseline["levels"], strict=True):
        if not (ours["feasible"] and theirs["feasible"]):
            verdict = "baseline infeasible" if ours["feasible"] else "not comparable"
            rows.append((summary.count(ours["interviews"]), "", "", "", "", verdict))
            continue
        mine, base = ours["monthly_cost"], theirs["monthly_cost"]
        saved = (base - mine) / base if base > 0 else 0.0
        rows.append(
            (
                summary.count(ours["interviews"]),
                _fleet(ours["recommended"]["counts"]),
                summary.money(mine),
                _fleet(theirs["recommended"]["counts"]),
                summary.money(base),
                summary.percent(saved),
            )
        )
    note = (
        f"The baseline is the same scenario with {baseline['label']}, sized against the same "
        "objectives and seeds; each side is priced at its own smallest passing fleet."
    )
    return [Section("Against the baseline", (Table(COMPARISON_HEADERS, tuple(rows)), note))]


@attrs.frozen
class CapacityFiles:
    out_dir: Path
    json: Path
    markdown: Path
    html: Path


def write_capacity_report(
    sizing: Sizing,
    out_dir: Path,
    baseline: Sizing | None = None,
    baseline_label: str = "",
) -> tuple[dict[str, Any], CapacityFiles]:
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    data = capacity_data(sizing, baseline, baseline_label)
    json_path = out_dir / "capacity.json"
    write_file(json_path, json.dumps(data, sort_keys=True, indent=1) + "\n")
    figures = capacity_figures(data, out_dir / "figures")
    document = capacity_document(data, figures)
    md = out_dir / "capacity.md"
    write_file(md, document_markdown(document))
    html = out_dir / "capacity.html"
    write_file(html, document_html(document))
    return data, CapacityFiles(out_dir, json_path, md, html)
