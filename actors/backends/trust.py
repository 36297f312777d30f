"""Which certificate authorities the router's httpx client trusts when the app gives no context.

The system's CAs (or ``SSL_CERT_FILE`` / ``SSL_CERT_DIR``) as Python finds them, so a
company's own CA installed on the machine is trusted: httpx's own default trusts
certifi's bundle alone unless one of those variables is set. A slim container image
often has no CA certificates at all; every provider's handshake would then fail with
"certificate verify failed", so certifi's copy of Mozilla's bundle is loaded instead.
"""

from __future__ import annotations

import logging
import ssl

import certifi

logger = logging.getLogger("callboard.http")


def default_ssl_context() -> ssl.SSLContext:
    """Certificate and host name verification against the system's CAs, else certifi's."""
    context = ssl.create_default_context()
    # Counts the CAs loaded from a file; those of an SSL_CERT_DIR-style directory load
    # only when first used, so such a machine gets certifi's too (in addition, harmless).
    if context.cert_store_stats()["x509_ca"] == 0:
        bundle = certifi.where()
        context.load_verify_locations(cafile=bundle)
        logger.info("no system CA certificates found; trusting certifi's bundle %s", bundle)
    return context
