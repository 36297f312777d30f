"""A comparison's report: compare.json, compare.md, compare.html and figures, in one folder.

The simulated run behind it gets the simulator's own full report in ``simulation/``
(reports.render): the same figures `callboard simulate` draws, of the replayed traffic.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import attrs

from reports.compare_figures import compare_figures
from reports.document import Document, FigureRef, Heading, Section, Table, write_file
from reports.html import document_html
from reports.markdown import document_markdown
from reports.render import write_report
from reports.summary import count, percent, seconds
from sims.compare import INTERVAL, PERCENTILES, TOLERANCE, Comparison, Figures, Side
from sims.results import round_floats
from sims.summarise import summarise

#: The percentiles judged against the tolerance, as (figure, label).
JUDGED = (("latency", "latency"), ("ttft", "time to first token"))
#: The ground truth's figures: latency p50 and p95.
GROUND_TRUTH = (50, 95)


def _figures_json(figures: Figures) -> dict[str, Any]:
    body: dict[str, Any] = {
        "runs": figures.runs,
        "calls": figures.calls,
        "answered": figures.answered,
        "success_rate": figures.success_rate,
        "rate_limited": figures.rate_limited,
        "retries": figures.retries,
        "failovers": figures.failovers,
    }
    for figure, _ in JUDGED:
        for point in PERCENTILES:
            body[f"{figure}_p{point}"] = figures.percentile(figure, point)
            body[f"{figure}_p{point}_interval"] = list(figures.interval(figure, point))
    return body


def _side_json(side: Side) -> dict[str, Any]:
    keys = [(figure, point) for figure, _ in JUDGED for point in PERCENTILES]
    return {
        "observed": _figures_json(side.observed),
        "simulated": _figures_json(side.simulated),
        "difference": {f"{f}_p{p}": side.difference(f, p) for f, p in keys},
        "within_tolerance": {f"{f}_p{p}": side.within(f, p) for f, p in keys},
        "inside_observed_interval": {f"{f}_p{p}": side.inside_interval(f, p) for f, p in keys},
    }


def comparison_json(comparison: Comparison) -> dict[str, Any]:
    """compare.json's body: every figure of both sides, the differences and the verdicts."""
    return {
        "scenario": comparison.scenario.name,
        "seed": comparison.scenario.seed,
        "runs": comparison.runs,
        "interval": INTERVAL,
        "traces": list(comparison.traces),
        "source": comparison.source,
        "replayed_requests": comparison.replayed,
        "cached_left_out": comparison.cached_left_out,
        "tolerance": TOLERANCE,
        "close": comparison.close,
        "matched_by_group": dict(comparison.by_group),
        "missing_in_scenario": list(comparison.missing_in_scenario),
        "missing_in_traces": list(comparison.missing_in_traces),
        "overall": _side_json(comparison.overall),
        "accounts": {side.name: _side_json(side) for side in comparison.accounts},
    }


def signed_percent(share: float) -> str:
    """``+2.5%``; a difference that rounds to nothing is ``0.0%``, never ``-0.0%``."""
    if not math.isfinite(share):
        return "n/a"
    shown = round(share * 100, 1)
    return f"{shown:+.1f}%" if shown else "0.0%"


def _verdict(side: Side, figure: str, point: int) -> str:
    if not math.isfinite(side.difference(figure, point)):
        return "n/a"
    if side.within(figure, point):
        return f"within {TOLERANCE:.0%}"
    if side.inside_interval(figure, point):
        # The observed figure itself is known no better: more traffic would tell.
        return f"off by more than {TOLERANCE:.0%}, inside the observed's {INTERVAL:.0%} interval"
    return f"off by more than {TOLERANCE:.0%}"


def interval_text(figures: Figures, figure: str, point: int) -> str:
    """``[1.26, 1.37]``: an observed percentile's interval; ``n/a`` beyond the sample's."""
    low, high = figures.interval(figure, point)
    shown = [seconds(v).removesuffix(" s") for v in (low, high)]
    return f"[{shown[0]}, {shown[1]}]"


def _counts(observed: int, simulated: Figures, total: int) -> tuple[str, str, str, str]:
    """An observed count (no interval) beside the simulated runs' mean of it."""
    mean = total / simulated.runs
    difference = (mean - observed) / observed if observed else float("nan")
    shown = count(mean) if float(mean).is_integer() else f"{mean:,.1f}"
    return count(observed), "", shown, signed_percent(difference)


def side_rows(side: Side, unit: str) -> list[tuple[str, ...]]:
    """One scope's table: each figure observed (with its interval), simulated (a count as
    the mean of its runs), their distance and verdict."""
    o, s = side.observed, side.simulated
    rows: list[tuple[str, ...]] = [
        (unit, *_counts(o.calls, s, s.calls), ""),
        ("success rate", percent(o.success_rate), "", percent(s.success_rate),
         signed_percent(s.success_rate - o.success_rate).replace("%", " pt"), ""),
    ]  # fmt: skip
    for figure, label in JUDGED:
        for point in PERCENTILES:
            rows.append(
                (
                    f"{label} p{point}",
                    seconds(o.percentile(figure, point)),
                    interval_text(o, figure, point),
                    seconds(s.percentile(figure, point)),
                    signed_percent(side.difference(figure, point)),
                    _verdict(side, figure, point),
                )
            )
    rows += [
        ("429s", *_counts(o.rate_limited, s, s.rate_limited), ""),
        ("retries (same account)", *_counts(o.retries, s, s.retries), ""),
        ("failovers (another account)", *_counts(o.failovers, s, s.failovers), ""),
    ]
    return rows


HEADERS = ("figure", "observed", f"observed, {INTERVAL:.0%} interval", "simulated",
           "difference", "verdict")  # fmt: skip


def verdict_lines(comparison: Comparison) -> list[str]:
    """The ground truth's test, one line per figure: latency p50 and p95, overall and per
    account (the observed with its interval), each within the tolerance of it or not."""
    lines = []
    for side in comparison.sides:
        for point in GROUND_TRUTH:
            lines.append(
                f"{side.name} latency p{point}: simulated "
                f"{seconds(side.simulated.percentile('latency', point))}, observed "
                f"{seconds(side.observed.percentile('latency', point))} "
                f"{interval_text(side.observed, 'latency', point)} "
                f"({signed_percent(side.difference('latency', point))}): "
                f"{_verdict(side, 'latency', point)}"
            )
    return lines


def seeds_text(comparison: Comparison) -> str:
    """``seed 5``, or ``seeds 5 to 9 pooled``: what the simulated side ran on."""
    first = comparison.scenario.seed
    if comparison.runs == 1:
        return f"seed {first}"
    return f"seeds {first} to {first + comparison.runs - 1} pooled"


def lead(comparison: Comparison) -> str:
    scopes = "overall and for every account" if comparison.accounts else "overall"
    if comparison.close:
        return f"Simulated p50 and p95 latency are within {TOLERANCE:.0%} of observed, {scopes}."
    off = [
        f"{side.name} p{point}"
        for side in comparison.sides
        for point in GROUND_TRUTH
        if not side.within("latency", point)
    ]
    return (
        f"Simulated latency is not within {TOLERANCE:.0%} of observed: "
        f"{', '.join(off)} ({len(off)} of {2 * len(comparison.sides)} figures)."
    )


def _accounts_text(comparison: Comparison) -> str:
    parts = []
    if comparison.by_group:
        pairs = ", ".join(f"`{traced}` as `{ours}`" for traced, ours in comparison.by_group)
        parts.append(f"Traced accounts matched to the scenario's groups of one account: {pairs}.")
    if comparison.missing_in_scenario:
        parts.append(
            "The traces name accounts the scenario lacks, left out of the per-account "
            f"comparison: {', '.join(f'`{n}`' for n in comparison.missing_in_scenario)}."
        )
    if comparison.missing_in_traces:
        parts.append(
            "The scenario has accounts the traces never name (the simulation may still "
            f"send to them): {', '.join(f'`{n}`' for n in comparison.missing_in_traces)}."
        )
    return " ".join(parts) or "The traces and the scenario name the same accounts."


def build_document(comparison: Comparison, figures: list[FigureRef]) -> Document:
    scenario = comparison.scenario
    traces = ", ".join(f"`{t}`" for t in comparison.traces)
    about = (
        f"{count(comparison.replayed)} observed requests from {traces} "
        f"({comparison.source} spans) replayed at their observed times, sizes and "
        f"conversations through the simulated fleet of `{scenario.name}` "
        f"({seeds_text(comparison)}). Each observed percentile carries the interval that "
        f"holds its true value with {INTERVAL:.0%} confidence whatever the distribution "
        "(order statistics); a simulated one outside the tolerance but inside it is a "
        "distance more traffic may close. Requests the real router answered from its "
        "cache never reached a provider and are left out of both sides "
        f"({count(comparison.cached_left_out)}). "
        "Overall figures are over requests; an account's over the attempts sent to it."
    )
    sections = [
        Section("About", (about, _accounts_text(comparison))),
        Section("Verdict", tuple(verdict_lines(comparison))),
        Section("Overall", (Table(HEADERS, tuple(side_rows(comparison.overall, "requests"))),)),
    ]
    if comparison.accounts:
        blocks: list[Any] = []
        for side in comparison.accounts:
            blocks += [Heading(side.name), Table(HEADERS, tuple(side_rows(side, "attempts")))]
        sections.append(Section("Per account", tuple(blocks)))
    sections.append(Section("Figures", tuple(figures)))
    sections.append(
        Section(
            "The simulated run",
            ("The simulator's own report of the replayed traffic: `simulation/report.md`.",),
        )
    )
    return Document(
        title=f"Traces against {scenario.name} ({seeds_text(comparison)})",
        lead=lead(comparison),
        description="",
        sections=tuple(sections),
        footer=f"callboard compare; simulated in {comparison.wall_s:.2f} s of wall time.",
    )


@attrs.frozen
class CompareFiles:
    """Where each part of a comparison's report was written."""

    json: Path
    markdown: Path
    html: Path
    figures: tuple[Path, ...]
    simulation: Path


def write_comparison(comparison: Comparison, out: Path) -> CompareFiles:
    """compare.json, compare.md, compare.html and figures/ in ``out``; the simulated
    run's own report in ``out/simulation``."""
    out.mkdir(parents=True, exist_ok=True)
    body = json.dumps(round_floats(comparison_json(comparison)), indent=2, sort_keys=True)
    json_path = write_file(out / "compare.json", body + "\n")
    figures = compare_figures(comparison, out / "figures")
    document = build_document(comparison, figures)
    markdown = write_file(out / "compare.md", document_markdown(document))
    html = write_file(out / "compare.html", document_html(document))
    simulation = write_report(summarise(comparison.run), out / "simulation")
    return CompareFiles(
        json_path, markdown, html, tuple(f.path for f in figures), simulation.markdown
    )
