"""The interview workload: when interviews start, what each turn asks, how big it is.

An interview is a plan of turn kinds. ``small_talk`` and ``follow_up`` are
conversational (the whole history goes to the provider), ``question`` asks for
the next question from a finite bank, and ``evaluation`` sends the whole interview
for a verdict. Latency SLOs are about the ``candidate_facing`` turns, the ones a
candidate sits and waits for; the evaluation runs after the candidate has left.

What can repeat across candidates, and so be answered by the exact-match cache, is
only what real interviews share: the system prompt (one role, one prompt) and the
bank's questions. A ``question`` request is standalone (the system prompt and which
question of the bank to ask), so two draws of the same question send the same
request. Every other turn carries the candidate's own words
(:func:`candidate_answer`), text no other candidate sends, so it never repeats: not
even ``small_talk``, whose request is the shared system prompt plus the candidate's
reply to the app's fixed greeting (the greeting is the app's text, not a request).
"""

from __future__ import annotations

import functools

import attrs
import numpy as np

from actors.messages import filler_length
from actors.runtime.distributions import Constant, DistributionSpec, LogNormal
from actors.runtime.errors import require
from actors.runtime.randomness import RandomStream

TURN_KINDS = ("small_talk", "question", "follow_up", "evaluation")
ARRIVALS = ("all_at_once", "uniform", "ramp", "poisson", "daily")

# Share of a day's interviews starting in each hour (office hours, a lunch dip).
OFFICE_DAY = (
    0.2, 0.1, 0.1, 0.1, 0.2, 0.4, 1.0, 2.5, 5.0, 7.5, 8.5, 8.0,
    6.0, 7.0, 8.5, 8.5, 7.5, 6.0, 4.0, 3.0, 2.5, 2.0, 1.0, 0.5,
)  # fmt: skip


def candidate_answer(interview: int, turn: int, chars: int) -> tuple[str, int]:
    """What candidate ``interview`` says on turn ``turn``: ``chars`` characters, theirs alone,
    as (its head, the filler characters that follow it: a :class:`ChatMessage`'s padding).

    The ``[interview:turn]`` tag at its head makes each answer distinct text, as real
    answers are, so a request that carries one never hits the cache by accident; the
    rest is shared filler, counted and never held. An answer is never shorter than its
    tag (a few characters longer, once in about a million answers).
    """
    head = f"[{interview}:{turn}] "
    return head, filler_length(chars - len(head))


def _check(field: str, ok: bool, value: object, allowed: str) -> None:
    require(f"workload.{field}", ok, value, allowed)


@functools.cache
def default_plan(turns: int) -> tuple[str, ...]:
    """Small talk, then questions and follow-ups in turn, then the evaluation (one tuple per
    length, shared by every interview that plays it)."""
    if turns == 1:
        return ("question",)
    middle = tuple("question" if i % 2 == 0 else "follow_up" for i in range(turns - 2))
    return ("small_talk", *middle, "evaluation")


@attrs.frozen
class WorkloadConfig:
    """How many interviews, when they start, and what each one sends.

    ``arrival``: ``all_at_once`` (every interview starts at 0), ``uniform``
    (each at a uniform random time in ``[0, window)``), ``ramp`` (evenly
    spaced over ``window``), ``poisson`` (at ``rate_per_minute``), or ``daily``
    (over 24 h following ``daily_curve``, hourly weights).
    """

    interviews: int = 500
    arrival: str = "all_at_once"
    window: float = 0.0
    rate_per_minute: float = 10.0
    daily_curve: tuple[float, ...] = attrs.field(default=OFFICE_DAY, converter=tuple)
    turns: int = 17
    plan: tuple[str, ...] = ()
    think_time: DistributionSpec = LogNormal.from_median_p95(20.0, 60.0)
    system_prompt_chars: int = 1500
    #: Each candidate answer's length; every answer is distinct text (never a cache hit).
    answer_chars: DistributionSpec = LogNormal.from_median_p95(400.0, 1500.0)
    small_talk_tokens: DistributionSpec = Constant(60)
    question_tokens: DistributionSpec = Constant(80)
    follow_up_tokens: DistributionSpec = LogNormal.from_median_p95(80.0, 200.0)
    evaluation_tokens: DistributionSpec = LogNormal.from_median_p95(500.0, 900.0)
    #: Questions in the bank: the only requests that repeat across candidates.
    question_bank: int = 200
    question_popularity: float = 1.1
    #: Whether one interview may draw a question it already asked (each draw takes the
    #: whole bank). ``false`` models a script: an interview asks each question at most
    #: once, so its repeats are only across candidates.
    repeat_questions: bool = True
    #: Whether answers are streamed (an interview's voice or chat shows text as it comes):
    #: a streamed answer must start within ``timeouts.first_byte``, a whole one be done.
    stream: bool = True
    max_tokens: int | None = None
    candidate_facing: tuple[str, ...] = ("small_talk", "question", "follow_up")
    #: The priority of an interview's first turn (0 like every other turn). Under the line's
    #: "priority" discipline (the default), 1 makes new interviews wait behind those under way.
    first_turn_priority: int = 0

    def __attrs_post_init__(self) -> None:
        _check("interviews", self.interviews >= 1, self.interviews, ">= 1")
        _check("arrival", self.arrival in ARRIVALS, self.arrival, " | ".join(ARRIVALS))
        _check("window", self.window >= 0, self.window, ">= 0 seconds")
        if self.arrival in ("uniform", "ramp"):
            _check("window", self.window > 0, self.window, f"> 0 seconds with {self.arrival!r}")
        _check("rate_per_minute", self.rate_per_minute > 0, self.rate_per_minute, "> 0")
        _check(
            "daily_curve",
            len(self.daily_curve) == 24
            and min(self.daily_curve) >= 0
            and sum(self.daily_curve) > 0,
            self.daily_curve,
            "24 hourly weights >= 0, not all 0",
        )
        _check("turns", self.turns >= 1, self.turns, ">= 1")
        bad = [k for k in self.plan if k not in TURN_KINDS]
        _check("plan", not bad, bad, " | ".join(TURN_KINDS))
        bad = [k for k in self.candidate_facing if k not in TURN_KINDS]
        _check("candidate_facing", not bad, bad, " | ".join(TURN_KINDS))
        _check(
            "system_prompt_chars", self.system_prompt_chars >= 0, self.system_prompt_chars, ">= 0"
        )
        _check("question_bank", self.question_bank >= 1, self.question_bank, ">= 1 questions")
        _check(
            "question_popularity",
            self.question_popularity >= 0,
            self.question_popularity,
            ">= 0 (0: every question equally likely)",
        )
        _check(
            "repeat_questions",
            self.repeat_questions in (True, False),
            self.repeat_questions,
            "true | false",
        )
        asked = self.turn_plan.count("question")
        _check(
            "repeat_questions",
            self.repeat_questions or asked <= self.question_bank,
            self.repeat_questions,
            f"true while the plan asks {asked} questions of a bank of {self.question_bank}",
        )
        _check(
            "first_turn_priority",
            self.first_turn_priority >= 0,
            self.first_turn_priority,
            "an integer >= 0 (0 first)",
        )
        _check(
            "max_tokens",
            self.max_tokens is None or self.max_tokens >= 1,
            self.max_tokens,
            ">= 1, or unset",
        )

    @property
    def turn_plan(self) -> tuple[str, ...]:
        return self.plan or default_plan(self.turns)

    def output_tokens(self, kind: str) -> DistributionSpec:
        return getattr(self, f"{kind}_tokens")

    def start_times(self, stream: RandomStream) -> list[float]:
        """When each interview starts, in interview order."""
        n = self.interviews
        gen = stream.generator
        match self.arrival:
            case "all_at_once":
                return [0.0] * n
            case "uniform":
                return (gen.random(n) * self.window).tolist()
            case "ramp":
                return [self.window * i / n for i in range(n)]
            case "poisson":
                gaps = gen.exponential(60.0 / self.rate_per_minute, n)
                return np.cumsum(gaps).tolist()
            case _:
                weights = np.asarray(self.daily_curve, dtype=float)
                hours = gen.choice(24, size=n, p=weights / weights.sum())
                return np.sort((hours + gen.random(n)) * 3600.0).tolist()

    def question_weights(self) -> np.ndarray:
        """Zipf-like popularity of the bank's questions (rank 1 most popular)."""
        ranks = np.arange(1, self.question_bank + 1, dtype=float)
        weights = ranks**-self.question_popularity
        return np.cumsum(weights / weights.sum())

    @property
    def expected_requests(self) -> int:
        return self.interviews * len(self.turn_plan)
