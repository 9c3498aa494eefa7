"""The core loads no HTTP client (issue 12, "the core without hidden I/O"): importing the packages that judge
packages, signatures and certificates must not import ``httpx``; only the modules that fetch
(``nuseal.trust.online``, ``nuseal.timestamp.client``, the CLI and the feed) do.

Each import runs in a fresh interpreter, so what this test process already imported does not hide a regression.
"""

from __future__ import annotations

import subprocess
import sys

import pytest

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
    """Every command is registered up front (cli/main.py), so ``nuseal verify`` must not pay for the feed's stack."""
    code = (
        "import contextlib, io, sys\n"
        "from nuseal.cli.main import main\n"
        "with contextlib.redirect_stdout(io.StringIO()):\n"
        "    main(['verify', '--help'])\n"
        "print(sorted({m.split('.')[0] for m in sys.modules} & {'starlette', 'uvicorn', 'sqlalchemy', 'jinja2'}))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.strip()
    assert out == "[]"
