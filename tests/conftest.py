"""Suite-wide isolation: nuseal's own cache (``$NUSEAL_CACHE``: the revocation cache of online runs) lives in a
folder of this test run, never in the user's ``~/.cache/nuseal``, so no test sees revocation answers another
test or an earlier run left there. NuGet.exe, which the set-up scripts install under the real cache, is still
found: its path is handed over in ``NUSEAL_NUGET_EXE`` first.

Network: only loopback. ``support.network`` fences this process (a connect or a name lookup for any other host
fails at once with a message naming the fence) and points the proxy variables of every subprocess at a closed
loopback port, from the moment this file is loaded, before any test module is imported."""

from __future__ import annotations

import os
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path

import pytest

from support import network
from support.clock import TEST_NOW_ENV, VECTOR_NOW

network.install()

# The oracle's installation (run-oracle.sh: ${ORACLE_HOME:-${XDG_CACHE_HOME:-$HOME/.cache}/nuget-oracle}) is found
# through the real home even in tests that point HOME at a temporary folder (restore's isolation); without this
# the oracle reinstalled itself there, a download the network fence (rightly) refuses.
os.environ.setdefault(
    "ORACLE_HOME", str(Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "nuget-oracle")
)

_NUGET_EXE = Path("nuget-exe") / "node_modules" / "nuget-exe" / "nuget-5.8.0.exe"


def _user_cache() -> Path:
    env = os.environ.get("NUSEAL_CACHE")
    if env:
        return Path(env)
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "nuseal"


@pytest.fixture(scope="session", autouse=True)
def _isolated_nuseal_cache(tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    saved = {k: os.environ.get(k) for k in ("NUSEAL_CACHE", "NUSEAL_NUGET_EXE")}
    exe = _user_cache() / _NUGET_EXE
    if not saved["NUSEAL_NUGET_EXE"] and exe.is_file():
        os.environ["NUSEAL_NUGET_EXE"] = str(exe)
    os.environ["NUSEAL_CACHE"] = str(tmp_path_factory.mktemp("nuseal-cache"))
    yield
    for key, value in saved.items():
        if value is None:
            os.environ.pop(key, None)
        else:
            os.environ[key] = value


@pytest.fixture
def vector_now() -> datetime:
    """The frozen instant for judging the real nuget.org vectors (``support.clock.VECTOR_NOW``)."""
    return VECTOR_NOW


@pytest.fixture
def vector_clock(monkeypatch: pytest.MonkeyPatch) -> datetime:
    """``nuseal`` commands run by this test (in-process or in a subprocess) judge certificates at ``VECTOR_NOW``:
    ``NUSEAL_TEST_NOW`` is set for the test's duration (read by ``nuseal.cli._clock``). Only for tests whose
    packages are the real vectors: a dev PKI made now is not yet valid at that instant."""
    monkeypatch.setenv(TEST_NOW_ENV, VECTOR_NOW.isoformat())
    return VECTOR_NOW
