"""callboard compare on the ground-truth loop's simulated half: a simulation's own traces
replayed through the same scenario agree; through a fleet twice as slow, they do not."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from actors.runtime.errors import InvalidSetting
from engine.cli.main import main
from reports.compare import side_rows
from sims.compare import Comparison, Figures, Side, compare, replay_observed
from sims.observed import Observed, ObservedRequest
from sims.runner import simulate
from sims.scenario import load

TRUTH = """
name = "twin-truth"
seed = 3

[workload]
interviews = 300
arrival = "uniform"
window = 1800
turns = 9

[[accounts]]
name = "fast"
profile = "openai-paid"
count = 2
latency = { ttft = { kind = "lognormal", median = 0.5, p95 = 1.5 }, tokens_per_s = 60 }

[cache]
enabled = false
"""
SLOWER = (
    'accounts[0].latency={ ttft = { kind = "lognormal", median = 1.0, p95 = 3.0 }, '
    "tokens_per_s = 30 }"
)


@pytest.fixture(scope="module")
def truth(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """The scenario's file, and the traces its simulation wrote."""
    folder = tmp_path_factory.mktemp("truth")
    scenario_file = folder / "truth.toml"
    scenario_file.write_text(TRUTH)
    traces = folder / "truth.jsonl"
    scenario, _ = load(str(scenario_file))
    simulate(scenario, traces=traces)
    return scenario_file, traces


@pytest.fixture(scope="module")
def itself(truth: tuple[Path, Path]) -> Comparison:
    scenario_file, traces = truth
    return compare([traces], str(scenario_file))


@pytest.mark.slow
def test_a_simulations_traces_replayed_through_its_scenario_agree(itself: Comparison) -> None:
    assert itself.replayed == 2700 and itself.cached_left_out == 0
    assert [side.name for side in itself.accounts] == ["fast-1", "fast-2"]
    assert not itself.missing_in_scenario and not itself.missing_in_traces
    assert itself.close
    for side in itself.sides:
        for figure in ("latency", "ttft"):
            for point in (50, 95, 99):
                assert abs(side.difference(figure, point)) <= 0.05, (side.name, figure, point)
        assert side.observed.calls == side.simulated.calls
        assert side.observed.success_rate == side.simulated.success_rate


@pytest.mark.slow
def test_on_another_seed_the_overall_percentiles_still_agree(truth: tuple[Path, Path]) -> None:
    """Fresh draws of the same model: the overall p50 and p95 land within 5%. (An account's
    p95 can move more: which account drew the few long evaluation turns is the routing's
    luck, and its p95 sits among them.)"""
    scenario_file, traces = truth
    other = compare([traces], str(scenario_file), seed=11)
    for point in (50, 95):
        assert other.overall.within("latency", point), other.overall.difference("latency", point)


@pytest.mark.slow
def test_a_fleet_twice_as_slow_is_flagged(truth: tuple[Path, Path], tmp_path: Path) -> None:
    scenario_file, traces = truth
    out = tmp_path / "slow"
    command = [str(traces), str(scenario_file), "--set", SLOWER, "--out", str(out)]
    code = main(["compare", *command, "--runs", "2"])
    assert code == 0
    body = json.loads((out / "compare.json").read_text())
    assert body["close"] is False
    for side in (body["overall"], *body["accounts"].values()):
        for point in (50, 95):
            assert side["difference"][f"latency_p{point}"] > 0.5
            assert side["within_tolerance"][f"latency_p{point}"] is False
    markdown = (out / "compare.md").read_text()
    assert markdown.startswith("# Traces against twin-truth (seeds 3 to 4 pooled)")
    assert "Simulated latency is not within 5% of observed" in markdown
    assert "fast-1 latency p95" in markdown and "off by more than 5%" in markdown
    html = (out / "compare.html").read_text()
    assert html.count("data:image/png;base64,") == 3
    assert sorted(p.name for p in (out / "figures").iterdir()) == [
        "compare_latency_cdf.png",
        "compare_qq.png",
        "compare_ttft_cdf.png",
    ]
    assert (out / "simulation" / "results.json").exists()


@pytest.mark.slow
def test_the_same_inputs_write_the_same_json(truth: tuple[Path, Path], tmp_path: Path) -> None:
    scenario_file, traces = truth
    outs = [tmp_path / "a", tmp_path / "b"]
    for out in outs:
        command = ["compare", str(traces), str(scenario_file), "--out", str(out), "--runs", "2"]
        assert main(command) == 0
    assert (outs[0] / "compare.json").read_bytes() == (outs[1] / "compare.json").read_bytes()


@pytest.mark.slow
def test_the_simulated_side_pools_its_runs(truth: tuple[Path, Path]) -> None:
    """Three seeds' runs as one sample: three times the values, counts shown per run."""
    scenario_file, traces = truth
    pooled = compare([traces], str(scenario_file), runs=3)
    assert pooled.runs == 3 and pooled.overall.simulated.runs == 3
    assert pooled.overall.simulated.calls == 3 * pooled.overall.observed.calls
    each = [compare([traces], str(scenario_file), seed=seed).overall for seed in (3, 4, 5)]
    merged = np.sort(np.concatenate([side.simulated.latency for side in each]))
    assert np.array_equal(pooled.overall.simulated.latency, merged)
    requests = side_rows(pooled.overall, "requests")[0]
    assert requests == ("requests", "2,700", "", "2,700", "0.0%", "")
    with pytest.raises(InvalidSetting, match="--runs"):
        compare([traces], str(scenario_file), runs=0)


def _figures(latency: np.ndarray) -> Figures:
    values = np.sort(latency)
    return Figures(len(values), len(values), values, values, 0, 0, 0)


def test_an_observed_percentiles_interval_holds_it_as_often_as_it_says() -> None:
    """Distribution-free: over many samples of a lognormal, the 95% interval of the p95
    holds the true p95 at least 95% of the time (less 3 standard errors of the count),
    and is not far wider than it needs (at most 99.5%)."""
    rng = np.random.default_rng(7)
    true_p95 = float(np.exp(1.6448536269514722 * 0.5))  # lognormal(0, 0.5)
    trials = 400
    held = 0
    for _ in range(trials):
        low, high = _figures(rng.lognormal(0.0, 0.5, 300)).interval("latency", 95)
        held += low <= true_p95 <= high
    slack = 3 * np.sqrt(0.95 * 0.05 / trials)
    assert 0.95 - slack <= held / trials <= 0.995


def test_a_miss_inside_the_observed_interval_says_more_traffic_would_tell() -> None:
    few = np.linspace(1.0, 2.0, 20)
    many = np.linspace(1.0, 2.0, 20_000)
    close_but_noisy = Side("a", _figures(few), _figures(few * 1.08))
    assert not close_but_noisy.within("latency", 50)
    assert close_but_noisy.inside_interval("latency", 50)
    verdicts = {row[0]: row[-1] for row in side_rows(close_but_noisy, "attempts")}
    assert verdicts["latency p50"] == "off by more than 5%, inside the observed's 95% interval"
    known = Side("b", _figures(many), _figures(many * 1.08))
    verdicts = {row[0]: row[-1] for row in side_rows(known, "attempts")}
    assert verdicts["latency p50"] == "off by more than 5%"
    low, high = _figures(few).interval("latency", 99)
    assert np.isnan(high) and low > 1.0  # 20 values cannot bound a p99 from above


@pytest.mark.slow
def test_accounts_on_one_side_only_are_named(truth: tuple[Path, Path], tmp_path: Path) -> None:
    _, traces = truth
    spare = tmp_path / "spare.toml"
    spare.write_text(TRUTH + '\n[[accounts]]\nname = "spare"\nprofile = "openai-paid"\n')
    comparison = compare([traces], str(spare))
    assert comparison.missing_in_traces == ("spare-1",)
    assert [side.name for side in comparison.accounts] == ["fast-1", "fast-2"]


@pytest.mark.slow
def test_a_scenario_with_none_of_the_traces_accounts_is_refused(truth: tuple[Path, Path]) -> None:
    scenario_file, traces = truth
    with pytest.raises(InvalidSetting, match=r"scenario accounts.*fast-1, fast-2"):
        compare([traces], str(scenario_file), overrides=['accounts[0].name="slow"'])


def test_traces_with_no_request_that_reached_a_provider_are_refused() -> None:
    hit = ObservedRequest("r1", 0.0, 0.001, None, None, "chat", "ok", True, None, None, ())
    scenario, _ = load("reference")
    with pytest.raises(InvalidSetting, match="every one a cache hit"):
        replay_observed(Observed((hit,), "callboard", 0), scenario, ["hits.jsonl"])


def test_an_empty_traces_file_is_named(tmp_path: Path) -> None:
    empty = tmp_path / "empty.jsonl"
    empty.write_text("")
    with pytest.raises(InvalidSetting, match=r"empty\.jsonl"):
        compare([empty], "reference")


@pytest.mark.slow
def test_accounts_named_otherwise_are_matched_only_when_told(truth: tuple[Path, Path]) -> None:
    scenario_file, traces = truth
    renamed = ['accounts[0].name="slow"']
    names = {"fast-1": "slow-1", "fast-2": "slow-2"}
    comparison = compare([traces], str(scenario_file), overrides=renamed, names=names)
    assert [side.name for side in comparison.accounts] == ["slow-1", "slow-2"]
    assert not comparison.missing_in_scenario and not comparison.missing_in_traces
    with pytest.raises(InvalidSetting, match=r"--account.*fast-9"):
        compare([traces], str(scenario_file), names={"fast-9": "fast-1"})


@pytest.mark.slow
def test_a_traced_account_is_matched_to_a_group_of_one_named_after_it(
    truth: tuple[Path, Path], tmp_path: Path
) -> None:
    """As calibrate writes them: one group per observed account, named after it."""
    _, traces = truth
    ttft = '{ kind = "lognormal", median = 0.5, p95 = 1.5 }'
    account = f"latency = {{ ttft = {ttft}, tokens_per_s = 60 }}"
    fitted = tmp_path / "fitted.toml"
    fitted.write_text(
        TRUTH.split("[[accounts]]")[0]
        + "".join(
            f'[[accounts]]\nname = "{name}"\nprofile = "openai-paid"\ncount = {count}\n{account}\n'
            for name, count in (("fast-1", 1), ("fast-2", 2))
        )
    )
    comparison = compare([traces], str(fitted))
    assert comparison.by_group == (("fast-1", "fast-1-1"),)
    # A group of two is not one account: fast-2 stays unmatched.
    assert comparison.missing_in_scenario == ("fast-2",)
    assert [side.name for side in comparison.accounts] == ["fast-1-1"]
    told = compare([traces], str(fitted), names={"fast-1": "fast-2-1"})
    assert told.by_group == () and [s.name for s in told.accounts] == ["fast-2-1"]


def test_replay_writes_the_live_routers_spans_where_told(tmp_path: Path) -> None:
    from sims.replay import live_config

    scenario, _ = load("reference")
    urls = ["http://127.0.0.1:1"] * len(scenario.account_specs())
    assert live_config(scenario, urls, 1.0).traces.file is None
    traced = live_config(scenario, urls, 1.0, tmp_path / "live.jsonl")
    assert traced.traces.file == str(tmp_path / "live.jsonl")


def test_the_command_names_what_it_lacks(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["compare", "only-traces.jsonl"]) == 2
    assert "TRACES... SCENARIO" in capsys.readouterr().err
    assert main(["compare", "a.jsonl", "reference", "--account", "fast-1"]) == 2
    assert "--account" in capsys.readouterr().err
