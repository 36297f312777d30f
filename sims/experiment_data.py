"""An experiment's numbers: each variant's means and spread, the paired differences,
the winner, the fault windows and the over-time figures, as plain JSON-able data.

The reports (:mod:`reports.experiment`) put this data into words and figures; nothing
here depends on wall time or paths, so the same experiment and seeds give the same bytes.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np

from sims.experiment import EXTRA, METRICS, Experiment, Metric, variant_hashes
from sims.results import callboard_version, round_floats
from sims.scenario import scenario_hash
from sims.stats import Paired

ALL_METRICS: dict[str, Metric] = {**METRICS, **EXTRA}


def _mean(values: list[float]) -> float:
    finite = [v for v in values if math.isfinite(v)]
    return math.fsum(finite) / len(finite) if finite else math.nan


def _sd(values: list[float]) -> float:
    finite = [v for v in values if math.isfinite(v)]
    if len(finite) < 2:
        return math.nan
    mean = math.fsum(finite) / len(finite)
    return math.sqrt(math.fsum((v - mean) ** 2 for v in finite) / (len(finite) - 1))


def _paired(d: Paired) -> dict[str, Any]:
    return {
        "mean": d.mean,
        "low": d.low,
        "high": d.high,
        "n": d.n,
        "relative": d.relative,
        "significant": d.significant,
    }


def as_number(value: Any) -> float:
    try:
        return float(value)
    except (TypeError, ValueError):
        return math.nan


# --- timelines ---------------------------------------------------------------------


def _pad(rows: list[tuple], fill: float) -> np.ndarray:
    width = max((len(r) for r in rows), default=0)
    out = np.full((len(rows), width), fill, dtype=float)
    for i, row in enumerate(rows):
        out[i, : len(row)] = row
    return out


def _nanmedian(matrix: np.ndarray) -> list[float]:
    out = []
    for column in matrix.T:
        finite = column[np.isfinite(column)]
        out.append(float(np.median(finite)) if len(finite) else math.nan)
    return out


def _timeline(runs: tuple) -> dict[str, Any]:
    """One variant's over-time figures, over all its seeds."""
    lines = [run.timeline for run in runs]
    width = lines[0].width
    started = _pad([t.started for t in lines], 0.0).sum(axis=0)
    failed = _pad([t.failed for t in lines], 0.0).sum(axis=0)
    with np.errstate(divide="ignore", invalid="ignore"):
        failed_share = np.where(started > 0, failed / started, math.nan)
    served = {
        name: _pad([t.served[name] for t in lines], 0.0).sum(axis=0).tolist()
        for name in lines[0].served
    }
    longest = max(lines, key=lambda t: len(t.sample_t))
    opened = _pad([t.open for t in lines], math.nan)
    return {
        "width": width,
        "t": [(i + 0.5) * width for i in range(len(started))],
        "p95": _nanmedian(_pad([t.p95 for t in lines], math.nan)),
        "failed_share": failed_share.tolist(),
        "started": started.tolist(),
        "served": served,
        "sample_t": list(longest.sample_t),
        "open": [
            float(np.mean(c[np.isfinite(c)])) if np.isfinite(c).any() else math.nan
            for c in opened.T
        ],
        "end": max(t.end for t in lines),
    }


def _faults(experiment: Experiment) -> list[dict[str, Any]]:
    scenario = experiment.prepared.control
    end = max(run.timeline.end for runs in experiment.runs for run in runs)
    out = []
    for spec in scenario.faults:
        fault = spec.fault()
        out.append(
            {
                "kind": fault.kind,
                "target": spec.target,
                "start": fault.start,
                "end": fault.end,
                "share": fault.share,
                "multiplier": fault.multiplier,
                "period": fault.period,
                "spans": [list(span) for span in fault.down_phases(end)],
            }
        )
    return out


# --- the data ----------------------------------------------------------------------


def verdict(data: dict[str, Any]) -> dict[str, Any]:
    """Which variant won on the judge metric, and by a difference outside noise or not.

    The variant with the best mean wins only when its paired difference from the
    control is significant; the control wins only when it beats the best alternative
    significantly. ``tradeoffs`` names the other metrics that changed significantly.
    """
    judge = data["meta"]["judge"]
    metric = METRICS[judge]
    variants = data["variants"]
    control = variants[0]["name"]
    sign = 1.0 if metric.higher_is_better else -1.0
    means = [as_number(v["means"][judge]) for v in variants]
    order = sorted(
        range(len(variants)),
        key=lambda i: (-(sign * means[i]) if math.isfinite(means[i]) else math.inf, i),
    )
    best = order[0]
    # The control is compared with its closest rival; any other best with the control.
    compared = order[1] if best == 0 else best
    differences = data["differences"][compared - 1]["metrics"]
    significant = bool(differences[judge]["significant"])
    best_name = variants[best]["name"]
    tradeoffs = (
        []
        if best == 0
        else [key for key in ALL_METRICS if key != judge and differences[key]["significant"]]
    )
    return {
        "winner": best_name if significant else None,
        "best_on_average": best_name,
        "judge": judge,
        "significant": significant,
        "difference": differences[judge],
        "against": variants[order[1]]["name"] if best == 0 else control,
        "tradeoffs": tradeoffs,
    }


def experiment_data(experiment: Experiment) -> dict[str, Any]:
    prepared = experiment.prepared
    spec = prepared.spec
    hashes = variant_hashes(prepared)
    variants = []
    for index, variant in enumerate(spec.variants):
        values = {key: experiment.values(index, m.key) for key, m in ALL_METRICS.items()}
        variants.append(
            {
                "name": variant.name,
                "description": variant.description,
                "set": list(variant.set),
                "scenario_hash": hashes[index],
                "means": {key: _mean(v) for key, v in values.items()},
                "sd": {key: _sd(v) for key, v in values.items()},
                "values": values,
                "failures": _merge(
                    run.summary.get("failures", {}) for run in experiment.runs[index]
                ),
            }
        )
    differences = [
        {
            "variant": variant.name,
            "against": spec.variants[0].name,
            "metrics": {
                key: _paired(experiment.difference(index, m.key)) for key, m in ALL_METRICS.items()
            },
        }
        for index, variant in enumerate(spec.variants)
        if index > 0
    ]
    control = prepared.control
    data = round_floats(
        {
            "meta": {
                "experiment": spec.name,
                "description": " ".join(spec.description.split()),
                "source": prepared.source if Path(prepared.source).suffix else spec.name,
                "scenario": prepared.scenario_label,
                "scenario_name": control.name,
                "scenario_description": " ".join(control.description.split()),
                "scenario_hash": scenario_hash(control),
                "callboard_version": callboard_version(),
                "seeds": list(prepared.seeds),
                "judge": spec.judge,
                "common_overrides": list(spec.set),
                "window_s": spec.window,
            },
            "variants": variants,
            "differences": differences,
            "faults": _faults(experiment),
            "timelines": {
                variant.name: _timeline(experiment.runs[index])
                for index, variant in enumerate(spec.variants)
            },
        }
    )
    data["verdict"] = round_floats(verdict(data))
    return data


def _merge(counts: Any) -> dict[str, int]:
    total: dict[str, int] = {}
    for count in counts:
        for key, value in (count or {}).items():
            total[key] = total.get(key, 0) + int(value)
    return dict(sorted(total.items()))


def json_line(data: dict[str, Any], report: Path) -> dict[str, Any]:
    """The ``--json`` summary: each variant's headline figures and the paired differences."""
    return {
        "experiment": data["meta"]["experiment"],
        "seeds": len(data["meta"]["seeds"]),
        "judge": data["meta"]["judge"],
        "winner": data["verdict"]["winner"],
        "verdict": data["verdict"]["sentence"],
        "variants": {
            v["name"]: {key: v["means"][key] for key in METRICS} for v in data["variants"]
        },
        "differences": {
            d["variant"]: {
                key: {k: d["metrics"][key][k] for k in ("mean", "low", "high", "significant")}
                for key in METRICS
            }
            for d in data["differences"]
        },
        "scenario_hash": data["meta"]["scenario_hash"],
        "callboard_version": data["meta"]["callboard_version"],
        "report": str(report),
    }
