"""NuGet's PackageReference resolution rules (nuseal.client.resolve), each on a graph of real .nupkg files in a local
folder source: lowest applicable version, direct dependency wins, nearest wins, cousins take the higher lower bound,
dependency groups by the nearest framework, floating ranges, prerelease rules, NU1101/NU1102/NU1103/NU1107/NU1108/
NU1603/NU1605/NU1608, source mapping, and the global-packages folder shortcut. ``test_resolve_dotnet.py`` checks the
same graphs against the real ``dotnet restore``."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from pathlib import Path

import pytest

from nuseal.client.feedclient import FeedClient
from nuseal.client.project import PackageReference
from nuseal.client.resolve import PackageProvider, TargetGraph, resolve
from nuseal.client.settings import load_settings
from nuseal.package.version_range import VersionRange

from .restore_support import package, write_config

Pkg = tuple[str, str, dict[str, Sequence[tuple[str, str]]] | None]


@pytest.fixture(autouse=True)
def _home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    monkeypatch.delenv("NUGET_PACKAGES", raising=False)


def _graph(
    tmp: Path,
    packages: Sequence[Pkg],
    references: Sequence[tuple[str, str]],
    *,
    framework: str = "netcoreapp3.1",
    gpf: Path | None = None,
    config_extra: str = "",
    sources: dict[str, Sequence[Pkg]] | None = None,
) -> TargetGraph:
    feeds = sources or {"local": packages}
    urls = {}
    for name, pkgs in feeds.items():
        folder = tmp / f"feed-{name}"
        folder.mkdir(parents=True, exist_ok=True)
        for pid, ver, groups in pkgs:
            (folder / f"{pid}.{ver}.nupkg").write_bytes(package(pid, ver, groups))
        urls[name] = str(folder)
    write_config(tmp / "proj", urls, extra=config_extra)
    settings = load_settings(tmp / "proj")

    async def run() -> TargetGraph:
        async with FeedClient(settings.enabled_sources) as feed:
            provider = PackageProvider(feed, settings, global_folder=gpf)
            refs = [PackageReference(i, VersionRange.parse(v), v) for i, v in references]
            return await resolve(refs, framework, provider, project_name="App")

    return asyncio.run(run())


def _picked(graph: TargetGraph) -> dict[str, str]:
    return {p.id: str(p.version) for p in graph.packages}


def _codes(graph: TargetGraph) -> list[str]:
    return sorted(d.code.value for d in graph.diagnostics)


NS = "netstandard2.0"


def test_lowest_applicable_version_and_nu1603_when_the_lower_bound_is_missing(tmp_path: Path) -> None:
    pkgs: list[Pkg] = [
        ("A", "1.0.0", {NS: [("B", "1.0.5")]}),
        ("B", "1.0.0", None),
        ("B", "1.1.0", None),
        ("B", "2.0.0", None),
    ]
    graph = _graph(tmp_path, pkgs, [("A", "1.0.0")])
    assert _picked(graph) == {"A": "1.0.0", "B": "1.1.0"}
    assert _codes(graph) == ["NU1603"]
    assert "B 1.0.5 was not found" in graph.warnings[0].message


def test_direct_dependency_wins_and_a_lower_direct_version_is_nu1605(tmp_path: Path) -> None:
    pkgs: list[Pkg] = [("A", "1.0.0", {NS: [("B", "2.0.0")]}), ("B", "1.0.0", None), ("B", "2.0.0", None)]
    graph = _graph(tmp_path, pkgs, [("A", "1.0.0"), ("B", "1.0.0")])
    assert _picked(graph) == {"A": "1.0.0", "B": "1.0.0"}
    assert _codes(graph) == ["NU1605"]
    assert "Detected package downgrade: B from 2.0.0 to 1.0.0" in graph.errors[0].message
    # a direct reference at or above the package's range is simply used
    graph = _graph(tmp_path / "2", pkgs, [("A", "1.0.0"), ("B", "2.0.0")])
    assert _picked(graph) == {"A": "1.0.0", "B": "2.0.0"}
    assert _codes(graph) == []


def test_nearest_wins_over_a_deeper_lower_range(tmp_path: Path) -> None:
    pkgs: list[Pkg] = [
        ("A", "1.0.0", {NS: [("B", "1.5.0"), ("C", "1.0.0")]}),
        ("C", "1.0.0", {NS: [("B", "1.0.0")]}),
        ("B", "1.0.0", None),
        ("B", "1.5.0", None),
    ]
    graph = _graph(tmp_path, pkgs, [("A", "1.0.0")])
    assert _picked(graph) == {"A": "1.0.0", "B": "1.5.0", "C": "1.0.0"}
    assert _codes(graph) == []


def test_cousins_take_the_higher_lower_bound_and_the_loser_subtree_is_dropped(tmp_path: Path) -> None:
    pkgs: list[Pkg] = [
        ("A", "1.0.0", {NS: [("C", "1.0.0")]}),
        ("B", "1.0.0", {NS: [("C", "2.0.0")]}),
        ("C", "1.0.0", {NS: [("OnlyInOldC", "1.0.0")]}),
        ("C", "2.0.0", None),
        ("OnlyInOldC", "1.0.0", None),
    ]
    graph = _graph(tmp_path, pkgs, [("A", "1.0.0"), ("B", "1.0.0")])
    assert _picked(graph) == {"A": "1.0.0", "B": "1.0.0", "C": "2.0.0"}
    assert _codes(graph) == []


def test_exact_ranges_that_cannot_both_hold_are_nu1107(tmp_path: Path) -> None:
    pkgs: list[Pkg] = [
        ("A", "1.0.0", {NS: [("C", "[1.0.0]")]}),
        ("B", "1.0.0", {NS: [("C", "[2.0.0]")]}),
        ("C", "1.0.0", None),
        ("C", "2.0.0", None),
    ]
    graph = _graph(tmp_path, pkgs, [("A", "1.0.0"), ("B", "1.0.0")])
    assert _codes(graph) == ["NU1107"]  # and no NU1608 for the same id, as dotnet logs it
    assert "Version conflict detected for C" in graph.errors[0].message


def test_a_direct_reference_above_a_package_upper_bound_is_nu1608(tmp_path: Path) -> None:
    pkgs: list[Pkg] = [("A", "1.0.0", {NS: [("C", "[1.0.0, 2.0.0)")]}), ("C", "1.0.0", None), ("C", "3.0.0", None)]
    graph = _graph(tmp_path, pkgs, [("A", "1.0.0"), ("C", "3.0.0")])
    assert _picked(graph) == {"A": "1.0.0", "C": "3.0.0"}
    assert _codes(graph) == ["NU1608"]
    assert "A 1.0.0 requires C (>= 1.0.0 && < 2.0.0) but version C 3.0.0 was resolved" in graph.warnings[0].message


def test_nothing_fits_nu1101_nu1102_nu1103(tmp_path: Path) -> None:
    pkgs: list[Pkg] = [("B", "1.0.0", None), ("B", "3.0.0", None), ("P", "1.0.0-beta", None), ("P", "2.0.0-rc", None)]
    graph = _graph(tmp_path, pkgs, [("Nope", "1.0.0"), ("B", "[2.0.0, 3.0.0)"), ("P", "1.0.0")])
    assert _codes(graph) == ["NU1101", "NU1102", "NU1103"]
    by_code = {d.code.value: d.message for d in graph.diagnostics}
    assert "No packages exist with this id" in by_code["NU1101"]
    assert "Nearest version: 3.0.0" in by_code["NU1102"]
    assert "stable" in by_code["NU1103"]


def test_dependency_group_of_the_nearest_framework_and_an_empty_group_means_none(tmp_path: Path) -> None:
    groups = {"net45": [("ForNet45", "1.0.0")], NS: [("ForNetStandard", "1.0.0")], "netcoreapp2.1": []}
    pkgs: list[Pkg] = [("A", "1.0.0", groups), ("ForNet45", "1.0.0", None), ("ForNetStandard", "1.0.0", None)]
    assert _picked(_graph(tmp_path / "core", pkgs, [("A", "1.0.0")])) == {"A": "1.0.0"}
    picked = _picked(_graph(tmp_path / "ns", pkgs, [("A", "1.0.0")], framework="netstandard2.0"))
    assert picked == {"A": "1.0.0", "ForNetStandard": "1.0.0"}
    picked = _picked(_graph(tmp_path / "fx", pkgs, [("A", "1.0.0")], framework="net472"))
    assert picked == {"A": "1.0.0", "ForNet45": "1.0.0"}


def test_floating_and_prerelease_ranges(tmp_path: Path) -> None:
    pkgs: list[Pkg] = [
        ("F", "1.0.0", None),
        ("F", "1.2.0", None),
        ("F", "2.0.0", None),
        ("S", "1.1.0-beta", None),
        ("S", "1.2.0", None),
        ("R", "1.0.0-alpha", None),
        ("R", "1.0.0-beta", None),
    ]
    graph = _graph(tmp_path, pkgs, [("F", "1.*"), ("S", "1.0.0"), ("R", "1.0.0-*")])
    assert _picked(graph) == {"F": "1.2.0", "S": "1.2.0", "R": "1.0.0-beta"}


def test_cycle_is_nu1108(tmp_path: Path) -> None:
    pkgs: list[Pkg] = [("A", "1.0.0", {NS: [("B", "1.0.0")]}), ("B", "1.0.0", {NS: [("A", "1.0.0")]})]
    graph = _graph(tmp_path, pkgs, [("A", "1.0.0")])
    assert _codes(graph) == ["NU1108"]


def test_package_source_mapping_decides_where_an_id_may_come_from(tmp_path: Path) -> None:
    mapping = (
        "  <packageSourceMapping>\n"
        '    <packageSource key="public"><package pattern="*" /></packageSource>\n'
        '    <packageSource key="private"><package pattern="Contoso.*" /></packageSource>\n'
        "  </packageSourceMapping>\n"
    )
    sources: dict[str, Sequence[Pkg]] = {
        "public": [("Contoso.Core", "9.9.9", None), ("Other", "1.0.0", None)],
        "private": [("Contoso.Core", "1.0.0", None)],
    }
    graph = _graph(tmp_path, [], [("Contoso.Core", "1.0.0"), ("Other", "1.0.0")], sources=sources, config_extra=mapping)
    assert _picked(graph) == {"Contoso.Core": "1.0.0", "Other": "1.0.0"}
    chosen = {p.id: p.source.name for p in graph.packages}
    assert chosen == {"Contoso.Core": "private", "Other": "public"}


def test_exact_lower_bound_in_the_global_packages_folder_needs_no_source(tmp_path: Path) -> None:
    gpf = tmp_path / "gpf"
    folder = gpf / "cached" / "1.0.0"
    folder.mkdir(parents=True)
    (folder / "cached.nuspec").write_text(
        '<?xml version="1.0"?><package><metadata><id>Cached</id><version>1.0.0</version><authors>a</authors>'
        "<description>d</description></metadata></package>"
    )
    (folder / ".nupkg.metadata").write_text('{"version": 2, "contentHash": "x", "source": "s"}')
    graph = _graph(tmp_path, [], [("Cached", "1.0.0")], gpf=gpf)
    assert _picked(graph) == {"Cached": "1.0.0"}
    assert graph.packages[0].from_global_folder
    # without .nupkg.metadata the folder is not a complete install: the source is asked (and has nothing)
    (folder / ".nupkg.metadata").unlink()
    assert _codes(_graph(tmp_path / "2", [], [("Cached", "1.0.0")], gpf=gpf)) == ["NU1101"]
