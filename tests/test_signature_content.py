"""SignatureContent: NuGet's properties document, read and written as NC KeyPairFileReader/Writer do."""

from __future__ import annotations

import base64
import hashlib
from pathlib import Path

import pytest
from asn1crypto import cms
from hypothesis import given
from hypothesis import strategies as st

from nuseal.codes import NuCode
from nuseal.errors import SignatureFormatError
from nuseal.hashalg import HashAlgorithm
from nuseal.package import PackageArchive
from nuseal.signature import SignatureContent
from nuseal.signature.content import MAX_CONTENT_SIZE

VECTORS = sorted((Path(__file__).resolve().parents[2] / "shared" / "vectors" / "nuget.org").glob("*.nupkg"))

SHA256_OID = "2.16.840.1.101.3.4.2.1"
DIGEST = hashlib.sha256(b"a package").digest()
B64 = base64.b64encode(DIGEST).decode()
HASH_LINE = f"{SHA256_OID}-Hash:{B64}"


def _code(data: bytes) -> NuCode | None:
    with pytest.raises(SignatureFormatError) as info:
        SignatureContent.parse(data)
    return info.value.code


@pytest.mark.parametrize("path", VECTORS, ids=lambda p: p.name)
def test_real_content_parses_and_round_trips(path: Path) -> None:
    archive = PackageArchive.from_path(path)
    econtent = cms.ContentInfo.load(archive.read_signature())["content"]["encap_content_info"]["content"].native
    content = SignatureContent.parse(econtent)
    assert content.hash_algorithm is HashAlgorithm.SHA256
    assert content.hash_value == archive.package_hash(HashAlgorithm.SHA256)
    assert content.to_bytes() == econtent
    assert len(econtent) == 85


@pytest.mark.parametrize(
    ("algorithm", "length"), [(HashAlgorithm.SHA256, 85), (HashAlgorithm.SHA384, 105), (HashAlgorithm.SHA512, 129)]
)
def test_writer_output_matches_nugets_layout(algorithm: HashAlgorithm, length: int) -> None:
    digest = algorithm.digest(b"x")
    data = SignatureContent(algorithm, digest).to_bytes()
    assert len(data) == length
    assert data == f"Version:1\n\n{algorithm.oid}-Hash:{base64.b64encode(digest).decode()}\n\n".encode()
    assert SignatureContent.parse(data) == SignatureContent(algorithm, digest)


@given(st.sampled_from(list(HashAlgorithm)), st.binary(min_size=1, max_size=64))
def test_round_trip_any_digest(algorithm: HashAlgorithm, value: bytes) -> None:
    content = SignatureContent(algorithm, value)
    parsed = SignatureContent.parse(content.to_bytes())
    assert parsed.hash_algorithm is algorithm
    assert parsed.hash_value == value


@pytest.mark.parametrize(
    "text",
    [
        f"Version:1\r\n\r\n{HASH_LINE}\r\n\r\n",  # CRLF
        f"Version:1\r\r{HASH_LINE}\r\r",  # CR
        f"Version:1\nFoo:bar\n\n{HASH_LINE}\n\n",  # extra header key
        f"Version:1\n\n{HASH_LINE}\n\n::not a section\n",  # later sections are never read
        f"Version:1\n\nA-Hash:x\n{HASH_LINE}\n\n",  # unknown -Hash keys are skipped
        f"Version:1\n\n{SHA256_OID}-Hash:{B64[:10]} {B64[10:]}\n\n",  # .NET base64 ignores spaces
    ],
    ids=["crlf", "cr", "extra-header", "later-section", "unknown-hash-key", "base64-space"],
)
def test_accepted_variants(text: str) -> None:
    content = SignatureContent.parse(text.encode())
    assert content.hash_algorithm is HashAlgorithm.SHA256
    assert content.hash_value == DIGEST


def test_first_allowed_hash_property_wins() -> None:
    sha512 = hashlib.sha512(b"y").digest()
    text = f"Version:1\n\n{HashAlgorithm.SHA512.oid}-Hash:{base64.b64encode(sha512).decode()}\n{HASH_LINE}\n\n"
    content = SignatureContent.parse(text.encode())
    assert content.hash_algorithm is HashAlgorithm.SHA512
    assert content.hash_value == sha512


def test_invalid_base64_loads_with_an_empty_value_like_nuget() -> None:
    # NuGet keeps the text and fails integrity later (NU3008); the value must match no digest.
    text = f"Version:1\n\n{SHA256_OID}-Hash:{B64[:-2]}=\n\n"
    content = SignatureContent.parse(text.encode())
    assert content.hash_value == b""
    assert content.hash_text == B64[:-2] + "="
    assert content.to_bytes() == text.encode()


@pytest.mark.parametrize(
    ("text", "code"),
    [
        (f"Version:2\n\n{HASH_LINE}\n\n", NuCode.NU3007),
        (f"Version: 1\n\n{HASH_LINE}\n\n", NuCode.NU3007),
        (f"Version:1\v\n\n{HASH_LINE}\n\n", NuCode.NU3007),  # only CR/LF end lines
        (f"\ufeffVersion:1\n\n{HASH_LINE}\n\n", NuCode.NU3000),  # BOM breaks the first key
        (f"Version:1\n\n1.3.14.3.2.26-Hash:{B64}\n\n", NuCode.NU3000),  # SHA-1 is not allowed
        (f"Version:1\n\n{SHA256_OID}-hash:{B64}\n\n", NuCode.NU3000),  # case-sensitive key
        (f"Version:1\n\n{HASH_LINE}\n", NuCode.NU3000),  # section not closed
        (f"Version:1\n\n{HASH_LINE}", NuCode.NU3000),
        ("Version:1\n\n", NuCode.NU3000),  # no hash section
        ("", NuCode.NU3000),
        (f"Foo:1\n\n{HASH_LINE}\n\n", NuCode.NU3000),  # no Version
        (f"Version:1\n\n{HASH_LINE}\n{HASH_LINE}\n\n", NuCode.NU3000),  # duplicate key
        (f"Version:1\n\nbad key:x\n{HASH_LINE}\n\n", NuCode.NU3000),  # name pattern
        (f"Version:1\n\n{SHA256_OID}-Hash:\n\n", NuCode.NU3000),  # empty value
        (f"Version:1\n\n:{B64}\n\n", NuCode.NU3000),  # empty name
    ],
    ids=[
        "version-2",
        "version-space",
        "vertical-tab",
        "bom",
        "sha1",
        "lowercase-hash",
        "unclosed",
        "unclosed-eof",
        "header-only",
        "empty",
        "no-version",
        "duplicate",
        "bad-name",
        "empty-value",
        "empty-name",
    ],
)
def test_rejected_with_nugets_code(text: str, code: NuCode) -> None:
    assert _code(text.encode()) == code


def test_size_is_bounded() -> None:
    assert _code(b"Version:1\n\n" + b"a" * MAX_CONTENT_SIZE) == NuCode.NU3000
