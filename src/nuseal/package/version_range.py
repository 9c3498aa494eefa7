"""NuGet version ranges: parsing, ``satisfies`` and the normalized string, with NuGet's own rules.

Rules from NuGet.Client ``src/NuGet.Core/NuGet.Versioning/{VersionRangeFactory,FloatRange,VersionRangeBase,
VersionRangeFormatter}.cs`` (NuGet.Versioning 6.x):

=============  ==========================  =============================================
text           meaning                     normalized
=============  ==========================  =============================================
``1.0``        1.0 <= x                    ``[1.0.0, )``
``[1.0]``      x == 1.0                    ``[1.0.0, 1.0.0]``
``(1.0,)``     1.0 < x                     ``(1.0.0, )``
``(,1.0]``     x <= 1.0                    ``(, 1.0.0]``
``[1.0,2.0)``  1.0 <= x < 2.0              ``[1.0.0, 2.0.0)``
``1.*``        floats: 1.0.0 <= x          ``[1.*, )``
``1.0.0-*``    floats: 1.0.0-0 <= x        ``[1.0.0-*, )``
=============  ==========================  =============================================

Only the lower bound may float (``*`` in the last numeric part or at the end of the release label, or
``*-*``; ``[1.*, 2.0)`` is allowed). ``(1.0)``, ``[1.0)``, ``(,)``, ``[2.0, 1.0]`` and ``[1.0, 1.0)`` are
invalid. :meth:`VersionRange.satisfies` is NuGet's ``VersionRangeBase.Satisfies``: it checks the bounds
only (a floating range's lower bound is its float's minimum version; prerelease versions are not
excluded); :meth:`FloatRange.satisfies` is NuGet's float matching, which restore uses to pick the
highest match.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass

from nuseal.errors import PackageFormatError
from nuseal.package.version import NuGetVersion

__all__ = ["FloatBehavior", "FloatRange", "VersionRange"]

#: Longest range string accepted (two 64-character versions, brackets, comma and spaces).
MAX_RANGE_LENGTH = 256


class FloatBehavior(enum.Enum):
    """NuGet's ``NuGetVersionFloatBehavior``: which part of the version floats."""

    NONE = "none"
    PRERELEASE = "prerelease"
    REVISION = "revision"
    PATCH = "patch"
    MINOR = "minor"
    MAJOR = "major"
    ABSOLUTE_LATEST = "absolute-latest"
    PRERELEASE_REVISION = "prerelease-revision"
    PRERELEASE_PATCH = "prerelease-patch"
    PRERELEASE_MINOR = "prerelease-minor"
    PRERELEASE_MAJOR = "prerelease-major"


def _try_version(text: str | None) -> NuGetVersion | None:
    if text is None:
        return None
    try:
        return NuGetVersion.parse(text)
    except PackageFormatError:
        return None


def _release(version: NuGetVersion) -> str:
    return ".".join(version.release_labels)


def _starts(version: NuGetVersion, prefix: str) -> bool:
    return _release(version).lower().startswith(prefix.lower())


@dataclass(frozen=True)
class FloatRange:
    """The floating part of a range (NuGet ``FloatRange``): ``behavior``, the float's minimum version and
    the release-label prefix (``beta`` for ``1.0.0-beta*``)."""

    behavior: FloatBehavior
    min_version: NuGetVersion | None
    release_prefix: str | None = None

    @classmethod
    def parse(cls, text: str) -> FloatRange | None:
        """NuGet's ``FloatRange.TryParse``: the float of ``text``, or ``None`` when it is not one."""
        if not text or not text.strip():
            return None
        first, last = text.find("*"), text.rfind("*")
        if text == "*":
            return cls(FloatBehavior.MAJOR, NuGetVersion.parse("0.0"))
        if text == "*-*":
            return cls(FloatBehavior.ABSOLUTE_LATEST, NuGetVersion.parse("0.0.0-0"), "")
        if last not in (first, -1) and "+" not in text:
            # two stars: only "<stable>*-<prefix>*"
            dash = text.find("-")
            if dash == -1 or last != len(text) - 1 or first != dash - 1:
                return None
            stable = text[: dash - 1] + "0"
            behavior = {
                1: FloatBehavior.PRERELEASE_MAJOR,
                2: FloatBehavior.PRERELEASE_MINOR,
                3: FloatBehavior.PRERELEASE_PATCH,
                4: FloatBehavior.PRERELEASE_REVISION,
            }.get(stable.count(".") + 1, FloatBehavior.NONE)
            label = text[dash + 1 : -1]
            part = label + "0" if not label or label.endswith(".") else label
            version = _try_version(f"{stable}-{part}")
            return cls._make(behavior, version, label) if version else None
        if last == len(text) - 1 and "+" not in text:
            actual = text[:-1]
            behavior = FloatBehavior.NONE
            prefix: str | None = None
            if "-" not in text:
                actual += "0"
                behavior = {2: FloatBehavior.MINOR, 3: FloatBehavior.PATCH, 4: FloatBehavior.REVISION}.get(
                    actual.count(".") + 1, FloatBehavior.NONE
                )
            else:
                behavior = FloatBehavior.PRERELEASE
                if text.find("-") == text.rfind("-"):
                    prefix = actual[text.rfind("-") + 1 :]
                    if not prefix or actual.endswith("."):
                        actual += "0"
                    elif actual.endswith("-"):
                        actual += "-"
            version = _try_version(actual)
            return cls._make(behavior, version, prefix) if version else None
        version = _try_version(text)
        return cls._make(FloatBehavior.NONE, version, None) if version else None

    @classmethod
    def _make(cls, behavior: FloatBehavior, version: NuGetVersion, prefix: str | None) -> FloatRange:
        if prefix is None and version.is_prerelease:
            prefix = _release(version)
        return cls(behavior, version, prefix)

    def satisfies(self, version: NuGetVersion) -> bool:
        """NuGet's ``FloatRange.Satisfies``: whether ``version`` is one this float would pick from."""
        b, m, pre = self.behavior, self.min_version, self.release_prefix or ""
        if b is FloatBehavior.ABSOLUTE_LATEST:
            return True
        if b is FloatBehavior.MAJOR and not version.is_prerelease:
            return True
        if m is None:
            return False
        label_ok = (version.is_prerelease and _starts(version, pre)) or not version.is_prerelease
        if b is FloatBehavior.PRERELEASE_REVISION:
            return (m.major, m.minor, m.patch) == (version.major, version.minor, version.patch) and label_ok
        if b is FloatBehavior.PRERELEASE_PATCH:
            return (m.major, m.minor) == (version.major, version.minor) and label_ok
        if b is FloatBehavior.PRERELEASE_MINOR:
            return m.major == version.major and label_ok
        if b is FloatBehavior.PRERELEASE_MAJOR:
            return label_ok
        if b is FloatBehavior.PRERELEASE:
            same = (m.major, m.minor, m.patch, m.revision) == (
                version.major,
                version.minor,
                version.patch,
                version.revision,
            )
            return same and label_ok
        stable = not version.is_prerelease
        if b is FloatBehavior.REVISION:
            return (m.major, m.minor, m.patch) == (version.major, version.minor, version.patch) and stable
        if b is FloatBehavior.PATCH:
            return (m.major, m.minor) == (version.major, version.minor) and stable
        if b is FloatBehavior.MINOR:
            return m.major == version.major and stable
        return False

    def __str__(self) -> str:
        """NuGet's ``FloatRange.ToString`` (``1.*``, ``1.0.0-beta*``, ``1.*-rc*``)."""
        m, pre = self.min_version, self.release_prefix or ""
        b = self.behavior
        if b is FloatBehavior.MAJOR:
            return "*"
        if b is FloatBehavior.ABSOLUTE_LATEST:
            return "*-*"
        assert m is not None  # every other behavior has a minimum version
        if b is FloatBehavior.NONE:
            return m.normalized
        if b is FloatBehavior.PRERELEASE:
            core = f"{m.major}.{m.minor}.{m.patch}" + (f".{m.revision}" if m.revision else "")
            return f"{core}-{pre}*"
        forms = {
            FloatBehavior.REVISION: f"{m.major}.{m.minor}.{m.patch}.*",
            FloatBehavior.PATCH: f"{m.major}.{m.minor}.*",
            FloatBehavior.MINOR: f"{m.major}.*",
            FloatBehavior.PRERELEASE_REVISION: f"{m.major}.{m.minor}.{m.patch}.*-{pre}*",
            FloatBehavior.PRERELEASE_PATCH: f"{m.major}.{m.minor}.*-{pre}*",
            FloatBehavior.PRERELEASE_MINOR: f"{m.major}.*-{pre}*",
            FloatBehavior.PRERELEASE_MAJOR: f"*-{pre}*",
        }
        return forms[b]


@dataclass(frozen=True)
class VersionRange:
    """A parsed NuGet version range (see the module docstring). ``None`` bounds are open."""

    min_version: NuGetVersion | None
    is_min_inclusive: bool
    max_version: NuGetVersion | None
    is_max_inclusive: bool
    float_range: FloatRange | None = None
    original: str = ""

    @classmethod
    def parse(cls, value: str, *, allow_floating: bool = True) -> VersionRange:
        """Parse ``value`` with NuGet's ``VersionRange.TryParse`` rules.

        Raises:
            PackageFormatError: not a valid NuGet version range (the message quotes it).
        """
        found = cls.try_parse(value, allow_floating=allow_floating)
        if found is None:
            raise PackageFormatError(f"{value!r} is not a valid NuGet version range")
        return found

    @classmethod
    def try_parse(cls, value: str, *, allow_floating: bool = True) -> VersionRange | None:
        """Like :meth:`parse`, but ``None`` for an invalid range."""
        if value is None or len(value) > MAX_RANGE_LENGTH:
            return None
        text = value.strip()
        if not text:
            return None
        if allow_floating and text == "*":
            return cls(NuGetVersion.parse("0.0.0"), True, None, False, FloatRange.parse("*"), value)
        max_text: str | None = None
        is_max_inclusive = False
        if text[0] in "([":
            is_min_inclusive = text[0] == "["
            if text[-1] not in ")]" or len(text) < 2:
                return None
            is_max_inclusive = text[-1] == "]"
            parts = text[1:-1].split(",")
            if len(parts) > 2 or all(not p for p in parts):
                return None
            if len(parts) == 1 and not (is_min_inclusive and is_max_inclusive):
                return None
            min_text = parts[0]
            max_text = parts[1] if len(parts) == 2 else parts[0]
        else:
            is_min_inclusive = True
            min_text = text
        min_version: NuGetVersion | None = None
        max_version: NuGetVersion | None = None
        float_range: FloatRange | None = None
        if min_text.strip():
            if allow_floating and "*" in min_text:
                float_range = FloatRange.parse(min_text)
                if float_range is None or float_range.min_version is None:
                    return None
                min_version = float_range.min_version
            else:
                min_version = _try_version(min_text)
                if min_version is None:
                    return None
        if max_text is not None and max_text.strip():
            max_version = _try_version(max_text)
            if max_version is None:
                return None
        if min_version is not None and max_version is not None:
            if min_version > max_version:
                return None
            if min_version == max_version and is_min_inclusive != is_max_inclusive:
                return None
        # NuGet's VersionRangeBase: a bound that is absent is never inclusive ("[,2.0)" is "(, 2.0.0)").
        is_min_inclusive = is_min_inclusive and min_version is not None
        is_max_inclusive = is_max_inclusive and max_version is not None
        return cls(min_version, is_min_inclusive, max_version, is_max_inclusive, float_range, value)

    @property
    def is_floating(self) -> bool:
        return self.float_range is not None and self.float_range.behavior is not FloatBehavior.NONE

    def satisfies(self, version: NuGetVersion | str) -> bool:
        """NuGet's ``VersionRangeBase.Satisfies`` with ``VersionComparer.Default``: ``version`` within the
        bounds (build metadata ignored, labels compared case-insensitively).

        Raises:
            PackageFormatError: ``version`` is a string that is not a valid NuGet version.
        """
        v = NuGetVersion.parse(version) if isinstance(version, str) else version
        ok = True
        if self.min_version is not None:
            ok = self.min_version <= v if self.is_min_inclusive else self.min_version < v
        if self.max_version is not None:
            ok = ok and (v <= self.max_version if self.is_max_inclusive else v < self.max_version)
        return ok

    @property
    def normalized(self) -> str:
        """NuGet's ``ToNormalizedString()`` (``VersionRangeFormatter`` ``N``): ``[1.0.0, 2.0.0)``, ``[1.*, )``."""
        out = "[" if self.min_version is not None and self.is_min_inclusive else "("
        if self.min_version is not None:
            out += str(self.float_range) if self.is_floating and self.float_range else self.min_version.normalized
        out += ", "
        if self.max_version is not None:
            out += self.max_version.normalized
        out += "]" if self.max_version is not None and self.is_max_inclusive else ")"
        return out

    def __str__(self) -> str:
        return self.normalized
