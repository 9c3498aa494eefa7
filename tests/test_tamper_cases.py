"""Tests of the tamper-case generator (``support.tamper``): each case changes what its docstring says and
nothing else, and the ZIP stays well formed where the case claims so. Checked against the real vectors with
Python's ``zipfile`` and ``asn1crypto``, independently of the generator's own parser where possible.

Plus one oracle smoke test: the wrapper parses a real run of NuGet's verifier.
"""

from __future__ import annotations

import base64
import functools
import hashlib
import io
import zipfile
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from asn1crypto import cms, x509
from cryptography import x509 as cx509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.hazmat.primitives.serialization import pkcs12
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from support import oracle, tamper

VECTORS = Path(__file__).resolve().parents[1].parent / "shared" / "vectors" / "nuget.org"
ALL_VECTORS = sorted(p.name for p in VECTORS.glob("*.nupkg"))
TAMPER_VECTORS = ["system.memory.4.5.3.nupkg", "RestSharp.106.11.4.nupkg", "Newtonsoft.Json.12.0.3.nupkg"]
SIG = ".signature.p7s"


CHUNK = 4096


@functools.cache
def read(name: str) -> bytes:
    return (VECTORS / name).read_bytes()


@functools.lru_cache(maxsize=32)
def _contents(package: bytes) -> tuple[tuple[str, bytes], ...]:
    with zipfile.ZipFile(io.BytesIO(package)) as z:
        return tuple((info.filename, z.read(info)) for info in z.infolist())


def contents(package: bytes) -> dict[str, bytes]:
    """name -> file content as Python's zipfile reads it (names in CD order; duplicates keep the last)."""
    return dict(_contents(package))


def diff_positions(a: bytes, b: bytes) -> list[int]:
    """Offsets where two equally long byte strings differ."""
    assert len(a) == len(b)
    out = []
    for start in range(0, len(a), CHUNK):
        x, y = a[start : start + CHUNK], b[start : start + CHUNK]
        if x != y:
            out += [start + i for i, (p, q) in enumerate(zip(x, y, strict=True)) if p != q]
    return out


def signed_data(package: bytes) -> cms.SignedData:
    return cms.ContentInfo.load(contents(package)[SIG])["content"]


def content_hash_property(package: bytes) -> bytes:
    """The package hash the signature content names (base64 text), read with asn1crypto."""
    text = signed_data(package)["encap_content_info"]["content"].native
    return text.split(b"-Hash:")[1].split(b"\n")[0]


def unsigned_attr(signer: cms.SignerInfo, attr_type: str) -> list[object]:
    if not signer["unsigned_attrs"].native:
        return []
    return [v for a in signer["unsigned_attrs"] if a["type"].native == attr_type for v in a["values"]]


def cert_for(sd: cms.SignedData, signer: cms.SignerInfo) -> x509.Certificate:
    sid = signer["sid"]
    for choice in sd["certificates"]:
        cert = choice.chosen
        if sid.name == "subject_key_identifier" and cert.key_identifier == sid.chosen.native:
            return cert
        if sid.name == "issuer_and_serial_number" and cert.issuer == sid.chosen["issuer"] and (
            cert.serial_number == sid.chosen["serial_number"].native
        ):
            return cert
    raise AssertionError("signer certificate not found")


def has_countersignature(vector: str) -> bool:
    return bool(unsigned_attr(signed_data(read(vector))["signer_infos"][0], "counter_signature"))


def applicable(case: str, vector: str) -> bool:
    """Every case applies to every vector except the countersignature edit to one without a countersignature."""
    return case != "signature_countersignature_value_byte" or has_countersignature(vector)


def pairs(cases: list[str]) -> list[tuple[str, str]]:
    return [(c, v) for c in cases for v in TAMPER_VECTORS if applicable(c, v)]


def apply(case: str, vector: str) -> tuple[bytes, bytes]:
    original = read(vector)
    return original, tamper.CASES[case](original)


# --------------------------------------------------------------------------- the ZIP model
@pytest.mark.parametrize("vector", ALL_VECTORS)
def test_parse_and_build_round_trip(vector: str) -> None:
    original = read(vector)
    archive = tamper.parse_archive(original)
    assert tamper.build_archive(archive) == original
    assert [archive.members[i].name.decode() for i in archive.cd_order] == list(contents(original))
    assert archive.members[tamper._signature_index(archive)].data == contents(original)[SIG]


def test_case_table() -> None:
    assert list(tamper.CASES) == [f.__name__ for f in tamper.CASES.values()]
    assert all(f.__doc__ and len(f.__doc__) > 20 for f in tamper.CASES.values())
    assert tamper.CONTENT_PRESERVING <= tamper.ZIP_VALID <= set(tamper.CASES)


@pytest.mark.parametrize("vector", ALL_VECTORS)
def test_not_applicable_only_without_a_countersignature(vector: str) -> None:
    original = read(vector)
    for case, fn in tamper.CASES.items():
        if applicable(case, vector):
            fn(original)
        else:
            with pytest.raises(tamper.NotApplicable, match="no countersignature"):
                fn(original)


@pytest.mark.parametrize(("case", "vector"), pairs(list(tamper.CASES)))
def test_case_changes_the_package_deterministically(case: str, vector: str) -> None:
    original, tampered = apply(case, vector)
    assert tampered != original
    assert tamper.CASES[case](original) == tampered


@pytest.mark.parametrize(("case", "vector"), pairs(sorted(tamper.ZIP_VALID)))
def test_zip_valid_cases_are_well_formed(case: str, vector: str) -> None:
    _, tampered = apply(case, vector)
    archive = tamper.parse_archive(tampered)  # strict: CD before EOCD, counts, headers where the CD says
    assert tamper.build_archive(archive) == tampered
    assert archive.trailer == b""
    with zipfile.ZipFile(io.BytesIO(tampered)) as z:
        assert [i.filename.encode() for i in z.infolist()] == [archive.members[i].name for i in archive.cd_order]
        assert all(i.header_offset == off for i, off in zip(
            z.infolist(), [tamper.local_offsets(archive)[j] for j in archive.cd_order], strict=True))


@pytest.mark.parametrize("vector", TAMPER_VECTORS)
@pytest.mark.parametrize("case", sorted(tamper.CONTENT_PRESERVING))
def test_content_preserving_cases_keep_every_file(case: str, vector: str) -> None:
    original, tampered = apply(case, vector)
    assert contents(tampered) == contents(original)
    with zipfile.ZipFile(io.BytesIO(tampered)) as z:
        assert z.testzip() is None


# --------------------------------------------------------------------------- integrity cases
@pytest.mark.parametrize("vector", TAMPER_VECTORS)
def test_entry_data_byte(vector: str) -> None:
    original, tampered = apply("entry_data_byte", vector)
    (at,) = diff_positions(original, tampered)
    with zipfile.ZipFile(io.BytesIO(original)) as z:
        hit = [i for i in z.infolist() if i.header_offset < at < i.header_offset + 30 + len(i.filename)
               + len(i.extra) + i.compress_size]
        assert len(hit) == 1 and hit[0].compress_type == zipfile.ZIP_DEFLATED
        assert at >= hit[0].header_offset + 30 + len(hit[0].filename)  # in the data, not the header
    with zipfile.ZipFile(io.BytesIO(tampered)) as z:
        assert z.testzip() == hit[0].filename  # the CRC no longer matches


@pytest.mark.parametrize("vector", TAMPER_VECTORS)
def test_entry_content_changed(vector: str) -> None:
    original, tampered = apply("entry_content_changed", vector)
    before, after = contents(original), contents(tampered)
    assert before.keys() == after.keys()
    changed = [n for n in before if before[n] != after[n]]
    assert len(changed) == 1
    assert len(diff_positions(before[changed[0]], after[changed[0]])) == 1
    with zipfile.ZipFile(io.BytesIO(tampered)) as z:
        assert z.testzip() is None


@pytest.mark.parametrize(("case", "header_field"), [("local_header_time", "local"), ("central_directory_time", "cd")])
@pytest.mark.parametrize("vector", TAMPER_VECTORS)
def test_time_fields(case: str, header_field: str, vector: str) -> None:
    original, tampered = apply(case, vector)
    with zipfile.ZipFile(io.BytesIO(original)) as z:
        first = min((i for i in z.infolist() if i.filename != SIG), key=lambda i: i.header_offset)
        cd_at = original.rfind(b"PK\x05\x06")
        cd_start = int.from_bytes(original[cd_at + 16 : cd_at + 20], "little")
        cd_record = cd_start
        for info in z.infolist():  # find this entry's CD record by walking the CD
            if info is first:
                break
            cd_record += 46 + len(info.filename) + len(info.extra) + len(info.comment)
    field_at = first.header_offset + 10 if header_field == "local" else cd_record + 12
    positions = diff_positions(original, tampered)
    assert positions and all(field_at <= p < field_at + 2 for p in positions)


@pytest.mark.parametrize("vector", TAMPER_VECTORS)
def test_central_directory_comment(vector: str) -> None:
    _, tampered = apply("central_directory_comment", vector)
    with zipfile.ZipFile(io.BytesIO(tampered)) as z:
        commented = [i for i in z.infolist() if i.comment]
        assert [i.comment for i in commented] == [tamper.CD_COMMENT]
        assert commented[0].filename != SIG


@pytest.mark.parametrize(("case", "before_signature"), [("entry_added", True), ("entry_added_after_signature", False)])
@pytest.mark.parametrize("vector", TAMPER_VECTORS)
def test_entry_added(case: str, before_signature: bool, vector: str) -> None:
    original, tampered = apply(case, vector)
    after = contents(tampered)
    added = after.pop(tamper.ADDED_NAME.decode())
    assert added == tamper.ADDED_DATA
    assert after == contents(original)
    names = list(contents(tampered))
    assert (names.index(tamper.ADDED_NAME.decode()) < names.index(SIG)) is before_signature
    with zipfile.ZipFile(io.BytesIO(tampered)) as z:
        assert z.testzip() is None


@pytest.mark.parametrize("vector", TAMPER_VECTORS)
def test_entry_removed(vector: str) -> None:
    original, tampered = apply("entry_removed", vector)
    before, after = contents(original), contents(tampered)
    assert len(before) == len(after) + 1
    assert {n: before[n] for n in after} == after
    assert SIG in after


@pytest.mark.parametrize("vector", TAMPER_VECTORS)
def test_entry_renamed(vector: str) -> None:
    original, tampered = apply("entry_renamed", vector)
    before, after = contents(original), contents(tampered)
    (old,) = set(before) - set(after)
    (new,) = set(after) - set(before)
    assert new.rpartition("/")[2] == "renamed-" + old.rpartition("/")[2]
    assert after[new] == before[old]
    assert len(tampered) == len(original) + 2 * len("renamed-")


@pytest.mark.parametrize("vector", TAMPER_VECTORS)
def test_entry_renamed_same_length(vector: str) -> None:
    original, tampered = apply("entry_renamed_same_length", vector)
    before, after = contents(original), contents(tampered)
    (old,) = set(before) - set(after)
    (new,) = set(after) - set(before)
    assert len(new) == len(old) and new[:-1] == old[:-1] and after[new] == before[old]
    assert len(tampered) == len(original)
    assert len(diff_positions(original, tampered)) == 2  # the last byte of the name in each header


# --------------------------------------------------------------------------- the signature's DER
def signature_only_changed(original: bytes, tampered: bytes) -> tuple[bytes, bytes]:
    before, after = contents(original), contents(tampered)
    assert {n: v for n, v in before.items() if n != SIG} == {n: v for n, v in after.items() if n != SIG}
    with zipfile.ZipFile(io.BytesIO(tampered)) as z:
        assert z.testzip() is None  # CRC rewritten: the only flaw is inside the CMS
    return before[SIG], after[SIG]


@pytest.mark.parametrize("vector", TAMPER_VECTORS)
def test_signature_value_byte(vector: str) -> None:
    old, new = signature_only_changed(*apply("signature_value_byte", vector))
    a = cms.ContentInfo.load(old)["content"]["signer_infos"][0]
    b = cms.ContentInfo.load(new)["content"]["signer_infos"][0]
    assert len(diff_positions(a["signature"].native, b["signature"].native)) == 1
    assert a["signed_attrs"].dump() == b["signed_attrs"].dump()
    assert len(diff_positions(old, new)) == 1


@pytest.mark.parametrize("vector", TAMPER_VECTORS)
def test_signature_content_cases(vector: str) -> None:
    original = read(vector)
    old, new = signature_only_changed(original, tamper.signature_content_hash_byte(original))
    old_text = cms.ContentInfo.load(old)["content"]["encap_content_info"]["content"].native
    new_text = cms.ContentInfo.load(new)["content"]["encap_content_info"]["content"].native
    assert len(diff_positions(old_text, new_text)) == 1
    new_hash = new_text.split(b"-Hash:")[1].split(b"\n")[0]
    assert len(base64.b64decode(new_hash, validate=True)) == len(base64.b64decode(content_hash_property(original)))
    assert new_hash != content_hash_property(original)

    _, new = signature_only_changed(original, tamper.signature_content_version(original))
    version_text = cms.ContentInfo.load(new)["content"]["encap_content_info"]["content"].native
    assert version_text == old_text.replace(b"Version:1", b"Version:2", 1)


@pytest.mark.parametrize("vector", TAMPER_VECTORS)
def test_signature_signing_time_byte(vector: str) -> None:
    old, new = signature_only_changed(*apply("signature_signing_time_byte", vector))

    def signing_time(der: bytes) -> object:
        signer = cms.ContentInfo.load(der)["content"]["signer_infos"][0]
        (value,) = [a["values"][0].native for a in signer["signed_attrs"] if a["type"].native == "signing_time"]
        return value

    delta = signing_time(new) - signing_time(old)  # type: ignore[operator]
    assert delta in (timedelta(seconds=1), timedelta(seconds=-9))


@pytest.mark.parametrize(
    "case",
    ["signature_signer_certificate_byte", "signature_signer_public_key_byte",
     "signature_intermediate_certificate_byte", "signature_timestamp_certificate_byte"],
)
@pytest.mark.parametrize("vector", TAMPER_VECTORS)
def test_signature_certificate_cases(case: str, vector: str) -> None:
    old, new = signature_only_changed(*apply(case, vector))
    sd_old = cms.ContentInfo.load(old)["content"]
    leaf = cert_for(sd_old, sd_old["signer_infos"][0])
    if case == "signature_intermediate_certificate_byte":
        target = next(c.chosen for c in sd_old["certificates"] if c.chosen.subject == leaf.issuer)
    elif case == "signature_timestamp_certificate_byte":
        token = unsigned_attr(sd_old["signer_infos"][0], "signature_time_stamp_token")[0]
        target = cert_for(token["content"], token["content"]["signer_infos"][0])  # type: ignore[index]
    else:
        target = leaf
    raw = target.dump()
    assert raw in old and raw not in new  # every copy changed
    spki = target["tbs_certificate"]["subject_public_key_info"].dump()
    positions = diff_positions(old, new)
    assert len(positions) == old.count(raw)  # one byte per copy
    first = old.index(raw)
    offset_in_cert = positions[0] - first
    if case == "signature_signer_public_key_byte":
        assert raw.index(spki) < offset_in_cert < raw.index(spki) + len(spki)
    else:
        assert offset_in_cert == len(raw) - 1  # inside the certificate's signatureValue
    # other certificates untouched
    others_old = {c.chosen.dump() for c in sd_old["certificates"]} - {raw}
    assert all(o in new for o in others_old)


@pytest.mark.parametrize(
    ("case", "vector"), pairs(["signature_timestamp_value_byte", "signature_countersignature_value_byte"])
)
def test_signature_nested_values(case: str, vector: str) -> None:
    old, new = signature_only_changed(*apply(case, vector))
    primary_old = cms.ContentInfo.load(old)["content"]["signer_infos"][0]
    primary_new = cms.ContentInfo.load(new)["content"]["signer_infos"][0]
    assert primary_old["signature"].native == primary_new["signature"].native
    if case == "signature_timestamp_value_byte":
        pick = lambda s: unsigned_attr(s, "signature_time_stamp_token")[0]["content"]["signer_infos"][0]  # noqa: E731
    else:
        pick = lambda s: unsigned_attr(s, "counter_signature")[0]  # noqa: E731
    a, b = pick(primary_old), pick(primary_new)
    assert len(diff_positions(a["signature"].native, b["signature"].native)) == 1
    assert len(diff_positions(old, new)) == 1


@pytest.mark.parametrize("vector", TAMPER_VECTORS)
def test_signature_truncated_and_empty(vector: str) -> None:
    original = read(vector)
    old, new = signature_only_changed(original, tamper.signature_der_truncated(original))
    assert new == old[: -tamper.SIGNATURE_DER_CUT]
    _, empty = signature_only_changed(original, tamper.signature_empty(original))
    assert empty == b""


# --------------------------------------------------------------------------- the signature entry's framing
def signature_member(package: bytes) -> tamper.Member:
    archive = tamper.parse_archive(package)
    (member,) = [m for m in archive.members if m.name in (b".signature.p7s",)]
    return member


@pytest.mark.parametrize("vector", TAMPER_VECTORS)
def test_signature_header_cases(vector: str) -> None:
    original = read(vector)
    der = contents(original)[SIG]
    with zipfile.ZipFile(io.BytesIO(tamper.signature_deflated(original))) as z:
        info = z.getinfo(SIG)
        assert info.compress_type == zipfile.ZIP_DEFLATED and info.compress_size < info.file_size
        assert z.read(SIG) == der
    m = signature_member(tamper.signature_deflated(original))
    assert m.lfield("method") == m.cfield("method") == tamper.METHOD_DEFLATED
    assert m.lfield("csize") == m.cfield("csize") < m.lfield("usize") == m.cfield("usize") == len(der)

    m = signature_member(tamper.signature_flag_utf8(original))
    assert m.lfield("flags") == m.cfield("flags") == tamper.FLAG_UTF8

    m = signature_member(tamper.signature_flag_data_descriptor(original))
    assert m.lfield("flags") == m.cfield("flags") == tamper.FLAG_DATA_DESCRIPTOR
    assert m.body == der + b"PK\x07\x08" + m.cfield("crc").to_bytes(4, "little") + 2 * len(der).to_bytes(4, "little")

    m = signature_member(tamper.signature_flag_data_descriptor_central_only(original))
    assert m.cfield("flags") == tamper.FLAG_DATA_DESCRIPTOR and m.lfield("flags") == 0
    assert m.body == der  # no data descriptor written

    with zipfile.ZipFile(io.BytesIO(tamper.signature_external_attributes(original))) as z:
        assert z.getinfo(SIG).external_attr == tamper.ZIPARCHIVE_EXTERNAL_ATTRIBUTES
        assert z.getinfo(SIG).external_attr == 0o100644 << 16  # S_IFREG | rw-r--r--

    m = signature_member(tamper.signature_local_extra_field(original))
    assert m.local_extra == tamper.LOCAL_EXTRA and m.central_extra == b""


@pytest.mark.parametrize(("case", "name"), [("signature_renamed_p7t", ".signature.p7t"),
                                             ("signature_renamed_uppercase", ".Signature.p7s")])
@pytest.mark.parametrize("vector", TAMPER_VECTORS)
def test_signature_renamed(case: str, name: str, vector: str) -> None:
    original, tampered = apply(case, vector)
    before, after = contents(original), contents(tampered)
    assert SIG not in after and after[name] == before[SIG]
    assert len(diff_positions(original, tampered)) == 2  # one byte of the name in each header


@pytest.mark.parametrize("vector", TAMPER_VECTORS)
def test_signature_duplicated(vector: str) -> None:
    original, tampered = apply("signature_duplicated", vector)
    with zipfile.ZipFile(io.BytesIO(tampered)) as z:
        copies = [z.read(i) for i in z.infolist() if i.filename == SIG]
        assert z.testzip() is None
    assert copies == [contents(original)[SIG]] * 2


@pytest.mark.parametrize(
    ("case", "local_where", "cd_where"),
    [("signature_moved_first", "first", "first"), ("signature_moved_middle", "middle", "middle"),
     ("signature_local_first_cd_last", "first", "last"), ("signature_local_last_cd_first", "last", "first")],
)
@pytest.mark.parametrize("vector", TAMPER_VECTORS)
def test_signature_moved(case: str, local_where: str, cd_where: str, vector: str) -> None:
    original, tampered = apply(case, vector)
    assert len(tampered) == len(original)
    with zipfile.ZipFile(io.BytesIO(tampered)) as z:
        infos = z.infolist()
        by_offset = sorted(infos, key=lambda i: i.header_offset)
    n = len(infos)
    where = {"first": 0, "middle": n // 2, "last": n - 1}
    assert [i.filename for i in infos].index(SIG) == where[cd_where]
    assert [i.filename for i in by_offset].index(SIG) == where[local_where]


@pytest.mark.parametrize("vector", ALL_VECTORS)
def test_signature_removed_is_the_signed_unsigned_package(vector: str) -> None:
    """NuGet's content hash of a signed package is the hash of the package before signing; removing the
    signature NuGet's way must give back exactly the bytes whose SHA-256 the signature names."""
    original = read(vector)
    unsigned = tamper.signature_removed(original)
    assert base64.b64encode(hashlib.sha256(unsigned).digest()) == content_hash_property(original)
    after = contents(unsigned)
    assert SIG not in after and after == {n: v for n, v in contents(original).items() if n != SIG}
    archive = tamper.parse_archive(original)
    assert unsigned == tamper.build_archive(tamper._remove(archive, tamper._signature_index(archive)))


# --------------------------------------------------------------------------- whole-file framing
@pytest.mark.parametrize("vector", TAMPER_VECTORS)
def test_prefix_append_and_comment(vector: str) -> None:
    original = read(vector)
    assert tamper.prefix_offsets_kept(original) == tamper.PREFIX + original
    rewritten = tamper.prefix_offsets_rewritten(original)
    assert rewritten.startswith(tamper.PREFIX) and rewritten[len(tamper.PREFIX) :] != original
    assert tamper.parse_archive(rewritten).prefix == tamper.PREFIX
    with zipfile.ZipFile(io.BytesIO(rewritten)) as z:
        assert min(i.header_offset for i in z.infolist()) == len(tamper.PREFIX)
    assert tamper.bytes_appended(original) == original + tamper.APPENDIX
    with zipfile.ZipFile(io.BytesIO(tamper.eocd_comment_added(original))) as z:
        assert z.comment == tamper.EOCD_COMMENT


@pytest.mark.parametrize("vector", TAMPER_VECTORS)
def test_truncations(vector: str) -> None:
    original = read(vector)
    eocd_at = original.rfind(b"PK\x05\x06")
    cd_offset = int.from_bytes(original[eocd_at + 16 : eocd_at + 20], "little")
    with zipfile.ZipFile(io.BytesIO(original)) as z:
        big = max((i for i in z.infolist() if i.compress_type == zipfile.ZIP_DEFLATED), key=lambda i: i.compress_size)
    data_at = big.header_offset + 30 + len(big.filename) + len(big.extra)
    regions = {
        "truncated_mid_data": (data_at, data_at + big.compress_size),
        "truncated_mid_cd": (cd_offset, eocd_at),
        "truncated_mid_eocd": (eocd_at + 4, eocd_at + 22),
    }
    for case, (low, high) in regions.items():
        cut = tamper.CASES[case](original)
        assert original.startswith(cut) and low < len(cut) < high, case
        with pytest.raises(zipfile.BadZipFile):
            zipfile.ZipFile(io.BytesIO(cut))


@pytest.mark.parametrize("case", ["not_a_zip_text", "not_a_zip_empty", "truncated_mid_cd"])
def test_not_a_zip(case: str) -> None:
    out = tamper.CASES[case](read(TAMPER_VECTORS[0]))
    with pytest.raises(ValueError, match=r"central directory"):
        tamper.parse_archive(out)


@pytest.mark.parametrize("vector", TAMPER_VECTORS)
def test_absurd_fields(vector: str) -> None:
    original = read(vector)
    eocd_at = original.rfind(b"PK\x05\x06")

    def eocd(b: bytes, at: int, size: int) -> int:
        return int.from_bytes(b[eocd_at + at : eocd_at + at + size], "little")

    out = tamper.absurd_entry_count(original)
    assert eocd(out, 8, 2) == eocd(out, 10, 2) == tamper.ABSURD_COUNT
    assert all(eocd_at + 8 <= p < eocd_at + 12 for p in diff_positions(original, out))
    out = tamper.absurd_cd_offset(original)
    assert eocd(out, 16, 4) > len(out)
    assert all(eocd_at + 16 <= p < eocd_at + 20 for p in diff_positions(original, out))
    out = tamper.absurd_cd_size(original)
    assert eocd(out, 12, 4) == tamper.ABSURD_SIZE
    assert all(eocd_at + 12 <= p < eocd_at + 16 for p in diff_positions(original, out))

    with zipfile.ZipFile(io.BytesIO(original)) as z:
        big = max((i for i in z.infolist() if i.compress_type == zipfile.ZIP_DEFLATED), key=lambda i: i.compress_size)
    with zipfile.ZipFile(io.BytesIO(tamper.absurd_central_sizes(original))) as z:
        info = z.getinfo(big.filename)
        assert info.compress_size == info.file_size == tamper.ABSURD_SIZE
    out = tamper.absurd_local_sizes(original)
    assert all(big.header_offset + 18 <= p < big.header_offset + 26 for p in diff_positions(original, out))
    assert int.from_bytes(out[big.header_offset + 18 : big.header_offset + 22], "little") == tamper.ABSURD_SIZE
    assert int.from_bytes(out[big.header_offset + 22 : big.header_offset + 26], "little") == tamper.ABSURD_SIZE


# --------------------------------------------------------------------------- the oracle wrapper
def test_parse_verify_document_closes_a_cut_document() -> None:
    """oracle.cs leaves objects open when an exception escapes mid-object; the parser still reads it."""
    text = '{"oracle": "x", "isSigned": true,\n  "primarySignature": {\n    "type": "Author",\n    "fatal": "boom"'
    report = oracle.parse_verify_document(text)
    assert report.fatal == "boom" and report.is_signed is True and report.policies == ()


@pytest.mark.oracle
def test_oracle_wrapper_parses_a_real_run() -> None:
    reason = oracle.oracle_unavailable_reason()
    if reason is not None:
        pytest.skip(reason)
    original = read("RestSharp.106.11.4.nupkg")
    report = oracle.verify(original, use_cache=False)
    assert report.fatal is None and report.is_signed is True and report.integrity == "ok"
    assert report.content_hash == base64.b64encode(hashlib.sha512(tamper.signature_removed(original)).digest()).decode()
    assert report.primary is not None and report.primary.type == "Repository"
    assert report.primary.content_hash_value == content_hash_property(original).decode()
    sd = signed_data(original)
    leaf = cert_for(sd, sd["signer_infos"][0])
    assert report.primary.signing_certificate_sha256 == hashlib.sha256(leaf.dump()).hexdigest().upper()
    assert report.countersignature is None
    assert [v.policy for v in report.policies] == list(oracle.POLICIES)
    assert all(v.is_valid and v.codes == () for v in report.policies)

    tampered = oracle.verify(tamper.entry_data_byte(original), use_cache=False)
    for name in oracle.POLICIES:
        verdict = tampered.policy(name)
        assert verdict.is_valid is False and verdict.codes == (("error", "NU3008"),)
        assert verdict.issues[0].code == "NU3008" and "integrity" in verdict.issues[0].message


def make_test_pki(tmp: Path) -> tuple[Path, Path]:
    """A root and a code-signing leaf (RSA 2048), written as ``root.pem`` and ``author.pfx`` (password ``pw``)."""
    now = datetime.now(UTC)
    root_key, leaf_key = (rsa.generate_private_key(public_exponent=65537, key_size=2048) for _ in range(2))
    root_name = cx509.Name([cx509.NameAttribute(NameOID.COMMON_NAME, "nuseal oracle smoke root")])
    root = (
        cx509.CertificateBuilder().subject_name(root_name).issuer_name(root_name)
        .public_key(root_key.public_key()).serial_number(cx509.random_serial_number())
        .not_valid_before(now - timedelta(days=1)).not_valid_after(now + timedelta(days=30))
        .add_extension(cx509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(cx509.KeyUsage(False, False, False, False, False, True, True, False, False), critical=True)
        .add_extension(cx509.SubjectKeyIdentifier.from_public_key(root_key.public_key()), critical=False)
        .sign(root_key, hashes.SHA256())
    )
    leaf = (
        cx509.CertificateBuilder()
        .subject_name(cx509.Name([cx509.NameAttribute(NameOID.COMMON_NAME, "nuseal oracle smoke author")]))
        .issuer_name(root_name).public_key(leaf_key.public_key()).serial_number(cx509.random_serial_number())
        .not_valid_before(now - timedelta(days=1)).not_valid_after(now + timedelta(days=20))
        .add_extension(cx509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(cx509.KeyUsage(True, False, False, False, False, False, False, False, False), critical=True)
        .add_extension(cx509.ExtendedKeyUsage([ExtendedKeyUsageOID.CODE_SIGNING]), critical=False)
        .add_extension(cx509.SubjectKeyIdentifier.from_public_key(leaf_key.public_key()), critical=False)
        .add_extension(cx509.AuthorityKeyIdentifier.from_issuer_public_key(root_key.public_key()), critical=False)
        .sign(root_key, hashes.SHA256())
    )
    (tmp / "root.pem").write_bytes(root.public_bytes(serialization.Encoding.PEM))
    (tmp / "author.pfx").write_bytes(pkcs12.serialize_key_and_certificates(
        b"author", leaf_key, leaf, [root], serialization.BestAvailableEncryption(b"pw")))
    return tmp / "root.pem", tmp / "author.pfx"


@pytest.mark.oracle
def test_oracle_wrapper_signs_with_nuget(tmp_path: Path) -> None:
    """NuGet's signer through the wrapper; removing its signature NuGet's way gives back the input exactly."""
    reason = oracle.oracle_unavailable_reason()
    if reason is not None:
        pytest.skip(reason)
    root, pfx = make_test_pki(tmp_path)
    unsigned = tamper.signature_removed(read("RestSharp.106.11.4.nupkg"))
    refused = oracle.sign(unsigned, pfx=pfx, password="pw")  # root not trusted
    assert not refused.ok and refused.signed is None
    assert [(i.level, i.code) for i in refused.issues] == [("error", "NU3018")]

    signed = oracle.sign(unsigned, pfx=pfx, password="pw", extra_certs=[root], trust_bundle=root)
    assert signed.ok and signed.signed is not None and signed.exception is None
    assert tamper.signature_removed(signed.signed) == unsigned
    report = oracle.verify(signed.signed, trust_bundle=root, timestamp_bundle=root, use_cache=False)
    assert report.primary is not None and report.primary.type == "Author"
    assert signed.certificate is not None
    assert report.primary.signing_certificate_sha256 == signed.certificate.sha256
    assert all(v.is_valid for v in report.policies)
