"""Selection: which providers may take a request now (engine.routing.selection)."""

from __future__ import annotations

import math

import attrs

from actors.messages import ChatMessage, ChatRequest
from actors.provider import UNTIL_FREED, ProviderSpec
from engine.routing.policies import PolicyConfig
from engine.routing.selection import by_tier, eligible, needs_strong


@attrs.define(eq=False)
class Stub:
    """A provider as selection sees it: its spec, and how long until it could take a request."""

    spec: ProviderSpec
    wait: float = 0.0
    typical_service: float = 0.0

    def wait_before(self, request: ChatRequest, now: float) -> float:
        return self.wait


def stub(
    name: str, model: str = "default", tier: str = "strong", wait: float = 0.0, service: float = 0.0
) -> Stub:
    return Stub(ProviderSpec(name, model=model, tier=tier), wait, service)


def ask(model: str = "auto", kind: str = "chat") -> ChatRequest:
    return ChatRequest(messages=(ChatMessage("user", "hi"),), model=model, kind=kind)


def names(providers) -> list[str]:
    return [p.spec.name for p in providers]


def test_a_request_for_a_model_goes_only_to_that_models_providers():
    fleet = [stub("a", model="m1"), stub("b", model="m2"), stub("c", model="m1")]
    found = eligible(fleet, ask("m1"), 0.0, {}, None)
    assert names(found.ready) == ["a", "c"]
    assert found.soonest == math.inf
    assert names(eligible(fleet, ask("auto"), 0.0, {}, None).ready) == ["a", "b", "c"]


def test_strong_only_never_picks_a_light_provider():
    fleet = [stub("light", tier="light"), stub("strong")]
    tiers = PolicyConfig(tiers="strong_only")
    for kind in ("small_talk", "question", "reasoning"):
        assert names(eligible(fleet, ask(kind=kind), 0.0, {}, tiers).ready) == ["strong"]
    only_light = [stub("light", tier="light")]
    found = eligible(only_light, ask(kind="small_talk"), 0.0, {}, tiers)
    assert (found.ready, found.soonest, found.busy) == ([], math.inf, False)


def test_by_kind_sends_light_turns_to_light_providers_first():
    tiers = PolicyConfig(tiers="by_kind")
    light, strong = stub("light", tier="light"), stub("strong")
    assert not needs_strong(ask(kind="small_talk"), tiers)
    assert needs_strong(ask(kind="reasoning"), tiers)
    assert names(by_tier([strong, light], ask(kind="small_talk"), tiers)) == ["light"]
    assert names(by_tier([strong], ask(kind="small_talk"), tiers)) == ["strong"]
    assert names(by_tier([strong, light], ask(kind="reasoning"), tiers)) == ["strong", "light"]
    assert names(by_tier([strong, light], ask(kind="small_talk"), None)) == ["strong", "light"]


def test_any_tier_mode_needs_no_strong_model():
    assert not needs_strong(ask(kind="reasoning"), None)
    assert not needs_strong(ask(kind="reasoning"), PolicyConfig(tiers="any"))


def test_a_provider_avoided_until_t_is_not_eligible_before_t():
    fleet = [stub("a"), stub("b", wait=2.0)]
    avoid = {"a": 10.0}
    found = eligible(fleet, ask(), 4.0, avoid, None)
    assert found.ready == []
    assert found.soonest == 2.0  # b frees up before a's avoidance ends
    found = eligible(fleet[:1], ask(), 4.0, avoid, None)
    assert found.ready == [] and found.soonest == 6.0
    assert names(eligible(fleet, ask(), 10.0, avoid, None).ready) == ["a"]


def test_the_soonest_wait_is_the_shortest_over_busy_providers():
    fleet = [stub("a", wait=3.0), stub("b", wait=1.5), stub("c", wait=0.0)]
    found = eligible(fleet, ask(), 0.0, {}, None)
    assert names(found.ready) == ["c"] and found.soonest == 1.5


def test_a_provider_busy_until_a_call_ends_has_no_timer_but_is_waited_for():
    fleet = [stub("a", wait=UNTIL_FREED, service=1.0), stub("b", wait=30.0)]
    found = eligible(fleet, ask(), 0.0, {}, None)
    assert found.ready == [] and found.busy and found.soonest == 30.0


def test_a_provider_that_could_not_answer_before_the_deadline_is_not_eligible():
    """Its wait plus its typical service time must fit in the time left; the Retry-After
    hint still says when it frees up."""
    fleet = [stub("slow", service=3.0), stub("late", wait=1.5, service=1.0)]
    found = eligible(fleet, ask(), 0.0, {}, None, time_left=2.0)
    assert found.ready == [] and found.soonest == math.inf and found.retry_after == 0.0
    found = eligible(fleet, ask(), 0.0, {}, None, time_left=2.8)
    assert found.ready == [] and found.soonest == 1.5
    assert names(eligible(fleet, ask(), 0.0, {}, None, time_left=10.0).ready) == ["slow"]
    busy = [stub("busy", wait=UNTIL_FREED, service=3.0)]
    assert not eligible(busy, ask(), 0.0, {}, None, time_left=2.0).busy
