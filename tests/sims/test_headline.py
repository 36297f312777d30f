"""The default run's headline: the claim under its own premises beside the burst.

The premises scenario must earn its figures: arrivals really spread over the hour, and
about 80% of requests really answered by the router's cache (no hit rate is set
anywhere). The default command must show both readings, and the new workload setting
must refuse bad values by name.
"""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

from actors.backends.sink import StreamSink
from actors.messages import ChatRequest, Completion
from actors.runtime.distributions import Constant
from actors.runtime.errors import InvalidSetting
from actors.runtime.randomness import RandomStreams
from actors.session import InterviewSession
from engine.cli.main import main
from reports.headline import reading_sentence
from sims.headline import READINGS, judge, limit_share, request_capacity
from sims.interview import InterviewTally, ScriptedInterview
from sims.runner import simulate
from sims.scenario import ScenarioError, load
from sims.summarise import summarise
from sims.workload import WorkloadConfig

PREMISES = "interview-day-as-claimed"


@pytest.fixture(scope="module")
def premises():
    scenario, _ = load(PREMISES)
    return scenario, summarise(simulate(scenario))


@pytest.mark.slow
def test_the_premises_spread_the_interviews_over_the_hour(premises):
    scenario, results = premises
    workload = scenario.workload
    starts = np.asarray(workload.start_times(RandomStreams(scenario.seed).stream("x")))
    assert workload.arrival == "uniform" and workload.window == 3600
    assert starts.min() >= 0 and starts.max() < 3600
    # Every quarter of the hour starts its share of interviews, give or take.
    quarters = np.bincount((starts // 900).astype(int), minlength=4)
    assert len(quarters) == 4 and quarters.min() >= 0.2 * len(starts)
    # And the run's requests followed: each quarter of the first hour sent its share.
    sent = results.requests.start
    sent_quarters = np.bincount((sent[sent < 3600] // 900).astype(int), minlength=4)
    assert sent_quarters.min() >= 0.15 * len(sent)


def test_the_premises_get_about_80_percent_through_the_routers_cache(premises):
    scenario, results = premises
    plan = scenario.workload.turn_plan
    assert plan.count("question") / len(plan) == pytest.approx(14 / 17)
    cache = results.cache
    kinds = {row.kind: row for row in cache.kinds}
    assert 0.78 <= cache.all.hit_rate <= 0.82
    assert kinds["question"].hit_rate > 0.95
    assert all(kinds[k].hits == 0 for k in ("small_talk", "follow_up", "evaluation"))
    # The hits are the router's: the requests it answered from its cache, none of which
    # reached an account.
    cached = results.requests.cached
    assert cached.sum() == cache.all.hits == results.summary.cache_hit_rate * len(cached)
    served = sum(row.served_requests for row in results.providers)
    assert served + cached.sum() == results.summary.answered


@pytest.mark.slow
def test_the_premises_meet_the_slos_and_the_burst_misses_them(premises):
    scenario, results = premises
    burst, _ = load("interview-day")
    headline = judge(
        [(READINGS[0], scenario, results), (READINGS[1], burst, summarise(simulate(burst)))]
    )
    claimed, at_once = headline.readings
    assert (claimed["label"], at_once["label"]) == ("as claimed", "all at once")
    assert claimed["meets_slos"] and not at_once["meets_slos"]
    assert claimed["start_spread_s"] == 3600 and at_once["start_spread_s"] == 60
    assert "meet provider_p95<=5s" in reading_sentence(claimed)
    assert "`callboard size interview-day --interviews 500`" in reading_sentence(at_once)


def test_the_share_of_the_request_limit_is_calls_over_what_the_limits_admit(premises):
    scenario, results = premises
    assert request_capacity(scenario) == pytest.approx(2 * 83 / 300)
    calls = sum(row.calls for row in results.providers)
    admitted = 2 * 83 / 300 * results.summary.simulated_s
    assert limit_share(scenario, results) == pytest.approx(calls / admitted)
    unlimited, _ = load("autoscale-coldstart")  # self-hosted: no request limit
    assert math.isnan(request_capacity(unlimited))


@pytest.mark.slow
def test_the_default_run_shows_both_readings(tmp_path, capsys):
    assert main(["simulate", "--quiet", "--no-size", "--out", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert "as claimed" in out and "all at once" in out
    assert "As claimed (interview-day-as-claimed" in out and "All at once (interview-day" in out
    headline = json.loads((tmp_path / "headline.json").read_text())
    assert [r["scenario"] for r in headline["readings"]] == [r.scenario for r in READINGS]
    assert [r["meets_slos"] for r in headline["readings"]] == [True, False]
    assert [r["needed"] for r in headline["readings"]] == [None, None]  # --no-size
    assert "callboard size interview-day --interviews 500` finds" in out
    for name in ("report.md", "report.html"):
        text = (tmp_path / name).read_text()
        assert "As claimed (" in text and "All at once (" in text
    for reading in READINGS:
        results = json.loads((tmp_path / reading.scenario / "results.json").read_text())
        assert results["meta"]["scenario"] == reading.scenario
        assert (tmp_path / reading.scenario / "report.html").exists()


@pytest.mark.slow
def test_the_default_run_as_one_json_line(tmp_path, capsys):
    assert (
        main(["simulate", "--quiet", "--json", "--interviews", "20", "--out", str(tmp_path)]) == 0
    )
    [line] = capsys.readouterr().out.strip().splitlines()
    data = json.loads(line)
    assert [r["label"] for r in data["readings"]] == ["as claimed", "all at once"]
    assert all(r["interviews"] == 20 for r in data["readings"])
    # What each reading takes, sized for real at 20 interviews and checked on fresh seeds.
    for reading in data["readings"]:
        needed = reading["needed"]
        assert needed["group"] == "huggingface" and needed["accounts"] >= 1
        assert needed["fresh_seeds"] == 10 and 0 <= needed["fresh_met"] <= 10
        assert needed["seeds_run"] >= 3
    burst = data["readings"][1]["needed"]["accounts"]
    assert burst >= data["readings"][0]["needed"]["accounts"]  # the burst never needs fewer


def test_the_sentence_says_what_sizing_found(capsys):
    from reports.headline import reading_sentence

    reading = {
        "label": "all at once", "scenario": "interview-day", "interviews": 500,
        "start_spread_s": 60.0, "question_share": 0.47, "cache_hit_rate": 0.31,
        "limit_share": 0.94, "accounts": 2, "meets_slos": False,
        "slos": [{"slo": "success>=99.5%", "value": 0.37, "met": False, "seconds": False}],
        "needed": {
            "group": "huggingface", "range": [1, 64], "accounts": 34, "confidence": 0.95,
            "seeds_run": 4, "fresh_seeds": 10, "fresh_met": 10,
        },
    }  # fmt: skip
    assert reading_sentence(reading).endswith(
        "is 34 huggingface accounts: shown to meet them on at least 95.0% of days, it met "
        "them on 10 of 10 fresh days it never searched."
    )
    reading["needed"] = {**reading["needed"], "accounts": None}
    assert reading_sentence(reading).endswith("no fleet of up to 64 x huggingface meets them.")


# --- repeat_questions -----------------------------------------------------------------


class AnswerAll:
    """A router stand-in that answers every request at once and keeps the requests."""

    def __init__(self) -> None:
        self.requests: list[ChatRequest] = []

    async def complete(
        self, request: ChatRequest, session: InterviewSession, sink: StreamSink | None = None
    ) -> Completion:
        self.requests.append(request)
        return Completion("r", "ok", "m", "p", 1, 1, 0.1, 0.1)


@pytest.mark.parametrize("popularity", [0.0, 1.1, 3.0])
async def test_without_repeats_an_interview_asks_each_question_once(popularity):
    """A plan asking the whole bank, without repeats, asks every question exactly once,
    however skewed the popularity."""
    bank = 12
    workload = WorkloadConfig(
        interviews=1,
        plan=("question",) * bank,
        question_bank=bank,
        question_popularity=popularity,
        repeat_questions=False,
        think_time=Constant(0.0),
    )
    router = AnswerAll()
    for seed in range(5):
        router.requests.clear()
        interview = ScriptedInterview(
            0,
            0.0,
            router,  # type: ignore[arg-type]
            workload,
            RandomStreams(seed).stream("i"),
            workload.question_weights().tolist(),
            InterviewTally(),
        )
        await interview.script()
        asked = sorted(r.messages[-1].content for r in router.requests)
        assert asked == sorted(
            f"Ask interview question #{rank} of the bank." for rank in range(bank)
        )


async def test_with_repeats_an_interview_draws_from_the_whole_bank():
    workload = WorkloadConfig(
        interviews=1, plan=("question",) * 40, question_bank=3, think_time=Constant(0.0)
    )
    router = AnswerAll()
    interview = ScriptedInterview(
        0,
        0.0,
        router,  # type: ignore[arg-type]
        workload,
        RandomStreams(1).stream("i"),
        workload.question_weights().tolist(),
        InterviewTally(),
    )
    await interview.script()
    assert len({r.messages[-1].content for r in router.requests}) == 3  # 40 draws of 3


@pytest.mark.parametrize(
    "override",
    [
        "workload.repeat_questions='no'",
        "workload.repeat_questions=1",
        "workload.question_bank=13",  # the plan asks 14, none twice
    ],
)
def test_bad_repeat_questions_are_refused_naming_the_field(override):
    with pytest.raises(ScenarioError) as error:
        load(PREMISES, [override])
    assert "workload.repeat_questions" in str(error.value)


def test_repeat_questions_must_be_a_bool_in_python_too():
    with pytest.raises(InvalidSetting) as error:
        WorkloadConfig(repeat_questions="yes")  # type: ignore[arg-type]
    assert "workload.repeat_questions" in str(error.value)
