"""Every real nuget.org package in shared/vectors goes in and comes back byte for byte.

The feed reads the vectors' signatures at push (its clock starts at ``VECTOR_NOW``: ``support.clock``), so no
push depends on the day the test runs."""

from __future__ import annotations

import zipfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from nuseal.package import PackageArchive
from support.clock import VECTOR_ENV

from .conftest import VECTORS, Feed, start_feed

VECTOR_FILES = sorted(VECTORS.glob("*.nupkg"))


@pytest.fixture(scope="module")
def vector_feed(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Feed]:
    """One SQLite feed for the module, on the vectors' clock."""
    f = start_feed(tmp_path_factory.mktemp("feed"), env=VECTOR_ENV)
    yield f
    f.stop()


def test_there_are_vectors() -> None:
    assert len(VECTOR_FILES) == 12


@pytest.mark.parametrize("path", VECTOR_FILES, ids=lambda p: p.name)
def test_vector_round_trip(vector_feed: Feed, path: Path) -> None:
    data = path.read_bytes()
    nuspec = PackageArchive.from_bytes(data).nuspec()  # independent reading of id and version
    r = vector_feed.push(data)
    assert r.status_code == 201, r.text
    id_lower, ver = nuspec.id.lower(), nuspec.version.normalized.lower()
    with vector_feed.client() as c:
        assert ver in c.get(f"/v3/flatcontainer/{id_lower}/index.json").json()["versions"]
        reg = c.get(f"/v3/registration-semver2/{id_lower}/index.json").json()
        entry = next(
            i
            for p in reg["items"]
            for i in p["items"]
            if i["catalogEntry"]["version"].lower() == nuspec.version.full.lower()
        )
        assert entry["catalogEntry"]["published"].startswith("2026-06-01T")  # the feed's clock: VECTOR_NOW on
        got = c.get(entry["packageContent"])
        assert got.status_code == 200
        assert got.content == data
        nuspec_name = next(n for n in zipfile.ZipFile(path).namelist() if n.endswith(".nuspec") and "/" not in n)
        served = c.get(f"/v3/flatcontainer/{id_lower}/{ver}/{id_lower}.nuspec").content
        assert served == zipfile.ZipFile(path).read(nuspec_name)
    assert vector_feed.push(data).status_code == 409
