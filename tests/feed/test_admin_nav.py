"""The pages' navigation links to the quarantine page (``/admin/quarantine``) for a signed-in administrator only,
on the in-process feed composed as ``nuseal serve`` composes it."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from .conftest import make_package
from .ingest_support import IngestFeed, ingest_feed, sign_in

LINK = '<a href="/admin/quarantine"'


@pytest.fixture
def feed(tmp_path: Path) -> Iterator[IngestFeed]:
    yield from ingest_feed(tmp_path)


def pages(feed: IngestFeed) -> dict[str, str]:
    """The text of every page kind with the navigation, by path."""
    out = {}
    for path in ("/packages", "/packages/Contoso.Nav", "/packages/No.Such.Id", "/account", "/admin/quarantine"):
        r = feed.client.get(path, follow_redirects=False)
        out[path] = r.text if r.status_code in (200, 403, 404) else ""
    return out


def test_quarantine_link_only_for_a_signed_in_admin(feed: IngestFeed) -> None:
    assert feed.push(make_package("Contoso.Nav", "1.0.0")).status_code == 201
    # anonymous: no link anywhere
    assert not any(LINK in text for text in pages(feed).values())
    # a signed-in user who is not an administrator: no link either (the quarantine page itself answers 403)
    sign_in(feed, "alice")
    shown = pages(feed)
    assert "Contoso.Nav" in shown["/packages"] and shown["/account"]
    assert not any(LINK in text for text in shown.values())
    # an administrator: on every page, and a list page no shared cache may keep
    feed.client.cookies.clear()
    sign_in(feed, "root")
    shown = pages(feed)
    assert all(LINK in text for text in shown.values()), [p for p, t in shown.items() if LINK not in t]
    assert "private" in feed.client.get("/packages").headers["cache-control"]
    # signed out again: gone
    feed.client.cookies.clear()
    assert LINK not in feed.client.get("/packages").text
    assert "private" not in feed.client.get("/packages").headers["cache-control"]
