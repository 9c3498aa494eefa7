"""Signing with nuseal: round trips, independent checks (openssl, a from-spec hash, NuGet's own verifier),
structure parity with real nuget.org signatures, refusals, and the verifier cases that need our own signer."""

from __future__ import annotations

import base64
import io
import struct
import subprocess
import zipfile
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest
import rfc3161_client
from asn1crypto import cms

from nuseal.cli.main import main
from nuseal.codes import NuCode
from nuseal.devpki import DevPki, DevPkiServer, serve
from nuseal.errors import SigningError
from nuseal.hashalg import HashAlgorithm
from nuseal.package import PackageArchive, append_signature
from nuseal.signature.attributes import SignatureType
from nuseal.signature.builder import create_primary_signature
from nuseal.signing import FileSigner, repository_sign_package, sign_package
from nuseal.trust import RevocationMode, TrustStore
from nuseal.trust.online import HttpRevocationFetcher
from nuseal.verify import VerificationPolicy, Verifier
from support import oracle
from support.packages import nupkg, nuspec_xml

SHARED = Path(__file__).resolve().parents[2] / "shared"
REPO_URL = "https://feed.example/v3/index.json"


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[DevPki, DevPkiServer]]:
    created = DevPki.create(tmp_path_factory.mktemp("pki"))
    with serve(created) as server:
        yield created, server


def unsigned_package(size: int = 5000) -> bytes:
    nuspec = nuspec_xml("Sign.Test", "1.0.0", authors="a", description="d", namespace=None, declaration=None,
                        compact=True)
    dll = b"\x4d\x5a" + bytes(range(256)) * (size // 256)
    return nupkg([("Sign.Test.nuspec", nuspec), ("lib/net8.0/Sign.Test.dll", dll)])


def signer(pki: DevPki, name: str = "author") -> FileSigner:
    return FileSigner.from_pfx(pki.pfx_path(name), pki.pfx_password)


def verifier(pki: DevPki, policy: VerificationPolicy | None = None) -> Verifier:
    """A verifier trusting the dev root; online policies ask the loopback responders over HTTP."""
    root = TrustStore.from_pem_file(pki.root_pem_path)
    policy = policy or VerificationPolicy.verify(revocation_mode=RevocationMode.OFFLINE)
    online = policy.revocation_mode is RevocationMode.ONLINE
    return Verifier(policy, code_signing_roots=root, timestamping_roots=root,
                    fetcher=HttpRevocationFetcher() if online else None)


def spec_hash(data: bytes, h: HashAlgorithm) -> bytes:
    """NUGET-SIGNING.md §2.3 written again, minimal, from the spec (independent of nuseal.package)."""
    eocd = data.rfind(b"PK\x05\x06")
    cd_off = struct.unpack_from("<I", data, eocd + 16)[0]
    recs = []
    at = cd_off
    while data[at:at + 4] == b"PK\x01\x02":
        n, x, c = struct.unpack_from("<HHH", data, at + 28)
        lho = struct.unpack_from("<I", data, at + 42)[0]
        flags = struct.unpack_from("<H", data, at + 8)[0]
        recs.append({"pos": at, "lho": lho, "name": data[at + 46:at + 46 + n], "flags": flags, "hsize": 46 + n + x + c})
        at += 46 + n + x + c
    (sig,) = [r for r in recs if r["name"] == b".signature.p7s" and not r["flags"] & 0x800]
    start_cd = min(r["pos"] for r in recs)
    by_lho = sorted(recs, key=lambda r: r["lho"])
    for a, nxt in zip(by_lho, [*by_lho[1:], None], strict=True):
        a["total"] = (nxt["lho"] if nxt else start_cd) - a["lho"]
    others = [r for r in by_lho if r is not sig]
    prev = 0
    for r in others:
        r["chg"] = prev - r["lho"]
        prev = r["lho"] + r["total"] + r["chg"]
    m = h.new()
    m.update(data[0:min(r["lho"] for r in recs)])
    for r in others:
        m.update(data[r["lho"]:r["lho"] + r["total"]])
    for r in sorted(others, key=lambda r: r["pos"]):
        m.update(data[r["pos"]:r["pos"] + 42])
        m.update(struct.pack("<I", (r["lho"] + r["chg"]) & 0xFFFFFFFF))
        m.update(data[r["pos"] + 46:r["pos"] + r["hsize"]])
    e = recs[-1]["pos"] + recs[-1]["hsize"]
    n1, n2, size, off = struct.unpack_from("<HHII", data, e + 8)
    m.update(data[e:e + 8])
    m.update(struct.pack("<HHII", (n1 - 1) & 0xFFFF, (n2 - 1) & 0xFFFF, (size - sig["hsize"]) & 0xFFFFFFFF,
                         (off - sig["total"]) & 0xFFFFFFFF))
    m.update(data[e + 20:])
    return m.digest()


def signed_hash_property(signed: bytes) -> bytes:
    der = zipfile.ZipFile(io.BytesIO(signed)).read(".signature.p7s")
    content = cms.ContentInfo.load(der)["content"]["encap_content_info"]["content"].native.decode()
    return base64.b64decode(next(x for x in content.splitlines() if "-Hash:" in x).split("-Hash:")[1])


@pytest.mark.parametrize("alg", list(HashAlgorithm), ids=lambda a: a.nuget_name)
def test_author_sign_round_trip(pki: tuple[DevPki, DevPkiServer], alg: HashAlgorithm, tmp_path: Path) -> None:
    dev, _ = pki
    unsigned = unsigned_package()
    signed = sign_package(unsigned, signer(dev), timestamper_url=dev.tsa_url, now=datetime.now(UTC),
                          hash_algorithm=alg).data
    result = verifier(dev).verify_bytes(signed, now=datetime.now(UTC))
    assert result.valid and not result.errors and not result.warnings, [str(i) for i in result.issues]
    assert result.signatures[0].type == "Author" and result.signatures[0].hash_algorithm == alg.nuget_name
    # everything before the old central directory is untouched
    cd = struct.unpack_from("<I", unsigned, unsigned.rfind(b"PK\x05\x06") + 16)[0]
    assert signed[:cd] == unsigned[:cd]
    # the hash in the signature equals a from-spec hash of the signed file and a plain hash of the unsigned one
    assert signed_hash_property(signed) == spec_hash(signed, alg) == alg.digest(unsigned)
    # openssl verifies the CMS and the timestamp token against the dev root
    sig = tmp_path / "sig.p7s"
    sig.write_bytes(zipfile.ZipFile(io.BytesIO(signed)).read(".signature.p7s"))
    run = subprocess.run(["openssl", "cms", "-verify", "-binary", "-inform", "DER", "-in", str(sig), "-CAfile",
                          str(dev.root_pem_path), "-purpose", "any", "-out", str(tmp_path / "content")],
                         capture_output=True, text=True, check=False)
    assert run.returncode == 0, run.stderr
    assert (tmp_path / "content").read_bytes().startswith(b"Version:1\n\n")
    signer_info = cms.ContentInfo.load(sig.read_bytes())["content"]["signer_infos"][0]
    token = next(a for a in signer_info["unsigned_attrs"] if a["type"].dotted == "1.2.840.113549.1.9.16.2.14")
    (tmp_path / "token.der").write_bytes(token["values"][0].dump())
    (tmp_path / "value.bin").write_bytes(signer_info["signature"].native)
    run = subprocess.run(["openssl", "ts", "-verify", "-token_in", "-in", str(tmp_path / "token.der"), "-data",
                          str(tmp_path / "value.bin"), "-CAfile", str(dev.root_pem_path), "-untrusted",
                          str(dev.chain_pem_path("tsa"))], capture_output=True, text=True, check=False)
    assert run.returncode == 0, run.stderr + run.stdout


def test_structure_matches_real_author_signatures(pki: tuple[DevPki, DevPkiServer]) -> None:
    dev, _ = pki
    signed = sign_package(unsigned_package(), signer(dev), timestamper_url=dev.tsa_url, now=datetime.now(UTC)).data
    ours = cms.ContentInfo.load(zipfile.ZipFile(io.BytesIO(signed)).read(".signature.p7s"))["content"]
    real_path = SHARED / "vectors" / "nuget.org" / "system.memory.4.5.3.nupkg"
    real = cms.ContentInfo.load(PackageArchive.from_path(real_path).read_signature())["content"]
    a, b = ours["signer_infos"][0], real["signer_infos"][0]
    assert [x["type"].dotted for x in a["signed_attrs"]] == [x["type"].dotted for x in b["signed_attrs"]]
    assert a["digest_algorithm"].dump() == b["digest_algorithm"].dump()
    assert a["signature_algorithm"].dump() == b["signature_algorithm"].dump()
    assert (a["version"].native, a["sid"].name, ours["version"].native) == (b["version"].native, b["sid"].name,
                                                                            real["version"].native)
    assert ours["encap_content_info"]["content_type"].dotted == real["encap_content_info"]["content_type"].dotted
    assert len(ours["encap_content_info"]["content"].native) == 85  # SHA-256 properties document, as NuGet


def test_repository_signatures(pki: tuple[DevPki, DevPkiServer]) -> None:
    dev, _ = pki
    now = datetime.now(UTC)
    author = sign_package(unsigned_package(), signer(dev), timestamper_url=dev.tsa_url, now=now).data
    counter = repository_sign_package(author, signer(dev, "repository"), v3_service_index_url=REPO_URL,
                                      owners=["alice", "Bob"], timestamper_url=dev.tsa_url, now=now).data
    result = verifier(dev).verify_bytes(counter, now=datetime.now(UTC))
    assert result.valid and not result.errors and not result.warnings, [str(i) for i in result.issues]
    assert [(s.placement, s.type) for s in result.signatures] == [("primary", "Author"),
                                                                  ("countersignature", "Repository")]
    assert result.signatures[1].package_owners == ("alice", "Bob")
    assert result.signatures[1].v3_service_index_url == REPO_URL
    # the author signature is kept byte for byte
    before = cms.ContentInfo.load(PackageArchive.from_bytes(author).read_signature())["content"]["signer_infos"][0]
    after = cms.ContentInfo.load(PackageArchive.from_bytes(counter).read_signature())["content"]["signer_infos"][0]
    assert before["signed_attrs"].dump() == after["signed_attrs"].dump()
    assert before["signature"].native == after["signature"].native
    primary = repository_sign_package(unsigned_package(), signer(dev, "repository"), v3_service_index_url=REPO_URL,
                                      owners=["alice"], timestamper_url=dev.tsa_url, now=now).data
    result = verifier(dev).verify_bytes(primary, now=datetime.now(UTC))
    assert result.valid and [s.type for s in result.signatures] == ["Repository"]
    with pytest.raises(SigningError) as exc:
        repository_sign_package(counter, signer(dev, "repository"), v3_service_index_url=REPO_URL, owners=None,
                                timestamper_url=None, now=now)
    assert exc.value.code is NuCode.NU3032
    with pytest.raises(SigningError) as exc:
        repository_sign_package(primary, signer(dev, "repository"), v3_service_index_url=REPO_URL, owners=None,
                                timestamper_url=None, now=now)
    assert exc.value.code is NuCode.NU3033


@pytest.mark.oracle
def test_nuget_accepts_what_nuseal_signs(pki: tuple[DevPki, DevPkiServer]) -> None:
    dev, _ = pki
    now = datetime.now(UTC)
    trust = {"trust_bundle": dev.root_pem_path, "timestamp_bundle": dev.root_pem_path}
    packages = {
        f"author-{alg.nuget_name}": sign_package(unsigned_package(), signer(dev), timestamper_url=dev.tsa_url,
                                                 now=now, hash_algorithm=alg).data
        for alg in HashAlgorithm
    }
    packages["countersigned"] = repository_sign_package(
        packages["author-SHA256"], signer(dev, "repository"), v3_service_index_url=REPO_URL, owners=["alice"],
        timestamper_url=dev.tsa_url, now=now).data
    packages["repository-primary"] = repository_sign_package(
        unsigned_package(), signer(dev, "repository"), v3_service_index_url=REPO_URL, owners=["alice"],
        timestamper_url=dev.tsa_url, now=now).data
    packages["no-timestamp"] = sign_package(unsigned_package(), signer(dev), timestamper_url=None, now=now).data
    for name, data in packages.items():
        report = oracle.verify(data, **trust)
        assert report.fatal is None, (name, report.fatal)
        for policy, verdict in report.verdicts.items():
            assert verdict.is_valid and not verdict.error_codes, (name, policy, verdict.codes)
            expected = {"NU3027"} if name == "no-timestamp" and policy != "acceptMode" else set()
            if name == "no-timestamp" and policy == "acceptMode":
                expected = set(verdict.warning_codes) & {"NU3027"}
            assert set(verdict.warning_codes) == expected, (name, policy, verdict.codes)


@pytest.mark.parametrize(
    ("name", "code"),
    [("rsa1024-signer", NuCode.NU3014), ("not-yet-valid-signer", NuCode.NU3017), ("expired-signer", NuCode.NU3018),
     ("no-eku-signer", NuCode.NU3018)],
)
def test_signing_refuses_bad_certificates(pki: tuple[DevPki, DevPkiServer], name: str, code: NuCode) -> None:
    dev, _ = pki
    with pytest.raises(SigningError) as exc:
        sign_package(unsigned_package(), signer(dev, name), timestamper_url=None, now=datetime.now(UTC))
    assert exc.value.code is code


def test_signing_refuses_a_signed_package_without_overwrite(pki: tuple[DevPki, DevPkiServer]) -> None:
    dev, _ = pki
    now = datetime.now(UTC)
    signed = sign_package(unsigned_package(), signer(dev), timestamper_url=None, now=now)
    assert [w.code for w in signed.warnings] == [NuCode.NU3002]
    with pytest.raises(SigningError) as exc:
        sign_package(signed.data, signer(dev), timestamper_url=None, now=now)
    assert exc.value.code is NuCode.NU3001
    again = sign_package(signed.data, signer(dev, "repository"), timestamper_url=None, now=now, overwrite=True)
    assert verifier(dev).verify_bytes(again.data, now=datetime.now(UTC)).signatures[0].signer_subject != (
        verifier(dev).verify_bytes(signed.data, now=datetime.now(UTC)).signatures[0].signer_subject)


def _raw_token(url: str, value: bytes) -> bytes:
    """The TSA's token for ``value`` without any of the client's checks (what a broken TSA could hand out)."""
    request = rfc3161_client.TimestampRequestBuilder(data=value, hash_algorithm=rfc3161_client.HashAlgorithm.SHA256)
    reply = httpx.post(url, content=request.build().as_bytes(), headers={"Content-Type": "application/timestamp-query"})
    return rfc3161_client.decode_timestamp_response(reply.content).time_stamp_token()


def _forced(dev: DevPki, name: str, *, tsa: bool = True, now: datetime | None = None) -> bytes:
    """Signed with ``name`` bypassing the pre-sign checks (what a hostile or broken signer could produce)."""
    unsigned = unsigned_package()
    when = now or datetime.now(UTC)
    der = create_primary_signature(
        package_hash=HashAlgorithm.SHA256.digest(unsigned), hash_algorithm=HashAlgorithm.SHA256,
        signer=signer(dev, name), signature_type=SignatureType.AUTHOR, signing_time=when,
        timestamper=(lambda v: _raw_token(dev.tsa_url, v)) if tsa else None,
    )
    return append_signature(unsigned, der, when=when)


@pytest.mark.parametrize(
    ("name", "codes"),
    [("rsa1024-signer", {NuCode.NU3014}), ("no-eku-signer", {NuCode.NU3012}),
     ("untrusted-signer", {NuCode.NU3018}), ("self-signed-signer", {NuCode.NU3018})],
)
def test_verifier_cases_with_our_signer(pki: tuple[DevPki, DevPkiServer], name: str, codes: set[NuCode]) -> None:
    dev, _ = pki
    data = _forced(dev, name)
    result = verifier(dev).verify_bytes(data, now=datetime.now(UTC))
    assert not result.valid
    assert {i.code for i in result.errors} == codes, [str(i) for i in result.errors]


def test_expired_signer_without_timestamp_is_nu3037(pki: tuple[DevPki, DevPkiServer]) -> None:
    dev, _ = pki
    result = verifier(dev).verify_bytes(_forced(dev, "expired-signer", tsa=False), now=datetime.now(UTC))
    assert NuCode.NU3037 in {i.code for i in result.errors}


def test_revoked_signer_through_the_ocsp_responder(pki: tuple[DevPki, DevPkiServer]) -> None:
    dev, server = pki
    data = _forced(dev, "revoked-signer")
    online = verifier(dev, VerificationPolicy.verify(revocation_mode=RevocationMode.ONLINE))
    assert online.verify_bytes(data, now=datetime.now(UTC)).valid
    server.revoke("revoked-signer", at=datetime.now(UTC) - timedelta(minutes=5))
    fresh = verifier(dev, VerificationPolicy.verify(revocation_mode=RevocationMode.ONLINE))
    result = fresh.verify_bytes(data, now=datetime.now(UTC))
    assert not result.valid
    assert NuCode.NU3012 in {i.code for i in result.errors}, [str(i) for i in result.errors]


def test_cli_sign_and_repo_sign(pki: tuple[DevPki, DevPkiServer], tmp_path: Path,
                                capsys: pytest.CaptureFixture[str]) -> None:
    dev, _ = pki
    src = tmp_path / "Sign.Test.1.0.0.nupkg"
    src.write_bytes(unsigned_package())
    out = tmp_path / "out"
    assert main(["sign", str(src), "--certificate-path", str(dev.pfx_path("author")), "--certificate-password",
                 dev.pfx_password, "--timestamper", dev.tsa_url, "-o", str(out)]) == 0
    assert main(["repo-sign", str(out / src.name), "--certificate-path", str(dev.chain_pem_path("repository")),
                 "--certificate-key-path", str(dev.key_path("repository")), "--v3-service-index-url", REPO_URL,
                 "--package-owners", "alice,bob", "--timestamper", dev.tsa_url]) == 0
    assert main(["verify", str(out / src.name), "--revocation-mode", "offline", "--code-signing-roots",
                 str(dev.root_pem_path), "--timestamping-roots", str(dev.root_pem_path)]) == 0
    capsys.readouterr()
    assert main(["sign", str(out / src.name), "--certificate-path", str(dev.pfx_path("author")),
                 "--certificate-password", "wrong"]) == 2
    assert "wrong password" in capsys.readouterr().err
    assert main(["sign", str(src), "--certificate-path", str(dev.pfx_path("author")), "--certificate-password",
                 dev.pfx_password]) == 0
    assert "NU3002" in capsys.readouterr().err


@pytest.mark.oracle
@pytest.mark.parametrize("kind", ["author", "repository"])
def test_nuseal_verifies_what_nuget_signs(pki: tuple[DevPki, DevPkiServer], tmp_path: Path, kind: str) -> None:
    dev, _ = pki
    report = oracle.sign(
        unsigned_package(), pfx=dev.pfx_path(kind), password=dev.pfx_password, signature_type=kind,
        tsa_url=dev.tsa_url, extra_certs=[dev.cert_path("intermediate"), dev.root_pem_path],  # one per file
        trust_bundle=dev.root_pem_path, v3_service_index_url=REPO_URL if kind == "repository" else None,
        owners=["alice", "bob"] if kind == "repository" else (),
    )
    assert report.ok and report.signed is not None, report.raw[-2000:]
    result = verifier(dev).verify_bytes(report.signed, now=datetime.now(UTC))
    assert result.valid and not result.errors and not result.warnings, [str(i) for i in result.issues]
    assert result.signatures[0].type == kind.capitalize()


def test_pkcs11_key_never_leaves_softhsm(pki: tuple[DevPki, DevPkiServer], tmp_path: Path,
                                         monkeypatch: pytest.MonkeyPatch) -> None:
    import pkcs11  # noqa: PLC0415
    from cryptography import x509  # noqa: PLC0415
    from cryptography.hazmat.primitives import hashes, serialization  # noqa: PLC0415
    from cryptography.hazmat.primitives.asymmetric import rsa  # noqa: PLC0415
    from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID  # noqa: PLC0415

    module = Path("/usr/lib/softhsm/libsofthsm2.so")
    assert module.is_file(), "SoftHSM2 is installed by scripts/install-system-deps.sh"
    dev, _ = pki
    (tmp_path / "tokens").mkdir()
    conf = tmp_path / "softhsm2.conf"
    conf.write_text(f"directories.tokendir = {tmp_path / 'tokens'}\nobjectstore.backend = file\n")
    monkeypatch.setenv("SOFTHSM2_CONF", str(conf))
    subprocess.run(["softhsm2-util", "--init-token", "--free", "--label", "nuseal", "--pin", "1234", "--so-pin",
                    "5678"], check=True, capture_output=True)
    token = pkcs11.lib(str(module)).get_token(token_label="nuseal")
    with token.open(user_pin="1234", rw=True) as session:
        public, private = session.generate_keypair(pkcs11.KeyType.RSA, 2048, label="signing", store=True)
        assert private[pkcs11.Attribute.SENSITIVE] and not private[pkcs11.Attribute.EXTRACTABLE]
        numbers = rsa.RSAPublicNumbers(int.from_bytes(public[pkcs11.Attribute.PUBLIC_EXPONENT], "big"),
                                       int.from_bytes(public[pkcs11.Attribute.MODULUS], "big"))
    issuer = dev.cert("intermediate")
    now = datetime.now(UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "nuseal HSM signer")]))
        .issuer_name(issuer.subject)
        .public_key(numbers.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(days=1))
        .not_valid_after(now + timedelta(days=30))
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.CODE_SIGNING]), critical=False)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(numbers.public_key()), critical=False)
        .sign(dev.key("intermediate"), hashes.SHA256())  # type: ignore[arg-type]
    )
    chain = tmp_path / "hsm-chain.pem"
    chain.write_bytes(cert.public_bytes(serialization.Encoding.PEM) + dev.cert_path("intermediate").read_bytes()
                      + dev.root_pem_path.read_bytes())
    src = tmp_path / "Sign.Test.1.0.0.nupkg"
    src.write_bytes(unsigned_package())
    assert main(["sign", str(src), "--certificate-path", str(chain), "--pkcs11-module", str(module),
                 "--pkcs11-token", "nuseal", "--pkcs11-key", "signing", "--pkcs11-pin", "1234",
                 "--timestamper", dev.tsa_url]) == 0
    result = verifier(dev).verify_bytes(src.read_bytes(), now=datetime.now(UTC))
    assert result.valid and not result.errors, [str(i) for i in result.issues]
    assert result.signatures[0].signer_subject == "CN=nuseal HSM signer"
    assert main(["sign", str(src), "--certificate-path", str(chain), "--pkcs11-module", str(module),
                 "--pkcs11-token", "nuseal", "--pkcs11-key", "signing", "--pkcs11-pin", "0000", "--overwrite"]) == 2


@pytest.mark.slow
def test_sign_repo_sign_and_verify_100_mb(pki: tuple[DevPki, DevPkiServer]) -> None:
    dev, _ = pki
    import os  # noqa: PLC0415

    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_STORED) as z:
        z.writestr("Big.Test.nuspec", "<package><metadata><id>Big.Test</id><version>1.0.0</version>"
                   "<authors>a</authors><description>d</description></metadata></package>")
        for i in range(7):
            z.writestr(f"content/{i}.bin", os.urandom(15 << 20))
    now = datetime.now(UTC)
    signed = sign_package(buf.getvalue(), signer(dev), timestamper_url=dev.tsa_url, now=now).data
    both = repository_sign_package(signed, signer(dev, "repository"), v3_service_index_url=REPO_URL,
                                   owners=["alice"], timestamper_url=dev.tsa_url, now=now).data
    assert len(both) > 100_000_000
    result = verifier(dev).verify_bytes(both, now=datetime.now(UTC))
    assert result.valid and not result.errors, [str(i) for i in result.issues]


def test_timestamp_certificate_without_timestamping_eku_is_nu3028(tmp_path: Path) -> None:
    other = DevPki.create(tmp_path / "pki")
    with serve(other, tsa_name="tsa-no-eku"):
        data = _forced(other, "author")
    result = verifier(other).verify_bytes(data, now=datetime.now(UTC))
    assert not result.valid
    assert NuCode.NU3028 in {i.code for i in result.errors}, [str(i) for i in result.errors]
