"""Fuzz target: NuGet version parsing (``nuseal.package.version.NuGetVersion``).

The input is decoded as UTF-8 (invalid bytes replaced) and parsed. For an accepted version it asserts the
round trips and ordering laws the feed and the restore rely on: the normalized and full strings parse back
to an equal version with the same normalized form (normalization is idempotent), ``str`` is the normalized
form, equal versions hash alike, and comparison with a few fixed versions is a total order consistent in
both directions (ranges are the ``version_range`` target).
Allowed: :class:`nuseal.errors.NusealError` (``parse`` documents ``PackageFormatError``).
"""

from __future__ import annotations

from fuzz._harness import Target, fuzz_main

NAME = "version"
MAX_LEN = 256


def build() -> Target:
    from nuseal.errors import NusealError
    from nuseal.package.version import NuGetVersion

    probes = [NuGetVersion.parse(s) for s in ("0.0.0-0", "1.0.0-alpha", "1.0.0-alpha.1", "1.0.0", "1.0.0.1")]

    def one_input(data: bytes) -> None:
        text = data.decode("utf-8", "replace")
        try:
            version = NuGetVersion.parse(text)
        except NusealError:
            return
        assert str(version) == version.normalized
        again = NuGetVersion.parse(version.normalized)
        assert again == version and again.normalized == version.normalized, (text, version.normalized)
        assert hash(again) == hash(version)
        full = NuGetVersion.parse(version.full)
        assert full == version and full.full == version.full, (text, version.full)
        for probe in probes:
            lt, eq, gt = version < probe, version == probe, version > probe
            assert lt + eq + gt == 1, (text, str(probe))
            assert (probe > version) == lt and (probe < version) == gt, (text, str(probe))

    return one_input


if __name__ == "__main__":
    fuzz_main(build)
