"""Crash consistency (issue 11, item 2): a real `nuseal serve` killed with SIGKILL in the middle of a burst of
pushes, at every step of the publish path and at random moments, then restarted.

After every restart, what clients can see must be exactly what the database committed:

- every version with a `.nupkg` or `.nuspec` in storage, in a flat-container index or a registration document has a
  committed row, and every committed row is downloadable with the bytes whose SHA-512 the row holds;
- the flat-container index and both registration views of every id list exactly the committed versions;
- a push acknowledged with 201 before the crash is committed;
- nothing is left in staging or in the pending area, and no temporary file in storage;
- pushing the whole burst again answers 409 for every committed version, with the bytes behind its URL unchanged,
  and 201 for the others, which are then served as pushed.

The crash points come from ``NUSEAL_TEST_CRASH_AT`` (:mod:`nuseal.feed.store.faults`): the server kills itself when
one chosen push of the burst reaches the step, while the others are in flight. The random variant kills the
whole process group of a two-worker server from outside. On SQLite and on PostgreSQL.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import os
import random
import signal
import time
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pytest
from sqlalchemy import text

from nuseal.feed.store.database import Database
from nuseal.feed.store.faults import CRASH_ENV_VAR, PUBLISH_POINTS

from .conftest import Feed, PgCluster, _free_port, make_package, nuspec_xml, start_feed

IDS = ("Crash.Alpha", "Crash.Beta")
#: Distinct versions per id in one burst, plus RACERS copies (different bytes) of one more version of the first id.
PER_ID = 3
RACERS = 2
RANDOM_ROUNDS = 2


def _sha512(data: bytes) -> str:
    return base64.b64encode(hashlib.sha512(data).digest()).decode("ascii")


@dataclass
class Ledger:
    """Every body pushed so far, by (id_lower, version_lower), and which were acknowledged with 201."""

    bodies: dict[tuple[str, str], list[bytes]] = field(default_factory=dict)
    acknowledged: dict[tuple[str, str], bytes] = field(default_factory=dict)


def _burst(round_no: int) -> list[tuple[str, str, bytes]]:
    out = []
    for package_id in IDS:
        for n in range(PER_ID):
            out.append((package_id, f"{round_no}.0.{n}", make_package(package_id, f"{round_no}.0.{n}")))
    for r in range(RACERS):
        version = f"{round_no}.1.0"
        out.append((IDS[0], version, make_package(IDS[0], version, description=f"racer {r}")))
    random.Random(round_no).shuffle(out)
    return out


async def _push_all(feed: Feed, bodies: list[bytes], *, on_first: asyncio.Event | None = None) -> list[int | None]:
    """Push every body at once; None for a push the dying server never answered."""
    limits = httpx.Limits(max_connections=len(bodies), max_keepalive_connections=0)
    async with httpx.AsyncClient(base_url=feed.base_url, timeout=60, limits=limits) as c:

        async def one(data: bytes) -> int | None:
            try:
                r = await c.put(
                    "/api/v2/package/",
                    files={"package": ("p.nupkg", data, "application/octet-stream")},
                    headers={"X-NuGet-ApiKey": feed.keys["alice"]},
                )
            except httpx.HTTPError:
                return None
            if on_first is not None and r.status_code == 201:
                on_first.set()
            return r.status_code

        return list(await asyncio.gather(*(one(b) for b in bodies)))


def _record(ledger: Ledger, burst: list[tuple[str, str, bytes]], statuses: list[int | None]) -> None:
    for (package_id, version, data), status in zip(burst, statuses, strict=True):
        key = (package_id.lower(), version)
        ledger.bodies.setdefault(key, []).append(data)
        if status == 201:
            assert key not in ledger.acknowledged or ledger.acknowledged[key] == data, f"two 201s for {key}"
            ledger.acknowledged[key] = data
        assert status in (201, 409, None), f"push of {key} answered {status}"


def _committed(feed: Feed) -> dict[tuple[str, str], str]:
    """(id_lower, version_lower) -> base64 SHA-512, straight from the database."""
    url = feed.database_url or f"sqlite:///{feed.data_dir / 'feed.db'}"
    db = Database(url)
    try:
        with db.read() as session:
            rows = session.execute(text("SELECT id_lower, version_lower, sha512 FROM packages")).all()
    finally:
        db.dispose()
    return {(r[0], r[1]): r[2] for r in rows}


def _versions_key(v: str) -> tuple[int, ...]:
    return tuple(int(p) for p in v.split("."))


def _check_consistent(
    feed: Feed, ledger: Ledger, where: str, recent: set[tuple[str, str]] | None = None
) -> dict[tuple[str, str], str]:
    """Storage and documents against the database (everything), downloads over HTTP (of ``recent`` versions
    only when given: the older ones were downloaded by earlier checks and their files are hashed here anyway)."""
    committed = _committed(feed)
    storage = feed.data_dir / "storage"
    # files: every version folder and package file belongs to a committed row, with the row's bytes
    on_disk: set[tuple[str, str]] = set()
    for path in storage.rglob("*"):
        assert not path.name.startswith("."), f"{where}: temporary file left in storage: {path}"
        rel = path.relative_to(storage).parts
        if path.is_file() and rel[:2] == ("v3", "flatcontainer") and len(rel) == 5:
            on_disk.add((rel[2], rel[3]))
            if path.suffix == ".nupkg":
                assert committed.get((rel[2], rel[3])) == _sha512(path.read_bytes()), f"{where}: {path} vs database"
    assert on_disk == set(committed), f"{where}: stored versions differ from committed rows"
    for key, data in ledger.acknowledged.items():
        assert committed.get(key) == _sha512(data), f"{where}: acknowledged push {key} lost"
    by_id: dict[str, list[str]] = {}
    for id_lower, version in committed:
        by_id.setdefault(id_lower, []).append(version)
    with feed.client() as c:
        for id_lower in sorted({i.lower() for i in IDS} | set(by_id)):
            want = sorted(by_id.get(id_lower, []), key=_versions_key)
            r = c.get(f"/v3/flatcontainer/{id_lower}/index.json")
            assert (r.json()["versions"] if r.status_code == 200 else []) == want, f"{where}: flat index of {id_lower}"
            for view in ("registration", "registration-semver2"):
                r = c.get(f"/v3/{view}/{id_lower}/index.json")
                listed = (
                    [i["catalogEntry"]["version"] for page in r.json()["items"] for i in page["items"]]
                    if r.status_code == 200
                    else []
                )
                assert listed == want, f"{where}: {view} of {id_lower}"
                leaves = {p.stem for p in (storage / "v3" / view / id_lower).glob("*.json") if p.name != "index.json"}
                assert leaves == set(want), f"{where}: {view} leaves of {id_lower}"
        for (id_lower, version), sha in committed.items():
            if recent is not None and (id_lower, version) not in recent:
                continue
            r = c.get(f"/v3/flatcontainer/{id_lower}/{version}/{id_lower}.{version}.nupkg")
            assert r.status_code == 200 and _sha512(r.content) == sha, f"{where}: download of {id_lower} {version}"
            nuspec = c.get(f"/v3/flatcontainer/{id_lower}/{version}/{id_lower}.nuspec")
            assert nuspec.status_code == 200, f"{where}: nuspec of {id_lower} {version}"
        for id_lower, version in (set(ledger.bodies) if recent is None else recent) - set(committed):
            r = c.get(f"/v3/flatcontainer/{id_lower}/{version}/{id_lower}.{version}.nupkg")
            assert r.status_code == 404, f"{where}: uncommitted {id_lower} {version} is served"
            r = c.get(f"/v3/registration-semver2/{id_lower}/{version}.json")
            assert r.status_code == 404, f"{where}: uncommitted {id_lower} {version} has a registration leaf"
    staging = feed.data_dir / "staging"
    assert not (staging.is_dir() and list(staging.iterdir())), f"{where}: staging leftovers"
    pending = feed.data_dir / "pending"
    assert not (pending.is_dir() and list(pending.iterdir())), f"{where}: pending leftovers"
    return committed


def _repush_and_check(
    feed: Feed, ledger: Ledger, burst: list[tuple[str, str, bytes]], committed: dict[tuple[str, str], str], where: str
) -> None:
    """Push the burst again: 409 for committed versions (their bytes unchanged), exactly one 201 per other version,
    then served as pushed."""
    keys = {(package_id.lower(), version) for package_id, version, _ in burst}
    with feed.client() as c:
        before = {
            key: c.get(f"/v3/flatcontainer/{key[0]}/{key[1]}/{key[0]}.{key[1]}.nupkg").content
            for key in committed
            if key in keys
        }
    statuses = asyncio.run(_push_all(feed, [data for _, _, data in burst]))
    accepted: dict[tuple[str, str], list[bytes]] = {}
    for (package_id, version, data), status in zip(burst, statuses, strict=True):
        key = (package_id.lower(), version)
        if key in committed:
            assert status == 409, f"{where}: re-push of committed {key} answered {status}"
        else:
            assert status in (201, 409), f"{where}: re-push of {key} answered {status}"
            if status == 201:
                accepted.setdefault(key, []).append(data)
    for key in keys - set(committed):
        got = accepted.get(key, [])
        assert len(got) == 1, f"{where}: re-push of uncommitted {key}: {len(got)} answers 201"
        ledger.acknowledged[key] = accepted[key][0]
    with feed.client() as c:
        for key, data in before.items():
            assert c.get(f"/v3/flatcontainer/{key[0]}/{key[1]}/{key[0]}.{key[1]}.nupkg").content == data, (
                f"{where}: the bytes behind {key} changed"
            )
    _check_consistent(feed, ledger, where + ", after re-push", keys)


def _wait_dead(feed: Feed, where: str) -> None:
    try:
        feed.process.wait(timeout=30)
    except Exception as exc:  # pragma: no cover - a failure path
        raise AssertionError(f"{where}: the server did not die") from exc
    assert feed.process.returncode == -signal.SIGKILL, f"{where}: server ended with {feed.process.returncode}"
    if feed.process.stdout is not None:
        feed.process.stdout.close()


#: Port of each data folder's server, the same at every restart: the documents embed the base URL, and a start
#: with another one rewrites every document, which would hide damage the recovery must find by itself.
_PORTS: dict[Path, int] = {}


def _restart(data_dir: Path, keys: dict[str, str], database_url: str | None, **kw: object) -> Feed:
    """Start `nuseal serve` on ``data_dir`` (always on the same port); the first start (empty ``keys``) creates the
    users and fills ``keys``."""
    port = _PORTS.setdefault(data_dir, _free_port())
    users = () if keys else ("alice",)
    feed = start_feed(data_dir, "--port", str(port), users=users, database_url=database_url, **kw)  # type: ignore[arg-type]
    if keys:
        feed.keys = keys
    else:
        keys.update(feed.keys)
    return feed


def _victim(burst: list[tuple[str, str, bytes]]) -> str:
    """The push the armed server kills itself in: a distinct version (not a racer, which may lose with 409)."""
    package_id, version, _ = next(b for b in burst if b[1].split(".")[1] == "0")
    return f"{package_id.lower()}/{version}"


def _crash_at_every_point(tmp_path: Path, database_url: str | None) -> None:
    """One round per crash point: the server is armed to die when one chosen push of the burst reaches the point;
    the next start (armed for the next round) is checked first, then gets the next burst."""
    data_dir = tmp_path / "feed"
    keys: dict[str, str] = {}
    ledger = Ledger()
    bursts = [_burst(n) for n in range(1, len(PUBLISH_POINTS) + 1)]
    previous: list[tuple[str, str, bytes]] | None = None
    for n, point in enumerate([*PUBLISH_POINTS, None]):
        env = {CRASH_ENV_VAR: f"{point}:{_victim(bursts[n])}"} if point else {}
        feed = _restart(data_dir, keys, database_url, env=env)
        try:
            if previous is not None:
                where = f"crash at {PUBLISH_POINTS[n - 1]}"
                recent = {(package_id.lower(), version) for package_id, version, _ in previous}
                committed = _check_consistent(feed, ledger, where, recent)
                _repush_and_check(feed, ledger, previous, committed, where)
            if point is None:
                break
            statuses = asyncio.run(_push_all(feed, [data for _, _, data in bursts[n]]))
            _record(ledger, bursts[n], statuses)
            _wait_dead(feed, f"crash at {point}")
            previous = bursts[n]
        finally:
            feed.stop()


async def _push_then_kill(feed: Feed, bodies: list[bytes], delay: float) -> list[int | None]:
    """Push every body at once; ``delay`` seconds after the first 201, SIGKILL the server's process group (the
    server and its workers, nothing else)."""
    first_ok = asyncio.Event()
    pushes = asyncio.create_task(_push_all(feed, bodies, on_first=first_ok))
    await asyncio.wait_for(first_ok.wait(), timeout=60)
    await asyncio.sleep(delay)
    os.killpg(feed.process.pid, signal.SIGKILL)
    return await pushes


def _kill_at_random(tmp_path: Path, database_url: str | None) -> None:
    """Rounds of: start with two workers, check what the last kill left, push a burst, SIGKILL everything."""
    data_dir = tmp_path / "feed"
    keys: dict[str, str] = {}
    ledger = Ledger()
    rng = random.Random(11)
    previous: list[tuple[str, str, bytes]] | None = None
    for round_no in range(1, RANDOM_ROUNDS + 2):
        feed = _restart(data_dir, keys, database_url, workers=2)
        try:
            if previous is not None:
                where = f"random kill, round {round_no - 1}"
                recent = {(package_id.lower(), version) for package_id, version, _ in previous}
                committed = _check_consistent(feed, ledger, where, recent)
                _repush_and_check(feed, ledger, previous, committed, where)
            if round_no > RANDOM_ROUNDS:
                break
            burst = _burst(100 + round_no)
            statuses = asyncio.run(_push_then_kill(feed, [data for _, _, data in burst], rng.uniform(0.0, 0.03)))
            _record(ledger, burst, statuses)
            _wait_dead(feed, f"random kill, round {round_no}")
            time.sleep(0.2)  # let the killed workers go
            previous = burst
        finally:
            feed.stop()


@pytest.mark.slow
def test_crash_at_every_publish_step_sqlite(tmp_path: Path) -> None:
    _crash_at_every_point(tmp_path, None)


@pytest.mark.slow
def test_kill_at_random_during_a_burst_sqlite(tmp_path: Path) -> None:
    _kill_at_random(tmp_path, None)


@pytest.mark.slow
@pytest.mark.postgres
def test_crash_at_every_publish_step_postgres(tmp_path: Path, pg_cluster: PgCluster) -> None:
    _crash_at_every_point(tmp_path, pg_cluster.new_database())


@pytest.mark.slow
@pytest.mark.postgres
def test_kill_at_random_during_a_burst_postgres(tmp_path: Path, pg_cluster: PgCluster) -> None:
    _kill_at_random(tmp_path, pg_cluster.new_database())


def test_a_restart_removes_what_an_older_feed_served_without_a_row(tmp_path: Path) -> None:
    """The state the issue found after a crash of the feed as it was before this protocol: a version's `.nupkg`,
    `.nuspec`, registration leaf and flat-container entry stored with no committed row, and a whole id likewise.
    A restart removes them and rewrites the documents from the database; as those bytes were served under an
    immutable URL, the version can be pushed again only with the same bytes."""
    data_dir = tmp_path / "feed"
    keys: dict[str, str] = {}
    feed = _restart(data_dir, keys, None)
    try:
        assert feed.push(make_package("Old.Crash", "1.0.0")).status_code == 201
    finally:
        feed.stop()
    v3 = data_dir / "storage" / "v3"
    served = {"old.crash": make_package("Old.Crash", "2.0.0"), "ghost.pkg": make_package("Ghost.Pkg", "2.0.0")}
    for id_lower, data in served.items():
        folder = v3 / "flatcontainer" / id_lower / "2.0.0"
        folder.mkdir(parents=True)
        (folder / f"{id_lower}.2.0.0.nupkg").write_bytes(data)
        (folder / f"{id_lower}.nuspec").write_bytes(nuspec_xml(id_lower, "2.0.0"))
        (v3 / "registration-semver2" / id_lower).mkdir(parents=True, exist_ok=True)
        (v3 / "registration-semver2" / id_lower / "2.0.0.json").write_text("{}")
    (v3 / "flatcontainer/old.crash/index.json").write_text('{"versions":["1.0.0","2.0.0"]}')
    (v3 / "flatcontainer/ghost.pkg/index.json").write_text('{"versions":["2.0.0"]}')

    feed = _restart(data_dir, keys, None)
    try:
        with feed.client() as c:
            assert c.get("/v3/flatcontainer/old.crash/index.json").json() == {"versions": ["1.0.0"]}
            for id_lower in served:
                assert c.get(f"/v3/flatcontainer/{id_lower}/2.0.0/{id_lower}.2.0.0.nupkg").status_code == 404
                assert c.get(f"/v3/registration-semver2/{id_lower}/2.0.0.json").status_code == 404
            assert c.get("/v3/flatcontainer/ghost.pkg/index.json").status_code == 404
        assert not (v3 / "flatcontainer/ghost.pkg").exists() and not (v3 / "registration-semver2/ghost.pkg").exists()
        for id_lower, data in served.items():
            package_id = "Old.Crash" if id_lower == "old.crash" else "Ghost.Pkg"
            other = feed.push(make_package(package_id, "2.0.0", description="other bytes"))
            assert other.status_code == 409 and "served before with other bytes" in other.text, other.text
            assert feed.push(data).status_code == 201
            with feed.client() as c:
                assert c.get(f"/v3/flatcontainer/{id_lower}/2.0.0/{id_lower}.2.0.0.nupkg").content == data
        _check_consistent(feed, Ledger(), "after the older feed's leftovers")
    finally:
        feed.stop()


def test_a_crash_after_an_unlist_commits_is_finished_by_the_restart(tmp_path: Path) -> None:
    """Killed after an unlist committed and before its documents were rewritten: the restart rewrites them, so the
    registration leaf, the registration index and search agree with the database (unlisted)."""
    data_dir = tmp_path / "feed"
    keys: dict[str, str] = {}
    feed = _restart(data_dir, keys, None, env={CRASH_ENV_VAR: "listing.committed:unlist.me/1.0.0"})
    try:
        assert feed.push(make_package("Unlist.Me", "1.0.0")).status_code == 201
        assert feed.push(make_package("Unlist.Me", "1.1.0")).status_code == 201
        with feed.client() as c, pytest.raises(httpx.HTTPError):
            c.delete("/api/v2/package/Unlist.Me/1.0.0", headers={"X-NuGet-ApiKey": keys["alice"]})
        _wait_dead(feed, "crash after the unlist committed")
    finally:
        feed.stop()
    feed = _restart(data_dir, keys, None)
    try:
        with feed.client() as c:
            for view in ("registration", "registration-semver2"):
                assert c.get(f"/v3/{view}/unlist.me/1.0.0.json").json()["listed"] is False
                index = c.get(f"/v3/{view}/unlist.me/index.json").json()
                listed = {i["catalogEntry"]["version"]: i["catalogEntry"]["listed"] for i in index["items"][0]["items"]}
                assert listed == {"1.0.0": False, "1.1.0": True}
            hit = c.get("/v3/search", params={"q": "unlist.me"}).json()["data"][0]
            assert [v["version"] for v in hit["versions"]] == ["1.1.0"]
        assert not (data_dir / "pending").is_dir() or not list((data_dir / "pending").iterdir())
    finally:
        feed.stop()


@pytest.mark.slow
def test_a_worker_killed_after_the_commit_is_finished_by_its_replacement(tmp_path: Path) -> None:
    """Two workers; the one publishing a chosen push dies right after the commit. uvicorn starts a new worker, which
    settles the pending entry it finds when it starts: the version becomes visible without restarting the feed."""
    data_dir = tmp_path / "feed"
    keys: dict[str, str] = {}
    feed = _restart(data_dir, keys, None, workers=2, env={CRASH_ENV_VAR: "publish.committed:worker.crash/1.0.0"})
    try:
        victim = make_package("Worker.Crash", "1.0.0")
        with pytest.raises(httpx.HTTPError):
            feed.push(victim)
        assert feed.process.poll() is None  # only the worker died
        deadline = time.monotonic() + 60
        with feed.client() as c:
            while time.monotonic() < deadline:
                r = c.get("/v3/flatcontainer/worker.crash/index.json")
                if r.status_code == 200:
                    break
                time.sleep(0.2)
            assert r.status_code == 200 and r.json() == {"versions": ["1.0.0"]}, "the new worker did not settle it"
            assert c.get("/v3/flatcontainer/worker.crash/1.0.0/worker.crash.1.0.0.nupkg").content == victim
        assert feed.push(victim).status_code == 409
    finally:
        feed.stop()
    # the dead worker's staging upload stays until the next start of the feed (which worker received what is not
    # known while other workers run); that start finds nothing else to repair
    feed = _restart(data_dir, keys, None)
    try:
        _check_consistent(feed, Ledger(acknowledged={("worker.crash", "1.0.0"): victim}), "after a worker died")
    finally:
        feed.stop()
