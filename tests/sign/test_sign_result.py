"""What a signing call says it wrote (``SignResult.signature``, issue 12.1): the feed records the repository signature
from it instead of parsing the package it just signed, so it must be what the verification engine reads back from
the signed bytes: kind, placement, signer certificate and fingerprint, the chain written with it, the timestamp's
genTime and TSA.
"""

from __future__ import annotations

from datetime import UTC, datetime

from cryptography.hazmat.primitives.serialization import Encoding

from nuseal.codes import NuCode
from nuseal.signing import SignedSignature, SignResult, repository_sign_package, sign_package
from nuseal.verify import Placement, SignatureKind

from .conftest import REPO_URL, Pki, unsigned_package


def _der(cert: object) -> bytes:
    return cert.public_bytes(Encoding.DER)  # type: ignore[attr-defined, no-any-return]


def _assert_read_back(pki: Pki, result: SignResult, now: datetime) -> SignedSignature:
    written = result.signature
    read = pki.verifier().verify_bytes(result.data, now=now)
    [info] = [s for s in read.signatures if s.placement is written.placement]
    assert info.kind is written.kind and info.signer is not None and info.intact
    assert info.signer.der == _der(written.certificate)
    assert info.signer.sha256_fingerprint == written.sha256_fingerprint
    assert {_der(c) for c in written.chain} <= set(info.certificates)
    assert _der(written.certificate) not in {_der(c) for c in written.chain}  # issuers only
    if written.timestamp_at is None:
        assert not info.timestamp_details and written.timestamp_authority is None
    else:
        [stamp] = info.timestamp_details
        assert stamp.gen_time == written.timestamp_at and stamp.authority is not None
        assert written.timestamp_authority is not None and stamp.authority.der == _der(written.timestamp_authority)
        assert stamp.authority.der in stamp.certificates  # the token's certificate set (the revocation recheck's)
    return written


def test_author_signature_then_repository_countersignature(pki: Pki) -> None:
    now = datetime.now(UTC)  # the dev PKI was issued when the module started; its TSA stamps at the wall clock
    author = sign_package(unsigned_package("Result.Author"), pki.signer(), timestamper_url=pki.dev.tsa_url, now=now,
                          trust=pki.strict_trust())
    written = _assert_read_back(pki, author, now)
    assert (written.kind, written.placement) == (SignatureKind.AUTHOR, Placement.PRIMARY)
    assert written.timestamp_at is not None and abs((written.timestamp_at - now).total_seconds()) < 60
    repository = repository_sign_package(author.data, pki.signer("repository"), v3_service_index_url=REPO_URL,
                                         owners=["alice"], timestamper_url=pki.dev.tsa_url, now=now,
                                         trust=pki.strict_trust())
    written = _assert_read_back(pki, repository, now)
    assert (written.kind, written.placement) == (SignatureKind.REPOSITORY, Placement.COUNTERSIGNATURE)
    assert written.certificate == pki.dev.cert("repository")


def test_repository_primary_signature_without_a_timestamper(pki: Pki) -> None:
    now = datetime.now(UTC)  # the dev PKI was issued when the module started; its TSA stamps at the wall clock
    result = repository_sign_package(unsigned_package("Result.Repository"), pki.signer("repository"),
                                     v3_service_index_url=REPO_URL, owners=None, timestamper_url=None, now=now,
                                     trust=pki.strict_trust())
    written = _assert_read_back(pki, result, now)
    assert (written.kind, written.placement) == (SignatureKind.REPOSITORY, Placement.PRIMARY)
    assert written.timestamp_at is None and [w.code for w in result.warnings] == [NuCode.NU3002]
