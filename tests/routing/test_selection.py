"""Selection: which providers may take a request now (engine.routing.selection)."""

from __future__ import annotations

import math

import attrs

from actors.messages import ChatMessage, ChatRequest
from actors.provider import ProviderSpec
from engine.routing.policies import PolicyConfig
from engine.routing.selection import by_tier, eligible, needs_strong


@attrs.define(eq=False)
class Stub:
    """A provider as selection sees it: its spec, and how long until it could take a request."""

    spec: ProviderSpec
    wait: float = 0.0

    def wait_before(self, request: ChatRequest, now: float) -> float:
        return self.wait


def stub(name: str, model: str = "default", tier: str = "strong", wait: float = 0.0) -> Stub:
    return Stub(ProviderSpec(name, model=model, tier=tier), wait)


def ask(model: str = "auto", kind: str = "chat") -> ChatRequest:
    return ChatRequest(messages=(ChatMessage("user", "hi"),), model=model, kind=kind)


def names(providers) -> list[str]:
    return [p.spec.name for p in providers]


def test_a_request_for_a_model_goes_only_to_that_models_providers():
    fleet = [stub("a", model="m1"), stub("b", model="m2"), stub("c", model="m1")]
    ready, soonest = eligible(fleet, ask("m1"), 0.0, {}, None)
    assert names(ready) == ["a", "c"]
    assert soonest == math.inf
    assert names(eligible(fleet, ask("auto"), 0.0, {}, None)[0]) == ["a", "b", "c"]


def test_strong_only_never_picks_a_light_provider():
    fleet = [stub("light", tier="light"), stub("strong")]
    tiers = PolicyConfig(tiers="strong_only")
    for kind in ("small_talk", "question", "reasoning"):
        assert names(eligible(fleet, ask(kind=kind), 0.0, {}, tiers)[0]) == ["strong"]
    only_light = [stub("light", tier="light")]
    assert eligible(only_light, ask(kind="small_talk"), 0.0, {}, tiers) == ([], math.inf)


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
    ready, soonest = eligible(fleet, ask(), 4.0, avoid, None)
    assert ready == []
    assert soonest == 2.0  # b frees up before a's avoidance ends
    ready, soonest = eligible(fleet[:1], ask(), 4.0, avoid, None)
    assert ready == [] and soonest == 6.0
    assert names(eligible(fleet, ask(), 10.0, avoid, None)[0]) == ["a"]


def test_the_soonest_wait_is_the_shortest_over_busy_providers():
    fleet = [stub("a", wait=3.0), stub("b", wait=1.5), stub("c", wait=0.0)]
    ready, soonest = eligible(fleet, ask(), 0.0, {}, None)
    assert names(ready) == ["c"] and soonest == 1.5
