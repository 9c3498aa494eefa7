"""The feed takes changes of its ``--osv`` folder without a restart (:mod:`nuseal.feed.mirror.osv_refresh`): a malicious
record added while it serves refuses the version at push and ingestion and is listed in the ``VulnerabilityInfo``
documents with a new ``@updated``; an unchanged folder is not read again and rewrites nothing; a record broken while
it serves keeps the data in place and is named in the log; a second process on the same data folder (a ``--workers``
worker, its own memory) takes the change by itself, and only the lease holder rewrites the documents.

The feed is composed as ``nuseal serve`` composes it (``ingest_support.ingest_feed``) on a movable clock: the refresh
is due when the clock passed ``--osv-refresh`` (default one hour); the background task's :meth:`tick` is what its loop
runs every period."""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from nuseal.feed.compose import Feed as ComposedFeed
from nuseal.feed.compose import build_feed
from nuseal.feed.mirror.checks import UpstreamInfo
from nuseal.package.version import NuGetVersion
from nuseal.package.version_range import VersionRange

from .conftest import make_package
from .ingest_support import IngestFeed, ingest_feed

#: Inside one month, so the base/update cut-off stays (2026-12-01).
NOW = datetime(2026, 12, 7, 12, 0, tzinfo=UTC)
#: The default --osv-refresh period, plus a second.
PERIOD = timedelta(seconds=3601)
UPSTREAM = UpstreamInfo("https://upstream.example/v3/index.json")


def _record(ident: str, package_id: str, versions: list[str], modified: str) -> dict[str, Any]:
    return {
        "id": ident,
        "modified": modified,
        "summary": f"Malicious code in {package_id}" if ident.startswith("MAL-") else "A vulnerability",
        "affected": [{"package": {"ecosystem": "NuGet", "name": package_id}, "versions": versions}],
    }


def _write(folder: Path, record: dict[str, Any]) -> Path:
    path = folder / record["affected"][0]["package"]["name"].lower() / f"{record['id']}.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(record, indent=2), encoding="utf-8")
    return path


@pytest.fixture
def osv(tmp_path: Path) -> Path:
    folder = tmp_path / "osv"
    _write(folder, _record("GHSA-aaaa-bbbb-cccc", "Some.Library", ["1.0.0"], "2026-11-01T00:00:00Z"))
    _write(folder, _record("MAL-2026-0001", "Evil.Package", ["1.0.0"], "2026-11-02T00:00:00Z"))
    return folder


@pytest.fixture
def feed(tmp_path: Path, osv: Path) -> Iterator[IngestFeed]:
    yield from ingest_feed(tmp_path, now=NOW, osv_path=str(osv))


def _documents(f: IngestFeed) -> tuple[dict[str, dict[str, str]], dict[str, Any]]:
    """The served VulnerabilityInfo index (entries by ``@name``) and its data files (by ``@name``), read as a client
    reads them: the service index, then the index, then every file it names."""
    resources = {r["@type"]: r["@id"] for r in f.client.get("/v3/index.json").json()["resources"]}
    r = f.client.get(resources["VulnerabilityInfo/6.7.0"])
    assert r.status_code == 200
    index = {e["@name"]: e for e in r.json()}
    files = {}
    for name, entry in index.items():
        got = f.client.get(entry["@id"])
        assert got.status_code == 200
        files[name] = got.json()
    return index, files


def _stored(f: IngestFeed) -> dict[str, tuple[bytes, int]]:
    folder = f.data_dir / "storage" / "v3" / "vulnerabilities"
    return {p.name: (p.read_bytes(), p.stat().st_mtime_ns) for p in sorted(folder.iterdir())}


def _task(feed: ComposedFeed) -> Any:
    from nuseal.feed.mirror.osv_refresh import OsvRefreshTask  # noqa: PLC0415 - the module under test

    (task,) = [t for t in feed.tasks if isinstance(t, OsvRefreshTask)]
    return task


def _nupkg(tmp_path: Path, package_id: str, version: str) -> Path:
    path = tmp_path / f"{package_id}.{version}.nupkg"
    path.write_bytes(make_package(package_id, version))
    return path


def test_a_malicious_record_added_to_the_folder_is_refused_and_listed_without_a_restart(
    feed: IngestFeed, osv: Path, tmp_path: Path
) -> None:
    index, files = _documents(feed)
    assert not any("bad.package" in data for data in files.values())
    assert feed.push(make_package("Bad.Package", "1.0.0")).status_code == 201  # no advisory names it yet

    _write(osv, _record("MAL-2026-0100", "Bad.Package", ["1.0.1", "1.0.2"], "2026-12-06T00:00:00Z"))
    feed.clock.now += PERIOD

    r = feed.push(make_package("Bad.Package", "1.0.1"))
    assert r.status_code == 400 and "MAL-2026-0100" in r.text
    outcome = feed.ingestion.ingest(_nupkg(tmp_path, "Bad.Package", "1.0.2"), UPSTREAM)
    assert outcome.refused and "MAL-2026-0100" in outcome.message
    assert feed.versions("Bad.Package") == ["1.0.0"]

    written = _task(feed.composed).tick()
    assert written and written[-1].endswith("index.json")  # the data file first, the index naming it last
    after, files_after = _documents(feed)
    (name,) = [n for n, data in files_after.items() if "bad.package" in data]
    assert after[name]["@updated"] != index[name]["@updated"]  # NuGet fetches the file again
    assert datetime.fromisoformat(after[name]["@updated"]) == feed.clock.now
    entries = files_after[name]["bad.package"]
    assert entries and all("MAL-2026-0100" in e["url"] and e["severity"] == 3 for e in entries)  # malicious: critical
    ranges = [VersionRange.parse(e["versions"]) for e in entries]
    listed = [any(r.satisfies(NuGetVersion.parse(v)) for r in ranges) for v in ("1.0.0", "1.0.1", "1.0.2")]
    assert listed == [False, True, True]
    unchanged = [n for n in index if n != name]
    assert all(after[n]["@updated"] == index[n]["@updated"] for n in unchanged)
    assert all(files_after[n] == files[n] for n in unchanged)


def test_an_unchanged_folder_is_not_read_again_and_rewrites_nothing(feed: IngestFeed, osv: Path) -> None:
    data = feed.composed.osv
    assert data is not None
    info = data.current()
    stored = _stored(feed)
    task = _task(feed.composed)

    feed.clock.now += PERIOD
    assert task.tick() == []
    assert data.current() is info  # the same snapshot: the folder was not read again
    assert feed.push(make_package("Evil.Package", "1.0.0")).status_code == 400
    assert _stored(feed) == stored  # same bytes, same modification times

    # A record rewritten (one version more) is a change: read, and the documents rewritten.
    _write(osv, _record("GHSA-aaaa-bbbb-cccc", "Some.Library", ["1.0.0", "1.0.1"], "2026-11-01T00:00:00Z"))
    feed.clock.now += PERIOD
    assert task.tick()
    assert data.current() is not info
    assert _stored(feed) != stored


def test_a_record_broken_while_serving_keeps_the_data_and_is_reported(
    feed: IngestFeed, osv: Path, caplog: pytest.LogCaptureFixture
) -> None:
    index, files = _documents(feed)
    stored = _stored(feed)
    # A sync rewriting the malicious record is cut midway, and brings a new record with it.
    record = osv / "evil.package" / "MAL-2026-0001.json"
    text = record.read_text(encoding="utf-8")
    record.write_text(text[: len(text) // 2], encoding="utf-8")
    _write(osv, _record("MAL-2026-0002", "Other.Bad", ["2.0.0"], "2026-12-06T00:00:00Z"))
    feed.clock.now += PERIOD

    with caplog.at_level(logging.ERROR):
        r = feed.push(make_package("Evil.Package", "1.0.0"))
        assert r.status_code == 400 and "MAL-2026-0001" in r.text  # the data in place still refuses it
        assert _task(feed.composed).tick() == []
    reports = [rec.getMessage() for rec in caplog.records if str(record) in rec.getMessage()]
    assert reports and "not JSON" in reports[0] and "not taken" in reports[0]
    assert feed.composed.osv is not None and str(record) in (feed.composed.osv.problem or "")
    assert _stored(feed) == stored and _documents(feed) == (index, files)

    # Repaired: the next change is taken whole (the new record with it), and the problem is cleared.
    record.write_text(text, encoding="utf-8")
    feed.clock.now += PERIOD
    r = feed.push(make_package("Other.Bad", "2.0.0"))
    assert r.status_code == 400 and "MAL-2026-0002" in r.text
    assert feed.composed.osv.problem is None


def test_each_worker_takes_the_change_and_one_rewrites_the_documents(
    feed: IngestFeed, osv: Path, tmp_path: Path
) -> None:
    # A second serving process on the same data folder and database, as a `--workers 2` worker builds it.
    other = build_feed(feed.composed.config, clock=feed.clock)
    try:
        outcome = other.ingestion is not None and other.ingestion.ingest(
            _nupkg(tmp_path, "Evil.Package", "0.9.0"), UPSTREAM
        )
        assert outcome and outcome.accepted  # the worker has read the OSV data: nothing names 0.9.0

        _write(osv, _record("MAL-2026-0003", "Evil.Package", ["0.9.1", "0.9.2"], "2026-12-06T00:00:00Z"))
        feed.clock.now += PERIOD
        refused = other.ingestion.ingest(_nupkg(tmp_path, "Evil.Package", "0.9.1"), UPSTREAM)
        assert refused.refused and "MAL-2026-0003" in refused.message
        r = feed.push(make_package("Evil.Package", "0.9.2"))
        assert r.status_code == 400 and "MAL-2026-0003" in r.text

        mine, theirs = _task(feed.composed), _task(other)
        written = mine.tick()
        assert written and written[-1].endswith("index.json")
        assert theirs.tick() is None  # the lease is held: this process writes nothing
        _, files = _documents(feed)
        assert any("MAL-2026-0003" in e["url"] for data in files.values() for e in data.get("evil.package", ()))

        feed.clock.now += timedelta(seconds=3600 + 121)  # the holder stopped renewing: its lease ran out
        assert theirs.tick() == []  # taken over; the documents are already those of the data
    finally:
        other.close()


def test_the_month_turning_moves_the_cut_off_without_reading_the_folder(feed: IngestFeed, osv: Path) -> None:
    _write(osv, _record("MAL-2026-0004", "Evil.Package", ["3.0.0"], "2026-12-06T00:00:00Z"))
    feed.clock.now += PERIOD
    task = _task(feed.composed)
    assert task.tick()
    _, files = _documents(feed)
    where = {name for name, data in files.items() for e in data.get("evil.package", ()) if "MAL-2026-0004" in e["url"]}
    assert where == {"update"}  # modified this month

    data = feed.composed.osv
    assert data is not None
    db = data.current().db
    feed.clock.now = datetime(2027, 1, 2, tzinfo=UTC)
    written = task.tick()
    assert written and written[-1].endswith("index.json")
    assert data.current().db is db  # the same records, cut again
    index, files = _documents(feed)
    where = {name for name, data in files.items() for e in data.get("evil.package", ()) if "MAL-2026-0004" in e["url"]}
    assert where == {"base"} and "2027-01-01" in index["base"]["comment"]
