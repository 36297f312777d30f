"""Capacity planning: the search finds a known answer, reproducibly; SLOs parse strictly."""

from __future__ import annotations

import itertools
import json
import math

import attrs
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from actors.runtime.errors import InvalidSetting
from engine.cli.main import main
from sims.confidence import Rule
from sims.sizing import AccountRange, size
from sims.slo import Slo

# Each account may send 30 requests a day and nothing else binds: N interviews of 5
# turns need ceil(5 N / 30) accounts to answer every request, and not one fewer.
KNOWN = """
name = "known-answer"
seed = 5
duration = 7200

[workload]
interviews = 40
arrival = "uniform"
window = 60
turns = 5
plan = ["follow_up", "follow_up", "follow_up", "follow_up", "follow_up"]
think_time = 10

[[accounts]]
profile = "openai-paid"
name = "acct"
count = 1
limits = [{ name = "rpd", unit = "requests", limit = 30, per = 86400, mode = "window" }]
errors = {}
latency = { service = 1.0 }

[retry]
deadline = 60

[cache]
enabled = false
"""


@pytest.fixture
def known(tmp_path):
    path = tmp_path / "known.toml"
    path.write_text(KNOWN)
    return str(path)


@pytest.mark.slow
def test_search_finds_the_known_answer(known):
    sizing = size(
        known,
        [40, 80],
        [Slo.parse("success>=100%")],
        [AccountRange.parse("acct=1..40")],
        rule=Rule(min_seeds=2, max_seeds=4),
        holdout_seeds=3,
        workers=2,
    )
    answers = {lv.interviews: lv.recommended.counts["acct"] for lv in sizing.levels}
    assert answers == {40: 7, 80: 14}  # ceil(200 / 30), ceil(400 / 30)
    for level in sizing.levels:
        just_below = [p for p in level.points if p.accounts == level.recommended.accounts - 1]
        assert just_below and not just_below[0].passed  # the search looked right below it
        assert level.monotone
        # Bisection, not a grid: a handful of points out of 40 possible fleets.
        assert len(level.points) <= 8
        # Exactly what each day needs, so every fresh seed agrees.
        assert [run.seed for run in level.holdout] == [9, 10, 11]  # after the search's 5..8
        assert level.holdout_met(sizing.slos) == 3


@pytest.mark.slow
def test_same_inputs_same_answer_and_report(known, tmp_path, capsys):
    args = [
        "size", known, "--interviews", "40", "--slo", "success>=100%",
        "--accounts", "acct=1..16", "--replications", "2", "--quiet", "--json",
    ]  # fmt: skip
    outputs = []
    for name in ("a", "b"):
        assert main([*args, "--out", str(tmp_path / name)]) == 0
        line = json.loads(capsys.readouterr().out)
        outputs.append((tmp_path / name / "capacity.json").read_text())
        assert line["recommendation"]["40"]["fleet"] == {"acct": 7}
        assert line["recommendation"]["40"]["naive_accounts"] is not None
    assert outputs[0] == outputs[1]
    for name in ("capacity.md", "capacity.html", "figures/sizing_latency.png"):
        assert (tmp_path / "a" / name).stat().st_size > 1000
    markdown = (tmp_path / "a" / "capacity.md").read_text()
    assert "7 x acct" in markdown and "Clopper-Pearson" in markdown
    assert "10 of 10 (" in markdown  # the default held-out check, every seed met


@pytest.mark.slow
def test_an_unreachable_objective_is_reported_not_guessed(known):
    sizing = size(
        known,
        [40],
        [Slo.parse("provider_p95<=0.5s")],  # every call takes 1 s: no fleet can do it
        [AccountRange.parse("acct=1..8")],
        holdout_seeds=0,
    )
    [level] = sizing.levels
    # One round, the top of the range beside the middle: the top missing ends the search.
    assert level.recommended is None and len(level.points) == 2


@pytest.mark.parametrize(
    ("text", "metric", "op", "target"),
    [
        ("provider_p95<=3s", "provider_p95", "<=", 3.0),
        ("answer_p99 <= 800ms", "answer_p99", "<=", 0.8),
        ("success>=99.9%", "success", ">=", 0.999),
        ("ttft_p95<=1.5", "ttft_p95", "<=", 1.5),
    ],
)
def test_slo_parsing(text, metric, op, target):
    slo = Slo.parse(text)
    assert (slo.metric, slo.op) == (metric, op) and slo.target == pytest.approx(target)


@pytest.mark.parametrize(
    "text", ["provider_p95<3s", "latency<=3s", "success>=120%", "answer_p95<=3%", ""]
)
def test_bad_slos_are_named(text):
    with pytest.raises(InvalidSetting, match="slo"):
        Slo.parse(text)


@pytest.mark.parametrize(
    ("old", "new"), [("p95<=3s", "answer_p95"), ("upstream_p99<=3s", "provider_p99")]
)
def test_a_renamed_metric_says_what_to_write_now(old, new):
    with pytest.raises(InvalidSetting, match=f"is now {new}"):
        Slo.parse(old)


def test_bad_ranges_and_groups_are_named(known):
    with pytest.raises(InvalidSetting, match=r"GROUP=MIN\.\.MAX"):
        AccountRange.parse("acct=5")
    with pytest.raises(InvalidSetting, match="MIN <= MAX"):
        AccountRange.parse("acct=9..3")
    with pytest.raises(InvalidSetting, match="acct"):
        size(known, [10], [Slo.parse("provider_p95<=3s")], [AccountRange.parse("nope=1..3")])


def test_several_groups_grow_together_along_their_ranges():
    from sims.sizing import _counts_at

    ranges = [AccountRange.parse("groq=1..9"), AccountRange.parse("paid=2..4")]
    steps = 8  # the widest range decides the resolution
    walk = [_counts_at(step, ranges, steps) for step in range(steps + 1)]
    assert walk[0] == {"groq": 1, "paid": 2} and walk[-1] == {"groq": 9, "paid": 4}
    assert [c["groq"] for c in walk] == list(range(1, 10))
    # Monotone in every group, so bisection over the step is bisection over the fleet.
    assert all(a["paid"] <= b["paid"] for a, b in itertools.pairwise(walk))


# --- the search, against simulations whose verdicts are set per seed -------------------


class _Verdicts:
    """A stand-in for ``simulate_point``: seed i meets the SLO from ``thresholds[i]`` accounts."""

    def __init__(self, first_seed: int, thresholds: list[int]) -> None:
        self.first_seed = first_seed
        self.thresholds = thresholds
        self.calls: list[tuple[int, int]] = []

    def __call__(self, raw, source, overrides, seed):
        from sims.sizing import Run

        count = int(next(o for o in overrides if o.startswith("accounts.0.count=")).split("=")[1])
        self.calls.append((count, seed))
        met = count >= self.thresholds[seed - self.first_seed]
        success = 1.0 if met else 0.5
        return Run(seed, {"success_rate": success, "slo_metrics": {"success": success}}, {})


def _search(known, monkeypatch, thresholds, high=16, guess=None, floor=0, resolution=0.0):
    """The search with seed i meeting the SLO from ``thresholds[i]`` accounts, and a rule
    that recommends a fleet once it met on every one of them (no spread: all pass alike)."""
    from concurrent.futures import ThreadPoolExecutor

    from sims.scenario import load
    from sims.sizing import Sizer, _Search

    scenario, raw = load(known)
    verdicts = _Verdicts(scenario.seed, thresholds)
    monkeypatch.setattr("sims.sizing.simulate_point", verdicts)
    with ThreadPoolExecutor(max_workers=len(thresholds)) as threads:
        rule = Rule(min_seeds=len(thresholds), max_seeds=len(thresholds))
        sizer = Sizer(
            scenario, raw, known, [Slo.parse("success>=100%")],
            [AccountRange.parse(f"acct=1..{high}")], rule, threads, parallel=len(thresholds),
            resolution=resolution,
        )  # fmt: skip
        return _Search(sizer, 40, guess, floor).run(), verdicts.calls


def test_the_search_probes_on_one_seed_and_confirms_the_answer_on_all(known, monkeypatch):
    answer, calls = _search(known, monkeypatch, [7, 7, 7])
    assert answer.recommended.counts == {"acct": 7} and answer.monotone
    assert [run.seed for run in answer.recommended.runs] == [5, 6, 7]  # every seed
    others = [p for p in answer.points if p is not answer.recommended]
    assert others and all(len(p.runs) == 1 for p in others)  # a probe each
    assert len(calls) == len(answer.points) + 2  # bisection was 3 seeds a fleet: 3 x points


def test_an_answer_failing_a_later_seed_sends_the_search_above_it(known, monkeypatch):
    # Seed 5 passes from 4 accounts, seed 7 only from 11: the probes settle on 4, whose
    # confirmation fails on its third seed; the search goes on above it.
    answer, _ = _search(known, monkeypatch, [4, 4, 11])
    assert answer.recommended.counts == {"acct": 11}
    four = next(p for p in answer.points if p.accounts == 4)
    assert not four.passed and [r.seed for r in four.runs] == [5, 6, 7]
    ten = next(p for p in answer.points if p.accounts == 10)
    assert not ten.passed  # the fleet right below the answer was tried and failed
    assert [r.seed for r in answer.recommended.runs] == [5, 6, 7]


def test_a_failing_seed_stops_a_fleet_in_seed_order(known, monkeypatch):
    # Seed 6 fails at 4 accounts: seed 7 is not read even if it ran, and the point says so.
    answer, _ = _search(known, monkeypatch, [4, 9, 1])
    four = next(p for p in answer.points if p.accounts == 4)
    assert [r.seed for r in four.runs] == [5, 6] and not four.passed
    assert answer.recommended.counts == {"acct": 9}


@pytest.mark.slow
@settings(
    max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(st.lists(st.integers(1, 20), min_size=2, max_size=3))
def test_the_search_finds_the_smallest_fleet_every_seed_passes(known, monkeypatch, thresholds):
    # Whatever each seed needs, the answer is what they all need, as a bisection that ran
    # every seed on every fleet would find; or none if that is beyond the range.
    with monkeypatch.context() as patch:
        answer, calls = _search(known, patch, thresholds)
    needed = max(thresholds)
    if needed > 16:
        assert answer.recommended is None
    else:
        assert answer.recommended.counts == {"acct": needed}
        assert len(answer.recommended.runs) == len(thresholds)
        below = [p for p in answer.points if p.accounts == needed - 1]
        assert needed == 1 or (below and not below[0].passed)
    assert len(set(calls)) == len(calls)  # no simulation ran twice


@pytest.mark.slow
@settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    st.lists(st.integers(1, 20), min_size=2, max_size=3),
    st.integers(0, 15),
    st.integers(0, 15),
)
def test_a_guess_from_the_level_below_changes_the_cost_not_the_answer(
    known, monkeypatch, thresholds, guess, floor
):
    # The level below's answer is a floor (more interviews never need fewer accounts), so
    # a floor at or below what this level needs; the guess may be anywhere, even wrong.
    needed = max(thresholds)
    floor = min(floor, needed - 1)  # steps count from 1 account: step k is k + 1 accounts
    with monkeypatch.context() as patch:
        answer, calls = _search(known, patch, thresholds, guess=guess, floor=floor)
    if needed > 16:
        assert answer.recommended is None
    else:
        assert answer.recommended.counts == {"acct": needed}
        assert all(p.accounts > floor for p in answer.points)  # nothing below the floor
    assert len(set(calls)) == len(calls)


@pytest.mark.slow
@settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    st.lists(st.integers(1, 300), min_size=2, max_size=3),
    st.sampled_from([0.0, 0.01, 0.05]),
    st.none() | st.integers(0, 299),
)
def test_a_resolution_bounds_how_far_above_the_smallest_fleet_the_answer_is(
    known, monkeypatch, thresholds, resolution, guess
):
    # Exact below 1 / resolution accounts; above, at most that share of the answer above
    # what every seed needs, and never below it (the rule still judged it on every seed).
    needed = max(thresholds)
    with monkeypatch.context() as patch:
        answer, calls = _search(
            known, patch, thresholds, high=256, guess=guess, resolution=resolution
        )
    if needed > 256:
        assert answer.recommended is None
    else:
        chosen = answer.recommended.counts["acct"]
        assert needed <= chosen <= needed + int(resolution * chosen)
        assert len(answer.recommended.runs) == len(thresholds)
    assert len(set(calls)) == len(calls)


def test_a_resolution_saves_the_last_rounds_of_the_bisection(known, monkeypatch):
    exact, exact_calls = _search(known, monkeypatch, [600, 600], high=1000)
    coarse, coarse_calls = _search(known, monkeypatch, [600, 600], high=1000, resolution=0.01)
    assert exact.recommended.counts == {"acct": 600}
    assert 600 <= coarse.recommended.counts["acct"] <= 606
    assert len(coarse_calls) <= len(exact_calls) - 2


def test_a_fleet_failing_later_seeds_is_not_followed_by_probes_it_implies(known, monkeypatch):
    # Seed 5 passes from 40 accounts, seed 6 from 70: every fleet above 40 meets seed 5
    # (more accounts never hurt), so once 40 failed on seed 6 the search probes none of
    # them on seed 5 alone, and gallops up by fleets run on both seeds, then bisects back.
    answer, calls = _search(known, monkeypatch, [40, 70], high=128)
    assert answer.recommended.counts == {"acct": 70}
    after = calls[calls.index((40, 6)) + 1 :]
    assert all((count, 6) in after for count, seed in after if seed == 5)
    assert len(after) <= 2 * 9  # a gallop and a bisection over 30 accounts, not 30 fleets
    assert next(p for p in answer.points if p.accounts == 69).verdict == "missed"


def test_a_first_level_is_guessed_from_a_pilot_at_an_eighth_of_it(known, monkeypatch):
    # Each seed needs one account per 10 interviews: a pilot at 1,000 of 8,000 interviews
    # (itself guessed from one at 125) lands the guess near 800, and the answer is the
    # same as the whole range's at fewer simulations of the level itself.
    from concurrent.futures import ThreadPoolExecutor

    from sims.scenario import load
    from sims.sizing import Run, Sizer, _pilot_guess, _Search

    calls: list[tuple[int, int, int]] = []

    def per_interview(raw, source, overrides, seed):
        values = dict(o.split("=") for o in overrides)
        interviews, count = int(values["workload.interviews"]), int(values["accounts.0.count"])
        calls.append((interviews, count, seed))
        success = 1.0 if count >= math.ceil(interviews / 10) else 0.5
        return Run(seed, {"success_rate": success, "slo_metrics": {"success": success}}, {})

    scenario, raw = load(known)
    monkeypatch.setattr("sims.sizing.simulate_point", per_interview)
    with ThreadPoolExecutor(max_workers=2) as threads:
        sizer = Sizer(
            scenario, raw, known, [Slo.parse("success>=100%")],
            [AccountRange.parse("acct=1..2000")], Rule(min_seeds=2, max_seeds=2), threads,
            parallel=2, resolution=0.01,
        )  # fmt: skip
        guess = _pilot_guess(sizer, 8000)
        assert {interviews for interviews, _, _ in calls} == {125, 1000}
        assert abs(guess - 800) <= 0.08 * 800
        calls.clear()
        guessed = _Search(sizer, 8000, guess).run()
        guessed_calls = len(calls)
        calls.clear()
        blind = _Search(sizer, 8000).run()
    assert 800 <= guessed.recommended.accounts <= 808 and 800 <= blind.recommended.accounts <= 808
    assert guessed_calls < len(calls)
    assert _pilot_guess(sizer, 500) is None  # too few interviews to need one


def test_a_good_guess_takes_fewer_probes_than_the_whole_range(known, monkeypatch):
    blind, blind_calls = _search(known, monkeypatch, [60, 60], high=128)
    guessed, guessed_calls = _search(known, monkeypatch, [60, 60], high=128, guess=62, floor=30)
    assert blind.recommended.counts == guessed.recommended.counts == {"acct": 60}
    assert len(guessed_calls) < len(blind_calls)


class _Spread:
    """A stand-in whose provider_p95 falls with fleet size and varies by seed: mean
    2 + 12 / accounts s, seed-to-seed sd 0.25 s (a normal draw fixed by the seed)."""

    def __init__(self) -> None:
        self.calls: list[tuple[int, int]] = []

    def __call__(self, raw, source, overrides, seed):
        import numpy as np

        from sims.sizing import Run

        count = int(next(o for o in overrides if o.startswith("accounts.0.count=")).split("=")[1])
        self.calls.append((count, seed))
        p95 = 2 + 12 / count + 0.25 * float(np.random.default_rng(seed).standard_normal())
        return Run(seed, {"slo_metrics": {"provider_p95": p95}}, {})


def _spread_search(known, monkeypatch, parallel):
    from concurrent.futures import ThreadPoolExecutor

    from sims.scenario import load
    from sims.sizing import Sizer, _Search

    scenario, raw = load(known)
    spread = _Spread()
    monkeypatch.setattr("sims.sizing.simulate_point", spread)
    with ThreadPoolExecutor(max_workers=parallel) as threads:
        sizer = Sizer(
            scenario, raw, known, [Slo.parse("provider_p95<=5s")],
            [AccountRange.parse("acct=1..32")], Rule(), threads, parallel=parallel,
            holdout_seeds=20,
        )  # fmt: skip
        answer = _Search(sizer, 40).run()
        return attrs.evolve(answer, holdout=sizer.holdout(answer.recommended)), spread.calls


def test_the_answer_clears_the_threshold_by_the_spread_it_showed(known, monkeypatch):
    answer, _ = _spread_search(known, monkeypatch, parallel=2)
    chosen = answer.recommended
    assert chosen.verdict == "met" and 3 <= len(chosen.runs) <= 12
    # The mean alone crosses 5 s at 4 accounts; 95% of seeds stay under it from 5 on
    # (2 + 12 / 5 + 1.645 x 0.25 = 4.81 s): the rule asks for that margin, and some more.
    assert chosen.counts["acct"] >= 5
    assert all(p.verdict != "met" for p in answer.points if p.accounts < chosen.accounts)
    # The held-out check: 20 fresh seeds on the recommended fleet.
    assert len(answer.holdout) == 20
    assert answer.holdout_met([Slo.parse("provider_p95<=5s")]) >= 19


def test_what_a_fleet_ran_does_not_depend_on_how_many_ran_at_once(known, monkeypatch):
    one, _ = _spread_search(known, monkeypatch, parallel=1)
    four, _ = _spread_search(known, monkeypatch, parallel=4)
    assert [(p.counts, [r.seed for r in p.runs], p.verdict) for p in one.points] == [
        (p.counts, [r.seed for r in p.runs], p.verdict) for p in four.points
    ]


@pytest.mark.parametrize(
    ("args", "named"),
    [
        (["--confidence", "120%"], "confidence: got 1.2"),
        (["--confidence", "most"], "--confidence: got 'most'"),
        (["--replications", "1"], "replications: got 1"),
        (["--replications", "4", "--max-replications", "3"], "max-replications: got 3"),
        (["--holdout", "-1"], "holdout: got -1"),
    ],
)
def test_bad_confidence_settings_are_refused_before_any_simulation(args, named, capsys):
    assert main(["size", "--interviews", "10", *args]) == 2
    assert named in capsys.readouterr().err
