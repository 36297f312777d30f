"""The experiment report's figures, drawn from experiment.json's data alone.

Over-time figures have one line per variant and the fault windows shaded (a
flapping fault's down phases darker), so a reader sees what each policy did while
the fault lasted; the last figure shows each paired difference with its interval.
Built on ``matplotlib.figure.Figure`` and saved without metadata, like the other
reports, so the same data give the same bytes.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import matplotlib
import numpy as np
from matplotlib import style
from matplotlib.figure import Figure
from matplotlib.patches import Patch
from matplotlib.ticker import PercentFormatter

from reports.document import FigureRef
from reports.experiment_text import signed
from sims.experiment import METRICS
from sims.experiment_data import as_number

matplotlib.use("Agg")

DPI = 110
FAULT_COLOURS = {
    "outage": "#d62728",
    "flapping": "#d62728",
    "errors": "#ff7f0e",
    "slow_recovery": "#ff7f0e",
    "latency": "#9467bd",
    "rate_limit": "#8c564b",
    "hang": "#7f7f7f",
    "revoked": "#17becf",
}

CAPTIONS = {
    "latency": (
        "p95 latency of the answered candidate-facing turns, by request start time "
        "(the median over seeds of each window's p95). Shaded: when the faults act."
    ),
    "errors": (
        "Share of the requests started in each window that failed, over all seeds. "
        "Shaded: when the faults act."
    ),
    "breakers": (
        "Accounts whose circuit breaker was open (quarantined), mean over seeds, sampled "
        "over simulated time. Shaded: when the faults act."
    ),
    "routing": (
        "Where answered requests went: each account's share of the requests answered by a "
        "provider (not the cache) per window, over all seeds; one panel per variant."
    ),
    "differences": (
        "Each variant minus the control, paired by seed: the mean (dot) and its 95% "
        "interval (bar). Left of the dashed zero line is a decrease."
    ),
}
TITLES = {
    "latency": "Latency over time",
    "errors": "Failures over time",
    "breakers": "Circuit breakers over time",
    "routing": "Routing shares",
    "differences": "Paired differences",
}


def _palette(count: int) -> list:
    cmap = matplotlib.colormaps["tab10" if count <= 10 else "tab20"]
    return [cmap(i % cmap.N) for i in range(count)]


def _shade(ax, faults: list[dict[str, Any]], legend: bool = True) -> list[Patch]:
    handles = []
    for fault in faults:
        colour = FAULT_COLOURS.get(fault["kind"], "#999999")
        start, end = as_number(fault["start"]), as_number(fault["end"])
        spans = [(as_number(a), as_number(b)) for a, b in fault["spans"]]
        if fault["kind"] == "flapping" and math.isfinite(end):
            ax.axvspan(start / 60, end / 60, color=colour, alpha=0.06, linewidth=0)
        for a, b in spans:
            if math.isfinite(a) and math.isfinite(b):
                ax.axvspan(a / 60, b / 60, color=colour, alpha=0.16, linewidth=0)
        if legend:
            handles.append(
                Patch(color=colour, alpha=0.3, label=f"{fault['kind']} on {fault['target']}")
            )
    return handles


def _over_time(
    data: dict[str, Any], key: str, ylabel: str, title: str, share: bool = False
) -> Figure:
    fig = Figure(figsize=(10, 4.6), layout="constrained")
    ax = fig.subplots()
    variants = [v["name"] for v in data["variants"]]
    for colour, name in zip(_palette(len(variants)), variants, strict=True):
        line = data["timelines"][name]
        x = np.asarray(line["sample_t" if key == "open" else "t"], dtype=float) / 60
        y = np.asarray([as_number(v) for v in line[key]], dtype=float)
        label = name + (" (control)" if name == variants[0] else "")
        ax.plot(x[: len(y)], y[: len(x)], "-", color=colour, linewidth=1.6, label=label)
    handles, labels = ax.get_legend_handles_labels()
    faults = _shade(ax, data["faults"])
    ax.legend(
        [*handles, *faults],
        labels + [str(h.get_label()) for h in faults],
        loc="upper left",
        bbox_to_anchor=(1.01, 1.0),
        fontsize=8,
        frameon=False,
    )
    ax.set_xlabel("simulated time (min)")
    ax.set_ylabel(ylabel)
    ax.set_title(title)
    ax.set_ylim(bottom=0)
    if share:
        ax.yaxis.set_major_formatter(PercentFormatter(1.0))
    ax.grid(True, alpha=0.3)
    return fig


def _routing(data: dict[str, Any]) -> Figure:
    variants = [v["name"] for v in data["variants"]]
    fig = Figure(figsize=(10, 2.2 + 2.0 * len(variants)), layout="constrained")
    axes = fig.subplots(len(variants), 1, sharex=True, squeeze=False)[:, 0]
    first = data["timelines"][variants[0]]
    names = list(first["served"])
    colours = _palette(len(names))
    for ax, variant in zip(axes, variants, strict=True):
        line = data["timelines"][variant]
        x = np.asarray(line["t"], dtype=float) / 60
        counts = np.vstack([np.asarray(line["served"][n], dtype=float) for n in names])
        totals = counts.sum(axis=0)
        with np.errstate(divide="ignore", invalid="ignore"):
            shares = np.where(totals > 0, counts / totals, 0.0)
        ax.stackplot(x, shares, colors=colours, labels=names, alpha=0.85, step="mid")
        _shade(ax, data["faults"], legend=False)
        ax.set_ylim(0, 1)
        ax.yaxis.set_major_formatter(PercentFormatter(1.0))
        suffix = " (control)" if variant == variants[0] else ""
        ax.set_title(f"{variant}{suffix}", fontsize=10, loc="left")
        ax.set_ylabel("share answered")
    axes[0].legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), fontsize=8, frameon=False)
    axes[-1].set_xlabel("request start, simulated time (min)")
    return fig


def _differences(data: dict[str, Any]) -> Figure:
    keys = list(METRICS)
    fig = Figure(figsize=(10, 1.2 + 1.1 * len(keys)), layout="constrained")
    axes = fig.subplots(len(keys), 1, squeeze=False)[:, 0]
    diffs = data["differences"]
    colours = _palette(len(data["variants"]))[1:]
    for ax, key in zip(axes, keys, strict=True):
        metric = METRICS[key]
        scale = 100.0 if metric.unit == "share" else 1.0
        for row, (d, colour) in enumerate(zip(diffs, colours, strict=True)):
            entry = d["metrics"][key]
            mean, low, high = (as_number(entry[k]) * scale for k in ("mean", "low", "high"))
            if math.isfinite(low) and math.isfinite(high):
                ax.plot([low, high], [row, row], "-", color=colour, linewidth=2.4)
            ax.plot([mean], [row], "o", color=colour, markersize=6)
            ax.annotate(
                signed(metric, as_number(entry["mean"])),
                (mean, row),
                textcoords="offset points",
                xytext=(0, 7),
                ha="center",
                fontsize=8,
            )
        ax.axvline(0, color="#555555", linestyle="--", linewidth=1)
        ax.set_yticks(range(len(diffs)))
        ax.set_yticklabels([d["variant"] for d in diffs], fontsize=9)
        ax.set_ylim(len(diffs) - 0.4, -0.6)
        unit = {"share": "percentage points", "seconds": "s", "money": "$", "count": ""}
        label = f"{metric.label} ({unit[metric.unit]})" if unit[metric.unit] else metric.label
        ax.set_title(f"{label}: variant minus {data['variants'][0]['name']}", fontsize=9.5)
        ax.grid(True, axis="x", alpha=0.3)
    return fig


def experiment_figures(data: dict[str, Any], out_dir: Path) -> list[FigureRef]:
    out_dir.mkdir(parents=True, exist_ok=True)
    makers = {
        "latency": lambda: _over_time(
            data, "p95", "p95 latency (s)", "p95 latency of answered turns over time"
        ),
        "errors": lambda: _over_time(
            data, "failed_share", "failed (% of requests)", "Failed requests over time", True
        ),
        "breakers": lambda: _over_time(
            data, "open", "accounts quarantined", "Circuit breakers open over time"
        ),
        "routing": lambda: _routing(data),
        "differences": lambda: _differences(data),
    }
    made = []
    with style.context("default"):
        for name, make in makers.items():
            fig = make()
            path = out_dir / f"{name}.png"
            fig.savefig(path, dpi=DPI, format="png", metadata={"Software": None})
            fig.clear()
            made.append(FigureRef(f"figures/{path.name}", path, TITLES[name], CAPTIONS[name]))
    return made
