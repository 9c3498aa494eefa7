"""The S3 storage backend (nuseal.feed.store.s3) against a real S3-compatible server: moto's standalone server
(``python -m moto.server``) on 127.0.0.1, spoken to over HTTP with SigV4 by boto3, as a bucket on AWS, MinIO or Ceph
would be. The same Storage contract as the local folder, and a whole feed on it: publish, serve, recover."""

from __future__ import annotations

import asyncio
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import httpx
import pytest

from nuseal.errors import ConfigError, UsageError
from nuseal.feed.accounts.keys import authenticate, create_api_key, create_user
from nuseal.feed.compose import build_feed
from nuseal.feed.config import FeedConfig
from nuseal.feed.publish.submission import Submission
from nuseal.feed.publish.upload import StagedUpload
from nuseal.feed.store.s3 import S3Storage, parse_s3_url

from .conftest import make_package, start_feed

boto3 = pytest.importorskip("boto3")

T0 = datetime(2026, 1, 1, tzinfo=UTC)
BUCKET = "nuseal-feed"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture(scope="module")
def s3_endpoint(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    port = _free_port()
    log = (tmp_path_factory.mktemp("moto") / "moto.log").open("wb")
    proc = subprocess.Popen(
        [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)], stdout=log, stderr=log
    )
    endpoint = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                if httpx.get(f"{endpoint}/moto-api/", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            if time.monotonic() > deadline or proc.poll() is not None:
                raise AssertionError("moto's S3 server did not start")
            time.sleep(0.1)
        yield endpoint
    finally:
        proc.terminate()
        proc.wait(10)
        log.close()


@pytest.fixture
def s3_env(s3_endpoint: str, monkeypatch: pytest.MonkeyPatch) -> str:
    """Credentials for the test server (boto3's usual chain reads them), and a fresh bucket."""
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "nuseal-test")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "nuseal-test-secret")
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    client = boto3.client("s3", endpoint_url=s3_endpoint, region_name="us-east-1")
    for bucket in client.list_buckets().get("Buckets", []):
        for page in client.get_paginator("list_objects_v2").paginate(Bucket=bucket["Name"]):
            for item in page.get("Contents", []):
                client.delete_object(Bucket=bucket["Name"], Key=item["Key"])
        client.delete_bucket(Bucket=bucket["Name"])
    client.create_bucket(Bucket=BUCKET)
    return s3_endpoint


def test_storage_urls_are_checked() -> None:
    assert parse_s3_url("s3://b/feeds/one/?endpoint=http://127.0.0.1:9000&region=eu-west-1") == (
        "b",
        "feeds/one/",
        "http://127.0.0.1:9000",
        "eu-west-1",
    )
    assert parse_s3_url("s3://b") == ("b", "", None, None)
    for bad in ("http://b/x", "s3:///x", "s3://b?endpoint=ftp://x", "s3://b?acl=public", "s3://b/../x"):
        with pytest.raises((ConfigError, UsageError)):
            parse_s3_url(bad)
    with pytest.raises(ConfigError, match="s3://"):
        FeedConfig(data_dir=Path("/tmp/x"), base_url="http://127.0.0.1:1", storage_url="gs://b")


def test_the_s3_backend_keeps_the_storage_contract(s3_env: str, tmp_path: Path) -> None:
    st = S3Storage(BUCKET, "feed/", endpoint_url=s3_env, region="us-east-1")
    other = S3Storage(BUCKET, "other/", endpoint_url=s3_env, region="us-east-1")
    key = "v3/flatcontainer/a/1.0.0/a.1.0.0.nupkg"
    for bad in ("../x", "a//b", "/abs", ""):
        with pytest.raises(UsageError):
            st.put_bytes(bad, b"x")
    assert st.open(key) is None and st.stat(key) is None and st.read_bytes(key) is None and not st.exists(key)
    assert st.list_keys("v3/flatcontainer/") == [] and st.list_temporaries("v3/") == []
    st.delete(key)  # missing: no error

    data = bytes(range(256)) * 3000
    st.put_bytes(key, data, durable=True)
    info = st.stat(key)
    assert info is not None and info.size == len(data) and info.etag
    with st.open(key) as value:  # type: ignore[union-attr]
        assert value.info.etag == info.etag and value.info.size == len(data)
        assert value.read(10) + b"".join(value.chunks(100_000)) == data
    st.put_bytes(key, b"new bytes")
    now = st.stat(key)
    assert now is not None and now.size == 9 and now.etag != info.etag and now.version != info.version
    assert st.version(key) == now.version and st.version("v3/none") is None
    assert st.read_bytes(key) == b"new bytes"

    big = tmp_path / "big.nupkg"
    big.write_bytes(b"\x01" * (9 * 1024 * 1024))  # over boto3's multipart threshold
    st.put_file("v3/flatcontainer/b/2.0.0/b.2.0.0.nupkg", big)
    assert big.exists()
    assert st.read_bytes("v3/flatcontainer/b/2.0.0/b.2.0.0.nupkg") == big.read_bytes()
    st.put_bytes("v3/flatcontainer/b/index.json", b"{}")
    assert st.list_keys("v3/flatcontainer/") == [
        "v3/flatcontainer/a/1.0.0/a.1.0.0.nupkg",
        "v3/flatcontainer/b/2.0.0/b.2.0.0.nupkg",
        "v3/flatcontainer/b/index.json",
    ]
    assert st.list_keys("v3/flatcontainer/b/") == [
        "v3/flatcontainer/b/2.0.0/b.2.0.0.nupkg",
        "v3/flatcontainer/b/index.json",
    ]
    assert other.list_keys("v3/") == [] and other.read_bytes(key) is None  # prefixes do not see each other
    st.delete(key)
    assert not st.exists(key)

    down = S3Storage(BUCKET, "feed/", endpoint_url="http://127.0.0.1:1", region="us-east-1")
    with pytest.raises(OSError, match="S3 head_object"):
        down.stat(key)


def test_a_feed_on_s3_publishes_serves_and_recovers(s3_env: str, tmp_path: Path) -> None:
    """A feed whose storage is the bucket: a push lands there (nothing under DATA/storage), the /v3/ read side
    serves it through the storage (ETag, 304, a streamed .nupkg), and a restart repairs a document lost from the
    bucket (recovery lists and reads the bucket)."""
    config = FeedConfig(
        data_dir=tmp_path / "data",
        base_url="http://127.0.0.1:1",
        storage_url=f"s3://{BUCKET}/feeds/one?endpoint={s3_env}&region=us-east-1",
    )
    feed = build_feed(config, clock=lambda: T0)
    service = feed.service
    try:
        service.setup()
        with service.db.write() as s:
            create_user(s, "alice", now=T0)
            key = create_api_key(s, "alice", now=T0).key
        with service.db.read() as s:
            principal = authenticate(s, key, now=T0)
        package = make_package("S3.Pkg", "1.0.0", files={"lib/net8.0/big.bin": bytes(range(256)) * 2048})
        staged = config.staging_dir / "up.nupkg"
        staged.write_bytes(package)
        published = feed.pipeline.run(Submission(StagedUpload(staged, len(package), ""), principal, T0))
        assert published.id == "S3.Pkg"
        assert not config.storage_dir.exists() or not any(p.is_file() for p in config.storage_dir.rglob("*"))

        async def read_side() -> None:
            transport = httpx.ASGITransport(app=feed.app())
            async with httpx.AsyncClient(transport=transport, base_url="http://feed.test") as c:
                index = await c.get("/v3/index.json")
                assert index.status_code == 200 and index.json()["version"] == "3.0.0"
                versions = await c.get("/v3/flatcontainer/s3.pkg/index.json")
                assert versions.json() == {"versions": ["1.0.0"]}
                nupkg = await c.get("/v3/flatcontainer/s3.pkg/1.0.0/s3.pkg.1.0.0.nupkg")
                assert nupkg.status_code == 200 and nupkg.content == package
                etag = nupkg.headers["etag"]
                url = "/v3/flatcontainer/s3.pkg/1.0.0/s3.pkg.1.0.0.nupkg"
                assert (await c.get(url, headers={"If-None-Match": etag})).status_code == 304
                assert (await c.get("/v3/flatcontainer/s3.pkg/9.0.0/s3.pkg.9.0.0.nupkg")).status_code == 404

        asyncio.run(read_side())
    finally:
        feed.close()

    bucket = boto3.client("s3", endpoint_url=s3_env, region_name="us-east-1")
    bucket.delete_object(Bucket=BUCKET, Key="feeds/one/v3/flatcontainer/s3.pkg/index.json")  # a lost document
    restarted = build_feed(config, clock=lambda: T0)
    try:
        restarted.service.setup()  # recovery finds the id damaged and settles it from the committed rows
        assert restarted.service.storage.read_bytes("v3/flatcontainer/s3.pkg/index.json") is not None
        stored = restarted.service.storage.read_bytes("v3/flatcontainer/s3.pkg/1.0.0/s3.pkg.1.0.0.nupkg")
        assert stored == package
    finally:
        restarted.close()


@pytest.mark.slow  # a real server with two workers (about 20 s on 2 cores)
def test_nuseal_serve_with_two_workers_stores_in_the_bucket(s3_env: str, tmp_path: Path) -> None:
    """``nuseal serve --storage s3://...`` (each worker builds its storage from the configuration): a push over
    HTTP lands in the bucket, every worker serves it, and nothing is written under DATA/storage."""
    env = {
        "AWS_ACCESS_KEY_ID": "nuseal-test",
        "AWS_SECRET_ACCESS_KEY": "nuseal-test-secret",
        "AWS_EC2_METADATA_DISABLED": "true",
    }
    url = f"s3://{BUCKET}/served?endpoint={s3_env}&region=us-east-1"
    feed = start_feed(tmp_path / "data", "--storage", url, workers=2, env=env)
    try:
        package = make_package("S3.Served", "2.0.0")
        pushed = feed.push(package)
        assert pushed.status_code == 201, pushed.text
        with feed.client() as c:
            for _ in range(4):  # several connections: both workers answer
                r = c.get("/v3/flatcontainer/s3.served/2.0.0/s3.served.2.0.0.nupkg", headers={"Connection": "close"})
                assert r.status_code == 200 and r.content == package
            assert c.get("/v3/flatcontainer/s3.served/index.json").json() == {"versions": ["2.0.0"]}
    finally:
        feed.stop()
    bucket = boto3.client("s3", endpoint_url=s3_env, region_name="us-east-1")
    stored = bucket.get_object(Bucket=BUCKET, Key="served/v3/flatcontainer/s3.served/2.0.0/s3.served.2.0.0.nupkg")
    assert stored["Body"].read() == package
    storage_dir = tmp_path / "data" / "storage"
    assert not storage_dir.exists() or not any(p.is_file() for p in storage_dir.rglob("*"))
