"""Each provider's state as probes read it (engine/serve/status.py), on virtual time: what
makes one unavailable (no answer to expect) and what only busy (it answers in turn)."""

from __future__ import annotations

import trio

from actors.limits import LimitSpec
from actors.messages import ChatMessage, ChatRequest
from actors.provider import Disable
from actors.runtime import clock
from engine.routing.fleet import open_fleet
from engine.serve.status import ProviderState, fleet_status, provider_state
from tests.conftest import virtual_account

ASK = ChatRequest(messages=(ChatMessage("user", "hi"),), max_tokens=5)


async def test_each_state_names_why_and_when_it_ends_if_a_timer_says(virtual_clock):
    names = ["idle", "limited", "cooling", "full", "disabled", "quarantined", "unreachable"]
    accounts = [
        virtual_account(name, **options)[0]
        for name, options in [
            ("idle", {}),
            ("limited", {"limits": (LimitSpec("rpm", "requests", 1, 60.0),)}),
            ("cooling", {}),
            ("full", {"max_concurrency": 1, "queue_limit": 0}),
            ("disabled", {}),
            ("quarantined", {}),
            ("unreachable", {}),
        ]
    ]
    async with open_fleet(accounts) as fleet, trio.open_nursery() as nursery:
        await fleet.provider("limited").call(ASK, "r-1", 10.0)  # its one request a minute
        fleet.provider("cooling").cool_down(clock.now() + 20.0)  # a 429's Retry-After
        nursery.start_soon(fleet.provider("full").call, ASK, "r-2", 10.0)  # holds its slot
        fleet.provider("disabled").tell(Disable("key revoked"))
        fleet.provider("quarantined").breaker.force_open(clock.now(), "3 consecutive failures")
        fleet.health.reach("unreachable", "ConnectError (10.0.0.9:443): Connection refused", 0)
        await clock.sleep(0.5)
        now = clock.now()
        states = {
            name: provider_state(fleet.provider(name), fleet.health.unreachable.get(name), now)
            for name in names
        }
    assert {name: s.state for name, s in states.items()} == {
        "idle": "ok",
        "limited": "busy",
        "cooling": "busy",
        "full": "busy",
        "disabled": "unavailable",
        "quarantined": "unavailable",
        "unreachable": "unavailable",
    }
    assert states["idle"] == ProviderState("ok")
    assert states["limited"].reasons[0].startswith("rate limit: admits a request in")
    assert states["cooling"].reasons == ("cooling down after a 429: 19.5 s",)
    assert states["full"].reasons == ("every slot taken: 1 in use, 0 queued",)
    assert states["disabled"] == ProviderState("unavailable", ("disabled: key revoked",), None)
    assert states["quarantined"] == ProviderState(
        "unavailable", ("breaker open: quarantined for 29.5 s more",), 29.5
    )
    assert states["unreachable"] == ProviderState(
        "unavailable", ("unreachable: ConnectError (10.0.0.9:443): Connection refused",), None
    )


def test_the_fleet_is_down_only_when_no_provider_is_available():
    ok, busy, gone = ProviderState("ok"), ProviderState("busy"), ProviderState("unavailable")
    assert fleet_status([ok, ok]) == "ok"
    assert fleet_status([ok, busy]) == fleet_status([ok, gone]) == "degraded"
    assert fleet_status([busy, busy]) == fleet_status([busy, gone]) == "saturated"
    assert fleet_status([gone, gone]) == "down"
