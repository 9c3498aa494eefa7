"""NuGet version parsing, normalization and ordering (rules of NuGet.Versioning)."""

from __future__ import annotations

import random

import pytest
from hypothesis import given
from hypothesis import strategies as st

from nuseal.errors import PackageFormatError
from nuseal.package import NuGetVersion, is_valid_id
from nuseal.package.nuspec import Nuspec


@pytest.mark.parametrize(
    ("text", "normalized"),
    [
        ("1", "1.0.0"),
        ("1.0", "1.0.0"),
        ("01.02.03", "1.2.3"),
        ("1.2.3.0", "1.2.3"),
        ("1.2.3.4", "1.2.3.4"),
        ("1.0.0-Beta", "1.0.0-Beta"),
        ("1.0.0-beta.1+build.5", "1.0.0-beta.1"),
        (" 2.0.0 ", "2.0.0"),
    ],
)
def test_normalization(text: str, normalized: str) -> None:
    assert NuGetVersion.parse(text).normalized == normalized


@pytest.mark.parametrize(
    "text", ["", "a.b", "1.2.3.4.5", "1.0-", "1.0+", "1.0-beta..1", "1.0-01", "1.0-b_c", "-1.0", "1.0.0-beta+x_y"]
)
def test_invalid_versions(text: str) -> None:
    with pytest.raises(PackageFormatError):
        NuGetVersion.parse(text)


def test_ordering_is_semver2_with_case_insensitive_labels() -> None:
    ordered = ["1.0.0-alpha", "1.0.0-alpha.1", "1.0.0-alpha.beta", "1.0.0-BETA", "1.0.0-beta.2", "1.0.0-beta.11",
               "1.0.0-rc.1", "1.0.0", "1.0.0.1", "1.0.1"]
    parsed = [NuGetVersion.parse(v) for v in ordered]
    shuffled = parsed.copy()
    random.Random(7).shuffle(shuffled)
    assert sorted(shuffled) == parsed
    assert NuGetVersion.parse("1.0.0-Beta") == NuGetVersion.parse("1.0.0-beta")
    assert NuGetVersion.parse("1.0.0+a") == NuGetVersion.parse("1.0.0+b")


@given(st.lists(st.integers(min_value=0, max_value=10**6), min_size=1, max_size=4))
def test_normalized_round_trips(parts: list[int]) -> None:
    v = NuGetVersion.parse(".".join(map(str, parts)))
    assert NuGetVersion.parse(v.normalized) == v
    assert NuGetVersion.parse(v.normalized).normalized == v.normalized


@pytest.mark.parametrize(("pid", "ok"), [("Newtonsoft.Json", True), ("a-b_c.d", True), ("a..b", False),
                                         (".a", False), ("a b", False), ("x" * 101, False), ("", False)])
def test_package_ids(pid: str, ok: bool) -> None:
    assert is_valid_id(pid) is ok


def test_nuspec_rejects_entities_and_missing_fields() -> None:
    bomb = b'<?xml version="1.0"?><!DOCTYPE x [<!ENTITY a "aaaa">]><package><metadata><id>&a;</id></metadata></package>'
    with pytest.raises(PackageFormatError, match="not valid XML"):
        Nuspec.parse(bomb)
    with pytest.raises(PackageFormatError, match="no <version>"):
        Nuspec.parse(b"<package><metadata><id>a</id><authors>x</authors><description>d</description></metadata></package>")
    with pytest.raises(PackageFormatError, match="not valid"):
        Nuspec.parse(b"<package><metadata><id>a..b</id><version>1.0</version></metadata></package>")
