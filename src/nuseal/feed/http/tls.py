"""The TLS settings ``nuseal serve`` listens with (issue 19).

:func:`server_context` builds the :class:`ssl.SSLContext`: TLS 1.2 and 1.3 only (RFC 8996 deprecates 1.0 and 1.1),
forward-secret AEAD cipher suites for TLS 1.2 (Mozilla's "intermediate" list; TLS 1.3's suites are all AEAD),
no compression, no renegotiation, server cipher preference, ALPN ``http/1.1``. HTTP/2 is not offered: uvicorn
has no HTTP/2 protocol (HTTP/1.1 with keep-alive is what NuGet clients use for a feed anyway).

uvicorn builds the context in each worker process through :func:`uvicorn_context_factory`, named in
``uvicorn.Config(ssl_context_factory=...)`` (it must be importable there; an ``SSLContext`` cannot be pickled to
a spawned worker).
"""

from __future__ import annotations

import ssl
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from cryptography import x509

from nuseal.errors import UsageError

__all__ = ["TLS12_CIPHERS", "check_server_files", "server_context", "uvicorn_context_factory"]

#: TLS 1.2 cipher suites (OpenSSL names): ECDHE/DHE key exchange with AES-GCM or ChaCha20-Poly1305.
TLS12_CIPHERS = ":".join((
    "ECDHE-ECDSA-AES128-GCM-SHA256",
    "ECDHE-RSA-AES128-GCM-SHA256",
    "ECDHE-ECDSA-AES256-GCM-SHA384",
    "ECDHE-RSA-AES256-GCM-SHA384",
    "ECDHE-ECDSA-CHACHA20-POLY1305",
    "ECDHE-RSA-CHACHA20-POLY1305",
    "DHE-RSA-AES128-GCM-SHA256",
    "DHE-RSA-AES256-GCM-SHA384",
))


def server_context(certfile: str, keyfile: str, password: str | None = None) -> ssl.SSLContext:
    """A server context presenting ``certfile`` (PEM: the certificate, then its intermediates) with ``keyfile``.

    Raises:
        UsageError: a file cannot be read, is not PEM, or the key does not match the certificate.
    """
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    ctx.set_ciphers(TLS12_CIPHERS)
    ctx.options |= ssl.OP_NO_COMPRESSION | ssl.OP_CIPHER_SERVER_PREFERENCE | ssl.OP_NO_RENEGOTIATION
    ctx.set_alpn_protocols(["http/1.1"])
    try:
        ctx.load_cert_chain(certfile, keyfile, password)
    except FileNotFoundError as exc:
        raise UsageError(f"cannot read the TLS certificate or key: {exc.filename}: not found") from exc
    except (OSError, ssl.SSLError) as exc:
        raise UsageError(
            f"cannot use the TLS certificate {certfile} with the key {keyfile}: {exc} "
            "(both PEM; the key unencrypted and matching the certificate)"
        ) from exc
    return ctx


def check_server_files(certfile: str, keyfile: str, *, now: datetime | None = None) -> x509.Certificate:
    """Load ``certfile``/``keyfile`` as :func:`server_context` does and return the leaf certificate.

    Raises:
        UsageError: as :func:`server_context`, or the certificate is not valid now (clients would refuse it).
    """
    server_context(certfile, keyfile)
    with open(certfile, "rb") as f:
        leaf = x509.load_pem_x509_certificates(f.read())[0]
    when = now or datetime.now(UTC)
    if not leaf.not_valid_before_utc <= when <= leaf.not_valid_after_utc:
        raise UsageError(
            f"the TLS certificate {certfile} is valid only from {leaf.not_valid_before_utc:%Y-%m-%d %H:%M} to "
            f"{leaf.not_valid_after_utc:%Y-%m-%d %H:%M} UTC: clients would refuse it"
        )
    return leaf


def uvicorn_context_factory(config: Any, default: Callable[[], ssl.SSLContext]) -> ssl.SSLContext:
    """``uvicorn.Config(ssl_context_factory=...)``: :func:`server_context` on the config's certificate and key."""
    return server_context(str(config.ssl_certfile), str(config.ssl_keyfile), config.ssl_keyfile_password)
