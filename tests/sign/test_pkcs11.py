"""Signing with a key that never leaves a PKCS#11 token: SoftHSM2 (Debian ``softhsm2``), a key pair generated
inside the token (sensitive, not extractable), its certificate issued by the dev intermediate and stored on
the token with the chain. Both mechanism paths (hash-and-sign in the token, raw RSA over a host-side
DigestInfo) are checked, and the signatures verified by nuseal, openssl and NuGet's verifier."""

from __future__ import annotations

import os
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pkcs11
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from nuseal.cli.main import main
from nuseal.codes import NuCode
from nuseal.errors import SigningError
from nuseal.hashalg import HashAlgorithm
from nuseal.signature.pkcs11_signer import Pkcs11Signer
from nuseal.signing import repository_sign_package, sign_package

from .conftest import REPO_URL, Pki, oracle_verify, signature_der, signed_data, unsigned_package
from .test_interop import independent_checks

MODULE = Path("/usr/lib/softhsm/libsofthsm2.so")  # Debian/Ubuntu package softhsm2 (libsofthsm2)
TOKEN, PIN, SO_PIN, KEY = "nuseal-test", "1234", "5678", "signing"


@dataclass
class Token:
    module: Path
    certificate: x509.Certificate
    chain_pem: Path


@pytest.fixture(scope="module")
def token(pki: Pki, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Token]:
    if not MODULE.is_file():
        pytest.fail(f"{MODULE} is missing: scripts/install-system-deps.sh installs softhsm2")
    home = tmp_path_factory.mktemp("softhsm")
    (home / "tokens").mkdir()
    conf = home / "softhsm2.conf"
    conf.write_text(f"directories.tokendir = {home / 'tokens'}\nobjectstore.backend = file\nlog.level = ERROR\n")
    previous = os.environ.get("SOFTHSM2_CONF")
    os.environ["SOFTHSM2_CONF"] = str(conf)
    subprocess.run(["softhsm2-util", "--init-token", "--free", "--label", TOKEN, "--pin", PIN, "--so-pin", SO_PIN],
                   check=True, capture_output=True)
    lib = pkcs11.lib(str(MODULE))
    lib.reinitialize()  # SoftHSM reads SOFTHSM2_CONF and the token directory in C_Initialize
    try:
        with lib.get_token(token_label=TOKEN).open(user_pin=PIN, rw=True) as session:
            public, _private = session.generate_keypair(
                pkcs11.KeyType.RSA, 2048, label=KEY, id=b"\x01", store=True,
                private_template={pkcs11.Attribute.SENSITIVE: True, pkcs11.Attribute.EXTRACTABLE: False},
            )
            numbers = rsa.RSAPublicNumbers(int.from_bytes(public[pkcs11.Attribute.PUBLIC_EXPONENT], "big"),
                                           int.from_bytes(public[pkcs11.Attribute.MODULUS], "big"))
            issuer = pki.dev.cert("intermediate")
            now = datetime.now(UTC)
            cert = (
                x509.CertificateBuilder()
                .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "nuseal token signer")]))
                .issuer_name(issuer.subject)
                .public_key(numbers.public_key())
                .serial_number(x509.random_serial_number())
                .not_valid_before(now - timedelta(hours=1))
                .not_valid_after(now + timedelta(days=30))
                .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
                .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.CODE_SIGNING]), critical=False)
                .add_extension(x509.SubjectKeyIdentifier.from_public_key(numbers.public_key()), critical=False)
                .sign(pki.dev.key("intermediate"), hashes.SHA256())  # type: ignore[arg-type]
            )
            for label, certificate, object_id in ((KEY, cert, b"\x01"), ("ca", issuer, b"\x02"),
                                                  ("root", pki.dev.cert("root"), b"\x03")):
                session.create_object({
                    pkcs11.Attribute.CLASS: pkcs11.ObjectClass.CERTIFICATE,
                    pkcs11.Attribute.CERTIFICATE_TYPE: pkcs11.CertificateType.X_509,
                    pkcs11.Attribute.TOKEN: True,
                    pkcs11.Attribute.LABEL: label,
                    pkcs11.Attribute.ID: object_id,
                    pkcs11.Attribute.SUBJECT: certificate.subject.public_bytes(),
                    pkcs11.Attribute.VALUE: certificate.public_bytes(serialization.Encoding.DER),
                })
        chain_pem = home / "chain.pem"
        chain_pem.write_bytes(b"".join(c.public_bytes(serialization.Encoding.PEM) for c in (cert, issuer)))
        yield Token(MODULE, cert, chain_pem)
    finally:
        if previous is None:
            os.environ.pop("SOFTHSM2_CONF", None)
        else:
            os.environ["SOFTHSM2_CONF"] = previous
        lib.finalize()  # the next user initializes again, with its own configuration


def test_the_private_key_cannot_leave_the_token(token: Token) -> None:
    with pkcs11.lib(str(token.module)).get_token(token_label=TOKEN).open(user_pin=PIN) as session:
        key = session.get_key(object_class=pkcs11.ObjectClass.PRIVATE_KEY, label=KEY)
        assert key[pkcs11.Attribute.SENSITIVE] and not key[pkcs11.Attribute.EXTRACTABLE]
        with pytest.raises(pkcs11.PKCS11Error):
            key[pkcs11.Attribute.PRIVATE_EXPONENT]


@pytest.mark.parametrize("raw_rsa", [False, True], ids=["hash-and-sign", "raw-rsa-digestinfo"])
@pytest.mark.parametrize("algorithm", list(HashAlgorithm), ids=lambda a: a.nuget_name)
def test_sign_with_the_token(pki: Pki, token: Token, tmp_path: Path, raw_rsa: bool, algorithm: HashAlgorithm) -> None:
    signer = Pkcs11Signer(token.module, token_label=TOKEN, key_label=KEY, pin=PIN, raw_rsa=raw_rsa)
    assert signer.uses_raw_rsa is raw_rsa
    assert signer.certificate == token.certificate  # found on the token by label
    assert {c.subject.rfc4514_string() for c in signer.chain} == {
        pki.dev.cert("intermediate").subject.rfc4514_string(), pki.dev.cert("root").subject.rfc4514_string()}
    unsigned = unsigned_package(f"Token.{algorithm.nuget_name}")
    data = sign_package(unsigned, signer, timestamper_url=pki.dev.tsa_url, now=datetime.now(UTC),
                        hash_algorithm=algorithm, trust=pki.strict_trust()).data
    result = pki.verify(data)
    assert result.valid and not result.errors and not result.warnings, [str(i) for i in result.issues]
    assert result.signatures[0].signer_subject == "CN=nuseal token signer"
    independent_checks(pki, data, unsigned, tmp_path)
    info = signed_data(data)["signer_infos"][0]
    assert info["digest_algorithm"]["algorithm"].dotted == algorithm.oid


def test_cli_with_the_token_and_nugets_verdict(pki: Pki, token: Token, tmp_path: Path,
                                              capsys: pytest.CaptureFixture[str]) -> None:
    package = tmp_path / "Token.Cli.1.0.0.nupkg"
    package.write_bytes(unsigned_package("Token.Cli"))
    args = ["--pkcs11-module", str(token.module), "--pkcs11-token", TOKEN, "--pkcs11-key", KEY,
            "--timestamper", pki.dev.tsa_url, "--trust-bundle", str(pki.dev.root_pem_path)]
    assert main(["sign", str(package), *args, "--pkcs11-pin", PIN]) == 0
    assert main(["repo-sign", str(package), *args, "--pkcs11-pin", PIN, "--certificate-path", str(token.chain_pem),
                 "--v3-service-index-url", REPO_URL]) == 0
    data = package.read_bytes()
    assert [(s.type, s.signer_subject) for s in pki.verify(data).signatures] == [
        ("Author", "CN=nuseal token signer"), ("Repository", "CN=nuseal token signer")]
    assert signature_der(data)
    capsys.readouterr()
    assert main(["sign", str(package), *args, "--pkcs11-pin", "0000", "--overwrite"]) == 2
    assert "NU3001" in capsys.readouterr().err
    assert package.read_bytes() == data


@pytest.mark.oracle
def test_nuget_accepts_a_token_signature(pki: Pki, token: Token) -> None:
    signer = Pkcs11Signer(token.module, token_label=TOKEN, key_label=KEY, pin=PIN)
    author = sign_package(unsigned_package("Token.Oracle"), signer, timestamper_url=pki.dev.tsa_url,
                          now=datetime.now(UTC), trust=pki.strict_trust()).data
    both = repository_sign_package(author, pki.signer("repository"), v3_service_index_url=REPO_URL, owners=None,
                                   timestamper_url=pki.dev.tsa_url, now=datetime.now(UTC),
                                   trust=pki.strict_trust()).data
    report = oracle_verify(pki, both)
    for policy, verdict in report.policies.items():
        assert verdict.valid and not verdict.codes - {"info:NU3000"}, (policy, verdict.codes)


def test_wrong_pin_and_unknown_key(token: Token) -> None:
    with pytest.raises(SigningError) as refused:
        Pkcs11Signer(token.module, token_label=TOKEN, key_label=KEY, pin="0000")
    assert refused.value.code is NuCode.NU3001 and "wrong PIN" in refused.value.message
    with pytest.raises(SigningError) as refused:
        Pkcs11Signer(token.module, token_label=TOKEN, key_label="nope", pin=PIN)
    assert refused.value.code is NuCode.NU3001 and "no such key" in refused.value.message
    with pytest.raises(SigningError) as refused:
        Pkcs11Signer(token.module, token_label="no-such-token", key_label=KEY, pin=PIN)
    assert refused.value.code is NuCode.NU3001 and "no such token" in refused.value.message
