"""Single flight across the feed's worker processes (issue 16, point 1): ``nuseal serve --workers 2 --upstream ...``
in front of the test upstream (tests/feed/upstream_support.py) fetches a package once however many clients ask at
once, whichever worker answers them (the per-version file lock of :mod:`nuseal.feed.mirror.locks`); and feeds on
several machines sharing the database and storage (no common lock) may each download a version, but publish it once.

Which worker answered a request is read from the kernel: the worker process that owns the server side of the
request's connection (``/proc/<pid>/fd`` and ``/proc/net/tcp``; Linux, as the feed's servers run).
"""

from __future__ import annotations

import asyncio
import logging
import os
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import select

from nuseal.feed.compose import build_feed
from nuseal.feed.config import FeedConfig, IngestConfig, SigningConfig, UpstreamConfig
from nuseal.feed.mirror.checks import UpstreamInfo
from nuseal.feed.mirror.ingest import Ingestion, IngestOutcome
from nuseal.feed.mirror.locks import VersionLocks
from nuseal.feed.protocol.documents import nupkg_key
from nuseal.feed.store.models import Package
from nuseal.feed.store.storage import Storage
from support.clock import VECTOR_NOW

from .ingest_support import ingest_feed, nuget_org_info
from .upstream_support import (
    CODESIGN_BUNDLE,
    TIMESTAMP_BUNDLE,
    NugetOrgUpstream,
    UpstreamProxy,
    nuget_org_proxy_fixture,  # noqa: F401 - the proxy fixture
    nupkg_path,
    start_mirror,
    tampered,
    upstream_fixture,  # noqa: F401 - the upstream fixture
    vector,
    vector_files,
)

CONCURRENT = 50
#: Most warm-up connections opened to get both workers answering.
MAX_CONNECTIONS = 300


# ------------------------------------------------------------------------------------------------ /proc
def _children(pid: int) -> list[int]:
    out = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                stat = Path(f"/proc/{entry}/stat").read_text()
            except OSError:
                continue
            if int(stat.rsplit(")", 1)[1].split()[1]) == pid:
                out.append(int(entry))
    return out


def _socket_inodes(pid: int) -> set[str]:
    inodes = set()
    fd_dir = Path(f"/proc/{pid}/fd")
    for fd in fd_dir.iterdir():
        try:
            target = os.readlink(fd)
        except OSError:
            continue
        if target.startswith("socket:["):
            inodes.add(target[len("socket:[") : -1])
    return inodes


def connection_owners(feed_pid: int, port: int) -> dict[int, int]:
    """Client port -> pid of the worker process of ``nuseal serve`` (pid ``feed_pid``) that holds the accepted,
    established connection on ``port``."""
    by_inode: dict[str, int] = {}
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        if not Path(table).exists():
            continue
        for line in Path(table).read_text().splitlines()[1:]:
            fields = line.split()
            local, remote, state, inode = fields[1], fields[2], fields[3], fields[9]
            if state == "01" and int(local.rsplit(":", 1)[1], 16) == port:
                by_inode[inode] = int(remote.rsplit(":", 1)[1], 16)
    owners = {}
    for worker in _children(feed_pid):
        for inode in _socket_inodes(worker) & by_inode.keys():
            owners[by_inode[inode]] = worker
    return owners


def client_port(response: httpx.Response) -> int:
    stream = response.extensions["network_stream"]
    return int(stream.get_extra_info("client_addr")[1])


# ------------------------------------------------------------------------------------------------ the tests
@pytest.mark.slow  # real servers: the upstream (12 vectors pushed) and a two-worker mirror
@pytest.mark.skipif(not Path("/proc/net/tcp").exists(), reason="reads connection owners from Linux's /proc")
def test_fifty_concurrent_first_requests_over_two_workers_one_upstream_download(
    upstream: NugetOrgUpstream, proxy: UpstreamProxy, tmp_path: Path
) -> None:
    mirror = start_mirror(tmp_path / "mirror", proxy, workers=2, users=("alice",))
    port = int(mirror.base_url.rsplit(":", 1)[1])
    ver, path = vector(upstream, "microsoft.data.sqlite")
    url = nupkg_path("microsoft.data.sqlite", ver)

    async def run() -> tuple[list[httpx.Response], dict[int, int], set[int]]:
        clients: list[httpx.AsyncClient] = []
        try:
            # one connection per client (kept alive): warm up until each worker holds half of the connections
            by_worker: dict[int, list[httpx.AsyncClient]] = {}
            while len(clients) < MAX_CONNECTIONS:
                batch = [
                    httpx.AsyncClient(base_url=mirror.base_url, timeout=120, limits=httpx.Limits(max_connections=1))
                    for _ in range(CONCURRENT)
                ]
                clients += batch
                warm = await asyncio.gather(*(c.get("/health") for c in batch))
                assert {r.status_code for r in warm} == {200}
                owners = connection_owners(mirror.process.pid, port)
                for client, r in zip(batch, warm, strict=True):
                    worker = owners.get(client_port(r))
                    if worker is not None:
                        by_worker.setdefault(worker, []).append(client)
                if len(by_worker) >= 2 and min(len(v) for v in by_worker.values()) >= CONCURRENT // 2:
                    break
            chosen = [c for group in by_worker.values() for c in group[: CONCURRENT // 2]]
            chosen += [c for c in clients if c not in chosen][: CONCURRENT - len(chosen)]
            assert len(chosen) == CONCURRENT
            proxy.hold = True  # every request is in flight in both workers before the upstream answers
            tasks = [asyncio.ensure_future(c.get(url)) for c in chosen]
            deadline = time.monotonic() + 30
            while proxy.count(r"\.nupkg$") == 0 and time.monotonic() < deadline:
                await asyncio.sleep(0.05)
            await asyncio.sleep(2)  # time for the other worker to ask the upstream too, were it to
            proxy.release.set()
            answers = await asyncio.gather(*tasks)
            owners = connection_owners(mirror.process.pid, port)
            answered_by = {owners.get(client_port(r), 0) for r in answers}
            return answers, owners, answered_by
        finally:
            for c in clients:
                await c.aclose()

    try:
        answers, owners, answered_by = asyncio.run(run())
        assert len(set(owners.values())) == 2, "both workers hold connections"
        assert len(answered_by) == 2 and 0 not in answered_by, "both workers answered the package requests"
        assert [r.status_code for r in answers] == [200] * CONCURRENT
        assert {r.content for r in answers} == {path.read_bytes()}
        assert proxy.count(r"\.nupkg$") == 1
        # a second wave finds it stored: no download
        with mirror.client() as c:
            assert c.get(url).content == path.read_bytes()
        assert proxy.count(r"\.nupkg$") == 1
    finally:
        mirror.stop()


@pytest.mark.slow  # the test upstream (12 vectors pushed)
@pytest.mark.parametrize("upstream_bytes", ["signed", "tampered"])
def test_two_processes_on_one_data_folder_download_once_accepted_or_refused(
    upstream: NugetOrgUpstream, proxy: UpstreamProxy, tmp_path: Path, upstream_bytes: str
) -> None:
    """Two mirrors composed on one data folder (as two worker processes: each its own single flight; the per-version
    lock file between them) asked for one version at once: one download. The one that waited for the lock finds the
    version stored, or refused just now (a tampered package, NU3008), and does not download it again."""
    ver, path = vector(upstream, "system.memory")
    if upstream_bytes == "tampered":
        proxy.replace[nupkg_path("system.memory", ver)] = tampered(path)
    config = FeedConfig(
        data_dir=tmp_path / "feed",
        base_url="http://127.0.0.1:9",
        signing=SigningConfig(
            trust_bundle=CODESIGN_BUNDLE,
            timestamp_trust_bundle=TIMESTAMP_BUNDLE,
        ),
        ingest=IngestConfig(revocation_mode="offline", release_check_seconds=0),
        upstreams=(UpstreamConfig("test", proxy.source, ("*",), allow_insecure_connections=True),),
    )
    feeds = [build_feed(config, clock=upstream.now), build_feed(config, clock=upstream.now)]  # the vectors' clock
    feeds[0].service.setup()
    mirrors = [f.mirror for f in feeds]
    assert mirrors[0] is not None and mirrors[1] is not None and mirrors[0] is not mirrors[1]
    proxy.hold = True

    async def run() -> list[IngestOutcome | None]:
        try:
            asked = [asyncio.ensure_future(m.ensure_package("System.Memory", ver)) for m in mirrors if m is not None]
            deadline = time.monotonic() + 30
            while proxy.count(r"\.nupkg$") == 0 and time.monotonic() < deadline:
                await asyncio.sleep(0.05)
            await asyncio.sleep(1)  # time for the other to ask the upstream too, were it to
            proxy.release.set()
            return list(await asyncio.gather(*asked))
        finally:
            for m in mirrors:
                if m is not None:
                    await m.upstreams.aclose()

    try:
        outcomes = asyncio.run(run())
    finally:
        for f in feeds:
            f.close()
    assert proxy.count(r"\.nupkg$") == 1
    stored = feeds[0].service.storage.read_bytes(nupkg_key("system.memory", ver))
    if upstream_bytes == "signed":
        assert stored == path.read_bytes()
        assert [o.state for o in outcomes if o is not None] == ["accepted"]  # the other found it stored
    else:
        assert stored is None
        assert sorted(o.state if o is not None else "" for o in outcomes) == ["", "refused"]
        assert "NU3008" in next(o for o in outcomes if o is not None).message
        # the one that waited remembers the refusal as the other does: asked again, it does not download
        waited = mirrors[[o is None for o in outcomes].index(True)]
        assert waited is not None
        again = asyncio.run(waited.ensure_package("System.Memory", ver))
        assert again is not None and again.refused and "NU3008" in again.message
        assert proxy.count(r"\.nupkg$") == 1


def test_two_machines_ingesting_one_version_at_once_publish_it_once(tmp_path: Path) -> None:
    """Two composed feeds on one database and storage (as two machines sharing them; no file lock between them)
    ingest the same upstream package in four threads at once: the database publishes it once, every ingestion
    answers ``accepted`` (no 409 reaches a client), the stored bytes are the upstream's, nothing is left staged."""
    (id_lower, ver), path = next((k, p) for k, p in sorted(vector_files().items()) if k[0] != "newtonsoft.json")
    info = UpstreamInfo("https://api.nuget.org/v3/index.json", nuget_org_info(), published=VECTOR_NOW)
    for first in ingest_feed(tmp_path, now=VECTOR_NOW):
        second = build_feed(first.composed.config, clock=first.clock)
        try:
            second.service.setup()
            assert second.ingestion is not None
            ingestions = [first.ingestion, second.ingestion] * 2
            start = threading.Barrier(len(ingestions))

            def ingest(ingestion: Ingestion) -> IngestOutcome:
                start.wait()
                return ingestion.ingest(path, info)

            with ThreadPoolExecutor(len(ingestions)) as pool:
                outcomes = list(pool.map(ingest, ingestions))
        finally:
            second.close()
        assert [o.state for o in outcomes] == ["accepted"] * len(ingestions), [o.message for o in outcomes]
        # at least one lost the race inside the publish (its check before the stages found nothing stored)
        assert sum(o.detail == "already stored" for o in outcomes) < len(ingestions) - 1
        with first.composed.service.db.read() as session:
            rows = session.scalars(select(Package).where(Package.id_lower == id_lower)).all()
        assert [(r.version_lower, r.origin) for r in rows] == [(ver, "upstream")]
        assert first.nupkg(id_lower, ver).content == path.read_bytes()
        assert not list(first.composed.config.staging_dir.glob("*.upstream.nupkg"))


class HeldWriteStorage:
    """A storage backend (the feed's own, wrapped; a double at the ``Storage`` interface) whose write of one key waits
    until :attr:`landed` is set (:attr:`writing` tells that the write began), and which counts the looks at that key
    (``exists``). Everything else goes to the real backend."""

    def __init__(self, inner: Storage, key: str) -> None:
        self.inner = inner
        self.key = key
        self.writing = threading.Event()
        self.landed = threading.Event()
        self.looks = 0

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)

    def put_file(self, key: str, source: Path) -> None:
        if key == self.key:
            self.writing.set()
            self.landed.wait(60)
        self.inner.put_file(key, source)

    def exists(self, key: str) -> bool:
        if key == self.key:
            self.looks += 1
        return self.inner.exists(key)


async def _until(condition: Any, seconds: float = 60) -> None:
    deadline = time.monotonic() + seconds
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        await asyncio.sleep(0.01)


@pytest.mark.slow  # the test upstream (12 vectors pushed)
@pytest.mark.parametrize("write", ["lands", "never"])
def test_machine_that_lost_the_publish_waits_for_the_winners_storage_write(
    upstream: NugetOrgUpstream, proxy: UpstreamProxy, tmp_path: Path, caplog: pytest.LogCaptureFixture, write: str
) -> None:
    """Two composed feeds on one database and storage with their own lock folders (two machines sharing them) asked
    for one version: the winner commits the row, then its write of the ``.nupkg`` to storage is held. The loser's
    ingestion finds the version published ("accepted") with nothing in storage yet: its request waits and answers
    200 with the winner's bytes once the write lands; when it never lands within the bound, a 503 with Retry-After
    (logged), not a 404; asked again after the write, 200."""
    ver, path = vector(upstream, "system.memory")
    url = nupkg_path("system.memory", ver)
    key = nupkg_key("system.memory", ver)
    config = FeedConfig(
        data_dir=tmp_path / "feed",
        base_url="http://127.0.0.1:9",
        signing=SigningConfig(trust_bundle=CODESIGN_BUNDLE, timestamp_trust_bundle=TIMESTAMP_BUNDLE),
        ingest=IngestConfig(revocation_mode="offline", release_check_seconds=0),
        upstreams=(UpstreamConfig("test", proxy.source, ("*",), allow_insecure_connections=True),),
    )
    winner, loser = build_feed(config, clock=upstream.now), build_feed(config, clock=upstream.now)
    winner.service.setup()
    held = HeldWriteStorage(winner.service.storage, key)
    winner.service.storage = held
    watched = HeldWriteStorage(loser.service.storage, key)
    watched.landed.set()  # the loser's writes go through
    loser.service.storage = watched
    assert winner.mirror is not None and loser.mirror is not None
    mirror_b = loser.mirror
    mirror_b.locks = VersionLocks(tmp_path / "machine-b" / "locks")  # flock is per machine
    if write == "never":
        mirror_b.stored_wait = 1.0

    async def run() -> tuple[httpx.Response, httpx.Response, httpx.Response]:
        a = httpx.AsyncClient(transport=httpx.ASGITransport(app=winner.app()), base_url="http://a", timeout=120)
        b = httpx.AsyncClient(transport=httpx.ASGITransport(app=loser.app()), base_url="http://b", timeout=120)
        try:
            first = asyncio.ensure_future(a.get(url))
            await _until(held.writing.is_set)  # the winner committed the row and is writing the .nupkg
            second = asyncio.ensure_future(b.get(url))
            await _until(lambda: second.done() or mirror_b.ingested["accepted"] == 1)
            looks = watched.looks
            # the loser's ingestion answered "accepted" (published by the winner); it either answered already or
            # looks at storage again (its check after the ingestion, then its wait)
            await _until(lambda: second.done() or watched.looks >= looks + 2)
            if write == "lands":
                held.landed.set()
                late = await second
            else:
                late = await second
                held.landed.set()
            won = await first
            again = await b.get(url)
            return won, late, again
        finally:
            held.landed.set()
            await a.aclose()
            await b.aclose()
            for m in (winner.mirror, loser.mirror):
                if m is not None:
                    await m.upstreams.aclose()

    try:
        with caplog.at_level(logging.WARNING, logger="nuseal.feed.mirror.readthrough"):
            won, late, again = asyncio.run(run())
        with winner.service.db.read() as session:
            rows = session.scalars(select(Package).where(Package.id_lower == "system.memory")).all()
    finally:
        winner.close()
        loser.close()
    assert proxy.count(r"\.nupkg$") == 2  # no lock between the machines: both downloaded
    assert [r.version_lower for r in rows] == [ver]
    assert mirror_b.ingested["accepted"] == 1
    assert won.status_code == 200 and won.content == path.read_bytes()
    if write == "lands":
        assert late.status_code == 200, late.text
        assert late.content == path.read_bytes()
        assert not [r for r in caplog.records if r.levelno >= logging.WARNING and key in r.getMessage()]
    else:
        assert late.status_code == 503, late.text
        assert int(late.headers["retry-after"]) > 0
        assert key in late.text
        assert [r for r in caplog.records if r.levelno == logging.WARNING and key in r.getMessage()]
    assert again.status_code == 200 and again.content == path.read_bytes()
