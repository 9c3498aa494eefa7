"""A generated package over 100 MB: author-signed, repository-countersigned and verified, with the independent
checks (openssl, the from-spec hash, NuGet's verifier) on the result, and bounded signing time."""

from __future__ import annotations

import io
import os
import time
import zipfile
from datetime import UTC, datetime
from pathlib import Path

import pytest

from nuseal.signing import repository_sign_package, sign_package

from .conftest import REPO_URL, Pki, independent_checks, oracle_verify

SIZE = 105 << 20
#: Generous bound for sign + countersign of 105 MB on a loaded CI machine (one hash pass and a few copies).
MAX_SECONDS = 60


@pytest.fixture(scope="module")
def big_unsigned() -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_STORED) as z:
        z.writestr("Big.Package.nuspec", "<package><metadata><id>Big.Package</id><version>1.0.0</version>"
                   "<authors>a</authors><description>d</description></metadata></package>")
        chunk = 15 << 20
        for i in range(SIZE // chunk):
            z.writestr(f"content/blob{i}.bin", os.urandom(chunk))
    return buf.getvalue()


@pytest.mark.slow
def test_sign_countersign_and_verify_a_100_mb_package(pki: Pki, big_unsigned: bytes, tmp_path: Path) -> None:
    assert len(big_unsigned) > 100_000_000
    started = time.monotonic()
    author = sign_package(big_unsigned, pki.signer(), timestamper_url=pki.dev.tsa_url, now=datetime.now(UTC),
                          trust=pki.strict_trust()).data
    both = repository_sign_package(author, pki.signer("repository"), v3_service_index_url=REPO_URL,
                                   owners=["alice"], timestamper_url=pki.dev.tsa_url, now=datetime.now(UTC),
                                   trust=pki.strict_trust()).data
    assert time.monotonic() - started < MAX_SECONDS
    result = pki.verify(both)
    assert result.valid and not result.errors and not result.warnings, [str(i) for i in result.issues]
    independent_checks(pki, both, big_unsigned, tmp_path)


@pytest.mark.slow
@pytest.mark.oracle
def test_nuget_accepts_the_100_mb_package(pki: Pki, big_unsigned: bytes) -> None:
    both = repository_sign_package(
        sign_package(big_unsigned, pki.signer(), timestamper_url=pki.dev.tsa_url, now=datetime.now(UTC),
                     trust=pki.strict_trust()).data,
        pki.signer("repository"), v3_service_index_url=REPO_URL, owners=["alice"],
        timestamper_url=pki.dev.tsa_url, now=datetime.now(UTC), trust=pki.strict_trust()).data
    report = oracle_verify(pki, both)
    assert report.fatal is None
    for policy, verdict in report.verdicts.items():
        assert verdict.is_valid and not verdict.error_codes and not verdict.warning_codes, (policy, verdict.codes)
