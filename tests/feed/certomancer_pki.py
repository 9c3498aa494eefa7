"""A certomancer PKI (root -> intermediate -> author / other author / repository, and a TSA) whose OCSP
responder, CRLs and RFC 3161 TSA are certomancer's own aiohttp Animator, served on 127.0.0.1 from a thread.

This is the second, independent PKI of the feed's signing tests (the first is ``nuseal.devpki``): the
certificates, the OCSP and CRL answers and the timestamp tokens come from certomancer's code, not ours.

Revocation after the fact: certomancer judges revocation from the certificate spec (``revoked-since``) at the
request time. :meth:`CertomancerPki.revoke` rebuilds the architecture from the same configuration plus a
``revocation`` entry and swaps it into the running app; certificates are the same bytes (fixed keys, serials
and validity; RSA PKCS#1 v1.5 signatures are deterministic), so what changes is only what OCSP and CRLs say,
as when a CA revokes a certificate with a back-dated compromise time.
"""

from __future__ import annotations

import asyncio
import copy
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from aiohttp import web
from certomancer.integrations.aiohttp_animator import build_animator_app
from certomancer.registry import ArchLabel, CertLabel, CertomancerConfig, PKIArchitecture
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.hazmat.primitives.serialization import pkcs12

from nuseal.signing.signer import FileSigner

ARCH = "nuseal"
PFX_PASSWORD = "certomancer-test"
KEYS = ("root", "interm", "author", "other", "repository", "tsa")
VALID_FROM = "2025-01-01T00:00:00+0000"
VALID_TO = "2030-01-01T00:00:00+0000"


def _key_usage(*usages: str) -> dict[str, Any]:
    return {"id": "key_usage", "critical": True, "smart-value": {"schema": "key-usage", "params": list(usages)}}


def _leaf(eku: str, issuer: str = "interm") -> dict[str, Any]:
    """A leaf with ``eku``: CRL distribution point of its issuer's CRL, OCSP in AIA when issued by ``interm``."""
    extensions: list[dict[str, Any]] = [
        _key_usage("digital_signature"),
        {"id": "extended_key_usage", "critical": eku == "time_stamping", "value": [eku]},
        {
            "id": "crl_distribution_points",
            "smart-value": {"schema": "crl-dist-url", "params": {"crl-repo-names": [issuer]}},
        },
    ]
    if issuer == "interm":
        extensions.append(
            {
                "id": "authority_information_access",
                "smart-value": {"schema": "aia-urls", "params": {"ocsp-responder-names": ["interm"]}},
            }
        )
    return {"issuer": issuer, "validity": {"valid-from": VALID_FROM, "valid-to": VALID_TO}, "extensions": extensions}


def _config(key_dir: Path, url: str) -> dict[str, Any]:
    ca_validity = {"valid-from": "2020-01-01T00:00:00+0000", "valid-to": "2040-01-01T00:00:00+0000"}
    return {
        "external-url-prefix": url,
        "keysets": {"keys": {"path-prefix": str(key_dir), "keys": {k: {"path": f"{k}.key.pem"} for k in KEYS}}},
        "pki-architectures": {
            ARCH: {
                "keyset": "keys",
                "entity-defaults": {"country-name": "BE", "organization-name": "certomancer for nuseal"},
                "entities": {
                    "root": {"common-name": "certomancer Root CA"},
                    "interm": {"common-name": "certomancer Intermediate CA"},
                    "author": {"common-name": "certomancer Author"},
                    "other": {"common-name": "certomancer Other Author"},
                    "repository": {"common-name": "certomancer Repository"},
                    "tsa": {"common-name": "certomancer TSA"},
                },
                "certs": {
                    "root": {
                        "subject": "root",
                        "subject-key": "root",
                        "issuer": "root",
                        "authority-key": "root",
                        "validity": ca_validity,
                        "extensions": [
                            {"id": "basic_constraints", "critical": True, "value": {"ca": True}},
                            _key_usage("digital_signature", "key_cert_sign", "crl_sign"),
                        ],
                    },
                    "interm": {
                        "issuer": "root",
                        "validity": ca_validity,
                        "extensions": [
                            {"id": "basic_constraints", "critical": True, "value": {"ca": True}},
                            _key_usage("digital_signature", "key_cert_sign", "crl_sign"),
                            {
                                "id": "crl_distribution_points",
                                "smart-value": {"schema": "crl-dist-url", "params": {"crl-repo-names": ["root"]}},
                            },
                        ],
                    },
                    "author": _leaf("code_signing"),
                    "other": _leaf("code_signing"),
                    "repository": _leaf("code_signing"),
                    "tsa": _leaf("time_stamping", issuer="root"),  # certomancer's tokens carry the TSA certificate only
                },
                "services": {
                    "ocsp": {"interm": {"for-issuer": "interm", "responder-cert": "interm", "signing-key": "interm"}},
                    "crl-repo": {
                        "root": {"for-issuer": "root", "signing-key": "root", "simulated-update-schedule": "P30D"},
                        # a CRL a minute: certomancer lists a revocation from the first update after it
                        "interm": {
                            "for-issuer": "interm",
                            "signing-key": "interm",
                            "simulated-update-schedule": "PT1M",
                        },
                    },
                    "time-stamping": {"tsa": {"signing-key": "tsa", "signing-cert": "tsa"}},
                },
            }
        },
    }


@dataclass
class CertomancerPki:
    """The running Animator and what the tests need from its PKI."""

    directory: Path
    url: str
    key_dir: Path
    architectures: dict[ArchLabel, PKIArchitecture]
    revocations: dict[str, dict[str, str]] = field(default_factory=dict)

    @property
    def arch(self) -> PKIArchitecture:
        return self.architectures[ArchLabel(ARCH)]

    @property
    def tsa_url(self) -> str:
        return f"{self.url}/{ARCH}/tsa/tsa"

    def cert(self, name: str) -> x509.Certificate:
        return x509.load_der_x509_certificate(self.arch.get_cert(CertLabel(name)).dump())

    def key(self, name: str) -> rsa.RSAPrivateKey:
        key = serialization.load_pem_private_key((self.key_dir / f"{name}.key.pem").read_bytes(), None)
        assert isinstance(key, rsa.RSAPrivateKey)
        return key

    def chain(self, name: str) -> tuple[x509.Certificate, ...]:
        if name == "tsa":
            return (self.cert(name), self.cert("root"))
        return (self.cert(name), self.cert("interm"), self.cert("root"))

    def signer(self, name: str) -> FileSigner:
        return FileSigner(self.cert(name), self.key(name), self.chain(name)[1:])

    def root_pem(self) -> Path:
        path = self.directory / "root.pem"
        path.write_bytes(self.cert("root").public_bytes(serialization.Encoding.PEM))
        return path

    def cer(self, name: str) -> Path:
        """The certificate as a DER ``.cer`` file (what an author registers)."""
        path = self.directory / f"{name}.cer"
        path.write_bytes(self.cert(name).public_bytes(serialization.Encoding.DER))
        return path

    def pfx(self, name: str) -> Path:
        path = self.directory / f"{name}.pfx"
        path.write_bytes(
            pkcs12.serialize_key_and_certificates(
                name.encode(),
                self.key(name),
                self.cert(name),
                list(self.chain(name)[1:]),
                serialization.BestAvailableEncryption(PFX_PASSWORD.encode()),
            )
        )
        return path

    def revoke(self, name: str, *, since: datetime, reason: str = "key_compromise") -> None:
        """From now on OCSP and CRLs say ``name`` was revoked at ``since`` (timezone-aware)."""
        self.revocations[name] = {"revoked-since": since.strftime("%Y-%m-%dT%H:%M:%S+0000"), "reason": reason}
        config = copy.deepcopy(_config(self.key_dir, self.url))
        for label, revocation in self.revocations.items():
            config["pki-architectures"][ARCH]["certs"][label]["revocation"] = revocation
        before = {n: self.cert(n) for n in KEYS}
        arch = CertomancerConfig(config, key_search_dir=str(self.directory)).get_pki_arch(ArchLabel(ARCH))
        self.architectures[ArchLabel(ARCH)] = arch
        assert {n: self.cert(n) for n in KEYS} == before, "certomancer issued different certificates"


def serve_certomancer(directory: Path) -> Iterator[CertomancerPki]:
    """Generate keys, start the Animator on a free loopback port (in a thread), build the PKI for that URL."""
    key_dir = directory / "keys"
    key_dir.mkdir(parents=True)
    for name in KEYS:
        key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        (key_dir / f"{name}.key.pem").write_bytes(
            key.private_bytes(
                serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
            )
        )
    architectures: dict[ArchLabel, PKIArchitecture] = {}
    app = build_animator_app(architectures, with_web_ui=False, allow_time_override=False)
    loop = asyncio.new_event_loop()
    runner = web.AppRunner(app, access_log=None)
    loop.run_until_complete(runner.setup())
    site = web.TCPSite(runner, "127.0.0.1", 0)
    loop.run_until_complete(site.start())
    server = site._server  # aiohttp keeps the asyncio server here; it knows the port it bound
    assert server is not None
    port = server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    url = f"http://127.0.0.1:{port}"
    config = CertomancerConfig(_config(key_dir, url), key_search_dir=str(directory))
    architectures[ArchLabel(ARCH)] = config.get_pki_arch(ArchLabel(ARCH))
    thread = threading.Thread(target=loop.run_forever, name="certomancer-animator", daemon=True)
    thread.start()
    try:
        yield CertomancerPki(directory, url, key_dir, architectures)
    finally:
        asyncio.run_coroutine_threadsafe(runner.cleanup(), loop).result(timeout=10)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(timeout=10)
        loop.close()
