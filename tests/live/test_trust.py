"""Which CAs the router's httpx client trusts by default: the machine's, else certifi's bundle."""

from __future__ import annotations

import logging
import ssl

import certifi
import httpx
import pytest
import trustme

from actors.backends.trust import default_ssl_context
from engine.serve.live_config import structure_config
from engine.serve.live_router import client_for
from tests.live.conftest import answer_each, http_response, server_context, start_raw


def no_system_cas(monkeypatch: pytest.MonkeyPatch, tmp_path) -> None:
    """Make OpenSSL look for the machine's CAs where there are none (a slim container)."""
    monkeypatch.setenv("SSL_CERT_FILE", str(tmp_path / "no-such-bundle.pem"))
    monkeypatch.setenv("SSL_CERT_DIR", str(tmp_path / "no-such-dir"))


def subjects(context: ssl.SSLContext) -> set:
    return {repr(cert["subject"]) for cert in context.get_ca_certs()}


def test_without_system_cas_certifis_bundle_is_trusted(monkeypatch, tmp_path, caplog):
    no_system_cas(monkeypatch, tmp_path)
    assert ssl.create_default_context().cert_store_stats()["x509_ca"] == 0
    with caplog.at_level(logging.INFO, logger="callboard.http"):
        context = default_ssl_context()
    bundle = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    bundle.load_verify_locations(cafile=certifi.where())
    assert context.cert_store_stats()["x509_ca"] == bundle.cert_store_stats()["x509_ca"] > 100
    assert subjects(context) == subjects(bundle)
    assert context.verify_mode == ssl.CERT_REQUIRED and context.check_hostname
    assert certifi.where() in caplog.text


def test_the_machines_cas_are_used_alone_when_there_are_some(monkeypatch, tmp_path, caplog):
    ca = trustme.CA()
    pem = tmp_path / "company-ca.pem"
    ca.cert_pem.write_to_path(str(pem))
    monkeypatch.setenv("SSL_CERT_FILE", str(pem))
    monkeypatch.setenv("SSL_CERT_DIR", str(tmp_path / "no-such-dir"))
    with caplog.at_level(logging.INFO, logger="callboard.http"):
        context = default_ssl_context()
    assert context.cert_store_stats()["x509_ca"] == 1  # certifi not added
    assert "certifi" not in caplog.text


async def test_the_client_trusts_the_fallback_bundle_on_a_machine_without_cas(
    nursery, monkeypatch, tmp_path
):
    """The server's CA stands in for certifi's bundle: only the fallback can trust it."""
    ca = trustme.CA()
    pem = tmp_path / "bundle.pem"
    ca.cert_pem.write_to_path(str(pem))
    secure = await start_raw(
        nursery,
        lambda conn: answer_each(conn, http_response(200, {"tls": True})),
        tls=server_context(ca),
    )
    no_system_cas(monkeypatch, tmp_path)
    config = structure_config({"providers": [{"name": "a", "base_url": secure.url}]}, "test")
    async with client_for(config, env={}) as client:  # the machine has no CA at all
        with pytest.raises(httpx.ConnectError):
            await client.get(secure.url)
    monkeypatch.setattr(certifi, "where", lambda: str(pem))
    async with client_for(config, env={}) as client:
        assert (await client.get(secure.url)).json() == {"tls": True}
