"""The experiment report's text: the verdict, the tables, the set-up, as a Document.

What it says comes from experiment.json's data alone
(:func:`reports.experiment.experiment_report_data`); the Markdown and HTML renderers
only lay it out, as for the other reports.
"""

from __future__ import annotations

import math
from typing import Any

from reports import summary
from reports.document import Document, FigureRef, Section, Table
from reports.experiment_text import interval, signed
from sims.experiment import METRICS, Metric
from sims.experiment_data import ALL_METRICS, as_number


def metric_value(metric: Metric, value: Any) -> str:
    number = as_number(value)
    if metric.unit == "share":
        return summary.percent(number)
    if metric.unit == "seconds":
        return summary.seconds(number)
    if metric.unit == "money":
        return summary.money(number)
    return f"{number:,.1f}" if math.isfinite(number) else "n/a"


def _headline_table(data: dict[str, Any]) -> Table:
    keys = [*METRICS, "upstream_calls", "hedges", "retries_denied", "shed", "breaker_openings"]
    shown = [
        k for k in keys if k in METRICS or any(as_number(v["means"][k]) for v in data["variants"])
    ]
    headers = ("variant", *(ALL_METRICS[k].label for k in shown))
    rows = [
        (
            v["name"] + (" (control)" if i == 0 else ""),
            *(metric_value(ALL_METRICS[k], v["means"][k]) for k in shown),
        )
        for i, v in enumerate(data["variants"])
    ]
    return Table(headers, tuple(rows))


def _difference_table(data: dict[str, Any]) -> Table:
    rows = []
    for d in data["differences"]:
        for key, metric in ALL_METRICS.items():
            entry = d["metrics"][key]
            if (
                key not in METRICS
                and as_number(entry["mean"]) == 0
                and entry["significant"] is False
            ):
                continue
            relative = as_number(entry["relative"])
            rows.append(
                (
                    f"{d['variant']} - {d['against']}",
                    metric.label,
                    signed(metric, as_number(entry["mean"])),
                    interval(metric, entry).removeprefix("95% CI "),
                    f"{relative * 100:+.1f}%" if math.isfinite(relative) else "n/a",
                    "yes" if entry["significant"] else "no",
                )
            )
    return Table(
        ("comparison", "metric", "mean difference", "95% interval", "relative", "significant"),
        tuple(rows),
    )


def _variant_rows(data: dict[str, Any]) -> Table:
    rows = []
    for i, v in enumerate(data["variants"]):
        failures = ", ".join(f"{code} {n:,}" for code, n in v["failures"].items()) or "none"
        rows.append(
            (
                v["name"] + (" (control)" if i == 0 else ""),
                v["description"] or "-",
                " ".join(v["set"]) or "(base scenario)",
                failures,
                v["scenario_hash"],
            )
        )
    return Table(
        ("variant", "what it is", "overrides", "failed requests, all seeds", "scenario hash"),
        tuple(rows),
    )


def _fault_text(fault: dict[str, Any]) -> str:
    window = f"{summary.clock(fault['start'])}-{summary.clock(fault['end'])}"
    extra = {
        "latency": f" x{as_number(fault['multiplier']):g}",
        "flapping": f", {as_number(fault['period']):g} s down, then as long up",
        "errors": f", {as_number(fault['share']) * 100:g}% of calls",
        "slow_recovery": f", from {as_number(fault['share']) * 100:g}% of calls to 0",
    }.get(fault["kind"], "")
    return f"{fault['kind']} on {fault['target']}, {window}{extra}"


def experiment_document(data: dict[str, Any], figures: list[FigureRef]) -> Document:
    meta = data["meta"]
    verdict = data["verdict"]
    seeds = meta["seeds"]
    lead = verdict["sentence"]
    if verdict["tradeoffs"]:
        lead += " Also changed significantly: " + "; ".join(verdict["tradeoffs"]) + "."
    method = (
        f"Every variant ran the scenario {meta['scenario_name']} ({meta['scenario']}) on the "
        f"same {len(seeds)} seeds ({seeds[0]}..{seeds[-1]}). Seed i gives every variant the "
        "same arrivals and the same provider behaviour: each provider account, interview and "
        "arrival process draws from its own named random stream (common random numbers). "
        "Differences are paired by seed (variant minus control) with a 95% Student-t "
        "interval; a difference is significant when its interval leaves out zero. Headline "
        "figures are means over the seeds; latencies are those of candidate-facing turns."
    )
    faults = [_fault_text(f) for f in data["faults"]]
    fault_text = (
        "Faults injected (the same for every variant): " + "; ".join(faults) + "."
        if faults
        else "No faults are injected."
    )
    common = meta["common_overrides"]
    blocks_setup: list[Any] = [
        method,
        fault_text,
        _variant_rows(data),
    ]
    if common:
        blocks_setup.append("Overrides applied to every variant: " + " ".join(common) + ".")
    if meta["scenario_description"]:
        blocks_setup.append(f"The scenario: {meta['scenario_description']}")
    sections = [
        Section(
            "Verdict",
            (
                lead,
                f"Judged by {METRICS[meta['judge']].label} ({meta['judge']}); the other "
                "figures are shown for their trade-offs.",
                _headline_table(data),
            ),
        ),
        Section("Paired differences against the control", (_difference_table(data),)),
        Section("Set-up", tuple(blocks_setup)),
        Section("Figures", tuple(figures) or ("No figures were rendered.",)),
    ]
    footer = (
        f"experiment {meta['experiment']} · scenario {meta['scenario_name']} · scenario hash "
        f"{meta['scenario_hash']} · seeds {seeds[0]}..{seeds[-1]} · callboard "
        f"{meta['callboard_version']}. All times are simulated; the same experiment and seeds "
        "give the same report."
    )
    return Document(
        title=f"callboard experiment: {meta['experiment']}",
        lead=lead,
        description=meta["description"],
        sections=tuple(sections),
        footer=footer,
    )
