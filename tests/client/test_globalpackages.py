"""Installing into a global-packages folder: refusals leave nothing, complete folders are reused, half-written ones
(a kill -9 mid-extraction) are cleaned, two processes extract a package once, path tricks are refused, and NuGet's
lock file is the one nuseal locks (checked against the oracle in test_globalpackages_oracle.py)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from nuseal.client.gate import GateSettings, load_allow_list
from nuseal.client.globalpackages import (
    METADATA_FILE,
    GlobalPackagesFolder,
    default_global_packages_folder,
    nuget_lock_path,
)
from nuseal.errors import RestoreError
from nuseal.package import PackageArchive
from nuseal.trust import RevocationMode
from nuseal.verify import VerificationPolicy
from support.clock import VECTOR_NOW

from .gate_support import CODESIGN, CRADLE, SHARED, SOURCE, TIMESTAMP, gate_settings, make_nupkg

NEWTONSOFT = SHARED / "vectors" / "nuget.org" / "Newtonsoft.Json.12.0.3.nupkg"




def snapshot(root: Path) -> dict[str, bytes | None]:
    return {p.relative_to(root).as_posix(): (None if p.is_dir() else p.read_bytes()) for p in sorted(root.rglob("*"))}


def test_layout_and_reuse(tmp_path: Path) -> None:
    data = NEWTONSOFT.read_bytes()
    gpf = GlobalPackagesFolder(tmp_path)
    assert not gpf.is_installed("Newtonsoft.Json", "12.0.3")
    assert gpf.installed_content_hash("Newtonsoft.Json", "12.0.3") is None
    first = gpf.install(data, package_id="Newtonsoft.Json", version="12.0.3", source=SOURCE, gate=gate_settings(),
                        now=VECTOR_NOW)
    assert first.installed and first.folder == tmp_path / "newtonsoft.json" / "12.0.3"
    assert (first.folder / "newtonsoft.json.12.0.3.nupkg").read_bytes() == data
    assert (first.folder / "newtonsoft.json.nuspec").is_file()
    content_hash = PackageArchive.from_bytes(data).content_hash()
    assert first.content_hash == content_hash == gpf.installed_content_hash("newtonsoft.json", "12.0.3.0")
    meta = json.loads((first.folder / METADATA_FILE).read_bytes())
    assert meta == {"version": 2, "contentHash": content_hash, "source": SOURCE}
    before = snapshot(tmp_path)
    stamp = (first.folder / METADATA_FILE).stat().st_mtime_ns
    again = gpf.install(data, package_id="Newtonsoft.Json", version="12.0.3", source="elsewhere", gate=gate_settings(),
                        now=VECTOR_NOW)
    assert not again.installed and again.gate is None and again.content_hash == content_hash
    assert snapshot(tmp_path) == before and (first.folder / METADATA_FILE).stat().st_mtime_ns == stamp


def test_refused_package_leaves_nothing(tmp_path: Path) -> None:
    data = make_nupkg("Evil.Lib", "1.0.0", {"tools/init.ps1": CRADLE})
    gpf = GlobalPackagesFolder(tmp_path / "gpf")
    with pytest.raises(RestoreError) as info:
        gpf.install(data, package_id="Evil.Lib", version="1.0.0", source=SOURCE, gate=gate_settings(), now=VECTOR_NOW)
    assert info.value.rule_id == "NS1110" and info.value.source == SOURCE and info.value.package == "Evil.Lib 1.0.0"
    assert not (tmp_path / "gpf").exists()


def test_tampered_package_leaves_nothing_and_keeps_other_packages(tmp_path: Path) -> None:
    gpf = GlobalPackagesFolder(tmp_path)
    gpf.install(make_nupkg("Good.Lib"), package_id="Good.Lib", version="1.0.0", source=SOURCE, gate=gate_settings(),
                now=VECTOR_NOW)
    before = snapshot(tmp_path)
    data = bytearray(NEWTONSOFT.read_bytes())
    rec = max(PackageArchive.from_bytes(bytes(data)).records, key=lambda r: r.compressed_size)
    data[rec.local_header_offset + 200] ^= 0xFF
    with pytest.raises(RestoreError) as info:
        gpf.install(bytes(data), package_id="Newtonsoft.Json", version="12.0.3", source=SOURCE, gate=gate_settings(),
                    now=VECTOR_NOW)
    assert info.value.code is not None and info.value.code.value == "NU3008"
    assert snapshot(tmp_path) == before


@pytest.mark.parametrize("name", ["%2E%2E/escape.txt", "a/%2e%2e/%2e%2e/escape.txt", "%2Fabs.txt"])
def test_entry_escaping_the_folder_is_refused(tmp_path: Path, name: str) -> None:
    data = make_nupkg("Tricky.Lib", "1.0.0", {name: "x", "ok.txt": "y"})
    root = tmp_path / "gpf"
    with pytest.raises(RestoreError) as info:
        GlobalPackagesFolder(root).install(
            data, package_id="Tricky.Lib", version="1.0.0", source=SOURCE, gate=gate_settings(),
            now=VECTOR_NOW,
        )
    assert "outside the package folder" in info.value.message and "Tricky.Lib 1.0.0" in info.value.message
    assert not root.exists() and not list(tmp_path.rglob("escape.txt"))


def test_half_written_folder_is_emptied_first(tmp_path: Path) -> None:
    folder = tmp_path / "good.lib" / "1.0.0"
    (folder / "lib" / "stale").mkdir(parents=True)
    (folder / "lib" / "stale" / "left-over.dll").write_bytes(b"junk")
    (folder / "good.lib.1.0.0.nupkg").write_bytes(b"truncated")
    gpf = GlobalPackagesFolder(tmp_path)
    assert not gpf.is_installed("Good.Lib", "1.0.0")
    data = make_nupkg("Good.Lib", "1.0.0", {"lib/net8.0/Good.dll": "dll"})
    assert gpf.install(data, package_id="Good.Lib", version="1.0.0", source=SOURCE, gate=gate_settings(),
                       now=VECTOR_NOW).installed
    assert sorted(snapshot(folder)) == sorted(
        [
            ".nupkg.metadata",
            "good.lib.1.0.0.nupkg",
            "good.lib.1.0.0.nupkg.sha512",
            "good.lib.nuspec",
            "lib",
            "lib/net8.0",
            "lib/net8.0/Good.dll",
        ]
    )


_CHILD = """
import sys
from datetime import datetime
from pathlib import Path
from nuseal.client.gate import GateSettings, load_allow_list
from nuseal.client.globalpackages import GlobalPackagesFolder
from nuseal.trust import RevocationMode
from nuseal.verify import VerificationPolicy
root, package, crash = sys.argv[1], sys.argv[2], sys.argv[3]
gate = GateSettings(policy=VerificationPolicy.accept(revocation_mode=RevocationMode.OFFLINE),
                    code_signing_roots=sys.argv[4], timestamping_roots=sys.argv[5], scan=False)
gpf = GlobalPackagesFolder(Path(root), crash_after=int(crash) if crash != "-" else None)
sys.stdin.readline()  # start together
out = gpf.install(Path(package).read_bytes(), package_id="Newtonsoft.Json", version="12.0.3", source="s", gate=gate,
                  now=datetime.fromisoformat(sys.argv[6]))
print("installed" if out.installed else "reused", flush=True)
"""


def _child(root: Path, crash: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-c", _CHILD, str(root), str(NEWTONSOFT), crash, CODESIGN, TIMESTAMP, VECTOR_NOW.isoformat()],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def test_kill_9_mid_extraction_then_a_clean_install(tmp_path: Path) -> None:
    root = tmp_path / "gpf"
    child = _child(root, "5")
    _out, err = child.communicate("go\n", timeout=120)
    assert child.returncode == -9, err
    folder = root / "newtonsoft.json" / "12.0.3"
    assert folder.is_dir() and not (folder / METADATA_FILE).exists()
    assert len([p for p in folder.rglob("*") if p.is_file()]) >= 5  # the temp .nupkg and some entries
    gpf = GlobalPackagesFolder(root)
    assert not gpf.is_installed("Newtonsoft.Json", "12.0.3")
    data = NEWTONSOFT.read_bytes()
    assert gpf.install(data, package_id="Newtonsoft.Json", version="12.0.3", source="s", gate=gate_settings(),
                       now=VECTOR_NOW).installed
    fresh = GlobalPackagesFolder(tmp_path / "fresh")
    fresh.install(data, package_id="Newtonsoft.Json", version="12.0.3", source="s", gate=gate_settings(),
                  now=VECTOR_NOW)
    assert snapshot(root) == snapshot(tmp_path / "fresh")


def test_two_processes_extract_once(tmp_path: Path) -> None:
    root = tmp_path / "gpf"
    children = [_child(root, "-") for _ in range(2)]
    for c in children:
        assert c.stdin is not None
        c.stdin.write("go\n")
        c.stdin.flush()
    results = [c.communicate(timeout=120) for c in children]
    assert [c.returncode for c in children] == [0, 0], [r[1] for r in results]
    assert sorted(r[0].strip() for r in results) == ["installed", "reused"]
    assert GlobalPackagesFolder(root).is_installed("Newtonsoft.Json", "12.0.3")


def test_lock_path_and_default_folder(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("NUGET_SCRATCH", str(tmp_path / "scratch"))
    a = nuget_lock_path(tmp_path / "x" / "a.1.0.0.nupkg")
    assert a.parent == tmp_path / "scratch" / "lock" and len(a.name) == 40
    assert nuget_lock_path(tmp_path / "X" / "A.1.0.0.NUPKG") == a  # NuGet upper-cases the path
    assert nuget_lock_path(tmp_path / "y" / "a.1.0.0.nupkg") != a
    assert default_global_packages_folder({"NUGET_PACKAGES": str(tmp_path)}) == tmp_path
    assert default_global_packages_folder({}) == Path.home() / ".nuget" / "packages"


def test_init_ps1_package_installs_once_allowed(tmp_path: Path) -> None:
    (tmp_path / "nuseal.toml").write_text('[[scan.allow]]\nid = "Evil.Lib"\nrules = ["NS1110"]\n')
    allowed = GateSettings(
        policy=VerificationPolicy.accept(revocation_mode=RevocationMode.OFFLINE),
        code_signing_roots=CODESIGN,
        timestamping_roots=TIMESTAMP,
        allow=load_allow_list(tmp_path),
    )
    data = make_nupkg("Evil.Lib", "1.0.0", {"tools/init.ps1": CRADLE})
    outcome = GlobalPackagesFolder(tmp_path / "gpf").install(
        data, package_id="Evil.Lib", version="1.0.0", source=SOURCE, gate=allowed,
        now=VECTOR_NOW,
    )
    assert outcome.installed and outcome.gate is not None
    assert [f.rule_id for f in outcome.gate.allowed] == ["NS1110"]
    assert (outcome.folder / "tools" / "init.ps1").read_text() == CRADLE
