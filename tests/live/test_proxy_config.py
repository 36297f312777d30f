"""The live router behind a company's HTTP proxy: ``[server] proxy`` / ``no_proxy`` over the
environment's variables, failover past a refused tunnel, and clear config errors.

The providers are named ``*.provider.test``, which does not resolve: only the loopback
proxy (tests.live.loopback_proxy) can reach them, so an answer proves the way it took.
"""

from __future__ import annotations

import ssl
from typing import Any

import pytest
import trio
import trustme

from actors.backends.proxies import proxy_mounts
from engine.routing.errors import RequestFailed
from engine.serve.live_config import ConfigError, structure_config
from engine.serve.live_router import open_router
from tests.live.conftest import answer_each, completion, http_response, start_mock, start_raw
from tests.live.loopback_proxy import start_proxy

PASSWORD = "pr0xy-SECRET"
CREDENTIALS = f"callboard:{PASSWORD}"
USER = [{"role": "user", "content": "Why this job?"}]


def config(providers: list[dict[str, Any]], **server: Any):
    raw = {
        "providers": providers,
        "routing": {"policy": "priority"},
        "retry": {"backoff_base": 0.01, "max_attempts": 2},
        "health": {"ping_every": None},
        "cache": {"enabled": False},
        "server": server,
    }
    return structure_config(raw, "test")


def provider(name: str, base_url: str, priority: int = 0) -> dict[str, Any]:
    return {"name": name, "base_url": base_url, "priority": priority}


def port_of(url: str) -> int:
    return int(url.rsplit(":", 1)[1])


async def test_the_router_tunnels_through_server_proxy_and_fails_over_a_refused_tunnel(
    nursery, monkeypatch, tmp_path
):
    ca = trustme.CA()
    bundle = tmp_path / "company-ca.pem"
    ca.cert_pem.write_to_path(str(bundle))
    monkeypatch.setenv("SSL_CERT_FILE", str(bundle))  # the machine's CAs: the router's own
    tls = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert("blocked.provider.test", "open.provider.test").configure_cert(tls)
    up = await start_raw(
        nursery, lambda conn: answer_each(conn, http_response(200, completion())), tls=tls
    )
    routes = {f"{name}.provider.test:443": port_of(up.url) for name in ("blocked", "open")}
    proxy = await start_proxy(
        nursery, routes, credentials=CREDENTIALS, refuse={"blocked.provider.test:443": 502}
    )
    live_config = config(
        [
            provider("blocked", "https://blocked.provider.test/v1"),
            provider("open", "https://open.provider.test/v1", priority=1),
        ],
        proxy=proxy.url_with(CREDENTIALS),
    )
    env = {"HTTPS_PROXY": "http://127.0.0.1:9"}  # overridden by server.proxy
    async with open_router(live_config, env=env) as live:
        with trio.fail_after(10):
            answer = await live.complete(USER, max_tokens=8)
        assert (answer.provider, answer.attempts) == ("open", 2)
        assert proxy.tunnels == 1
        assert proxy.targets == ["blocked.provider.test:443", "open.provider.test:443"]
        proxy.refuse["open.provider.test:443"] = 502
        await proxy.open_tunnels[0].aclose()  # no kept-alive tunnel left to reuse
        await trio.sleep(0.05)
        with trio.fail_after(10), pytest.raises(RequestFailed) as caught:
            await live.complete(USER, max_tokens=8)
    text = str(caught.value)
    assert "open: connection failed: ProxyError (open.provider.test:443): 502" in text
    assert PASSWORD not in text
    assert "SECRET" not in repr(live_config)


async def test_the_environments_proxy_is_used_unless_the_config_says_otherwise(nursery):
    mock = await start_mock(nursery, "a")
    proxy = await start_proxy(nursery, {"api.provider.test:80": port_of(mock.url)})
    through = [provider("a", "http://api.provider.test/v1")]
    async with open_router(config(through), env={"HTTP_PROXY": proxy.url}) as live:
        with trio.fail_after(10):
            assert (await live.complete(USER, max_tokens=8)).provider == "a"
    assert proxy.forwarded == 1 and proxy.targets == [
        "http://api.provider.test/v1/chat/completions"
    ]
    direct = [provider("a", f"{mock.url}/v1")]
    for server in ({"proxy": ""}, {"no_proxy": "127.0.0.1"}):
        async with open_router(config(direct, **server), env={"HTTP_PROXY": proxy.url}) as live:
            with trio.fail_after(10):
                assert (await live.complete(USER, max_tokens=8)).provider == "a"
    assert proxy.forwarded == 1  # both went directly


def shown(mounts: dict) -> dict:
    return {pattern: proxy and str(proxy.url) for pattern, proxy in mounts.items()}


def test_server_no_proxy_overrides_the_environments():
    env = {"https_proxy": "http://corp:3128", "no_proxy": "elsewhere.org"}
    mounts = shown(proxy_mounts(env, no_proxy="example.com,.example.net, 10.1.2.3,::1"))
    assert mounts == {
        "https://": "http://corp:3128",
        "all://*example.com": None,
        "all://*example.net": None,
        "all://10.1.2.3": None,
        "all://[::1]": None,
    }
    assert shown(proxy_mounts(env)) == {
        "https://": "http://corp:3128",
        "all://*elsewhere.org": None,
    }
    # A lower-case variable wins over its upper-case twin, an empty one turns it off; in a
    # CGI process HTTP_PROXY may come from a client's Proxy header, and is ignored.
    assert proxy_mounts({"HTTPS_PROXY": "http://a:1", "https_proxy": ""}) == {}
    assert proxy_mounts({"HTTP_PROXY": "http://a:1", "REQUEST_METHOD": "GET"}) == {}
    assert proxy_mounts({"ALL_PROXY": "b:2", "no_proxy": "*"}) == {}
    assert set(proxy_mounts({"ALL_PROXY": "b:2"})) == {"https://", "http://"}
    assert proxy_mounts(env, proxy="") == {}


@pytest.mark.parametrize(
    ("value", "problem"),
    [
        (f"socks5://me:{PASSWORD}@corp:1080", "socks5:// proxies need pip install 'httpx[socks]'"),
        (f"ftp://me:{PASSWORD}@corp:21", "ftp:// proxies are not supported"),
        (f"http://me:{PASSWORD}@corp:http", "Invalid port: 'http'"),
        ("http://corp:3128/path", "a path, query or fragment"),
    ],
)
def test_a_bad_server_proxy_is_named_without_its_password(value, problem):
    with pytest.raises(ConfigError) as caught:
        config([provider("a", "https://api.example.com/v1")], proxy=value)
    text = str(caught.value)
    assert "server.proxy = '" in text and problem in text
    assert 'allowed: http(s)://[user:password@]host[:port], or "" for none' in text
    assert PASSWORD not in text


async def test_a_bad_proxy_variable_stops_the_router_before_it_starts():
    cfg = config([provider("a", "https://api.example.com/v1")])
    env = {"ALL_PROXY": f"socks5h://me:{PASSWORD}@corp:1080"}
    with pytest.raises(ConfigError, match=r"ALL_PROXY: socks5h:// proxies need pip install"):
        async with open_router(cfg, env=env):
            pass
    async with open_router(config([provider("a", "https://x.example/v1")], proxy=""), env=env):
        pass  # proxy = "" ignores the environment's proxies, bad ones included
