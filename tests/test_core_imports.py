"""The core loads no HTTP client (issue 12, "the core without hidden I/O"): importing the packages that judge
packages, signatures and certificates must not import ``httpx``; only the modules that fetch
(``nuseal.trust.online``, ``nuseal.timestamp.client``, the CLI and the feed) do. And ``nuseal COMMAND`` imports
only what that command needs (issue 13: commands load lazily from ``cli/main.py``'s ``COMMANDS`` map), so an
offline ``nuseal verify`` of one package pays for neither the other commands nor online revocation.

Each import runs in a fresh interpreter, so what this test process already imported does not hide a regression.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from nuseal.cli.main import COMMANDS
from support.trust import CLI_TRUST_ARGS as TRUST
from support.trust import VECTORS as VECTOR_DIR

CORE = ["nuseal.package", "nuseal.signature", "nuseal.timestamp", "nuseal.trust", "nuseal.verify"]


@pytest.mark.parametrize("module", CORE)
def test_importing_the_core_loads_no_http_client(module: str) -> None:
    code = f"import sys, {module}; print(sorted(m for m in sys.modules if m.split('.')[0] in ('httpx', 'httpcore')))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.strip()
    assert out == "[]", f"import {module} loaded {out}"


def test_the_online_fetcher_does_load_it() -> None:
    """The check above can fail: the module that fetches does import httpx."""
    code = "import sys, nuseal.trust.online; print('httpx' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.strip()
    assert out == "True"


def test_nuseal_verify_loads_no_web_stack() -> None:
    """``nuseal verify --help`` must not pay for the feed's stack."""
    code = (
        "import contextlib, io, sys\n"
        "from nuseal.cli.main import main\n"
        "with contextlib.redirect_stdout(io.StringIO()):\n"
        "    main(['verify', '--help'])\n"
        "print(sorted({m.split('.')[0] for m in sys.modules} & {'starlette', 'uvicorn', 'sqlalchemy', 'jinja2'}))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.strip()
    assert out == "[]"


# What ``nuseal verify`` must not load (issue 13: a CI run of ``nuseal verify ONE.nupkg`` pays for every import): the
# other commands' stacks (audit, scan, restore and its V3 client, the feed), the HTTP client, and pyhanko-certvalidator
# (it judges OCSP responses and CRLs; offline, with an empty revocation cache, there are none to judge); nor the
# worker pool's multiprocessing (one package is verified in this process) or the thread pool of online revocation.
NOT_FOR_OFFLINE_VERIFY = [
    "nuseal.cli.audit",
    "nuseal.cli.scan",
    "nuseal.cli.restore",
    "nuseal.cli.serve",
    "nuseal.cli.admin",
    "nuseal.client",
    "nuseal.scan",
    "nuseal.feed",
    "httpx",
    "httpcore",
    "pyhanko_certvalidator",
    "starlette",
    "sqlalchemy",
    "multiprocessing",
    "concurrent.futures",
]

_RUN_AND_LIST_MODULES = (
    "import contextlib, io, json, sys\n"
    "from nuseal.cli.main import main\n"
    "out = io.StringIO()\n"
    "with contextlib.redirect_stdout(out):\n"
    "    code = main(sys.argv[1:])\n"
    "print(json.dumps({'code': code, 'out': out.getvalue(), 'modules': sorted(sys.modules)}))\n"
)


def _run_cli(args: list[str], tmp_path: Path) -> tuple[int, str, set[str]]:
    """``nuseal ARGS`` in a fresh interpreter (empty revocation cache): exit code, stdout, modules imported."""
    env = {**os.environ, "NUSEAL_CACHE": str(tmp_path / "cache")}
    proc = subprocess.run(
        [sys.executable, "-c", _RUN_AND_LIST_MODULES, *args], capture_output=True, text=True, check=True, env=env
    )
    report = json.loads(proc.stdout.splitlines()[-1])
    return report["code"], report["out"], set(report["modules"])


def _loaded(modules: set[str], names: list[str]) -> list[str]:
    return [name for name in names if any(m == name or m.startswith(name + ".") for m in modules)]


@pytest.mark.usefixtures("vector_clock")  # a real vector, judged at VECTOR_NOW (support/clock.py)
def test_offline_nuseal_verify_loads_only_the_verify_path(tmp_path: Path) -> None:
    code, out, modules = _run_cli(
        ["verify", str(VECTOR_DIR / "RestSharp.106.11.4.nupkg"), *TRUST, "-v", "quiet"], tmp_path
    )
    assert code == 0, out
    assert "1 passed, 0 failed" in out
    assert "nuseal.verify.verifier" in modules  # it did verify
    assert _loaded(modules, NOT_FOR_OFFLINE_VERIFY) == []


def test_nuseal_help_loads_no_command_module(tmp_path: Path) -> None:
    code, out, modules = _run_cli(["--help"], tmp_path)
    assert code == 0
    assert all(f"\n  {name} " in out for name in COMMANDS), out
    assert sorted(m for m in modules if m.startswith("nuseal.cli.") and m != "nuseal.cli.main") == [
        "nuseal.cli._exit"
    ]
