"""Tampered copies of real signed packages, one function per case (the issue's tamper matrix).

Each case takes the bytes of a signed .nupkg and returns new bytes. The ZIP is taken apart into local entries
and central-directory (CD) records with plain ``struct`` code (independent of ``nuseal.package``) and, where a
case needs a well-formed archive, put back together with every offset, count and size recomputed.
"""

from __future__ import annotations

import struct
import zlib
from collections.abc import Callable
from dataclasses import dataclass, replace

from asn1crypto import cms

SIG = b".signature.p7s"


@dataclass(frozen=True)
class Entry:
    name: bytes
    lfh: bytes  # 30-byte fixed part of the local header
    lfh_extra: bytes
    data: bytes  # compressed data as stored (plus any bytes up to the next entry)
    cd: bytes  # 46-byte fixed part of the CD record
    cd_extra: bytes
    cd_comment: bytes


@dataclass(frozen=True)
class Zip:
    prefix: bytes
    local_order: tuple[Entry, ...]
    cd_order: tuple[Entry, ...]
    eocd_tail: bytes  # the EOCD comment (+ anything after it)


def parse(b: bytes) -> Zip:
    eocd = b.rfind(b"PK\x05\x06")
    count, _cd_size, cd_off, _comment_len = struct.unpack_from("<HIIH", b, eocd + 10)
    records = []
    at = cd_off
    for _ in range(count):
        n, x, c = struct.unpack_from("<HHH", b, at + 28)
        lho = struct.unpack_from("<I", b, at + 42)[0]
        records.append((at, lho, b[at : at + 46], b[at + 46 : at + 46 + n], b[at + 46 + n : at + 46 + n + x],
                        b[at + 46 + n + x : at + 46 + n + x + c]))
        at += 46 + n + x + c
    by_offset = sorted(records, key=lambda r: r[1])
    ends = [r[1] for r in by_offset[1:]] + [cd_off]
    entries: dict[int, Entry] = {}
    for rec, end in zip(by_offset, ends, strict=True):
        _pos, lho, cd, name, cdx, cdc = rec
        n, x = struct.unpack_from("<HH", b, lho + 26)
        start = lho + 30 + n + x
        entries[lho] = Entry(name, b[lho : lho + 30], b[lho + 30 + n : start], b[start:end], cd, cdx, cdc)
    first = by_offset[0][1]
    return Zip(
        prefix=b[:first],
        local_order=tuple(entries[r[1]] for r in by_offset),
        cd_order=tuple(entries[r[1]] for r in records),
        eocd_tail=b[eocd + 22 :],
    )


def build(z: Zip, *, rebase: bool = True) -> bytes:
    """Reassemble; offsets are recomputed (relative to the file start, prefix included, when ``rebase``)."""
    out = bytearray(z.prefix)
    offsets: dict[int, int] = {}
    for e in z.local_order:
        offsets[id(e)] = len(out) if rebase else len(out) - len(z.prefix)
        lfh = bytearray(e.lfh)
        struct.pack_into("<HH", lfh, 26, len(e.name), len(e.lfh_extra))
        out += lfh + e.name + e.lfh_extra + e.data
    cd_start = len(out)
    for e in z.cd_order:
        cd = bytearray(e.cd)
        struct.pack_into("<HHH", cd, 28, len(e.name), len(e.cd_extra), len(e.cd_comment))
        struct.pack_into("<I", cd, 42, offsets[id(e)])
        out += cd + e.name + e.cd_extra + e.cd_comment
    cd_size = len(out) - cd_start
    n = len(z.cd_order)
    comment_len = len(z.eocd_tail)
    out += struct.pack("<4sHHHHIIH", b"PK\x05\x06", 0, 0, n, n, cd_size,
                       cd_start if rebase else cd_start - len(z.prefix), comment_len)
    out += z.eocd_tail
    return bytes(out)


def _signature(z: Zip) -> Entry:
    return next(e for e in z.local_order if e.name == SIG)


def _swap(z: Zip, old: Entry, new: Entry | None) -> Zip:
    def sub(seq: tuple[Entry, ...]) -> tuple[Entry, ...]:
        return tuple(new if e is old else e for e in seq if not (e is old and new is None))

    return replace(z, local_order=sub(z.local_order), cd_order=sub(z.cd_order))


def _content_entry(z: Zip) -> Entry:
    """The largest deflated non-signature entry."""
    return max((e for e in z.local_order if e.name != SIG), key=lambda e: len(e.data))


def _set16(raw: bytes, at: int, value: int) -> bytes:
    b = bytearray(raw)
    struct.pack_into("<H", b, at, value)
    return bytes(b)


def _set32(raw: bytes, at: int, value: int) -> bytes:
    b = bytearray(raw)
    struct.pack_into("<I", b, at, value)
    return bytes(b)


def _flip(raw: bytes, at: int) -> bytes:
    b = bytearray(raw)
    b[at] ^= 0x5A
    return bytes(b)


# --------------------------------------------------------------------------- integrity cases
def data_byte(b: bytes) -> bytes:
    """One byte changed in the middle of an entry's compressed data."""
    z = parse(b)
    e = _content_entry(z)
    return build(_swap(z, e, replace(e, data=_flip(e.data, len(e.data) // 2))))


def local_header_byte(b: bytes) -> bytes:
    """The last-modified time in a content entry's local header changed."""
    z = parse(b)
    e = _content_entry(z)
    return build(_swap(z, e, replace(e, lfh=_set16(e.lfh, 10, struct.unpack_from("<H", e.lfh, 10)[0] ^ 0x21))))


def central_directory_byte(b: bytes) -> bytes:
    """The last-modified time in a content entry's CD record changed."""
    z = parse(b)
    e = _content_entry(z)
    return build(_swap(z, e, replace(e, cd=_set16(e.cd, 12, struct.unpack_from("<H", e.cd, 12)[0] ^ 0x21))))


def entry_added(b: bytes) -> bytes:
    """A stored entry ``tools/init.ps1`` added before the signature, offsets fixed."""
    z = parse(b)
    data = b"Write-Host pwned\r\n"
    crc = zlib.crc32(data)
    lfh = struct.pack("<4sHHHHHIIIHH", b"PK\x03\x04", 20, 0, 0, 0, 0x5021, crc, len(data), len(data), 0, 0)
    cd = struct.pack("<4sHHHHHHIIIHHHHHII", b"PK\x01\x02", 20, 20, 0, 0, 0, 0x5021, crc, len(data), len(data),
                     0, 0, 0, 0, 0, 0, 0)
    new = Entry(b"tools/init.ps1", lfh, b"", data, cd, b"", b"")
    sig = _signature(z)
    local = (*(e for e in z.local_order if e is not sig), new, sig)
    cds = (*(e for e in z.cd_order if e is not sig), new, sig)
    return build(replace(z, local_order=local, cd_order=cds))


def entry_removed(b: bytes) -> bytes:
    """A content entry removed, offsets fixed."""
    z = parse(b)
    return build(_swap(z, _content_entry(z), None))


def entry_renamed(b: bytes) -> bytes:
    """A content entry renamed (same length) in both its local header and CD record."""
    z = parse(b)
    e = _content_entry(z)
    name = bytearray(e.name)
    name[-1] = ord("X") if name[-1] != ord("X") else ord("Y")
    return build(_swap(z, e, replace(e, name=bytes(name))))


def bytes_prepended_offsets_kept(b: bytes) -> bytes:
    """Bytes before the first local header; offsets left as they were (a self-extractor stub)."""
    return build(replace(parse(b), prefix=b"MZ" + b"\0" * 62), rebase=False)


def bytes_prepended_offsets_rebased(b: bytes) -> bytes:
    """Bytes before the first local header; every offset moved to account for them."""
    return build(replace(parse(b), prefix=b"MZ" + b"\0" * 62))


def bytes_appended(b: bytes) -> bytes:
    """Bytes after the end-of-central-directory record."""
    return b + b"\0trailing garbage\0"


def comment_changed(b: bytes) -> bytes:
    """An end-of-central-directory comment added (or changed)."""
    return build(replace(parse(b), eocd_tail=b"tampered comment"))


# --------------------------------------------------------------------------- signature entry cases
def _with_signature(b: bytes, edit: Callable[[Entry], Entry]) -> bytes:
    z = parse(b)
    sig = _signature(z)
    return build(_swap(z, sig, edit(sig)))


def signature_compressed(b: bytes) -> bytes:
    """The signature entry deflated (method 8, sizes updated)."""

    def edit(e: Entry) -> Entry:
        c = zlib.compressobj(9, zlib.DEFLATED, -15)
        data = c.compress(e.data) + c.flush()
        lfh = _set32(_set16(e.lfh, 8, 8), 18, len(data))
        cd = _set32(_set16(e.cd, 10, 8), 20, len(data))
        return replace(e, data=data, lfh=lfh, cd=cd)

    return _with_signature(b, edit)


def signature_flag_utf8(b: bytes) -> bytes:
    """General-purpose bit 11 (UTF-8 names) set on the signature entry (CD and local header)."""
    return _with_signature(b, lambda e: replace(e, lfh=_set16(e.lfh, 6, 0x800), cd=_set16(e.cd, 8, 0x800)))


def signature_flag_data_descriptor(b: bytes) -> bytes:
    """General-purpose bit 3 (data descriptor) set on the signature's CD record only."""
    return _with_signature(b, lambda e: replace(e, cd=_set16(e.cd, 8, 0x8)))


def signature_external_attributes(b: bytes) -> bytes:
    """External attributes 0x81A40000 (a Unix 0644 file, as some zip tools write) on the signature's CD record."""
    return _with_signature(b, lambda e: replace(e, cd=_set32(e.cd, 38, 0x81A40000)))


def signature_local_extra_field(b: bytes) -> bytes:
    """An extra field in the signature's local header (NuGet tolerates it: it skips extra bytes)."""
    return _with_signature(b, lambda e: replace(e, lfh_extra=struct.pack("<HH", 0xCAFE, 4) + b"\0\0\0\0"))


def signature_renamed_p7t(b: bytes) -> bytes:
    """The signature entry renamed ``.signature.p7t``: the package is then unsigned and altered."""
    return _with_signature(b, lambda e: replace(e, name=b".signature.p7t"))


def signature_renamed_case(b: bytes) -> bytes:
    """The signature entry renamed ``.Signature.p7s`` (NuGet's lookup is case-sensitive)."""
    return _with_signature(b, lambda e: replace(e, name=b".Signature.p7s"))


def signature_twice(b: bytes) -> bytes:
    """The signature entry present twice (a second local entry and CD record)."""
    z = parse(b)
    sig = _signature(z)
    copy = replace(sig)
    return build(replace(z, local_order=(*z.local_order, copy), cd_order=(*z.cd_order, copy)))


def _move_signature(b: bytes, where: str) -> bytes:
    z = parse(b)
    sig = _signature(z)
    local = [e for e in z.local_order if e is not sig]
    cds = [e for e in z.cd_order if e is not sig]
    at = 0 if where == "first" else len(local) // 2
    local.insert(at, sig)
    cds.insert(0 if where == "first" else len(cds) // 2, sig)
    return build(replace(z, local_order=tuple(local), cd_order=tuple(cds)))


def signature_moved_first(b: bytes) -> bytes:
    """The signature's local entry and CD record moved to the first position, offsets fixed."""
    return _move_signature(b, "first")


def signature_moved_middle(b: bytes) -> bytes:
    """The signature's local entry and CD record moved to a middle position, offsets fixed."""
    return _move_signature(b, "middle")


def signature_removed(b: bytes) -> bytes:
    """The signature entry removed entirely: an unsigned copy (the inverse of NuGet's append)."""
    z = parse(b)
    return build(_swap(z, _signature(z), None))


# --------------------------------------------------------------------------- signature content cases
def _edit_signature_der(b: bytes, edit: Callable[[bytes], bytes]) -> bytes:
    return _with_signature(b, lambda e: replace(e, data=edit(e.data)))


def signature_value_byte(b: bytes) -> bytes:
    """One byte of the primary SignerInfo's RSA signature value changed (same length)."""

    def edit(der: bytes) -> bytes:
        signed = cms.ContentInfo.load(der)["content"]
        value = signed["signer_infos"][0]["signature"].native
        at = der.index(value) + len(value) // 2
        return _flip(der, at)

    return _edit_signature_der(b, edit)


def signature_content_byte(b: bytes) -> bytes:
    """One character of the signed properties document (the package hash) changed (same length)."""

    def edit(der: bytes) -> bytes:
        content = cms.ContentInfo.load(der)["content"]["encap_content_info"]["content"].native
        at = der.index(content) + content.index(b"-Hash:") + 10
        raw = bytearray(der)
        raw[at] = ord("A") if raw[at] != ord("A") else ord("B")
        return bytes(raw)

    return _edit_signature_der(b, edit)


def signature_certificate_byte(b: bytes) -> bytes:
    """One byte inside the signer certificate's own signature changed (the certificate still parses)."""

    def edit(der: bytes) -> bytes:
        signed = cms.ContentInfo.load(der)["content"]
        leaf = next(c.chosen for c in signed["certificates"] if not c.chosen.ca and "Time" not in
                    c.chosen.subject.human_friendly and "TSA" not in c.chosen.subject.human_friendly)
        cert_der = leaf.dump()
        sig_value = leaf["signature_value"].native
        at = der.index(cert_der) + cert_der.index(sig_value) + len(sig_value) // 2
        return _flip(der, at)

    return _edit_signature_der(b, edit)


def signature_truncated_der(b: bytes) -> bytes:
    """The signature file cut to half its length (sizes updated): not decodable CMS."""

    def edit(e: Entry) -> Entry:
        data = e.data[: len(e.data) // 2]
        crc = zlib.crc32(data)
        lfh = _set32(_set32(_set32(e.lfh, 14, crc), 18, len(data)), 22, len(data))
        cd = _set32(_set32(_set32(e.cd, 16, crc), 20, len(data)), 24, len(data))
        return replace(e, data=data, lfh=lfh, cd=cd)

    return _with_signature(b, edit)


# --------------------------------------------------------------------------- broken archives
def truncated_in_data(b: bytes) -> bytes:
    """The file cut in the middle of the entries."""
    return b[: len(b) // 2]


def truncated_in_central_directory(b: bytes) -> bytes:
    """The file cut inside the central directory."""
    cd = struct.unpack_from("<I", b, b.rfind(b"PK\x05\x06") + 16)[0]
    return b[: cd + 30]


def truncated_in_eocd(b: bytes) -> bytes:
    """The file cut inside the end-of-central-directory record."""
    return b[: b.rfind(b"PK\x05\x06") + 10]


def not_a_zip_text(_b: bytes) -> bytes:
    """A text file."""
    return b"<html>this is not a package</html>\n"


def not_a_zip_empty(_b: bytes) -> bytes:
    """An empty file."""
    return b""


def absurd_entry_sizes(b: bytes) -> bytes:
    """A content entry's CD record claims 0xFFFFFFF0 bytes compressed and uncompressed."""
    z = parse(b)
    e = _content_entry(z)
    return build(_swap(z, e, replace(e, cd=_set32(_set32(e.cd, 20, 0xFFFFFFF0), 24, 0xFFFFFFF0))))


def absurd_entry_count(b: bytes) -> bytes:
    """The EOCD claims 0xFFFF entries."""
    at = b.rfind(b"PK\x05\x06")
    return b[: at + 8] + struct.pack("<HH", 0xFFFF, 0xFFFF) + b[at + 12 :]


def absurd_cd_offset(b: bytes) -> bytes:
    """The EOCD's central-directory offset points beyond the end of the file."""
    at = b.rfind(b"PK\x05\x06")
    return b[: at + 16] + struct.pack("<I", len(b) + 4096) + b[at + 20 :]


CASES: dict[str, Callable[[bytes], bytes]] = {
    f.__name__: f
    for f in (
        data_byte, local_header_byte, central_directory_byte, entry_added, entry_removed, entry_renamed,
        bytes_prepended_offsets_kept, bytes_prepended_offsets_rebased, bytes_appended, comment_changed,
        signature_compressed, signature_flag_utf8, signature_flag_data_descriptor, signature_external_attributes,
        signature_local_extra_field, signature_renamed_p7t, signature_renamed_case, signature_twice,
        signature_moved_first, signature_moved_middle, signature_removed, signature_value_byte,
        signature_content_byte, signature_certificate_byte, signature_truncated_der, truncated_in_data,
        truncated_in_central_directory, truncated_in_eocd, not_a_zip_text, not_a_zip_empty, absurd_entry_sizes,
        absurd_entry_count, absurd_cd_offset,
    )
}
