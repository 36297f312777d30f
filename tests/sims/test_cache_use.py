"""Cache hits that the workload earns, not invents: what repeats, and why misses miss.

Candidate answers are distinct text, so only the bank's questions can repeat; the
question hit rate then follows from the bank's popularity and the number of draws.
Each miss's cause is checked on rows small enough to work out by hand.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from actors.messages import ChatMessage
from reports import summary
from sims.cache_use import ANSWERED, CAUSES, FAILED, HIT, REJECTED, CacheUse, miss_causes
from sims.runner import simulate
from sims.scenario import load
from sims.summarise import summarise
from sims.workload import candidate_answer

answers = st.tuples(
    st.integers(0, 100_000), st.integers(0, 200), st.integers(0, 5_000)
)  # (interview, turn, chars)


@given(answers, answers)
def test_two_candidates_answers_never_collide(one, other):
    if one[:2] != other[:2]:
        assert candidate_answer(*one) != candidate_answer(*other)


@given(answers)
def test_an_answer_keeps_its_drawn_length(answer):
    interview, turn, chars = answer
    head, padding = candidate_answer(interview, turn, chars)
    tag = f"[{interview}:{turn}] "
    text = ChatMessage("user", head, padding).text
    assert head == tag and len(text) == max(chars, len(tag))


def test_each_miss_gets_its_cause():
    # (key, start, end, ending) in start order, with the cause each miss must get.
    rows = [
        (1, 0.0, 5.0, FAILED, "first"),
        (1, 1.0, 3.0, ANSWERED, "in_flight"),  # row 0 still waiting at 1.0
        (1, 4.0, 4.0, HIT, None),
        (2, 2.0, 2.5, FAILED, "first"),
        (2, 3.0, 6.0, ANSWERED, "after_failure"),  # row 3 failed at 2.5
        (2, 7.0, 7.0, HIT, None),
        (3, 1.0, 2.0, ANSWERED, "first"),
        (3, 8.0, 9.0, ANSWERED, "answered_earlier"),  # the entry had gone
        (4, 0.0, 0.0, REJECTED, None),  # never looked the cache up
        (4, 1.0, 2.0, FAILED, "first"),
        (1, 5.0, 6.0, FAILED, "answered_earlier"),  # row 1 answered at 3.0
        (5, 1.0, 10.0, ANSWERED, "first"),
        (5, 10.0, 11.0, ANSWERED, "in_flight"),  # answered at the same instant: not yet in
        (6, 1.0, 2.0, FAILED, "first"),
        (6, 1.5, 9.0, ANSWERED, "in_flight"),
        (6, 3.0, 4.0, ANSWERED, "after_failure"),  # row 13 failed, row 14 still waiting
    ]
    key, start, end, ending, expected = zip(*rows, strict=True)
    causes = miss_causes(
        np.array(key, dtype=np.uint64),
        np.array(start),
        np.array(end),
        np.array(ending, dtype=np.int8),
    )
    assert [CAUSES[c] if c >= 0 else None for c in causes] == list(expected)


@pytest.mark.slow
@pytest.mark.parametrize("seed", [1, 2, 3])
def test_only_the_bank_repeats_and_as_often_as_theory_says(seed):
    """Interviews one after another (no identical request in flight), nothing fails: a
    question misses exactly when its question had not been drawn before, so the hit rate
    is 1 - E[distinct questions] / draws; every other turn never hits."""
    interviews, bank = 100, 200
    scenario, _ = load(
        "reference",
        [
            f"workload.interviews={interviews}",
            "workload.arrival='ramp'",
            f"workload.window={interviews * 300}",
            "workload.think_time=1",
            f"workload.question_bank={bank}",
            "cache.enabled=true",
            f"seed={seed}",
        ],
    )
    results = summarise(simulate(scenario))
    assert results.summary.success_rate == 1.0
    kinds = {row.kind: row for row in results.cache.kinds}
    assert set(kinds) == {"small_talk", "question", "follow_up", "evaluation"}
    for kind in ("small_talk", "follow_up", "evaluation"):
        assert kinds[kind].hits == 0 and kinds[kind].first == kinds[kind].lookups
    question = kinds["question"]
    draws = question.lookups
    assert draws == interviews * scenario.workload.turn_plan.count("question")
    assert question.first + question.hits == draws  # no other cause of a miss
    cdf = scenario.workload.question_weights()
    p = np.diff(cdf, prepend=0.0)
    seen = 1 - (1 - p) ** draws  # chance each question is drawn at least once
    expected = 1 - seen.sum() / draws
    # Occupancy indicators are negatively correlated: the sum of their variances bounds
    # the variance of the number of distinct questions.
    tolerance = 4 * math.sqrt((seen * (1 - seen)).sum()) / draws
    assert abs(question.hit_rate - expected) <= tolerance, (question, expected, tolerance)


def test_misses_after_failures_on_a_hand_checked_run():
    """Four interviews 100 s apart, each: small talk, the bank's only question, the
    evaluation. The only account is down for the first 150 s, so interviews 0 and 1 fail
    every turn. Question: interview 0 misses first, 1 and 2 miss after its failure (2 is
    answered), 3 hits. Small talk and evaluation carry the candidate's words: 4 first misses
    each."""
    scenario, _ = load(
        "reference",
        [
            "workload.interviews=4",
            "workload.arrival='ramp'",
            "workload.window=400",
            "workload.plan=['small_talk', 'question', 'evaluation']",
            "workload.think_time=0",
            "workload.question_bank=1",
            "accounts.0.count=1",
            "cache.enabled=true",
            "faults=[{target='server-1', kind='outage', start=0, end=150}]",
        ],
    )
    results = summarise(simulate(scenario))
    assert results.summary.answered == 6
    assert summary.cache_rows(results) == [
        ("small_talk", "4", "0", "0.0%", "4", "0", "0", "0"),
        ("question", "4", "1", "25.0%", "1", "2", "0", "0"),
        ("evaluation", "4", "0", "0.0%", "4", "0", "0", "0"),
        ("all", "12", "1", "8.3%", "9", "2", "0", "0"),
    ]
    assert summary.cache_failure_misses(results) == "2 of 11 misses (18.2%)"
    # The ledger's hits are the router's: one record of the truth.
    kinds = results.meta.kinds
    cached, kind = results.requests.cached, results.requests.kind
    for row in results.cache.kinds:
        assert row.hits == int(cached[kind == kinds.index(row.kind)].sum())


def test_without_a_cache_the_report_says_so():
    scenario, _ = load("reference", ["workload.interviews=2", "workload.turns=3"])
    results = summarise(simulate(scenario))
    assert results.cache == CacheUse(enabled=False)
    labels = [label for label, _ in summary.summary_rows(results)]
    assert "Cache misses due to failures" not in labels
