"""Scenario files: built-ins load, bad files are refused with the key, value and what is allowed."""

from __future__ import annotations

import math
import re

import pytest

from engine.routing.config import ConfigError, apply_override
from sims.scenario import ScenarioError, builtin_names, load, scenario_hash

BUILTINS = [
    "autoscale-coldstart",
    "chaos-quarantine",
    "fleet-mix",
    "interview-day",
    "interview-day-2000",
    "interview-day-as-claimed",
    "mixed-fleet",
    "rate-limit-storm",
    "reference",
]


def test_every_builtin_loads():
    assert builtin_names() == BUILTINS
    for name in BUILTINS:
        scenario, _ = load(name)
        assert scenario.name == name and scenario.account_specs()


def test_default_scenario_is_the_85_percent_claim():
    scenario, _ = load("interview-day")
    assert scenario.workload.interviews == 500 and len(scenario.workload.turn_plan) == 17
    specs = scenario.account_specs()
    assert [s.name for s in specs] == ["huggingface-1", "huggingface-2"]
    [window] = specs[0].limits
    assert (window.limit, window.per, window.mode) == (83, 300.0, "window")


def test_reference_matches_the_simpy_model():
    scenario, _ = load("reference")
    workload = scenario.workload
    assert (workload.interviews, workload.arrival, workload.window) == (2000, "uniform", 60.0)
    assert workload.think_time.mean == 30.0 and len(workload.turn_plan) == 17
    specs = scenario.account_specs()
    assert len(specs) == 4 and all(s.max_concurrency == 64 and not s.limits for s in specs)
    assert scenario.routing.policy == "round_robin" and not scenario.cache.enabled
    assert scenario.timeouts.first_byte == scenario.timeouts.total == math.inf


def test_overrides_are_validated_like_the_file():
    scenario, _ = load("interview-day", ["workload.interviews=50", "accounts.0.count=3"], seed=9)
    assert scenario.workload.interviews == 50 and len(scenario.account_specs()) == 3
    assert scenario.seed == 9
    with pytest.raises(ScenarioError) as error:
        load("interview-day", ["workload.interviews=-5"])
    assert "workload.interviews" in str(error.value) and "-5" in str(error.value)


@pytest.mark.parametrize(
    ("override", "expected"),
    [
        ("workload.intervews=5", "unknown key(s) ['intervews']"),
        ("workload.interviews='many'", "expected an integer, got 'many'"),
        ("workload.interviews=2.5", "expected an integer, got 2.5"),
        ("workload.arrival='sometimes'", "workload.arrival = 'sometimes' is not allowed"),
        ("routing.policy='random'", "weighted | lowest_latency | round_robin"),
        ("breaker.failure_threshold=0", "breaker.failure_threshold = 0"),
        ("retry.jitter=3", "retry.jitter = 3"),
        (
            "accounts.0.profile='azure'",
            "groq-free | huggingface | huggingface-hourly | openai-paid | openai-strong",
        ),
        ("workload.think_time={kind='gamma', mean=3}", "unknown distribution kind 'gamma'"),
        ("workload.think_time={kind='exponential', mean=-3}", "Exponential.mean"),
        ("cache.ttl=0", "cache.ttl = 0"),
        ("health.reach_every=10", "health.reach_every = 10"),  # live only
    ],
)
def test_bad_values_name_the_key_the_value_and_what_is_allowed(override, expected):
    with pytest.raises(ScenarioError) as error:
        load("interview-day", [override])
    assert expected in str(error.value)
    assert str(error.value).startswith("invalid scenario interview-day")


def test_a_bad_file_lists_every_problem(tmp_path):
    path = tmp_path / "bad.toml"
    path.write_text(
        'name = "bad"\nseed = "one"\n[workload]\nturns = 0\n[[accounts]]\nprofile = "huggingface"\n'
        "[[faults]]\ntarget = 'nobody'\nkind = 'outage'\nstart = 10\n"
    )
    with pytest.raises(ScenarioError) as error:
        load(str(path))
    assert str(path) in str(error.value)
    assert "expected an integer, got 'one'" in str(error.value)
    assert "workload.turns = 0" in str(error.value)


def test_fault_targets_must_exist(tmp_path):
    path = tmp_path / "f.toml"
    path.write_text(
        'name = "f"\n[[accounts]]\nprofile = "huggingface"\n'
        "[[faults]]\ntarget = 'nobody'\nkind = 'outage'\nstart = 10\n"
    )
    with pytest.raises(ScenarioError, match=re.escape("faults[0].target = 'nobody'")):
        load(str(path))


def test_not_toml_and_missing_files_are_clear(tmp_path):
    broken = tmp_path / "broken.toml"
    broken.write_text("name = \n")
    with pytest.raises(ScenarioError, match="not valid TOML"):
        load(str(broken))
    with pytest.raises(ScenarioError, match="no such file"):
        load(str(tmp_path / "absent.toml"))
    with pytest.raises(ScenarioError, match="built-ins: autoscale-coldstart, chaos-quarantine"):
        load("interview-dya")


def test_override_syntax_errors():
    # The converter's own error: the scenario and the live config each name their kind.
    raw = {"accounts": [{"profile": "huggingface"}]}
    with pytest.raises(ConfigError, match="not key=value"):
        apply_override(raw, "workload.interviews")
    for key in ("accounts.3.count", "accounts[3].count"):  # as errors write it, too
        with pytest.raises(ConfigError) as error:
            apply_override(raw, f"{key}=2")
        assert error.value.problems == [
            "accounts[3]: no such [[accounts]] table; there is 1 (accounts[0])"
        ]
    with pytest.raises(ConfigError, match=r"'x' is not an index\); there is 1 \(accounts\[0\]\)"):
        apply_override(raw, "accounts.x.count=2")
    raw["accounts"].append({"profile": "groq-free"})
    with pytest.raises(ConfigError, match=re.escape("there are 2 (accounts[0] .. accounts[1])")):
        apply_override(raw, "accounts.2=1")
    apply_override(raw, "accounts[1].count=7")
    assert raw["accounts"][1]["count"] == 7


@pytest.mark.parametrize(
    ("override", "problem"),
    [
        ("retry.max_attempts='abc'", "retry.max_attempts: expected an integer, got 'abc'"),
        ("retry.bogus=1", "retry: unknown key(s) ['bogus']; allowed keys: max_attempts,"),
        ("breaker.failure_threshold=0", "breaker.failure_threshold = 0 is not allowed;"),
        ("accounts.0.profile='azure'", "accounts[0].profile = 'azure' is not allowed;"),
        ("accounts[0].profile='azure'", "accounts[0].profile = 'azure' is not allowed;"),
    ],
)
def test_every_problem_starts_with_its_key(override, problem):
    with pytest.raises(ScenarioError) as error:
        load("interview-day", [override])
    [only] = error.value.problems
    assert only.startswith(problem)
    assert " @ " not in only


def test_hash_ignores_the_seed_but_not_the_rest():
    a, _ = load("chaos-quarantine", seed=1)
    b, _ = load("chaos-quarantine", seed=2)
    c, _ = load("chaos-quarantine", ["workload.interviews=301"])
    assert scenario_hash(a) == scenario_hash(b) != scenario_hash(c)
