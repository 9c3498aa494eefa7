"""The issue's "real packages" end-to-end test: a real ``nuseal serve --no-signing`` on 127.0.0.1 holding the
nuget.org packages of ``../shared/vectors/nuget.org`` as published, a project referencing the ones that resolve among
themselves for netcoreapp3.1 (SQLitePCLRaw.core brings System.Memory transitively), ``nuseal restore`` into an empty
global-packages folder, and every version folder equal to what NuGet's own ``PackageExtractor`` writes (the oracle's
``extract``: same files, bytes, modes, mtimes, ``.nupkg.sha512`` and ``.nupkg.metadata`` bytes with the same source).
Then a second restore downloads nothing, and ``--locked-mode`` with the written lock file succeeds.
"""

from __future__ import annotations

import json
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from feed.conftest import VECTORS, Feed, start_feed
from nuseal.cli.main import main
from nuseal.package import PackageArchive
from support import oracle

from .globalpackages_support import CODESIGN, SCRIPT, TIMESTAMP, oracle_tree, our_tree
from .restore_support import VECTOR_REFERENCES, write_config, write_project

pytestmark = [pytest.mark.oracle, pytest.mark.slow, pytest.mark.usefixtures("vector_clock")]  # at VECTOR_NOW

@pytest.fixture(scope="module")
def feed(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Feed]:
    f = start_feed(tmp_path_factory.mktemp("feed"))
    for path in sorted(VECTORS.glob("*.nupkg")):
        r = f.push(path.read_bytes())
        assert r.status_code == 201, (path.name, r.text)
    yield f
    f.stop()


def _oracle_extract(data: bytes, source: str) -> dict[str, Any]:
    reason = oracle.oracle_unavailable_reason()  # installs it on first use, the one step past the network fence
    if reason is not None:
        pytest.fail(f"NuGet's extractor cannot run ({reason}): ../shared must sit beside the checkout")
    with tempfile.TemporaryDirectory() as tmp:
        pkg = Path(tmp) / "in" / "package.nupkg"
        pkg.parent.mkdir()
        pkg.write_bytes(data)
        trust = ["--trust-bundle", str(CODESIGN), "--timestamp-bundle", str(TIMESTAMP)]
        run = subprocess.run(
            ["bash", str(SCRIPT), "extract", str(pkg), "--out", str(Path(tmp) / "gpf"), "--source", source, *trust],
            capture_output=True,
            timeout=300,
            check=False,
        )
        assert run.stdout.strip(), run.stderr.decode(errors="replace")[-2000:]
        doc: dict[str, Any] = json.loads(run.stdout)
        return doc


def test_restore_of_real_packages_equals_nuget_extraction(
    feed: Feed, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    monkeypatch.setenv("NUGET_HTTP_CACHE_PATH", str(tmp_path / "http-cache"))
    monkeypatch.setenv("NUGET_CERT_REVOCATION_MODE", "offline")
    app = tmp_path / "app"
    write_project(app, VECTOR_REFERENCES)
    write_config(app, {"feed": feed.source})
    gpf = tmp_path / "gpf"
    code = main(["restore", str(app), "--packages", str(gpf), "--use-lock-file", "--json"])
    out = capsys.readouterr()
    assert code == 0, out.err + out.out
    doc = json.loads(out.out)
    restored = {(p["id"].lower(), p["version"]) for p in doc["packages"]}
    expected = {(i.lower(), v) for i, v in VECTOR_REFERENCES} | {("system.memory", "4.5.3")}
    assert restored == expected
    by_identity = {}
    for path in VECTORS.glob("*.nupkg"):
        spec = PackageArchive.from_path(path).nuspec()
        by_identity[(spec.id.lower(), spec.version.normalized)] = path
    for package_id, version in sorted(restored):
        folder = gpf / package_id / version.lower()
        theirs = _oracle_extract(by_identity[(package_id, version)].read_bytes(), feed.source)
        assert theirs["installed"] is True, theirs.get("exception")
        assert theirs["folder"] == f"{package_id}/{version.lower()}"
        ours, expected_tree = our_tree(folder), oracle_tree(theirs)
        assert ours.files == expected_tree.files, package_id
        assert ours.directories == expected_tree.directories, package_id
        assert ours.mtimes == expected_tree.mtimes, package_id
        assert ours.metadata == expected_tree.metadata, package_id
        assert ours.sha512 == expected_tree.sha512, package_id
    # everything is in place: a locked-mode restore succeeds and downloads no package
    code = main(["restore", str(app), "--packages", str(gpf), "--locked-mode", "--json"])
    again = json.loads(capsys.readouterr().out)
    assert code == 0 and again["ok"]
    assert all(p["installed"] is False for p in again["packages"])
