"""Selection: which providers may take a request now, in one linear pass over the fleet.

The router and hedging both choose from what these functions return; a policy
(:mod:`engine.routing.policies`) then picks one of them.
"""

from __future__ import annotations

import math
from collections.abc import Container, Sequence
from typing import TYPE_CHECKING

import attrs

from actors.messages import ChatRequest
from actors.provider import UNTIL_FREED

if TYPE_CHECKING:
    from actors.provider import Provider
    from engine.routing.policies import PolicyConfig


def needs_strong(request: ChatRequest, tiers: PolicyConfig | None) -> bool:
    """Whether only a strong model may answer: always under ``strong_only``, and for
    every turn kind but the light ones under ``by_kind`` (a reasoning turn waits for a
    strong model rather than get a weaker answer)."""
    if tiers is None or tiers.tiers == "any":
        return False
    return tiers.tiers == "strong_only" or request.kind not in tiers.light_kinds


def by_tier(
    candidates: list[Provider], request: ChatRequest, tiers: PolicyConfig | None
) -> list[Provider]:
    """Light turns go to light models first, and to strong ones only when none is free."""
    if tiers is None or tiers.tiers != "by_kind" or request.kind not in tiers.light_kinds:
        return candidates
    light = [p for p in candidates if p.spec.tier == "light"]
    return light or candidates


def reachable_first(candidates: list[Provider], unreachable: Container[str]) -> list[Provider]:
    """The candidates no failed connection marked ``unreachable``, or all of them when each
    is marked: such an account is not chosen ahead of one that answers, yet still gets
    requests that nothing else can take, and a ping that reaches it clears the mark."""
    reachable = [p for p in candidates if p.spec.name not in unreachable]
    return reachable or candidates


@attrs.define(slots=True)
class Eligible:
    """What one pass over the fleet found for a request."""

    #: Providers that can take it now.
    ready: list[Provider]
    #: Seconds until the soonest other provider could take it by a timer (a refill, a
    #: window, a cool-down or quarantine ending) and still answer in time; inf if none.
    soonest: float
    #: Whether a provider would take it once a call of its ends (every slot busy, or
    #: its half-open trial out): the router's line wakes on that, not on a timer.
    busy: bool
    #: Seconds until any provider could take it, in time or not (a Retry-After hint).
    retry_after: float


@attrs.define(slots=True)
class Looking:
    """What the looks at accounts found for one request so far: the one place an account's
    wait for it is booked, by the pass over every account and by the board's look."""

    request: ChatRequest
    now: float
    #: Accounts not to try before a time (their name -> until when: a 429's Retry-After).
    avoid: dict[str, float]
    #: Seconds to the request's deadline: an account that cannot answer by then is none.
    time_left: float
    soonest: float = math.inf
    busy: bool = False
    hint: float = math.inf

    def ready(self, provider: Provider) -> bool:
        """Book ``provider``'s wait (:class:`Eligible`'s figures); whether it can take the
        request now."""
        now = self.now
        wait = provider.wait_before(self.request, now)
        if self.avoid:
            until = self.avoid.get(provider.spec.name)
            if until is not None and until - now > max(wait, 0.0):
                wait = until - now
        if wait == UNTIL_FREED:
            if provider.typical_service < self.time_left:
                self.busy = True
            return False
        if wait < self.hint:
            self.hint = wait
        if wait + provider.typical_service >= self.time_left:
            return False
        if wait <= 0:
            return True
        if wait < self.soonest:
            self.soonest = wait
        return False


def eligible(
    providers: Sequence[Provider],
    request: ChatRequest,
    now: float,
    avoid: dict[str, float],
    tiers: PolicyConfig | None,
    time_left: float = math.inf,
) -> Eligible:
    """Providers that can take ``request`` now, and what frees the others.

    A provider serves another model than the one asked for (unless it is ``auto``), a
    light provider when only a strong one may answer, one whose context window is too
    small or whose model lacks a capability the request needs, or a provider in ``avoid`` (its
    name -> until when, e.g. a 429's Retry-After) before that time, is not eligible;
    nor is one that could not plausibly answer within ``time_left`` (the request's
    deadline): its wait plus its typical service time must fit.
    """
    found: list[Provider] = []
    looking = Looking(request, now, avoid, time_left)
    strong_only = needs_strong(request, tiers)
    model = None if request.model == "auto" else request.model
    needs = frozenset(need for need, _ in request.needs) if request.needs else None
    size = request.prompt_tokens + (request.max_tokens or 0)
    for provider in providers:
        spec = provider.spec
        if model is not None and spec.model != model:
            continue
        if strong_only and spec.tier != "strong":
            continue
        if size > spec.context_window or (needs is not None and not needs <= spec.capabilities):
            continue
        if looking.ready(provider):
            found.append(provider)
    return Eligible(found, looking.soonest, looking.busy, looking.hint)
