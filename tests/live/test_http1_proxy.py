"""The HTTP client through an HTTP proxy: CONNECT tunnels, absolute-form requests,
credentials, refusals, NO_PROXY, and the environment's proxy variables.

The upstreams are named ``*.provider.test``, which does not resolve: only the
loopback proxy (which maps those names to loopback ports) can reach them.
"""

from __future__ import annotations

import base64
import json
import ssl

import pytest
import trio
import trustme

from actors.backends.http1 import (
    ConnectError,
    ConnectTimeout,
    HttpClient,
    ProxyError,
    parse_proxy,
    proxy_settings,
)
from actors.backends.http1.urls import Origin
from tests.live.conftest import LOOPBACK, http_response, start_raw
from tests.live.loopback_proxy import start_proxy
from tests.live.test_http1 import answer_each, trusting

API = "api.provider.test"
PASSWORD = "pr0xy-SECRET-p@ss"
CREDENTIALS = f"callboard:{PASSWORD}"
USERINFO = f"callboard:{PASSWORD.replace('@', '%40')}"


@pytest.fixture(scope="module")
def ca() -> trustme.CA:
    return trustme.CA()


def tls_for(ca: trustme.CA, *names: str) -> ssl.SSLContext:
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert(*names).configure_cert(context)
    return context


def port_of(url: str) -> int:
    return int(url.rsplit(":", 1)[1])


async def answering(nursery, reply: bytes, tls: ssl.SSLContext | None = None):
    return await start_raw(nursery, lambda conn: answer_each(conn, reply), tls=tls)


async def test_https_goes_through_one_kept_alive_tunnel_with_the_proxys_credentials(nursery, ca):
    up = await answering(nursery, http_response(200, {"via": "tunnel"}), tls_for(ca, API))
    proxy = await start_proxy(nursery, {f"{API}:443": port_of(up.url)}, credentials=CREDENTIALS)
    settings = proxy_settings({}, proxy=proxy.url_with(USERINFO))
    async with HttpClient(ssl_context=trusting(ca), proxies=settings, connect_timeout=2) as client:
        for _ in range(3):
            reply = await client.request("POST", f"https://{API}/v1/chat?x=1", body=b"{}")
            assert json.loads(reply.content) == {"via": "tunnel"}
        assert str(client.proxy_for(f"https://{API}/")) == proxy.url
    assert proxy.tunnels == 1 and proxy.targets == [f"{API}:443"]
    expected = "Basic " + base64.b64encode(CREDENTIALS.encode()).decode()
    assert proxy.authorizations == [expected]
    assert len(up.requests) == 3
    sent = up.requests[0].decode()
    assert sent.startswith("POST /v1/chat?x=1 HTTP/1.1\r\n") and f"host: {API}\r\n" in sent
    assert "proxy-authorization" not in sent.lower()  # the origin never sees them


async def test_a_streamed_answer_arrives_through_the_tunnel_as_it_is_sent(nursery, ca):
    async def stream(conn):
        await conn.read_request()
        await conn.send(b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n")
        for piece in (b"data: one\n\n", b"data: two\n\n"):
            await conn.send(b"%x\r\n%s\r\n" % (len(piece), piece))
            await trio.sleep(0.02)
        await conn.send(b"0\r\n\r\n")

    up = await start_raw(nursery, stream, tls=tls_for(ca, API))
    proxy = await start_proxy(nursery, {f"{API}:443": port_of(up.url)})
    settings = proxy_settings({"https_proxy": proxy.url})
    async with (
        HttpClient(ssl_context=trusting(ca), proxies=settings) as client,
        client.stream("POST", f"https://{API}/v1/chat", body=b"{}") as response,
    ):
        lines = [line async for line in response.iter_lines()]
    assert lines == ["data: one", "", "data: two", ""] and proxy.tunnels == 1


async def test_http_origins_are_asked_in_absolute_form_of_the_proxy(nursery):
    up = await answering(nursery, http_response(200, {"via": "forward"}))
    proxy = await start_proxy(nursery, {f"{API}:8000": port_of(up.url)}, credentials=CREDENTIALS)
    settings = proxy_settings({"HTTP_PROXY": proxy.url_with(USERINFO)})
    async with HttpClient(proxies=settings) as client:
        for _ in range(2):
            reply = await client.request("GET", f"http://{API}:8000/v1/models")
            assert json.loads(reply.content) == {"via": "forward"}
        assert client.proxy_for(f"https://{API}/") is None  # HTTP_PROXY is for http only
    assert proxy.forwarded == 2 and proxy.tunnels == 0
    assert proxy.targets == [f"http://{API}:8000/v1/models"] * 2
    assert all(a and a.startswith("Basic ") for a in proxy.authorizations)
    sent = up.requests[0].decode()
    assert sent.startswith("GET /v1/models HTTP/1.1\r\n") and f"host: {API}:8000\r\n" in sent


async def test_a_refused_tunnel_is_a_named_proxy_error_that_never_shows_the_password(nursery, ca):
    up = await answering(nursery, http_response(200, {}), tls_for(ca, API, "blocked.test"))
    routes = {f"{API}:443": port_of(up.url), "blocked.test:443": port_of(up.url)}
    proxy = await start_proxy(
        nursery, routes, credentials=CREDENTIALS, refuse={"blocked.test:443": 502}
    )
    no_credentials = proxy_settings({}, proxy=proxy.url)
    wrong = proxy_settings({}, proxy=proxy.url_with("callboard:wrong-SECRET"))
    right = proxy_settings({}, proxy=proxy.url_with(USERINFO))
    context = trusting(ca)
    for settings, url, fragment in (
        (no_credentials, f"https://{API}/", "407 Proxy Authentication Required"),
        (wrong, f"https://{API}/", r"credentials missing or rejected"),
        (right, "https://blocked.test/", "the proxy refused: 502 Refused By Policy"),
    ):
        async with HttpClient(ssl_context=context, proxies=settings) as client:
            with pytest.raises(ProxyError, match=fragment) as caught:
                await client.request("GET", url)
            assert client.connections_in_use(url) == 0
        text = str(caught.value)
        assert f"proxy {proxy.url} (tunnel to " in text
        assert "SECRET" not in text and "SECRET" not in repr(settings)
    assert proxy.tunnels == 0 and up.connections == 0


async def test_a_proxy_that_is_down_or_mute_is_named(nursery):
    with trio.socket.socket() as sock:
        await sock.bind((LOOPBACK, 0))
        closed = sock.getsockname()[1]
    settings = proxy_settings({}, proxy=f"http://{LOOPBACK}:{closed}")
    async with HttpClient(proxies=settings, connect_timeout=0.3) as client:
        with pytest.raises(ConnectError, match=rf"cannot connect to proxy .*:{closed} \(for "):
            await client.request("GET", f"https://{API}/")

    async def mute(conn):
        await trio.sleep_forever()

    silent = await start_raw(nursery, mute)
    settings = proxy_settings({}, proxy=silent.url)
    async with HttpClient(proxies=settings, connect_timeout=0.3) as client:
        with trio.fail_after(3), pytest.raises(ConnectTimeout, match=r"proxy .* took over 0\.3 s"):
            await client.request("GET", f"https://{API}/")


async def test_a_tunnel_the_proxy_closed_while_idle_is_replaced(nursery, ca):
    up = await answering(nursery, http_response(200, {"ok": 1}), tls_for(ca, API))
    proxy = await start_proxy(nursery, {f"{API}:443": port_of(up.url)})
    settings = proxy_settings({}, proxy=proxy.url)
    async with HttpClient(ssl_context=trusting(ca), proxies=settings) as client:
        await client.request("GET", f"https://{API}/")
        await proxy.open_tunnels[0].aclose()  # the proxy's idle timeout
        await trio.sleep(0.05)
        assert (await client.request("GET", f"https://{API}/")).status == 200
    assert proxy.tunnels == 2 and len(up.requests) == 2


async def test_no_proxy_hosts_are_reached_directly(nursery):
    local = await answering(nursery, http_response(200, {"via": "direct"}))
    remote = await answering(nursery, http_response(200, {"via": "proxy"}))
    proxy = await start_proxy(nursery, {f"{API}:80": port_of(remote.url)})
    env = {"http_proxy": proxy.url, "NO_PROXY": f"example.com, {LOOPBACK}"}
    async with HttpClient(proxies=proxy_settings(env)) as client:
        direct = await client.request("GET", local.url)
        proxied = await client.request("GET", f"http://{API}/")
    assert json.loads(direct.content) == {"via": "direct"} and local.connections == 1
    assert json.loads(proxied.content) == {"via": "proxy"}
    assert proxy.forwarded == 1 and proxy.targets == [f"http://{API}/"]
    # Loopback is proxied like any host unless listed (curl's and httpx's rule).
    async with HttpClient(proxies=proxy_settings({"http_proxy": proxy.url})) as client:
        assert (await client.request("GET", local.url)).status == 502  # the proxy has no route
    assert local.connections == 1


# --- the environment's variables and NO_PROXY matching (no I/O) -----------------------------
def via(env: dict[str, str], url: str, **given: str) -> str | None:
    proxy = proxy_settings(env, **given).proxy_for(
        Origin(url.split("://")[0], *_host_port(url.split("://")[1]))
    )
    return None if proxy is None else str(proxy)


def _host_port(authority: str) -> tuple[str, int]:
    if authority.startswith("["):
        host, _, port = authority[1:].partition("]:")
    else:
        host, _, port = authority.rpartition(":")
    return host, int(port)


def test_which_variable_serves_which_scheme():
    env = {"HTTPS_PROXY": "http://a:1", "ALL_PROXY": "b:2"}
    assert via(env, "https://x.com:443") == "http://a:1"
    assert via(env, "http://x.com:80") == "http://b:2"  # all_proxy, http:// assumed
    assert via({**env, "https_proxy": "http://c:3"}, "https://x.com:443") == "http://c:3"
    assert via({**env, "https_proxy": ""}, "https://x.com:443") == "http://b:2"
    assert via({"HTTP_PROXY": "http://a:1"}, "http://x.com:80") == "http://a:1"
    cgi = {"HTTP_PROXY": "http://evil:1", "REQUEST_METHOD": "GET"}
    assert via(cgi, "http://x.com:80") is None  # httpoxy: a client's header set it
    assert via({"http_proxy": "http://p:8080"}, "http://x.com:80") == "http://p:8080"
    assert via({"HTTPS_PROXY": "http://p"}, "https://x.com:443") == "http://p:80"


def test_the_given_proxy_overrides_the_environment_and_empty_disables():
    env = {"HTTPS_PROXY": "http://env:1", "NO_PROXY": "internal.corp"}
    assert via(env, "https://x.com:443", proxy="http://cfg:2") == "http://cfg:2"
    assert via(env, "http://x.com:80", proxy="http://cfg:2") == "http://cfg:2"
    assert via(env, "https://a.internal.corp:443", proxy="http://cfg:2") is None  # still exempt
    assert via(env, "https://a.internal.corp:443", proxy="http://cfg:2", no_proxy="") == (
        "http://cfg:2"
    )
    assert via(env, "https://x.com:443", proxy="") is None
    assert not proxy_settings(env, proxy="").enabled


@pytest.mark.parametrize(
    ("no_proxy", "url", "direct"),
    [
        ("example.com", "https://example.com:443", True),
        ("example.com", "https://api.example.com:443", True),
        (".example.com", "https://example.com:443", True),
        ("example.com", "https://notexample.com:443", False),
        ("example.com", "https://example.com.evil:443", False),
        ("EXAMPLE.com ,, other", "https://Api.Example.COM:443", True),
        ("*", "https://anything:443", True),
        ("a.com,*", "https://anything:443", True),
        ("localhost", "http://localhost:8080", True),
        ("", "http://localhost:8080", False),
        ("127.0.0.1", "http://127.0.0.1:8080", True),
        ("127.0.0.0/8", "http://127.1.2.3:80", True),
        ("10.0.0.0/8", "http://11.0.0.1:80", False),
        ("::1", "http://[::1]:80", True),
        ("[::1]:8080", "http://[::1]:8080", True),
        ("10.0.0.0/8", "http://[::1]:80", False),
        ("example.com:8443", "https://example.com:8443", True),
        ("example.com:8443", "https://example.com:443", False),
        ("http://127.0.0.1", "http://127.0.0.1:9000", True),
        ("http://127.0.0.1", "https://127.0.0.1:9000", False),
        ("10.1.2.3", "https://ten.example:443", False),  # names are not resolved
    ],
)
def test_no_proxy_matching(no_proxy, url, direct):
    env = {"HTTPS_PROXY": "http://p:1", "HTTP_PROXY": "http://p:1", "NO_PROXY": no_proxy}
    assert (via(env, url) is None) is direct


@pytest.mark.parametrize(
    ("url", "fragment"),
    [
        ("socks5://user:SECRET@h:1080", r"socks5:// proxies are not supported, only http://"),
        ("https://h:443", "https:// proxies are not supported"),
        ("http://user:SECRET@h:99999", r"bad port: 'http://\*\*\*@h:99999'; expected http://"),
        ("http://user:SECRET@:3128", "no host"),
        ("http://h:3128/some/path", "a path, query or fragment"),
    ],
)
def test_a_bad_proxy_url_is_named_and_its_password_hidden(url, fragment):
    with pytest.raises(ValueError, match=fragment) as caught:
        parse_proxy(url, "HTTPS_PROXY")
    assert str(caught.value).startswith("HTTPS_PROXY: ") and "SECRET" not in str(caught.value)
    with pytest.raises(ValueError, match="ALL_PROXY: "):
        proxy_settings({"ALL_PROXY": url})


def test_a_proxys_credentials_stay_out_of_its_repr_and_str():
    proxy = parse_proxy("http://me:SECRET%2Fx@proxy.corp:3128", "server.proxy")
    assert "SECRET" not in repr(proxy) and "SECRET" not in str(proxy)
    assert str(proxy) == "http://proxy.corp:3128"
    assert base64.b64decode(proxy.authorization.split()[1]) == b"me:SECRET/x"
