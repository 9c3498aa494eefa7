"""One verifying TLS context per process for nuseal's HTTP clients (OCSP/CRL fetches, the TSA client).

httpx builds a new ``ssl.SSLContext`` for every ``httpx.Client`` it makes, loading the whole CA bundle each time
(about 20 ms, measured in bench/feed_signing.py's profile: over half of an author-signed push's verification).
An ``SSLContext`` can be shared by any number of connections and threads once configured, so nuseal builds
httpx's default one (certifi's roots, ``SSL_CERT_FILE`` / ``SSL_CERT_DIR`` honoured) once and hands it to each
client.
"""

from __future__ import annotations

import ssl
import threading

import httpx

__all__ = ["shared_tls_context"]

_LOCK = threading.Lock()
_CONTEXT: ssl.SSLContext | None = None


def shared_tls_context() -> ssl.SSLContext:
    """httpx's default verifying context (``httpx.create_ssl_context(trust_env=True)``), made on first use."""
    global _CONTEXT  # noqa: PLW0603 - a process-wide cache
    with _LOCK:
        if _CONTEXT is None:
            _CONTEXT = httpx.create_ssl_context(trust_env=True)
        return _CONTEXT
