"""``nuseal restore`` against the real ``dotnet restore`` (.NET Core SDK 3.1, NuGet 5.4) end to end, over a real
``nuseal serve --no-signing`` on 127.0.0.1 holding the real nuget.org vectors (as published, nuget.org signatures
untouched) and packages built here. What ``test_resolve_dotnet`` (versions and codes per graph) and
``test_lockfile_dotnet`` (lock file bytes on built packages, the CI recipe) leave out:

* the real vectors: the same closure (``project.assets.json``), the same ``packages.lock.json`` bytes, and the same
  global-packages folder (file set, bytes, modes, ``.nupkg.sha512``, ``.nupkg.metadata``);
* graphs that cannot resolve, several projects in one ``.sln`` (one dotnet run) with two sources (the feed and a
  local folder): the same NU1101, NU1102, NU1103, NU1605, NU1107, NU1608 and NU1603 messages, word for word (with
  NU1102/NU1103's line per source), not just the codes;
* locked mode, two projects in one ``.sln``: NU1004 for a project that no longer matches its lock file, NU1403 for a
  package whose content differs from the locked hash, from both tools.

Where NuGet 5.4 (the SDK here) and today's NuGet (6.14, the oracle whose ``PackageExtractor`` the extraction
follows: ``test_globalpackages_oracle``) differ, nuseal follows today's NuGet and the test names the difference.
"""

from __future__ import annotations

import base64
import hashlib
import json
import re
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

from feed.conftest import VECTORS, Feed
from nuseal.cli.main import main

from .restore_support import (
    NS,
    RESOLUTION_CASES,
    VECTOR_REFERENCES,
    Cases,
    case_packages,
    dotnet_assets,
    dotnet_feed,
    dotnet_restore,
    nuseal_graph,
    package,
    write_case_solution,
    write_config,
    write_project,
    write_sln,
)

pytestmark = [pytest.mark.dotnet, pytest.mark.slow]

CORE = ".NETCoreApp,Version=v3.1"

#: Graphs that cannot resolve cleanly (name -> packages, project references); ids get the prefix "<name>.". The
#: error cases of test_resolve_dotnet (codes there; here the messages), then deeper paths and transitive misses.
ERROR_CASES: Cases = {
    **{name: RESOLUTION_CASES[name] for name in ("downgrade", "conflict", "above", "missing")},
    "deepdown": (
        [
            ("A", "1.0.0", {NS: [("B", "1.0.0")]}),
            ("B", "1.0.0", {NS: [("C", "2.0.0")]}),
            ("C", "1.0.0", None),
            ("C", "2.0.0", None),
        ],
        [("A", "1.0.0"), ("C", "1.0.0")],
    ),
    "eclipsed": (
        [
            ("A", "1.0.0", {NS: [("X", "1.0.0")]}),
            ("X", "1.0.0", {NS: [("C", "[1.0.0, 2.0.0)")]}),
            ("B", "1.0.0", {NS: [("C", "3.0.0")]}),
            ("C", "1.0.0", None),
            ("C", "3.0.0", None),
        ],
        [("A", "1.0.0"), ("B", "1.0.0")],
    ),
    "conflict3": (
        [
            ("A", "1.0.0", {NS: [("X", "1.0.0")]}),
            ("X", "1.0.0", {NS: [("C", "[1.0.0]")]}),
            ("B", "1.0.0", {NS: [("Y", "1.0.0")]}),
            ("Y", "1.0.0", {NS: [("C", "[2.0.0]")]}),
            ("C", "1.0.0", None),
            ("C", "2.0.0", None),
        ],
        [("A", "1.0.0"), ("B", "1.0.0")],
    ),
    "transmissing": (
        [
            (
                "A",
                "1.0.0",
                {NS: [("Gone", "1.0.0"), ("B", "[5.0.0, )"), ("P", "1.0.0"), ("Q", "1.5.0"), ("R", "[1.0.0, 2.0.0)")]},
            ),
            ("B", "1.0.0", None),
            ("B", "2.0.0", None),
            ("P", "1.0.0-alpha", None),
            ("Q", "2.0.0", None),
            ("R", "0.9.0", None),
            ("R", "1.5.0-beta", None),
        ],
        [("A", "1.0.0")],
    ),
    "twosources": ([("M", "1.0.0", None)], [("M", "[5.0.0, )"), ("N", "[1.0.0, 2.0.0)")]),
}
#: A second source, a local folder listed after the feed: more versions of twosources.M, the only twosources.N.
LOCAL_PACKAGES = [("twosources.M", "1.1.0"), ("twosources.M", "1.2.0"), ("twosources.N", "1.5.0-beta")]


@pytest.fixture(scope="module")
def feed(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Feed]:
    pushes = [path.read_bytes() for path in sorted(VECTORS.glob("*.nupkg"))]
    files = {
        "build/Gpf.Files.targets": b"<Project />\n",
        "content/a b/r\u00e9sum\u00e9.txt": b"x",
        "README.md": b"# readme\n",
    }
    pushes.append(package("Gpf.Files", "1.0.0-rc.1+build.5", {NS: [("System.Buffers", "4.4.0")]}, files=files))
    pushes += case_packages(ERROR_CASES)
    pushes += [package("Locked.A", "1.0.0"), package("Locked.B", "1.0.0")]
    with dotnet_feed(tmp_path_factory.mktemp("feed"), pushes) as f:
        yield f


def _env(monkeypatch: pytest.MonkeyPatch, tmp: Path) -> None:
    monkeypatch.setenv("HOME", str(tmp / "home"))
    monkeypatch.setenv("NUGET_HTTP_CACHE_PATH", str(tmp / "http-cache"))
    monkeypatch.setenv("NUGET_CERT_REVOCATION_MODE", "offline")


def _tree(gpf: Path) -> dict[str, tuple[str, str]]:
    """Every file under the global-packages folder: relative path -> (sha256, mode)."""
    return {
        p.relative_to(gpf).as_posix(): (hashlib.sha256(p.read_bytes()).hexdigest(), f"{p.stat().st_mode & 0o777:o}")
        for p in sorted(gpf.rglob("*"))
        if p.is_file()
    }


# ------------------------------------------------------------------------------------- the real vectors
def test_vectors_same_closure_lock_file_and_global_packages_folder_as_dotnet(
    feed: Feed, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    _env(monkeypatch, tmp_path)
    refs = [*VECTOR_REFERENCES, ("Gpf.Files", "1.0.0-rc.1+build.5")]
    props = "    <RestorePackagesWithLockFile>true</RestorePackagesWithLockFile>\n"
    dirs = {}
    for who in ("dotnet", "nuseal"):
        dirs[who] = tmp_path / who / "App"
        write_project(dirs[who], refs, properties=props)
        write_config(dirs[who], {"feed": feed.source})
    run = dotnet_restore(dirs["dotnet"] / "App.csproj", tmp_path / "gpf-dotnet", tmp_path / "home-dotnet")
    assert run.returncode == 0, run.stdout + run.stderr
    code = main(["restore", str(dirs["nuseal"]), "--packages", str(tmp_path / "gpf"), "--json"])
    out = capsys.readouterr()
    assert code == 0, out.err + out.out

    # the closure: dotnet's assets file against nuseal's restored packages
    assets = json.loads((dirs["dotnet"] / "obj" / "project.assets.json").read_text())
    theirs = {k.lower() for k, v in assets["targets"][CORE].items() if v["type"] == "package"}
    ours = {f"{p['id']}/{p['version']}".lower() for p in json.loads(out.out)["packages"]}
    assert ours == theirs
    assert len(theirs) == len(refs) + 1  # System.Memory comes in transitively

    # the lock file, byte for byte
    lock_theirs = (dirs["dotnet"] / "packages.lock.json").read_text()
    assert (dirs["nuseal"] / "packages.lock.json").read_text() == lock_theirs

    # the global-packages folder
    _compare_folders(tmp_path / "gpf", tmp_path / "gpf-dotnet", feed.source)


def _compare_folders(our_gpf: Path, their_gpf: Path, source: str) -> None:
    """Same files, bytes and modes, same mtimes for the package's own files; ``.nupkg.metadata`` by content."""
    ours, theirs = _tree(our_gpf), _tree(their_gpf)
    assert sorted(ours) == sorted(theirs)
    # NuGet 5.4 extracts .signature.p7s too (as 6.14 does): it is in both file sets
    assert any(p.endswith("/.signature.p7s") for p in theirs)
    metadata = [p for p in ours if p.endswith("/.nupkg.metadata")]
    assert len(metadata) == len({tuple(p.split("/")[:2]) for p in ours})  # one per version folder
    changed = sorted(p for p in ours if ours[p] != theirs[p] and p not in metadata)
    assert not changed, changed
    own = (".nupkg", ".nupkg.sha512", ".nupkg.metadata")
    for rel in ours:
        if not rel.endswith(own):  # NuGet's own files get the time of the restore; the rest the zip entry's
            assert int((our_gpf / rel).stat().st_mtime) == int((their_gpf / rel).stat().st_mtime), rel
    for rel in metadata:
        mine, nuget54 = json.loads((our_gpf / rel).read_text()), json.loads((their_gpf / rel).read_text())
        # NuGet 5.4 writes version 1 without the source; later NuGet (6.14, which nuseal follows, checked byte
        # for byte in test_globalpackages_oracle) version 2 with the source. 5.4 reads version 2 (the CI recipe).
        assert nuget54 == {"version": 1, "contentHash": nuget54["contentHash"]}, rel
        assert mine == {"version": 2, "contentHash": nuget54["contentHash"], "source": source}, rel


# ------------------------------------------------------------------------------- graphs that cannot resolve
def _their_logs(project_dir: Path) -> set[tuple[str, str, str]]:
    return {(log["code"], log["level"].lower(), log["message"]) for log in dotnet_assets(project_dir).get("logs", [])}


def _our_logs(project: Path) -> set[tuple[str, str, str]]:
    return {(d.code.value, d.level.value, d.message) for d in nuseal_graph(project).diagnostics}


def test_unresolvable_graphs_same_nu_messages_as_dotnet(
    feed: Feed, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    _env(monkeypatch, tmp_path)
    local = tmp_path / "local"
    local.mkdir()
    for pid, ver in LOCAL_PACKAGES:
        (local / f"{pid}.{ver}.nupkg").write_bytes(package(pid, ver))
    root = tmp_path / "sln"
    sln = write_case_solution(root, ERROR_CASES, {"feed": feed.source, "local": str(local)})
    run = dotnet_restore(sln, tmp_path / "gpf-dotnet", tmp_path / "home-dotnet")
    assert run.returncode == 1, run.stdout
    codes: set[str] = set()
    differ = {}
    for name in ERROR_CASES:
        theirs = _their_logs(root / name)
        assert theirs, name
        ours = _our_logs(root / name / f"{name}.csproj")
        if ours != theirs:
            differ[name] = (sorted(ours - theirs), sorted(theirs - ours))
        codes |= {code for code, level, _ in theirs if level == "error"}
    assert not differ, json.dumps(differ, indent=1)
    assert codes == {"NU1101", "NU1102", "NU1103", "NU1605", "NU1107"}
    # nuseal restore of the whole solution fails with the same error codes and writes nothing
    gpf = tmp_path / "gpf"
    assert main(["restore", str(sln), "--packages", str(gpf), "--json"]) == 1
    doc = json.loads(capsys.readouterr().out)
    assert {e["code"] for e in doc["errors"]} == codes
    assert not gpf.exists() or not any(gpf.iterdir())
    # the command's text output: the error line names code and package, NuGet's per-source lines follow it
    assert main(["restore", str(root / "twosources"), "--packages", str(gpf)]) == 1
    lines = capsys.readouterr().err.splitlines()
    first = (
        "error NU1102: Unable to find package twosources.M with version (>= 5.0.0) [package twosources.M (>= 5.0.0)]"
    )
    at = lines.index(first)
    assert lines[at + 1 : at + 3] == [
        "  - Found 2 version(s) in local [ Nearest version: 1.2.0 ]",
        "  - Found 1 version(s) in feed [ Nearest version: 1.0.0 ]",
    ]


# ------------------------------------------------------------------------------------------- locked mode
def test_locked_mode_same_nu1004_and_nu1403_as_dotnet(
    feed: Feed, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    _env(monkeypatch, tmp_path)
    root = tmp_path / "sln"
    props = "    <RestorePackagesWithLockFile>true</RestorePackagesWithLockFile>\n"
    write_config(root, {"feed": feed.source})
    for name in ("Stale", "Replaced"):
        write_project(root / name, [("Locked.A", "1.0.0")], name=name, properties=props)
        assert main(["restore", str(root / name), "--packages", str(tmp_path / "gpf-lock")]) == 0
    capsys.readouterr()
    # Stale: the project gained a reference after its lock file was written
    write_project(root / "Stale", [("Locked.A", "1.0.0"), ("Locked.B", "1.0.0")], name="Stale", properties=props)
    # Replaced: the lock file records another content for Locked.A 1.0.0 (as if the source's copy was replaced)
    lock_path = root / "Replaced" / "packages.lock.json"
    lock = json.loads(lock_path.read_text())
    entry = lock["dependencies"][CORE]["Locked.A"]
    entry["contentHash"] = base64.b64encode(hashlib.sha512(b"the package as it was").digest()).decode()
    lock_path.write_text(json.dumps(lock, indent=2))
    sln = write_sln(root, ["Stale", "Replaced"])
    shutil.copytree(root, tmp_path / "ours")
    run = dotnet_restore(sln, tmp_path / "gpf-dotnet", tmp_path / "home-dotnet", "--locked-mode")
    (tmp_path / "dotnet.log").write_text(run.stdout + run.stderr)
    assert run.returncode == 1, run.stdout
    # dotnet names the project of NU1403 but reports NU1004 against the solution: NU1004 stops Stale before
    # anything is written (no assets file), Replaced's assets file logs NU1403 and nothing else
    found = _their_errors(run.stdout + run.stderr)
    assert {(where, code) for where, code, _ in found} == {("All", "NU1004"), ("Replaced", "NU1403")}
    assert not (root / "Stale" / "obj" / "project.assets.json").exists()
    assert {code for code, _level, _message in _their_logs(root / "Replaced")} == {"NU1403"}
    theirs = {("Replaced" if code == "NU1403" else "Stale"): (code, message) for _where, code, message in found}
    gpf = tmp_path / "gpf"
    for name in ("Stale", "Replaced"):
        code = main(["restore", str(tmp_path / "ours" / name), "--packages", str(gpf), "--locked-mode", "--json"])
        assert code == 1
        errors = json.loads(capsys.readouterr().out)["errors"]
        assert [e["code"] for e in errors] == [theirs[name][0]], errors
        # nuseal's message is dotnet's (NU1004: its first sentence), then what it adds (project and mismatch, the
        # source); it leaves out dotnet's advice on RestoreLockedMode and --force-evaluate (nuseal: no --locked-mode)
        expected = theirs[name][1] if name == "Replaced" else theirs[name][1].split(". ")[0]
        assert errors[0]["message"].startswith(expected.rstrip(".")), (errors[0]["message"], expected)
    # A deliberate difference: NuGet (5.4 and today's) checks the hash after extracting, so the package it refused
    # stays complete in its global-packages folder, where a restore without --locked-mode takes it as it is;
    # nuseal checks before anything is written (issue 15) and leaves nothing.
    assert (tmp_path / "gpf-dotnet" / "locked.a" / "1.0.0" / ".nupkg.metadata").is_file()
    assert not (gpf / "locked.a").exists()


def _their_errors(output: str) -> set[tuple[str, str, str]]:
    """(project or solution name, code, message) of dotnet's ``error NUxxxx: message [file]`` lines: the project is
    the ``<project> : error`` prefix when there is one, else the bracketed file; empty repeats are skipped."""
    found = set()
    for m in re.finditer(r"^(?:(\S+\.csproj) : )?.*?error (NU\d{4}): (.*?) \[([^\]]+)\]$", output, re.MULTILINE):
        if m.group(3).strip():
            found.add((Path(m.group(1) or m.group(4)).stem, m.group(2), m.group(3).strip()))
    return found
