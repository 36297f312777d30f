"""The cheapest mix (``callboard size --mix``): the search finds what brute force finds, the
same on any number of workers; bad input is named; the report shows the mix, its runners-up
and each kind alone."""

from __future__ import annotations

import itertools
import json
from concurrent.futures import ThreadPoolExecutor

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from actors.runtime.errors import InvalidSetting
from engine.cli.main import main
from sims.confidence import Rule
from sims.fleet_cost import DAYS_PER_MONTH
from sims.mix import MixSearch
from sims.scenario import load
from sims.sizing import AccountRange, Run, Sizer, Sizing, size
from sims.slo import Slo

# Three kinds, each a group with its own fee; the stand-in below decides what passes.
THREE = """
name = "three-kinds"
seed = 5
duration = 3600

[workload]
interviews = 10
arrival = "uniform"
window = 60
turns = 3
plan = ["follow_up", "follow_up", "follow_up"]
think_time = 5

[[accounts]]
profile = "openai-paid"
name = "fast"
count = 1
monthly_fee = 7
errors = {}
latency = { service = 1.0 }

[[accounts]]
profile = "openai-paid"
name = "cheap"
count = 1
monthly_fee = 2
errors = {}
latency = { service = 1.0 }

[[accounts]]
profile = "openai-paid"
name = "big"
count = 1
monthly_fee = 11
errors = {}
latency = { service = 1.0 }

[retry]
deadline = 60

[cache]
enabled = false
"""

KINDS = ("fast", "cheap", "big")
FEES = {"fast": 7.0, "cheap": 2.0, "big": 11.0}
SLOS = [Slo.parse("success>=100%")]


@pytest.fixture
def three(tmp_path):
    path = tmp_path / "three.toml"
    path.write_text(THREE)
    return str(path)


class _Capacity:
    """A stand-in for ``simulate_point``: each kind serves ``weights[kind]`` interviews an
    account, and seed i meets the SLO when the fleet serves ``needs[i]``; usage costs
    ``usage[kind]`` a month per account (so a larger fleet never costs less)."""

    def __init__(self, first_seed, weights, needs, usage):
        self.first_seed, self.weights, self.needs, self.usage = first_seed, weights, needs, usage
        self.calls: list[tuple[tuple[int, ...], int]] = []

    def counts(self, overrides):
        found = dict.fromkeys(KINDS, 1)  # a group not being mixed keeps the scenario's 1
        for o in overrides:
            if o.startswith("accounts."):
                key, value = o.split("=")
                found[KINDS[int(key.split(".")[1])]] = int(value)
        return tuple(found[k] for k in KINDS)

    def __call__(self, raw, source, overrides, seed):
        mix = self.counts(overrides)
        self.calls.append((mix, seed))
        served = sum(self.weights[k] * n for k, n in zip(KINDS, mix, strict=True))
        success = 1.0 if served >= self.needs[seed - self.first_seed] else 0.5
        monthly = sum(self.usage[k] * n for k, n in zip(KINDS, mix, strict=True))
        per_interview = monthly / (10 * DAYS_PER_MONTH)
        summary = {
            "success_rate": success,
            "slo_metrics": {"success": success, "provider_p95": 1.0},
            "cost_per_interview": per_interview,
            "cache_hit_rate": 0.0,
        }
        group = {"utilisation": 0.1, "peak_utilisation": 0.2}
        return Run(seed, summary, {k: group for k, n in zip(KINDS, mix, strict=True) if n})

    def cost(self, mix):
        return sum((FEES[k] + self.usage[k]) * n for k, n in zip(KINDS, mix, strict=True))


def _ranges(highs=(4, 5, 3)):
    return [AccountRange(kind, 0, high) for kind, high in zip(KINDS, highs, strict=True)]


def _mix_search(three, monkeypatch, weights, needs, usage, highs=(4, 5, 3), parallel=None):
    scenario, raw = load(three)
    capacity = _Capacity(scenario.seed, weights, needs, usage)
    monkeypatch.setattr("sims.sizing.simulate_point", capacity)
    seeds = len(needs)
    with ThreadPoolExecutor(max_workers=parallel or seeds) as threads:
        sizer = Sizer(
            scenario, raw, three, SLOS, _ranges(highs), Rule(min_seeds=seeds, max_seeds=seeds),
            threads, parallel=parallel or seeds, mix=True,
        )  # fmt: skip
        return MixSearch(sizer, 10).run(), capacity, scenario


def _brute_force(capacity, needs, highs):
    """Every mix of the grid, judged as the rule would (all seeds met), priced exactly."""
    passing = [
        mix
        for mix in itertools.product(*(range(h + 1) for h in highs))
        if any(mix)
        and all(
            sum(capacity.weights[k] * n for k, n in zip(KINDS, mix, strict=True)) >= need
            for need in needs
        )
    ]
    return min((capacity.cost(mix) for mix in passing), default=None)


def _mix_of(point):
    return tuple(point.counts[k] for k in KINDS)


@pytest.mark.parametrize(
    ("weights", "needs", "usage", "cheapest"),
    [
        # cheap serves 1 for $2, fast 3 for $7, big 6 for $11: 8 served is 1 big + 2 cheap
        # ($15), against 1 big + 1 fast ($18), 2 big ($22), 1 fast + 5 cheap ($17) ...
        ({"fast": 3, "cheap": 1, "big": 6}, [8, 8], {"fast": 0, "cheap": 0, "big": 0}, (0, 2, 1)),
        # Usage makes big the bargain: 1 big ($11 + $1) beats any mix for 6.
        ({"fast": 3, "cheap": 1, "big": 6}, [6, 5], {"fast": 9, "cheap": 4, "big": 1}, (0, 0, 1)),
    ],
)
def test_the_search_finds_the_cheapest_mix(three, monkeypatch, weights, needs, usage, cheapest):
    answer, capacity, _ = _mix_search(three, monkeypatch, weights, needs, usage)
    assert _mix_of(answer.recommended) == cheapest
    assert answer.recommended.passed and len(answer.recommended.runs) == len(needs)
    assert len(set(capacity.calls)) == len(capacity.calls)  # no simulation ran twice
    assert answer.monotone


@pytest.mark.slow
@settings(
    max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    st.fixed_dictionaries({k: st.integers(1, 6) for k in KINDS}),
    st.lists(st.integers(1, 30), min_size=2, max_size=3),
    st.fixed_dictionaries({k: st.integers(0, 6) for k in KINDS}),
    st.tuples(st.integers(1, 5), st.integers(1, 5), st.integers(1, 5)),
)
def test_the_search_agrees_with_brute_force(three, monkeypatch, weights, needs, usage, highs):
    # Whatever each kind serves and costs, the search prices its pick as the cheapest of
    # every mix in the grid that meets the SLO on every seed: brute force, same judge.
    with monkeypatch.context() as patch:
        answer, capacity, _ = _mix_search(three, patch, weights, needs, usage, highs)
    best = _brute_force(capacity, needs, highs)
    if best is None:
        assert answer.recommended is None
    else:
        assert answer.recommended.passed
        assert capacity.cost(_mix_of(answer.recommended)) == pytest.approx(best)
    assert len(set(capacity.calls)) == len(capacity.calls)  # no simulation ran twice


def test_the_walk_probes_a_small_part_of_the_grid(three, monkeypatch):
    weights, usage = {"fast": 3, "cheap": 1, "big": 6}, {"fast": 0, "cheap": 0, "big": 0}
    answer, capacity, _ = _mix_search(three, monkeypatch, weights, [40, 40], usage, (12, 12, 12))
    assert capacity.cost(_mix_of(answer.recommended)) == _brute_force(capacity, [40], (12, 12, 12))
    assert len(capacity.calls) < 13**3 // 10  # of 2,197 mixes


def test_each_kind_alone_is_its_smallest_passing_fleet(three, monkeypatch):
    # 8 served: fast alone needs 3, cheap alone 8 (beyond its range of 5), big alone 2.
    weights, usage = {"fast": 3, "cheap": 1, "big": 4}, {"fast": 0, "cheap": 0, "big": 0}
    answer, _, _ = _mix_search(three, monkeypatch, weights, [8, 7], usage)
    alone = {k: None if p is None else _mix_of(p) for k, p in answer.singles.items()}
    assert alone == {"fast": (3, 0, 0), "cheap": None, "big": (0, 0, 2)}
    assert all(p.passed for p in answer.singles.values() if p is not None)


def test_what_the_search_ran_does_not_depend_on_how_many_ran_at_once(three, monkeypatch):
    weights, usage = {"fast": 3, "cheap": 1, "big": 6}, {"fast": 1, "cheap": 1, "big": 2}

    def seen(parallel):
        answer, _, _ = _mix_search(three, monkeypatch, weights, [9, 7, 8], usage, parallel=parallel)
        return [(p.counts, [r.seed for r in p.runs], p.verdict) for p in answer.points]

    assert seen(1) == seen(3)


def test_a_cheapest_fleet_failing_a_later_seed_leaves_the_next_cheapest(three, monkeypatch):
    # The first seed needs 3 served, the second 6: the probes alone would pick 1 fast ($7);
    # its second seed fails, and the search settles on 2 fast ($14) against 1 big ($11).
    weights, usage = {"fast": 3, "cheap": 1, "big": 6}, {"fast": 0, "cheap": 0, "big": 0}
    answer, _, _ = _mix_search(three, monkeypatch, weights, [3, 6], usage)
    assert _mix_of(answer.recommended) == (0, 0, 1)
    fast = next(p for p in answer.points if _mix_of(p) == (1, 0, 0))
    assert fast.verdict == "missed" and len(fast.runs) == 2


@pytest.mark.slow
def test_the_report_shows_the_mix_its_runners_up_and_each_kind_alone(three, monkeypatch, tmp_path):
    from reports.capacity import write_capacity_report

    weights, usage = {"fast": 3, "cheap": 1, "big": 6}, {"fast": 0, "cheap": 0, "big": 0}
    answer, _, scenario = _mix_search(three, monkeypatch, weights, [8, 8], usage)
    rule = Rule(min_seeds=2, max_seeds=2)
    sizing = Sizing(scenario, tuple(SLOS), tuple(_ranges()), rule, 0, (answer,), mix=True)
    data, files = write_capacity_report(sizing, tmp_path)
    [level] = data["levels"]
    candidates = level["mix"]["candidates"]
    assert candidates[0]["counts"] == {"fast": 0, "cheap": 2, "big": 1}
    assert candidates[0]["monthly_cost"] == 15.0 and candidates[0]["verdict"] == "met"
    costs = [c["monthly_cost"] for c in candidates[1:]]
    assert len(costs) >= 2 and costs == sorted(costs) and costs[0] >= 15.0
    assert level["mix"]["single_kind"]["cheap"] is None  # 8 cheap: beyond its 0..5
    assert level["mix"]["single_kind"]["big"]["counts"] == {"fast": 0, "cheap": 0, "big": 2}
    markdown = files.markdown.read_text()
    assert "## The cheapest mix" in markdown and "## Each kind alone" in markdown
    assert "| 10 | 2 x cheap + 1 x big | $15.00: $0.00 + $15.00 | cheapest: shown to meet |" in (
        markdown
    )
    assert "| 10 | cheap | none within range |" in markdown
    assert "| 10 | big | 2 x big | $22.00: $0.00 + $22.00 |" in markdown
    assert "is the cheapest mix shown to meet" in markdown
    assert json.loads(files.json.read_text())["meta"]["mix"] is True


@pytest.mark.parametrize(
    ("accounts", "named"),
    [
        (["fast=1..3", "nope=0..2"], "accounts: got 'nope'; allowed: fast | cheap | big"),
        (["fast=3..1", "cheap=0..2"], "accounts: got 'fast=3..1'; allowed: MIN <= MAX"),
        (["fast=0..0", "cheap=0..2"], "accounts: got 'fast=0..0'; allowed: a range that holds"),
        (["fast=0..3"], "mix: got ['fast']; allowed: two or more kinds"),
        (["fast=0..3", "fast=1..2"], "accounts: got 'fast'; allowed: each group named once"),
    ],
)
def test_bad_mixes_are_named_before_any_simulation(three, accounts, named, capsys, monkeypatch):
    def no_simulation(*args):
        raise AssertionError("a simulation ran")

    monkeypatch.setattr("sims.sizing.simulate_point", no_simulation)
    flags = [arg for text in accounts for arg in ("--accounts", text)]
    assert main(["size", three, "--mix", *flags, "--interviews", "10", "--quiet"]) == 2
    assert named in capsys.readouterr().err


def test_a_group_held_fixed_lets_the_mix_buy_nothing(three, monkeypatch):
    # big (not mixed) stays at 1 and serves 6: enough alone, so the cheapest mix of fast
    # and cheap is none of them, which the search may try because big is still there.
    scenario, raw = load(three)
    capacity = _Capacity(
        scenario.seed, {"fast": 3, "cheap": 1, "big": 6}, [5, 6], dict.fromkeys(KINDS, 0)
    )
    monkeypatch.setattr("sims.sizing.simulate_point", capacity)
    ranges = [AccountRange("fast", 0, 3), AccountRange("cheap", 0, 3)]
    with ThreadPoolExecutor(max_workers=2) as threads:
        sizer = Sizer(
            scenario, raw, three, SLOS, ranges, Rule(min_seeds=2, max_seeds=2), threads, 2, mix=True
        )
        answer = MixSearch(sizer, 10).run()
    assert answer.recommended.counts == {"fast": 0, "cheap": 0}
    assert answer.recommended.passed


def test_a_kind_a_fault_aims_at_cannot_be_left_out(three, tmp_path):
    path = tmp_path / "faulty.toml"
    path.write_text(THREE + '[[faults]]\ntarget = "big-1"\nkind = "outage"\nstart = 0\nend = 60\n')
    ranges = [AccountRange.parse("fast=0..3"), AccountRange.parse("big=0..2")]
    with pytest.raises(InvalidSetting, match=r"got 'big=0\.\.2'; allowed: MIN >= 1: faults\[0\]"):
        size(str(path), [10], SLOS, ranges, mix=True)


def test_a_kind_left_out_needs_mix(three):
    with pytest.raises(InvalidSetting, match="0 only with --mix"):
        size(three, [10], SLOS, [AccountRange.parse("fast=0..3")])


@pytest.mark.slow
def test_same_mix_on_one_worker_and_two(tmp_path, capsys):
    args = [
        "size", "fleet-mix", "--mix", "--interviews", "20",
        "--accounts", "free=0..2", "--accounts", "hf=0..2", "--accounts", "haiku=0..3",
        "--replications", "2", "--holdout", "2", "--quiet", "--json",
    ]  # fmt: skip
    found = []
    for workers in ("1", "2"):
        out = tmp_path / workers
        assert main([*args, "--workers", workers, "--out", str(out)]) == 0
        line = json.loads(capsys.readouterr().out)
        found.append((line["mix"], (out / "capacity.json").read_text()))
    assert found[0] == found[1]
    [level] = json.loads(found[0][1])["levels"]
    assert level["feasible"] and level["mix"]["candidates"][0]["verdict"] == "met"
    assert set(level["mix"]["single_kind"]) == {"free", "hf", "haiku"}
