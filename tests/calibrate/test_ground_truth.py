"""Ground truth: a scenario whose accounts and workload are known is simulated with traces,
calibrated from them, and each fitted figure's 99% interval (from its sample size) holds
the true value. Virtual time and a fixed seed: fast, and the same every run."""

from __future__ import annotations

import math
import statistics
import tomllib

import pytest

from sims.calibrate import calibrate
from sims.calibration_toml import scenario_toml
from sims.runner import simulate
from sims.scenario import load, structure

TRUE_TTFT = {"alpha": (0.3, 0.5), "beta": (0.8, 0.35)}  # median s, sigma
TRUE_TOKENS_PER_S = {"alpha": 90.0, "beta": 40.0}
TRUE_UPSTREAM_ERROR = {"alpha": 0.05, "beta": 0.0}
TRUE_THINK = (12.0, 0.6)  # median s, sigma
TRUE_OUTPUT = (120.0, 0.4)  # follow_up answers: median tokens, sigma
RATE_PER_MINUTE = 6.0
TURNS = 5

SCENARIO = f"""
name = "truth"
seed = 11
duration = 7200

[workload]
interviews = 150
arrival = "poisson"
rate_per_minute = {RATE_PER_MINUTE}
turns = {TURNS}
plan = {["follow_up"] * TURNS}
think_time = {{ kind = "lognormal", mu = {math.log(TRUE_THINK[0])}, sigma = {TRUE_THINK[1]} }}
follow_up_tokens = {{ kind = "lognormal", mu = {math.log(TRUE_OUTPUT[0])}, \
sigma = {TRUE_OUTPUT[1]} }}

[routing]
policy = "round_robin"

[breaker]
failure_threshold = 1000

[cache]
enabled = false
""" + "".join(
    f"""
[[accounts]]
profile = "selfhosted-8b"
name = "{name}"
max_concurrency = 500
limits = []
[accounts.latency]
ttft = {{ kind = "lognormal", mu = {math.log(median)}, sigma = {sigma} }}
tokens_per_s = {TRUE_TOKENS_PER_S[name]}

[accounts.errors]
upstream_error = {TRUE_UPSTREAM_ERROR[name]}
"""
    for name, (median, sigma) in TRUE_TTFT.items()
)


@pytest.fixture(scope="module")
def calibrated(tmp_path_factory):
    folder = tmp_path_factory.mktemp("truth")
    source = folder / "truth.toml"
    source.write_text(SCENARIO)
    scenario, _ = load(str(source), [])
    traces = folder / "truth.jsonl"
    simulate(scenario, traces=traces)
    return calibrate([traces]), traces


def _within(interval, truth):
    assert interval.low <= truth <= interval.high, (truth, interval)


def test_each_account_recovers_its_true_profile(calibrated):
    calibration, _ = calibrated
    accounts = {a.name: a for a in calibration.accounts}
    assert sorted(accounts) == ["alpha-1", "beta-1"]
    for name, (median, sigma) in TRUE_TTFT.items():
        account = accounts[f"{name}-1"]
        fit = account.fit
        assert account.profile == "selfhosted-8b" and fit.answered >= 300
        assert fit.ttft.best.family == "lognormal" and fit.ttft.ks_p > 0.01
        _within(fit.ttft.median, median)
        _within(fit.ttft.sigma, sigma)
        # Decoding takes tokens / rate exactly in the model: no sampling spread, only the
        # spans' nanosecond times.
        assert fit.tokens_per_s.estimate == pytest.approx(TRUE_TOKENS_PER_S[name], rel=1e-4)
        _within(fit.errors["upstream_error"], TRUE_UPSTREAM_ERROR[name])
        assert fit.timeouts == 0
        for code in ("rate_limited", "overloaded", "malformed_reply"):
            assert fit.errors[code].estimate == 0.0
        assert fit.limits == () and fit.rate_limited_at == () and fit.windows == ()
    assert accounts["alpha-1"].fit.errors["upstream_error"].estimate > 0


def test_the_workload_comes_back(calibrated):
    workload = calibrated[0].workload
    assert workload.conversations == 150 and workload.requests == 150 * TURNS
    assert workload.plan == ("follow_up",) * TURNS and workload.plan_share == 1.0
    _within(workload.rate_per_minute, RATE_PER_MINUTE)
    think = workload.think_time
    assert think.best.family == "lognormal"
    _within(think.median, TRUE_THINK[0])
    _within(think.sigma, TRUE_THINK[1])
    (follow_up,) = workload.kinds
    output = follow_up.output_tokens
    assert output.best.family == "lognormal"
    _within(output.median, TRUE_OUTPUT[0])  # tokens are whole: at most one token under
    _within(output.sigma, TRUE_OUTPUT[1])
    assert workload.cache_hits.estimate == 0.0


def test_the_scenario_written_loads_and_repeats_byte_for_byte(calibrated, tmp_path):
    calibration, traces = calibrated
    text = scenario_toml(calibration, "truth-calibrated")
    assert scenario_toml(calibrate([traces]), "truth-calibrated") == text
    scenario = structure(tomllib.loads(text), "calibrated")
    alpha, _ = scenario.accounts
    latency, errors = alpha.behaviour()
    assert (alpha.name, alpha.limits) == ("alpha-1", ())
    assert latency.ttft.mu == pytest.approx(math.log(0.3), abs=0.1)
    assert latency.tokens_per_s == pytest.approx(90.0, rel=1e-4)
    assert 0.02 < errors.upstream_error < 0.09
    assert scenario.workload.arrival == "poisson"
    assert scenario.workload.plan == ("follow_up",) * TURNS
    assert "# Time to first token: lognormal by AIC of" in text
    assert "KS D=" in text and "AIC vs" in text


def test_an_account_too_sparse_to_fit_is_named_or_defaulted(tmp_path):
    from actors.runtime.errors import InvalidSetting

    source = tmp_path / "few.toml"
    source.write_text(SCENARIO.replace("interviews = 150", "interviews = 4"))
    scenario, _ = load(str(source), [])
    traces = tmp_path / "few.jsonl"
    simulate(scenario, traces=traces)
    with pytest.raises(
        InvalidSetting,
        match=r"account alpha-1: \d+ answered attempts \(of \d+ attempts\); 30 are needed",
    ):
        calibrate([traces])
    calibration = calibrate([traces], sparse="default")
    assert all(a.fit is None for a in calibration.accounts)
    text = scenario_toml(calibration, "few")
    assert "fewer than needed to fit: the selfhosted-8b profile's" in text
    structure(tomllib.loads(text), "few")


def test_attempts_cut_by_a_timeout_are_censored_not_dropped(tmp_path):
    """A first-byte timeout near the median cuts a fifth of the answers: fitted as censored
    observations the true median and sigma come back; dropped, they would not."""
    source = tmp_path / "cut.toml"
    one = SCENARIO.split("[[accounts]]")[0] + "[[accounts]]" + SCENARIO.split("[[accounts]]")[2]
    source.write_text(one + "\n[timeouts]\nfirst_byte = 1.1\n")
    scenario, _ = load(str(source), [])
    traces = tmp_path / "cut.jsonl"
    simulate(scenario, traces=traces)
    (account,) = calibrate([traces]).accounts
    ttft = account.fit.ttft
    median, sigma = TRUE_TTFT["beta"]
    assert account.fit.timeouts == ttft.censored > 100
    _within(ttft.median, median)
    _within(ttft.sigma, sigma)
    assert ttft.ks_p > 0.01  # the values under the cut, against the fit truncated there
    kept = [a.ttft for r in calibrate([traces]).observed.requests for a in r.attempts if a.ttft]
    assert statistics.median(kept) < ttft.median.low  # dropping the cut ones biases it low
