"""nuseal.package.archive on real nuget.org packages and crafted archives."""

from __future__ import annotations

import base64
import io
import struct
import unicodedata
import zipfile
from datetime import datetime
from pathlib import Path
from urllib.parse import unquote

import pytest
from asn1crypto import cms
from hypothesis import given, settings
from hypothesis import strategies as st

from nuseal.codes import NuCode
from nuseal.errors import PackageFormatError, SigningError
from nuseal.hashalg import HashAlgorithm
from nuseal.package import PackageArchive, StructureCode, append_signature
from nuseal.package import archive as archive_module
from nuseal.package._zip import UTF8_FLAG, decode_name

VECTORS = sorted((Path(__file__).resolve().parents[2] / "shared" / "vectors" / "nuget.org").glob("*.nupkg"))


def _signed_hash(signature_der: bytes) -> tuple[HashAlgorithm, bytes]:
    """The ``<oid>-Hash:`` property of a signature, read with asn1crypto and plain string handling."""
    content = cms.ContentInfo.load(signature_der)["content"]["encap_content_info"]["content"].native
    line = next(x for x in content.decode("utf-8").splitlines() if "-Hash:" in x)
    oid, value = line.split("-Hash:")
    alg = HashAlgorithm.from_oid(oid)
    assert alg is not None
    return alg, base64.b64decode(value)


def test_vectors_present() -> None:
    assert len(VECTORS) == 12


@pytest.mark.parametrize("path", VECTORS, ids=lambda p: p.name)
def test_package_hash_matches_the_hash_nuget_signed(path: Path) -> None:
    archive = PackageArchive.from_path(path)
    assert archive.is_signed
    alg, expected = _signed_hash(archive.read_signature())
    assert archive.package_hash(alg) == expected
    assert archive.structure_problems == ()


@pytest.mark.parametrize("path", VECTORS, ids=lambda p: p.name)
def test_remove_then_append_signature_round_trips(path: Path) -> None:
    archive = PackageArchive.from_path(path)
    signature = archive.read_signature()
    alg, expected = _signed_hash(signature)
    unsigned = archive.without_signature()
    assert alg.digest(unsigned) == expected  # what NuGet hashed when it signed
    unsigned_archive = PackageArchive.from_bytes(unsigned)
    assert not unsigned_archive.is_signed
    assert unsigned_archive.package_hash(alg) == expected
    resigned = PackageArchive.from_bytes(append_signature(unsigned, signature, when=datetime(2024, 5, 6, 7, 8, 10)))
    assert resigned.read_signature() == signature
    assert resigned.package_hash(alg) == expected
    assert resigned.content_hash() == archive.content_hash()
    # Python's zipfile agrees the result is a sound archive with the same files.
    with zipfile.ZipFile(io.BytesIO(resigned.data)) as z1, zipfile.ZipFile(path) as z2:
        assert z1.testzip() is None
        assert sorted(z1.namelist()) == sorted(z2.namelist())


def test_content_hash_matches_public_lock_files() -> None:
    """Content hashes NuGet wrote into public packages.lock.json files / restore logs (NUGET-SIGNING.md §2.5)."""
    by_name = {p.name: p for p in VECTORS}
    newtonsoft = PackageArchive.from_path(by_name["Newtonsoft.Json.12.0.3.nupkg"]).content_hash()
    memory = PackageArchive.from_path(by_name["system.memory.4.5.3.nupkg"]).content_hash()
    assert newtonsoft.startswith("6mgjfnRB4jKMlzHSl+VD+oUc1IebOZab") and newtonsoft.endswith("QWg==")
    assert memory == "3oDzvc/zzetpTKWMShs1AADwZjQ/36HnsufHRPcOjyRAAMLDlu2iD33MBI2opxnezcVUtXyqDXXjoFMOU9c7SA=="


def _zip(entries: list[tuple[str, bytes]], *, compress: bool = True) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED if compress else zipfile.ZIP_STORED) as z:
        for name, data in entries:
            z.writestr(name, data)
    return buf.getvalue()


NUSPEC = (
    b'<?xml version="1.0"?><package xmlns="http://schemas.microsoft.com/packaging/2013/05/nuspec.xsd"><metadata>'
    b"<id>Contoso.Lib</id><version>1.02.3-Beta.1+sha.5</version><authors>a, b</authors><owners>o</owners>"
    b"<description>d</description></metadata></package>"
)


def test_unsigned_package_reads_and_hashes_whole_file() -> None:
    data = _zip([("Contoso.Lib.nuspec", NUSPEC), ("lib/net8.0/a.dll", b"x" * 1000)])
    archive = PackageArchive.from_bytes(data)
    assert not archive.is_signed
    assert archive.package_hash(HashAlgorithm.SHA384) == HashAlgorithm.SHA384.digest(data)
    spec = archive.nuspec()
    assert (spec.id, spec.version.normalized) == ("Contoso.Lib", "1.2.3-Beta.1")
    assert spec.version.full == "1.2.3-Beta.1+sha.5"
    assert spec.authors == ("a", "b")
    assert archive.read("lib/net8.0/a.dll") == b"x" * 1000
    with pytest.raises(PackageFormatError) as exc:
        archive.read_signature()
    assert exc.value.code is NuCode.NU3005


@pytest.mark.parametrize(
    ("name", "problem"),
    [
        ("../evil.ps1", StructureCode.PATH_ESCAPE),
        ("/etc/passwd", StructureCode.ABSOLUTE_PATH),
        ("C:/x.dll", StructureCode.DRIVE_QUALIFIED_PATH),
        ("lib\\..\\..\\x.dll", StructureCode.PATH_ESCAPE),
    ],
)
def test_path_tricks_are_structure_problems(name: str, problem: StructureCode) -> None:
    archive = PackageArchive.from_bytes(_zip([("a.nuspec", NUSPEC), (name, b"1")]))
    assert [(p.code, p.entry) for p in archive.structure_problems] == [(problem, name)], archive.structure_problems


def test_duplicate_names_are_structure_problems() -> None:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as z, pytest.warns(UserWarning):
        z.writestr("a.nuspec", NUSPEC)
        z.writestr("lib/x.dll", b"1")
        z.writestr("lib/x.dll", b"2")
    archive = PackageArchive.from_bytes(buf.getvalue())
    assert [(p.code, p.entry) for p in archive.structure_problems] == [(StructureCode.DUPLICATE_NAME, "lib/x.dll")]
    with pytest.raises(PackageFormatError, match="2 entries"):
        archive.read("lib/x.dll")


def test_deflate_bomb_is_refused() -> None:
    data = _zip([("a.nuspec", NUSPEC), ("big.bin", b"\0" * (8 << 20))])
    archive = PackageArchive.from_bytes(data)
    assert StructureCode.COMPRESSION_RATIO in {p.code for p in archive.structure_problems}
    with pytest.raises(PackageFormatError, match="limit"):
        archive.read("big.bin", limit=1 << 20)


def test_crc_mismatch_is_detected_on_read() -> None:
    data = bytearray(_zip([("a.nuspec", NUSPEC), ("x.txt", b"hello world")], compress=False))
    at = bytes(data).index(b"hello world")
    data[at] ^= 0x01
    with pytest.raises(PackageFormatError, match="CRC-32"):
        PackageArchive.from_bytes(bytes(data)).read("x.txt")


@pytest.mark.parametrize(
    "data",
    [b"", b"not a zip at all, just text\n" * 3, b"PK\x05\x06" + b"\0" * 18, b"PK\x03\x04" + b"\0" * 100],
    ids=["empty", "text", "empty-eocd", "local-header-only"],
)
def test_not_a_zip_is_a_clear_error(data: bytes) -> None:
    with pytest.raises(PackageFormatError, match="not a valid ZIP archive"):
        PackageArchive.from_bytes(data)


def test_absurd_sizes_are_refused_not_allocated() -> None:
    data = bytearray(_zip([("a.nuspec", NUSPEC), ("x.bin", b"abc")]))
    cd = bytes(data).rindex(b"PK\x01\x02")  # the last CD record: x.bin
    struct.pack_into("<II", data, cd + 20, 0xFFFFFFF0, 0xFFFFFFF0)
    archive = PackageArchive.from_bytes(bytes(data))
    codes = {p.code for p in archive.structure_problems}
    assert codes & {StructureCode.ENTRY_TOO_LARGE, StructureCode.DATA_OUT_OF_BOUNDS}, archive.structure_problems
    with pytest.raises(PackageFormatError):
        archive.read("x.bin")


def test_append_signature_refuses_signed_and_zip64() -> None:
    signed = VECTORS[0].read_bytes()
    with pytest.raises(SigningError) as exc:
        append_signature(signed, b"0", when=datetime(2024, 1, 1))
    assert exc.value.code is NuCode.NU3001
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as z, z.open("a.nuspec", "w", force_zip64=True) as f:
        f.write(NUSPEC)
    with pytest.raises(SigningError) as exc:
        append_signature(buf.getvalue(), b"0", when=datetime(2024, 1, 1))
    assert exc.value.code is NuCode.NU3006


# --------------------------------------------------------------------------- the short ways (issue 13) keep the rules
#: Name pieces that matter to the name rules: separators, drive colon, NUL, '..', %-escapes, case and Unicode forms.
_NAME_CHARS = st.sampled_from(
    [*"aZ09._-/\\:% \x00", "..", "%41", "%2F", "\u00e9", "e\u0301", "\u0130", "\u00df", "\u212a"]
)
_NAMES = st.lists(_NAME_CHARS, max_size=12).map("".join)


@given(_NAMES, st.integers(min_value=0, max_value=2000))
@settings(max_examples=400, deadline=None)
def test_plain_name_never_hides_a_name_problem(name: str, padding: int) -> None:
    """``_plain_name`` lets structure_problems skip ``_name_problems``: it may only say yes when there is nothing."""
    for candidate in (name, name + "a" * padding):
        raw = candidate.encode("utf-8")
        if archive_module._plain_name(candidate, raw):
            assert archive_module._name_problems(candidate, raw) == []


@given(_NAMES)
@settings(max_examples=400, deadline=None)
def test_extraction_key_short_way_is_the_full_rule(name: str) -> None:
    full = unicodedata.normalize("NFC", unquote(name).replace("\\", "/")).casefold()
    assert archive_module._extraction_key(name) == full


@given(st.binary(max_size=24), st.sampled_from([0, UTF8_FLAG, UTF8_FLAG | 0x8, 0x8]))
@settings(max_examples=400, deadline=None)
def test_decode_name_is_zip_name_decoding(raw: bytes, flags: int) -> None:
    expected = raw.decode("utf-8", errors="replace") if flags & UTF8_FLAG else raw.decode("cp437")
    assert decode_name(raw, flags) == expected
