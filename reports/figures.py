"""PNG figures of a finished run, byte-stable for the same Results.

Each figure answers one question a reader of the report has (how slow, when, how
busy, which account, was anything quarantined, did the cache help) and draws only
what the data says: gaps stay gaps, a band is a measured min-max, never a guess.
Figures are built on ``matplotlib.figure.Figure`` rather than pyplot so no global
figure registry or interactive backend is involved, and saved without the
"Software" metadata so the same Results always give the same bytes.
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Callable
from pathlib import Path
from typing import overload

import matplotlib
import numpy as np
from matplotlib import style
from matplotlib.figure import Figure
from matplotlib.patches import Patch
from matplotlib.ticker import FuncFormatter, PercentFormatter

from actors.breaker import State
from reports.summary import plural, seconds
from sims import result_views
from sims.result_views import MIN_PER_WINDOW, Requests, Sampled, as_float
from sims.results import Results

DPI = 110
# One line per account up to this many; beyond it, one line (mean) and band (min-max)
# per profile family, or the figure becomes a hairball.
MAX_LINES = 12
# Breaker rows shown at most; the title says when some are left out.
MAX_BREAKER_ROWS = 40

BREAKER_COLOURS = {"closed": "#2e9d4a", "half_open": "#f0a30a", "open": "#d62728"}
BREAKER_LABELS = {"closed": "closed", "half_open": "half-open", "open": "open (quarantined)"}
COLOURS = {
    "all": "#1f77b4",
    "upstream": "#ff7f0e",
    "received": "#7f7f7f",
    "answered": "#2ca02c",
    "failed": "#d62728",
    "in_flight": "#1f77b4",
    "queued": "#9467bd",
    "in_use": "#17becf",
    "cache": "#8c564b",
}

# File stem -> what the figure shows, for captions in Markdown and HTML.
CAPTIONS = {
    "replicas": (
        "Replicas powered on (paid) and serving (past their cold start) as the autoscaler "
        "follows demand, with the requests in flight for scale."
    ),
    "latency_cdf": (
        "Share of answered requests (y) that took at most a given time (x, log scale), "
        "as the candidate saw it. Cache hits answer in ~0 s and sit at the left edge; "
        "the upstream curve leaves them out. Dots mark p50, p95 and p99."
    ),
    "latency_over_time": (
        "Latency percentiles of answered requests by the time they started (top), and the "
        "share of requests started in each window that failed (bottom). Windows with fewer "
        f"than {MIN_PER_WINDOW} answered requests are left blank."
    ),
    "traffic": (
        "Requests received, answered and failed per minute (top), and how many were in "
        "flight in the router, in provider slots, or queued at providers (bottom)."
    ),
    "providers": (
        "Share of each account's concurrency slots in use (top) and rate-limit "
        "rejections per minute: upstream 429s plus calls refused by the account's own "
        "limits (bottom)."
    ),
    "breakers": (
        "Circuit-breaker state of each account over time: green closed (taking traffic), "
        "red open (quarantined), amber half-open (a trial call decides)."
    ),
    "cache": (
        "Share of requests answered from the cache: per window of start time (bars) and "
        "cumulative since the start (line)."
    ),
}


@overload
def _minutes(seconds: np.ndarray) -> np.ndarray: ...
@overload
def _minutes(seconds: float) -> float: ...
def _minutes(seconds: np.ndarray | float) -> np.ndarray | float:
    return np.asarray(seconds) / 60.0 if isinstance(seconds, np.ndarray) else seconds / 60.0


def _empty(ax, message: str) -> None:
    """Say there is nothing to draw instead of drawing an empty frame."""
    ax.text(
        0.5,
        0.5,
        message,
        transform=ax.transAxes,
        ha="center",
        va="center",
        fontsize=11,
        color="#555555",
    )


def _legend_right(ax, **kwargs) -> None:
    """A legend beside the axes, where it can never hide a line."""
    ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), fontsize=8, frameon=False, **kwargs)


def _window_bars(ax, edges, values, has_data, colour, alpha: float, label: str) -> None:
    """One bar per window with data; a window in which no request started stays empty."""
    left = _minutes(edges[:-1])[has_data]
    width = _minutes(np.diff(edges))[has_data]
    ax.bar(
        left,
        values[has_data],
        width=width,
        align="edge",
        color=colour,
        alpha=alpha,
        label=label,
        linewidth=0,
    )


def _run_end(results: Results, requests: Requests, series: Sampled) -> float:
    ends = [as_float(results.summary.simulated_s)]
    if len(series.t):
        ends.append(float(series.t[-1]))
    if len(requests):
        ends.append(float(np.nanmax(requests.start)))
    finite = [e for e in ends if math.isfinite(e)]
    return max(finite) if finite and max(finite) > 0 else 1.0


# --- (a) latency CDF --------------------------------------------------------------


def _ecdf(ax, values: np.ndarray, colour: str, label: str) -> None:
    xs = np.sort(values)
    ys = np.arange(1, len(xs) + 1) / len(xs)
    ax.step(
        np.concatenate(([0.0], xs)),
        np.concatenate(([0.0], ys)),
        where="post",
        color=colour,
        label=label,
        linewidth=1.6,
    )


def latency_cdf(results: Results, requests: Requests, series: Sampled) -> Figure:
    fig = Figure(figsize=(10, 5), layout="constrained")
    ax = fig.subplots()
    latency = requests.latency
    answered = latency[requests.answered_facing & np.isfinite(latency)]
    upstream = latency[requests.upstream & np.isfinite(latency)]
    ax.set_title("How long candidates waited for answers (cumulative distribution)")
    ax.set_ylabel("share of answered requests")
    ax.yaxis.set_major_formatter(PercentFormatter(1.0))
    if len(answered) == 0:
        ax.set_xlabel("latency (s)")
        _empty(ax, "no answered requests")
        return fig
    positive = answered[answered > 0]
    # Log scale down to the decade of the fastest real answer, linear below it, so
    # cache hits answered in 0 s are drawn at 0 instead of being dropped or moved.
    linear_below = 10 ** math.floor(math.log10(positive.min())) if len(positive) else 1e-3
    zeros = int(np.count_nonzero(answered == 0))
    label = f"answered turns, incl. cache hits (n={len(answered):,})"
    if zeros:
        label += f"; {zeros:,} took 0 s"
    _ecdf(ax, answered, COLOURS["all"], label)
    if len(upstream):
        _ecdf(
            ax,
            upstream,
            COLOURS["upstream"],
            f"answered by a provider, not cached (n={len(upstream):,})",
        )
    ax.set_xscale("symlog", linthresh=linear_below, linscale=0.4)
    ax.xaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:g}"))
    # A little room left of 0 so the jump at 0 s (cache hits) is not hidden by the axis.
    ax.set_xlim(-linear_below * 0.2, max(float(answered.max()) * 1.3, linear_below * 10))
    ax.set_ylim(0, 1.02)
    ax.set_xlabel(f"latency seen by the candidate (s; log scale above {linear_below:g} s)")
    ax.grid(True, which="major", alpha=0.3)
    for q in (0.5, 0.95, 0.99):
        ax.axhline(q, color="#999999", linewidth=0.6, linestyle=":")
    lines = []
    s = results.summary
    for values, colour, title in (
        ([s.p50, s.p95, s.p99], COLOURS["all"], "all answered"),
        ([s.upstream_p50, s.upstream_p95, s.upstream_p99], COLOURS["upstream"], "upstream"),
    ):
        if not any(math.isfinite(v) for v in values):
            continue
        for value, q in zip(values, (0.5, 0.95, 0.99), strict=True):
            if math.isfinite(value):
                ax.plot([value], [q], "o", color=colour, markersize=5, zorder=5)
        lines.append(
            f"{title}: p50 {seconds(values[0])} · p95 {seconds(values[1])} · "
            f"p99 {seconds(values[2])}"
        )
    ax.legend(loc="upper left", fontsize=8.5, framealpha=0.9)
    ax.text(
        0.99,
        0.03,
        "\n".join(lines),
        transform=ax.transAxes,
        ha="right",
        va="bottom",
        fontsize=8.5,
        bbox={"facecolor": "white", "edgecolor": "#cccccc", "alpha": 0.9},
    )
    return fig


# --- (b) latency and failures over time ------------------------------------------


def latency_over_time(results: Results, requests: Requests, series: Sampled) -> Figure:
    fig = Figure(figsize=(10, 6.2), layout="constrained")
    top, bottom = fig.subplots(2, 1, sharex=True, height_ratios=(3, 2))
    end = _run_end(results, requests, series)
    width = result_views.window_width(end)
    edges = result_views.window_edges(end, width)
    mids = _minutes((edges[:-1] + edges[1:]) / 2)
    top.set_title(f"Latency and failures by request start time ({width:g} s windows)")
    top.set_ylabel("latency of answered requests (s)")
    bottom.set_ylabel("failed (% of requests started)")
    bottom.set_xlabel("request start, simulated time (min)")
    if len(requests) == 0:
        _empty(top, "no requests")
        return fig
    groups = result_views.binned(requests.start, edges)
    answered = np.where(requests.answered_facing, requests.latency, np.nan)
    upstream = np.where(requests.upstream, requests.latency, np.nan)
    all_p = result_views.windowed_percentiles(answered, groups, (50, 95))
    up_p = result_views.windowed_percentiles(upstream, groups, (50, 95))
    if np.isfinite(all_p).any():
        top.plot(
            mids, all_p[:, 1], "-o", color=COLOURS["all"], markersize=3, label="p95, all answered"
        )
        top.plot(
            mids,
            all_p[:, 0],
            "--o",
            color=COLOURS["all"],
            markersize=3,
            alpha=0.7,
            label="p50, all answered (cache hits count as 0 s)",
        )
        if np.isfinite(up_p).any():
            top.plot(
                mids,
                up_p[:, 1],
                "-s",
                color=COLOURS["upstream"],
                markersize=3,
                label="p95, upstream only",
            )
            top.plot(
                mids,
                up_p[:, 0],
                "--s",
                color=COLOURS["upstream"],
                markersize=3,
                alpha=0.7,
                label="p50, upstream only",
            )
        top.set_ylim(bottom=0)
        _legend_right(top)
    else:
        _empty(top, "no window had enough answered requests")
    top.grid(True, alpha=0.3)
    started = np.asarray([len(g) for g in groups], dtype=float)
    failed = np.asarray([np.count_nonzero(requests.failed[g]) for g in groups], dtype=float)
    with np.errstate(divide="ignore", invalid="ignore"):
        share = np.where(started > 0, failed / started * 100.0, np.nan)
    _window_bars(bottom, edges, share, started > 0, COLOURS["failed"], 0.6, "failed")
    total = int(failed.sum())
    bottom.set_ylim(0, max(5.0, float(np.nanmax(share)) * 1.1 if total else 5.0))
    bottom.text(
        0.99,
        0.92,
        f"{total:,} of {int(started.sum()):,} requests failed",
        bbox={"facecolor": "white", "edgecolor": "none", "alpha": 0.8},
        transform=bottom.transAxes,
        ha="right",
        va="top",
        fontsize=8.5,
    )
    bottom.grid(True, alpha=0.3)
    bottom.set_xlim(0, _minutes(edges[-1]))
    return fig


# --- (c) traffic ------------------------------------------------------------------


def traffic(results: Results, requests: Requests, series: Sampled) -> Figure:
    fig = Figure(figsize=(10, 6.2), layout="constrained")
    top, bottom = fig.subplots(2, 1, sharex=True)
    t = series.t
    end = _run_end(results, requests, series)
    width = result_views.window_width(end)
    top.set_title(f"Traffic: requests per minute ({width:g} s steps) and work in progress")
    top.set_ylabel("requests per minute")
    bottom.set_ylabel("requests (count)")
    bottom.set_xlabel("simulated time (min)")
    if len(t) < 2:
        _empty(top, "fewer than two samples")
        return fig
    for key in ("received", "answered", "failed"):
        edges, rates = result_views.rate_per_minute(t, getattr(series, key), width)
        # Received underneath and wider, so it shows where answered matches it exactly.
        wide = key == "received"
        top.stairs(
            rates,
            _minutes(edges),
            color=COLOURS[key],
            linewidth=3.0 if wide else 1.3,
            label=key,
            zorder=1 if wide else 2,
        )
    _legend_right(top)
    top.set_ylim(bottom=0)
    top.grid(True, alpha=0.3)
    minutes = _minutes(t)
    providers = series.providers.values()
    in_use = sum((p.in_use for p in providers), np.zeros(len(t)))
    queued = sum((p.queued for p in providers), np.zeros(len(t)))
    bottom.plot(
        minutes,
        series.in_flight,
        color=COLOURS["in_flight"],
        linewidth=3.0,
        label="in flight in the router",
        zorder=1,
    )
    bottom.plot(minutes, in_use, color=COLOURS["in_use"], label="in provider slots")
    bottom.plot(minutes, queued, color=COLOURS["queued"], label="queued at providers")
    bottom.set_ylim(bottom=0)
    _legend_right(bottom)
    bottom.grid(True, alpha=0.3)
    bottom.set_xlim(0, minutes[-1])
    return fig


# --- (d) providers ----------------------------------------------------------------


def _palette(count: int) -> list:
    cmap = matplotlib.colormaps["tab10" if count <= 10 else "tab20"]
    return [cmap(i % cmap.N) for i in range(count)]


def providers(results: Results, requests: Requests, series: Sampled) -> Figure:
    fig = Figure(figsize=(10, 6.2), layout="constrained")
    top, bottom = fig.subplots(2, 1, sharex=True)
    t = series.t
    names = [n for n in series.providers if n in result_views.max_concurrency_of(results)]
    end = _run_end(results, requests, series)
    width = result_views.window_width(end)
    top.set_ylabel("slots in use (% of max concurrency)")
    bottom.set_ylabel("rate-limit rejections per minute")
    bottom.set_xlabel("simulated time (min)")
    if len(t) < 2 or not names:
        top.set_title("Accounts: utilisation and rate limits")
        _empty(top, "no per-account samples")
        return fig
    capacity = result_views.max_concurrency_of(results)
    minutes = _minutes(t)
    utilisation = {
        n: series.providers[n].in_use / capacity[n] * 100.0 if capacity[n] > 0 else np.zeros(len(t))
        for n in names
    }
    limited = {}
    for n in names:
        edges, rates = result_views.rate_per_minute(t, series.providers[n].rate_limited, width)
        limited[n] = rates
    total_limited = sum(float(series.providers[n].rate_limited[-1]) for n in names)
    if len(names) <= MAX_LINES:
        top.set_title(f"Accounts: utilisation and rate limits ({plural(len(names), 'account')})")
        for colour, n in zip(_palette(len(names)), names, strict=True):
            top.plot(minutes, utilisation[n], color=colour, linewidth=1.2, label=n)
            bottom.stairs(limited[n], _minutes(edges), color=colour, linewidth=1.2, label=n)
    else:
        family = result_views.family_of(results)
        families: dict[str, list[str]] = defaultdict(list)
        for n in names:
            families[family.get(n, n)].append(n)
        top.set_title(
            f"Accounts: utilisation and rate limits ({plural(len(names), 'account')} in "
            f"{plural(len(families), 'family', 'families')}: mean line, min-max band)"
        )
        for colour, (fam, members) in zip(
            _palette(len(families)), sorted(families.items()), strict=True
        ):
            stack = np.vstack([utilisation[n] for n in members])
            label = f"{fam} ({plural(len(members), 'account')})"
            top.fill_between(
                minutes, stack.min(axis=0), stack.max(axis=0), color=colour, alpha=0.2, linewidth=0
            )
            top.plot(minutes, stack.mean(axis=0), color=colour, linewidth=1.4, label=label)
            summed = np.sum([limited[n] for n in members], axis=0)
            bottom.stairs(
                summed, _minutes(edges), color=colour, linewidth=1.4, label=f"{fam}, all accounts"
            )
    top.set_ylim(0, 105)
    _legend_right(top)
    top.grid(True, alpha=0.3)
    if total_limited == 0:
        held = sum(results.summary.held_back_by_limits.values())
        message = "no 429s and no calls refused by account limits"
        if held > 0:
            message += f"\n(the router's own limit checks found accounts full {held:,.0f} times)"
        _empty(bottom, message)
        bottom.set_ylim(0, 1)
    else:
        bottom.set_ylim(bottom=0)
        bottom.text(
            0.01, 0.95, "colours as above", transform=bottom.transAxes, va="top", fontsize=8
        )
    bottom.grid(True, alpha=0.3)
    bottom.set_xlim(0, minutes[-1])
    return fig


# --- (e) breakers -----------------------------------------------------------------


def breakers(results: Results, requests: Requests, series: Sampled) -> Figure:
    spans = result_views.breaker_spans(results)
    names = list(result_views.max_concurrency_of(results)) or list(series.providers)
    end = _run_end(results, requests, series)
    moved = [n for n in names if n in spans] + sorted(set(spans) - set(names))
    quiet = [n for n in names if n not in spans]
    if len(names) <= MAX_LINES:
        shown = names + [n for n in moved if n not in names]
        note = ""
    else:
        shown = moved
        note = f"; {len(quiet)} of {len(names)} accounts never left closed, not shown"
    if len(shown) > MAX_BREAKER_ROWS:
        busiest = sorted(shown, key=lambda n: -len(spans.get(n, [])))[:MAX_BREAKER_ROWS]
        note += f"; {len(shown) - MAX_BREAKER_ROWS} more accounts with transitions not shown"
        shown = [n for n in shown if n in busiest]
    rows = max(1, len(shown))
    fig = Figure(figsize=(10, 1.9 + 0.32 * rows), layout="constrained")
    ax = fig.subplots()
    openings = sum(1 for m in results.transitions if m.target is State.OPEN)
    ax.set_title(f"Circuit breakers: {plural(openings, 'opening')}{note}", fontsize=10.5)
    ax.set_xlabel("simulated time (min)")
    ax.set_xlim(0, _minutes(end))
    if not shown:
        ax.set_yticks([])
        _empty(ax, "no breaker left the closed state")
        return fig
    for row, name in enumerate(shown):
        own = spans.get(name) or [(0.0, end, "closed")]
        for state in result_views.BREAKER_STATES:
            bars = [(_minutes(a), _minutes(b - a)) for a, b, s in own if s == state]
            if bars:
                ax.broken_barh(
                    bars, (row - 0.38, 0.76), facecolors=BREAKER_COLOURS[state], edgecolor="none"
                )
    ax.set_yticks(range(len(shown)))
    ax.set_yticklabels(shown, fontsize=8 if len(shown) > 15 else 9)
    ax.set_ylim(len(shown) - 0.5, -0.5)
    ax.set_ylabel("account")
    ax.grid(True, axis="x", alpha=0.3)
    handles = [Patch(color=BREAKER_COLOURS[s], label=BREAKER_LABELS[s]) for s in BREAKER_COLOURS]
    _legend_right(ax, handles=handles)
    return fig


# --- (f) cache --------------------------------------------------------------------


def cache(results: Results, requests: Requests, series: Sampled) -> Figure:
    fig = Figure(figsize=(10, 4.2), layout="constrained")
    ax = fig.subplots()
    end = _run_end(results, requests, series)
    width = result_views.window_width(end)
    enabled = results.cache.enabled
    title = f"Cache hit rate ({width:g} s windows of request start time)"
    ax.set_title(title if enabled else title + ": cache disabled in this scenario")
    ax.set_xlabel("request start, simulated time (min)")
    ax.set_ylabel("answered from cache (% of requests)")
    ax.yaxis.set_major_formatter(PercentFormatter(1.0))
    if len(requests) == 0:
        _empty(ax, "no requests")
        return fig
    edges = result_views.window_edges(end, width)
    groups = result_views.binned(requests.start, edges)
    started = np.asarray([len(g) for g in groups], dtype=float)
    hits = np.asarray([np.count_nonzero(requests.cached[g]) for g in groups], dtype=float)
    with np.errstate(divide="ignore", invalid="ignore"):
        share = np.where(started > 0, hits / started, 0.0)
    _window_bars(ax, edges, share, started > 0, COLOURS["cache"], 0.35, "per window")
    order = np.argsort(requests.start, kind="stable")
    cumulative = np.cumsum(requests.cached[order]) / np.arange(1, len(order) + 1)
    ax.plot(
        _minutes(requests.start[order]),
        cumulative,
        color=COLOURS["cache"],
        linewidth=1.6,
        label=f"cumulative (ends at {cumulative[-1]:.1%})",
    )
    ax.set_ylim(0, 1.02)
    ax.set_xlim(0, _minutes(edges[-1]))
    ax.grid(True, alpha=0.3)
    if not requests.cached.any():
        _empty(ax, "no request was answered from the cache" + ("" if enabled else " (disabled)"))
    _legend_right(ax)
    return fig


def replicas(results: Results, requests: Requests, series: Sampled) -> Figure:
    """Powered and serving replicas over time, beside the load they carry."""
    fig = Figure(figsize=(10, 4.8), layout="constrained")
    ax = fig.subplots()
    t = series.t / 60.0
    power = [p.power for p in series.providers.values() if len(p.power)]
    ax.set_title("Self-hosted replicas: powered on, and serving (after their cold start)")
    ax.set_xlabel("simulated time (min)")
    ax.set_ylabel("replicas")
    if not power or len(t) == 0:
        _empty(ax, "no replica changed power state")
        return fig
    stacked = np.vstack(power)
    ax.step(t, (stacked >= 1).sum(axis=0), where="post", label="powered on", color="#ff7f0e")
    ax.step(t, (stacked == 2).sum(axis=0), where="post", label="serving", color="#2ca02c")
    twin = ax.twinx()
    twin.plot(t, series.in_flight, color="#1f77b4", alpha=0.5, label="requests in flight")
    twin.set_ylabel("requests in flight in the router")
    lines = ax.get_legend_handles_labels()
    more = twin.get_legend_handles_labels()
    ax.legend(lines[0] + more[0], lines[1] + more[1], loc="upper left", fontsize=8)
    ax.grid(True, alpha=0.3)
    return fig


FIGURES: dict[str, Callable[[Results, Requests, Sampled], Figure]] = {
    "latency_cdf": latency_cdf,
    "latency_over_time": latency_over_time,
    "traffic": traffic,
    "providers": providers,
    "breakers": breakers,
    "cache": cache,
    "replicas": replicas,
}


def draw(name: str, results: Results, requests: Requests, series: Sampled) -> Figure:
    """Figure ``name`` of FIGURES, headed with the run's scenario and seed: a figure
    is often seen alone (pasted in a chat, a slide), away from the report that names them."""
    fig = FIGURES[name](results, requests, series)
    meta = results.meta
    fig.suptitle(f"{meta.scenario or 'unnamed'} (seed {meta.seed})", fontsize=11.5)
    return fig


def render_figures(results: Results, out_dir: Path) -> list[Path]:
    """Write every figure as ``out_dir/<name>.png``; returns the paths in report order."""
    out_dir.mkdir(parents=True, exist_ok=True)
    requests = result_views.requests(results)
    series = result_views.sampled(results)
    paths = []
    # The default style, whatever the user's matplotlibrc says: same Results, same bytes.
    with style.context("default"):
        for name in FIGURES:
            if name == "replicas" and not results.scaling:
                continue  # only runs with an autoscaler have replicas to show
            fig = draw(name, results, requests, series)
            path = out_dir / f"{name}.png"
            fig.savefig(path, dpi=DPI, format="png", metadata={"Software": None})
            fig.clear()  # not registered with pyplot, so nothing else holds it
            paths.append(path)
    return paths
