"""Small DER helpers: a strict TLV reader with NuGet's ``DerSequenceReader`` semantics, and DER writers.

NuGet decodes its own attributes (commitment-type-indication, signing-certificate(-v2), the NuGet
repository attributes) with ``DerSequenceReader`` (NC ``Signing/DerEncoding``), which accepts only
definite-length DER and throws ``CryptographicException`` (reported as NU3003) on malformed input, while
structural surprises (trailing data, unsupported choices) raise ``SignatureException`` (NU3000). The
reader below reproduces that split: :class:`DerError` is the malformed case. TLV framing is done by
``asn1crypto.parser``; primitive values by ``asn1crypto.core``.
"""

from __future__ import annotations

from dataclasses import dataclass

from asn1crypto import core, parser

__all__ = [
    "DerError",
    "DerReader",
    "Tlv",
    "encode_length",
    "encode_tlv",
    "read_tlv",
    "set_of",
    "split_tlvs",
]

TAG_INTEGER = 0x02
TAG_OCTET_STRING = 0x04
TAG_NULL = 0x05
TAG_OID = 0x06
TAG_UTF8_STRING = 0x0C
TAG_IA5_STRING = 0x16
TAG_SEQUENCE = 0x30
TAG_SET = 0x31
TAG_CONTEXT_CONSTRUCTED_4 = 0xA4

MAX_ITEMS = 4096
"""Most TLVs read from one constructed value (nuseal's bound)."""


class DerError(ValueError):
    """Malformed DER (NuGet: ``CryptographicException``, reported as NU3003)."""


@dataclass(frozen=True, slots=True)
class Tlv:
    """One decoded TLV: its first identifier octet, full header and contents."""

    tag: int
    header: bytes
    contents: bytes

    @property
    def der(self) -> bytes:
        return self.header + self.contents


def _parse(data: bytes) -> Tlv:
    try:
        _cls, _method, tag, header, contents, trailer = parser.parse(data, strict=True)
    except (ValueError, TypeError, IndexError, OverflowError) as exc:
        raise DerError(f"malformed DER: {exc}") from exc
    if trailer or tag >= 31:
        raise DerError("indefinite length or high tag number (not DER)")
    return Tlv(header[0], bytes(header), bytes(contents))


def read_tlv(data: bytes) -> Tlv:
    """Exactly one TLV spanning all of ``data``; :class:`DerError` otherwise."""
    return _parse(data)


def split_tlvs(data: bytes) -> list[Tlv]:
    """The consecutive TLVs of ``data`` (a constructed value's contents)."""
    items: list[Tlv] = []
    pos = 0
    while pos < len(data):
        if len(items) >= MAX_ITEMS:
            raise DerError(f"more than {MAX_ITEMS} items in one value")
        try:
            length = parser.peek(data[pos:])
        except (ValueError, TypeError, IndexError, OverflowError) as exc:
            raise DerError(f"malformed DER: {exc}") from exc
        items.append(_parse(data[pos : pos + length]))
        pos += length
    return items


class DerReader:
    """Sequential reader over a constructed value's contents (``DerSequenceReader`` semantics)."""

    def __init__(self, contents: bytes) -> None:
        self._items = split_tlvs(contents)
        self._pos = 0

    @classmethod
    def for_value(cls, der: bytes) -> DerReader:
        """A reader positioned before the single TLV ``der`` (``DerSequenceReader.CreateForPayload``)."""
        reader = cls(b"")
        reader._items = [read_tlv(der)]
        return reader

    @property
    def has_data(self) -> bool:
        return self._pos < len(self._items)

    def peek_tag(self) -> int:
        if not self.has_data:
            raise DerError("unexpected end of data")
        return self._items[self._pos].tag

    def read(self, tag: int) -> Tlv:
        if self.peek_tag() != tag:
            raise DerError(f"expected tag 0x{tag:02x}, found 0x{self.peek_tag():02x}")
        item = self._items[self._pos]
        self._pos += 1
        return item

    def read_sequence(self) -> DerReader:
        return DerReader(self.read(TAG_SEQUENCE).contents)

    def read_oid(self) -> str:
        tlv = self.read(TAG_OID)
        try:
            return str(core.ObjectIdentifier.load(tlv.der).dotted)
        except (ValueError, TypeError, IndexError) as exc:
            raise DerError(f"malformed OBJECT IDENTIFIER: {exc}") from exc

    def read_null(self) -> None:
        if self.read(TAG_NULL).contents:
            raise DerError("NULL with contents")

    def read_octet_string(self) -> bytes:
        return self.read(TAG_OCTET_STRING).contents

    def read_integer_bytes(self) -> bytes:
        """The INTEGER's content octets, as encoded (big-endian two's complement)."""
        contents = self.read(TAG_INTEGER).contents
        if not contents:
            raise DerError("empty INTEGER")
        return contents

    def read_ia5_string(self) -> str:
        contents = self.read(TAG_IA5_STRING).contents
        try:
            return contents.decode("ascii")
        except UnicodeDecodeError as exc:
            raise DerError("IA5String with a non-ASCII octet") from exc

    def read_utf8_string(self) -> str:
        contents = self.read(TAG_UTF8_STRING).contents
        try:
            return contents.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise DerError("UTF8String that is not UTF-8") from exc

    def read_any(self) -> Tlv:
        if not self.has_data:
            raise DerError("unexpected end of data")
        item = self._items[self._pos]
        self._pos += 1
        return item


def encode_length(length: int) -> bytes:
    """DER length octets."""
    if length < 0x80:
        return bytes([length])
    body = length.to_bytes((length.bit_length() + 7) // 8, "big")
    return bytes([0x80 | len(body)]) + body


def encode_tlv(tag: int, contents: bytes) -> bytes:
    """A DER TLV with a one-octet identifier."""
    return bytes([tag]) + encode_length(len(contents)) + contents


def set_of(elements: list[bytes] | tuple[bytes, ...], *, sort: bool = True) -> bytes:
    """A DER ``SET OF`` (X.690 §11.6: elements in ascending order, compared as zero-padded octet strings)."""
    items = list(elements)
    if sort:
        width = max((len(e) for e in items), default=0)
        items.sort(key=lambda e: e.ljust(width, b"\x00"))
    return encode_tlv(TAG_SET, b"".join(items))
