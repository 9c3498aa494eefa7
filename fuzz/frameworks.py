"""Fuzz target: NuGet target frameworks (``nuseal.package.frameworks``: ``NuGetFramework.parse``, the names,
``is_compatible``, ``get_nearest``).

The input is decoded as UTF-8 (invalid bytes replaced) and parsed. For an accepted framework it computes every
name (a name NuGet cannot write may raise ``PackageFormatError``, as NuGet throws there) and asserts the laws the
restore relies on: a framework is compatible with itself and with "any"; "unsupported" is compatible with nothing
but itself and "any"; the nearest of a set holding the framework is the framework itself (an exact match wins);
whatever ``get_nearest`` picks from fixed candidates is one of them and compatible with the project; and a short
folder name parses back to an equal framework (for folder-name input with a known identifier; .NETPlatform and
portable profiles NuGet cannot number are left out, their names do not round-trip in NuGet either).
Allowed: :class:`nuseal.errors.NusealError`.
"""

from __future__ import annotations

import contextlib
import re

from fuzz._harness import Target, fuzz_main

NAME = "frameworks"
MAX_LEN = 512


def build() -> Target:
    from nuseal.errors import NusealError
    from nuseal.package.frameworks import ANY, UNSUPPORTED, NuGetFramework, get_nearest, is_compatible

    probes = [
        NuGetFramework.parse(s)
        for s in (
            "net462",
            "netstandard2.0",
            "net8.0",
            "net8.0-windows10.0.19041",
            "portable-net45+win8",
            "uap10.0",
            "monoandroid10",
            "any",
            "sl4-wp",
            "net40-client",
        )
    ]
    known = {p.framework.upper() for p in probes} | {"XAMARIN.IOS", "WINDOWS", "WINDOWSPHONE", "SILVERLIGHT", "TIZEN"}
    # A profile number as NuGet writes it (no leading zero): "Profile096" parses, and names its short folder name
    # after profile 96, which parses back as "Profile96", a different framework, in NuGet too (checked with the
    # oracle's frameworks parse, NuGet.Frameworks 6.14.3).
    profile_number = re.compile(r"Profile[1-9]\d*", re.IGNORECASE)

    def one_input(data: bytes) -> None:
        text = data.decode("utf-8", "replace")
        try:
            framework = NuGetFramework.parse(text)
        except NusealError:
            return
        for name in ("short_folder_name", "dotnet_framework_name", "dotnet_platform_name"):
            with contextlib.suppress(NusealError):
                getattr(framework, name)
        assert is_compatible(framework, framework), text
        assert is_compatible(framework, ANY), text
        if framework != ANY:
            assert not is_compatible(UNSUPPORTED, framework) or framework == UNSUPPORTED, text
        if framework != UNSUPPORTED:
            assert get_nearest(framework, [*probes, framework]) == framework, text
        for project in (framework, probes[0], probes[2]):
            candidates = [*probes, framework] if project is not framework else probes
            pick = get_nearest(project, candidates)
            assert pick is None or (any(pick is c for c in candidates) and is_compatible(project, pick)), text
        if (
            "," not in text
            and framework.is_specific
            and framework.framework.upper() in known
            and (not framework.is_pcl or profile_number.fullmatch(framework.profile))
        ):
            try:
                short = framework.short_folder_name
            except NusealError:
                return
            assert NuGetFramework.parse(short) == framework, (text, short)

    return one_input


if __name__ == "__main__":
    fuzz_main(build)
