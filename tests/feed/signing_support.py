"""Helpers for the feed's signing tests: a dev PKI with its responders on loopback, signed packages (also ones
nuseal's signer refuses to make), TOTP codes, and `nuseal serve --signing` processes.

TOTP codes are computed here with ``pyotp`` from the secret the feed handed out, independently of the feed's
own checking code.
"""

from __future__ import annotations

import hashlib
import io
import time
import zipfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import pyotp
import pytest
from asn1crypto import cms, tsp
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.hazmat.primitives.serialization import Encoding
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from nuseal.devpki import DevPki, DevPkiServer, serve, timestamp_response
from nuseal.hashalg import HashAlgorithm
from nuseal.package import append_signature
from nuseal.signature.attributes import SignatureType
from nuseal.signature.builder import create_primary_signature
from nuseal.signing import SigningTrust, repository_sign_package, sign_package
from nuseal.signing.signer import FileSigner
from nuseal.trust.online import HttpRevocationFetcher

from .conftest import Feed, run_admin, start_feed

TIMESTAMP_TOKEN_OID = "1.2.840.113549.1.9.16.2.14"
OTHER_REPOSITORY_URL = "https://other.example/v3/index.json"


@dataclass
class SigningPki:
    """A dev PKI and its running TSA/OCSP/CRL responders."""

    dev: DevPki
    server: DevPkiServer

    def signer(self, name: str = "author") -> FileSigner:
        return FileSigner.from_pfx(self.dev.pfx_path(name), self.dev.pfx_password)

    def trust(self) -> SigningTrust:
        return SigningTrust.from_pem_files(self.dev.root_pem_path, fetcher=HttpRevocationFetcher())

    def sign(self, data: bytes, name: str = "author") -> bytes:
        """Author-signed by nuseal's signer with the real dev TSA (every pre-sign check applied)."""
        return sign_package(
            data, self.signer(name), timestamper_url=self.dev.tsa_url, now=datetime.now(UTC), trust=self.trust()
        ).data

    def repository_sign(self, data: bytes, name: str = "repository", url: str = OTHER_REPOSITORY_URL) -> bytes:
        return repository_sign_package(
            data,
            self.signer(name),
            v3_service_index_url=url,
            owners=["someone"],
            timestamper_url=self.dev.tsa_url,
            now=datetime.now(UTC),
            trust=self.trust(),
        ).data

    def timestamper(self, *, gen_time: datetime | None = None, tsa: str = "tsa") -> Callable[[bytes], bytes]:
        """Tokens made in-process by the dev TSA code (no client-side checks), optionally back-dated."""
        key = self.dev.key(tsa)
        assert isinstance(key, rsa.RSAPrivateKey)
        chain = self.dev.chain(tsa)
        return in_process_timestamper(chain[0], key, chain, gen_time=gen_time)

    def forced(
        self,
        data: bytes,
        name: str,
        *,
        timestamped: bool = True,
        gen_time: datetime | None = None,
        signed_at: datetime | None = None,
    ) -> bytes:
        """Author-signed with certificate ``name`` bypassing the pre-sign checks (what a careless or hostile signer
        makes: RSA-1024, wrong EKU, self-signed, expired, untrusted...)."""
        when = signed_at or datetime.now(UTC)
        der = create_primary_signature(
            package_hash=HashAlgorithm.SHA256.digest(data),
            hash_algorithm=HashAlgorithm.SHA256,
            signer=self.signer(name),
            signature_type=SignatureType.AUTHOR,
            signing_time=when,
            timestamper=self.timestamper(gen_time=gen_time) if timestamped else None,
        )
        return append_signature(data, der, when=when)


def served_pki(directory: Path) -> Iterator[SigningPki]:
    dev = DevPki.create(directory)
    with serve(dev) as server:
        yield SigningPki(dev, server)


def with_second_timestamp(package: bytes, pki: SigningPki) -> bytes:
    """The package with a second token added to the primary signer's signature-time-stamp attribute (unsigned
    attributes are outside the signature, so everything else stays valid)."""
    archive = zipfile.ZipFile(io.BytesIO(package))
    info = cms.ContentInfo.load(archive.read(".signature.p7s"))
    signer = info["content"]["signer_infos"][0]
    token = cms.ContentInfo.load(pki.timestamper()(bytes(signer["signature"].native)))
    for attr in signer["unsigned_attrs"]:
        if attr["type"].dotted == TIMESTAMP_TOKEN_OID:
            attr["values"] = cms.SetOfContentInfo([*attr["values"], token])
    unsigned = _without_signature(package)
    return append_signature(unsigned, info.dump(), when=datetime.now(UTC))


def _without_signature(package: bytes) -> bytes:
    from nuseal.package import PackageArchive  # noqa: PLC0415

    return PackageArchive.from_bytes(package).without_signature()


# ------------------------------------------------------------------------------------------------ TOTP
def secret_from_uri(uri: str) -> str:
    assert uri.startswith("otpauth://totp/"), uri
    return parse_qs(urlsplit(uri).query)["secret"][0]


def code(secret: str, *, steps_ahead: int = 0) -> str:
    """The TOTP code of the current 30-second step (+ ``steps_ahead``), computed with pyotp."""
    return pyotp.TOTP(secret).at(datetime.now(UTC) + timedelta(seconds=30 * steps_ahead))


class Codes:
    """Hands out codes of ever newer time steps (the feed refuses a step it already accepted)."""

    def __init__(self, secret: str, first_step_used: bool = True) -> None:
        self.secret = secret
        self.next = 1 if first_step_used else 0

    def fresh(self) -> str:
        steps = self.next
        self.next += 1
        if steps > 1:  # the feed accepts one step ahead at most: wait for the clock instead
            time.sleep(30 - time.time() % 30 + 0.5)
            self.next = 2
            steps = 1
        return code(self.secret, steps_ahead=steps)


def enable_2fa_cli(data_dir: Path, database_url: str | None, user: str) -> Codes:
    """Enrol ``user`` with `nuseal admin enable-2fa` / `confirm-2fa`; returns a code source for later steps."""
    uri = run_admin(data_dir, database_url, "enable-2fa", user).splitlines()[-1]
    secret = secret_from_uri(uri)
    run_admin(data_dir, database_url, "confirm-2fa", user, code(secret))
    return Codes(secret)


# ------------------------------------------------------------------------------------------------ servers
def start_signing_feed(
    data_dir: Path,
    *args: str,
    database_url: str | None = None,
    users: tuple[str, ...] = ("alice", "bob"),
    env: dict[str, str] | None = None,
    workers: int = 1,
) -> Feed:
    """`nuseal serve --signing ARGS...` on a free loopback port, with users (all-scopes key named after each)."""
    return start_feed(data_dir, *args, database_url=database_url, users=users, env=env, workers=workers, signing=True)


def pki_feed_args(pki: SigningPki) -> list[str]:
    """Serve options that make the feed trust ``pki``'s root and sign with its repository certificate."""
    return [
        "--trust-bundle",
        str(pki.dev.root_pem_path),
        "--repository-pfx",
        str(pki.dev.pfx_path("repository")),
        "--timestamper",
        pki.dev.tsa_url,
    ]


def pki_feed_env(pki: SigningPki) -> dict[str, str]:
    return {"NUSEAL_REPOSITORY_PFX_PASSWORD": pki.dev.pfx_password}


def signature_entry(package: bytes) -> bytes:
    return zipfile.ZipFile(io.BytesIO(package)).read(".signature.p7s")


# ------------------------------------------------------------------------------------------------ flow/rules tests
def admin_result(data_dir: Path, database_url: str | None, *args: str) -> tuple[int, str]:
    """`nuseal admin ARGS` in-process through the CLI's entry point (its error handling included): the exit code
    and everything it printed (stdout and stderr)."""
    import contextlib  # noqa: PLC0415

    from nuseal.cli.main import main  # noqa: PLC0415

    extra = ["--data", str(data_dir)] + (["--database", database_url] if database_url else [])
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        rc = main(["admin", *args, *extra])
    return rc, out.getvalue() + err.getvalue()


def stored_keys(feed: Feed, package_id: str) -> list[str]:
    """Every stored file (flat container, registration documents, ...) whose key names ``package_id``."""
    needle = f"/{package_id.lower()}/"
    return [key for key in feed.snapshot() if needle in f"/{key}"]


def assert_not_visible(feed: Feed, package_id: str, version: str) -> None:
    """Nothing of ``package_id`` is stored or served: no flat-container entry, no registration, no search hit."""
    assert stored_keys(feed, package_id) == []
    lower, vlower = package_id.lower(), version.lower()
    with feed.client() as c:
        assert c.get(f"/v3/flatcontainer/{lower}/index.json").status_code == 404
        assert c.get(f"/v3/flatcontainer/{lower}/{vlower}/{lower}.{vlower}.nupkg").status_code == 404
        assert c.get(f"/v3/registration/{lower}/index.json").status_code == 404
        hits = c.get("/v3/search", params={"q": f"packageid:{package_id}", "prerelease": "true"}).json()
        assert hits["totalHits"] == 0, hits


def download(feed: Feed, package_id: str, version: str) -> bytes:
    """The .nupkg as the feed serves it from the flat container."""
    lower, vlower = package_id.lower(), version.lower()
    with feed.client() as c:
        r = c.get(f"/v3/flatcontainer/{lower}/{vlower}/{lower}.{vlower}.nupkg")
    assert r.status_code == 200, r.text
    return r.content


def feed_index_url(feed: Feed) -> str:
    """The V3 service index URL the feed writes into its repository signatures (https, as NuGet requires)."""
    return "https" + feed.source.removeprefix("http")


# ------------------------------------------------------------------------------------------------ made-up TSAs
def issue_tsa(
    pki: SigningPki,
    *,
    key_size: int = 2048,
    not_before: datetime,
    not_after: datetime,
    name: str = "nuseal test TSA",
) -> tuple[x509.Certificate, rsa.RSAPrivateKey, list[x509.Certificate]]:
    """A TSA certificate the dev PKI does not have: RSA ``key_size`` bits, valid ``not_before``..``not_after``,
    issued by the dev intermediate with a critical EKU timeStamping (as ``tsa``) and the intermediate's CRL as its
    CDP (the dev OCSP responder does not know it; the CRL says it is not revoked). Returns the certificate, its key
    and its chain up to the dev root."""
    issuer_key = pki.dev.key("intermediate")
    issuer = pki.dev.cert("intermediate")
    key = rsa.generate_private_key(public_exponent=65537, key_size=key_size)
    subject = x509.Name(
        [
            x509.NameAttribute(NameOID.COMMON_NAME, name),
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, "nuseal tests"),
        ]
    )
    cert = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(issuer.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(not_before)
        .not_valid_after(not_after)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(issuer_key.public_key()), critical=False)
        .add_extension(x509.KeyUsage(True, False, False, False, False, False, False, False, False), critical=True)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.TIME_STAMPING]), critical=True)
        .add_extension(
            x509.CRLDistributionPoints(
                [x509.DistributionPoint([x509.UniformResourceIdentifier(pki.dev.crl_url)], None, None, None)]
            ),
            critical=False,
        )
        .sign(issuer_key, hashes.SHA256())
    )
    return cert, key, [cert, *pki.dev.chain("intermediate")]


def signed_with_tsa(
    pki: SigningPki,
    data: bytes,
    tsa: tuple[x509.Certificate, rsa.RSAPrivateKey, list[x509.Certificate]],
    *,
    gen_time: datetime,
) -> bytes:
    """``data`` author-signed with ``author`` (no pre-sign checks), its timestamp token made in-process by the dev
    TSA code (:func:`nuseal.devpki.timestamp_response`) with ``tsa`` (from :func:`issue_tsa`) at ``gen_time``."""
    cert, key, chain = tsa

    stamp = in_process_timestamper(cert, key, chain, gen_time=gen_time)

    now = datetime.now(UTC)
    der = create_primary_signature(
        package_hash=HashAlgorithm.SHA256.digest(data),
        hash_algorithm=HashAlgorithm.SHA256,
        signer=pki.signer("author"),
        signature_type=SignatureType.AUTHOR,
        signing_time=now,
        timestamper=stamp,
    )
    return append_signature(data, der, when=now)


def in_process_timestamper(
    cert: x509.Certificate,
    key: rsa.RSAPrivateKey,
    chain: list[x509.Certificate],
    *,
    gen_time: datetime | None = None,
) -> Callable[[bytes], bytes]:
    """A timestamper whose RFC 3161 tokens are made in-process by the dev TSA code
    (:func:`nuseal.devpki.timestamp_response`) with ``cert``/``key`` at ``gen_time`` (now when None), with no
    client-side checks, so tests can make tokens a real TSA client would refuse."""

    def stamp(value: bytes) -> bytes:
        request = tsp.TimeStampReq(
            {
                "version": "v1",
                "message_imprint": {
                    "hash_algorithm": {"algorithm": "sha256"},
                    "hashed_message": hashlib.sha256(value).digest(),
                },
                "nonce": 4242,
                "cert_req": True,
            }
        ).dump()
        reply = tsp.TimeStampResp.load(
            timestamp_response(request, tsa_cert=cert, tsa_key=key, chain=chain, gen_time=gen_time or datetime.now(UTC))
        )
        return bytes(reply["time_stamp_token"].dump())

    return stamp


def trusted_signers_config(path: Path, feed: Feed, pki: SigningPki, owners: str) -> Path:
    """Write a nuget.config at ``path`` in ``require`` mode whose ``trustedSigners`` trust the feed's repository
    certificate (SHA-256 fingerprint) for the feed's service index with ``owners`` (semicolon-separated)."""
    fp = hashlib.sha256(pki.dev.cert("repository").public_bytes(Encoding.DER)).hexdigest().upper()
    path.write_text(
        '<?xml version="1.0" encoding="utf-8"?>\n<configuration>\n'
        '  <config><add key="signatureValidationMode" value="require" /></config>\n'
        "  <trustedSigners>\n"
        f'    <repository name="nuseal-feed" serviceIndex="{feed_index_url(feed)}">\n'
        f'      <certificate fingerprint="{fp}" hashAlgorithm="SHA256" allowUntrustedRoot="false" />\n'
        f"      <owners>{owners}</owners>\n"
        "    </repository>\n"
        "  </trustedSigners>\n</configuration>\n"
    )
    return path


def nuseal_verify(capsys: pytest.CaptureFixture[str], pki: SigningPki, package: Path, config: Path) -> tuple[int, str]:
    """`nuseal verify PACKAGE --configfile CONFIG` in-process, trusting ``pki``'s root for code signing and
    timestamping: the exit code and everything printed."""
    from nuseal.cli.main import main  # noqa: PLC0415

    capsys.readouterr()
    roots = str(pki.dev.root_pem_path)
    trust = ["--code-signing-roots", roots, "--timestamping-roots", roots]
    rc = main(["verify", str(package), "--configfile", str(config), *trust])
    out, err = capsys.readouterr()
    return rc, out + err
