"""Caller keys of ``callboard serve``: 401 without a valid key, 429 past a key's budget,
key ids (never keys) in logs and metrics, and no open server beyond loopback by mistake."""

from __future__ import annotations

import functools
import json
import logging

import httpx
import openai
import pytest
import trio
from prometheus_client.parser import text_string_to_metric_families
from trio_websocket import ConnectionRejected, HandshakeError, open_websocket_url

from engine.cli.main import main
from engine.routing.config import ConfigError
from engine.serve.callers import CallersConfig, check_exposure, digest
from engine.serve.callers.keys import KeyRing, presented_key
from engine.serve.server import serve_router
from tests.live.conftest import live_config, start_mock, start_router

WEB = "cb-web-0123456789abcdef0123456789abcdef"
BATCH = "cb-batch-fedcba9876543210fedcba9876543210"
OLD = "cb-old-00112233445566778899aabbccddeeff00"
ASK = {"model": "auto", "messages": [{"role": "user", "content": "Hello?"}], "max_tokens": 5}


def keys_file(tmp_path, *, budget: str = "", old_revoked: bool = True) -> str:
    path = tmp_path / "callers.toml"
    path.write_text(
        f'[[keys]]\nid = "batch"\nsha256 = "{digest(BATCH)}"\n{budget}\n'
        f'[[keys]]\nid = "old"\nsha256 = "{digest(OLD)}"\nrevoked = {str(old_revoked).lower()}\n'
    )
    return str(path)


async def serve(nursery, tmp_path, *, callers=None, env=None, **tables) -> str:
    mock = await start_mock(nursery, "a")
    callers = {"keys_file": keys_file(tmp_path), "reload_every": 0.001, **(callers or {})}
    config = live_config([mock], callers=callers, **tables)
    return await start_router(nursery, config, env={"CALLBOARD_KEYS": f"web={WEB}", **(env or {})})


async def post(url: str, key: str | None = None, header: str = "authorization") -> httpx.Response:
    headers = {}
    if key is not None:
        headers[header] = f"Bearer {key}" if header == "authorization" else key
    async with httpx.AsyncClient(timeout=10) as client:
        return await client.post(f"{url}/v1/chat/completions", json=ASK, headers=headers)


def assert_openai_error(response: httpx.Response, status: int, code: str) -> dict:
    assert response.status_code == status, response.text
    error = response.json()["error"]
    assert set(error) >= {"message", "type", "param", "code"}
    assert error["code"] == code
    return error


async def test_a_missing_key_is_refused_with_401(nursery, tmp_path):
    url = await serve(nursery, tmp_path)
    response = await post(url)
    error = assert_openai_error(response, 401, "missing_api_key")
    assert "Authorization: Bearer" in error["message"]
    assert response.headers["www-authenticate"].startswith("Bearer")


async def test_a_wrong_key_is_refused_and_a_right_one_passes_either_header(nursery, tmp_path):
    url = await serve(nursery, tmp_path)
    assert_openai_error(await post(url, WEB + "x"), 401, "invalid_api_key")
    assert (await post(url, WEB)).status_code == 200  # from the environment
    assert (await post(url, BATCH, header="x-api-key")).status_code == 200  # from the file


async def test_the_official_client_sends_its_key_and_sees_its_errors(nursery, tmp_path):
    url = await serve(nursery, tmp_path, callers={"budgets": {"web": {"requests_per_day": 3}}})
    good = openai.AsyncOpenAI(base_url=f"{url}/v1", api_key=WEB, max_retries=0)
    bad = openai.AsyncOpenAI(base_url=f"{url}/v1", api_key="sk-nope", max_retries=0)
    with trio.fail_after(10):
        reply = await good.chat.completions.create(**ASK)
        assert reply.choices[0].message.content
        with pytest.raises(openai.AuthenticationError):
            await bad.chat.completions.create(**ASK)
        for _ in range(2):  # "web" may make 3 requests a day
            await good.chat.completions.create(**ASK)
        with pytest.raises(openai.RateLimitError):
            await good.chat.completions.create(**ASK)
    await good.close()
    await bad.close()


async def test_a_revoked_key_is_refused_and_revocation_needs_no_restart(nursery, tmp_path):
    url = await serve(nursery, tmp_path)
    error = assert_openai_error(await post(url, OLD), 401, "invalid_api_key")
    assert "'old' has been revoked" in error["message"]
    assert (await post(url, BATCH)).status_code == 200
    # Revoke "batch" in the file: the next request after the file changed is refused.
    path = tmp_path / "callers.toml"
    path.write_text(path.read_text().replace('id = "batch"\n', 'id = "batch"\nrevoked = true\n'))
    await trio.sleep(0.01)  # past reload_every
    assert_openai_error(await post(url, BATCH), 401, "invalid_api_key")


@pytest.mark.slow
async def test_a_key_over_its_request_budget_gets_429_with_retry_after(nursery, tmp_path):
    url = await serve(nursery, tmp_path, callers={"budgets": {"web": {"requests_per_day": 2}}})
    for _ in range(2):
        assert (await post(url, WEB)).status_code == 200
    response = await post(url, WEB)
    error = assert_openai_error(response, 429, "rate_limit_exceeded")
    assert "'web'" in error["message"] and "requests_per_day" in error["message"]
    assert int(response.headers["retry-after"]) >= 1
    assert error["retry_after"] > 0
    assert (await post(url, BATCH)).status_code == 200  # another key has its own budget


@pytest.mark.slow
async def test_tokens_and_cost_of_answers_are_charged_to_the_key(nursery, tmp_path):
    mock = await start_mock(nursery, "a")
    budget = "[keys.budget]\ntokens_per_day = 20\n"
    callers = {"keys_file": keys_file(tmp_path, budget=budget)}
    # Priced at $1 per input token: a few cents of budget buys one request.
    providers = [{"name": "a", "base_url": f"{mock.url}/v1", "input_cost_per_mtok": 1e6}]
    config = live_config(
        [mock], providers=providers, callers={**callers, "budget": {"cost_per_minute": 0.5}}
    )
    url = await start_router(nursery, config, env={"CALLBOARD_KEYS": f"web={WEB}"})
    assert (await post(url, BATCH)).status_code == 200  # 5 prompt + 5 output tokens
    assert (await post(url, BATCH)).status_code == 200  # 10 < 20: room for one more
    error = assert_openai_error(await post(url, BATCH), 429, "rate_limit_exceeded")
    assert "tokens_per_day" in error["message"]
    # "web" has no budget of its own: the default one, $0.50 a minute, after a $5 answer.
    assert (await post(url, WEB)).status_code == 200
    error = assert_openai_error(await post(url, WEB), 429, "rate_limit_exceeded")
    assert "cost_per_minute" in error["message"]


@pytest.mark.slow
async def test_logs_and_metrics_name_the_key_id_never_the_key(nursery, tmp_path, caplog):
    url = await serve(nursery, tmp_path, callers={"budgets": {"web": {"requests_per_day": 1}}})
    with caplog.at_level(logging.INFO):
        await post(url, WEB)
        await post(url, WEB)  # over budget
        await post(url, "cb-not-a-key-000000000000000000000000000")
        await post(url)
    async with httpx.AsyncClient(timeout=10) as client:
        assert (await client.get(f"{url}/metrics")).status_code == 401  # not public by default
        text = (await client.get(f"{url}/metrics", headers={"x-api-key": BATCH})).text
        assert (await client.get(f"{url}/health")).status_code == 200  # public
    samples = {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }
    assert samples[("callboard_caller_requests_total", (("key", "web"), ("outcome", "admitted")))]
    over = (("key", "web"), ("outcome", "over_budget"))
    assert samples[("callboard_caller_requests_total", over)] == 1
    assert samples[("callboard_caller_unauthorized_total", (("reason", "unknown"),))] == 1
    assert samples[("callboard_caller_unauthorized_total", (("reason", "missing"),))] == 2
    assert samples[("callboard_caller_tokens_total", (("key", "web"),))] > 0
    logged = "\n".join(r.getMessage() for r in caplog.records)
    assert "key=web" in logged
    for secret in (WEB, BATCH, "cb-not-a-key"):
        assert secret not in logged and secret not in text


async def test_a_websocket_interview_needs_a_key_and_its_turns_spend_the_budget(nursery, tmp_path):
    url = await serve(nursery, tmp_path, callers={"budgets": {"web": {"requests_per_day": 1}}})
    ws_url = url.replace("http://", "ws://") + "/interview/stream/c-1"
    with pytest.raises((ConnectionRejected, HandshakeError)):
        async with open_websocket_url(ws_url):
            pass
    auth = [("authorization", f"Bearer {WEB}")]
    with trio.fail_after(10):
        async with open_websocket_url(ws_url, extra_headers=auth) as ws:
            assert json.loads(await ws.get_message())["type"] == "ready"
            await ws.send_message("Hello!")
            while (event := json.loads(await ws.get_message()))["type"] != "done":
                assert event["type"] == "delta"
            await ws.send_message("Again!")
            event = json.loads(await ws.get_message())
    assert event["type"] == "error" and event["error"]["code"] == "rate_limit_exceeded"


def test_keys_from_the_environment_must_be_long_and_errors_never_show_them():
    config = CallersConfig()
    with pytest.raises(ConfigError) as caught:
        KeyRing(config, {"CALLBOARD_KEYS": "web=short-secret-1,=x"})
    message = str(caught.value)
    assert "CALLBOARD_KEYS entry 1 (id 'web'): key of 14 characters" in message
    assert "CALLBOARD_KEYS entry 2" in message and "short-secret-1" not in message


def test_a_bad_keys_file_names_the_entry_and_field(tmp_path):
    path = tmp_path / "k.toml"
    path.write_text('[[keys]]\nid = "ok"\nsha256 = "abc"\n')
    with pytest.raises(
        ConfigError, match=r"keys\[0\]: sha256 = 'abc' is not allowed; allowed: 64 lower-case hex"
    ):
        KeyRing(CallersConfig(keys_file=str(path)), {})
    path.write_text(f'[[keys]]\nid = "x"\nsha256 = "{digest(WEB)}"\n[keys.budget]\nrpm = 3\n')
    with pytest.raises(ConfigError, match="rpm"):
        KeyRing(CallersConfig(keys_file=str(path)), {})


def test_the_key_comes_from_bearer_or_x_api_key():
    assert presented_key([(b"authorization", b"Bearer  k1 ")]) == "k1"
    assert presented_key([(b"x-api-key", b"k2")]) == "k2"
    assert presented_key([(b"authorization", b"Basic abc")]) is None
    assert presented_key([]) is None


@pytest.mark.parametrize("host", ["0.0.0.0", "::", "", "10.1.2.3", "router.internal"])
def test_no_keys_beyond_loopback_refuses_to_start_unless_told(host):
    with pytest.raises(ConfigError, match="--allow-no-keys"):
        check_exposure(host, False, CallersConfig())
    check_exposure(host, True, CallersConfig())  # keys configured
    check_exposure(host, False, CallersConfig(allow_no_keys=True))  # said explicitly


@pytest.mark.parametrize("host", ["127.0.0.1", "::1", "localhost", "127.0.0.2"])
def test_loopback_needs_no_keys(host):
    check_exposure(host, False, CallersConfig())


async def test_serve_refuses_before_it_listens(nursery):
    mock = await start_mock(nursery, "a")
    with pytest.raises(ConfigError, match=r"server\.host"):
        await nursery.start(
            functools.partial(serve_router, live_config([mock]), env={}, host="0.0.0.0", port=0)
        )


def test_caller_key_command_prints_a_key_and_stores_only_its_hash(tmp_path, capsys):
    path = tmp_path / "callers.toml"
    assert main(["caller-key", "web", "--file", str(path)]) == 0
    key = capsys.readouterr().out.strip()
    assert key.startswith("cb-") and len(key) > 40 and key not in path.read_text()
    ring = KeyRing(CallersConfig(keys_file=str(path)), {})
    assert ring.authenticate([(b"authorization", f"Bearer {key}".encode())]).id == "web"
    assert main(["caller-key", "web", "--file", str(path)]) == 2  # ids are unique
    assert "already in the file" in capsys.readouterr().err


@pytest.mark.slow
async def test_the_anthropic_entrance_needs_a_key_and_spends_the_same_budget(nursery, tmp_path):
    url = await serve(nursery, tmp_path, callers={"budgets": {"web": {"requests_per_day": 2}}})
    body = {"model": "auto", "max_tokens": 5, "messages": [{"role": "user", "content": "Hi?"}]}
    async with httpx.AsyncClient(base_url=url, timeout=10) as client:
        refused = await client.post("/v1/messages", json=body)
        assert refused.status_code == 401, refused.text
        assert (
            await client.post("/v1/messages", json=body, headers={"x-api-key": WEB})
        ).status_code == 200
        assert (await post(url, WEB)).status_code == 200
        over = await client.post("/v1/messages", json=body, headers={"x-api-key": WEB})
        assert over.status_code == 429, over.text
        assert (await client.get("/v1/models")).status_code == 401
