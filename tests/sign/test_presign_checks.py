"""The checks before signing, with NuGet's codes and messages, and NuGet's own signer on the same certificates.

NuGet (``SigningUtility.Verify``, ``CertificateChainUtility.GetCertificateChain``) refuses a weak or
not-yet-valid certificate with NU3013-NU3017 and a chain with any fatal status at *now* with NU3018 (NU3028
for the TSA); unknown revocation is a warning. The oracle signs the same package with the same PFX and the
same trust, and both must agree on the outcome and the code.
"""

from __future__ import annotations

import io
import zipfile
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from nuseal.codes import Level, NuCode
from nuseal.errors import SigningError, TimestampError
from nuseal.hashalg import HashAlgorithm
from nuseal.signing import SigningTrust, repository_sign_package, sign_package
from nuseal.signing.signer import FileSigner
from nuseal.trust import RevocationMode, TrustStore
from nuseal.trust.online import HttpRevocationFetcher

from .conftest import (
    REPO_URL,
    CrlOnly,
    Pki,
    oracle_exception_code,
    oracle_issues,
    oracle_sign,
    signed_data,
    unsigned_package,
)


def _sign(pki: Pki, name: str, *, trust: SigningTrust | None = None, tsa: bool = False,
          signer: FileSigner | None = None) -> list[tuple[NuCode | None, Level, str]]:
    result = sign_package(unsigned_package(), signer or pki.signer(name),
                          timestamper_url=pki.dev.tsa_url if tsa else None, now=datetime.now(UTC),
                          trust=trust or pki.strict_trust())
    return [(w.code, w.level, w.message) for w in result.warnings]


REFUSALS = [
    ("rsa1024-signer", NuCode.NU3014, None),
    ("ecdsa-signer", NuCode.NU3014, None),
    ("not-yet-valid-signer", NuCode.NU3017, None),
    ("expired-signer", NuCode.NU3018, "NotTimeValid: certificate has expired"),
    ("no-eku-signer", NuCode.NU3018, "NotValidForUsage: The certificate has invalid policy."),
    ("untrusted-signer", NuCode.NU3018, "UntrustedRoot: self-signed certificate in certificate chain"),
]


@pytest.mark.parametrize(("name", "code", "status"), REFUSALS, ids=[r[0] for r in REFUSALS])
def test_signing_refuses_certificates_nuget_refuses(pki: Pki, name: str, code: NuCode, status: str | None) -> None:
    with pytest.raises(SigningError) as refused:
        _sign(pki, name)
    assert refused.value.code is code
    if status:
        assert status in refused.value.message


@pytest.mark.oracle
@pytest.mark.parametrize(("name", "code", "status"), REFUSALS, ids=[r[0] for r in REFUSALS])
def test_nuget_refuses_the_same_certificates(pki: Pki, tmp_path: Path, name: str, code: NuCode,
                                             status: str | None) -> None:
    extra = ("untrusted-root",) if name == "untrusted-signer" else ("intermediate", "root")
    out, report = oracle_sign(pki, unsigned_package(), tmp_path, name=name, tsa=False, extra=extra)
    assert out is None
    assert oracle_exception_code(report) == code.value, report.get("exception")
    if status:
        assert ("NU3018", "Error", status) in oracle_issues(report)


def test_a_chain_that_cannot_be_built_is_nu3018(pki: Pki) -> None:
    leaf_only = FileSigner(pki.dev.cert("author"), pki.dev.key("author"))  # type: ignore[arg-type]
    with pytest.raises(SigningError) as refused:
        _sign(pki, "author", signer=leaf_only)
    assert refused.value.code is NuCode.NU3018
    assert "PartialChain: unable to get local issuer certificate" in refused.value.message


def test_the_root_comes_from_the_trust_store_when_the_signer_lacks_it(pki: Pki) -> None:
    # NuGet writes the chain it built, root included, even when the PFX holds only the intermediate.
    no_root = FileSigner(pki.dev.cert("author"), pki.dev.key("author"),  # type: ignore[arg-type]
                         [pki.dev.cert("intermediate")])
    data = sign_package(unsigned_package(), no_root, timestamper_url=None, now=datetime.now(UTC),
                        trust=pki.strict_trust()).data
    certificates = signed_data(data)["certificates"]
    subjects = {c.chosen.subject.native["common_name"] for c in certificates}
    assert subjects == {"nuseal dev author", "nuseal dev intermediate", "nuseal dev root"}
    assert len(certificates) == 3
    assert pki.verify(data).valid


def test_self_issued_signer_signs_with_nugets_warnings(pki: Pki) -> None:
    warnings = [w for w in _sign(pki, "self-signed-signer") if w[0] is not NuCode.NU3002]
    assert [(c, lvl) for c, lvl, _ in warnings] == [(NuCode.NU3042, Level.WARNING), (NuCode.NU3018, Level.WARNING)]
    assert warnings[1][2] == "UntrustedRoot: self-signed certificate"


@pytest.mark.oracle
def test_nuget_signs_self_issued_with_the_same_warnings(pki: Pki, tmp_path: Path) -> None:
    out, report = oracle_sign(pki, unsigned_package(), tmp_path, name="self-signed-signer", tsa=False, extra=())
    assert out is not None
    assert [(c, lvl) for c, lvl, _ in oracle_issues(report)] == [("NU3042", "Warning"), ("NU3018", "Warning")]
    assert oracle_issues(report)[1][2] == "UntrustedRoot: self-signed certificate"


def test_supplied_roots_are_trusted_by_default_but_not_in_strict_mode(pki: Pki) -> None:
    lenient = SigningTrust(
        TrustStore.empty(), TrustStore.empty(), trust_supplied_roots=True, fetcher=HttpRevocationFetcher()
    )
    assert _sign(pki, "untrusted-signer", trust=lenient, tsa=True) == []
    with pytest.raises(SigningError) as refused:
        _sign(pki, "untrusted-signer",
              trust=SigningTrust(TrustStore.empty(), TrustStore.empty(), fetcher=HttpRevocationFetcher()))
    assert refused.value.code is NuCode.NU3018


def test_revoked_signer_is_refused_through_ocsp(fresh_pki: Pki) -> None:
    fresh_pki.server.revoke("revoked-signer", at=datetime.now(UTC) - timedelta(hours=1))
    with pytest.raises(SigningError) as refused:
        _sign(fresh_pki, "revoked-signer")
    assert refused.value.code is NuCode.NU3018
    assert "Revoked: certificate revoked" in refused.value.message


def test_revoked_signer_is_refused_through_the_crl(fresh_pki: Pki) -> None:
    fresh_pki.server.revoke("revoked-signer", at=datetime.now(UTC) - timedelta(hours=1))
    fetcher = CrlOnly()
    with pytest.raises(SigningError) as refused:
        _sign(fresh_pki, "revoked-signer", trust=fresh_pki.strict_trust(fetcher=fetcher))
    assert refused.value.code is NuCode.NU3018 and "Revoked" in refused.value.message
    assert f"{fresh_pki.dev.base_url}/crl/intermediate.crl" in fetcher.crls
    # the same fetcher, a certificate the CRL does not list: signed
    assert [w[0] for w in _sign(fresh_pki, "author", trust=fresh_pki.strict_trust(fetcher=fetcher))] == [
        NuCode.NU3002]


@pytest.mark.oracle
def test_nuget_refuses_the_revoked_signer_too(fresh_pki: Pki, tmp_path: Path) -> None:
    # A PKI of its own: .NET caches CRLs on disk by URL until nextUpdate, so revoke before any fetch.
    fresh_pki.server.revoke("revoked-signer", at=datetime.now(UTC) - timedelta(hours=1))
    out, report = oracle_sign(fresh_pki, unsigned_package(), tmp_path, name="revoked-signer", tsa=False)
    assert out is None and oracle_exception_code(report) == "NU3018"
    assert ("NU3018", "Error", "Revoked: certificate revoked") in oracle_issues(report)


def test_unreachable_revocation_is_a_warning(tmp_path: Path) -> None:
    from nuseal.devpki import DevPki  # noqa: PLC0415

    dev = DevPki.create(tmp_path / "pki")  # never served: OCSP and CRL URLs refuse connections
    signer = FileSigner.from_pfx(dev.pfx_path("author"), dev.pfx_password)
    result = sign_package(unsigned_package(), signer, timestamper_url=None, now=datetime.now(UTC),
                          trust=SigningTrust.from_pem_files(dev.root_pem_path, fetcher=HttpRevocationFetcher()))
    assert [(w.code, w.message) for w in result.warnings] == [
        (NuCode.NU3018, "RevocationStatusUnknown: unable to get certificate CRL"),
        (NuCode.NU3018, "OfflineRevocation: unable to get certificate CRL"),
        (NuCode.NU3002, result.warnings[2].message),
    ]
    offline = sign_package(unsigned_package(), signer, timestamper_url=None, now=datetime.now(UTC),
                           trust=SigningTrust.from_pem_files(dev.root_pem_path,
                                                             revocation_mode=RevocationMode.OFFLINE))
    assert [w.code for w in offline.warnings] == [NuCode.NU3002]


def test_timestamp_chain_must_be_trusted(pki: Pki) -> None:
    other_root = pki.dev.cert_path("untrusted-root")
    with pytest.raises(TimestampError) as refused:
        _sign(pki, "author", tsa=True, trust=pki.strict_trust(timestamping=other_root))
    assert refused.value.code is NuCode.NU3028
    assert "UntrustedRoot" in refused.value.message


@pytest.mark.oracle
def test_nuget_refuses_the_untrusted_timestamp_chain_too(pki: Pki, tmp_path: Path) -> None:
    out, report = oracle_sign(pki, unsigned_package(), tmp_path,
                              timestamp_bundle=pki.dev.cert_path("untrusted-root"))
    assert out is None and oracle_exception_code(report) == "NU3028"
    assert any(c == "NU3028" and lvl == "Error" and m.startswith("UntrustedRoot") for c, lvl, m in
               oracle_issues(report))


def test_tsa_certificate_without_timestamping_eku_is_refused(tmp_path: Path) -> None:
    from nuseal.devpki import DevPki, serve  # noqa: PLC0415

    dev = DevPki.create(tmp_path / "pki")
    signer = FileSigner.from_pfx(dev.pfx_path("author"), dev.pfx_password)
    with serve(dev, tsa_name="tsa-no-eku"), pytest.raises(TimestampError) as refused:
        sign_package(unsigned_package(), signer, timestamper_url=dev.tsa_url, now=datetime.now(UTC),
                     trust=SigningTrust.from_pem_files(dev.root_pem_path, fetcher=HttpRevocationFetcher()))
    # .NET's Rfc3161TimestampToken refuses it before NuGet looks: an uncoded CryptographicException
    assert refused.value.code is None
    assert "RFC 3161 §2.3" in refused.value.message


@pytest.mark.oracle
def test_nuget_refuses_the_tsa_without_timestamping_eku(tmp_path: Path) -> None:
    from nuseal.devpki import DevPki, serve  # noqa: PLC0415

    dev = DevPki.create(tmp_path / "pki")
    with serve(dev, tsa_name="tsa-no-eku") as server:
        out, report = oracle_sign(Pki(dev, server), unsigned_package(), tmp_path)
    assert out is None and oracle_exception_code(report) is None
    assert "The response from the timestamping server was not understood" in report["exception"]


def test_already_signed_zip64_and_entry_count(pki: Pki) -> None:
    signer = pki.signer()
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as z:
        z.writestr("P.nuspec", "<package/>")
        with z.open("big.bin", "w", force_zip64=True) as f:
            f.write(b"x")
    with pytest.raises(SigningError) as refused:
        sign_package(buf.getvalue(), signer, timestamper_url=None, now=datetime.now(UTC), trust=pki.strict_trust())
    assert refused.value.code is NuCode.NU3006
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as z:
        for i in range(0xFFFE):
            z.writestr(zipfile.ZipInfo(f"{i}"), b"")
    with pytest.raises(SigningError) as refused:
        repository_sign_package(buf.getvalue(), signer, v3_service_index_url=REPO_URL, owners=None,
                                timestamper_url=None, now=datetime.now(UTC), trust=pki.strict_trust())
    assert refused.value.code is NuCode.NU3039


def test_certificate_checks_run_first_as_in_nuget(pki: Pki) -> None:
    # SigningUtility.Verify runs before the package is opened: a bad certificate wins over a bad package.
    with pytest.raises(SigningError) as refused:
        sign_package(b"not a zip", pki.signer("rsa1024-signer"), timestamper_url=None, now=datetime.now(UTC),
                     trust=pki.strict_trust())
    assert refused.value.code is NuCode.NU3014
    with pytest.raises(SigningError) as refused:
        sign_package(b"not a zip", pki.signer(), timestamper_url=None, now=datetime.now(UTC),
                     trust=pki.strict_trust(), hash_algorithm=HashAlgorithm.SHA512)
    assert refused.value.code is None and "cannot sign" in refused.value.message
