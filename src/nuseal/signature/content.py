"""The signature content: the "properties document" a NuGet primary signature signs.

Format (NUGET-SIGNING.md §2.1; NC ``Content/SignatureContent.cs``, ``KeyPairFileReader.cs``,
``KeyPairFileWriter.cs``; SPEC "Package signature file content")::

    Version:1\\n
    \\n
    2.16.840.1.101.3.4.2.1-Hash:<base64(package hash)>\\n
    \\n
"""

from __future__ import annotations

import base64
import binascii
import re
from dataclasses import dataclass, field

from nuseal.codes import NuCode
from nuseal.errors import SignatureFormatError
from nuseal.hashalg import HashAlgorithm

__all__ = ["MAX_CONTENT_SIZE", "SIGNATURE_FORMAT_VERSION", "SignatureContent"]

SIGNATURE_FORMAT_VERSION = "1"
"""The only format version NuGet reads (NC ``SigningSpecificationsV1.Version``)."""

MAX_CONTENT_SIZE = 64 * 1024
"""Largest properties document read. NuGet's own is 85 to 129 bytes; NuGet has no limit (nuseal's bound)."""

_NAME = re.compile(r"[a-zA-Z0-9.\-/]+")  # NC KeyPairFileReader.NamePattern
_INVALID = "The package signature content is invalid."  # NC Strings.InvalidSignatureContent
_UNSUPPORTED_VERSION = (
    "The package signature format version is not supported. Updating your client may solve this problem."
)
_NO_HASH = "Package hash information could not be read from the package signature."
_BASE64_WHITESPACE = str.maketrans("", "", " \t\r\n")


def _invalid() -> SignatureFormatError:
    return SignatureFormatError(_INVALID, code=NuCode.NU3000)


class _LineReader:
    """``StreamReader.ReadLine`` semantics: a line ends at ``\\n``, ``\\r`` or ``\\r\\n``; ``None`` at the end."""

    def __init__(self, text: str) -> None:
        self._text = text
        self._pos = 0

    def read_line(self) -> str | None:
        text, pos = self._text, self._pos
        if pos >= len(text):
            return None
        ends = [i for i in (text.find("\n", pos), text.find("\r", pos)) if i >= 0]
        if not ends:
            self._pos = len(text)
            return text[pos:]
        end = min(ends)
        self._pos = end + (2 if text.startswith("\r\n", end) else 1)
        return text[pos:end]

    def read_section(self) -> dict[str, str]:
        """NC ``KeyPairFileReader.ReadSection``: ``name:value`` lines up to an empty line; empty at the end."""
        entries: dict[str, str] = {}
        line = self.read_line()
        if line is None:
            return entries
        while line:
            pos = line.find(":")
            if pos <= 0 or not _NAME.fullmatch(line[:pos]) or pos == len(line) - 1:
                raise _invalid()
            key, value = line[:pos], line[pos + 1 :]
            if key in entries:
                raise _invalid()
            entries[key] = value
            line = self.read_line()
        if line is None:  # the section was not closed by an empty line
            raise _invalid()
        return entries


def _decode_base64(text: str) -> bytes | None:
    """``Convert.FromBase64String``: whitespace ignored, padding required; ``None`` when invalid."""
    compact = text.translate(_BASE64_WHITESPACE)
    if len(compact) % 4:
        return None
    try:
        return base64.b64decode(compact, validate=True)
    except (binascii.Error, ValueError):
        return None


@dataclass(frozen=True)
class SignatureContent:
    """The hash of the unsigned package that a primary signature commits to.

    ``hash_value`` is the decoded ``-Hash:`` value (32/48/64 bytes for SHA-256/384/512). NuGet keeps the
    base64 text and decodes it only when it checks integrity, so a signature whose value is not valid
    base64 loads and then fails integrity with NU3008 (NC ``PackageArchiveReader.ValidateIntegrityAsync``).
    To keep that outcome such a value parses with ``hash_value == b""`` (which matches no digest) and the
    text kept in ``hash_text``. ``hash_text`` defaults to the base64 of ``hash_value``.
    """

    hash_algorithm: HashAlgorithm
    hash_value: bytes
    hash_text: str = field(default="", compare=False)

    def __post_init__(self) -> None:
        if not self.hash_text:
            object.__setattr__(self, "hash_text", base64.b64encode(self.hash_value).decode("ascii"))

    @classmethod
    def parse(cls, data: bytes) -> SignatureContent:
        """Read a properties document exactly as NuGet does (NC ``SignatureContent.Load``).

        The document is decoded as UTF-8 without BOM detection (a BOM breaks the first key). Lines end at
        LF, CR or CRLF. The header section must hold ``Version:1``; only the first section after it is read;
        its first ``<oid>-Hash`` property with a SHA-256/384/512 OID gives the hash (SHA-1 is not accepted).

        Raises:
            SignatureFormatError: NU3007 when ``Version`` is not ``1``; NU3000 for any other problem (no
                header, malformed line, duplicate key, section not closed by an empty line, no supported
                hash property, more than :data:`MAX_CONTENT_SIZE` bytes).
        """
        if len(data) > MAX_CONTENT_SIZE:
            raise SignatureFormatError(
                f"The package signature content is larger than {MAX_CONTENT_SIZE} bytes.", code=NuCode.NU3000
            )
        reader = _LineReader(data.decode("utf-8", errors="replace"))
        header = reader.read_section()
        if not header or "Version" not in header:
            raise _invalid()
        if header["Version"] != SIGNATURE_FORMAT_VERSION:
            raise SignatureFormatError(_UNSUPPORTED_VERSION, code=NuCode.NU3007)
        section = reader.read_section()
        if not section:
            raise _invalid()
        for key, value in section.items():
            for algorithm in HashAlgorithm:
                if key == f"{algorithm.oid}-Hash":
                    decoded = _decode_base64(value)
                    return cls(algorithm, decoded if decoded is not None else b"", value)
        raise SignatureFormatError(_NO_HASH, code=NuCode.NU3000)

    def to_bytes(self) -> bytes:
        """The document NuGet writes (NC ``SignatureContent.GetBytes``): UTF-8, LF line ends, 85 bytes for SHA-256."""
        oid = self.hash_algorithm.oid
        return f"Version:{SIGNATURE_FORMAT_VERSION}\n\n{oid}-Hash:{self.hash_text}\n\n".encode()
