"""Issue 11 item 4, the parser side: anchored patterns, nuspec field limits, whole-archive zip-bomb bounds, entry
names that collide when extracted. The HTTP side (body, header, stall) is in tests/feed/test_input_limits.py."""

from __future__ import annotations

import io
import struct
import zipfile
import zlib
from datetime import UTC, datetime
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from nuseal.errors import PackageFormatError, UsageError
from nuseal.feed.accounts.keys import create_api_key, create_user
from nuseal.feed.store.database import Database, migrate
from nuseal.package import NuGetVersion, PackageArchive, StructureCode, is_valid_id
from nuseal.package.archive import MAX_COMPRESSION_RATIO, MAX_TOTAL_UNCOMPRESSED
from nuseal.package.nuspec import FIELD_LIMITS, MAX_DEPENDENCIES_LENGTH, Nuspec

VECTORS = sorted((Path(__file__).resolve().parents[2] / "shared" / "vectors").glob("*/*.nupkg"))
T0 = datetime(2026, 1, 1, tzinfo=UTC)


# ------------------------------------------------------------------------------------------------ anchors
@pytest.mark.parametrize("text", ["1.0.0-a\n.b", "1.0.0+a\n.b", "1.0.0-a.b\n+c", "1.0.0-a\n+b"])
def test_version_with_an_inner_newline_is_refused(text: str) -> None:
    with pytest.raises(PackageFormatError, match="not valid"):
        NuGetVersion.parse(text)


@given(
    labels=st.lists(st.from_regex(r"[0-9A-Za-z-]{1,5}", fullmatch=True), min_size=1, max_size=3),
    metadata=st.lists(st.from_regex(r"[0-9A-Za-z-]{1,5}", fullmatch=True), min_size=1, max_size=2),
    where=st.integers(min_value=0),
    ws=st.sampled_from(["\n", "\r\n", "\t", " ", "\x0b", "\x0c"]),
)
def test_whitespace_after_any_identifier_is_refused(
    labels: list[str], metadata: list[str], where: int, ws: str
) -> None:
    """Whitespace ending any release-label or metadata identifier (not the string: that is trimmed, as NuGet
    does). A ``$`` anchor let exactly ``\\n`` there through."""
    idents = labels + metadata
    i = where % len(idents)
    idents[i] += ws
    text = "1.2.3-" + ".".join(idents[: len(labels)]) + "+" + ".".join(idents[len(labels) :])
    if text.endswith(ws):  # the last metadata identifier: keep the whitespace inside
        text += ".x"
    with pytest.raises(PackageFormatError):
        NuGetVersion.parse(text)


def test_package_id_with_a_final_newline_is_refused() -> None:
    assert is_valid_id("My.Package")
    assert not is_valid_id("My.Package\n")


def test_user_names_and_key_globs_with_a_final_newline_are_refused(tmp_path: Path) -> None:
    db = Database(f"sqlite:///{tmp_path / 'f.db'}")
    migrate(db)
    try:
        with db.write() as s, pytest.raises(UsageError, match="invalid user name"):
            create_user(s, "mallory\n", now=T0)
        with db.write() as s:
            create_user(s, "alice", now=T0)
        with db.write() as s, pytest.raises(UsageError, match="invalid package id glob"):
            create_api_key(s, "alice", now=T0, globs=("Alice.*\n",))
    finally:
        db.dispose()


# ------------------------------------------------------------------------------------------------ nuspec limits
def _nuspec(extra: str = "", *, description: str = "d", authors: str = "a", package_id: str = "Lim.Pkg") -> bytes:
    return (
        '<?xml version="1.0" encoding="utf-8"?>'
        '<package xmlns="http://schemas.microsoft.com/packaging/2013/05/nuspec.xsd"><metadata>'
        f"<id>{package_id}</id><version>1.0.0</version><authors>{authors}</authors>"
        f"<description>{description}</description>{extra}</metadata></package>"
    ).encode()


def test_description_over_nugetorg_limit_is_refused_naming_field_and_limit() -> None:
    Nuspec.parse(_nuspec(description="x" * 4000))
    with pytest.raises(PackageFormatError, match=r"<description> is 4001 characters; the limit is 4000"):
        Nuspec.parse(_nuspec(description="x" * 4001))
    # the attack of the issue: a 3.9 MB description (the nuspec itself stays under its 4 MiB cap)
    with pytest.raises(PackageFormatError, match="<description>"):
        Nuspec.parse(_nuspec(description="x" * 3_900_000))


@pytest.mark.parametrize("field", sorted(set(FIELD_LIMITS) - {"description", "authors"}))
def test_every_limited_field(field: str) -> None:
    limit = FIELD_LIMITS[field]
    Nuspec.parse(_nuspec(f"<{field}>{'y' * limit}</{field}>"))
    with pytest.raises(PackageFormatError, match=f"<{field}> is {limit + 1} characters; the limit is {limit}"):
        Nuspec.parse(_nuspec(f"<{field}>{'y' * (limit + 1)}</{field}>"))


def test_authors_are_measured_as_nugetorg_joins_them() -> None:
    ok = ",".join(["a" * 998] * 4)  # joined with ", ": 4 * 998 + 3 * 2 = 3998
    Nuspec.parse(_nuspec(authors=ok))
    text = ",".join(["a" * 999] * 4)  # 3999 characters as written, 4002 joined with ", "
    with pytest.raises(PackageFormatError, match="<authors> is 4002 characters"):
        Nuspec.parse(_nuspec(authors=text))


def test_dependencies_and_repository_limits() -> None:
    deps = "".join(f'<dependency id="Dep.{i:05d}.{"z" * 60}" version="[1.0.0]"/>' for i in range(500))
    with pytest.raises(PackageFormatError, match=f"<dependencies>.*the limit is {MAX_DEPENDENCIES_LENGTH}"):
        Nuspec.parse(_nuspec(f"<dependencies>{deps}</dependencies>"))
    with pytest.raises(PackageFormatError, match="version range of dependency"):
        Nuspec.parse(_nuspec(f'<dependencies><dependency id="D" version="{"1" * 257}"/></dependencies>'))
    with pytest.raises(PackageFormatError, match=r"<repository url=\.\.\.> is 4001"):
        Nuspec.parse(_nuspec(f'<repository type="git" url="{"u" * 4001}"/>'))


def test_limits_can_be_reported_instead_of_raised() -> None:
    spec = Nuspec.parse(_nuspec(description="x" * 5000, extra=f"<title>{'t' * 300}</title>"), enforce_limits=False)
    assert spec.description == "x" * 5000
    assert [p.split(" is ")[0] for p in spec.limit_problems] == ["the nuspec's <description>", "the nuspec's <title>"]


@pytest.mark.parametrize("path", VECTORS, ids=lambda p: p.name)
def test_real_packages_are_within_the_limits(path: Path) -> None:
    archive = PackageArchive.from_path(path)
    assert archive.nuspec().limit_problems == ()
    assert archive.structure_problems == ()


# ------------------------------------------------------------------------------------------------ zip bombs
def _raw_zip(entries: list[tuple[str, bytes, int, int, int]]) -> bytes:
    """A ZIP from (name, stored data, method, crc, uncompressed size) with no validation of its own."""
    out, cd = bytearray(), bytearray()
    for name, data, method, crc, usize in entries:
        nb = name.encode()
        cd += struct.pack("<4sHHHHHHIIIHHHHHII", b"PK\x01\x02", 20, 20, 0, method, 0, 0x21, crc, len(data), usize,
                          len(nb), 0, 0, 0, 0, 0, len(out)) + nb  # fmt: skip
        out += struct.pack("<4sHHHHHIIIHH", b"PK\x03\x04", 20, 0, method, 0, 0x21, crc, len(data), usize, len(nb), 0)
        out += nb + data
    eocd = struct.pack("<4sHHHHIIH", b"PK\x05\x06", 0, 0, len(entries), len(entries), len(cd), len(out), 0)
    return bytes(out + cd + eocd)


def _deflated(data: bytes) -> bytes:
    c = zlib.compressobj(9, zlib.DEFLATED, -15)
    return c.compress(data) + c.flush()


def test_many_one_mib_bomb_entries_are_refused() -> None:
    mib = bytes(1 << 20)
    packed, crc = _deflated(mib), zlib.crc32(mib)
    entries = [(f"content/part{i:04d}.bin", packed, 8, crc, len(mib)) for i in range(300)]
    archive = PackageArchive.from_bytes(_raw_zip(entries))
    total = 300 << 20
    assert archive.size * MAX_COMPRESSION_RATIO < total  # the attack: each entry alone is not over 1 MiB
    problems = archive.structure_problems
    assert [p.code for p in problems] == [StructureCode.TOTAL_COMPRESSION_RATIO], problems
    assert str(total) in problems[0].message  # the report names the total
    # each entry still reads (the bound is on the archive, not on one entry)
    assert archive.read("content/part0000.bin") == mib


def test_total_uncompressed_size_is_bounded() -> None:
    # stored (ratio 1) entries that declare more than the total cap: refused before anything is inflated
    size = (MAX_TOTAL_UNCOMPRESSED // 3) + 1
    entries = [(f"big{i}.bin", b"", 0, 0, size) for i in range(3)]
    problems = PackageArchive.from_bytes(_raw_zip(entries)).structure_problems
    assert StructureCode.TOTAL_TOO_LARGE in {p.code for p in problems}, problems


def test_ordinary_compressible_package_passes() -> None:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as z:
        z.writestr("Ok.nuspec", _nuspec(package_id="Ok"))
        # ~3 MB of XML documentation, the most compressible content real packages carry
        doc = "".join(f"<member name='M:T{i % 97}.M{i}'><summary>Does {i}.</summary></member>\n" for i in range(40_000))
        z.writestr("lib/net8.0/Ok.xml", doc.encode())
    assert PackageArchive.from_bytes(buf.getvalue()).structure_problems == ()


# ------------------------------------------------------------------------------------------------ collisions
@pytest.mark.parametrize(
    ("first", "second"),
    [
        ("content/a.txt", "content/A.TXT"),
        ("content/x\\y.txt", "content/x/y.txt"),
        ("content/a b.txt", "content/a%20b.txt"),
        ("content/caf\u00e9.txt", "content/cafe\u0301.txt"),
        ("Lib/Net45/x.dll", "lib/net45/x.dll"),
    ],
)
def test_names_colliding_on_extraction_are_structure_problems(first: str, second: str) -> None:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as z:
        z.writestr("Col.nuspec", _nuspec(package_id="Col"))
        z.writestr(first, b"one")
        z.writestr(second, b"two")
    problems = PackageArchive.from_bytes(buf.getvalue()).structure_problems
    assert [(p.code, p.entry) for p in problems] == [(StructureCode.EXTRACTION_COLLISION, second)], problems
    assert repr(first) in problems[0].message  # the report names both entries


def test_distinct_names_do_not_collide() -> None:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as z:
        for name in ("Col.nuspec", "content/a.txt", "content/a.txt.bak", "content/b/a.txt", "content/a%2.txt"):
            z.writestr(name, b"x")
    assert PackageArchive.from_bytes(buf.getvalue()).structure_problems == ()
