"""The embedding API (``engine``): the live router in an app, from a TOML config file."""

from __future__ import annotations

import textwrap

import pytest
import trio

import engine
from engine.serve.live_router import KEPT_EVENTS
from tests.live.conftest import start_mock

KEY = "sk-embed-3f9a1c77d2e04b5b"


def write_config(tmp_path, a_url: str, b_url: str) -> str:
    path = tmp_path / "router.toml"
    path.write_text(
        textwrap.dedent(
            f"""
            [[providers]]
            name = "a"
            kind = "openai"
            base_url = "{a_url}/v1"
            model = "small"
            api_key_env = "CALLBOARD_TEST_KEY"
            priority = 0
            input_cost_per_mtok = 0.15
            output_cost_per_mtok = 0.60

            [[providers]]
            name = "b"
            base_url = "{b_url}/v1"
            model = "small"
            priority = 1
            limits = [{{ name = "rpm", unit = "requests", limit = 600, per = 60 }}]

            [routing]
            policy = "priority"

            [retry]
            backoff_base = 0.05

            [health]
            ping_every = 0.05

            [cache]
            enabled = true
            """
        )
    )
    return str(path)


async def test_complete_stream_and_session_from_a_config_file(nursery, tmp_path):
    a = await start_mock(nursery, "a", api_key=KEY)
    b = await start_mock(nursery, "b")
    path = write_config(tmp_path, a.url, b.url)
    with trio.fail_after(10):
        async with engine.open_router(path, env={"CALLBOARD_TEST_KEY": KEY}) as router:
            answer = await router.complete(
                [{"role": "user", "content": "Hello"}], model="small", max_tokens=10
            )
            assert (answer.provider, answer.completion_tokens) == ("a", 10)
            assert answer.cost == pytest.approx((answer.prompt_tokens * 0.15 + 10 * 0.6) / 1e6)
            await trio.sleep(0.01)  # the cache actor stores the answer from its mailbox
            again = await router.complete(
                [{"role": "user", "content": "Hello"}], model="small", max_tokens=10
            )
            assert again.cached

            stream = router.stream([{"role": "user", "content": "Stream it"}], max_tokens=30)
            texts = [text async for text in stream]
            assert len(texts) > 3 and "".join(texts) == stream.completion.content

            session = await router.session("cand-1", "You interview.")
            first = await router.turn("cand-1", "Hi")
            a.mock.set_profile("down")
            second = await router.turn("cand-1", "More")
            assert (first.provider, second.provider) == ("a", "b")
            assert [m.role for m in session.history] == [
                "system",
                "user",
                "assistant",
                "user",
                "assistant",
            ]
            assert session.providers_used == ["a", "b"]

            await trio.sleep(0.2)  # active pings ran meanwhile
            statuses = {s.name: s for s in router.status()}
            assert statuses["a"].error_rate > 0  # pings to the down provider failed
            assert statuses["b"].calls > 2
            # A server's event series are bounded: its memory does not grow with uptime.
            fleet = router.fleet
            kept = (fleet.transitions.maxlen, fleet.quota.alerts.maxlen)
            assert kept == (KEPT_EVENTS, KEPT_EVENTS)

            with pytest.raises(engine.InvalidRequest) as bad:
                await router.complete([{"role": "user"}])
            assert bad.value.field == "messages[0].content"


async def test_errors_raised_inside_the_block_reach_the_app_unwrapped(nursery, tmp_path):
    a = await start_mock(nursery, "a", api_key=KEY)
    b = await start_mock(nursery, "b")
    path = write_config(tmp_path, a.url, b.url)
    with pytest.raises(KeyError):
        async with engine.open_router(path, env={"CALLBOARD_TEST_KEY": KEY}):
            raise KeyError("mine")


async def test_a_missing_key_stops_the_router_before_it_starts_and_names_the_variable(tmp_path):
    path = write_config(tmp_path, "http://127.0.0.1:9", "http://127.0.0.1:9")
    with pytest.raises(engine.ConfigError) as missing:
        async with engine.open_router(path, env={}):
            pass
    assert "CALLBOARD_TEST_KEY" in str(missing.value) and "'a'" in str(missing.value)


def test_config_errors_name_every_bad_key(tmp_path):
    path = tmp_path / "bad.toml"
    path.write_text(
        textwrap.dedent(
            """
            [[providers]]
            name = "a"
            base_url = "ftp://nowhere"

            [[providers]]
            name = "b"
            base_url = "http://ok/v1"
            max_concurency = 4

            [retry]
            max_attempts = 0
            """
        )
    )
    with pytest.raises(engine.ConfigError) as caught:
        engine.load_config(path)
    problems = caught.value.problems
    assert any(p.startswith("providers[0].base_url = 'ftp://nowhere'") for p in problems)
    assert any("max_concurency" in p and "providers[1]" in p for p in problems)
    assert any("retry.max_attempts = 0" in p for p in problems)
    with pytest.raises(engine.ConfigError, match="NAME=BASE_URL"):
        engine.load_config(providers=["just-a-name"])
    with pytest.raises(engine.ConfigError, match="no providers"):
        engine.load_config()
    config = engine.load_config(
        providers=["x=http://127.0.0.1:1/v1"], overrides=["retry.max_attempts=2"]
    )
    assert config.providers[0].name == "x" and config.retry.max_attempts == 2
