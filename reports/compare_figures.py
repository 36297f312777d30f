"""PNG figures of a comparison: observed and simulated distributions, one over the other.

The question each answers: does the simulated fleet's latency (and time to first token)
have the observed one's shape, not only its percentiles? CDFs overlaid show where the
two part; the Q-Q plot puts every percentile of one against the other's, the diagonal
being agreement and the band the 5% the verdict allows. Built like reports.figures (no
pyplot, the default style, no "Software" metadata), so the same comparison gives the
same bytes.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from matplotlib import style
from matplotlib.axes import Axes
from matplotlib.figure import Figure
from matplotlib.ticker import FuncFormatter, PercentFormatter

from reports.document import FigureRef
from reports.figures import DPI
from sims.compare import TOLERANCE, Comparison, Side

OBSERVED, SIMULATED = "#1f77b4", "#ff7f0e"
#: At most this many accounts get a line of their own in the Q-Q plot.
MAX_ACCOUNTS = 8

TITLES = {
    "compare_latency_cdf": "Latency, observed and simulated",
    "compare_ttft_cdf": "Time to first token, observed and simulated",
    "compare_qq": "Simulated against observed latency, percentile by percentile",
}
CAPTIONS = {
    "compare_latency_cdf": (
        "Share of answered requests (y) that took at most a given time (x): the traces' "
        "(observed) and the same arrivals through the simulated fleet; dotted lines at the "
        "50th, 95th and 99th percentiles."
    ),
    "compare_ttft_cdf": (
        "The same for the time to the first token of the answered requests that had one."
    ),
    "compare_qq": (
        "Each point is one percentile (1st to 99th) of latency: observed on x, simulated on "
        f"y. On the diagonal the two agree; the band is ±{TOLERANCE:.0%} of the observed. "
        "Overall over requests, per account over the attempts sent to it."
    ),
}


def _ecdf(ax: Axes, values: np.ndarray, colour: str, label: str) -> None:
    ys = np.arange(1, len(values) + 1) / len(values)
    ax.step(values, ys, where="post", color=colour, label=label, linewidth=1.6)


def _cdf(side: Side, figure: str, what: str) -> Figure:
    fig = Figure(figsize=(10, 5), layout="constrained")
    ax = fig.subplots()
    ax.set_title(f"{what} (cumulative distribution, all requests)")
    ax.set_ylabel("share of answered requests")
    ax.set_xlabel(f"{what.lower()} (s, log scale)")
    ax.yaxis.set_major_formatter(PercentFormatter(1.0))
    drawn = False
    for figures, colour, label in (
        (side.observed, OBSERVED, "observed"),
        (side.simulated, SIMULATED, "simulated"),
    ):
        values = figures.latency if figure == "latency" else figures.ttft
        if len(values):
            _ecdf(ax, values, colour, f"{label} (n={len(values):,})")
            drawn = True
    for q in (0.5, 0.95, 0.99):
        ax.axhline(q, color="#999999", linewidth=0.6, linestyle=":")
    ax.set_ylim(0, 1.02)
    ax.grid(True, which="major", alpha=0.3)
    if drawn:
        # Log scale: the body and the tail both readable (answers take > 0 s).
        ax.set_xscale("log")
        ax.xaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:g}"))
        ax.legend(loc="lower right")
    else:
        ax.text(0.5, 0.5, "no answered requests", ha="center", transform=ax.transAxes)
    return fig


def _qq(comparison: Comparison) -> Figure:
    fig = Figure(figsize=(7.5, 7), layout="constrained")
    ax = fig.subplots()
    ax.set_title("Latency percentiles, 1st to 99th")
    ax.set_xlabel("observed (s)")
    ax.set_ylabel("simulated (s)")
    points = np.arange(1, 100)
    top = 0.0
    shown = [comparison.overall, *comparison.accounts[:MAX_ACCOUNTS]]
    for index, side in enumerate(shown):
        observed, simulated = side.observed.latency, side.simulated.latency
        if not (len(observed) and len(simulated)):
            continue
        xs, ys = np.percentile(observed, points), np.percentile(simulated, points)
        top = max(top, float(xs.max()), float(ys.max()))
        overall = index == 0
        ax.plot(xs, ys, marker="o" if overall else ".", markersize=3.5 if overall else 2.5,
                linewidth=1.4 if overall else 0.8, color="#222222" if overall else None,
                label=side.name if overall else f"account {side.name}")  # fmt: skip
    if top:
        line = np.array([0.0, top * 1.05])
        ax.plot(line, line, color="#999999", linewidth=0.8, linestyle="--", label="agreement")
        ax.fill_between(line, line * (1 - TOLERANCE), line * (1 + TOLERANCE), color="#2ca02c",
                        alpha=0.12, label=f"±{TOLERANCE:.0%}")  # fmt: skip
        ax.set_xlim(0, top * 1.05)
        ax.set_ylim(0, top * 1.05)
        ax.legend(loc="upper left", fontsize=8.5)
    ax.grid(True, alpha=0.3)
    if len(comparison.accounts) > MAX_ACCOUNTS:
        ax.set_title(
            f"Latency percentiles, 1st to 99th ({MAX_ACCOUNTS} of "
            f"{len(comparison.accounts)} accounts)"
        )
    return fig


def compare_figures(comparison: Comparison, out_dir: Path) -> list[FigureRef]:
    """Write the comparison's figures as ``out_dir/<name>.png``, each headed with the
    scenario and seed (a figure is often seen alone); returns them in report order."""
    out_dir.mkdir(parents=True, exist_ok=True)
    scenario = comparison.scenario
    drawers = {
        "compare_latency_cdf": lambda: _cdf(comparison.overall, "latency", "Latency"),
        "compare_ttft_cdf": lambda: _cdf(comparison.overall, "ttft", "Time to first token"),
        "compare_qq": lambda: _qq(comparison),
    }
    refs = []
    with style.context("default"):
        for name, draw in drawers.items():
            fig = draw()
            fig.suptitle(f"Traces against {scenario.name} (seed {scenario.seed})", fontsize=11.5)
            path = out_dir / f"{name}.png"
            fig.savefig(path, dpi=DPI, format="png", metadata={"Software": None})
            fig.clear()
            refs.append(FigureRef(f"{out_dir.name}/{name}.png", path, TITLES[name], CAPTIONS[name]))
    return refs
