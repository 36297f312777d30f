"""Bad input, fuzzed from the API's own OpenAPI description with schemathesis, over loopback.

Every operation gets generated requests, valid and invalid: the server must answer each
with a status and body its document allows (no 500, no hang), and a 400 must name the
bad field. The server (with one instant mock provider) runs in a thread of its own, since
schemathesis calls it synchronously.
"""

from __future__ import annotations

import collections
import functools
import queue
import threading
from collections.abc import Iterator

import pytest
import requests
import schemathesis
import trio
from hypothesis import HealthCheck, settings
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import positive_data_acceptance

from engine.serve.openapi import openapi_document
from engine.serve.server import serve_router
from tests.live.conftest import LOOPBACK, live_config, start_mock

pytestmark = pytest.mark.slow  # every test here takes seconds: out of `pytest -m "not slow"`

#: Generated requests per operation: bounded so the whole suite stays well under 3 minutes.
EXAMPLES = 60
#: 5xx answers a valid request may get from the router itself: documented routing outcomes.
ROUTING_5XX = {
    "deadline_exceeded",
    "no_provider",
    "shed",
    "overloaded",
    "request_failed",
    "shutting_down",
}

# The status events stream until the client leaves: tests/live/test_status_page.py reads them.
schema = schemathesis.openapi.from_dict(openapi_document()).exclude(path="/status/events")
seen: collections.Counter[str] = collections.Counter()


@pytest.fixture(scope="module")
def server_url() -> Iterator[str]:
    urls: queue.Queue[str | BaseException] = queue.Queue()
    stop = threading.Event()

    async def main() -> None:
        async with trio.open_nursery() as nursery:
            upstream = await start_mock(nursery, "m", "unlimited", speed=200.0)
            config = live_config([upstream], retry={"deadline": 5.0})
            url = await nursery.start(
                functools.partial(serve_router, config, env={}, host=LOOPBACK, port=0)
            )
            urls.put(url)
            while not stop.is_set():
                await trio.sleep(0.05)
            nursery.cancel_scope.cancel()

    def run() -> None:
        try:
            trio.run(main)
        except BaseException as exc:  # surfaced to the test instead of dying silently
            urls.put(exc)

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    url = urls.get(timeout=20)
    if isinstance(url, BaseException):
        raise url
    yield url
    stop.set()
    thread.join(timeout=10)
    total = sum(v for k, v in seen.items() if k.startswith("status "))
    print(f"\nschemathesis: {total} generated requests; {dict(sorted(seen.items()))}")


@schemathesis.check
def answers_with_a_named_error(ctx, response, case) -> None:
    """No crash, and every refusal says what was wrong."""
    status = response.status_code
    seen[f"status {status}"] += 1
    if status == 500:
        raise AssertionError(f"internal error: {response.text[:300]}")
    if status >= 400:
        error = response.json()["error"]
        if status >= 500 and error["code"] not in ROUTING_5XX:
            raise AssertionError(f"unexpected {status} {error['code']}: {error['message']}")
        if status >= 500:
            seen[f"5xx {error['code']}"] += 1
        if status == 400:
            assert error["param"], f"a 400 without the bad field: {error}"
            assert error["message"].startswith(error["param"]), error


@schema.parametrize()
@settings(
    max_examples=EXAMPLES,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)
def test_the_api_answers_every_generated_request_as_documented(case, server_url):
    with requests.Session() as session:
        case.call_and_validate(
            base_url=server_url,
            session=session,
            timeout=10,
            # The first is replaced by the stricter check above. The second expects a 2xx for
            # every schema-valid body, but some limits are the config's, not the schema's
            # (a prompt plus max_tokens beyond the context window is a 400 naming messages).
            excluded_checks=[not_a_server_error, positive_data_acceptance],
            additional_checks=[answers_with_a_named_error],
        )
