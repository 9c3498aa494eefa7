"""Microsoft's NuGet.exe 5.8 (Mono) against a running `nuseal serve`: push, 409, search, list, install, delete.

NuGet.exe on Mono cannot sign or verify; these tests use it for the protocol only.
"""

from __future__ import annotations

import zipfile
from pathlib import Path
from urllib.parse import unquote

import pytest

from nuseal.package import PackageArchive

from .conftest import VECTORS, Feed, NuGetExe, make_package

pytestmark = [pytest.mark.nugetexe, pytest.mark.slow]


def _extracted_match(package: Path, folder: Path) -> None:
    """Every payload file NuGet extracted equals the package's entry, byte for byte."""
    with zipfile.ZipFile(package) as z:
        names = [n for n in z.namelist() if not n.endswith("/")]
        payload = [
            n
            for n in names
            if not n.startswith(("_rels/", "package/"))
            and n not in ("[Content_Types].xml", ".signature.p7s")
            and not (n.endswith(".nuspec") and "/" not in n)
        ]
        assert payload
        for name in payload:
            target = folder / unquote(name)
            assert target.is_file(), name
            assert target.read_bytes() == z.read(name), name


def test_push_409_search_list_install_delete(feed: Feed, nuget: NuGetExe, tmp_path: Path) -> None:
    pkg = tmp_path / "Nuseal.Demo.1.0.0.nupkg"
    pkg.write_bytes(make_package("Nuseal.Demo", "1.0.0", files={"content/readme.txt": b"hello from nuseal\n"}))
    key = feed.keys["alice"]

    out = nuget.run("push", str(pkg), "-Source", feed.source, "-ApiKey", key).stdout
    assert "Your package was pushed" in out

    again = nuget.run("push", str(pkg), "-Source", feed.source, "-ApiKey", key, check=False)
    assert again.returncode != 0
    assert "409" in again.stdout + again.stderr
    assert "already exists" in again.stdout + again.stderr  # our X-NuGet-Warning message, printed by NuGet

    found = nuget.run("search", "nuseal", "-Source", feed.source).stdout
    assert "Nuseal.Demo | 1.0.0" in found

    listed = nuget.run("list", "-Source", feed.source).stdout
    assert "Nuseal.Demo 1.0.0" in listed.splitlines()

    out_dir = tmp_path / "installed"
    nuget.run("install", "Nuseal.Demo", "-Version", "1.0.0", "-OutputDirectory", str(out_dir), "-Source", feed.source)
    folder = out_dir / "Nuseal.Demo.1.0.0"
    assert (folder / "Nuseal.Demo.1.0.0.nupkg").read_bytes() == pkg.read_bytes()
    _extracted_match(pkg, folder)

    deleted = nuget.run("delete", "Nuseal.Demo", "1.0.0", "-Source", feed.source, "-ApiKey", key).stdout
    assert "was deleted successfully" in deleted
    with feed.client() as c:
        leaf = c.get("/v3/registration-semver2/nuseal.demo/1.0.0.json").json()
        assert leaf["listed"] is False
        assert c.get("/v3/search", params={"q": "nuseal.demo"}).json()["totalHits"] == 0
    assert "Nuseal.Demo" not in nuget.run("list", "-Source", feed.source).stdout
    # unlisted, still installable at its exact version (what restore of a pinned version does)
    out2 = tmp_path / "installed2"
    nuget.run("install", "Nuseal.Demo", "-Version", "1.0.0", "-OutputDirectory", str(out2), "-Source", feed.source)
    assert (out2 / "Nuseal.Demo.1.0.0" / "Nuseal.Demo.1.0.0.nupkg").read_bytes() == pkg.read_bytes()


def test_every_vector_installs_byte_identical(feed: Feed, nuget: NuGetExe, tmp_path: Path) -> None:
    vectors = sorted(VECTORS.glob("*.nupkg"))
    assert len(vectors) == 12
    for path in vectors:
        nuget.run("push", str(path), "-Source", feed.source, "-ApiKey", feed.keys["alice"])
    out_dir = tmp_path / "installed"
    for path in vectors:
        nuspec = PackageArchive.from_path(path).nuspec()
        nuget.run(
            "install",
            nuspec.id,
            "-Version",
            nuspec.version.normalized,
            "-OutputDirectory",
            str(out_dir),
            "-Source",
            feed.source,
            "-DependencyVersion",
            "Ignore",
            "-DirectDownload",
        )
        folder = out_dir / f"{nuspec.id}.{nuspec.version.normalized}"
        assert folder.is_dir(), sorted(p.name for p in out_dir.iterdir())
        assert (folder / f"{nuspec.id}.{nuspec.version.normalized}.nupkg").read_bytes() == path.read_bytes()
        _extracted_match(path, folder)
