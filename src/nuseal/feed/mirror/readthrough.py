"""The read-through mirror (issue 16, point 1): what the feed answers for an id it does not hold itself but an
upstream may serve (``nuseal serve --upstream``).

One ASGI layer, :class:`ReadThroughLayer`, sits in front of the static layer
(:class:`nuseal.feed.protocol.static.StaticDocuments`) for ``GET``/``HEAD`` under ``/v3/``; search gets the
upstream's hits through :meth:`ReadThroughMirror.extend_search`. For an id that an upstream's ``packageSourceMapping``
patterns map (:meth:`Upstreams.route <nuseal.feed.mirror.upstream.Upstreams.route>`) and that is not local (no
owners here, not under a reserved id prefix: local ids always win, the dependency-confusion defence):

* ``flatcontainer/{id}/index.json``: the upstream's versions that :meth:`Ingestion.visible_versions
  <nuseal.feed.mirror.ingest.Ingestion.visible_versions>` lets through (not held, refused or rejected here, out of
  their cooldown by the registration's ``published`` date), merged with the versions already ingested;
* ``registration[-semver2]/{id}/index.json`` and ``.../{id}/{version}.json``: built from the upstream's registration
  leaves (filtered the same way; the catalog entries as the upstream wrote them, their ``packageContent`` and
  registration URLs pointed at this feed; SemVer 2.0.0 versions only in ``registration-semver2``), the versions
  already ingested taking this feed's own stored items. Paged as nuget.org's and the feed's own: up to
  ``INLINE_PAGE_THRESHOLD`` (128) items inlined, beyond that the index lists pages of ``PAGE_SIZE`` (64) by ``@id``
  and bounds only, and ``.../{id}/page/{lower}/{upper}.json`` answers the items of the same merged, filtered list in
  those bounds (a page an older index named: what is visible in its range now; 404 when nothing is);
* ``flatcontainer/{id}/{version}/*.nupkg|.nuspec`` not in storage: the ``.nupkg`` is fetched from the first mapped
  upstream that lists the version (one download and one ingestion per version however many ask at once:
  :class:`~nuseal.feed.mirror.upstream.SingleFlight` in this process, then a file lock per version shared by the
  worker processes, :class:`~nuseal.feed.mirror.locks.VersionLocks`, under which a version found stored, held or
  refused is not downloaded again; several machines sharing S3 storage may each download it once, the database
  still publishes it once), handed to :meth:`Ingestion.ingest
  <nuseal.feed.mirror.ingest.Ingestion.ingest>` in a worker thread, and the request then goes to the static layer:
  an accepted version is served from storage byte for byte as the upstream sent it; a held or refused one is a 404
  (with ``X-NuSeal-Quarantine`` for an administrator's key, added around this layer). A version the database says is
  published whose file storage does not hold yet (another machine sharing the database and S3 storage won the
  publish: it commits first and writes storage after, as crash consistency requires) is waited for, polling storage
  with a doubling pause for up to :data:`STORED_WAIT_SECONDS`, then served; if it is still missing, the answer is a
  503 with ``Retry-After`` (logged), never a 404 for a published version (:meth:`ReadThroughMirror.await_stored`).

When an upstream cannot answer (down, or a broken document) and nothing is cached, a version list or registration
the feed has stored for the ingested versions is served as stored; anything else is a 502 whose body, warning
header and status line name the upstream. Versions already ingested are always served from storage.

Autocomplete (``/v3/autocomplete``, :meth:`ReadThroughMirror.extend_autocomplete`): ``q=`` lists the local ids first,
then each upstream's ids that route to it and are not local; ``id=`` of a mirrored id gives its visible versions.

Search (``/v3/search``): the local hits first, then the upstream's hits for ids mapped to it and not local, each
with only its visible versions; ``totalHits`` adds the upstream's. Paging is the upstream's (a page may hold up to
``take`` local plus ``take`` upstream hits, cut to ``take``); an upstream that fails leaves the local hits alone.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
import re
import time
from collections.abc import Mapping, Sequence
from datetime import datetime
from pathlib import Path
from typing import Any

import anyio
import anyio.to_thread
from sqlalchemy import select
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from nuseal.client.gate import RepositorySignatureInfo
from nuseal.client.v3documents import RegistrationLeaf, RepositorySignatures
from nuseal.errors import NusealError, PackageFormatError
from nuseal.feed.errors import REASON_PHRASE_HEADER, reason_phrase
from nuseal.feed.mirror.checks import StageResult, UpstreamInfo, Verdict
from nuseal.feed.mirror.ingest import Ingestion, IngestOutcome
from nuseal.feed.mirror.locks import VersionLocks
from nuseal.feed.mirror.upstream import (
    SingleFlight,
    UpstreamClient,
    UpstreamDocumentError,
    UpstreamError,
    Upstreams,
    UpstreamSource,
)
from nuseal.feed.protocol.documents import (
    CATALOG_CONTEXT,
    INLINE_PAGE_THRESHOLD,
    JSON_CONTENT_TYPE,
    PAGE_SIZE,
    REGISTRATION_VIEWS,
    dump,
    nupkg_key,
    nuspec_key,
    registration_index_key,
    registration_page_key,
)
from nuseal.feed.protocol.search import SearchQuery, parse_search_query
from nuseal.feed.publish.publisher import FeedService
from nuseal.feed.store.models import Owner, Package, ReservedPrefix
from nuseal.package import NuGetVersion

__all__ = ["MirrorTask", "ReadThroughLayer", "ReadThroughMirror", "build_mirror", "signature_info"]

log = logging.getLogger(__name__)

#: Seconds a refusal (other than one for good) is remembered before the version is downloaded and checked again.
REFUSAL_MEMORY_SECONDS = 60.0
#: Most refusals remembered (the oldest are forgotten first).
MAX_REFUSALS_REMEMBERED = 4096
#: Most seconds a request waits for the ``.nupkg``/``.nuspec`` of a version that the database says is published but
#: storage does not hold yet (another machine committed it and is writing it), before it answers 503.
STORED_WAIT_SECONDS = 5.0
#: The first pause between two looks at storage while waiting (doubled each time, up to ``_STORED_POLL_MAX``).
_STORED_POLL_FIRST = 0.05
_STORED_POLL_MAX = 1.0
#: ``Retry-After`` (seconds) of the 503 answered when the wait ends without the file. NuGet retries a 5xx answer
#: (NuGet.Protocol ``HttpRetryHandler``: a status code of 500 or greater is retried).
RETRY_AFTER_SECONDS = 2
_EPOCH = "1970-01-01T00:00:00+00:00"
_VIEWS = dict(REGISTRATION_VIEWS)
#: A package id as NuGet allows it (lower-cased, as every request path here is), and a version's characters.
_ID = r"([a-z0-9_][a-z0-9._-]{0,99})"
_VER = r"([a-z0-9][a-z0-9.+-]{0,63})"
_FLAT_INDEX = re.compile(rf"^v3/flatcontainer/{_ID}/index\.json$")
_FLAT_FILE = re.compile(rf"^v3/flatcontainer/{_ID}/{_VER}/[^/]+\.(?:nupkg|nuspec)$")
_REG_INDEX = re.compile(rf"^v3/(registration|registration-semver2)/{_ID}/index\.json$")
_REG_LEAF = re.compile(rf"^v3/(registration|registration-semver2)/{_ID}/{_VER}\.json$")
_REG_PAGE = re.compile(rf"^v3/(registration|registration-semver2)/{_ID}/page/{_VER}/{_VER}\.json$")


def signature_info(document: RepositorySignatures | None) -> RepositorySignatureInfo | None:
    """An upstream's ``RepositorySignatures`` document as the verification gate takes it: its certificates become
    an allow list for repository signatures (NC ``RepositorySignatureInfoUtility``; same as restore's
    :meth:`nuseal.client.feedclient.FeedClient.repository_signatures`)."""
    return None if document is None else RepositorySignatureInfo.from_document(document)


def _entry_version(item: dict[str, Any]) -> str:
    """The version a registration item's catalog entry names (as written: full, original case)."""
    return str(item["catalogEntry"]["version"])


def _lower_version(text: str) -> str | None:
    try:
        return NuGetVersion.parse(text).normalized.lower()
    except PackageFormatError:  # not a version: nothing a client can ask for
        return None


class ReadThroughMirror:
    """The mirror of one feed (module docstring): its upstreams, its ingestion, and the documents it answers.

    Build with :func:`build_mirror`; thread-safe reads, one event loop per process.
    """

    def __init__(
        self, service: FeedService, ingestion: Ingestion, upstreams: Upstreams, locks: VersionLocks | None = None
    ) -> None:
        self.service = service
        self.ingestion = ingestion
        self.upstreams = upstreams
        #: One download and ingestion per version across the worker processes (in front: SingleFlight per process).
        self.locks = locks if locks is not None else VersionLocks(Path(service.config.data_dir) / "locks" / "mirror")
        self.cooldown = service.config.ingest.min_release_age_seconds > 0
        self._ingests: SingleFlight[tuple[str, str], IngestOutcome | None] = SingleFlight()
        self._refused: dict[tuple[str, str], tuple[float, IngestOutcome]] = {}
        #: Seconds :meth:`await_stored` waits at most (:data:`STORED_WAIT_SECONDS`).
        self.stored_wait = STORED_WAIT_SECONDS
        self._waits: SingleFlight[str, bool] = SingleFlight()
        #: Counters: ingestions run (one per version fetched), outcomes by state.
        self.ingested: dict[str, int] = {"accepted": 0, "held": 0, "refused": 0}

    # ------------------------------------------------------------------ which ids
    def is_local(self, id_lower: str) -> bool:
        """The feed holds the id itself: it has owners here, or lies under a reserved id prefix (local ids win)."""
        with self.service.db.read() as session:
            if session.scalar(select(Owner.user_pk).where(Owner.id_lower == id_lower).limit(1)) is not None:
                return True
            prefixes = session.scalars(select(ReservedPrefix.prefix_lower)).all()
        return any(id_lower.startswith(p) for p in prefixes)

    async def route(self, package_id: str) -> tuple[UpstreamClient, ...]:
        """The upstreams that may serve ``package_id`` (none for a local id or one no pattern maps)."""
        if not self.upstreams.mapped(package_id):
            return ()
        if await anyio.to_thread.run_sync(self.is_local, package_id.lower()):
            return ()
        return self.upstreams.mapped(package_id)

    def _ingested(self, id_lower: str) -> list[str]:
        with self.service.db.read() as session:
            return list(session.scalars(select(Package.version_lower).where(Package.id_lower == id_lower)).all())

    # ------------------------------------------------------------------ version lists
    async def _upstream_versions(
        self, package_id: str, clients: Sequence[UpstreamClient]
    ) -> dict[NuGetVersion, UpstreamClient]:
        found: dict[NuGetVersion, UpstreamClient] = {}
        for client in clients:
            for version in await client.versions(package_id):
                found.setdefault(version, client)
        return found

    async def _leaves(self, package_id: str, clients: Sequence[UpstreamClient]) -> dict[NuGetVersion, RegistrationLeaf]:
        leaves: dict[NuGetVersion, RegistrationLeaf] = {}
        for client in clients:
            for leaf in await client.registration(package_id):
                leaves.setdefault(leaf.version, leaf)
        return leaves

    async def _visible(
        self, package_id: str, versions: Sequence[NuGetVersion], published: dict[NuGetVersion, datetime | None]
    ) -> list[NuGetVersion]:
        by_text = {v.normalized: v for v in versions}
        pairs = [(v.normalized, published.get(v)) for v in versions]
        shown = await anyio.to_thread.run_sync(self.ingestion.visible_versions, package_id, pairs)
        return [by_text[t] for t in shown if t in by_text]

    async def version_list(self, package_id: str) -> list[str] | None:
        """The flat container's version list for a mirrored id (lower-case normalized, ascending), ``None`` when
        the id is not mirrored or neither the upstream nor this feed knows it.

        Raises:
            UpstreamError: an upstream failed with nothing cached.
        """
        versions = await self.visible_versions(package_id)
        return None if versions is None else [v.normalized.lower() for v in versions]

    async def visible_versions(self, package_id: str) -> list[NuGetVersion] | None:
        """The versions of a mirrored id a client may see (:meth:`version_list`'s, as versions, ascending).

        Raises:
            UpstreamError: an upstream failed with nothing cached.
        """
        clients = await self.route(package_id)
        if not clients:
            return None
        found = await self._upstream_versions(package_id, clients)
        published: dict[NuGetVersion, datetime | None] = {}
        if self.cooldown and found:
            published = {v: leaf.published for v, leaf in (await self._leaves(package_id, clients)).items()}
        visible = await self._visible(package_id, sorted(found), published)
        ingested = await anyio.to_thread.run_sync(self._ingested, package_id.lower())
        if not found and not ingested:
            return None
        merged = {v.normalized.lower(): v for v in visible}
        for text in ingested:
            merged.setdefault(text, NuGetVersion.parse(text))
        return sorted(merged.values())

    # ------------------------------------------------------------------ registrations
    def _stored_items(self, view: str, id_lower: str) -> dict[str, dict[str, Any]]:
        """This feed's own registration items of the ingested versions, by lower-case normalized version."""
        storage = self.service.storage
        data = storage.read_bytes(registration_index_key(view, id_lower))
        if data is None:
            return {}
        out: dict[str, dict[str, Any]] = {}
        base = self.service.urls.base + "/"
        for page in json.loads(data).get("items", []):
            items = page.get("items")
            if items is None and str(page.get("@id", "")).startswith(base):
                page_data = storage.read_bytes(str(page["@id"])[len(base) :])
                items = json.loads(page_data).get("items", []) if page_data else []
            for item in items or []:
                ver = _lower_version(str(item.get("catalogEntry", {}).get("version", "")))
                if ver is not None:
                    out[ver] = item
        return out

    def _item(self, view: str, leaf: RegistrationLeaf, stamp: str) -> dict[str, Any]:
        urls = self.service.urls
        id_lower, ver = leaf.id.lower(), leaf.version.normalized.lower()
        leaf_url = urls.registration_leaf(view, id_lower, ver)
        entry = dict(leaf.catalog_entry)
        entry.update(
            {
                "@id": leaf_url + "#catalogentry",
                "id": entry.get("id") or leaf.id,
                "version": entry.get("version") or leaf.version.full,
                "listed": leaf.listed,
                "packageContent": urls.nupkg(id_lower, ver),
            }
        )
        groups = []
        for group in entry.get("dependencyGroups") or []:
            if not isinstance(group, dict):
                continue
            deps = [
                {**dep, "registration": urls.registration_index(view, str(dep.get("id", "")).lower())}
                for dep in group.get("dependencies") or []
                if isinstance(dep, dict)
            ]
            groups.append({**group, "dependencies": deps})
        entry["dependencyGroups"] = groups
        return {
            "@id": leaf_url,
            "@type": "Package",
            "commitId": "00000000-0000-0000-0000-000000000000",
            "commitTimeStamp": stamp,
            "catalogEntry": entry,
            "packageContent": urls.nupkg(id_lower, ver),
            "registration": urls.registration_index(view, id_lower),
        }

    async def registration_items(self, view: str, package_id: str) -> list[dict[str, Any]] | None:
        """The registration items of a mirrored id in ``view`` (ascending), ``None`` when not mirrored or unknown.

        Raises:
            UpstreamError: an upstream failed with nothing cached.
        """
        clients = await self.route(package_id)
        if not clients:
            return None
        semver2 = _VIEWS[view]
        leaves = await self._leaves(package_id, clients)
        visible = await self._visible(package_id, sorted(leaves), {v: leaf.published for v, leaf in leaves.items()})
        stored = await anyio.to_thread.run_sync(self._stored_items, view, package_id.lower())
        if not leaves and not stored:
            return None
        # a stamp that changes only with the upstream's data, so the document's ETag holds between requests
        dates = [leaf.published for leaf in leaves.values() if leaf.published is not None]
        stamp = max(dates).isoformat() if dates else _EPOCH
        items: dict[str, tuple[NuGetVersion, dict[str, Any]]] = {}
        for version in visible:
            if semver2 or not version.is_semver2:
                items[version.normalized.lower()] = (version, self._item(view, leaves[version], stamp))
        for ver, item in stored.items():
            items[ver] = (NuGetVersion.parse(ver), item)
        return [item for _, item in sorted(items.values(), key=lambda pair: pair[0])]

    def registration_index(self, view: str, id_lower: str, items: Sequence[dict[str, Any]]) -> dict[str, Any]:
        """The registration index of ``items`` (ascending), paged as this feed's own registrations are and as
        nuget.org's are (:func:`nuseal.feed.protocol.documents.registration_documents`): up to
        :data:`INLINE_PAGE_THRESHOLD` items inlined in pages of :data:`PAGE_SIZE` (as nuget.org); beyond that, pages of
        :data:`PAGE_SIZE` listed by ``@id``, ``count``, ``lower``, ``upper`` and ``parent`` only, each answered by
        :meth:`registration_page` at ``v3/<view>/<id>/page/<lower>/<upper>.json`` (NuGet docs
        ``api/registration-base-url-resource.md``, "Registration page object")."""
        urls = self.service.urls
        index_url = urls.registration_index(view, id_lower)
        stamp = self._stamp(items)
        paged = len(items) > INLINE_PAGE_THRESHOLD
        pages = []
        for start in range(0, len(items), PAGE_SIZE):
            chunk = list(items[start : start + PAGE_SIZE])
            lower, upper = _entry_version(chunk[0]), _entry_version(chunk[-1])
            inline_id = f"{index_url}#page/{lower.lower()}/{upper.lower()}"
            page: dict[str, Any] = {
                "@id": self._page_url(view, id_lower, lower, upper) if paged else inline_id,
                "@type": "catalog:CatalogPage",
                "commitId": "00000000-0000-0000-0000-000000000000",
                "commitTimeStamp": stamp,
                "count": len(chunk),
                "lower": lower,
                "upper": upper,
                "parent": index_url,
            }
            pages.append(page if paged else {**page, "items": chunk})
        return {
            "@id": index_url,
            "@type": ["catalog:CatalogRoot", "PackageRegistration", "catalog:Permalink"],
            "commitId": "00000000-0000-0000-0000-000000000000",
            "commitTimeStamp": stamp,
            "count": len(pages),
            "items": pages,
            "@context": CATALOG_CONTEXT,
        }

    def registration_page(
        self, view: str, id_lower: str, items: Sequence[dict[str, Any]], lower: str, upper: str
    ) -> dict[str, Any] | None:
        """The page document at ``v3/<view>/<id>/page/<lower>/<upper>.json``: the ``items`` (ascending; the same
        merged, filtered list the index is built from) whose versions lie in ``[lower, upper]``. For the bounds the
        index names that is exactly the page it lists; for bounds an older index named (the version set moved since
        a client read it) it is what is visible in that range now, so a client reading a cached index still gets
        every visible version of the range and none that is held or cooling. ``None`` (a 404) when the bounds are
        not versions, are reversed, or hold no item."""
        try:
            low, high = NuGetVersion.parse(lower), NuGetVersion.parse(upper)
        except PackageFormatError:
            return None
        chunk = [item for item in items if low <= NuGetVersion.parse(_entry_version(item)) <= high]
        if low > high or not chunk:
            return None
        urls = self.service.urls
        return {
            "@id": self._page_url(view, id_lower, lower, upper),
            "@type": "catalog:CatalogPage",
            "commitId": "00000000-0000-0000-0000-000000000000",
            "commitTimeStamp": self._stamp(items),
            "count": len(chunk),
            "items": chunk,
            "lower": _entry_version(chunk[0]),
            "upper": _entry_version(chunk[-1]),
            "parent": urls.registration_index(view, id_lower),
            "@context": CATALOG_CONTEXT,
        }

    def _page_url(self, view: str, id_lower: str, lower: str, upper: str) -> str:
        lower_key, upper_key = _lower_version(lower) or lower.lower(), _lower_version(upper) or upper.lower()
        return f"{self.service.urls.base}/{registration_page_key(view, id_lower, lower_key, upper_key)}"

    @staticmethod
    def _stamp(items: Sequence[dict[str, Any]]) -> str:
        return max((str(i["commitTimeStamp"]) for i in items), default=_EPOCH)

    @staticmethod
    def registration_leaf(item: dict[str, Any]) -> dict[str, Any]:
        """The leaf document of one registration item."""
        entry = item["catalogEntry"]
        return {
            "@id": item["@id"],
            "@type": ["Package", "http://schema.nuget.org/catalog#Permalink"],
            "catalogEntry": entry.get("@id", item["@id"] + "#catalogentry"),
            "listed": entry.get("listed", True),
            "packageContent": item["packageContent"],
            "published": entry.get("published"),
            "registration": item["registration"],
        }

    # ------------------------------------------------------------------ packages
    async def ensure_package(self, package_id: str, version_text: str) -> IngestOutcome | None:
        """Fetch and ingest one version of a mirrored id unless it is stored already (single flight per
        version: in this process, then across the worker processes by the version's file lock). ``None``: not
        mirrored, or no upstream lists the version.

        Raises:
            UpstreamError: the upstream is down, the download was cut or is too large (nothing kept).
        """
        ver = _lower_version(version_text)
        if ver is None:
            return None
        key = (package_id.lower(), ver)
        remembered = self._refused.get(key)
        if remembered is not None and time.monotonic() - remembered[0] < REFUSAL_MEMORY_SECONDS:
            return remembered[1]
        return await self._ingests.run(key, lambda: self._fetch_and_ingest(package_id, NuGetVersion.parse(ver)))

    async def _fetch_and_ingest(self, package_id: str, version: NuGetVersion) -> IngestOutcome | None:
        """Under the version's file lock (one download across the worker processes; :mod:`.locks`): nothing when
        it is stored, held or refused already, else download and ingest it."""
        id_lower, ver = package_id.lower(), version.normalized.lower()
        async with self.locks.hold(id_lower, ver) as waited:
            if await anyio.to_thread.run_sync(self.service.storage.exists, nupkg_key(id_lower, ver)):
                return None  # ingested meanwhile (another worker, or a request that just finished)
            if await anyio.to_thread.run_sync(self._decided, package_id, version.normalized, waited):
                return None  # held, rejected, refused for good or just now by another worker: no download
            return await self._download_and_ingest(package_id, version)

    async def _download_and_ingest(self, package_id: str, version: NuGetVersion) -> IngestOutcome | None:
        id_lower, ver = package_id.lower(), version.normalized.lower()
        clients = await self.route(package_id)
        client = None
        for candidate in clients:
            if version in await candidate.versions(package_id):
                client = candidate
                break
        if client is None:
            return None
        fetched = await client.fetch_package(package_id, version)
        if fetched is None:
            return None
        try:
            try:
                leaf = await client.registration_leaf(package_id, version)
            except UpstreamDocumentError:
                leaf = None
            info = UpstreamInfo(
                client.source.url,
                signature_info(await client.repository_signatures()),
                leaf.published if leaf is not None else None,
            )
            outcome = await anyio.to_thread.run_sync(self.ingestion.ingest, fetched.path, info)
        finally:
            fetched.discard()
        self.ingested[outcome.state] = self.ingested.get(outcome.state, 0) + 1
        log.info("mirror: %s (from %s)", outcome.message, client.name)
        if outcome.refused:
            self._remember_refusal((id_lower, ver), outcome)
        return outcome

    def _published(self, id_lower: str, ver_lower: str) -> bool:
        with self.service.db.read() as session:
            found = session.scalar(
                select(Package.pk).where(Package.id_lower == id_lower, Package.version_lower == ver_lower)
            )
        return found is not None

    async def _exists(self, key: str) -> bool:
        storage = self.service.storage
        if storage.inline_reads:
            return storage.exists(key)
        return await anyio.to_thread.run_sync(storage.exists, key)

    async def await_stored(self, key: str, id_lower: str, ver_lower: str) -> bool | None:
        """Wait for ``key`` (the ``.nupkg`` or ``.nuspec`` key of the version ``id_lower``/``ver_lower``, lower-case
        normalized) to be in storage when the database says the version is published: the publisher commits the row
        first and writes storage after it (``docs/feed.md``, Crash consistency), so a process that lost the publish
        to another machine sharing the database and storage can find the row before the file. Storage is looked at
        with a pause doubling from 50 ms to 1 s, for at most :attr:`stored_wait` seconds (asyncio; one wait per key
        however many requests ask at once).

        Returns None when no committed row has that version (nothing to wait for: the static layer's 404 stands),
        True once the file is stored, False when it is still missing after the wait (logged as a warning; the caller
        answers 503 with ``Retry-After``).

        Raises:
            SQLAlchemyError, OSError: the database or the storage failed.
        """
        if not await anyio.to_thread.run_sync(self._published, id_lower, ver_lower):
            return None
        return await self._waits.run(key, lambda: self._poll_stored(key))

    async def _poll_stored(self, key: str) -> bool:
        start = time.monotonic()
        deadline = start + self.stored_wait
        pause = _STORED_POLL_FIRST
        while True:
            if await self._exists(key):
                log.info(
                    "mirror: %s was committed by another process; stored after %.2f s", key, time.monotonic() - start
                )
                return True
            left = deadline - time.monotonic()
            if left <= 0:
                log.warning(
                    "mirror: %s is published in the database but not in storage after %.1f s (another process's write "
                    "is late or was lost); answering 503",
                    key,
                    self.stored_wait,
                )
                return False
            await anyio.sleep(min(pause, left))
            pause = min(pause * 2, _STORED_POLL_MAX)

    # ------------------------------------------------------------------ web pages
    async def page_info(self, package_id: str) -> dict[str, Any] | None:
        """What a package page shows of the upstream of a mirrored id: ``upstreams`` (names and service index URLs),
        ``pending`` (``(version, appears_at)`` of the versions still in their cooldown, ascending) and ``error``
        (the upstream's failure, ``""`` when it answered). ``None`` for an id that is not mirrored."""
        clients = await self.route(package_id)
        if not clients:
            return None
        info: dict[str, Any] = {"upstreams": [(c.name, c.source.url) for c in clients], "pending": [], "error": ""}
        if not self.cooldown:
            return info
        try:
            leaves = await self._leaves(package_id, clients)
        except UpstreamError as exc:
            info["error"] = str(exc)
            return info

        def pending() -> list[tuple[str, datetime]]:
            out = []
            for version, leaf in sorted(leaves.items()):
                when = self.ingestion.appears_at(package_id, version.normalized, leaf.published)
                if when is not None:
                    out.append((version.full, when))
            return out

        info["pending"] = await anyio.to_thread.run_sync(pending)
        return info

    def _decided(self, package_id: str, version: str, waited: bool = False) -> bool:
        """The version is in quarantine with a standing decision (held, rejected, refused for good), or, when this
        process ``waited`` for the version's lock, refused by the process that held it meanwhile (recorded less
        than :data:`REFUSAL_MEMORY_SECONDS` ago; remembered here as that process remembers it)."""
        view = self.ingestion.quarantine.get(package_id, version)
        if view is None:
            return False
        if view.state in ("held", "rejected"):
            return True
        if view.state != "refused":
            return False
        if any(r.get("evidence", {}).get("for_good") for r in view.reasons):
            return True
        now = self.service.clock()
        at = view.created_at if view.created_at.tzinfo else view.created_at.replace(tzinfo=now.tzinfo)
        if waited and (now - at).total_seconds() < REFUSAL_MEMORY_SECONDS:
            results = tuple(
                StageResult(r["stage"], Verdict(r["verdict"]), r["summary"], r.get("evidence", {}))
                for r in view.reasons
            )
            outcome = IngestOutcome("refused", view.id, view.version, results)
            self._remember_refusal((package_id.lower(), version.lower()), outcome)
            return True
        return False

    def _remember_refusal(self, key: tuple[str, str], outcome: IngestOutcome) -> None:
        self._refused[key] = (time.monotonic(), outcome)
        while len(self._refused) > MAX_REFUSALS_REMEMBERED:
            del self._refused[next(iter(self._refused))]

    # ------------------------------------------------------------------ search
    async def extend_search(self, query: SearchQuery, local: dict[str, Any]) -> dict[str, Any]:
        """``local`` (this feed's search answer) followed by the upstream hits for mirrored ids (module docstring)."""
        seen = {str(hit.get("id", "")).lower() for hit in local.get("data", [])}
        hits: list[dict[str, Any]] = []
        total = int(local.get("totalHits", 0))
        view = "registration-semver2" if query.semver2 else "registration"
        for client in self.upstreams.clients:
            try:
                answer = await client.search(
                    query.q,
                    skip=query.skip,
                    take=query.take,
                    prerelease=query.prerelease,
                    semver_level="2.0.0" if query.semver2 else "1.0.0",
                )
            except UpstreamError as exc:
                log.warning("mirror search: %s", exc)
                continue
            total += int(answer.get("totalHits", 0) or 0)
            for hit in answer.get("data", []):
                if not isinstance(hit, dict) or not isinstance(hit.get("id"), str):
                    continue
                package_id = hit["id"]
                if package_id.lower() in seen or client not in await self.route(package_id):
                    continue
                seen.add(package_id.lower())
                rewritten = await self._search_hit(view, client, hit)
                if rewritten is not None:
                    hits.append(rewritten)
        data = [*local.get("data", []), *hits][: query.take]
        return {**local, "totalHits": total, "data": data}

    async def extend_autocomplete(self, params: Mapping[str, str], local: dict[str, Any]) -> dict[str, Any]:
        """``local`` (this feed's autocomplete answer to ``params``) with the mirror's part (NuGet docs
        ``api/search-autocomplete-service-resource.md``):

        * ``id=<id>`` of a mirrored id: its visible versions, as :meth:`visible_versions` (the version list) gives
          them, filtered by ``prerelease`` and ``semVerLevel`` as the feed's own (full strings for SemVer 2.0.0);
        * otherwise (``q=``): the local ids first, then each upstream's ids for ``q`` that route to it and are not
          local (local ids win), cut to ``take``; ``totalHits`` adds the upstream's. Paging is the upstream's, as
          for search. An upstream that fails leaves the local answer alone.

        Raises:
            BadRequestError: bad ``skip``/``take`` or a too long ``q`` (:func:`parse_search_query`).
        """
        query = parse_search_query(params)
        package_id = params.get("id")
        if package_id is not None:
            try:
                versions = await self.visible_versions(package_id)
            except UpstreamError as exc:
                log.warning("mirror autocomplete: %s", exc)
                return local
            if versions is None:
                return local
            shown = [
                (v.full if query.semver2 else v.normalized)
                for v in versions
                if (query.prerelease or not v.is_prerelease) and (query.semver2 or not v.is_semver2)
            ]
            return {**local, "totalHits": len(shown), "data": shown}
        seen = {str(i).lower() for i in local.get("data", [])}
        ids: list[str] = []
        total = int(local.get("totalHits", 0))
        for client in self.upstreams.clients:
            try:
                answer = await client.autocomplete(
                    query.q,
                    skip=query.skip,
                    take=query.take,
                    prerelease=query.prerelease,
                    semver_level="2.0.0" if query.semver2 else "1.0.0",
                    package_type=query.package_type,
                )
            except UpstreamError as exc:
                log.warning("mirror autocomplete: %s", exc)
                continue
            total += int(answer.get("totalHits", 0) or 0)
            for found in answer.get("data", []):
                if not isinstance(found, str) or found.lower() in seen or client not in await self.route(found):
                    continue
                seen.add(found.lower())
                ids.append(found)
        return {**local, "totalHits": total, "data": [*local.get("data", []), *ids][: query.take]}

    async def _search_hit(self, view: str, client: UpstreamClient, hit: dict[str, Any]) -> dict[str, Any] | None:
        urls = self.service.urls
        package_id = str(hit["id"])
        id_lower = package_id.lower()
        versions: list[tuple[NuGetVersion, dict[str, Any]]] = []
        for entry in hit.get("versions") or []:
            if isinstance(entry, dict) and isinstance(entry.get("version"), str):
                try:
                    versions.append((NuGetVersion.parse(entry["version"]), entry))
                except PackageFormatError:  # an upstream version nobody can ask for
                    continue
        published: dict[NuGetVersion, datetime | None] = {}
        if self.cooldown:
            try:
                published = {v: leaf.published for v, leaf in (await self._leaves(package_id, (client,))).items()}
            except UpstreamError:
                return None  # the dates are unknown: show nothing that may still be in its cooldown
        shown = set(await self._visible(package_id, [v for v, _ in versions], published))
        kept = [
            {**entry, "@id": urls.registration_leaf(view, id_lower, v.normalized.lower())}
            for v, entry in versions
            if v in shown
        ]
        if not kept:
            return None
        index = urls.registration_index(view, id_lower)
        return {**hit, "@id": index, "registration": index, "version": kept[-1]["version"], "versions": kept}


# ---------------------------------------------------------------------------------------------- ASGI
def _json_headers(body: bytes) -> list[tuple[bytes, bytes]]:
    return [
        (b"content-type", JSON_CONTENT_TYPE.encode()),
        (b"etag", b'"' + hashlib.sha256(body).hexdigest()[:32].encode() + b'"'),
        (b"cache-control", b"public, no-cache"),
        (b"access-control-allow-origin", b"*"),
        (b"content-length", str(len(body)).encode()),
    ]


class ReadThroughLayer:
    """ASGI layer in front of the static layer for ``GET``/``HEAD`` under ``/v3/`` (module docstring)."""

    def __init__(self, static: ASGIApp, mirror: ReadThroughMirror) -> None:
        self.static = static
        self.mirror = mirror

    async def _stored(self, key: str) -> bool:
        """Whether the storage holds ``key`` (inline on a local backend, as the static layer reads it)."""
        storage = self.mirror.service.storage
        try:
            if storage.inline_reads:
                return storage.exists(key)
            return await anyio.to_thread.run_sync(storage.exists, key)
        except (OSError, NusealError):  # not a storage key (the static layer answers 404)
            return False

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        path = scope["path"].lstrip("/").lower()
        file = _FLAT_FILE.match(path)
        if file is not None:  # a .nupkg or .nuspec: the static layer serves it, the mirror only fills a miss
            if await self._static_unless_missing(scope, receive, send):
                return
            try:
                if self.mirror.upstreams.mapped(file.group(1)):
                    await self.mirror.ensure_package(file.group(1), file.group(2))
                    if await self._committed_elsewhere_late(path, file.group(1), file.group(2)):
                        await self._unavailable(scope, send, f"{path} is published but not yet in storage; retry")
                        return
            except UpstreamError as exc:
                await self._bad_gateway(scope, send, str(exc))
                return
            # stored now, or a 404 (held: the quarantine header layer around this one names why to an admin)
            await self.static(scope, receive, send)
            return
        try:
            if await self._answer(scope, path, send):
                return
        except UpstreamError as exc:
            if not await self._stored(path):
                await self._bad_gateway(scope, send, str(exc))
                return
            log.warning("mirror: serving the stored %s: %s", path, exc)
        await self.static(scope, receive, send)

    async def _committed_elsewhere_late(self, path: str, package_id: str, version_text: str) -> bool:
        """True when ``path`` (a ``.nupkg`` or ``.nuspec`` request) is the served key of a version the database says
        is published and it is still not in storage after :meth:`ReadThroughMirror.await_stored`'s wait."""
        ver = _lower_version(version_text)
        if ver is None:
            return False
        id_lower = package_id.lower()
        if path not in (nupkg_key(id_lower, ver), nuspec_key(id_lower, ver)) or await self._stored(path):
            return False
        return await self.mirror.await_stored(path, id_lower, ver) is False

    async def _answer(self, scope: Scope, path: str, send: Send) -> bool:
        """Answer ``path`` from the upstream when it is the mirror's; False: the static layer answers."""
        mirror = self.mirror
        if m := _FLAT_INDEX.match(path):
            versions = await mirror.version_list(m.group(1))
            if versions is None:
                return False
            await self._json(scope, send, {"versions": versions})
            return True
        if m := _REG_INDEX.match(path):
            view, package_id = m.group(1), m.group(2)
            items = await mirror.registration_items(view, package_id)
            if items is None:
                return False
            await self._json(scope, send, mirror.registration_index(view, package_id, items))
            return True
        if m := _REG_PAGE.match(path):
            view, package_id = m.group(1), m.group(2)
            items = await mirror.registration_items(view, package_id)
            if items is None:
                return False
            page = mirror.registration_page(view, package_id, items, m.group(3), m.group(4))
            if page is None:
                await self._not_found(scope, send)
            else:
                await self._json(scope, send, page)
            return True
        if m := _REG_LEAF.match(path):
            view, package_id, ver = m.group(1), m.group(2), _lower_version(m.group(3))
            if ver is None or await self._stored(path):
                return False
            items = await mirror.registration_items(view, package_id)
            for item in items or ():
                if _lower_version(str(item["catalogEntry"].get("version", ""))) == ver:
                    await self._json(scope, send, mirror.registration_leaf(item))
                    return True
            return False
        return False

    async def _static_unless_missing(self, scope: Scope, receive: Receive, send: Send) -> bool:
        """Let the static layer answer; False (nothing sent) when it would answer 404. What is stored costs the
        cached downloads nothing more than this wrapper."""
        missing = False

        async def unless_missing(message: Message) -> None:
            nonlocal missing
            if message["type"] == "http.response.start" and message["status"] == 404:
                missing = True
            if not missing:
                await send(message)

        await self.static(scope, receive, unless_missing)
        return not missing

    async def _json(self, scope: Scope, send: Send, doc: dict[str, Any]) -> None:
        body = dump(doc)
        headers = _json_headers(body)
        etag = headers[1][1]
        for name, value in scope["headers"]:
            if name == b"if-none-match" and etag in [v.strip().removeprefix(b"W/") for v in value.split(b",")]:
                await send({"type": "http.response.start", "status": 304, "headers": headers[:-1]})
                await send({"type": "http.response.body", "body": b""})
                return
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        await send({"type": "http.response.body", "body": b"" if scope["method"] == "HEAD" else body})

    async def _not_found(self, scope: Scope, send: Send) -> None:
        body = b"Not found\n"  # as the static layer's 404
        headers = [
            (b"content-type", b"text/plain; charset=utf-8"),
            (b"cache-control", b"no-cache"),
            (b"content-length", str(len(body)).encode()),
        ]
        await send({"type": "http.response.start", "status": 404, "headers": headers})
        await send({"type": "http.response.body", "body": b"" if scope["method"] == "HEAD" else body})

    async def _bad_gateway(self, scope: Scope, send: Send, message: str) -> None:
        await self._failure(scope, send, 502, message)

    async def _unavailable(self, scope: Scope, send: Send, message: str) -> None:
        """A 503 with ``Retry-After`` (:data:`RETRY_AFTER_SECONDS`): the file will be there shortly."""
        await self._failure(scope, send, 503, message, [(b"retry-after", str(RETRY_AFTER_SECONDS).encode())])

    async def _failure(
        self, scope: Scope, send: Send, status: int, message: str, extra: Sequence[tuple[bytes, bytes]] = ()
    ) -> None:
        body = (message + "\n").encode()
        warning = " ".join(message.split()).encode("latin-1", "replace")[:400]
        headers = [
            (b"content-type", b"text/plain; charset=utf-8"),
            (b"cache-control", b"no-store"),
            (b"x-nuget-warning", warning),
            (REASON_PHRASE_HEADER.encode(), reason_phrase(message).encode("latin-1", "replace")),
            *extra,
            (b"content-length", str(len(body)).encode()),
        ]
        await send({"type": "http.response.start", "status": status, "headers": headers})
        await send({"type": "http.response.body", "body": b"" if scope["method"] == "HEAD" else body})


# ---------------------------------------------------------------------------------------------- wiring
class MirrorTask:
    """Background task (:class:`~nuseal.feed.http.app.BackgroundTask`) holding the upstream clients' connections
    for the application's lifespan: they are closed when it is cancelled at shutdown."""

    def __init__(self, mirror: ReadThroughMirror) -> None:
        self.mirror = mirror

    async def run(self) -> None:
        try:
            await asyncio.Event().wait()
        finally:
            await self.mirror.upstreams.aclose()

    def published(self) -> None:
        """Nothing to do when a push is published."""


def build_mirror(service: FeedService, ingestion: Ingestion) -> ReadThroughMirror | None:
    """The mirror of ``service``'s configured upstreams (``config.upstreams``), ``None`` when there are none.
    Downloads go to ``DATA/mirror/<upstream>/``.

    Raises:
        ConfigError: a bad upstream (name, URL, pattern, plain http not allowed, two with one name).
    """
    config = service.config
    if not config.upstreams:
        return None
    clients = []
    for up in config.upstreams:
        source = UpstreamSource(up.name, up.url, up.patterns, up.allow_insecure_connections)
        clients.append(
            UpstreamClient(
                source,
                work_dir=Path(config.data_dir) / "mirror" / source.name,
                metadata_ttl=config.upstream_metadata_ttl,
                max_package_size=config.max_package_size,
            )
        )
    return ReadThroughMirror(service, ingestion, Upstreams(clients))
