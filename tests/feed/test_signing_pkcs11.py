"""The feed's repository key in a PKCS#11 token (issue 5: "in production a PFX or PKCS#11 key and a real TSA URL
are configured"): SoftHSM2 with an RSA key pair generated inside the token (sensitive, not extractable) and its
certificate, issued by the dev PKI's intermediate, stored next to it; no certificate chain PEM is given, so
`nuseal serve` reads the certificate and the intermediate from the token. The PIN comes from
NUSEAL_REPOSITORY_PKCS11_PIN; a wrong one stops `nuseal serve` at start with one line naming the problem.
"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding

from nuseal.cli.main import main
from nuseal.codes import NuCode
from nuseal.errors import ConfigError
from nuseal.feed.config import PKCS11_PIN_ENV_VAR, SigningConfig
from nuseal.package import PackageArchive
from nuseal.signature import PrimarySignature, SignatureType
from nuseal.timestamp import timestamps_of
from support.softhsm import MODULE, PIN, generate_key, issue, softhsm_conf, store_certificate

from .conftest import make_package
from .signing_support import SigningPki, served_pki, start_signing_feed

TOKEN = "nuseal-feed"
KEY = "repository"
SHA256_OID = "2.16.840.1.101.3.4.2.1"


@dataclass(frozen=True)
class RepositoryToken:
    env: dict[str, str]  # SOFTHSM2_CONF for the feed process
    certificate: x509.Certificate


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SigningPki]:
    yield from served_pki(tmp_path_factory.mktemp("pki"))


@pytest.fixture(scope="module")
def token(pki: SigningPki, tmp_path_factory: pytest.TempPathFactory) -> Iterator[RepositoryToken]:
    with softhsm_conf(tmp_path_factory.mktemp("softhsm")) as hsm:
        hsm.init_token(TOKEN)
        with hsm.session(TOKEN) as session:
            public = generate_key(session, KEY, b"\x01")
            certificate = issue(pki.dev, public, "nuseal HSM repository")
            store_certificate(session, certificate, label=KEY, key_id=b"\x01")
            store_certificate(session, pki.dev.cert("intermediate"), label="issuing CA", key_id=b"ca")
        yield RepositoryToken(hsm.env, certificate)


def _serve_args(pki: SigningPki) -> list[str]:
    return [
        "--repository-pkcs11-module", MODULE, "--repository-pkcs11-token", TOKEN, "--repository-pkcs11-key", KEY,
        "--trust-bundle", str(pki.dev.root_pem_path), "--timestamper", pki.dev.tsa_url,
    ]


@pytest.mark.parametrize("workers", [1, 2])
def test_repository_signs_with_the_token_key(pki: SigningPki, token: RepositoryToken, tmp_path: Path,
                                             workers: int) -> None:
    """Every worker process logs in to the token on its own (PKCS#11 login is per process)."""
    feed = start_signing_feed(tmp_path / "feed", *_serve_args(pki), users=("alice",), workers=workers,
                              env={**token.env, PKCS11_PIN_ENV_VAR: PIN})
    try:
        unsigned = make_package("Hsm.Lib", "1.0.0")
        pushed = feed.push(unsigned)
        assert pushed.status_code == 201, pushed.text
        with feed.client() as c:
            served = c.get("/v3/flatcontainer/hsm.lib/1.0.0/hsm.lib.1.0.0.nupkg")
            index = c.get("/v3/repository-signatures/index.json")
        assert served.status_code == 200, served.text
        assert index.status_code == 200, index.text
    finally:
        feed.stop()
    archive = PackageArchive.from_bytes(served.content)
    assert archive.without_signature() == unsigned
    primary = PrimarySignature.load(archive.read_signature())
    assert primary.type is SignatureType.REPOSITORY
    assert primary.signer_certificate == token.certificate
    assert timestamps_of(primary) and timestamps_of(primary)[0].signer_certificate == pki.dev.cert("tsa")
    listed = json.loads(index.content)["signingCertificates"]
    assert [c["fingerprints"][SHA256_OID] for c in listed] == [
        hashlib.sha256(token.certificate.public_bytes(Encoding.DER)).hexdigest()]
    package = tmp_path / "Hsm.Lib.1.0.0.nupkg"
    package.write_bytes(served.content)
    root = str(pki.dev.root_pem_path)
    # online revocation: the token certificate's CRL distribution point is the dev CRL responder
    assert main(["verify", "--all", str(package), "--code-signing-roots", root, "--timestamping-roots", root]) == 0


@pytest.mark.parametrize(("pin", "reason"), [("0000", "wrong PIN"), (None, f"needs a user PIN ({PKCS11_PIN_ENV_VAR})")],
                         ids=["wrong-pin", "no-pin"])
def test_serve_refuses_to_start_without_the_right_pin(pki: SigningPki, token: RepositoryToken, tmp_path: Path,
                                                       pin: str | None, reason: str) -> None:
    env = {k: v for k, v in os.environ.items() if k != PKCS11_PIN_ENV_VAR}
    env.update(token.env)
    if pin is not None:
        env[PKCS11_PIN_ENV_VAR] = pin
    # `nuseal serve` as users run it (the CLI entry point, which turns a ConfigError into one line)
    result = subprocess.run(
        [sys.executable, "-m", "nuseal.cli.main", "serve", "--data", str(tmp_path / "feed"), "--port", "0",
         "--signing", *_serve_args(pki)],
        env=env, capture_output=True, text=True, timeout=120, check=False,
    )
    assert result.returncode != 0
    assert "nuseal feed on" not in result.stdout
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in result.stderr, result.stderr
    assert lines[0].startswith("error: cannot load the repository-signing key: ") and reason in lines[0], lines
    assert f"PKCS#11 token {TOKEN!r}" in lines[0]
    if pin is not None:
        assert NuCode.NU3001.value in lines[0], lines


def test_signing_config_pkcs11_checks() -> None:
    key = SigningConfig(enabled=True, repository_pkcs11_module=MODULE, repository_pkcs11_token=TOKEN,
                        repository_pkcs11_key=KEY)  # no certificate chain: read from the token
    assert not key.uses_dev_pki and key.repository_certificate_chain is None
    with pytest.raises(ConfigError, match="needs its token label and key label"):
        SigningConfig(enabled=True, repository_pkcs11_module=MODULE, repository_pkcs11_token=TOKEN)
    with pytest.raises(ConfigError, match="only used with a PKCS#11 repository key"):
        SigningConfig(enabled=True, repository_pfx="repository.pfx", repository_certificate_chain="chain.pem")
