"""NuGet versions: parsing, normalization and ordering.

Rules from NuGet.Client ``src/NuGet.Core/NuGet.Versioning/{NuGetVersionFactory,SemanticVersionFactory,
VersionComparer,VersionFormatter}.cs``: 1 to 4 numeric parts (System.Version; a single part gets ``.0``),
then an optional ``-`` release label of dot-separated identifiers ([0-9A-Za-z-], non-empty, numeric
identifiers without leading zeros), then optional ``+`` build metadata (same characters, leading zeros
allowed). The normalized form (used in V3 paths and for identity) is ``Major.Minor.Patch[.Revision]`` with
the revision only when it is not 0, then ``-label``; metadata is dropped. Ordering is SemVer 2.0.0 with
case-insensitive labels; metadata does not take part.
"""

from __future__ import annotations

import functools
import re
from dataclasses import dataclass, field

from nuseal.errors import PackageFormatError

__all__ = ["MAX_VERSION_LENGTH", "NuGetVersion"]

#: Longest version string nuseal accepts (nuget.org: 64 characters).
MAX_VERSION_LENGTH = 64
#: One release-label or metadata identifier; always used with ``fullmatch`` (``$`` would accept a final newline).
_IDENT = re.compile(r"[0-9A-Za-z-]+")
_INT32_MAX = 2**31 - 1


@functools.total_ordering
@dataclass(frozen=True)
class NuGetVersion:
    """A parsed NuGet version. Equality and ordering ignore build metadata and label case."""

    major: int
    minor: int
    patch: int
    revision: int
    release_labels: tuple[str, ...]
    metadata: str = field(default="", compare=False)
    original: str = field(default="", compare=False)

    @classmethod
    def parse(cls, value: str) -> NuGetVersion:
        """Parse ``value`` with NuGet's lenient rules.

        Raises:
            PackageFormatError: the string is not a valid NuGet version, naming the offending part.
        """
        text = value.strip()
        if not text:
            raise PackageFormatError("the version is empty")
        if len(text) > MAX_VERSION_LENGTH:
            raise PackageFormatError(f"the version {value!r} is longer than {MAX_VERSION_LENGTH} characters")
        core, plus, metadata = text.partition("+")
        numbers, dash, label = core.partition("-")
        if plus and not metadata:
            raise PackageFormatError(f"the version {value!r} has an empty build metadata part")
        if dash and not label:
            raise PackageFormatError(f"the version {value!r} has an empty release label")
        parts = numbers.split(".")
        if not 1 <= len(parts) <= 4 or not all(p.isascii() and p.isdigit() for p in parts):
            raise PackageFormatError(f"the version {value!r} must start with 1 to 4 dot-separated numbers")
        nums = [int(p) for p in parts]
        if any(n > _INT32_MAX for n in nums):
            raise PackageFormatError(f"a number in the version {value!r} is too large")
        nums += [0] * (4 - len(nums))
        labels = tuple(label.split(".")) if dash else ()
        for ident in labels:
            if not _IDENT.fullmatch(ident):
                raise PackageFormatError(f"the release label {label!r} in {value!r} is not valid")
            if ident.isdigit() and len(ident) > 1 and ident[0] == "0":
                raise PackageFormatError(f"the release label {label!r} has a numeric part with a leading zero")
        if plus and not all(_IDENT.fullmatch(m) for m in metadata.split(".")):
            raise PackageFormatError(f"the build metadata {metadata!r} in {value!r} is not valid")
        version = cls(nums[0], nums[1], nums[2], nums[3], labels, metadata, text)
        if len(version.full) > MAX_VERSION_LENGTH:
            # "1-<62 characters>" normalizes to "1.0.0-<62 characters>": the form the feed stores must parse too.
            raise PackageFormatError(
                f"the version {value!r} is longer than {MAX_VERSION_LENGTH} characters once normalized "
                f"({version.full!r})"
            )
        return version

    @property
    def is_prerelease(self) -> bool:
        return bool(self.release_labels)

    @property
    def is_semver2(self) -> bool:
        """SemVer 2.0.0-only: metadata, or a dotted release label (nuget.org's ``semVerLevel=2.0.0`` rule)."""
        return bool(self.metadata) or len(self.release_labels) > 1

    @property
    def normalized(self) -> str:
        """NuGet's normalized string (``VersionFormatter`` ``N``), e.g. ``1.0.0``, ``1.2.3.4-beta.1``."""
        text = f"{self.major}.{self.minor}.{self.patch}"
        if self.revision:
            text += f".{self.revision}"
        if self.release_labels:
            text += "-" + ".".join(self.release_labels)
        return text

    @property
    def full(self) -> str:
        """Normalized string with build metadata, as V3 registration ``version`` fields carry it."""
        return self.normalized + (f"+{self.metadata}" if self.metadata else "")

    def __str__(self) -> str:
        return self.normalized

    def _key(self) -> tuple[int, int, int, int]:
        return (self.major, self.minor, self.patch, self.revision)

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, NuGetVersion):
            return NotImplemented
        return self._key() == other._key() and tuple(x.lower() for x in self.release_labels) == tuple(
            x.lower() for x in other.release_labels
        )

    def __hash__(self) -> int:
        return hash((self._key(), tuple(x.lower() for x in self.release_labels)))

    def __lt__(self, other: object) -> bool:
        if not isinstance(other, NuGetVersion):
            return NotImplemented
        if self._key() != other._key():
            return self._key() < other._key()
        return _compare_labels(self.release_labels, other.release_labels) < 0


def _compare_labels(a: tuple[str, ...], b: tuple[str, ...]) -> int:
    """SemVer 2.0.0 §11 precedence of release labels; no label sorts after any label."""
    if not a or not b:
        return (not a) - (not b)
    for x, y in zip(a, b, strict=False):
        xd, yd = x.isdigit(), y.isdigit()
        if xd and yd:
            if int(x) != int(y):
                return -1 if int(x) < int(y) else 1
        elif xd != yd:
            return -1 if xd else 1
        else:
            xl, yl = x.lower(), y.lower()
            if xl != yl:
                return -1 if xl < yl else 1
    return (len(a) > len(b)) - (len(a) < len(b))
