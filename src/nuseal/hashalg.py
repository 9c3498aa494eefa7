"""The hash algorithms NuGet signing allows: SHA-256, SHA-384, SHA-512.

Source: NuGet.Client ``NuGet.Common/HashAlgorithmName.cs`` and ``Signing/Utility/AlgorithmIdentifier``;
SPEC "Package-Signatures-Technical-Details" (SHA-1 is not allowed anywhere).
"""

from __future__ import annotations

import enum
import hashlib
from typing import TYPE_CHECKING

from nuseal.errors import UsageError

if TYPE_CHECKING:
    from hashlib import _Hash

__all__ = ["HashAlgorithm"]


class HashAlgorithm(enum.Enum):
    """A SHA-2 hash algorithm with NuGet's name (``SHA256``), its OID and a hashlib factory."""

    SHA256 = ("SHA256", "2.16.840.1.101.3.4.2.1", "sha256", 32)
    SHA384 = ("SHA384", "2.16.840.1.101.3.4.2.2", "sha384", 48)
    SHA512 = ("SHA512", "2.16.840.1.101.3.4.2.3", "sha512", 64)

    def __init__(self, nuget_name: str, oid: str, hashlib_name: str, digest_size: int) -> None:
        self.nuget_name = nuget_name
        self.oid = oid
        self.hashlib_name = hashlib_name
        self.digest_size = digest_size

    def new(self) -> _Hash:
        """A fresh hashlib object for this algorithm."""
        return hashlib.new(self.hashlib_name)

    def digest(self, data: bytes) -> bytes:
        """``H(data)``."""
        return hashlib.new(self.hashlib_name, data).digest()

    @classmethod
    def from_oid(cls, oid: str) -> HashAlgorithm | None:
        """The algorithm with this dotted OID, or ``None`` when NuGet does not allow it (e.g. SHA-1)."""
        for alg in cls:
            if alg.oid == oid:
                return alg
        return None

    @classmethod
    def parse(cls, name: str) -> HashAlgorithm:
        """Parse ``SHA256``/``sha-256``/``sha256`` (case-insensitive).

        Raises:
            UsageError: the name is not SHA-256, SHA-384 or SHA-512.
        """
        key = name.strip().upper().replace("-", "")
        for alg in cls:
            if alg.nuget_name == key:
                return alg
        raise UsageError(f"unsupported hash algorithm {name!r}: use SHA256, SHA384 or SHA512")

    @classmethod
    def from_hex_fingerprint(cls, fingerprint: str) -> HashAlgorithm | None:
        """Guess the algorithm from a hex fingerprint's length (64/96/128 hex digits), else ``None``."""
        for alg in cls:
            if len(fingerprint) == alg.digest_size * 2:
                return alg
        return None
