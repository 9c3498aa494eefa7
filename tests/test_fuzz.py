"""The fuzz targets (``fuzz/``): regression tests for what they found, and the CI smoke run.

Each regression test replays the input the fuzzer found (minimized by hand) and failed before its fix.
The smoke run (``slow``; CI runs it) runs every target for a few seconds under libFuzzer, seeded from
``../shared/vectors``, and fails when a target finds an exception other than nuseal's own errors, an input
past the time bound or memory past the bound. The long run is ``make fuzz`` (docs/feed.md).
"""

from __future__ import annotations

import pytest

from nuseal.errors import ConfigError, PackageFormatError
from nuseal.package.nuspec import Nuspec
from nuseal.package.version import MAX_VERSION_LENGTH, NuGetVersion
from nuseal.trust.config import parse_nuget_config

# --------------------------------------------------------------------------- regressions (found by fuzz/)
XML_DECLARATIONS = [
    pytest.param(b'<?xml version="1.0" encoding="utf-1"?>', id="unknown-encoding"),  # LookupError before
    pytest.param(b'<?xml version="1.0" encoding="utf-7"?>', id="multi-byte-encoding"),  # ValueError before
    pytest.param(b'<?xml version="1.0" encoding="shift_jis"?>', id="shift-jis"),
]


@pytest.mark.parametrize("declaration", XML_DECLARATIONS)
def test_nuspec_with_an_unusable_xml_encoding_is_a_format_error(declaration: bytes) -> None:
    """expat raises LookupError/ValueError for these declarations; the reader must name the problem instead."""
    with pytest.raises(PackageFormatError, match="encoding"):
        Nuspec.parse(declaration + b"<package><metadata><id>a</id></metadata></package>")


@pytest.mark.parametrize("declaration", XML_DECLARATIONS)
def test_nuget_config_with_an_unusable_xml_encoding_is_a_config_error(declaration: bytes) -> None:
    with pytest.raises(ConfigError, match="encoding"):
        parse_nuget_config(declaration + b"<configuration/>", source="x/nuget.config")


def test_a_version_whose_normalized_form_is_too_long_is_refused() -> None:
    """``1-<62 characters>`` fit the length limit, but its normalized form ``1.0.0-<62 characters>`` (what the
    feed stores and serves) did not, so nuseal accepted a version whose own normalized form it then refused.
    Found by the ``version`` target's round-trip assertion."""
    label = "a" * (MAX_VERSION_LENGTH - 2)
    with pytest.raises(PackageFormatError, match="once normalized"):
        NuGetVersion.parse(f"1-{label}")
    fits = NuGetVersion.parse(f"1.0.0-{label[:-4]}")
    assert NuGetVersion.parse(fits.normalized) == fits
    # A long spelling whose normalized form is short stays accepted.
    assert NuGetVersion.parse("0001.0002.0003.0000-" + "b" * 44).normalized == "1.2.3-" + "b" * 44
