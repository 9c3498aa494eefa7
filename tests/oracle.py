"""Runs NuGet's own verifier (``../shared/tools/nuget-oracle``, Microsoft's NuGet.Packaging 6.14.3 on .NET 8)
and returns what it reports, cached on disk by the package bytes, the arguments and the oracle's source.

The oracle's four policies: ``verifyCommand``, ``verifyCommandAllowUntrusted``, ``acceptMode``, ``requireMode``
(NuGet's presets, offline revocation, integrity + trust-and-validity providers only: no allow lists).
"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import tempfile
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

SHARED = Path(__file__).resolve().parents[2] / "shared"
ORACLE = SHARED / "tools" / "nuget-oracle"
SCRIPT = ORACLE / "run-oracle.sh"
CACHE = Path(os.environ.get("NUSEAL_TEST_CACHE", Path.home() / ".cache" / "nuseal-tests")) / "oracle"
CODESIGN = SHARED / "trust" / "codesignctl.pem"
TIMESTAMP = SHARED / "trust" / "timestampctl.pem"
TIMEOUT = 300


@dataclass(frozen=True)
class PolicyVerdict:
    valid: bool
    codes: frozenset[str]  # "error:NU3008", "warning:NU3027", ...
    exception: str | None

    @property
    def error_codes(self) -> frozenset[str]:
        return frozenset(c.split(":", 1)[1] for c in self.codes if c.startswith("error:"))

    @property
    def warning_codes(self) -> frozenset[str]:
        return frozenset(c.split(":", 1)[1] for c in self.codes if c.startswith("warning:"))


@dataclass(frozen=True)
class OracleReport:
    is_signed: bool | None
    content_hash: str | None
    fatal: str | None  # NuGet threw while opening the package (no policy ran)
    policies: dict[str, PolicyVerdict]
    raw: dict[str, object]


def available() -> bool:
    return SCRIPT.is_file()


def _key(data: bytes, args: list[str]) -> str:
    h = hashlib.sha256(data)
    h.update("\0".join(args).encode())
    for src in sorted((ORACLE / "src").glob("*")):
        h.update(src.read_bytes())
    return h.hexdigest()


def verify(
    data: bytes, *, extra_args: tuple[str, ...] = (), trust: tuple[Path, Path] = (CODESIGN, TIMESTAMP)
) -> OracleReport:
    """NuGet's verdicts for the package ``data`` (raises on an oracle failure, never skips silently)."""
    args = ["--trust-bundle", str(trust[0]), "--timestamp-bundle", str(trust[1]), *extra_args]
    cached = CACHE / f"{_key(data, args)}.json"
    if cached.is_file():
        doc = json.loads(cached.read_text())
    else:
        with tempfile.TemporaryDirectory() as tmp:
            pkg = Path(tmp) / "package.nupkg"
            pkg.write_bytes(data)
            run = subprocess.run(
                ["bash", str(SCRIPT), "verify", str(pkg), *args],
                capture_output=True, timeout=TIMEOUT, check=False,
            )
        # Exit 3 with a "fatal" document: NuGet could not open the archive at all (InvalidDataException).
        if run.returncode not in (0, 3) or not run.stdout.strip():
            raise RuntimeError(f"nuget-oracle failed ({run.returncode}): {run.stderr.decode(errors='replace')[-2000:]}")
        doc = json.loads(run.stdout)
        CACHE.mkdir(parents=True, exist_ok=True)
        cached.write_text(json.dumps(doc))
    policies = {
        v["policy"]: PolicyVerdict(bool(v.get("isValid")), frozenset(v.get("codes", ())), v.get("exception"))
        for v in doc.get("verification", [])
    }
    return OracleReport(doc.get("isSigned"), doc.get("contentHash"), doc.get("fatal"), policies, doc)


def verify_many(items: dict[str, bytes]) -> dict[str, OracleReport]:
    """Several packages on two threads (each call is its own .NET process)."""
    with ThreadPoolExecutor(max_workers=2) as pool:
        futures = {name: pool.submit(verify, data) for name, data in items.items()}
        return {name: f.result() for name, f in futures.items()}
