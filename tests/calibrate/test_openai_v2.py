"""A trace file the official OpenTelemetry OpenAI instrumentation wrote (openai-v2, the
`openai` client calling a flaky mock provider directly, no callboard in the path;
regenerate with ``python -m tests.live.openai_v2_traces``) calibrates without edits."""

from __future__ import annotations

import tomllib
from pathlib import Path

import pytest

from sims.calibrate import calibrate
from sims.calibration_toml import scenario_toml
from sims.scenario import structure

FIXTURE = Path(__file__).parent / "fixtures" / "openai-v2.jsonl"


def check_openai_v2(path: Path) -> str:
    """What any openai-v2 file of :mod:`tests.live.openai_v2_traces` must calibrate to."""
    calibration = calibrate([path])
    assert calibration.observed.source == "genai"
    (account,) = calibration.accounts  # by the model the app asked for
    fit = account.fit
    assert account.name == "gpt-4o-mini" and account.profile == "openai-paid"
    assert fit.attempts == 60 and fit.answered >= 30
    # The mock's 30% of HTTP 500s, as openai.InternalServerError: upstream errors.
    share = fit.errors["upstream_error"]
    assert share.low <= 0.3 <= share.high and fit.other_errors == {}
    # openai-v2 records no first token: the whole call is fitted, as service.
    assert fit.ttft is None and fit.service is not None
    assert 0.01 < fit.service.mean.estimate < 1.0
    text = scenario_toml(calibration, "openai-v2")
    scenario = structure(tomllib.loads(text), "openai-v2")
    latency, errors = scenario.accounts[0].behaviour()
    assert latency.service is not None
    assert errors.upstream_error == pytest.approx(share.estimate, rel=1e-5)
    assert scenario.workload.plan == ("follow_up",)
    return text


def test_the_committed_openai_v2_file_calibrates():
    text = check_openai_v2(FIXTURE)
    assert "accounts are models" in text and "as service" in text
