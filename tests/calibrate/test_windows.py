"""Ground truth over hours: an account that fails more in one hour gets that hour as a
fault window, its rate outside the window stays its own, and 429s with their
Retry-After come back. Simulated with traces, in virtual time."""

from __future__ import annotations

import tomllib

import pytest

from sims.calibrate import calibrate
from sims.calibration_toml import scenario_toml
from sims.runner import simulate
from sims.scenario import load, structure

BASE, BURST = 0.02, 0.3  # alpha's upstream errors: always, and in hour 1 on top
LIMITED, RETRY_AFTER = 0.05, 2.0  # beta's 429s

SCENARIO = f"""
name = "hours"
seed = 5
duration = 14400

[workload]
interviews = 300
arrival = "poisson"
rate_per_minute = 2.0
turns = 5
plan = ["follow_up", "follow_up", "follow_up", "follow_up", "follow_up"]
think_time = 10

[routing]
policy = "round_robin"

[breaker]
failure_threshold = 1000

[cache]
enabled = false

[[accounts]]
profile = "selfhosted-8b"
name = "alpha"
limits = []
errors = {{ upstream_error = {BASE} }}

[[accounts]]
profile = "selfhosted-8b"
name = "beta"
limits = []
errors = {{ rate_limited = {LIMITED}, rate_limited_retry_after = {RETRY_AFTER} }}

[[faults]]
target = "alpha"
kind = "errors"
status = 503
share = {BURST}
start = 3600
end = 7200
"""


@pytest.fixture(scope="module")
def calibration(tmp_path_factory):
    folder = tmp_path_factory.mktemp("hours")
    source = folder / "hours.toml"
    source.write_text(SCENARIO)
    scenario, _ = load(str(source), [])
    traces = folder / "hours.jsonl"
    simulate(scenario, traces=traces)
    return calibrate([traces])


def test_an_hour_of_failures_becomes_a_fault_window(calibration):
    alpha = {a.name: a for a in calibration.accounts}["alpha-1"].fit
    assert len(alpha.hours) >= 3
    (window,) = alpha.windows
    assert (window.hour, window.code) == (1, "upstream_error")
    in_hour = BASE + (1 - BASE) * BURST
    assert window.share.low <= in_hour <= window.share.high
    outside = alpha.errors["upstream_error"]
    assert outside.low <= BASE <= outside.high
    scenario = structure(tomllib.loads(scenario_toml(calibration, "hours")), "hours")
    (fault,) = scenario.faults
    assert (fault.target, fault.kind, fault.start, fault.end) == ("alpha-1", "errors", 3600, 7200)
    assert fault.share == pytest.approx(BURST, abs=0.12)


def test_429s_and_their_retry_after_come_back(calibration):
    beta = {a.name: a for a in calibration.accounts}["beta-1"].fit
    share = beta.errors["rate_limited"]
    assert share.low <= LIMITED <= share.high and beta.windows == ()
    assert beta.retry_after == RETRY_AFTER
    assert len(beta.rate_limited_at) == round(share.estimate * beta.attempts)
    assert beta.minute_before_429 is not None and beta.limits == ()
    text = scenario_toml(calibration, "hours")
    assert f"rate_limited_retry_after = {RETRY_AFTER}" in text
    assert "429s, from" in text
