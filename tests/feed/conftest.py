"""Fixtures for the feed tests: packages built on the fly, real `nuseal serve` processes on loopback, a
throw-away PostgreSQL cluster, and NuGet.exe 5.8 on Mono.

Servers are started as `python -m nuseal.cli.serve --port 0`; the port is read from the line the command
prints, so there is no free-port race. Every process a fixture starts is stopped by its own pid.
"""

from __future__ import annotations

import os
import pwd
import re
import shutil
import signal
import socket
import ssl
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pytest
from click.testing import CliRunner

from nuseal.cli.admin import admin_group
from support.packages import make_package, nuspec_xml  # noqa: F401 - re-exported: the feed tests import them here

#: The real nuget.org packages (``shared/`` sits beside the repository, in CI too).
VECTORS = Path(__file__).resolve().parents[3] / "shared" / "vectors" / "nuget.org"
START_TIMEOUT = 30.0


# ------------------------------------------------------------------------------------------------ packages
# make_package and nuspec_xml live in support/packages.py (one builder for every test area); imported above.


def multipart(data: bytes, filename: str = "package.nupkg") -> dict[str, tuple[str, bytes, str]]:
    return {"package": (filename, data, "application/octet-stream")}


# ------------------------------------------------------------------------------------------------ servers
@dataclass
class Feed:
    """A running `nuseal serve`."""

    data_dir: Path
    base_url: str
    process: subprocess.Popen[bytes]
    database_url: str | None
    keys: dict[str, str] = field(default_factory=dict)
    #: httpx ``verify``: a context trusting the dev root for an HTTPS feed on the dev certificate (``https=True``)
    verify: ssl.SSLContext | bool = True

    @property
    def source(self) -> str:
        return f"{self.base_url}/v3/index.json"

    @property
    def dev_root(self) -> Path:
        """The dev PKI's root certificate (PEM), which the HTTPS feed's dev certificate chains to."""
        return self.data_dir / "devpki" / "root.crt.pem"

    def client(self, **kw: object) -> httpx.Client:
        kw.setdefault("verify", self.verify)
        return httpx.Client(base_url=self.base_url, timeout=60, **kw)  # type: ignore[arg-type]

    def push(self, data: bytes, key: str | None = "alice", **kw: object) -> httpx.Response:
        headers = {"X-NuGet-ApiKey": self.keys.get(key, key)} if key else {}
        with self.client() as c:
            return c.put("/api/v2/package/", files=multipart(data), headers=headers, **kw)  # type: ignore[arg-type]

    def admin(self, *args: str) -> str:
        return run_admin(self.data_dir, self.database_url, *args)

    def snapshot(self) -> dict[str, bytes]:
        """Every stored file (the whole read side) by key."""
        root = self.data_dir / "storage"
        return {p.relative_to(root).as_posix(): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}

    def stop(self) -> None:
        if self.process.poll() is None:
            os.kill(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                os.kill(self.process.pid, signal.SIGKILL)
                self.process.wait(timeout=10)
        if self.process.stdout is not None:
            self.process.stdout.close()


def run_admin(data_dir: Path, database_url: str | None, *args: str) -> str:
    extra = ["--data", str(data_dir)] + (["--database", database_url] if database_url else [])
    result = CliRunner().invoke(admin_group, [*args, *extra], catch_exceptions=False)
    if result.exit_code != 0:
        raise AssertionError(f"nuseal admin {' '.join(args)} failed: {result.output}")
    return result.stdout.strip()


def start_feed(
    data_dir: Path,
    *serve_args: str,
    database_url: str | None = None,
    workers: int = 1,
    max_package_size: int | None = None,
    users: tuple[str, ...] = ("alice", "bob"),
    signing: bool = False,
    env: dict[str, str] | None = None,
    https: bool = False,
) -> Feed:
    """Create users (with an all-scopes key each, named after the user), then start `nuseal serve` on a free
    loopback port. ``signing=False`` (the issue-4 tests) passes ``--no-signing``: packages are stored as pushed.
    ``https=False`` passes ``--http`` (plain HTTP, as the tests before issue 19); ``https=True`` serves HTTPS (the
    dev certificate unless ``serve_args`` name one) and the returned feed's clients trust the dev root."""
    keys = {}
    for user in users:
        run_admin(data_dir, database_url, "create-user", user)
        keys[user] = run_admin(data_dir, database_url, "create-api-key", user)
    cmd = [sys.executable, "-m", "nuseal.cli.serve", "--data", str(data_dir), "--port", "0", "--workers", str(workers)]
    cmd += ["--signing", *serve_args] if signing else ["--no-signing", *serve_args]
    if not https:
        cmd.append("--http")
    if database_url:
        cmd += ["--database", database_url]
    if max_package_size:
        cmd += ["--max-package-size", str(max_package_size)]
    with open(data_dir / "server.log", "wb") as log:  # the child keeps its own descriptor
        proc = subprocess.Popen(
            cmd, stdout=subprocess.PIPE, stderr=log, start_new_session=True, env={**os.environ, **(env or {})}
        )
    assert proc.stdout is not None
    deadline = time.monotonic() + START_TIMEOUT
    base_url = None
    while time.monotonic() < deadline:
        line = proc.stdout.readline().decode()
        if not line:
            break
        m = re.search(r"nuseal feed on (https?://\S+) ", line)
        if m:
            base_url = m.group(1)
            break
    if base_url is None:
        proc.kill()
        proc.wait()
        proc.stdout.close()
        raise AssertionError("nuseal serve did not start: " + (data_dir / "server.log").read_text())
    feed = Feed(data_dir, base_url, proc, database_url, keys)
    if https and "--tls-cert" not in serve_args:
        feed.verify = ssl.create_default_context(cafile=str(feed.dev_root))
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"{base_url}/health", timeout=2, verify=feed.verify).status_code == 200:
                return feed
        except httpx.HTTPError:
            time.sleep(0.1)
    feed.stop()
    raise AssertionError("nuseal serve did not answer /health: " + (data_dir / "server.log").read_text())


@pytest.fixture
def feed(tmp_path: Path) -> Iterator[Feed]:
    """A fresh SQLite feed for one test."""
    f = start_feed(tmp_path / "feed")
    yield f
    f.stop()


@pytest.fixture(scope="module")
def shared_feed(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Feed]:
    """One SQLite feed for a module's read-mostly tests."""
    f = start_feed(tmp_path_factory.mktemp("feed"))
    yield f
    f.stop()


@pytest.fixture
def inprocess_feed(tmp_path: Path) -> Iterator[Feed]:
    """A fresh SQLite feed for one test, built by the composition root and called in-process (``inprocess.py``)."""
    from .inprocess import start_inprocess_feed  # noqa: PLC0415 - inprocess.py imports this module

    f = start_inprocess_feed(tmp_path / "feed")
    yield f
    f.stop()


@pytest.fixture(scope="module")
def shared_inprocess_feed(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Feed]:
    """One in-process SQLite feed for a module's read-mostly tests."""
    from .inprocess import start_inprocess_feed  # noqa: PLC0415

    f = start_inprocess_feed(tmp_path_factory.mktemp("feed"))
    yield f
    f.stop()


# ------------------------------------------------------------------------------------------------ PostgreSQL
def _pg_bin(name: str) -> str | None:
    found = shutil.which(name)
    if found:
        return found
    for cand in sorted(Path("/usr/lib/postgresql").glob(f"*/bin/{name}"), reverse=True):
        return str(cand)
    return None


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _require(reason: str) -> None:
    """Skip locally when a tool is missing; fail in CI, where scripts/ci-feed-deps.sh installs it."""
    if os.environ.get("CI"):
        pytest.fail(reason + " (CI must run scripts/ci-feed-deps.sh)")
    pytest.skip(reason)


@dataclass
class PgCluster:
    root: Path
    port: int
    run_as: list[str]
    pg_ctl: str
    counter: int = 0

    def new_database(self) -> str:
        self.counter += 1
        name = f"feed{self.counter}"
        subprocess.run(
            ["psql", "-h", "127.0.0.1", "-p", str(self.port), "-U", "postgres", "-q", "-c", f"CREATE DATABASE {name}"],
            check=True,
            capture_output=True,
        )
        return f"postgresql://postgres@127.0.0.1:{self.port}/{name}"


@pytest.fixture(scope="session")
def pg_cluster() -> Iterator[PgCluster]:
    """A throw-away PostgreSQL cluster on a free loopback port (initdb + pg_ctl; as `postgres` when root)."""
    initdb, pg_ctl = _pg_bin("initdb"), _pg_bin("pg_ctl")
    if not initdb or not pg_ctl or not shutil.which("psql"):
        _require("PostgreSQL server binaries (initdb, pg_ctl, psql) are not installed")
    assert initdb and pg_ctl
    root = Path(tempfile.mkdtemp(prefix="nuseal-pg-"))
    run_as: list[str] = []
    if os.geteuid() == 0:  # initdb refuses to run as root
        pw = pwd.getpwnam("postgres")
        os.chown(root, pw.pw_uid, pw.pw_gid)
        run_as = ["runuser", "-u", "postgres", "--"]
    subprocess.run(
        [*run_as, initdb, "-D", str(root / "data"), "-A", "trust", "-U", "postgres", "-E", "UTF8", "--no-sync"],
        check=True,
        capture_output=True,
    )
    port = _free_port()
    opts = f"-p {port} -k {root} -c listen_addresses=127.0.0.1 -c fsync=off -c max_connections=300"
    subprocess.run(
        [*run_as, pg_ctl, "-D", str(root / "data"), "-o", opts, "-l", str(root / "log"), "-w", "-t", "60", "start"],
        check=True,
        capture_output=True,
    )
    try:
        yield PgCluster(root, port, run_as, pg_ctl)
    finally:
        subprocess.run(
            [*run_as, pg_ctl, "-D", str(root / "data"), "-m", "immediate", "stop"], check=False, capture_output=True
        )
        shutil.rmtree(root, ignore_errors=True)


# ------------------------------------------------------------------------------------------------ NuGet.exe
def nuget_exe_path() -> Path | None:
    env = os.environ.get("NUSEAL_NUGET_EXE")
    if env:
        return Path(env)
    cache = Path(
        os.environ.get("NUSEAL_CACHE") or Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "nuseal"
    )
    p = cache / "nuget-exe" / "node_modules" / "nuget-exe" / "nuget-5.8.0.exe"
    return p if p.is_file() else None


@dataclass
class NuGetExe:
    exe: Path
    home: Path

    def run(self, *args: str, check: bool = True, timeout: float = 180) -> subprocess.CompletedProcess[str]:
        env = {
            "HOME": str(self.home),
            "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
            "NUGET_PACKAGES": str(self.home / "packages"),
            "NUGET_HTTP_CACHE_PATH": str(self.home / "http-cache"),
            "DOTNET_CLI_TELEMETRY_OPTOUT": "1",
        }
        proc = subprocess.run(
            ["mono", str(self.exe), *args, "-NonInteractive"],
            check=False,
            capture_output=True,
            text=True,
            env=env,
            timeout=timeout,
            cwd=self.home,
        )
        if check and proc.returncode != 0:
            raise AssertionError(f"nuget {' '.join(args)} exited {proc.returncode}:\n{proc.stdout}\n{proc.stderr}")
        return proc


@pytest.fixture
def nuget(tmp_path: Path) -> NuGetExe:
    exe = nuget_exe_path()
    if exe is None or not shutil.which("mono"):
        _require("NuGet.exe 5.8 on Mono is not installed")
    assert exe is not None
    home = tmp_path / "nuget-home"
    home.mkdir()
    # an empty config: no nuget.org source, so every answer comes from the feed under test
    (home / ".nuget" / "NuGet").mkdir(parents=True)
    (home / ".nuget" / "NuGet" / "NuGet.Config").write_text(
        '<?xml version="1.0" encoding="utf-8"?><configuration><packageSources><clear/></packageSources></configuration>'
    )
    return NuGetExe(exe, home)
