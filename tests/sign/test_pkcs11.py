"""Signing with a key that lives in a PKCS#11 token: SoftHSM2 (Debian's ``softhsm2``), a key pair generated
inside the token as sensitive and not extractable, its certificate issued by the dev PKI's intermediate CA and
stored in the token. The key never leaves the token; the signatures are checked by nuseal, openssl and NuGet.

The token is made with ``tests/support/softhsm.py`` (its own ``SOFTHSM2_CONF``, library unloaded before and
after).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import pkcs11
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa

from nuseal.cli.main import main
from nuseal.codes import NuCode
from nuseal.errors import SigningError, UsageError
from nuseal.hashalg import HashAlgorithm
from nuseal.signing import repository_sign_package, sign_package
from nuseal.signing.pkcs11 import Pkcs11Signer
from nuseal.signing.signer import FileSigner
from support.softhsm import MODULE, PIN, generate_key, issue, softhsm_conf, store_certificate

from .conftest import (
    REPO_URL,
    TIMESTAMP_TOKEN_OID,
    Pki,
    hash_property,
    openssl_cms_verify,
    openssl_ts_verify,
    oracle_verify,
    signature_der,
    signed_data,
    spec_hash,
    unsigned_attribute,
    unsigned_package,
)

TOKEN = "nuseal-test"


@dataclass
class Token:
    """The SoftHSM2 token and what was put into it."""

    directory: Path
    certificates: dict[str, x509.Certificate]  # key label -> its certificate
    public_keys: dict[str, rsa.RSAPublicKey]

    def signer(self, key: str = "signing", **kwargs: object) -> Pkcs11Signer:
        return Pkcs11Signer(MODULE, token_label=TOKEN, key_label=key, pin=PIN, **kwargs)  # type: ignore[arg-type]

    def chain_pem(self, key: str, pki: Pki) -> Path:
        path = self.directory / f"{key}-chain.pem"
        path.write_bytes(self.certificates[key].public_bytes(serialization.Encoding.PEM)
                         + pki.dev.cert_path("intermediate").read_bytes() + pki.dev.root_pem_path.read_bytes())
        return path


@pytest.fixture(scope="module")
def token(pki: Pki, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Token]:
    """Keys: ``signing`` (certificate labelled ``signing``), ``by-id`` (certificate found only by CKA_ID),
    ``no-certificate``; the dev intermediate's certificate is in the token too (a chain candidate), and so is a
    second certificate labelled ``signing`` that is for the ``by-id`` key (not a candidate for ``signing``)."""
    with softhsm_conf(tmp_path_factory.mktemp("softhsm")) as hsm:
        hsm.init_token(TOKEN)
        certificates: dict[str, x509.Certificate] = {}
        public_keys: dict[str, rsa.RSAPublicKey] = {}
        with hsm.session(TOKEN) as session:
            for number, label in enumerate(("signing", "by-id", "no-certificate"), start=1):
                public_keys[label] = generate_key(session, label, bytes([number]))
            store_certificate(session, issue(pki.dev, public_keys["by-id"], "nuseal HSM decoy"), label="signing",
                              key_id=b"decoy")
            for label, cert_label in (("signing", "signing"), ("by-id", "a certificate")):
                certificates[label] = issue(pki.dev, public_keys[label], f"nuseal HSM {label}")
                store_certificate(session, certificates[label], label=cert_label,
                                  key_id=bytes([1 if label == "signing" else 2]))
            store_certificate(session, pki.dev.cert("intermediate"), label="issuing CA", key_id=b"ca")
        yield Token(hsm.directory, certificates, public_keys)


def test_the_private_key_cannot_leave_the_token(token: Token) -> None:
    with pkcs11.lib(MODULE).get_token(token_label=TOKEN).open(user_pin=PIN) as session:
        key = session.get_key(object_class=pkcs11.ObjectClass.PRIVATE_KEY, label="signing")
        assert key[pkcs11.Attribute.SENSITIVE] and not key[pkcs11.Attribute.EXTRACTABLE]
        assert key[pkcs11.Attribute.NEVER_EXTRACTABLE] and key[pkcs11.Attribute.LOCAL]  # generated in the token
        with pytest.raises(pkcs11.AttributeSensitive):
            key[pkcs11.Attribute.PRIVATE_EXPONENT]
        with pytest.raises(pkcs11.AttributeSensitive):
            key[pkcs11.Attribute.PRIME_1]


@pytest.mark.parametrize("raw_rsa", [False, True], ids=["hash-and-sign", "raw-rsa-digestinfo"])
@pytest.mark.parametrize("algorithm", list(HashAlgorithm), ids=lambda a: a.nuget_name)
def test_sign_with_the_token(pki: Pki, token: Token, tmp_path: Path, raw_rsa: bool,
                             algorithm: HashAlgorithm) -> None:
    unsigned = unsigned_package()
    with token.signer(raw_rsa=raw_rsa) as signer:  # the certificate comes from the token
        assert signer.uses_raw_rsa is raw_rsa
        assert signer.certificate == token.certificates["signing"]
        assert pki.dev.cert("intermediate") in signer.chain
        signed = sign_package(unsigned, signer, timestamper_url=pki.dev.tsa_url, now=datetime.now(UTC),
                              hash_algorithm=algorithm, trust=pki.strict_trust())
    assert signed.warnings == []
    result = pki.verify(signed.data)
    assert result.valid and not result.errors and not result.warnings, [str(i) for i in result.issues]
    assert result.signatures[0].signer_subject == "CN=nuseal HSM signing"
    assert result.signatures[0].hash_algorithm == algorithm.nuget_name
    # the same signature, made outside nuseal's reach, verifies with the certificate's public key
    info = signed_data(signed.data)["signer_infos"][0]
    attrs_set = b"\x31" + info["signed_attrs"].dump()[1:]  # signed over as SET OF, not as [0] IMPLICIT
    token.public_keys["signing"].verify(info["signature"].native, attrs_set, padding.PKCS1v15(),
                                        {HashAlgorithm.SHA256: hashes.SHA256(), HashAlgorithm.SHA384: hashes.SHA384(),
                                         HashAlgorithm.SHA512: hashes.SHA512()}[algorithm])
    assert hash_property(signed.data) == (algorithm.oid, spec_hash(signed.data, algorithm.name.lower()))
    assert openssl_cms_verify(signature_der(signed.data), pki.dev.root_pem_path, tmp_path).startswith(b"Version:1")
    (token_der,) = unsigned_attribute(info, TIMESTAMP_TOKEN_OID)
    openssl_ts_verify(token_der.dump(), info["signature"].native, pki.dev.root_pem_path, tmp_path)


def test_certificate_found_by_key_id_and_repository_signing(pki: Pki, token: Token) -> None:
    author = sign_package(unsigned_package(), pki.signer(), timestamper_url=pki.dev.tsa_url, now=datetime.now(UTC),
                          trust=pki.strict_trust()).data
    with token.signer("by-id") as signer:
        assert signer.certificate == token.certificates["by-id"]
        countersigned = repository_sign_package(author, signer, v3_service_index_url=REPO_URL, owners=["alice"],
                                                timestamper_url=pki.dev.tsa_url, now=datetime.now(UTC),
                                                trust=pki.strict_trust()).data
    result = pki.verify(countersigned)
    assert result.valid and not result.errors and not result.warnings, [str(i) for i in result.issues]
    author_subject = pki.verify(author).signatures[0].signer_subject
    assert [(s.placement, s.signer_subject) for s in result.signatures] == [
        ("primary", author_subject), ("countersignature", "CN=nuseal HSM by-id")]


def test_cli_with_the_token(pki: Pki, token: Token, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    package = tmp_path / "Sign.Test.1.0.0.nupkg"
    package.write_bytes(unsigned_package())
    token_args = ["--pkcs11-module", MODULE, "--pkcs11-token", TOKEN, "--pkcs11-pin", PIN,
                  "--trust-bundle", str(pki.dev.root_pem_path)]
    assert main(["sign", str(package), "--pkcs11-key", "signing", "--timestamper", pki.dev.tsa_url,
                 *token_args]) == 0
    # a key whose certificate is not in the token: the chain comes from a PEM file
    with pytest.raises(SigningError) as missing:
        token.signer("no-certificate")
    assert missing.value.code is NuCode.NU3001 and "holds no certificate" in missing.value.message
    assert main(["repo-sign", str(package), "--pkcs11-key", "signing", "--certificate-path",
                 str(token.chain_pem("signing", pki)), "--v3-service-index-url", REPO_URL, "--package-owners",
                 "alice", "--timestamper", pki.dev.tsa_url, *token_args]) == 0
    capsys.readouterr()
    assert main(["verify", str(package), "--revocation-mode", "offline", "--code-signing-roots",
                 str(pki.dev.root_pem_path), "--timestamping-roots", str(pki.dev.root_pem_path)]) == 0
    assert main(["sign", str(package), "--pkcs11-key", "signing", "--overwrite", *token_args[:4], "--pkcs11-pin",
                 "0000"]) != 0
    assert "NU3001" in capsys.readouterr().err


def test_refusals_name_the_problem(pki: Pki, token: Token) -> None:
    cases: list[tuple[dict[str, object], str]] = [
        ({"pin": "0000"}, "wrong PIN"),
        ({"key_label": "missing"}, "no such private key"),
        ({"token_label": "missing"}, "no such token"),
        ({"certificate_chain": pki.dev.chain_pem_path("author")}, "does not belong to the certificate"),
    ]
    for changes, reason in cases:
        kwargs: dict[str, object] = {"token_label": TOKEN, "key_label": "signing", "pin": PIN, **changes}
        with pytest.raises(SigningError) as refused:
            Pkcs11Signer(MODULE, **kwargs)  # type: ignore[arg-type]
        assert refused.value.code is NuCode.NU3001 and reason in refused.value.message, (changes, refused.value)
    with pytest.raises(UsageError, match="needs a user PIN"):
        Pkcs11Signer(MODULE, token_label=TOKEN, key_label="signing", pin=None)
    signer = token.signer()
    signer.close()
    with pytest.raises(SigningError) as closed:
        signer.sign(b"data", HashAlgorithm.SHA256)
    assert closed.value.code is NuCode.NU3001


@pytest.mark.oracle
def test_nuget_accepts_token_signatures(pki: Pki, token: Token) -> None:
    with token.signer(raw_rsa=True) as signer:
        signed = sign_package(unsigned_package(), signer, timestamper_url=pki.dev.tsa_url, now=datetime.now(UTC),
                              trust=pki.strict_trust()).data
    with token.signer("by-id") as signer:
        both = repository_sign_package(signed, signer, v3_service_index_url=REPO_URL, owners=["alice"],
                                       timestamper_url=pki.dev.tsa_url, now=datetime.now(UTC),
                                       trust=pki.strict_trust()).data
    for data in (signed, both):
        report = oracle_verify(pki, data)
        assert report.fatal is None, report.fatal
        for policy, verdict in report.verdicts.items():
            assert verdict.is_valid and not verdict.codes, (policy, verdict.codes)


def test_one_login_per_token_in_a_process(token: Token) -> None:
    """PKCS#11 login belongs to the application, not the session: a second signer on a token this process is
    logged in to is refused (its PIN could not be checked, and the first signer's logout would end its login);
    the first signer keeps working."""
    with token.signer() as first:
        with pytest.raises(SigningError) as second:
            token.signer("by-id")
        assert second.value.code is NuCode.NU3001 and "another session" in second.value.message
        signature = first.sign(b"data", HashAlgorithm.SHA256)
    token.public_keys["signing"].verify(signature, b"data", padding.PKCS1v15(), hashes.SHA256())
    with token.signer("by-id") as again:  # after the first closed
        assert again.certificate == token.certificates["by-id"]


def test_cli_option_combinations(pki: Pki, token: Token, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    package = tmp_path / "Sign.Test.1.0.0.nupkg"
    unsigned = unsigned_package()
    package.write_bytes(unsigned)
    cases = [
        (["--pkcs11-key", "signing", "--pkcs11-token", TOKEN], "need --pkcs11-module"),
        ([], "--certificate-path is required"),
        (["--pkcs11-module", MODULE, "--pkcs11-token", TOKEN], "needs --pkcs11-token and --pkcs11-key"),
        (["--pkcs11-module", MODULE, "--pkcs11-token", TOKEN, "--pkcs11-key", "signing", "--pkcs11-pin", PIN,
          "--certificate-key-path", str(pki.dev.key_path("author"))], "cannot be used with --pkcs11-module"),
    ]
    for args, message in cases:
        assert main(["sign", str(package), *args]) != 0
        assert message in capsys.readouterr().err, args
    assert package.read_bytes() == unsigned


def test_file_signer_refuses_a_key_of_another_certificate(pki: Pki) -> None:
    key = pki.dev.key("repository")
    assert isinstance(key, rsa.RSAPrivateKey)
    with pytest.raises(SigningError) as refused:
        FileSigner(pki.dev.cert("author"), key)
    assert refused.value.code is NuCode.NU3001 and "does not belong to the certificate" in refused.value.message
