"""Tampered copies of real signed .nupkg files: one pure function per case of the tamper matrix.

Every case takes the bytes of a signed package and returns new bytes; ``CASES`` maps stable ids to them.
The ZIP container is taken apart with plain ``struct`` code written here (independent of ``nuseal.package``)
into local entries and central-directory (CD) records, edited, and put back together with every offset, count
and size recomputed, so a case changes exactly what its docstring says and nothing else. CMS edits locate the
bytes to change with ``asn1crypto`` and keep every DER length unchanged.

Format references: PKWARE APPNOTE.TXT 6.3 (4.3.7 local file header, 4.3.9 data descriptor, 4.3.12 central
directory header, 4.3.16 end of central directory record); NUGET-SIGNING.md (shared/) §1 (the signature
entry) and §2.4 (NuGet's ``SignedPackageArchiveIOUtility.RemoveSignature``); RFC 5652 (CMS).

A case that does not apply to a package (for example a countersignature edit on a package without one)
raises ``NotApplicable``.
"""

from __future__ import annotations

import struct
import zlib
from collections.abc import Callable
from dataclasses import dataclass, replace

from asn1crypto import cms, x509

__all__ = [
    "ABSURD_COUNT",
    "ABSURD_SIZE",
    "CASES",
    "CONTENT_PRESERVING",
    "SIGNATURE_NAME",
    "ZIPARCHIVE_EXTERNAL_ATTRIBUTES",
    "ZIP_VALID",
    "Archive",
    "Member",
    "NotApplicable",
    "build_archive",
    "local_offsets",
    "parse_archive",
    "signature_der",
]

LFH_SIGNATURE = b"PK\x03\x04"
CDH_SIGNATURE = b"PK\x01\x02"
EOCD_SIGNATURE = b"PK\x05\x06"
DATA_DESCRIPTOR_SIGNATURE = b"PK\x07\x08"
LFH_SIZE = 30  # fixed part of a local file header (APPNOTE 4.3.7)
CDH_SIZE = 46  # fixed part of a central directory header (APPNOTE 4.3.12)
EOCD_SIZE = 22  # fixed part of the end of central directory record (APPNOTE 4.3.16)
MAX_COMMENT = 0xFFFF

SIGNATURE_NAME = b".signature.p7s"
METHOD_STORED = 0
METHOD_DEFLATED = 8
FLAG_DATA_DESCRIPTOR = 0x0008  # general purpose bit 3
FLAG_UTF8 = 0x0800  # general purpose bit 11 (language encoding flag)
ZIPARCHIVE_EXTERNAL_ATTRIBUTES = 0x81A40000  # S_IFREG | 0644 << 16, as .NET's ZipArchive writes on Unix
ABSURD_SIZE = 0xFFFFFFF0  # large but not the ZIP64 marker 0xFFFFFFFF
ABSURD_COUNT = 0xFFFF
BEYOND_EOF = 0x1000  # how far past the end of the file ``absurd_cd_offset`` points

PREFIX = b"#!/bin/sh\n# bytes in front of the first local file header (a self-extractor stub)\nexit 0\n"
APPENDIX = b"\x00trailing bytes after the end of central directory record, outside its comment\n"
EOCD_COMMENT = b"tampered: an archive comment"
CD_COMMENT = b"tampered: a file comment"
ADDED_NAME = b"tools/init.ps1"
ADDED_DATA = b"Write-Host 'this file was added after signing'\r\n"
LOCAL_EXTRA = struct.pack("<HH4s", 0xCAFE, 4, b"tamp")  # an unknown extra field (id 0xCAFE, 4 bytes)
SIGNATURE_DER_CUT = 64  # bytes removed from the end of the signature in ``signature_der_truncated``

_Fields = dict[str, tuple[int, str]]
LFH_FIELDS: _Fields = {
    "version_needed": (4, "H"), "flags": (6, "H"), "method": (8, "H"), "mtime": (10, "H"), "mdate": (12, "H"),
    "crc": (14, "I"), "csize": (18, "I"), "usize": (22, "I"), "name_len": (26, "H"), "extra_len": (28, "H"),
}
CDH_FIELDS: _Fields = {
    "version_made": (4, "H"), "version_needed": (6, "H"), "flags": (8, "H"), "method": (10, "H"),
    "mtime": (12, "H"), "mdate": (14, "H"), "crc": (16, "I"), "csize": (20, "I"), "usize": (24, "I"),
    "name_len": (28, "H"), "extra_len": (30, "H"), "comment_len": (32, "H"), "disk_start": (34, "H"),
    "internal_attrs": (36, "H"), "external_attrs": (38, "I"), "lho": (42, "I"),
}
EOCD_FIELDS: _Fields = {
    "disk": (4, "H"), "cd_disk": (6, "H"), "entries_disk": (8, "H"), "entries_total": (10, "H"),
    "cd_size": (12, "I"), "cd_offset": (16, "I"), "comment_len": (20, "H"),
}


class NotApplicable(ValueError):
    """The case cannot be applied to this package (the part it edits does not exist)."""


def get_field(fields: _Fields, raw: bytes, name: str) -> int:
    """The little-endian integer field ``name`` of a fixed header ``raw``."""
    at, fmt = fields[name]
    value: int = struct.unpack_from("<" + fmt, raw, at)[0]
    return value


def set_fields(fields: _Fields, raw: bytes, **values: int) -> bytes:
    """A copy of the fixed header ``raw`` with the given fields set (values wrap to the field width)."""
    out = bytearray(raw)
    for name, value in values.items():
        at, fmt = fields[name]
        struct.pack_into("<" + fmt, out, at, value & (0xFFFF if fmt == "H" else 0xFFFFFFFF))
    return bytes(out)


@dataclass(frozen=True)
class Member:
    """One archive member: its local entry and its CD record, as stored.

    ``body`` is everything from the end of the local header up to the next local header (or the CD):
    the data, any data descriptor, any gap.
    """

    local: bytes  # 30-byte fixed part of the local header
    local_name: bytes
    local_extra: bytes
    body: bytes
    central: bytes  # 46-byte fixed part of the CD record
    name: bytes  # the CD record's file name
    central_extra: bytes
    comment: bytes

    def lfield(self, field: str) -> int:
        return get_field(LFH_FIELDS, self.local, field)

    def cfield(self, field: str) -> int:
        return get_field(CDH_FIELDS, self.central, field)

    def with_local(self, **values: int) -> Member:
        return replace(self, local=set_fields(LFH_FIELDS, self.local, **values))

    def with_central(self, **values: int) -> Member:
        return replace(self, central=set_fields(CDH_FIELDS, self.central, **values))

    def with_both(self, **values: int) -> Member:
        """Fields that exist in both headers (flags, method, times, CRC, sizes) set in both."""
        return self.with_local(**values).with_central(**values)

    def renamed(self, name: bytes) -> Member:
        return replace(self, local_name=name, name=name)

    @property
    def data(self) -> bytes:
        """The stored (possibly compressed) data, as long as the CD record says."""
        return self.body[: self.cfield("csize")]

    def with_data(self, data: bytes, *, usize: int | None = None, crc: int | None = None) -> Member:
        """New stored data; sizes and CRC updated in both headers (CRC of ``data`` unless given)."""
        size = len(data) if usize is None else usize
        value = zlib.crc32(data) if crc is None else crc
        return replace(self, body=data).with_both(csize=len(data), usize=size, crc=value)


@dataclass(frozen=True)
class Archive:
    """A ZIP taken apart: ``members`` in local-header order, ``cd_order[k]`` = the member described by the k-th
    CD record, the EOCD's fixed part, its declared comment, and whatever follows the comment."""

    prefix: bytes
    members: tuple[Member, ...]
    cd_order: tuple[int, ...]
    eocd: bytes
    comment: bytes
    trailer: bytes

    def replace_member(self, index: int, member: Member) -> Archive:
        members = list(self.members)
        members[index] = member
        return replace(self, members=tuple(members))


def parse_archive(package: bytes) -> Archive:
    """Take a plain ZIP apart (no ZIP64, CD directly before the EOCD, one CD record per local entry).

    Raises ``ValueError`` for anything else: the generator only starts from well-formed signed packages.
    """
    eocd_at = package.rfind(EOCD_SIGNATURE)
    if eocd_at < 0 or eocd_at + EOCD_SIZE > len(package):
        raise ValueError("no end of central directory record")
    eocd = package[eocd_at : eocd_at + EOCD_SIZE]
    count = get_field(EOCD_FIELDS, eocd, "entries_total")
    cd_offset = get_field(EOCD_FIELDS, eocd, "cd_offset")
    comment_len = get_field(EOCD_FIELDS, eocd, "comment_len")
    if cd_offset + get_field(EOCD_FIELDS, eocd, "cd_size") != eocd_at:
        raise ValueError("the central directory does not end at the EOCD")
    records: list[tuple[int, bytes, bytes, bytes, bytes]] = []  # lho, fixed, name, extra, comment
    at = cd_offset
    for _ in range(count):
        if package[at : at + 4] != CDH_SIGNATURE:
            raise ValueError(f"no central directory header at {at}")
        fixed = package[at : at + CDH_SIZE]
        n, x, c = (get_field(CDH_FIELDS, fixed, f) for f in ("name_len", "extra_len", "comment_len"))
        name = package[at + CDH_SIZE : at + CDH_SIZE + n]
        extra = package[at + CDH_SIZE + n : at + CDH_SIZE + n + x]
        comment = package[at + CDH_SIZE + n + x : at + CDH_SIZE + n + x + c]
        records.append((get_field(CDH_FIELDS, fixed, "lho"), fixed, name, extra, comment))
        at += CDH_SIZE + n + x + c
    if at != eocd_at:
        raise ValueError("the EOCD entry count does not match the central directory")
    starts = sorted({r[0] for r in records})
    if len(starts) != len(records):
        raise ValueError("two CD records share a local header")
    ends = dict(zip(starts, [*starts[1:], cd_offset], strict=True))
    by_start: dict[int, Member] = {}
    for lho, fixed, name, extra, comment in records:
        if package[lho : lho + 4] != LFH_SIGNATURE:
            raise ValueError(f"no local file header at {lho}")
        local = package[lho : lho + LFH_SIZE]
        n, x = get_field(LFH_FIELDS, local, "name_len"), get_field(LFH_FIELDS, local, "extra_len")
        body_at = lho + LFH_SIZE + n + x
        if body_at > ends[lho]:
            raise ValueError(f"local header at {lho} overlaps the next entry")
        by_start[lho] = Member(
            local, package[lho + LFH_SIZE : lho + LFH_SIZE + n], package[lho + LFH_SIZE + n : body_at],
            package[body_at : ends[lho]], fixed, name, extra, comment,
        )
    index = {lho: i for i, lho in enumerate(starts)}
    return Archive(
        prefix=package[: starts[0]] if starts else package[:cd_offset],
        members=tuple(by_start[lho] for lho in starts),
        cd_order=tuple(index[r[0]] for r in records),
        eocd=eocd,
        comment=package[eocd_at + EOCD_SIZE : eocd_at + EOCD_SIZE + comment_len],
        trailer=package[eocd_at + EOCD_SIZE + comment_len :],
    )


def local_offsets(archive: Archive) -> list[int]:
    """Where ``build_archive`` puts each member's local header (absolute file offsets)."""
    out, at = [], len(archive.prefix)
    for m in archive.members:
        out.append(at)
        at += LFH_SIZE + len(m.local_name) + len(m.local_extra) + len(m.body)
    return out


def build_archive(archive: Archive) -> bytes:
    """Reassemble: name/extra/comment lengths, local header offsets, EOCD counts, CD size and offset and the
    comment length are all recomputed; every other field is written as stored."""
    out = bytearray(archive.prefix)
    offsets = local_offsets(archive)
    for m in archive.members:
        out += set_fields(LFH_FIELDS, m.local, name_len=len(m.local_name), extra_len=len(m.local_extra))
        out += m.local_name + m.local_extra + m.body
    cd_start = len(out)
    for i in archive.cd_order:
        m = archive.members[i]
        out += set_fields(
            CDH_FIELDS, m.central, name_len=len(m.name), extra_len=len(m.central_extra),
            comment_len=len(m.comment), lho=offsets[i],
        )
        out += m.name + m.central_extra + m.comment
    n = len(archive.cd_order)
    if len(archive.comment) > MAX_COMMENT:
        raise ValueError("EOCD comment too long")
    out += set_fields(
        EOCD_FIELDS, archive.eocd, entries_disk=n, entries_total=n, cd_size=len(out) - cd_start,
        cd_offset=cd_start, comment_len=len(archive.comment),
    )
    return bytes(out + archive.comment + archive.trailer)


# --------------------------------------------------------------------------- helpers
def _signature_index(archive: Archive) -> int:
    found = [i for i, m in enumerate(archive.members) if m.name == SIGNATURE_NAME]
    if len(found) != 1:
        raise ValueError(f"expected one {SIGNATURE_NAME!r} entry, found {len(found)}")
    return found[0]


def _content_index(archive: Archive) -> int:
    """The member with the largest deflated data (not the signature)."""
    candidates = [
        i for i, m in enumerate(archive.members)
        if m.name != SIGNATURE_NAME and m.cfield("method") == METHOD_DEFLATED and m.cfield("csize") > 0
    ]
    if not candidates:
        raise NotApplicable("no deflated entry")
    return max(candidates, key=lambda i: archive.members[i].cfield("csize"))


def _first_content_index(archive: Archive) -> int:
    """The first member in local order that is not the signature."""
    return next(i for i, m in enumerate(archive.members) if m.name != SIGNATURE_NAME)


def _move(archive: Archive, local_to: int, cd_to: int) -> Archive:
    """The signature member moved to local position ``local_to`` and CD position ``cd_to``."""
    s = _signature_index(archive)
    members = list(archive.members)
    sig = members.pop(s)
    members.insert(local_to, sig)
    remap = {old: new for new, old in enumerate(j for j in range(len(archive.members)) if j != s)}
    remap = {old: (new if new < local_to else new + 1) for old, new in remap.items()}
    remap[s] = local_to
    cd = [remap[i] for i in archive.cd_order if i != s]
    cd.insert(cd_to, local_to)
    return replace(archive, members=tuple(members), cd_order=tuple(cd))


def _insert(archive: Archive, member: Member, local_at: int, cd_at: int) -> Archive:
    """A new member inserted at local position ``local_at`` and CD position ``cd_at``."""
    members = list(archive.members)
    members.insert(local_at, member)
    cd = [i if i < local_at else i + 1 for i in archive.cd_order]
    cd.insert(cd_at, local_at)
    return replace(archive, members=tuple(members), cd_order=tuple(cd))


def _remove(archive: Archive, index: int) -> Archive:
    members = list(archive.members)
    del members[index]
    cd = [i if i < index else i - 1 for i in archive.cd_order if i != index]
    return replace(archive, members=tuple(members), cd_order=tuple(cd))


def _edit_signature(package: bytes, edit: Callable[[Member], Member]) -> bytes:
    archive = parse_archive(package)
    s = _signature_index(archive)
    return build_archive(archive.replace_member(s, edit(archive.members[s])))


def signature_der(package: bytes) -> bytes:
    """The stored bytes of the package's single ``.signature.p7s`` entry."""
    archive = parse_archive(package)
    return archive.members[_signature_index(archive)].data


def _with_signature_der(package: bytes, der: bytes) -> bytes:
    """The signature entry's data replaced by ``der`` (stored; sizes and CRC updated)."""
    return _edit_signature(package, lambda m: m.with_data(der))


def _xor_at(region: bytes, at: int) -> bytes:
    out = bytearray(region)
    out[at] ^= 0x01
    return bytes(out)


def _replace_all(der: bytes, old: bytes, new: bytes) -> bytes:
    """Every occurrence of ``old`` (a whole DER element, same length as ``new``) replaced."""
    if len(old) != len(new) or old not in der:
        raise ValueError("region not found or length changed")
    return der.replace(old, new)


def _primary(der: bytes) -> tuple[cms.SignedData, cms.SignerInfo]:
    signed_data = cms.ContentInfo.load(der)["content"]
    return signed_data, signed_data["signer_infos"][0]


def _unsigned(signer: cms.SignerInfo, attr_type: str) -> list[object]:
    attrs = signer["unsigned_attrs"]
    if not attrs.native:
        return []
    return [v for a in attrs if a["type"].native == attr_type for v in a["values"]]


def _signer_certificate(signed_data: cms.SignedData, signer: cms.SignerInfo) -> x509.Certificate:
    """The certificate the SignerInfo's sid names (SKI or issuer + serial), from ``signed_data``'s bag."""
    sid = signer["sid"]
    for choice in signed_data["certificates"]:
        cert = choice.chosen
        if not isinstance(cert, x509.Certificate):
            continue
        if sid.name == "subject_key_identifier":
            if cert.key_identifier == sid.chosen.native:
                return cert
        elif cert.issuer == sid.chosen["issuer"] and cert.serial_number == sid.chosen["serial_number"].native:
            return cert
    raise NotApplicable("the signer's certificate is not in the certificate set")


def _timestamp_token(signer: cms.SignerInfo) -> cms.ContentInfo:
    tokens = _unsigned(signer, "signature_time_stamp_token")
    if not tokens:
        raise NotApplicable("the primary signature has no timestamp")
    token = tokens[0]
    assert isinstance(token, cms.ContentInfo)
    return token


def _flip_signature_value(der: bytes, signer: cms.SignerInfo) -> bytes:
    value = signer["signature"].contents
    if der.count(value) != 1:
        raise ValueError("signature value not unique")
    return _replace_all(der, value, _xor_at(value, len(value) // 2))


def _flip_certificate_signature(der: bytes, cert: x509.Certificate) -> bytes:
    """The last byte of the certificate (inside its signatureValue BIT STRING), in every copy the CMS carries."""
    raw = cert.dump()
    return _replace_all(der, raw, _xor_at(raw, len(raw) - 1))


# --------------------------------------------------------------------------- integrity: entries
def entry_data_byte(package: bytes) -> bytes:
    """One byte in the middle of the largest deflated entry's compressed data XOR 0x01. Headers, CRC
    included, stay as they were (the CRC no longer matches; NuGet never checks it)."""
    archive = parse_archive(package)
    i = _content_index(archive)
    m = archive.members[i]
    return build_archive(archive.replace_member(i, replace(m, body=_xor_at(m.body, m.cfield("csize") // 2))))


def entry_content_changed(package: bytes) -> bytes:
    """The largest deflated entry's uncompressed content changed by one byte (XOR 0x01 in the middle),
    re-deflated, with CRC and compressed size updated in both headers and offsets fixed: a well-formed ZIP
    whose only flaw is that it is not what was signed."""
    archive = parse_archive(package)
    i = _content_index(archive)
    m = archive.members[i]
    plain = zlib.decompress(m.data, -15)
    changed = _xor_at(plain, len(plain) // 2)
    packer = zlib.compressobj(9, zlib.DEFLATED, -15)
    data = packer.compress(changed) + packer.flush()
    return build_archive(archive.replace_member(i, m.with_data(data, usize=len(changed), crc=zlib.crc32(changed))))


def local_header_time(package: bytes) -> bytes:
    """The last-modified time in the first non-signature entry's local header changed by 2 s (XOR 0x0001);
    its CD record keeps the old time."""
    archive = parse_archive(package)
    i = _first_content_index(archive)
    m = archive.members[i]
    return build_archive(archive.replace_member(i, m.with_local(mtime=m.lfield("mtime") ^ 0x0001)))


def central_directory_time(package: bytes) -> bytes:
    """The last-modified time in the first non-signature entry's CD record changed by 2 s (XOR 0x0001);
    its local header keeps the old time."""
    archive = parse_archive(package)
    i = _first_content_index(archive)
    m = archive.members[i]
    return build_archive(archive.replace_member(i, m.with_central(mtime=m.cfield("mtime") ^ 0x0001)))


def central_directory_comment(package: bytes) -> bytes:
    """A file comment added to the first non-signature entry's CD record (comment length, CD size and the
    EOCD updated)."""
    archive = parse_archive(package)
    i = _first_content_index(archive)
    return build_archive(archive.replace_member(i, replace(archive.members[i], comment=CD_COMMENT)))


def _new_stored_member(template: Member, name: bytes, data: bytes) -> Member:
    """A stored member modelled on ``template`` (its versions and DOS time), flags 0, attributes 0."""
    local = set_fields(LFH_FIELDS, template.local, flags=0, method=METHOD_STORED)
    central = set_fields(
        CDH_FIELDS, template.central, flags=0, method=METHOD_STORED, disk_start=0, internal_attrs=0,
        external_attrs=0,
    )
    return Member(local, name, b"", b"", central, name, b"", b"").with_data(data)


def entry_added(package: bytes) -> bytes:
    """A stored entry ``tools/init.ps1`` added just before the signature (local entries and CD), offsets
    fixed."""
    archive = parse_archive(package)
    s = _signature_index(archive)
    member = _new_stored_member(archive.members[_first_content_index(archive)], ADDED_NAME, ADDED_DATA)
    return build_archive(_insert(archive, member, s, archive.cd_order.index(s)))


def entry_added_after_signature(package: bytes) -> bytes:
    """A stored entry ``tools/init.ps1`` appended after the signature (last local entry, last CD record),
    offsets fixed."""
    archive = parse_archive(package)
    member = _new_stored_member(archive.members[_first_content_index(archive)], ADDED_NAME, ADDED_DATA)
    return build_archive(_insert(archive, member, len(archive.members), len(archive.cd_order)))


def entry_removed(package: bytes) -> bytes:
    """The largest deflated entry removed (local entry and CD record), offsets fixed."""
    archive = parse_archive(package)
    return build_archive(_remove(archive, _content_index(archive)))


def entry_renamed(package: bytes) -> bytes:
    """The largest deflated entry renamed (``renamed-`` put before its base name, in the local header and the
    CD record), so every later offset moves; offsets fixed."""
    archive = parse_archive(package)
    i = _content_index(archive)
    m = archive.members[i]
    head, sep, tail = m.name.rpartition(b"/")
    return build_archive(archive.replace_member(i, m.renamed(head + sep + b"renamed-" + tail)))


def entry_renamed_same_length(package: bytes) -> bytes:
    """The largest deflated entry renamed in place: the last character of its name changed (``X``, or ``Y`` if
    it was ``X``) in the local header and the CD record, so the length and every offset stay as they were."""
    archive = parse_archive(package)
    i = _content_index(archive)
    m = archive.members[i]
    last = b"Y" if m.name.endswith(b"X") else b"X"
    return build_archive(archive.replace_member(i, m.renamed(m.name[:-1] + last)))


# --------------------------------------------------------------------------- integrity: the signature's DER
def signature_value_byte(package: bytes) -> bytes:
    """One byte in the middle of the primary SignerInfo's signature value (the RSA signature) XOR 0x01."""
    der = signature_der(package)
    return _with_signature_der(package, _flip_signature_value(der, _primary(der)[1]))


def signature_content_hash_byte(package: bytes) -> bytes:
    """One base64 character of the package hash in the signature content (eContent) changed (A<->B style,
    still valid base64), so the content no longer matches the package nor the signed messageDigest."""
    der = signature_der(package)
    content = _primary(der)[0]["encap_content_info"]["content"].contents
    at = content.index(b"-Hash:") + len(b"-Hash:") + 10
    swapped = b"B" if content[at : at + 1] == b"A" else b"A"
    return _with_signature_der(package, _replace_all(der, content, content[:at] + swapped + content[at + 1 :]))


def signature_content_version(package: bytes) -> bytes:
    """The signature content's ``Version:1`` changed to ``Version:2`` (the CMS signature no longer matches)."""
    der = signature_der(package)
    content = _primary(der)[0]["encap_content_info"]["content"].contents
    if not content.startswith(b"Version:1"):
        raise NotApplicable("the signature content does not start with Version:1")
    return _with_signature_der(package, _replace_all(der, content, b"Version:2" + content[len(b"Version:1") :]))


def signature_signing_time_byte(package: bytes) -> bytes:
    """The units digit of the seconds in the primary signer's signing-time signed attribute changed (the
    time stays valid; the CMS signature over the signed attributes no longer matches)."""
    der = signature_der(package)
    signer = _primary(der)[1]
    attrs = signer["signed_attrs"].dump()
    times = [a["values"][0].dump() for a in signer["signed_attrs"] if a["type"].native == "signing_time"]
    if len(times) != 1 or attrs.count(times[0]) != 1:
        raise NotApplicable("no single signing-time attribute")
    old = times[0]
    at = len(old) - 2  # ...SS Z: the last digit before the zone designator
    if not (old[-1:] == b"Z" and chr(old[at]).isdigit()):
        raise NotApplicable("signing time not in ...SSZ form")
    new = old[:at] + str((int(chr(old[at])) + 1) % 10).encode() + old[at + 1 :]
    return _with_signature_der(package, _replace_all(der, attrs, attrs.replace(old, new)))


def signature_signer_certificate_byte(package: bytes) -> bytes:
    """The last byte of the primary signer's certificate (inside its signatureValue) XOR 0x01, in every copy
    the certificate set carries; the ESS signing-certificate-v2 hash no longer matches it either."""
    der = signature_der(package)
    signed_data, signer = _primary(der)
    return _with_signature_der(package, _flip_certificate_signature(der, _signer_certificate(signed_data, signer)))


def signature_signer_public_key_byte(package: bytes) -> bytes:
    """A byte in the middle of the primary signer certificate's subjectPublicKeyInfo (inside the RSA modulus)
    XOR 0x01, in every copy the certificate set carries."""
    der = signature_der(package)
    signed_data, signer = _primary(der)
    raw = _signer_certificate(signed_data, signer).dump()
    spki = _signer_certificate(signed_data, signer)["tbs_certificate"]["subject_public_key_info"].dump()
    at = raw.index(spki) + len(spki) // 2
    return _with_signature_der(package, _replace_all(der, raw, _xor_at(raw, at)))


def signature_intermediate_certificate_byte(package: bytes) -> bytes:
    """The last byte of the certificate that issued the primary signer's certificate (its signatureValue)
    XOR 0x01, in every copy; the signer's chain can no longer be verified."""
    der = signature_der(package)
    signed_data, signer = _primary(der)
    leaf = _signer_certificate(signed_data, signer)
    for choice in signed_data["certificates"]:
        cert = choice.chosen
        if isinstance(cert, x509.Certificate) and cert.subject == leaf.issuer and cert.subject != cert.issuer:
            return _with_signature_der(package, _flip_certificate_signature(der, cert))
    raise NotApplicable("no intermediate certificate for the signer in the certificate set")


def signature_timestamp_value_byte(package: bytes) -> bytes:
    """One byte in the middle of the primary signature's timestamp token's SignerInfo signature value
    XOR 0x01."""
    der = signature_der(package)
    token = _timestamp_token(_primary(der)[1])
    return _with_signature_der(package, _flip_signature_value(der, token["content"]["signer_infos"][0]))


def signature_timestamp_certificate_byte(package: bytes) -> bytes:
    """The last byte of the primary timestamp's TSA certificate (its signatureValue) XOR 0x01, in every
    copy the signature carries."""
    der = signature_der(package)
    token = _timestamp_token(_primary(der)[1])
    tsa = _signer_certificate(token["content"], token["content"]["signer_infos"][0])
    return _with_signature_der(package, _flip_certificate_signature(der, tsa))


def signature_countersignature_value_byte(package: bytes) -> bytes:
    """One byte in the middle of the repository countersignature's signature value XOR 0x01 (not applicable
    without a countersignature)."""
    der = signature_der(package)
    counters = _unsigned(_primary(der)[1], "counter_signature")
    if not counters:
        raise NotApplicable("no countersignature")
    counter = counters[0]
    assert isinstance(counter, cms.SignerInfo)
    return _with_signature_der(package, _flip_signature_value(der, counter))


def signature_der_truncated(package: bytes) -> bytes:
    """The signature entry's data cut short by 64 bytes (stored sizes and CRC updated): DER that ends early."""
    der = signature_der(package)
    return _with_signature_der(package, der[:-SIGNATURE_DER_CUT])


def signature_empty(package: bytes) -> bytes:
    """The signature entry kept but emptied (0 bytes; sizes and CRC updated)."""
    return _with_signature_der(package, b"")


# --------------------------------------------------------------------------- the signature entry's ZIP framing
def signature_deflated(package: bytes) -> bytes:
    """The signature entry deflated: method 8 and the compressed size in both headers, same CRC and
    uncompressed size; offsets fixed."""

    def edit(m: Member) -> Member:
        packer = zlib.compressobj(9, zlib.DEFLATED, -15)
        data = packer.compress(m.data) + packer.flush()
        return m.with_data(data, usize=len(m.data), crc=m.cfield("crc")).with_both(method=METHOD_DEFLATED)

    return _edit_signature(package, edit)


def signature_flag_utf8(package: bytes) -> bytes:
    """General-purpose bit 11 (UTF-8 names) set on the signature entry, in both headers."""
    return _edit_signature(package, lambda m: m.with_both(flags=m.cfield("flags") | FLAG_UTF8))


def signature_flag_data_descriptor(package: bytes) -> bytes:
    """General-purpose bit 3 set on the signature entry in both headers, with a data descriptor (signature,
    CRC, sizes) written after its data; offsets fixed. The local header keeps its CRC and sizes."""

    def edit(m: Member) -> Member:
        descriptor = DATA_DESCRIPTOR_SIGNATURE + struct.pack("<III", m.cfield("crc"), len(m.data), len(m.data))
        return replace(m, body=m.data + descriptor).with_both(flags=m.cfield("flags") | FLAG_DATA_DESCRIPTOR)

    return _edit_signature(package, edit)


def signature_flag_data_descriptor_central_only(package: bytes) -> bytes:
    """General-purpose bit 3 set in the signature's CD record only: no data descriptor is written and the local
    header keeps its flags (the two headers disagree)."""
    return _edit_signature(package, lambda m: m.with_central(flags=m.cfield("flags") | FLAG_DATA_DESCRIPTOR))


def signature_external_attributes(package: bytes) -> bytes:
    """External file attributes 0x81A40000 (a regular rw-r--r-- file, as ZipArchive writes on Unix) in the
    signature's CD record."""
    return _edit_signature(package, lambda m: m.with_central(external_attrs=ZIPARCHIVE_EXTERNAL_ATTRIBUTES))


def signature_local_extra_field(package: bytes) -> bytes:
    """An 8-byte unknown extra field (id 0xCAFE) in the signature's local header; offsets fixed."""
    return _edit_signature(package, lambda m: replace(m, local_extra=LOCAL_EXTRA))


def signature_renamed_p7t(package: bytes) -> bytes:
    """The signature entry renamed ``.signature.p7t`` (local header and CD record)."""
    return _edit_signature(package, lambda m: m.renamed(b".signature.p7t"))


def signature_renamed_uppercase(package: bytes) -> bytes:
    """The signature entry renamed ``.Signature.p7s`` (local header and CD record)."""
    return _edit_signature(package, lambda m: m.renamed(b".Signature.p7s"))


def signature_duplicated(package: bytes) -> bytes:
    """A second, identical ``.signature.p7s`` entry right after the first (local entry and CD record);
    offsets fixed."""
    archive = parse_archive(package)
    s = _signature_index(archive)
    return build_archive(_insert(archive, archive.members[s], s + 1, archive.cd_order.index(s) + 1))


def signature_moved_first(package: bytes) -> bytes:
    """The signature made the first local entry and the first CD record; offsets rewritten. NuGet's own
    tests expect such a package to verify valid (NUGET-SIGNING.md §1.3)."""
    return build_archive(_move(parse_archive(package), 0, 0))


def signature_moved_middle(package: bytes) -> bytes:
    """The signature moved to the middle of the local entries and of the CD; offsets rewritten."""
    archive = parse_archive(package)
    middle = len(archive.members) // 2
    return build_archive(_move(archive, middle, middle))


def signature_local_first_cd_last(package: bytes) -> bytes:
    """The signature's local entry made first while its CD record stays last; offsets rewritten."""
    archive = parse_archive(package)
    return build_archive(_move(archive, 0, len(archive.members) - 1))


def signature_local_last_cd_first(package: bytes) -> bytes:
    """The signature's local entry stays last while its CD record is made first; offsets rewritten."""
    archive = parse_archive(package)
    return build_archive(_move(archive, len(archive.members) - 1, 0))


def signature_removed(package: bytes) -> bytes:
    """The signature removed exactly as NuGet's ``SignedPackageArchiveIOUtility.RemoveSignature`` does
    (NUGET-SIGNING.md §2.4): copy up to the signature's local header, skip its whole local entry, copy up to
    its CD record, skip it, copy the remaining CD records, then the EOCD with both counts - 1, the CD size
    - the record's size and the CD offset - the local entry's total size, then the rest of the file. Other
    CD offsets are not rewritten: the result is a valid ZIP when the signature was the last local entry,
    as NuGet writes it. The hash of the result is the package hash the signature content names."""
    eocd_at = package.rfind(EOCD_SIGNATURE)
    if eocd_at < 0:
        raise ValueError("no end of central directory record")
    records: list[tuple[int, int, int, bytes, int]] = []  # position, lho, header size, name, flags
    at = get_field(EOCD_FIELDS, package[eocd_at : eocd_at + EOCD_SIZE], "cd_offset")
    while package[at : at + 4] == CDH_SIGNATURE:
        fixed = package[at : at + CDH_SIZE]
        n = get_field(CDH_FIELDS, fixed, "name_len")
        size = CDH_SIZE + n + get_field(CDH_FIELDS, fixed, "extra_len") + get_field(CDH_FIELDS, fixed, "comment_len")
        records.append((at, get_field(CDH_FIELDS, fixed, "lho"), size, package[at + CDH_SIZE : at + CDH_SIZE + n],
                        get_field(CDH_FIELDS, fixed, "flags")))
        at += size
    signatures = [r for r in records if r[3] == SIGNATURE_NAME and not r[4] & FLAG_UTF8]
    if len(signatures) != 1:
        raise NotApplicable(f"expected one signature record, found {len(signatures)}")
    pos, lho, header_size, _name, _flags = signatures[0]
    start_of_cd = min(r[0] for r in records)
    later = sorted(r[1] for r in records if r[1] > lho)
    entry_total = (later[0] if later else start_of_cd) - lho
    end_of_cd = records[-1][0] + records[-1][2]
    eocd = package[end_of_cd : end_of_cd + EOCD_SIZE]
    counts = (get_field(EOCD_FIELDS, eocd, "entries_disk") - 1, get_field(EOCD_FIELDS, eocd, "entries_total") - 1)
    new_eocd = set_fields(
        EOCD_FIELDS, eocd, entries_disk=counts[0], entries_total=counts[1],
        cd_size=get_field(EOCD_FIELDS, eocd, "cd_size") - header_size,
        cd_offset=get_field(EOCD_FIELDS, eocd, "cd_offset") - entry_total,
    )
    return (
        package[:lho] + package[lho + entry_total : pos] + package[pos + header_size : end_of_cd]
        + new_eocd + package[end_of_cd + EOCD_SIZE :]
    )


# --------------------------------------------------------------------------- whole-file framing
def prefix_offsets_kept(package: bytes) -> bytes:
    """Bytes prepended to the file; every stored offset left as it was (so they are all off by the prefix)."""
    return PREFIX + package


def prefix_offsets_rewritten(package: bytes) -> bytes:
    """Bytes prepended to the file, with every local-header offset and the CD offset rewritten to point at
    the right place (a self-extractor layout)."""
    archive = parse_archive(package)
    return build_archive(replace(archive, prefix=PREFIX + archive.prefix))


def bytes_appended(package: bytes) -> bytes:
    """Bytes appended after the EOCD record, its comment length unchanged."""
    return package + APPENDIX


def eocd_comment_added(package: bytes) -> bytes:
    """An archive comment set in the EOCD (replacing any), comment length updated."""
    return build_archive(replace(parse_archive(package), comment=EOCD_COMMENT))


def truncated_mid_data(package: bytes) -> bytes:
    """The file cut in the middle of the largest deflated entry's data."""
    archive = parse_archive(package)
    i = _content_index(archive)
    m = archive.members[i]
    at = local_offsets(archive)[i] + LFH_SIZE + len(m.local_name) + len(m.local_extra) + m.cfield("csize") // 2
    return package[:at]


def truncated_mid_cd(package: bytes) -> bytes:
    """The file cut in the middle of the central directory."""
    eocd = parse_archive(package).eocd
    return package[: get_field(EOCD_FIELDS, eocd, "cd_offset") + get_field(EOCD_FIELDS, eocd, "cd_size") // 2]


def truncated_mid_eocd(package: bytes) -> bytes:
    """The file cut 11 bytes into the EOCD record (its signature survives, its CD size/offset do not)."""
    return package[: package.rfind(EOCD_SIGNATURE) + 11]


def not_a_zip_text(package: bytes) -> bytes:
    """A text file instead of a package (the input is ignored)."""
    del package
    return b"This is not a NuGet package.\n"


def not_a_zip_empty(package: bytes) -> bytes:
    """An empty file (the input is ignored)."""
    del package
    return b""


# --------------------------------------------------------------------------- absurd sizes
def absurd_central_sizes(package: bytes) -> bytes:
    """The largest deflated entry's compressed and uncompressed sizes set to 0xFFFFFFF0 in its CD record."""
    archive = parse_archive(package)
    i = _content_index(archive)
    member = archive.members[i].with_central(csize=ABSURD_SIZE, usize=ABSURD_SIZE)
    return build_archive(archive.replace_member(i, member))


def absurd_local_sizes(package: bytes) -> bytes:
    """The largest deflated entry's compressed and uncompressed sizes set to 0xFFFFFFF0 in its local header."""
    archive = parse_archive(package)
    i = _content_index(archive)
    member = archive.members[i].with_local(csize=ABSURD_SIZE, usize=ABSURD_SIZE)
    return build_archive(archive.replace_member(i, member))


def _edit_eocd(package: bytes, **values: int) -> bytes:
    at = package.rfind(EOCD_SIGNATURE)
    return package[:at] + set_fields(EOCD_FIELDS, package[at : at + EOCD_SIZE], **values) + package[at + EOCD_SIZE :]


def absurd_entry_count(package: bytes) -> bytes:
    """Both EOCD entry counts set to 0xFFFF."""
    return _edit_eocd(package, entries_disk=ABSURD_COUNT, entries_total=ABSURD_COUNT)


def absurd_cd_offset(package: bytes) -> bytes:
    """The EOCD's CD offset pointed 4096 bytes beyond the end of the file."""
    return _edit_eocd(package, cd_offset=len(package) + BEYOND_EOF)


def absurd_cd_size(package: bytes) -> bytes:
    """The EOCD's CD size set to 0xFFFFFFF0."""
    return _edit_eocd(package, cd_size=ABSURD_SIZE)


CASES: dict[str, Callable[[bytes], bytes]] = {
    f.__name__: f
    for f in (
        entry_data_byte,
        entry_content_changed,
        local_header_time,
        central_directory_time,
        central_directory_comment,
        entry_added,
        entry_added_after_signature,
        entry_removed,
        entry_renamed,
        entry_renamed_same_length,
        signature_value_byte,
        signature_content_hash_byte,
        signature_content_version,
        signature_signing_time_byte,
        signature_signer_certificate_byte,
        signature_signer_public_key_byte,
        signature_intermediate_certificate_byte,
        signature_timestamp_value_byte,
        signature_timestamp_certificate_byte,
        signature_countersignature_value_byte,
        signature_der_truncated,
        signature_empty,
        signature_deflated,
        signature_flag_utf8,
        signature_flag_data_descriptor,
        signature_flag_data_descriptor_central_only,
        signature_external_attributes,
        signature_local_extra_field,
        signature_renamed_p7t,
        signature_renamed_uppercase,
        signature_duplicated,
        signature_moved_first,
        signature_moved_middle,
        signature_local_first_cd_last,
        signature_local_last_cd_first,
        signature_removed,
        prefix_offsets_kept,
        prefix_offsets_rewritten,
        bytes_appended,
        eocd_comment_added,
        truncated_mid_data,
        truncated_mid_cd,
        truncated_mid_eocd,
        not_a_zip_text,
        not_a_zip_empty,
        absurd_central_sizes,
        absurd_local_sizes,
        absurd_entry_count,
        absurd_cd_offset,
        absurd_cd_size,
    )
}
"""Stable case ids (the function names) -> case functions, in matrix order."""

ZIP_VALID: frozenset[str] = frozenset(
    {
        "entry_data_byte", "entry_content_changed", "local_header_time", "central_directory_time",
        "central_directory_comment", "entry_added", "entry_added_after_signature", "entry_removed",
        "entry_renamed", "entry_renamed_same_length", "signature_value_byte", "signature_content_hash_byte",
        "signature_content_version", "signature_signing_time_byte", "signature_signer_certificate_byte",
        "signature_signer_public_key_byte", "signature_intermediate_certificate_byte",
        "signature_timestamp_value_byte", "signature_timestamp_certificate_byte",
        "signature_countersignature_value_byte", "signature_der_truncated", "signature_empty", "signature_deflated",
        "signature_flag_utf8", "signature_flag_data_descriptor", "signature_flag_data_descriptor_central_only",
        "signature_external_attributes", "signature_local_extra_field", "signature_renamed_p7t",
        "signature_renamed_uppercase", "signature_duplicated", "signature_moved_first", "signature_moved_middle",
        "signature_local_first_cd_last", "signature_local_last_cd_first", "signature_removed",
        "prefix_offsets_rewritten", "eocd_comment_added",
    }
)
"""Cases whose output is a well-formed ZIP: every offset, size, count and length consistent, the CD directly
before the EOCD, nothing after the EOCD comment (``parse_archive`` takes it apart again)."""

CONTENT_PRESERVING: frozenset[str] = frozenset(
    {
        "local_header_time", "central_directory_time", "central_directory_comment", "signature_deflated",
        "signature_flag_utf8", "signature_flag_data_descriptor", "signature_flag_data_descriptor_central_only",
        "signature_external_attributes", "signature_local_extra_field", "signature_moved_first",
        "signature_moved_middle", "signature_local_first_cd_last", "signature_local_last_cd_first",
        "prefix_offsets_rewritten", "eocd_comment_added",
    }
)
"""Cases after which Python's ``zipfile`` reads exactly the same names and file contents as from the input."""
