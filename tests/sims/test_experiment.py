"""Experiments: variants on common seeds, paired statistics, reproducible reports, clear errors."""

from __future__ import annotations

import json
import math

import pytest

from actors.runtime.errors import InvalidSetting
from engine.cli.main import main
from reports.experiment import experiment_report_data
from sims.experiment import (
    ExperimentError,
    builtin_experiments,
    load_experiment,
    run_experiment,
)
from sims.scenario import ScenarioError
from sims.stats import paired, t975

SCENARIO = """
name = "tiny-outage"
seed = 3
duration = 1200

[workload]
interviews = 12
arrival = "uniform"
window = 60
turns = 4
think_time = 5

[[accounts]]
profile = "openai-paid"
count = 2
errors = { upstream_error = 0.05 }

[breaker]
failure_threshold = 1000

[[faults]]
target = "openai-paid-1"
kind = "flapping"
start = 10
end = 70
period = 10
"""

EXPERIMENT = """
name = "tiny"
description = "Retry budget on or off against a flapping account."
scenario = "tiny.toml"
seeds = 3
judge = "retries"
window = 20

[[variants]]
name = "off"

[[variants]]
name = "same"
description = "identical to the control: every difference must be exactly 0"
set = ["retry.max_attempts=4"]

[[variants]]
name = "budget"
set = ["retry.budget.enabled=true", "retry.budget.min_per_second=0", "retry.budget.ratio=0.05"]
"""


@pytest.fixture
def tiny(tmp_path):
    (tmp_path / "tiny.toml").write_text(SCENARIO)
    path = tmp_path / "tiny-experiment.toml"
    path.write_text(EXPERIMENT)
    return str(path)


def test_t_quantiles_and_paired_intervals():
    assert t975(1) == pytest.approx(12.7062, abs=1e-4)
    assert t975(30) == pytest.approx(2.0423, abs=1e-4)
    assert t975(40) == pytest.approx(2.0211, abs=1e-4)
    assert t975(120) == pytest.approx(1.9799, abs=1e-4)
    d = paired([1.0, 2.0, 3.0, 4.0], [0.0, 0.0, 0.0, 0.0])
    half = 3.182446305284263 * math.sqrt((1.5**2 + 0.5**2 + 0.5**2 + 1.5**2) / 3 / 4)
    assert (d.mean, d.n) == (2.5, 4)
    assert d.low == pytest.approx(2.5 - half) and d.high == pytest.approx(2.5 + half)
    assert d.significant and math.isnan(d.relative)  # no relative change from 0
    # Pairing removes what both share: a constant gap is known exactly.
    d = paired([10.0, 20.0, 31.0], [9.0, 19.0, 30.0])
    assert (d.mean, d.low, d.high) == (1.0, 1.0, 1.0) and d.significant
    # Seeds without a value on either side are left out; one pair has no interval.
    d = paired([1.0, math.nan], [0.5, 2.0])
    assert d.n == 1 and d.mean == 0.5 and math.isnan(d.low) and not d.significant
    d = paired([1.0, 2.0, 0.0], [1.0, 1.0, 1.0])
    assert d.low < 0 < d.high and not d.significant


@pytest.mark.slow
def test_same_seeds_same_numbers_and_paired_differences(tiny):
    first = run_experiment(tiny, workers=2)
    again = run_experiment(tiny, workers=1)
    data = experiment_report_data(first)
    assert json.dumps(data, sort_keys=True) == json.dumps(
        experiment_report_data(again), sort_keys=True
    )
    assert data["meta"]["seeds"] == [3, 4, 5]
    # Common random numbers: a variant identical to the control sees the same provider
    # behaviour on every seed, so every paired difference is exactly zero.
    same = data["differences"][0]
    assert same["variant"] == "same"
    for entry in same["metrics"].values():
        assert entry["mean"] == 0 and not entry["significant"]
    # The budget sends fewer retries than the control, seed by seed.
    budget = data["differences"][1]["metrics"]["retries"]
    off = first.values(0, "retries")
    on = first.values(2, "retries")
    assert all(b < o for b, o in zip(on, off, strict=True))
    assert budget["mean"] == pytest.approx(sum(on) / 3 - sum(off) / 3)
    assert budget["low"] <= budget["mean"] <= budget["high"]
    verdict = data["verdict"]
    assert verdict["best_on_average"] == "budget" and verdict["judge"] == "retries"
    assert "budget" in verdict["sentence"] and "paired over 3 seeds" in verdict["sentence"]
    # Every variant's scenario hash is recorded; the identical one hashes alike.
    hashes = [v["scenario_hash"] for v in data["variants"]]
    assert hashes[0] == hashes[1] != hashes[2] and data["meta"]["callboard_version"]
    # The fault's down phases are what the figures shade.
    assert data["faults"][0]["spans"] == [[10.0, 20.0], [30.0, 40.0], [50.0, 60.0]]


@pytest.mark.slow
def test_cli_json_line_and_byte_identical_reports(tiny, tmp_path, capsys):
    lines, texts = [], []
    for name in ("a", "b"):
        args = ["experiment", tiny, "--seeds", "2", "--quiet", "--json", "--workers", "2"]
        assert main([*args, "--out", str(tmp_path / name)]) == 0
        lines.append(json.loads(capsys.readouterr().out))
        texts.append((tmp_path / name / "experiment.json").read_text())
    assert texts[0] == texts[1]
    line = lines[0]
    assert set(line["variants"]) == {"off", "same", "budget"}
    assert set(line["variants"]["off"]) == {"success_rate", "p95", "p99", "retries", "cost"}
    assert set(line["differences"]) == {"same", "budget"}
    assert {"mean", "low", "high", "significant"} <= set(line["differences"]["budget"]["p99"])
    assert line["seeds"] == 2 and line["scenario_hash"] and line["callboard_version"]
    for name in ("experiment.md", "experiment.html", "figures/latency.png", "figures/routing.png"):
        assert (tmp_path / "a" / name).stat().st_size > 1000
    for name in ("errors.png", "breakers.png", "differences.png"):
        assert (tmp_path / "a" / "figures" / name).read_bytes() == (
            tmp_path / "b" / "figures" / name
        ).read_bytes()
    markdown = (tmp_path / "a" / "experiment.md").read_text()
    assert line["verdict"] in markdown and line["scenario_hash"] in markdown
    assert "flapping on openai-paid-1" in markdown


def test_builtins_load_and_are_listed(capsys):
    assert builtin_experiments() == ["breaker-thresholds", "hedging", "retry-budget"]
    for name in builtin_experiments():
        prepared = load_experiment(name)
        assert len(prepared.scenarios) >= 2 and len(prepared.seeds) == 10
    assert main(["experiments"]) == 0
    out = capsys.readouterr().out
    assert all(name in out for name in builtin_experiments())


def test_bad_experiments_are_named_before_any_run(tiny, tmp_path):
    bad = tmp_path / "bad.toml"
    bad.write_text(EXPERIMENT.replace("retry.budget.ratio=0.05", "retry.budget.ratio=-1"))
    with pytest.raises(ExperimentError, match=r"variant 'budget': retry\.budget\.ratio"):
        load_experiment(str(bad))
    bad.write_text(EXPERIMENT.replace('judge = "retries"', 'judge = "vibes"'))
    with pytest.raises(ExperimentError, match=r"success_rate \| p95"):
        load_experiment(str(bad))
    bad.write_text(EXPERIMENT.replace('name = "same"', 'name = "off"'))
    with pytest.raises(ExperimentError, match="distinct variant names"):
        load_experiment(str(bad))
    with pytest.raises(ScenarioError, match="built-ins: breaker-thresholds"):
        load_experiment("no-such-experiment")
    with pytest.raises(InvalidSetting, match="--seeds"):
        load_experiment(tiny, seeds=0)
    assert main(["experiment", str(bad), "--quiet"]) == 2
