"""NuGet target frameworks (nuseal.package.frameworks): the rules of NuGet.Frameworks, unit-tested here and checked
answer by answer against NuGet.Frameworks 6.14.3 itself (``frameworks --batch`` of ../shared/tools/nuget-oracle)."""

from __future__ import annotations

import json
import random
import subprocess
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import defusedxml.ElementTree as ElementTree
import pytest

from nuseal.errors import PackageFormatError
from nuseal.package.frameworks import (
    AGNOSTIC,
    ANY,
    UNSUPPORTED,
    NuGetFramework,
    get_nearest,
    is_compatible,
    select_dependency_group,
)
from support import oracle

VECTORS = Path(__file__).resolve().parents[2] / "shared" / "vectors"
P = NuGetFramework.parse

# ------------------------------------------------------------------------------ unit tests: NuGet's rules, as facts
# (every expectation below was checked with the oracle's ``frameworks`` command, NuGet.Frameworks 6.14.3)


@pytest.mark.parametrize(
    ("text", "framework", "version", "platform", "profile", "short", "full"),
    [
        ("net462", ".NETFramework", (4, 6, 2, 0), "", "", "net462", ".NETFramework,Version=v4.6.2"),
        (
            ".NETFramework,Version=v4.6.2",
            ".NETFramework",
            (4, 6, 2, 0),
            "",
            "",
            "net462",
            ".NETFramework,Version=v4.6.2",
        ),
        (
            "net40-client",
            ".NETFramework",
            (4, 0, 0, 0),
            "",
            "Client",
            "net40-client",
            ".NETFramework,Version=v4.0,Profile=Client",
        ),
        ("net40-full", ".NETFramework", (4, 0, 0, 0), "", "", "net40", ".NETFramework,Version=v4.0"),
        ("netstandard2.0", ".NETStandard", (2, 0, 0, 0), "", "", "netstandard2.0", ".NETStandard,Version=v2.0"),
        ("netstandard20", ".NETStandard", (2, 0, 0, 0), "", "", "netstandard2.0", ".NETStandard,Version=v2.0"),
        ("netcoreapp3.1", ".NETCoreApp", (3, 1, 0, 0), "", "", "netcoreapp3.1", ".NETCoreApp,Version=v3.1"),
        ("net5.0", ".NETCoreApp", (5, 0, 0, 0), "", "", "net5.0", ".NETCoreApp,Version=v5.0"),
        ("net80", ".NETCoreApp", (8, 0, 0, 0), "", "", "net8.0", ".NETCoreApp,Version=v8.0"),
        ("net10.0", ".NETCoreApp", (10, 0, 0, 0), "", "", "net10.0", ".NETCoreApp,Version=v10.0"),
        (
            "net8.0-windows10.0.19041",
            ".NETCoreApp",
            (8, 0, 0, 0),
            "windows",
            "",
            "net8.0-windows10.0.19041",
            ".NETCoreApp,Version=v8.0",
        ),
        (
            "net6.0-Android31",
            ".NETCoreApp",
            (6, 0, 0, 0),
            "Android",
            "",
            "net6.0-android31.0",
            ".NETCoreApp,Version=v6.0",
        ),
        (
            "portable-net45+win8",
            ".NETPortable",
            (0, 0, 0, 0),
            "",
            "Profile7",
            "portable-net45+win8",
            ".NETPortable,Version=v0.0,Profile=Profile7",
        ),
        (
            "portable-win8+net45+monoandroid10",
            ".NETPortable",
            (0, 0, 0, 0),
            "",
            "Profile7",
            "portable-net45+win8",
            ".NETPortable,Version=v0.0,Profile=Profile7",
        ),
        (
            "portable-net45+win+wpa81+wp8",
            ".NETPortable",
            (0, 0, 0, 0),
            "",
            "Profile259",
            "portable-net45+win8+wp8+wpa81",
            ".NETPortable,Version=v0.0,Profile=Profile259",
        ),
        (
            "sl4-wp",
            "Silverlight",
            (4, 0, 0, 0),
            "",
            "WindowsPhone",
            "sl4-wp",
            "Silverlight,Version=v4.0,Profile=WindowsPhone",
        ),
        ("uap10.0.16299", "UAP", (10, 0, 16299, 0), "", "", "uap10.0.16299", "UAP,Version=v10.0.16299"),
        ("win81", "Windows", (8, 1, 0, 0), "", "", "win81", "Windows,Version=v8.1"),
        ("xamarinios10", "Xamarin.iOS", (1, 0, 0, 0), "", "", "xamarinios10", "Xamarin.iOS,Version=v1.0"),
        ("dotnet", ".NETPlatform", (5, 0, 0, 0), "", "", "dotnet", ".NETPlatform,Version=v5.0"),
        ("45", ".NETFramework", (4, 5, 0, 0), "", "", "net45", ".NETFramework,Version=v4.5"),
        ("net%34%35", ".NETFramework", (4, 5, 0, 0), "", "", "net45", ".NETFramework,Version=v4.5"),
        ("any", "Any", (0, 0, 0, 0), "", "", "any", "Any,Version=v0.0"),
    ],
)
def test_parse_and_names(
    text: str, framework: str, version: tuple[int, ...], platform: str, profile: str, short: str, full: str
) -> None:
    fw = P(text)
    assert (fw.framework, fw.version, fw.platform, fw.profile) == (framework, version, platform, profile)
    assert (fw.short_folder_name, fw.dotnet_framework_name) == (short, full)
    assert str(fw) == (short if fw.is_net5_era else full)
    assert P(short) == fw and P(full if not fw.platform else short) == fw


@pytest.mark.parametrize(
    "text", ["bogus", "", "net4x", "net45-", " net45", "net1.2.3.4.5", "net8.0-windows-1", "portable"]
)
def test_unrecognized_frameworks_are_unsupported(text: str) -> None:
    fw = P(text)
    assert fw == UNSUPPORTED and fw.is_unsupported and not fw.is_specific and fw.short_folder_name == "unsupported"


@pytest.mark.parametrize(
    "text",
    [
        ",",
        ".NETFramework,Version=vx",
        ".NETFramework,Version=v4.5.1.2.3",
        "portable-net45-client+win8",
        ".NETPortable,Version=v0.0,Profile=net45-client",
        "net" + "4" * 2000,
    ],
)
def test_where_nuget_throws_parse_raises(text: str) -> None:
    with pytest.raises(PackageFormatError):
        P(text)


def test_equality_is_nugets_full_comparer() -> None:
    assert P("NET45") == P("net4.5") == P(".netframework,Version=v4.5")
    assert hash(P("net8.0-WINDOWS")) == hash(P("net8.0-windows"))
    assert P("net45") != P("net45-client") and P("net8.0") != P("net8.0-windows")
    assert NuGetFramework(".NETFramework", (4, 5, 0, 0), platform="windows").platform == ""  # platforms are net5.0+
    assert len({P("net462"), P(".NETFramework,Version=v4.6.2"), P("net4.6.2")}) == 1
    assert ANY.is_any and AGNOSTIC.is_agnostic and not ANY.is_specific


@pytest.mark.parametrize(
    ("project", "package", "expected"),
    [
        ("net8.0", "netstandard2.0", True),
        ("net8.0", "net6.0", True),
        ("net6.0", "net8.0", False),
        ("net6.0-android", "monoandroid12.0", True),
        ("net6.0-ios", "xamarinios10", False),
        ("net8.0", "net8.0-windows", False),
        ("net8.0-windows", "net8.0", True),
        ("net8.0-windows10.0.17763", "net8.0-windows10.0.19041", False),
        ("net461", "netstandard2.0", True),
        ("net472", "netstandard2.1", False),
        ("netcoreapp3.0", "netstandard2.1", True),
        ("netstandard2.0", "net461", False),
        ("net40-client", "net40", True),
        ("net40", "net40-client", True),
        ("win81", "win8", True),
        ("uap10.0", "win81", True),
        ("uap10.0", "netcore50", True),
        ("monoandroid10", "netstandard2.1", True),
        ("portable-net45+win8", "netstandard1.1", True),
        ("net45", "portable-net45+win8", True),
        ("portable-net45+win8+wpa81", "portable-net45+win8", False),
        ("net5.0", "net48", False),
        ("tizen40", "netstandard2.0", True),
        ("net8.0-tizen", "tizen40", True),
        ("net45", "any", True),
        ("net45", "agnostic", True),
        ("unsupported", "net45", False),
        ("net45", "unsupported", False),
    ],
)
def test_compatibility(project: str, package: str, expected: bool) -> None:
    assert is_compatible(P(project), P(package)) is expected


@pytest.mark.parametrize(
    ("project", "candidates", "expected"),
    [
        ("net8.0", ["netstandard2.0", "net6.0", "net462"], "net6.0"),  # highest compatible version of its own kind
        ("net48", ["net45", "netstandard2.0"], "net45"),  # a classic project prefers classic frameworks
        ("net461", ["netstandard2.0", "netstandard1.6", "net45"], "net45"),
        ("net40-client", ["net40", "net40-client"], "net40-client"),  # an exact match wins
        ("net45", ["net40-client", "net35"], "net40-client"),
        ("net45", ["net40-client", "net40"], "net40"),  # frameworks without a profile first
        ("net8.0-windows10.0.19041", ["net8.0", "net8.0-windows", "net7.0-windows10.0.19041"], "net8.0-windows"),
        ("net6.0-android31.0", ["monoandroid10", "netstandard2.1"], "monoandroid10"),
        ("net6.0-android31.0", ["monoandroid10", "net6.0"], "net6.0"),
        ("uap10.0.16299", ["win81", "wpa81"], "win81"),  # precedence: Windows before WindowsPhoneApp
        ("net8.0", ["any"], "any"),
        ("net8.0", ["any", "netstandard1.0"], "netstandard1.0"),
        ("net8.0", ["unsupported"], None),
        ("net45", ["portable-net45+win8", "portable-net45+win8+wpa81+wp8"], "portable-net45+win8"),
        ("net45", ["portable-net45+win8+wpa81+wp8", "netstandard1.0"], "portable-net45+win8+wp8+wpa81"),
        ("net5.0", ["netcoreapp3.1", "netstandard2.1", "net5.0-windows"], "netcoreapp3.1"),
        ("net45", ["agnostic"], "agnostic"),
        ("net45", [], None),
    ],
)
def test_nearest(project: str, candidates: list[str], expected: str | None) -> None:
    parsed = [P(c) for c in candidates]
    pick = get_nearest(P(project), parsed)
    assert (None if pick is None else pick.short_folder_name) == expected
    assert pick is None or any(pick is c for c in parsed)


def test_nearest_with_fallback_frameworks() -> None:
    groups = [P("net45"), P("net46")]
    assert get_nearest(P("net8.0"), groups) is None
    assert get_nearest(P("net8.0"), groups, fallback=[P("net461"), P("net462")]) == P("net46")
    assert get_nearest(P("net8.0"), [ANY, P("net46")], fallback=[P("net461")]) == P("net46")  # "any" is not enough


@dataclass(frozen=True)
class Group:
    target_framework: str | None
    name: str


def _nuspec_groups(path: Path) -> list[Group]:
    with zipfile.ZipFile(path) as z:
        root = ElementTree.fromstring(z.read(next(n for n in z.namelist() if n.endswith(".nuspec") and "/" not in n)))
    groups = [
        g
        for d in root.iter()
        if d.tag.rpartition("}")[2] == "dependencies"
        for g in d
        if g.tag.rpartition("}")[2] == "group"
    ]
    return [Group(g.get("targetFramework"), str(i)) for i, g in enumerate(groups)]


@pytest.mark.parametrize(
    ("package", "project", "expected"),
    [
        ("nuget.org/Newtonsoft.Json.12.0.3.nupkg", "net8.0", ".NETStandard2.0"),
        ("nuget.org/Newtonsoft.Json.12.0.3.nupkg", "net472", ".NETFramework4.5"),
        ("nuget.org/Newtonsoft.Json.12.0.3.nupkg", "net40-client", ".NETFramework4.0"),
        ("nuget.org/Newtonsoft.Json.12.0.3.nupkg", "netcoreapp1.1", ".NETStandard1.3"),
        ("nuget.org/Newtonsoft.Json.12.0.3.nupkg", "win81", ".NETPortable0.0-Profile259"),
        ("nuget.org/RestSharp.106.11.4.nupkg", "net472", ".NETFramework4.5.2"),
        ("nuget.org/RestSharp.106.11.4.nupkg", "net451", None),
        ("nuget.org/system.memory.4.5.3.nupkg", "net8.0", ".NETCoreApp2.1"),
        ("nuget.org/system.memory.4.5.3.nupkg", "net6.0-android31.0", "MonoAndroid1.0"),
        ("nuget.org/inthehand.bluetoothle.4.0.35.nupkg", "net8.0-windows10.0.19041", "net7.0-windows10.0.19041"),
        ("nuget.org/inthehand.bluetoothle.4.0.35.nupkg", "net8.0", "net7.0"),
        ("nuget.org/inthehand.bluetoothle.4.0.35.nupkg", "uap10.0.19041", "UAP10.0.17763"),
        ("install-time/Microsoft.CodeDom.Providers.DotNetCompilerPlatform.1.0.8.nupkg", "net8.0", ".NETFramework4.6"),
    ],
)
def test_select_dependency_group_on_real_nuspecs(package: str, project: str, expected: str | None) -> None:
    path = VECTORS / package
    if not path.is_file():
        pytest.skip(f"no vector {path}")
    groups = _nuspec_groups(path)
    atf = [P(f) for f in ("net461", "net462", "net47", "net471", "net472", "net48", "net481")]
    chosen = select_dependency_group(P(project), groups, asset_target_fallback=atf if P(project).is_net5_era else ())
    assert (None if chosen is None else chosen.target_framework) == expected


def test_select_dependency_group_rules() -> None:
    any_group, net45, again = Group(None, "any"), Group("net45", "a"), Group("net4.5", "b")
    assert select_dependency_group(P("net48"), [any_group, net45, again]) is net45  # the first of equal frameworks
    assert select_dependency_group(P("net8.0"), [any_group, net45]) is any_group  # no targetFramework is "any"
    assert select_dependency_group(P("net8.0"), [Group("", "empty"), net45]).name == "empty"  # type: ignore[union-attr]
    assert select_dependency_group(P("net8.0"), [net45]) is None
    assert select_dependency_group(P("net8.0"), [net45], asset_target_fallback=[P("net461")]) is net45
    assert select_dependency_group(P("net8.0"), []) is None
    pairs = [("netstandard2.0", 1), ("net6.0", 2)]
    assert select_dependency_group(P("net8.0"), pairs, framework_of=lambda g: P(g[0])) == ("net6.0", 2)
    with pytest.raises(PackageFormatError):
        select_dependency_group(P("net8.0"), [Group(".NETFramework,Version=vx", "bad")])


# ----------------------------------------------------------------------------------------------- the generated cases


def _words(text: str) -> list[str]:
    return text.split()


_NET = _words("""
net11 net20 net35 net40 net403 net45 net451 net452 net46 net461 net462 net463 net47 net471 net472 net48 net481
net4 net4.5 net4.6.2 net40-client net40-full net35-client net40-cf net20-cf net45-Client net4.7.2
""")
_CORE = _words("""
netcoreapp1.0 netcoreapp1.1 netcoreapp2.0 netcoreapp2.1 netcoreapp2.2 netcoreapp3.0 netcoreapp3.1 netcoreapp10
netcoreapp31 netcoreapp5.0 net5.0 net6.0 net7.0 net8.0 net9.0 net10.0 net50 net60 net80 net100 net11.0 NET8.0
""")
_PLATFORMS = _words("""
net5.0-windows net6.0-windows net6.0-windows7.0 net8.0-windows10.0.19041 net8.0-windows10.0.19041.0
net6.0-android net6.0-android31.0 net8.0-android34.0 net6.0-ios net6.0-ios15.0 net6.0-maccatalyst net6.0-macos
net6.0-tvos net8.0-browser net8.0-tizen net8.0-tizen7.0 net9.0-windows10.0.22621 net10.0-windows
net5.0-windows10.0.17763 net7.0-windows10.0.19041 net7.0-android33.0 net8.0-Windows net8.0-WINDOWS10.0
netcoreapp5.0-windows net8.0-10.0 net8.0-windows+1 net8.0-windows-1 net8.0-windows10.0-foo net5.0-windows-
net8.0-windows10 net8.0-windows10.0.19041.0.1 net8.0-win.dows10
""")
_STANDARD = _words("""
netstandard1.0 netstandard1.1 netstandard1.2 netstandard1.3 netstandard1.4 netstandard1.5 netstandard1.6
netstandard1.7 netstandard2.0 netstandard2.1 netstandard netstandard10 netstandard20 netstandardapp1.5
netstandard3.0
""")
_PORTABLE = _words("""
portable-net45+win8 portable-net45+win8+wpa81 portable-net45+win8+wp8+wpa81 portable-net40+sl5+win8+wp8
portable-net4+sl4+wp7+win8 portable-win81+wpa81 portable-net451+win81 portable-net45+wp8 portable-net45+win8+wp8
portable-Profile7 portable-Profile259 portable-net45+win8+monoandroid+monotouch
portable-net45+win8+xamarinios10+xamarinmac20 portable-net45+netcore45 portable-net45+win
portable-net45+win8+win portable-win8+net45 portable-net40+sl50+netcore45+wpa81+wp8 portable-net403+sl4+win8
portable-foo portable portable-net45 portable-net45-client+win8 portable40-net45+win8
portable-net45+sl4+win8+wp7 portable-net45+win8+wp8+wpa81+monoandroid10+xamarinios10 portable-win81+wp81+wpa81
portable-net4+sl5+win8+wpa81+wp8 portable-net403+sl5+win8+wp8 portable-wp81+wpa81 portable-net45+sl5+win8+wp8
portable-net40+win8+wpa81 portable-net45+win8+wpa81+wp8 portable-win8+wp8+wpa81 portable-net451+win81+wpa81
portable-net45+win81 portable-net45+win8+monoandroid10+monotouch10+xamarinios10 portable-net45+sl50+win+wp80
portable-net45+wp80+win8+wpa81+dnxcore50 portable-dnxcore50+net45+win8+wp8+wpa81
.NETPortable0.0-Profile096 .NETPortable0.0-Profile96 portable-net403+sl4+win8+wp75
""")
_WINDOWS = _words("""
uap uap10.0 uap10.0.15064 uap10.0.16299 uap10.0.17763 win win8 win81 win10 netcore netcore45 netcore451
netcore50 winrt winrt45 wp wp7 wp71 wp75 wp8 wp81 wpa wpa81 sl3-wp sl4 sl4-wp71 sl5 sl4-windowsphone71 sl3 sl2
""")
_MONO = _words("""
xamarinios xamarinios10 xamarinmac20 xamarintvos10 xamarinwatchos10 monoandroid monoandroid10 monoandroid403
monoandroid81 monoandroid10.0 monoandroid12.0 monotouch monotouch10 monomac xamarinpsthree xamarinpsfour
xamarinpsvita xamarinxboxone xamarinxboxthreesixty tizen tizen3 tizen40 tizen60 tizen3.0
""")
_OTHER_WORDS = _words("""
native native0.0 any Any agnostic unsupported dotnet dotnet5.0 dotnet50 dotnet51 dotnet5.6 dnx dnx45 dnx451
dnxcore50 aspnet50 aspnetcore50 netmf netmf43 netnano1.0 bogus net NET45 Net462 net4x 45 4.5 40 2 3.5 net45-
net45-foo net%2045 net4%35 net99999 net1.2.3.4 net1.2.3.4.5 net4. net.45 net45+ netcoreapp NETFramework4.5
.NETFramework4.5 .NETPortable0.0-Profile259 .NETPortable4.5-Profile111 .NETPortable0.0-win8+wp8+wpa81
Xamarin.iOS1.0 MonoAndroid10.0 UAP10.0.16299 WindowsPhoneApp8.1 Windows8.0 net4.5.1 net40-CF sl4-WP net45-wp
winrt4.5 netcore4.5 win8.1 net462-client dotnet5.4 dnxcore aspnet aspnetcore netstandard1.0-foo net5.0-client
uap10.0-foo foo45 xamarinplaystationvita a.b
""")
_OTHER = [*_OTHER_WORDS, "", "net45 ", " net45"]
_LONG_WORDS = _words("""
.NETFramework,Version=v4.6.2 .NETFramework,Version=v4.0,Profile=Client .NETCoreApp,Version=v8.0
.NETCoreApp,Version=v5.0,Profile=Client .NETStandard,Version=v2.0 .NETPortable,Version=v0.0,Profile=Profile7
.NETPortable,Version=v4.5,Profile=Profile259 .NETPortable,Version=v0.0,Profile=net45+win8
.NETPortable,Version=v0.0,Profile=net45-client NETFramework,Version=v4.5 .NET,Version=v8.0 Any,Version=v1.0
Foo,Version=v1.0 Foo,Version=1.0 .NETFramework,Version=v4 .NETFramework,Version=vx .NETFramework,
.NETFramework,Version=v4.5,Version=v4.6 , UAP,Version=v10.0.15064
Silverlight,Version=v4.0,Profile=WindowsPhone71 WindowsPhone,Version=v8.0 .NETCore,Version=v4.5 ...,Version=v1.0
Tizen,Version=v4.0 .NETPlatform,Version=v5.0 .NETPlatform,Version=v0.0 DNXCore,Version=v5.0
.NETFramework,Version=v4.5,Profile=Full MonoAndroid,Version=v10.0 .netframework,version=V4.5
.NETFramework,Version=v4.5.1.2 .NETFramework,Version=v10.0 .NETCoreApp,Version=v10.0 .NETFramework,Version=vv4.5
.NETFramework,Version=v+4.5 .NETFramework,Version=v4.5.1.2.3 Xamarin.iOS,Version=v1.0
.NETFramework,Profile=Client native,Version=v0.0 Unsupported,Version=v0.0 Agnostic,Version=v2.0
.NETFramework,Version=v4.5,Profile=CompactFramework asp.net,Version=v5.0
""")
_LONG = [*_LONG_WORDS, ".NETFramework, Version=v4.5", " , ", ".NETFramework,Version=v 4.5"]
PARSE_CASES = _NET + _CORE + _PLATFORMS + _STANDARD + _PORTABLE + _WINDOWS + _MONO + _OTHER + _LONG

#: ~70 frameworks for the compatibility cross product (every valid family, several versions each).
COMPAT_POOL = _words("""
net20 net35 net40 net40-client net45 net451 net46 net461 net462 net472 net48 net481 net463 net47 netcoreapp1.0
netcoreapp2.0 netcoreapp2.1 netcoreapp3.0 netcoreapp3.1 net5.0 net6.0 net7.0 net8.0 net10.0 net5.0-windows
net6.0-windows net8.0-windows10.0.19041 net8.0-windows10.0.17763 net6.0-android net6.0-android31.0
net8.0-android34.0 net6.0-ios net8.0-tizen netstandard1.0 netstandard1.1 netstandard1.3 netstandard1.6
netstandard2.0 netstandard2.1 portable-net45+win8 portable-net45+win8+wpa81+wp8 portable-net40+sl5+win8+wp8
portable-win81+wpa81 portable-net451+win81 uap10.0 uap10.0.15064 uap10.0.16299 win8 win81 netcore45 netcore50
wp8 wpa81 sl4 sl5 monoandroid10 monoandroid81 xamarinios10 xamarinmac20 monotouch10 tizen40 tizen60 native any
agnostic unsupported dotnet dotnet5.6 dnxcore50 netmf43 net45-foo win wp winrt45
""")

#: Realistic project frameworks for nearest.
PROJECTS = _words("""
net20 net35 net40 net40-client net45 net452 net46 net461 net462 net472 net48 net481 netcoreapp1.0 netcoreapp2.0
netcoreapp2.1 netcoreapp3.1 net5.0 net6.0 net7.0 net8.0 net10.0 net5.0-windows net6.0-windows
net8.0-windows10.0.19041 net7.0-windows10.0.19041 net6.0-android net6.0-android31.0 net7.0-android33.0
net8.0-android34.0 net6.0-ios net6.0-ios16.1 net6.0-maccatalyst16.1 net8.0-tizen netstandard1.0 netstandard1.3
netstandard2.0 netstandard2.1 uap10.0.16299 uap10.0 uap10.0.17763 win8 win81 wpa81 wp8 monoandroid10
monoandroid81 xamarinios10 xamarinmac20 xamarintvos10 tizen40 portable-net45+win8 portable-net45+win8+wpa81+wp8
portable-win81+wpa81 native any unsupported dnxcore50 sl5
""")


def _vector_groups() -> list[list[str]]:
    """The dependency groups' target frameworks of every nuspec in ../shared/vectors (a group without one is "")."""
    result = []
    for path in sorted(VECTORS.glob("*/*.nupkg")):
        with zipfile.ZipFile(path) as z:
            name = next(n for n in z.namelist() if n.endswith(".nuspec") and "/" not in n)
            root = ElementTree.fromstring(z.read(name))
        groups = [
            g.get("targetFramework", "")
            for deps in root.iter()
            if deps.tag.rpartition("}")[2] == "dependencies"
            for g in deps
            if g.tag.rpartition("}")[2] == "group"
        ]
        if groups:
            result.append(groups)
    return result


def _candidate_sets() -> list[list[str]]:
    sets = [[c or "any" for c in groups] for groups in _vector_groups()]
    sets += [
        ["netstandard2.0", "net6.0", "net462"],
        ["net45", "netstandard1.0", "netstandard2.0"],
        ["net461", "netstandard2.0"],
        ["netstandard1.3", "netstandard2.0", "netcoreapp2.1", "net5.0"],
        ["net40", "net40-client", "net45"],
        ["net40-client", "net35"],
        ["net6.0", "net6.0-windows", "net7.0-windows"],
        ["net6.0-windows10.0.17763", "net6.0-windows10.0.19041", "net6.0"],
        ["net6.0-android31.0", "monoandroid10", "netstandard2.0"],
        ["monoandroid81", "monoandroid10", "netstandard2.1"],
        ["xamarinios10", "netstandard2.0"],
        ["net8.0-tizen", "tizen40", "netstandard2.0"],
        ["tizen40", "tizen60", "net6.0"],
        ["portable-net45+win8", "portable-net45+win8+wpa81+wp8", "portable-net40+sl5+win8+wp8"],
        ["portable-net45+win8+wpa81+wp8", "netstandard1.0"],
        ["portable-net45+win8", "net40"],
        ["portable-net451+win81", "portable-net45+win8", "portable-win81+wpa81"],
        ["win8", "netcore45", "win"],
        ["win81", "netcore451", "wpa81"],
        ["uap10.0", "netcore50", "netstandard1.4"],
        ["dotnet5.6", "netstandard1.5", "net46"],
        ["dnxcore50", "dotnet", "net45"],
        ["any", "net45"],
        ["any"],
        ["unsupported", "net45"],
        ["unsupported"],
        ["agnostic", "net45"],
        ["native", "net45"],
        [],
        ["net45", "net45"],
        ["net45", "net4.5", "NET45"],
        ["net48", "net472", "net471", "net47", "net462"],
        ["net8.0", "net7.0", "net6.0", "netstandard2.1", "netstandard2.0", "net462"],
        ["netcoreapp3.1", "netcoreapp2.1", "netstandard2.0"],
        ["net5.0", "netcoreapp3.1"],
        ["net6.0-ios", "xamarinios10", "netstandard2.1"],
        ["sl4", "sl5", "net40"],
        ["wp8", "sl4-wp71", "wp7"],
        ["net45-foo", "net45"],
        ["portable-net45+win8", ".NETPortable,Version=v0.0,Profile=net45+win8"],
        [".NETPortable,Version=v0.0,Profile=net45+win8", "portable-net45+win8"],
        [".NETPortable,Version=v0.0,Profile=win8+net45", ".NETPortable,Version=v0.0,Profile=Profile7", "net40"],
        ["portable-net45+win8+wpa81+wp8", ".NETPortable,Version=v0.0,Profile=net45+win8+wp8+wpa81"],
        ["portable-net451+win81", "portable-net45+win8", ".NETPortable,Version=v0.0,Profile=net45+win8+wpa81"],
        ["net45-client", "net45-full"],
        ["netmf43", "net45"],
    ]
    return sets


def nearest_cases() -> list[tuple[str, list[str]]]:
    cases = [(project, candidates) for project in PROJECTS for candidates in _candidate_sets()]
    rng = random.Random(20261207)
    pool = [t for t in PARSE_CASES if _parses(t)]
    projects = PROJECTS + COMPAT_POOL
    usable_by = {p: [c for c in pool if is_compatible(P(p), P(c))] for p in projects}
    for _ in range(2500):  # random sets, mostly of frameworks the project can use (so that the reducer has work)
        project = rng.choice(projects)
        usable = usable_by[project]
        candidates = rng.sample(usable, min(len(usable), rng.randint(2, 7))) + rng.sample(pool, rng.randint(0, 2))
        cases.append((project, rng.sample(candidates, len(candidates))))
    return cases


def _parses(text: str) -> bool:
    try:
        return not P(text).is_unsupported
    except PackageFormatError:
        return False


# --------------------------------------------------------------------------------------------------- the comparison


def _version(text: str) -> tuple[int, ...]:
    return tuple(int(x) for x in text.split("."))


def _try(fn: Any) -> Any:
    try:
        return fn()
    except PackageFormatError as e:
        return f"ERROR {e}"


def _parse_diff(tfm: str, answer: dict[str, Any]) -> list[tuple[str, Any, Any]]:
    try:
        ours = P(tfm)
    except PackageFormatError as e:
        return [] if "error" in answer else [("raised", str(e), answer)]
    if "error" in answer:
        return [("parsed", ours, answer["error"])]
    mine: dict[str, Any] = {
        "framework": ours.framework,
        "version": ours.version,
        "profile": ours.profile,
        "platform": ours.platform,
        "platformVersion": ours.platform_version,
        "shortFolderName": _try(lambda: ours.short_folder_name),
        "dotNetFrameworkName": ours.dotnet_framework_name,
        "dotNetPlatformName": ours.dotnet_platform_name,
        "toString": _try(lambda: str(ours)),
        "isUnsupported": ours.is_unsupported,
        "isAny": ours.is_any,
        "isAgnostic": ours.is_agnostic,
        "isSpecificFramework": ours.is_specific,
        "isPCL": ours.is_pcl,
        "isPackageBased": ours.is_package_based,
    }
    theirs = dict(answer)
    theirs["version"], theirs["platformVersion"] = _version(answer["version"]), _version(answer["platformVersion"])
    diffs = []
    for key, value in mine.items():
        other = theirs[key]
        if (
            isinstance(value, str)
            and isinstance(other, str)
            and value.startswith("ERROR")
            and other.startswith("ERROR")
        ):
            continue
        if value != other:
            diffs.append((key, value, other))
    return diffs


@dataclass
class Tally:
    cases: int = 0
    agree: int = 0


def run_oracle(queries: list[dict[str, Any]], tmp_path: Path) -> list[dict[str, Any]]:
    batch = tmp_path / "frameworks.jsonl"
    batch.write_text("".join(json.dumps(q) + "\n" for q in queries))
    run = subprocess.run(
        ["bash", str(oracle.RUN_SCRIPT), "frameworks", "--batch", str(batch)],
        capture_output=True,
        timeout=600,
        check=True,
    )
    answers = [json.loads(line) for line in run.stdout.decode().splitlines() if line.strip()]
    assert len(answers) == len(queries)
    return answers


def _skip_without_oracle() -> None:
    reason = oracle.oracle_unavailable_reason()
    if reason:
        pytest.skip(reason)


@pytest.mark.oracle
def test_parse_against_nuget_frameworks(tmp_path: Path) -> None:
    _skip_without_oracle()
    answers = run_oracle([{"op": "parse", "tfm": t} for t in PARSE_CASES], tmp_path)
    mismatches = {t: d for t, a in zip(PARSE_CASES, answers, strict=True) if (d := _parse_diff(t, a))}
    print(f"parse: {len(PARSE_CASES) - len(mismatches)}/{len(PARSE_CASES)} agree")
    assert mismatches == {}


@pytest.mark.oracle
def test_compatibility_against_nuget_frameworks(tmp_path: Path) -> None:
    _skip_without_oracle()
    pairs = [(a, b) for a in COMPAT_POOL for b in COMPAT_POOL]
    answers = run_oracle([{"op": "compatible", "project": a, "package": b} for a, b in pairs], tmp_path)
    mismatches = [
        (a, b, is_compatible(P(a), P(b)), ans.get("compatible", ans.get("error")))
        for (a, b), ans in zip(pairs, answers, strict=True)
        if is_compatible(P(a), P(b)) != ans.get("compatible")
    ]
    print(f"compatible: {len(pairs) - len(mismatches)}/{len(pairs)} agree")
    assert mismatches == []


@pytest.mark.oracle
def test_nearest_against_nuget_frameworks(tmp_path: Path) -> None:
    _skip_without_oracle()
    cases = nearest_cases()
    answers = run_oracle([{"op": "nearest", "project": p, "candidates": c} for p, c in cases], tmp_path)
    mismatches = []
    for (project, candidates), answer in zip(cases, answers, strict=True):
        parsed = [P(c) for c in candidates]
        try:
            pick = get_nearest(P(project), parsed)
        except PackageFormatError as e:
            if "error" not in answer:
                mismatches.append((project, candidates, f"raised {e}", answer.get("nearest")))
            continue
        if "error" in answer:
            mismatches.append((project, candidates, pick, answer["error"]))
            continue
        index = next((i for i, c in enumerate(parsed) if c == pick), None)
        mine = (None if pick is None else pick.short_folder_name, None if index is None else candidates[index])
        if mine != (answer["nearest"], answer["nearestInput"]):
            mismatches.append((project, candidates, mine, (answer["nearest"], answer["nearestInput"])))
    print(f"nearest: {len(cases) - len(mismatches)}/{len(cases)} agree")
    assert mismatches == []


#: More real frameworks for the random rounds (versions of each family the lists above skip).
_MORE = _words("""
net47 net471 netcoreapp2.2 net9.0-ios18.0 net9.0-android35.0 net9.0-maccatalyst18.0 net8.0-macos14.0 net7.0-tizen
net6.0-tizen7.0 uap10.0.10240 uap10.0.14393 xamarinwatchos xamarintvos netstandard1.2 netstandard1.4 netstandard1.5
portable-net4+sl5+win8 portable-net40+sl4+win8+wp75 portable-net45+sl4+win8+wp75 portable-win81+wp81
portable-net45+wpa81 portable-net40+sl4 portable-net45+sl5 sl5-wp wp75 dnx451 aspnetcore50 monoandroid50 monoandroid90
xamarinmac net35-client netmf42
""")


@pytest.mark.oracle
@pytest.mark.slow
def test_random_rounds_against_nuget_frameworks(tmp_path: Path) -> None:
    """20,000 random compatibility pairs and 10,000 random nearest sets over every framework of the lists above."""
    _skip_without_oracle()
    pool = list(dict.fromkeys([t for t in PARSE_CASES if _parses(t) and P(t).framework.strip(".")] + _MORE))
    rng = random.Random(7)
    queries: list[dict[str, Any]] = [
        {"op": "compatible", "project": rng.choice(pool), "package": rng.choice(pool)} for _ in range(20000)
    ]
    queries += [
        {"op": "nearest", "project": rng.choice(pool), "candidates": rng.sample(pool, rng.randint(1, 8))}
        for _ in range(10000)
    ]
    mismatches = []
    for query, answer in zip(queries, run_oracle(queries, tmp_path), strict=True):
        if query["op"] == "compatible":
            if is_compatible(P(query["project"]), P(query["package"])) != answer.get("compatible"):
                mismatches.append((query, answer))
            continue
        parsed = [P(c) for c in query["candidates"]]
        pick = get_nearest(P(query["project"]), parsed)
        index = next((i for i, c in enumerate(parsed) if c == pick), None)
        if (None if index is None else query["candidates"][index]) != answer.get("nearestInput", "error"):
            mismatches.append((query, answer))
    print(f"random rounds: {len(queries) - len(mismatches)}/{len(queries)} agree")
    assert mismatches == []
