"""The lock file against the real ``dotnet restore`` (.NET Core SDK 3.1, NuGet 5.4), over a real ``nuseal serve
--no-signing`` on 127.0.0.1: a two-framework project with transitive dependencies and a signed nuget.org package gets a
``packages.lock.json`` byte-for-byte equal to dotnet's (order, indentation, legacy range strings, content hashes); and
the CI recipe of the README works: ``nuseal restore --locked-mode`` fills ``NUGET_PACKAGES``, then ``dotnet restore
--locked-mode`` finds everything in place with the feed stopped."""

from __future__ import annotations

import json
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

from feed.conftest import VECTORS, Feed, start_feed
from nuseal.cli.main import main

from .restore_support import dotnet_available, dotnet_restore, package, write_config, write_project

pytestmark = [pytest.mark.dotnet, pytest.mark.slow]

NS = "netstandard2.0"
PROPS = (
    "    <TargetFrameworks>netcoreapp3.1;netstandard2.0</TargetFrameworks>\n"
    "    <DisableImplicitFrameworkReferences>true</DisableImplicitFrameworkReferences>\n"
    "    <RestorePackagesWithLockFile>true</RestorePackagesWithLockFile>\n"
)


@pytest.fixture(scope="module")
def feed(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Feed]:
    reason = dotnet_available()
    if reason:
        pytest.skip(reason)
    f = start_feed(tmp_path_factory.mktemp("feed"))
    pushes = [
        package("Lock.Top", "1.0.0", {NS: [("Lock.Mid", "[1.0.0, 2.0.0)"), ("Lock.Leaf", "1.0.0")]}),
        package("Lock.Mid", "1.2.0", {"netcoreapp3.1": [], NS: [("Lock.Leaf", "1.1.0")]}),
        package("Lock.Leaf", "1.0.0"),
        package("Lock.Leaf", "1.1.0"),
        package("Alpha.Direct", "2.0.0-beta.1"),
        (VECTORS / "Newtonsoft.Json.12.0.3.nupkg").read_bytes(),
    ]
    for data in pushes:
        assert f.push(data).status_code == 201
    yield f
    f.stop()


def _project(folder: Path, feed: Feed) -> Path:
    write_project(
        folder,
        [("Lock.Top", "1.0.0"), ("Lock.Mid", "1.2.0"), ("Newtonsoft.Json", "12.0.3"), ("alpha.direct", "2.0.0-*")],
        framework="",
        properties=PROPS,
    )
    text = (folder / "App.csproj").read_text().replace("<TargetFramework></TargetFramework>\n", "")
    reference = '    <ProjectReference Include="..\\Lib\\Shared.Lib.csproj" />\n'
    text = text.replace("  <ItemGroup>\n", "  <ItemGroup>\n" + reference, 1)
    (folder / "App.csproj").write_text(text)
    # a referenced project: Lock.Leaf flows to App, Alpha.Direct (PrivateAssets=all) does not
    lib = folder.parent / "Lib"
    lib.mkdir(parents=True, exist_ok=True)
    (lib / "Shared.Lib.csproj").write_text(
        '<Project Sdk="Microsoft.NET.Sdk"><PropertyGroup><TargetFramework>netstandard2.0</TargetFramework>'
        "<DisableImplicitFrameworkReferences>true</DisableImplicitFrameworkReferences></PropertyGroup><ItemGroup>"
        '<PackageReference Include="Lock.Leaf" Version="1.1.0" />'
        '<PackageReference Include="Alpha.Direct" Version="2.0.0-beta.1" PrivateAssets="all" /></ItemGroup></Project>'
    )
    write_config(folder.parent, {"feed": feed.source})
    return folder


def test_lock_file_is_byte_for_byte_dotnets_and_the_ci_recipe_downloads_nothing(
    feed: Feed, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    monkeypatch.setenv("NUGET_HTTP_CACHE_PATH", str(tmp_path / "http-cache"))
    monkeypatch.setenv("NUGET_CERT_REVOCATION_MODE", "offline")
    theirs_dir = _project(tmp_path / "dotnet" / "App", feed)
    run = dotnet_restore(theirs_dir / "App.csproj", tmp_path / "gpf-dotnet", tmp_path / "home-dotnet")
    assert run.returncode == 0, run.stdout + run.stderr
    ours_dir = _project(tmp_path / "nuseal" / "App", feed)
    gpf = tmp_path / "gpf"
    code = main(["restore", str(ours_dir), "--packages", str(gpf)])
    captured = capsys.readouterr()
    assert code == 0, captured.err
    ours = (ours_dir / "packages.lock.json").read_bytes()
    theirs = (theirs_dir / "packages.lock.json").read_bytes()
    assert ours.decode() == theirs.decode()
    lock = json.loads(ours)
    assert list(lock["dependencies"]) == [".NETCoreApp,Version=v3.1", ".NETStandard,Version=v2.0"]
    core, standard = lock["dependencies"].values()
    assert "Lock.Leaf" not in core["Lock.Mid"].get("dependencies", {})  # empty netcoreapp3.1 group
    assert standard["Lock.Leaf"]["resolved"] == "1.1.0"
    assert core["shared.lib"] == {"type": "Project", "dependencies": {"Lock.Leaf": "1.1.0"}}
    # the content hash of a signed package is NuGet's (signature excluded), not the .nupkg's SHA-512
    folder = gpf / "newtonsoft.json" / "12.0.3"
    metadata = json.loads((folder / ".nupkg.metadata").read_text())
    assert core["Newtonsoft.Json"]["contentHash"] == metadata["contentHash"]
    assert metadata["contentHash"] != (folder / "newtonsoft.json.12.0.3.nupkg.sha512").read_text()

    # CI: nuseal restore --locked-mode into a fresh NUGET_PACKAGES, then dotnet restore --locked-mode offline
    shutil.copytree(ours_dir.parent, tmp_path / "ci")
    ci = tmp_path / "ci" / "App"
    fresh = tmp_path / "gpf-ci"
    assert main(["restore", str(ci), "--packages", str(fresh), "--locked-mode"]) == 0, capsys.readouterr().err
    feed.stop()
    run = dotnet_restore(ci / "App.csproj", fresh, tmp_path / "home-ci", "--locked-mode")
    assert run.returncode == 0, run.stdout + run.stderr
    assert "error" not in run.stdout.lower()
