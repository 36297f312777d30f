"""The router's one waiting line, whichever its discipline, and a request's pursuit."""

from __future__ import annotations

import pytest

from actors.errors import AttemptTimeout, RateLimited
from actors.messages import ChatMessage, ChatRequest
from engine.routing.decision_log import DecisionLog
from engine.routing.fleet import open_fleet
from engine.routing.pursuit import Pursuit
from engine.routing.shedding import PriorityLine
from engine.routing.waiting import FirstComeFirstServed
from tests.routing.test_overload import config, flood, saturated_fleet


def test_a_failed_attempt_is_booked_in_the_pursuit_a_429_avoided_until_its_retry_after():
    pursuit = Pursuit(ChatRequest((ChatMessage("user", "hi"),)), "r-1", None, 0.0, 60.0, 1)
    limited, slow = RateLimited("a", "rpm", 7.0), AttemptTimeout("b", 5.0)
    pursuit.attempt_failed(limited, "a", 3.0)
    pursuit.attempt_failed(slow, "b", 4.0)
    # The 429's account comes back after its Retry-After; the timed-out one is failed.
    assert pursuit.avoid == {"a": 10.0} and pursuit.failed == {"b"}
    assert pursuit.errors == [limited, slow]


@pytest.mark.parametrize(
    ("discipline", "line"), [("fifo", FirstComeFirstServed), ("priority", PriorityLine)]
)
async def test_either_discipline_refuses_past_its_bound_and_the_log_says_so(
    virtual_clock, discipline, line
):
    # 4 slots of 1 s and room for 2 in line: of 8 requests at once, 2 are refused.
    async with open_fleet(saturated_fleet(), config(discipline, max_waiting=2)) as fleet:
        assert isinstance(fleet.router.line, line)
        fleet.router.log = log = DecisionLog(keep=True)
        outcomes, _ = await flood(fleet, [(f"r{i}", 0) for i in range(8)], gap=0.0)
        assert fleet.router.waiting == 0
    assert sorted(o[4] for o in outcomes) == ["ok"] * 6 + ["overloaded"] * 2
    refused = {rid for _, rid, action, _ in log.events if action == "overloaded"}
    assert len(refused) == 2
    for rid in refused:
        ending = [action for _, r, action, _ in log.events if r == rid][-2:]
        assert ending == ["overloaded", "gave_up"]
