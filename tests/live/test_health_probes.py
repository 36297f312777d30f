"""Health a load balancer can trust, over loopback: ``/health`` names each provider's state
and why, ``/health/ready`` is 503 while no provider is available (a quarantine, a disabled
key, no connection), ``/health/live`` is 200 while the process serves. A provider no
connection reaches is unavailable from its first failed connect until an exchange with it
gets an HTTP answer: a request's attempt, or a reachability check."""

from __future__ import annotations

from typing import Any

import httpx
import trio

from engine.serve.app import RouterApp
from engine.serve.live_router import open_router
from engine.serve.metrics import LiveMetrics
from tests.live.conftest import closed_port, live_config, start_mock, start_router

CHAT = {"messages": [{"role": "user", "content": "Hello?"}], "max_tokens": 5}
NOWHERE = "http://nowhere.invalid/v1"  # .invalid never resolves (RFC 2606)


def config(providers: list[dict[str, Any]], **tables: Any):
    """Providers in the order given (priority policy), a breaker that stays out of the way."""
    return live_config(
        [],
        providers=providers,
        routing={"policy": "priority"},
        breaker={"failure_threshold": 100},
        **tables,
    )


def refusing(name: str, sock) -> dict[str, Any]:
    return {"name": name, "base_url": f"http://127.0.0.1:{sock.getsockname()[1]}/v1"}


Probes = tuple[httpx.Response, httpx.Response, httpx.Response]


async def probes(http: httpx.AsyncClient) -> Probes:
    """/health, /health/ready and /health/live, in that order."""
    return (
        await http.get("/health"),
        await http.get("/health/ready"),
        await http.get("/health/live"),
    )


async def until(http: httpx.AsyncClient, ready: bool) -> httpx.Response:
    """Poll /health/ready until it says ``ready`` (a generous bound: checks are timers)."""
    with trio.fail_after(30):
        while True:
            reply = await http.get("/health/ready")
            if (reply.status_code == 200) == ready:
                return reply
            await trio.sleep(0.02)


async def test_a_healthy_fleet_is_ok_ready_and_live(nursery):
    mock = await start_mock(nursery, "m")
    url = await start_router(nursery, live_config([mock]))
    async with httpx.AsyncClient(base_url=url, timeout=10) as http:
        assert (await http.post("/v1/chat/completions", json=CHAT)).status_code == 200
        health, ready, live = await probes(http)
    assert health.status_code == 200 and health.json()["status"] == "ok"
    assert health.json()["providers"] == {"m": {"state": "ok", "reasons": []}}
    assert (health.json()["providers_up"], health.json()["providers_available"]) == (1, 1)
    assert ready.status_code == 200 and ready.json() == {"ready": True, "providers_up": 1}
    assert live.status_code == 200 and live.json() == {"status": "live", "draining": False}


async def test_unreachable_providers_are_down_after_one_failed_request_until_one_answers(
    nursery,
):
    """The tester's fleet: one provider on a closed port, one on a host that does not
    exist. After one 502 the router is down and not ready (no Retry-After: no timer
    says when a host comes back); once the port listens, a request reaches it again."""
    with closed_port() as sock:
        fleet = config([refusing("closed", sock), {"name": "nowhere", "base_url": NOWHERE}])
        url = await start_router(nursery, fleet)
        async with httpx.AsyncClient(base_url=url, timeout=30) as http:
            failed = await http.post("/v1/chat/completions", json=CHAT)
            health, ready, live = await probes(http)
        port = sock.getsockname()[1]
    assert failed.status_code == 502
    codes = {(a["provider"], a["code"]) for a in failed.json()["error"]["attempts"]}
    assert codes == {("closed", "unreachable"), ("nowhere", "unreachable")}

    assert health.status_code == 503 and health.json()["status"] == "down"
    providers = health.json()["providers"]
    assert {name: p["state"] for name, p in providers.items()} == {
        "closed": "unavailable",
        "nowhere": "unavailable",
    }
    assert providers["closed"]["reasons"] == [
        f"unreachable: ConnectError (127.0.0.1:{port}): Connection refused"
    ]
    (dns,) = providers["nowhere"]["reasons"]
    assert dns.startswith("unreachable: ConnectError (nowhere.invalid:80)")
    assert ready.status_code == 503 and "retry-after" not in ready.headers
    assert ready.json() == {
        "ready": False,
        "reason": "no provider is available",
        "providers": {name: p["reasons"] for name, p in providers.items()},
    }
    assert live.status_code == 200

    await start_mock(nursery, "closed", port=port)
    async with httpx.AsyncClient(base_url=url, timeout=30) as http:
        answered = await http.post("/v1/chat/completions", json=CHAT)
        health, ready, _ = await probes(http)
    assert answered.status_code == 200 and answered.json()["provider"] == "closed"
    assert health.status_code == 200 and health.json()["status"] == "degraded"
    assert health.json()["providers"]["closed"] == {"state": "ok", "reasons": []}
    assert health.json()["providers"]["nowhere"]["state"] == "unavailable"
    assert ready.status_code == 200 and ready.json()["providers_up"] == 1


async def test_a_mixed_fleet_is_degraded_naming_the_unreachable_provider(nursery):
    good = await start_mock(nursery, "good")
    with closed_port() as sock:
        fleet = config([refusing("dead", sock), {"name": "good", "base_url": f"{good.url}/v1"}])
        url = await start_router(nursery, fleet)
        async with httpx.AsyncClient(base_url=url, timeout=30) as http:
            first = (await http.post("/v1/chat/completions", json=CHAT)).json()
            second = (await http.post("/v1/chat/completions", json=CHAT)).json()
            health, ready, _ = await probes(http)
            status = (await http.get("/api/models/health")).json()["providers"]
        port = sock.getsockname()[1]
    assert (first["provider"], first["attempts"]) == ("good", 2)
    # Marked unreachable, "dead" is passed over although the policy prefers it.
    assert (second["provider"], second["attempts"]) == ("good", 1)
    assert health.status_code == 200 and health.json()["status"] == "degraded"
    assert health.json()["providers"] == {
        "dead": {
            "state": "unavailable",
            "reasons": [f"unreachable: ConnectError (127.0.0.1:{port}): Connection refused"],
        },
        "good": {"state": "ok", "reasons": []},
    }
    assert (health.json()["providers_up"], health.json()["providers_available"]) == (1, 1)
    assert ready.status_code == 200
    dead = next(p for p in status if p["name"] == "dead")
    assert (dead["available"], dead["state"], dead["last_error"]) == (
        False,
        "unavailable",
        "unreachable",
    )


async def test_reach_checks_find_a_dead_provider_without_traffic_and_see_it_come_back(nursery):
    with closed_port() as sock:
        fleet = config([refusing("later", sock)], health={"reach_every": 0.05})
        url = await start_router(nursery, fleet)
        async with httpx.AsyncClient(base_url=url, timeout=30) as http:
            not_ready = await until(http, ready=False)
        port = sock.getsockname()[1]
    assert not_ready.json()["providers"] == {
        "later": [f"unreachable: ConnectError (127.0.0.1:{port}): Connection refused"]
    }
    upstream = await start_mock(nursery, "later", port=port)
    async with httpx.AsyncClient(base_url=url, timeout=30) as http:
        await until(http, ready=True)
        health = (await http.get("/health")).json()
        received = (await http.get("/stats")).json()["received"]
    assert health["status"] == "ok"
    # Checks are GETs of the base URL, without a key: no completion, no routed request.
    assert received == 0 and not upstream.mock.calls


async def test_readiness_says_when_the_only_quarantine_ends(nursery):
    down = await start_mock(nursery, "down", "down")
    fleet = live_config(
        [down], breaker={"failure_threshold": 1, "open_for": 30.0}, retry={"max_attempts": 1}
    )
    url = await start_router(nursery, fleet)
    async with httpx.AsyncClient(base_url=url, timeout=30) as http:
        assert (await http.post("/v1/chat/completions", json=CHAT)).status_code == 502
        health, ready, live = await probes(http)
    assert health.status_code == 503 and health.json()["status"] == "down"
    (reason,) = health.json()["providers"]["down"]["reasons"]
    assert reason.startswith("breaker open: quarantined for ")
    assert ready.status_code == 503 and 0 < ready.json()["retry_after"] <= 30
    assert 1 <= int(ready.headers["retry-after"]) <= 30
    assert live.status_code == 200


async def test_while_draining_the_process_is_live_but_not_ready(nursery):
    mock = await start_mock(nursery, "m")
    async with open_router(live_config([mock]), env={}) as live:
        app = RouterApp(live, LiveMetrics(), max_body_bytes=1 << 20)
        transport = httpx.ASGITransport(app)
        async with httpx.AsyncClient(transport=transport, base_url="http://router") as http:
            assert (await http.get("/health/ready")).status_code == 200
            await app.drain(grace=0.0)  # nothing in flight: it returns at once
            health, ready, live_probe = await probes(http)
            refused = await http.post("/v1/chat/completions", json=CHAT)
    assert ready.status_code == 503
    assert ready.json() == {"ready": False, "reason": "shutting down"}
    assert live_probe.status_code == 200 and live_probe.json()["draining"] is True
    assert health.json()["draining"] is True
    assert refused.status_code == 503 and refused.json()["error"]["code"] == "shutting_down"
