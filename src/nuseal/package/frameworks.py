"""NuGet target frameworks: parsing, short and long names, compatibility, and the nearest framework.

Rules from NuGet.Client ``src/NuGet.Core/NuGet.Frameworks`` (6.x): ``NuGetFrameworkFactory.cs`` (parsing of short
folder names such as ``net462``, ``netstandard2.0``, ``net8.0-windows10.0.19041``, ``portable-net45+win8`` and of
full names such as ``.NETFramework,Version=v4.6.2``), ``NuGetFramework.cs`` (short folder name, full name),
``DefaultFrameworkMappings.cs`` and ``DefaultPortableFrameworkMappings.cs`` (the tables below),
``FrameworkNameProvider.cs``, ``FrameworkExpander.cs``, ``CompatibilityProvider.cs`` (``IsCompatible``) and
``FrameworkReducer.cs`` (``GetNearest`` with its tie-breaking).

Like NuGet, :meth:`NuGetFramework.parse` returns :data:`UNSUPPORTED` for a string it does not recognize (``bogus``,
``net4x``) and raises only where NuGet throws (a full name with a bad ``Version=``, a portable profile whose members
carry a profile, an empty full name) - as :class:`nuseal.errors.PackageFormatError`, since framework strings come
from package input (nuspec dependency groups, lib/ folders).

``net5.0`` and later are ``.NETCoreApp`` (with an optional platform: ``net8.0-android34.0``); ``net`` below 5 is
``.NETFramework``. A project framework is compatible with a package framework when the package's assets can be used
by the project (``is_compatible(net8.0, netstandard2.0)`` is true); :func:`get_nearest` picks the best of several
package frameworks for a project, as restore does for dependency groups (:func:`select_dependency_group`).
"""

from __future__ import annotations

import functools
import itertools
import unicodedata
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any, TypeVar
from urllib.parse import unquote

from nuseal.errors import PackageFormatError

__all__ = [
    "AGNOSTIC",
    "ANY",
    "MAX_FRAMEWORK_LENGTH",
    "UNSUPPORTED",
    "NuGetFramework",
    "get_nearest",
    "is_compatible",
    "select_dependency_group",
]

#: Longest framework string accepted (NuGet has no limit; real ones are under 100 characters).
MAX_FRAMEWORK_LENGTH = 1024

Version = tuple[int, int, int, int]
EMPTY: Version = (0, 0, 0, 0)
_INT32_MAX = 2**31 - 1
_MAX: Version = (_INT32_MAX, 0, 0, 0)

# Framework identifiers (FrameworkConstants.FrameworkIdentifiers).
NET, NETCOREAPP, NETSTANDARD, NETSTANDARDAPP = ".NETFramework", ".NETCoreApp", ".NETStandard", ".NETStandardApp"
NETPLATFORM, NETCORE, WINRT, PORTABLE = ".NETPlatform", ".NETCore", "WinRT", ".NETPortable"
WINDOWS, WINDOWSPHONE, WINDOWSPHONEAPP, SILVERLIGHT = "Windows", "WindowsPhone", "WindowsPhoneApp", "Silverlight"
DNX, DNXCORE, ASPNET, ASPNETCORE = "DNX", "DNXCore", "ASP.NET", "ASP.NETCore"
UAP, TIZEN, MONOANDROID, MONOTOUCH, MONOMAC = "UAP", "Tizen", "MonoAndroid", "MonoTouch", "MonoMac"
XAMARINIOS, XAMARINMAC, XAMARINTVOS, XAMARINWATCHOS = "Xamarin.iOS", "Xamarin.Mac", "Xamarin.TVOS", "Xamarin.WatchOS"
XAMARINPS3, XAMARINPS4, XAMARINPSVITA = "Xamarin.PlayStation3", "Xamarin.PlayStation4", "Xamarin.PlayStationVita"
XAMARINXBOX360, XAMARINXBOXONE = "Xamarin.Xbox360", "Xamarin.XboxOne"


def _fold(text: str) -> str:
    """Key for .NET's ``StringComparer.OrdinalIgnoreCase`` (per-character simple upper case)."""
    if text.isascii():
        return text.upper()
    return "".join(u if len(u := c.upper()) == 1 else c for c in text)


def _ci_cmp(a: str, b: str) -> int:
    fa, fb = _fold(a), _fold(b)
    return (fa > fb) - (fa < fb)


_F_NETCOREAPP, _F_PORTABLE, _F_NET = _fold(NETCOREAPP), _fold(PORTABLE), _fold(NET)

# ---------------------------------------------------------------------------------------------------- the value type


@dataclass(frozen=True, eq=False)
class NuGetFramework:
    """A target framework: ``framework`` identifier (``.NETCoreApp``), ``version`` (4 ints), ``platform`` and
    ``platform_version`` (``net5.0``-era ``.NETCoreApp`` only; dropped otherwise, as NuGet does), ``profile``
    (``Client``, ``Profile7``...).

    Equality and hash are NuGet's ``NuGetFrameworkFullComparer``: every field, identifiers, profile and platform
    compared case-insensitively.
    """

    framework: str
    version: Version = EMPTY
    platform: str = ""
    platform_version: Version = EMPTY
    profile: str = ""
    _key: tuple[str, Version, str, str, Version] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        for name in ("version", "platform_version"):  # (8, 0) is (8, 0, 0, 0), as System.Version normalizes
            value = tuple(getattr(self, name))
            if len(value) != 4:
                object.__setattr__(self, name, (*value, 0, 0, 0, 0)[:4])
        if not self.is_net5_era:
            object.__setattr__(self, "platform", "")
            object.__setattr__(self, "platform_version", EMPTY)
        key = (_fold(self.framework), self.version, _fold(self.profile), _fold(self.platform), self.platform_version)
        object.__setattr__(self, "_key", key)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, NuGetFramework) and self._key == other._key

    def __hash__(self) -> int:
        return hash(self._key)

    @classmethod
    def parse(cls, text: str) -> NuGetFramework:
        """Parse a short folder name (``net462``, ``net8.0-windows``, ``portable-net45+win8``) or a full name
        (``.NETFramework,Version=v4.6.2``, ``.NETPortable,Version=v0.0,Profile=Profile7``): NuGet's
        ``NuGetFramework.Parse``. An unrecognized string gives :data:`UNSUPPORTED`.

        Raises:
            PackageFormatError: where NuGet throws (bad ``Version=`` value, empty full name, portable members with
                profiles), or the string is longer than :data:`MAX_FRAMEWORK_LENGTH`.
        """
        if len(text) > MAX_FRAMEWORK_LENGTH:
            raise PackageFormatError(f"the target framework is longer than {MAX_FRAMEWORK_LENGTH} characters")
        return _parse(text)

    # -- kinds
    @property
    def is_net5_era(self) -> bool:
        return self.version[0] >= 5 and _fold(self.framework) == _F_NETCOREAPP

    @property
    def is_any(self) -> bool:
        return self == ANY

    @property
    def is_agnostic(self) -> bool:
        return self == AGNOSTIC

    @property
    def is_unsupported(self) -> bool:
        return self == UNSUPPORTED

    @property
    def is_specific(self) -> bool:
        """Neither any, agnostic nor unsupported (``IsSpecificFramework``)."""
        return not (self.is_any or self.is_agnostic or self.is_unsupported)

    @property
    def is_pcl(self) -> bool:
        return _fold(self.framework) == _F_PORTABLE and self.version[0] < 5

    @property
    def is_package_based(self) -> bool:
        return _fold(self.framework) in _PACKAGE_BASED or _is_netcore50_and_up(self)

    @property
    def has_profile(self) -> bool:
        return bool(self.profile)

    @property
    def has_platform(self) -> bool:
        return bool(self.platform)

    # -- names
    @property
    def short_folder_name(self) -> str:
        """The short folder name: ``net462``, ``netstandard2.0``, ``net8.0-windows10.0.19041``, ``portable-net45+win8``.

        Raises:
            PackageFormatError: NuGet cannot name it (an identifier without letters or digits, a portable profile
                with no known frameworks).
        """
        return _short_folder_name(self)

    @property
    def dotnet_framework_name(self) -> str:
        """The full name (TargetFrameworkMoniker): ``.NETFramework,Version=v4.6.2``, ``.NETCoreApp,Version=v8.0``."""
        fw = _FULL_NAME_REWRITES.get(self, self)
        if not self.is_specific:
            return f"{fw.framework},Version=v0.0"
        name = f"{self.framework},Version=v{_display_version(fw.version)}"
        return f"{name},Profile={fw.profile}" if fw.profile else name

    @property
    def dotnet_platform_name(self) -> str:
        """``windows,Version=10.0.19041`` (TargetPlatformMoniker), empty without a platform."""
        return f"{self.platform},Version={_display_version(self.platform_version)}" if self.platform else ""

    def __str__(self) -> str:
        return self.short_folder_name if self.is_net5_era else self.dotnet_framework_name


ANY = NuGetFramework("Any")
AGNOSTIC = NuGetFramework("Agnostic")
UNSUPPORTED = NuGetFramework("Unsupported")
_SPECIAL = {"ANY": ANY, "AGNOSTIC": AGNOSTIC, "UNSUPPORTED": UNSUPPORTED}


def _fw(framework: str, *version: int, profile: str = "") -> NuGetFramework:
    return NuGetFramework(framework, version, profile=profile)  # type: ignore[arg-type]  # padded to 4 parts


_PACKAGE_BASED = {_fold(f) for f in (DNXCORE, NETPLATFORM, NETSTANDARD, NETSTANDARDAPP, NETCOREAPP, UAP, TIZEN)}
_XAMARIN_NET6 = {_fold(MONOANDROID), _fold(TIZEN)}  # net6.0-android / net6.0-tizen exceptions


def _is_netcore50_and_up(fw: NuGetFramework) -> bool:
    return fw.version[0] >= 5 and _fold(fw.framework) == _fold(NETCORE)


# ------------------------------------------------------------------------------------- DefaultFrameworkMappings tables

#: Long identifier -> short name (IdentifierShortNames), in NuGet's order.
_SHORT_NAMES: tuple[tuple[str, str], ...] = (
    (NETCOREAPP, "netcoreapp"), (NETSTANDARDAPP, "netstandardapp"), (NETSTANDARD, "netstandard"),
    (NETPLATFORM, "dotnet"), (NET, "net"), (".NETMicroFramework", "netmf"), (SILVERLIGHT, "sl"),
    (PORTABLE, "portable"), (WINDOWSPHONE, "wp"), (WINDOWSPHONEAPP, "wpa"), (WINDOWS, "win"), (ASPNET, "aspnet"),
    (ASPNETCORE, "aspnetcore"), ("native", "native"), (MONOANDROID, "monoandroid"), (MONOTOUCH, "monotouch"),
    (MONOMAC, "monomac"), (XAMARINIOS, "xamarinios"), (XAMARINMAC, "xamarinmac"), (XAMARINPS3, "xamarinpsthree"),
    (XAMARINPS4, "xamarinpsfour"), (XAMARINPSVITA, "xamarinpsvita"), (XAMARINWATCHOS, "xamarinwatchos"),
    (XAMARINTVOS, "xamarintvos"), (XAMARINXBOX360, "xamarinxboxthreesixty"), (XAMARINXBOXONE, "xamarinxboxone"),
    (DNX, "dnx"), (DNXCORE, "dnxcore"), (NETCORE, "netcore"), (WINRT, "winrt"), (UAP, "uap"), (TIZEN, "tizen"),
    (".NETnanoFramework", "netnano"),
)
#: Identifier synonyms (IdentifierSynonyms, then every short name).
_SYNONYMS: dict[str, str] = {
    _fold(k): v
    for k, v in (
        ("NETFramework", NET), (".NET", NET), ("NETCore", NETCORE), ("NETPortable", PORTABLE), ("asp.net", ASPNET),
        ("asp.netcore", ASPNETCORE), ("Xamarin.PlayStationThree", XAMARINPS3), ("XamarinPlayStationThree", XAMARINPS3),
        ("Xamarin.PlayStationFour", XAMARINPS4), ("XamarinPlayStationFour", XAMARINPS4),
        ("XamarinPlayStationVita", XAMARINPSVITA),
    )
}
for _long, _short in _SHORT_NAMES:
    _SYNONYMS.setdefault(_fold(_short), _long)
_LONG_TO_SHORT = {_fold(long): short for long, short in _SHORT_NAMES}
_LONG_CANONICAL = {_fold(long): long for long, _ in _SHORT_NAMES}
_SHORT_CANONICAL = {_fold(short): short for _, short in _SHORT_NAMES}
#: Profile short name <-> long name (ProfileShortNames; NuGet keys them without the framework).
_PROFILE_SHORT_TO_LONG = {_fold(k): v for k, v in (("Client", "Client"), ("CF", "CompactFramework"), ("Full", ""),
                                                   ("WP", "WindowsPhone"), ("WP71", "WindowsPhone71"))}
_PROFILE_LONG_TO_SHORT = {_fold(v): k for k, v in (("Client", "Client"), ("CF", "CompactFramework"), ("Full", ""),
                                                   ("WP", "WindowsPhone"), ("WP71", "WindowsPhone71"))}
_PROFILE_LONG_CANONICAL = {_fold(v): v for v in ("Client", "CompactFramework", "", "WindowsPhone", "WindowsPhone71")}
_PROFILE_SHORT_CANONICAL = {_fold(k): k for k in ("Client", "CF", "Full", "WP", "WP71")}
#: Equivalent profiles (EquivalentProfiles): (identifier, profile) -> profiles.
_EQUIVALENT_PROFILES: dict[tuple[str, str], tuple[str, ...]] = {}
for _ident, _p1, _p2 in ((NET, "Client", ""), (NET, "Full", ""), (SILVERLIGHT, "WindowsPhone71", "WindowsPhone"),
                         (WINDOWSPHONE, "WindowsPhone71", "WindowsPhone")):
    for _a, _b in ((_p1, _p2), (_p2, _p1)):
        _k = (_fold(_ident), _fold(_a))
        _EQUIVALENT_PROFILES[_k] = (*_EQUIVALENT_PROFILES.get(_k, ()), _b)

#: Equivalent frameworks (EquivalentFrameworks, closed transitively as NuGet closes them): each class.
_EQUIVALENT_CLASSES: tuple[tuple[NuGetFramework, ...], ...] = (
    (_fw(UAP), _fw(UAP, 10)),
    (_fw(WINDOWS), _fw(WINDOWS, 8), _fw(NETCORE, 4, 5), _fw(WINRT, 4, 5), _fw(NETCORE), _fw(WINRT)),
    (_fw(WINDOWS, 8, 1), _fw(NETCORE, 4, 5, 1)),
    (_fw(WINDOWSPHONE), _fw(WINDOWSPHONE, 7), _fw(SILVERLIGHT, 3, profile="WindowsPhone")),
    (_fw(WINDOWSPHONE, 7, 1), _fw(SILVERLIGHT, 4, profile="WindowsPhone71")),
    (_fw(WINDOWSPHONE, 8), _fw(SILVERLIGHT, 8, profile="WindowsPhone")),
    (_fw(WINDOWSPHONE, 8, 1), _fw(SILVERLIGHT, 8, 1, profile="WindowsPhone")),
    (_fw(WINDOWSPHONEAPP), _fw(WINDOWSPHONEAPP, 8, 1)),
    (_fw(TIZEN), _fw(TIZEN, 3)),
    (_fw(DNX), _fw(DNX, 4, 5), _fw(ASPNET, 5), _fw(ASPNET)),
    (_fw(DNXCORE), _fw(DNXCORE, 5), _fw(ASPNETCORE, 5), _fw(ASPNETCORE)),
    (_fw(NETPLATFORM), _fw(NETPLATFORM, 5)),
)
_EQUIVALENT: dict[NuGetFramework, frozenset[NuGetFramework]] = {
    member: frozenset(cls) - {member} for cls in _EQUIVALENT_CLASSES for member in cls
}
#: Subset frameworks (SubSetFrameworks): superset identifier -> subset identifiers.
_SUBSETS = {_fold(DNX): (NET,), _fold(DNXCORE): (NETPLATFORM,), _fold(NETSTANDARDAPP): (NETSTANDARD,)}


@dataclass(frozen=True)
class _Range:
    """A FrameworkRange: same identifier and profile as ``low``, version within [low, high]."""

    low: NuGetFramework
    high: NuGetFramework

    def satisfies(self, fw: NuGetFramework) -> bool:
        return (_fold(fw.framework) == _fold(self.low.framework) and _fold(fw.profile) == _fold(self.low.profile)
                and self.low.version <= fw.version <= self.high.version)


def _upwards(fw: NuGetFramework) -> _Range:
    return _Range(fw, NuGetFramework(fw.framework, _MAX))


def _standard(fw: NuGetFramework, *netstandard: int) -> tuple[_Range, _Range]:
    return _upwards(fw), _Range(_fw(NETSTANDARD, 1), _fw(NETSTANDARD, *netstandard))


def _generation(fw: NuGetFramework, *dotnet: int) -> tuple[_Range, _Range]:
    return _upwards(fw), _Range(_fw(NETPLATFORM), _fw(NETPLATFORM, *dotnet))


#: One-way compatibility mappings (CompatibilityMappings): projects in the first range support the second.
_COMPATIBILITY: tuple[tuple[_Range, _Range], ...] = (
    (_upwards(_fw(UAP)), _Range(_fw(WINDOWS), _fw(WINDOWS, 8, 1))),
    (_upwards(_fw(UAP)), _Range(_fw(WINDOWSPHONEAPP), _fw(WINDOWSPHONEAPP, 8, 1))),
    (_upwards(_fw(UAP)), _Range(_fw(NETCORE, 5), _fw(NETCORE, 5))),
    (_upwards(_fw(WINDOWS)), _Range(_fw(WINRT), _fw(WINRT, 4, 5))),
    _standard(_fw(TIZEN, 3), 1, 6), _standard(_fw(TIZEN, 4), 2, 0), _standard(_fw(TIZEN, 6), 2, 1),
    _standard(_fw(UAP, 10, 0, 15064), 2, 0),
    _standard(_fw(NETCOREAPP, 1, 0), 1, 6), _standard(_fw(NETCOREAPP, 1, 1), 1, 7),
    _standard(_fw(NETCOREAPP, 2, 0), 2, 0), _standard(_fw(NETCOREAPP, 3, 0), 2, 1),
    _standard(_fw(NET, 4, 6, 3), 2, 0),
    *(
        mapping
        for fw, dotnet, netstandard in (
            (_fw(DNXCORE), (5, 6), (1, 5)), (_fw(UAP), (5, 5), (1, 4)), (_fw(NETCORE, 5), (5, 5), (1, 4)),
            (_fw(WINDOWSPHONEAPP, 8, 1), (5, 3), (1, 2)), (_fw(WINDOWSPHONE, 8), (5, 1), (1, 0)),
            (_fw(NET, 4, 5), (5, 2), (1, 1)), (_fw(NET, 4, 5, 1), (5, 3), (1, 2)), (_fw(NET, 4, 6), (5, 4), (1, 3)),
            (_fw(NET, 4, 6, 1), (5, 5), (2, 0)), (_fw(NET, 4, 6, 2), (5, 6), (2, 0)),
            (_fw(NETCORE, 4, 5), (5, 2), (1, 1)), (_fw(NETCORE, 4, 5, 1), (5, 3), (1, 2)),
            *((_fw(x), (5, 6), (2, 1)) for x in (MONOANDROID, MONOMAC, MONOTOUCH, XAMARINIOS, XAMARINMAC)),
            *((_fw(x), (5, 6), (2, 0))
              for x in (XAMARINPS3, XAMARINPS4, XAMARINPSVITA, XAMARINXBOX360, XAMARINXBOXONE)),
            *((_fw(x), (5, 6), (2, 1)) for x in (XAMARINTVOS, XAMARINWATCHOS)),
        )
        for mapping in (_generation(fw, *dotnet), _standard(fw, *netstandard))
    ),
)
_COMPATIBILITY_BY_ID: dict[str, list[tuple[_Range, _Range]]] = {}
for _entry in _COMPATIBILITY:
    _COMPATIBILITY_BY_ID.setdefault(_fold(_entry[0].low.framework), []).append(_entry)

#: Framework precedence for GetNearest's last tie-break (NonPackageBased / PackageBased / Equivalent precedence).
_NON_PACKAGE_PRECEDENCE = {_fold(f): i for i, f in enumerate((NET, NETCORE, WINDOWS, WINDOWSPHONEAPP))}
_PACKAGE_PRECEDENCE = {_fold(f): i for i, f in enumerate((NETCOREAPP, NETSTANDARDAPP, NETSTANDARD, NETPLATFORM))}
_EQUIVALENT_PRECEDENCE = {_fold(f): i for i, f in enumerate(
    (WINDOWS, NETCORE, WINRT, WINDOWSPHONE, SILVERLIGHT, DNXCORE, ASPNETCORE, DNX, ASPNET))}
#: Name rewrites (ShortNameReplacements / FullNameReplacements): dotnet5.0 is written "dotnet", "dotnet" is v5.0.
_SHORT_NAME_REWRITES = {_fw(NETPLATFORM, 5): _fw(NETPLATFORM)}
_FULL_NAME_REWRITES = {_fw(NETPLATFORM): _fw(NETPLATFORM, 5)}
_SINGLE_DIGIT_VERSION = {_fold(f) for f in (WINDOWS, WINDOWSPHONE, SILVERLIGHT)}
_DECIMAL_POINT = {_fold(f) for f in (NETCOREAPP, NETSTANDARD, ".NETnanoFramework")}

# ------------------------------------------------------------------------------------- DefaultPortableFrameworkMappings

_NET4, _NET403, _NET45, _NET451 = _fw(NET, 4), _fw(NET, 4, 0, 3), _fw(NET, 4, 5), _fw(NET, 4, 5, 1)
_WIN8, _WIN81, _SL4, _SL5 = _fw(WINDOWS, 8), _fw(WINDOWS, 8, 1), _fw(SILVERLIGHT, 4), _fw(SILVERLIGHT, 5)
_WP7, _WP75, _WP8, _WP81, _WPA81 = (_fw(WINDOWSPHONE, 7), _fw(WINDOWSPHONE, 7, 5), _fw(WINDOWSPHONE, 8),
                                   _fw(WINDOWSPHONE, 8, 1), _fw(WINDOWSPHONEAPP, 8, 1))
#: Portable profile number -> its frameworks (ProfileFrameworks), in NuGet's order (the order matters for parsing).
_PORTABLE_PROFILES: dict[int, tuple[NuGetFramework, ...]] = {
    31: (_WIN81, _WP81), 32: (_WIN81, _WPA81), 44: (_NET451, _WIN81), 84: (_WP81, _WPA81),
    151: (_NET451, _WIN81, _WPA81), 157: (_WIN81, _WP81, _WPA81),
    7: (_NET45, _WIN8), 49: (_NET45, _WP8), 78: (_NET45, _WIN8, _WP8), 111: (_NET45, _WIN8, _WPA81),
    259: (_NET45, _WIN8, _WPA81, _WP8),
    2: (_NET4, _WIN8, _SL4, _WP7), 3: (_NET4, _SL4), 4: (_NET45, _SL4, _WIN8, _WP7), 5: (_NET4, _WIN8),
    6: (_NET403, _WIN8), 14: (_NET4, _SL5), 18: (_NET403, _SL4), 19: (_NET403, _SL5), 23: (_NET45, _SL4),
    24: (_NET45, _SL5), 36: (_NET4, _SL4, _WIN8, _WP8), 37: (_NET4, _SL5, _WIN8), 41: (_NET403, _SL4, _WIN8),
    42: (_NET403, _SL5, _WIN8), 46: (_NET45, _SL4, _WIN8), 47: (_NET45, _SL5, _WIN8),
    88: (_NET4, _SL4, _WIN8, _WP75), 92: (_NET4, _WIN8, _WPA81), 95: (_NET403, _SL4, _WIN8, _WP7),
    96: (_NET403, _SL4, _WIN8, _WP75), 102: (_NET403, _WIN8, _WPA81), 104: (_NET45, _SL4, _WIN8, _WP75),
    136: (_NET4, _SL5, _WIN8, _WP8), 143: (_NET403, _SL4, _WIN8, _WP8), 147: (_NET403, _SL5, _WIN8, _WP8),
    154: (_NET45, _SL4, _WIN8, _WP8), 158: (_NET45, _SL5, _WIN8, _WP8), 225: (_NET4, _SL5, _WIN8, _WPA81),
    240: (_NET403, _SL5, _WIN8, _WPA81), 255: (_NET45, _SL5, _WIN8, _WPA81),
    328: (_NET4, _SL5, _WIN8, _WPA81, _WP8), 336: (_NET403, _SL5, _WIN8, _WPA81, _WP8),
    344: (_NET45, _SL5, _WIN8, _WPA81, _WP8),
}
#: Profiles that also support the Mono/Xamarin frameworks (ProfileOptionalFrameworks).
_PORTABLE_OPTIONAL_PROFILES = frozenset(
    (5, 6, 7, 14, 19, 24, 37, 42, 44, 47, 49, 78, 92, 102, 111, 136, 147, 151, 158, 225, 255, 259, 328, 336, 344))
_PORTABLE_OPTIONAL = tuple(
    _fw(x) for x in (MONOANDROID, MONOTOUCH, XAMARINIOS, XAMARINMAC, XAMARINWATCHOS, XAMARINTVOS))
#: Portable profile -> the .NETStandard versions it supports (CompatibilityMappings).
_PORTABLE_STANDARD = {n: _Range(_fw(NETSTANDARD, 1), _fw(NETSTANDARD, *v)) for n, v in (
    (7, (1, 1)), (31, (1, 0)), (32, (1, 2)), (44, (1, 2)), (49, (1, 0)), (78, (1, 0)), (84, (1, 0)), (111, (1, 1)),
    (151, (1, 2)), (157, (1, 0)), (259, (1, 0)))}


# ------------------------------------------------------------------------------------------------ .NET number parsing

_NET_WHITE = "\t\n\v\f\r "


def _int32(text: str) -> int | None:
    """``int.TryParse(text, NumberStyles.Integer, InvariantCulture)``: white space around, one sign, digits."""
    body = text.lstrip(_NET_WHITE).rstrip("\0").rstrip(_NET_WHITE)
    sign = 1
    if body[:1] in ("+", "-"):
        sign, body = (-1 if body[0] == "-" else 1), body[1:]
    if not body or not body.isascii() or not body.isdigit():
        return None
    value = sign * int(body)
    return value if -(2**31) <= value <= _INT32_MAX else None


def _dotnet_version(text: str) -> Version | None:
    """``System.Version.TryParse``: 2 to 4 dot-separated non-negative Int32 parts; missing parts are 0."""
    parts = text.split(".")
    if not 2 <= len(parts) <= 4:
        return None
    numbers = [_int32(p) for p in parts]
    if any(n is None or n < 0 for n in numbers):
        return None
    return (*(n or 0 for n in numbers), 0, 0)[:4]  # type: ignore[return-value]


def _folder_version(text: str) -> Version | None:
    """FrameworkNameProvider.TryGetVersion: ``4.5.1`` as is, else digits ``451`` -> 4.5.1 (first 4, at least 2)."""
    if "." in text:
        return _dotnet_version(text)
    if len(text) < 2:
        text += "0"
    return _dotnet_version(".".join(text[:4]))


def _platform_version(text: str) -> Version | None:
    return _dotnet_version(text if "." in text else text + ".0")


# ------------------------------------------------------------------------------------------------------------ parsing


def _try_identifier(name: str) -> str | None:
    key = _fold(name)
    return _SYNONYMS.get(key) or _LONG_CANONICAL.get(key)


def _try_profile(short: str) -> str | None:
    key = _fold(short)
    if key in _PROFILE_SHORT_TO_LONG:
        return _PROFILE_SHORT_TO_LONG[key]
    return _PROFILE_LONG_CANONICAL.get(key)


_DEPRECATED = {"45": _NET45, "4.5": _NET45, "40": _NET4, "4.0": _NET4, "4": _NET4, "35": _fw(NET, 3, 5),
               "3.5": _fw(NET, 3, 5), "20": _fw(NET, 2), "2": _fw(NET, 2), "2.0": _fw(NET, 2)}
_DOTNET_COMMON = {"DOTNET", "DOTNET50", "DOTNET5.0"}


def _is_letter_or_dot(c: str) -> bool:
    return ("A" <= c <= "Z") or ("a" <= c <= "z") or c == "."


def _is_profile_char(c: str) -> bool:
    return c.isascii() and (c.isalnum() or c in ".+-")


def _raw_parse(s: str) -> tuple[str, str | None, str] | None:
    """Split ``net45-client`` into identifier, version digits and profile (NuGetFrameworkFactory.RawParse)."""
    i = 0
    while i < len(s) and _is_letter_or_dot(s[i]):
        i += 1
    if i == 0:
        return None
    j = i
    while j < len(s) and (("0" <= s[j] <= "9") or s[j] == "."):
        j += 1
    profile = ""
    if j < len(s):
        if s[j] != "-" or j + 1 == len(s):
            return None
        profile = s[j + 1:]
        if not all(_is_profile_char(c) for c in profile):
            return None
    return s[:i], (s[i:j] or None), profile


@functools.lru_cache(maxsize=4096)
def _parse(text: str) -> NuGetFramework:
    return _parse_full_name(text) if "," in text else _parse_folder(text)


def _dotnet_trim(text: str) -> str:
    """``String.Trim()``: .NET's white space (U+0009-U+000D, U+0085 and the Z* categories)."""
    def white(c: str) -> bool:
        return c in "\t\n\v\f\r\x85" or unicodedata.category(c) in ("Zs", "Zl", "Zp")
    start, end = 0, len(text)
    while start < end and white(text[start]):
        start += 1
    while end > start and white(text[end - 1]):
        end -= 1
    return text[start:end]


def _parse_full_name(text: str) -> NuGetFramework:
    """``.NETFramework,Version=v4.6.2[,Profile=Client]`` (NuGetFrameworkFactory.ParseFrameworkName)."""
    parts = [_dotnet_trim(p) for p in text.split(",") if p]
    if not parts:
        raise PackageFormatError(f"the target framework {text!r} has no framework identifier")
    special = _SPECIAL.get(_fold(parts[0]))
    if special is not None:
        return special
    identifier = _try_identifier(parts[0]) or parts[0]

    def single(prefix: str) -> str | None:
        found = [p for p in parts if _fold(p).startswith(prefix)]
        return found[0].split("=")[1] if len(found) == 1 else None

    version, version_text, profile = EMPTY, single("VERSION="), single("PROFILE=")
    if version_text is not None:
        version_text = version_text.lstrip("v")
        parsed = _dotnet_version(version_text if "." in version_text else version_text + ".0")
        if parsed is None:
            raise PackageFormatError(f"the target framework {text!r} has an invalid version {version_text!r}")
        version = parsed
    if _fold(identifier) == _F_PORTABLE and profile and "-" in profile:
        raise PackageFormatError(f"the portable profile {profile!r} of {text!r} names frameworks with profiles")
    if version[0] >= 5 and _fold(identifier) == _F_NETCOREAPP:
        return NuGetFramework(identifier, version)
    return NuGetFramework(identifier, version, profile=profile or "")


def _parse_folder(name: str) -> NuGetFramework:
    """``net45``, ``net8.0-windows10.0.19041``, ``portable-net45+win8`` (NuGetFrameworkFactory.ParseFolder)."""
    if "%" in name:
        name = unquote(name)
    folded = _fold(name)
    if folded in _SPECIAL:
        return _SPECIAL[folded]
    if folded in _DOTNET_COMMON:
        return _fw(NETPLATFORM, 5)
    parts = _raw_parse(name)
    if parts is None:
        return _DEPRECATED.get(name, UNSUPPORTED)
    framework = _try_identifier(parts[0])
    version = EMPTY if parts[1] is None else _folder_version(parts[1])
    if framework is None or version is None:
        return UNSUPPORTED
    profile_short = parts[2]
    if version[0] >= 5 and _fold(framework) in (_F_NET, _F_NETCOREAPP):
        i = 0
        while i < len(profile_short) and _is_letter_or_dot(profile_short[i]):
            i += 1
        platform_version = EMPTY
        if 0 < i < len(profile_short):
            parsed = _platform_version(profile_short[i:])
            if parsed is None:
                return UNSUPPORTED
            platform_version = parsed
        platform = profile_short[:i] if i > 0 else profile_short
        return NuGetFramework(NETCOREAPP, version, platform, platform_version)
    if _fold(framework) == _F_PORTABLE:
        members = _portable_members(profile_short)
        if not members:
            return UNSUPPORTED
        number = _portable_profile_number(tuple(members))
        return NuGetFramework(framework, version, profile=f"Profile{number}" if number is not None else profile_short)
    profile = _try_profile(profile_short)
    return NuGetFramework(framework, version, profile=profile_short if profile is None else profile)


def _portable_members(profile: str) -> list[NuGetFramework]:
    """``net45+win8`` -> its frameworks (FrameworkNameProvider.TryGetPortableFrameworks(string))."""
    members = []
    for name in (n for n in profile.split("+") if n):
        member = NuGetFramework.parse(name)
        if member.has_profile:
            raise PackageFormatError(f"the portable profile {profile!r} names a framework with a profile ({name!r})")
        members.append(member)
    return members


def _equivalence_class(fw: NuGetFramework) -> frozenset[NuGetFramework]:
    return _EQUIVALENT.get(fw, frozenset()) | {fw}


@functools.cache
def _profile_permutations(number: int) -> frozenset[frozenset[NuGetFramework]]:
    choices = [_equivalence_class(fw) for fw in dict.fromkeys(_PORTABLE_PROFILES[number])]
    return frozenset(frozenset(p) for p in itertools.product(*choices))


@functools.lru_cache(maxsize=1024)
def _portable_profile_number(members: tuple[NuGetFramework, ...]) -> int | None:
    """The profile number of a set of frameworks, optional Mono/Xamarin members and equivalents allowed
    (FrameworkNameProvider.TryGetPortableProfile)."""
    unique: list[NuGetFramework] = []
    seen: set[NuGetFramework] = set()
    for fw in members:
        if fw not in seen:
            unique.append(fw)
            seen |= _equivalence_class(fw)
    for number, required in _PORTABLE_PROFILES.items():
        if len(set(required)) > len(unique):
            continue
        optional = _PORTABLE_OPTIONAL if number in _PORTABLE_OPTIONAL_PROFILES else ()
        reduced = frozenset(fw for fw in unique if not any(
            _same_name(o, fw) and _fold(o.profile) == _fold(fw.profile) and fw.version >= o.version for o in optional))
        if reduced in _profile_permutations(number):
            return number
    return None


def _profile_number(profile: str) -> int | None:
    return _int32(profile[7:]) if _fold(profile[:7]) == "PROFILE" else None


def _portable_frameworks(profile: str, include_optional: bool) -> list[NuGetFramework]:
    """A PCL profile's frameworks (TryGetPortableFrameworks(string, includeOptional)); empty when unknown."""
    number = _profile_number(profile)
    if number is None:
        return _portable_members(profile)
    frameworks = list(_PORTABLE_PROFILES.get(number, ()))
    if include_optional and number in _PORTABLE_OPTIONAL_PROFILES:
        frameworks += _PORTABLE_OPTIONAL
    return list(dict.fromkeys(frameworks))


# -------------------------------------------------------------------------------------------------------------- names


def _version_string(framework: str, version: Version) -> str:
    """FrameworkNameProvider.GetVersionString: ``45``, ``4.5`` (netstandard/netcoreapp), ``10.0``; empty for 0.0."""
    if all(n <= 0 for n in version):
        return ""
    _, minor, build, revision = version
    count = 4 if revision else 3 if build else 2 if minor else 1
    key = _fold(framework)
    if count == 1 and key not in _SINGLE_DIGIT_VERSION:
        count = 2
    if key in _DECIMAL_POINT or any(n > 9 for n in version):
        return ".".join(str(n) for n in version[:max(count, 2)])
    return "".join(str(n) for n in version[:count])


def _display_version(version: Version) -> str:
    major, minor, build, revision = version
    text = f"{major}.{minor}"
    if build > 0 or revision > 0:
        text += f".{build}"
        if revision > 0:
            text += f".{revision}"
    return text


def _letters_and_digits(text: str) -> str:
    return "".join(c for c in text if unicodedata.category(c)[0] == "L" or unicodedata.category(c) == "Nd")


def _short_folder_name(self: NuGetFramework) -> str:
    fw = _SHORT_NAME_REWRITES.get(self, self)
    if not self.is_specific:
        return self.framework.lower()
    identifier = NET if self.is_net5_era else self.framework
    key = _fold(identifier)
    short = _LONG_TO_SHORT.get(key) or _SHORT_CANONICAL.get(key) or _letters_and_digits(fw.framework)
    if not short:
        raise PackageFormatError(f"the framework identifier {fw.framework!r} has no short name")
    name = short if self.version == EMPTY else short + _version_string(fw.framework, fw.version)
    if self.is_pcl:
        members = _portable_frameworks(fw.profile, include_optional=False) if fw.profile else []
        if not members:
            raise PackageFormatError(f"the portable framework {fw.dotnet_framework_name!r} names no known frameworks")
        names = sorted((m.short_folder_name for m in dict.fromkeys(members)), key=_fold)
        name += "-" + "+".join(names)
    elif self.is_net5_era:
        if fw.platform:
            name += "-" + fw.platform.lower()
            if fw.platform_version != EMPTY:
                name += _version_string(fw.framework, fw.platform_version)
    elif fw.profile:
        key = _fold(fw.profile)
        profile = _PROFILE_LONG_TO_SHORT.get(key) or _PROFILE_SHORT_CANONICAL.get(key) or fw.profile
        name += "-" + profile
    return name.lower()


# ------------------------------------------------------------------------------------------------------ compatibility


def _equivalents(fw: NuGetFramework) -> set[NuGetFramework]:
    """Equivalent frameworks and profile aliases, without ``fw`` (TryGetEquivalentFrameworks(framework))."""
    result = set(_EQUIVALENT.get(fw, ()))
    for base in (*result, fw):
        for profile in _EQUIVALENT_PROFILES.get((_fold(base.framework), _fold(base.profile)), ()):
            result.add(NuGetFramework(base.framework, base.version, profile=profile))
    result.discard(fw)
    return result


def _expand_one(fw: NuGetFramework) -> set[NuGetFramework]:
    """FrameworkExpander.ExpandInternal: equivalents, equivalents of lower versions, subsets, mapped ranges."""
    result = _equivalents(fw)
    lower = _Range(NuGetFramework(fw.framework, profile=fw.profile), fw)
    for key in _EQUIVALENT:
        if lower.satisfies(key):
            result |= _equivalents(key)
    if not fw.has_profile:
        result.update(NuGetFramework(sub, fw.version) for sub in _SUBSETS.get(_fold(fw.framework), ()))
    for target, supported in _COMPATIBILITY_BY_ID.get(_fold(fw.framework), ()):
        if target.satisfies(fw):
            result |= {supported.low, supported.high}
    return result


@functools.lru_cache(maxsize=4096)
def _expand(fw: NuGetFramework) -> frozenset[NuGetFramework]:
    """The project framework and every framework it can use by mapping (FrameworkExpander.Expand)."""
    seen, todo = {fw}, [fw]
    while todo:
        for more in _expand_one(todo.pop()):
            if more not in seen:
                seen.add(more)
                todo.append(more)
    if fw.is_pcl:
        number = _profile_number(fw.profile)
        if number is not None and number in _PORTABLE_STANDARD:
            seen |= {_PORTABLE_STANDARD[number].low, _PORTABLE_STANDARD[number].high}
    return frozenset(seen)


@functools.lru_cache(maxsize=4096)
def _equivalent_closure(fw: NuGetFramework) -> frozenset[NuGetFramework]:
    seen, todo = {fw}, [fw]
    while todo:
        for more in _equivalents(todo.pop()):
            if more not in seen:
                seen.add(more)
                todo.append(more)
    return frozenset(seen)


def _same_name(a: NuGetFramework, b: NuGetFramework) -> bool:
    return _fold(a.framework) == _fold(b.framework)


def _compatible_core(target: NuGetFramework, candidate: NuGetFramework) -> bool:
    """CompatibilityProvider.IsCompatibleWithTargetCore: same identifier, version and profile (and platform)."""
    if target.is_net5_era and target.version[0] >= 6 and target.has_platform and not _same_name(target, candidate):
        kind = _fold(candidate.framework)
        if kind == _fold(MONOANDROID):
            return _fold(target.platform) == "ANDROID"
        if kind == _fold(TIZEN):
            return _fold(target.platform) == "TIZEN"
        return False
    ok = (_same_name(target, candidate) and (candidate.version == EMPTY or candidate.version <= target.version)
          and _fold(target.profile) == _fold(candidate.profile))
    if ok and target.is_net5_era and candidate.has_platform:
        ok = _fold(target.platform) == _fold(candidate.platform) and (
            candidate.platform_version == EMPTY or candidate.platform_version <= target.platform_version)
    return ok


def is_compatible(project: NuGetFramework, candidate: NuGetFramework) -> bool:
    """True when a project targeting ``project`` can use assets built for ``candidate``
    (``DefaultCompatibilityProvider.Instance.IsCompatible``): ``net8.0`` uses ``netstandard2.0`` and ``net6.0``,
    ``net48`` uses ``net462`` and ``netstandard2.0``, not the other way round."""
    return _is_compatible(project, candidate)


@functools.lru_cache(maxsize=65536)
def _is_compatible(target: NuGetFramework, candidate: NuGetFramework) -> bool:
    if target == candidate:
        return True
    if not target.is_specific or not candidate.is_specific:
        if target.is_any or candidate.is_any:
            return True
        if target.is_unsupported:
            return False
        if candidate.is_agnostic:
            return True
        if candidate.is_unsupported:
            return False
    if target.is_pcl or candidate.is_pcl:
        if target.is_pcl and not candidate.is_pcl:
            return _compatible_with_target(target, candidate)
        targets = _portable_frameworks(target.profile, False) if target.is_pcl else [target]
        candidates = _portable_frameworks(candidate.profile, True) if candidate.is_pcl else [candidate]
        return len(targets) <= len(candidates) and all(
            any(_is_compatible(t, c) for c in candidates) for t in targets)
    return _compatible_with_target(target, candidate)


def _compatible_with_target(target: NuGetFramework, candidate: NuGetFramework) -> bool:
    targets = _expand(target)
    return any(_compatible_core(t, c) for c in _equivalent_closure(candidate) for t in targets)


# ----------------------------------------------------------------------------------------------------------- nearest


def _sorter_cmp(x: NuGetFramework, y: NuGetFramework) -> int:
    """NuGetFrameworkSorter: any first, unsupported last, then identifier, version, profile, platform."""
    if x.is_any != y.is_any:
        return -1 if x.is_any else 1
    if x.is_unsupported != y.is_unsupported:
        return 1 if x.is_unsupported else -1
    if c := _ci_cmp(x.framework, y.framework):
        return c
    if x.version != y.version:
        return -1 if x.version < y.version else 1
    if c := _ci_cmp(x.profile, y.profile) or _ci_cmp(x.platform, y.platform):
        return c
    return (x.platform_version > y.platform_version) - (x.platform_version < y.platform_version)


def _precedence_cmp(x: NuGetFramework, y: NuGetFramework, table: dict[str, int]) -> int:
    if _same_name(x, y):
        return 0
    a, b = table.get(_fold(x.framework), _INT32_MAX), table.get(_fold(y.framework), _INT32_MAX)
    return (a > b) - (a < b)


def _final_cmp(x: NuGetFramework, y: NuGetFramework) -> int:
    """FrameworkPrecedenceSorter (non-package based first, then precedence), then NuGetFrameworkSorter descending."""
    xp = x.is_package_based and not _is_netcore50_and_up(x)
    yp = y.is_package_based and not _is_netcore50_and_up(y)
    if xp != yp:
        return 1 if xp else -1
    return _precedence_cmp(x, y, _PACKAGE_PRECEDENCE if xp else _NON_PACKAGE_PRECEDENCE) or -_sorter_cmp(x, y)


def _distinct(frameworks: Iterable[NuGetFramework]) -> list[NuGetFramework]:
    return list(dict.fromkeys(frameworks))


def _reduce_upwards(frameworks: list[NuGetFramework]) -> list[NuGetFramework]:
    """FrameworkReducer.ReduceUpwards: drop every framework that another one in the list can use."""
    if any(f != ANY for f in frameworks):
        frameworks = [f for f in frameworks if f != ANY]
    items = _distinct(frameworks)
    kept = []
    for i, x in enumerate(items):
        dupe = False
        for j, y in enumerate(items):
            if j != i and _is_compatible(y, x):
                reverse = _is_compatible(x, y)
                dupe = not reverse or (_same_name(x, y) and x.version == EMPTY and y.version != EMPTY)
                if dupe:
                    break
        if not dupe:
            kept.append(x)
    # NuGet sorts the result by identifier, then ToString() in the current culture: the order decides between two
    # portable frameworks that name the same frameworks (IsBetterPCL keeps the first of equals).
    return sorted(kept, key=lambda f: (_fold(f.framework), _culture_key(str(f))))


#: ICU's root collation order of ASCII punctuation and symbols (they sort before digits, digits before letters).
_PUNCTUATION_ORDER = {c: i for i, c in enumerate("\t\n\v\f\r _-,;:!?.'\"()[]{}@*/\\&#%`^+<=>|~$")}


def _culture_key(text: str) -> tuple[tuple[tuple[int, int | str], ...], tuple[bool, ...]]:
    """A sort key close to .NET's culture-sensitive string comparison (ICU root collation) for ASCII names:
    punctuation, then digits, then letters case-insensitively; lower case first on ties."""
    primary = tuple(
        (1, _PUNCTUATION_ORDER[c]) if c in _PUNCTUATION_ORDER else (2, c) if c.isdigit() else
        (3, c.lower()) if c.isalpha() else (4, ord(c))
        for c in text
    )
    return primary, tuple(c.isupper() for c in text)


def _reduce_equivalent(frameworks: list[NuGetFramework]) -> list[NuGetFramework]:
    def order(x: NuGetFramework, y: NuGetFramework) -> int:
        return _precedence_cmp(x, y, _EQUIVALENT_PRECEDENCE) or -_sorter_cmp(x, y)

    ordered = sorted(frameworks, key=functools.cmp_to_key(order))
    result: list[NuGetFramework] = []
    duplicates: set[NuGetFramework] = set()
    for fw in ordered:
        if fw not in duplicates:
            result.append(fw)
            duplicates |= {fw} | _equivalents(fw)
    return result


def _nearest_pcl_for_non_pcl(fw: NuGetFramework, reduced: list[NuGetFramework]) -> list[NuGetFramework]:
    exploded = {pcl: _portable_frameworks(pcl.profile, True) for pcl in reduced}
    nearest = _nearest(fw, [m for members in exploded.values() for m in members])
    return [pcl for pcl, members in exploded.items() if nearest is not None and nearest in members]


def _nearest_pcl_for_pcl(fw: NuGetFramework, reduced: list[NuGetFramework]) -> list[NuGetFramework]:
    """Each framework of the project's PCL votes for the PCLs holding its nearest framework."""
    exploded = {pcl: _portable_frameworks(pcl.profile, True) for pcl in reduced}
    everything = _distinct(m for members in exploded.values() for m in members)
    scores: dict[NuGetFramework, int] = {}
    for sub in _reduce_equivalent(_portable_frameworks(fw.profile, True)):
        nearest = _nearest(sub, everything)
        if nearest is not None:
            for pcl, members in exploded.items():
                if nearest in members:
                    scores[pcl] = scores.get(pcl, 0) + 1
    if not scores:
        raise PackageFormatError(f"NuGet cannot choose between the portable frameworks for {fw}")
    top = max(scores.values())
    return [pcl for pcl, score in scores.items() if score == top]


def _is_better_pcl(current: NuGetFramework, considering: NuGetFramework) -> bool:
    """FrameworkReducer.IsBetterPCL: fewer frameworks, then higher versions, then higher .NET, then name."""
    new, old = _portable_frameworks(considering.profile, False), _portable_frameworks(current.profile, False)
    if len(new) != len(old):
        return len(new) < len(old)
    new_wins = old_wins = 0
    for ident in (f.framework for f in new if any(_fold(f.framework) == _fold(o.framework) for o in old)):
        a = next(f for f in new if _fold(f.framework) == _fold(ident))
        b = next(f for f in old if _fold(f.framework) == _fold(ident))
        new_wins += a.version > b.version
        old_wins += a.version < b.version
    if new_wins != old_wins:
        return new_wins > old_wins
    new_net = next((f for f in new if _fold(f.framework) == _F_NET), None)
    old_net = next((f for f in old if _fold(f.framework) == _F_NET), None)
    if new_net is not None and old_net is not None and new_net.version != old_net.version:
        return new_net.version > old_net.version
    return _fold(considering.short_folder_name) < _fold(current.short_folder_name)


def _nearest(fw: NuGetFramework, possible: list[NuGetFramework]) -> NuGetFramework | None:
    """FrameworkReducer.GetNearestInternal, step by step."""
    if any(p != UNSUPPORTED for p in possible):
        possible = [p for p in possible if p != UNSUPPORTED]
    for p in possible:  # an exact match wins
        if p == fw:
            return p
    reduced = _reduce_upwards([p for p in possible if _is_compatible(fw, p)])
    net6 = fw.is_net5_era and fw.version[0] >= 6
    # the same identifier as the project (net6.0-android also keeps MonoAndroid, net6.0-tizen Tizen)
    if len(reduced) > 1 and any(_same_name(f, fw) for f in reduced):
        reduced = [f for f in reduced if _same_name(f, fw)
                   or (net6 and fw.has_platform and _fold(f.framework) in _XAMARIN_NET6)]
    # portable class libraries: non-PCL over PCL, else the nearest PCL
    if len(reduced) > 1:
        if any(f.is_pcl for f in reduced) and not all(f.is_pcl for f in reduced):
            reduced = [f for f in reduced if not f.is_pcl]
        elif all(f.is_pcl for f in reduced):
            reduced = _nearest_pcl_for_pcl(fw, reduced) if fw.is_pcl else _nearest_pcl_for_non_pcl(fw, reduced)
            if len(reduced) > 1:
                best = reduced[0]
                for considering in reduced[1:]:
                    if _is_better_pcl(best, considering):
                        best = considering
                reduced = [best]
    # a project that is not package based prefers frameworks that are not either
    if (len(reduced) > 1 and not fw.is_package_based and any(f.is_package_based for f in reduced)
            and not all(f.is_package_based for f in reduced)):
        reduced = [f for f in reduced if not f.is_package_based]
    # profiles: the project's own profile, else none
    if len(reduced) > 1 and not any(f.is_pcl for f in reduced):
        if fw.has_profile:
            same = [f for f in reduced if _same_name(fw, f) and _fold(fw.profile) == _fold(f.profile)]
            reduced = same or reduced
        if len(reduced) > 1 and any(f.has_profile for f in reduced) and not all(f.has_profile for f in reduced):
            reduced = [f for f in reduced if not f.has_profile]
    # platforms: the highest version of the project's own identifier (the platform-neutral one, usually)
    if len(reduced) > 1 and fw.has_platform:
        if not net6 or any(_same_name(fw, f) and f.version[0] >= 6 for f in reduced):
            same = [f for f in reduced if _same_name(fw, f)]
            if not same:
                raise PackageFormatError(f"NuGet cannot choose a framework for {fw} among {len(reduced)}")
            top = max(f.version for f in same)
            reduced = [f for f in same if f.version == top]
        elif any(_fold(f.framework) in _XAMARIN_NET6 for f in reduced):
            for name in sorted({f.framework for f in reduced}, reverse=True):
                group = [f for f in reduced if f.framework == name]
                if _fold(group[0].framework) in _XAMARIN_NET6:
                    reduced = group
                    break
    if len(reduced) == 1:
        return reduced[0]
    return min(reduced, key=functools.cmp_to_key(_final_cmp)) if reduced else None


def get_nearest(
    project: NuGetFramework, candidates: Iterable[NuGetFramework], fallback: Sequence[NuGetFramework] = ()
) -> NuGetFramework | None:
    """The candidate nearest to ``project`` among those it is compatible with, or ``None``
    (``FrameworkReducer.GetNearest``): an exact match, else the compatible ones reduced to the highest versions, the
    project's own identifier, non-portable, non-package-based (for a classic project), the project's profile or none,
    the highest version for a platform project, then NuGet's precedence (.NETFramework, .NETCore, Windows,
    WindowsPhoneApp; .NETCoreApp, .NETStandardApp, .NETStandard, .NETPlatform) and the highest name. Returns the first
    candidate object equal to the pick. ``fallback`` is a ``FallbackFramework``'s list (PackageTargetFallback): tried in
    order when nothing, or only "any", is found for ``project`` itself.

    Raises:
        PackageFormatError: in the corner cases where NuGet itself throws (no way to choose between frameworks).
    """
    possible = list(candidates)
    nearest = _nearest(project, possible)
    if fallback and (nearest is None or nearest.is_any):
        for framework in fallback:
            nearest = _nearest(framework, possible)
            if nearest is not None:
                break
    return nearest


G = TypeVar("G")


def _group_framework(group: Any) -> NuGetFramework:
    value = group.target_framework
    if isinstance(value, NuGetFramework):
        return value
    return ANY if not value else NuGetFramework.parse(str(value))


def select_dependency_group(
    project: NuGetFramework,
    groups: Iterable[G],
    *,
    asset_target_fallback: Sequence[NuGetFramework] = (),
    framework_of: Callable[[G], NuGetFramework] = _group_framework,
) -> G | None:
    """The dependency group restore uses for ``project`` among a package's nuspec groups, or ``None`` (no
    dependencies apply). NuGet (``SourceRepositoryDependencyProvider.GetDependencies``) takes the group whose target
    framework is :func:`get_nearest`; a group without ``targetFramework`` is :data:`ANY`; with nothing found and an
    AssetTargetFallback list (``net6.0``+ projects: ``net461;net462;net47;net471;net472;net48;net481``) it tries again
    with those frameworks in order. The first group of equal frameworks wins.

    ``framework_of`` gives a group's framework; by default the group's ``target_framework`` attribute (a
    :class:`NuGetFramework`, or a string parsed with :meth:`NuGetFramework.parse`, empty or ``None`` for any).

    Raises:
        PackageFormatError: a group's target framework cannot be parsed (see :meth:`NuGetFramework.parse`).
    """
    items = list(groups)
    frameworks = [framework_of(g) for g in items]
    nearest = get_nearest(project, frameworks)
    if nearest is None and asset_target_fallback:
        nearest = get_nearest(project, frameworks, asset_target_fallback)
    if nearest is None:
        return None
    return next(g for g, f in zip(items, frameworks, strict=True) if f == nearest)
