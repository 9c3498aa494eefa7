"""Fuzz target: NuGet version-range parsing (``nuseal.package.version_range.VersionRange``, ``FloatRange``).

The input is decoded as UTF-8 (invalid bytes replaced). ``try_parse`` must agree with ``parse`` (``None`` exactly
when ``parse`` raises ``PackageFormatError``). For an accepted range it asserts that the normalized string parses
back to the same normalized string, with the same bounds and inclusivity (for a floating range, the same but
the lower bound: NuGet's ``1.1*`` floats from 1.10.0 yet normalizes to ``[1.*, )``), that ``satisfies`` answers
the same for both, and that the float's own ``satisfies`` answers for fixed versions without raising.
Allowed: :class:`nuseal.errors.NusealError`.
"""

from __future__ import annotations

from fuzz._harness import Target, fuzz_main

NAME = "version_range"
MAX_LEN = 512


def build() -> Target:
    from nuseal.errors import NusealError
    from nuseal.package.version import NuGetVersion
    from nuseal.package.version_range import VersionRange

    probes = [
        NuGetVersion.parse(s)
        for s in ("0.0.0-0", "0.9", "1.0.0-alpha", "1.0.0", "1.0.1-beta.2", "1.5", "2.0.0", "2.0.0.1", "10.0.0-rc")
    ]

    def shape(r: VersionRange) -> tuple[object, ...]:
        return (r.min_version, r.is_min_inclusive, r.max_version, r.is_max_inclusive, r.is_floating)

    def one_input(data: bytes) -> None:
        text = data.decode("utf-8", "replace")
        found = VersionRange.try_parse(text)
        try:
            parsed = VersionRange.parse(text)
        except NusealError:
            assert found is None, (text, found)
            return
        assert found is not None and shape(found) == shape(parsed), text
        again = VersionRange.parse(parsed.normalized)
        assert again.normalized == parsed.normalized, (text, parsed.normalized, again.normalized)
        if parsed.is_floating:
            # NuGet quirk kept: "1.1*" floats from 1.10.0 but normalizes to "[1.*, )", which floats from 1.0.0.
            assert shape(again)[1:] == shape(parsed)[1:], (text, parsed.normalized)
        else:
            assert shape(again) == shape(parsed), (text, parsed.normalized)
        for probe in probes:
            if not parsed.is_floating:
                assert parsed.satisfies(probe) == again.satisfies(probe), (text, str(probe))
            if parsed.float_range is not None:
                parsed.float_range.satisfies(probe)

    return one_input


if __name__ == "__main__":
    fuzz_main(build)
