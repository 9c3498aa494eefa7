"""The feed composed in the test process with ingestion settings and an injected clock, for the ingestion,
quarantine and mirror tests (``test_ingest``, ``test_mirror_workers``, ``test_admin_nav``).

- :func:`ingest_feed`: a generator (use as ``for f in ingest_feed(tmp_path, ...)`` or ``yield from`` in a fixture)
  that builds the feed as ``nuseal serve`` does (:func:`nuseal.feed.compose.build_feed`) on a movable
  :class:`support.clock.Clock`, with users ``alice``, ``bob`` and the administrator ``root`` and an all-scopes key
  each, and yields an :class:`IngestFeed`; keyword arguments go to :class:`nuseal.feed.config.IngestConfig`.
  Signing stays off; the nuget.org code-signing and timestamping roots of ``../shared/trust`` are the trust roots.
- :class:`IngestFeed`: the composed feed, its :class:`AsgiClient` (cookies kept, so :func:`sign_in` holds), the
  clock and the users' API keys, with shortcuts for pushes and the V3 reads.
- :func:`nuget_org_info`: the ``RepositorySignatures`` information nuget.org publishes (its repository
  certificates as read from the vectors), for ``UpstreamInfo``.

Unlike :mod:`tests.feed.inprocess` (``start_inprocess_feed``, a stand-in for ``start_feed``'s ``Feed``), this feed is
driven through its Python objects too (``composed.ingestion``, ``composed.service.db``) and runs no lifespan.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import anyio.from_thread
import httpx
from click.testing import CliRunner

from nuseal.cli.admin import admin_group
from nuseal.client.gate import RepositorySignatureInfo
from nuseal.feed.accounts.admins import set_admin
from nuseal.feed.accounts.keys import create_api_key, create_user
from nuseal.feed.compose import Feed as ComposedFeed
from nuseal.feed.compose import build_feed
from nuseal.feed.config import FeedConfig, IngestConfig, SigningConfig
from nuseal.verify import AllowListEntry, SignaturePlacement, VerificationTarget
from support.clock import Clock

from .conftest import multipart
from .upstream_support import nuget_org_repository_certificates, sha256_fingerprint

SHARED = Path(__file__).resolve().parents[3] / "shared"
CODESIGN = str(SHARED / "trust" / "codesignctl.pem")
TIMESTAMP = str(SHARED / "trust" / "timestampctl.pem")


class AsgiClient:
    """A synchronous client of an ASGI app in this process (httpx over ``ASGITransport``, on an anyio portal)."""

    def __init__(self, app: Any) -> None:
        self._portal_cm = anyio.from_thread.start_blocking_portal()
        self.portal = self._portal_cm.__enter__()
        self.client = httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://testserver")

    @property
    def cookies(self) -> httpx.Cookies:
        return self.client.cookies

    def request(self, method: str, url: str, **kwargs: Any) -> httpx.Response:
        return self.portal.call(functools.partial(self.client.request, method, url, **kwargs))

    def get(self, url: str, **kwargs: Any) -> httpx.Response:
        return self.request("GET", url, **kwargs)

    def put(self, url: str, **kwargs: Any) -> httpx.Response:
        return self.request("PUT", url, **kwargs)

    def post(self, url: str, **kwargs: Any) -> httpx.Response:
        return self.request("POST", url, **kwargs)

    def close(self) -> None:
        self.portal.call(self.client.aclose)
        self._portal_cm.__exit__(None, None, None)


@dataclass
class IngestFeed:
    composed: ComposedFeed
    client: AsgiClient
    clock: Clock
    keys: dict[str, str] = field(default_factory=dict)

    @property
    def data_dir(self) -> Path:
        return self.composed.config.data_dir

    def push(self, data: bytes, key: str = "alice") -> Any:
        return self.client.put("/api/v2/package", files=multipart(data), headers={"X-NuGet-ApiKey": self.keys[key]})

    def versions(self, package_id: str) -> list[str]:
        r = self.client.get(f"/v3/flatcontainer/{package_id.lower()}/index.json")
        return list(r.json()["versions"]) if r.status_code == 200 else []

    def nupkg(self, package_id: str, version: str, key: str | None = None) -> Any:
        i, v = package_id.lower(), version.lower()
        headers = {"X-NuGet-ApiKey": self.keys[key]} if key else {}
        return self.client.get(f"/v3/flatcontainer/{i}/{v}/{i}.{v}.nupkg", headers=headers)

    def search_ids(self, q: str) -> list[str]:
        return [d["id"] for d in self.client.get("/v3/search", params={"q": q}).json()["data"]]

    def registration_versions(self, package_id: str) -> list[str]:
        r = self.client.get(f"/v3/registration/{package_id.lower()}/index.json")
        if r.status_code != 200:
            return []
        return [leaf["catalogEntry"]["version"] for page in r.json()["items"] for leaf in page.get("items", [])]

    def admin(self, *args: str) -> Any:
        database = self.composed.config.database_url
        extra = ["--data", str(self.data_dir)] + (["--database", database] if database else [])
        return CliRunner().invoke(admin_group, [*args, *extra], catch_exceptions=False)

    @property
    def ingestion(self) -> Any:
        assert self.composed.ingestion is not None
        return self.composed.ingestion


def ingest_feed(
    tmp_path: Path, *, now: datetime | None = None, database_url: str | None = None, **ingest: Any
) -> Iterator[IngestFeed]:
    clock = Clock(now or datetime.now(UTC))
    config = FeedConfig(
        data_dir=tmp_path / "feed",
        base_url="http://testserver",
        database_url=database_url,
        signing=SigningConfig(trust_bundle=CODESIGN, timestamp_trust_bundle=TIMESTAMP),  # roots; signing stays off
        ingest=IngestConfig(revocation_mode="offline", release_check_seconds=0, **ingest),
    )
    composed = build_feed(config, clock=clock)
    composed.service.setup()
    keys = {}
    with composed.service.db.write() as session:
        for name in ("alice", "bob", "root"):
            create_user(session, name, now=clock())
            keys[name] = create_api_key(session, name, now=clock()).key
        set_admin(session, "root", admin=True, actor="test", now=clock())
    client = AsgiClient(composed.app())
    try:
        yield IngestFeed(composed, client, clock, keys)
    finally:
        client.close()
        composed.close()


def nuget_org_info() -> RepositorySignatureInfo:
    entries = tuple(
        AllowListEntry(
            fingerprint=sha256_fingerprint(c),
            target=VerificationTarget.REPOSITORY,
            placement=SignaturePlacement.ANY,
        )
        for c in nuget_org_repository_certificates()
    )
    return RepositorySignatureInfo(True, entries)


def sign_in(feed: IngestFeed, key: str) -> None:
    """Sign in on the web pages with ``key``'s API key (the login form and its CSRF token); the client keeps the
    session cookie."""
    page = feed.client.get("/account/login")
    csrf = re.search(r'name="csrf" value="([^"]+)"', page.text)
    assert csrf is not None
    r = feed.client.post(
        "/account/login", data={"api_key": feed.keys[key], "csrf": csrf.group(1)}, follow_redirects=False
    )
    assert r.status_code == 303, r.text
