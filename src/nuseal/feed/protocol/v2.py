"""The read-only part of NuGet's V2 (OData) protocol that ``nuget list`` needs.

NuGet.exe 5.8's ``list`` command has no V3 implementation: for a V3 source it follows the service index's
``LegacyGallery`` entry to a V2 feed (NuGet.Client ``V3FeedListResourceProvider`` -> ``ListResourceV2Feed``),
asks ``$metadata`` whether ``Search`` exists (``LegacyFeedCapabilityResourceV2Feed``), then pages through
``Search()?$filter=IsLatestVersion&searchTerm='...'&includePrerelease=...&$skip=..&$top=..&semVerLevel=2.0.0``
following ``<link rel="next">`` (``V2FeedParser``). This module answers exactly that: the service document,
a minimal ``$metadata``, and ``Search()`` / ``Packages()`` as Atom feeds of listed versions. Pushing stays V3.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Protocol
from urllib.parse import urlencode
from xml.etree import ElementTree as ET

import anyio
from sqlalchemy import and_, select
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from nuseal.feed.errors import BadRequestError
from nuseal.feed.protocol.documents import Urls
from nuseal.feed.protocol.search import MAX_QUERY_LENGTH, SearchQuery, query_int, version_filters
from nuseal.feed.store.database import Database
from nuseal.feed.store.models import Package
from nuseal.package import NuGetVersion

__all__ = ["DEFAULT_TOP", "LegacyFeed", "MAX_TOP"]

ATOM = "http://www.w3.org/2005/Atom"
D = "http://schemas.microsoft.com/ado/2007/08/dataservices"
M = "http://schemas.microsoft.com/ado/2007/08/dataservices/metadata"
APP = "http://www.w3.org/2007/app"
#: Page size when the client gives no ``$top``, and the largest page served (nuget.org: 100).
DEFAULT_TOP = 30
MAX_TOP = 100
#: Most versions a V2 listing looks at (the V2 protocol is for small private feeds here).
MAX_SCAN = 100_000
_ATOM_TYPE = "application/atom+xml;type=feed;charset=utf-8"

_METADATA = b"""<?xml version="1.0" encoding="utf-8"?>
<edmx:Edmx Version="1.0" xmlns:edmx="http://schemas.microsoft.com/ado/2007/06/edmx">
<edmx:DataServices m:DataServiceVersion="2.0" m:MaxDataServiceVersion="2.0" xmlns:m="http://schemas.microsoft.com/ado/2007/08/dataservices/metadata">
<Schema Namespace="NuGetGallery.OData" xmlns="http://schemas.microsoft.com/ado/2006/04/edm">
<EntityType Name="V2FeedPackage" m:HasStream="true">
<Key><PropertyRef Name="Id"/><PropertyRef Name="Version"/></Key>
<Property Name="Id" Type="Edm.String" Nullable="false"/>
<Property Name="Version" Type="Edm.String" Nullable="false"/>
<Property Name="NormalizedVersion" Type="Edm.String"/>
<Property Name="Authors" Type="Edm.String"/>
<Property Name="Description" Type="Edm.String"/>
<Property Name="DownloadCount" Type="Edm.Int32" Nullable="false"/>
<Property Name="IsLatestVersion" Type="Edm.Boolean" Nullable="false"/>
<Property Name="IsAbsoluteLatestVersion" Type="Edm.Boolean" Nullable="false"/>
<Property Name="IsPrerelease" Type="Edm.Boolean" Nullable="false"/>
<Property Name="Listed" Type="Edm.Boolean" Nullable="false"/>
<Property Name="Published" Type="Edm.DateTime" Nullable="false"/>
<Property Name="Tags" Type="Edm.String"/>
<Property Name="Title" Type="Edm.String"/>
<Property Name="Summary" Type="Edm.String"/>
<Property Name="PackageHash" Type="Edm.String"/>
<Property Name="PackageHashAlgorithm" Type="Edm.String"/>
<Property Name="PackageSize" Type="Edm.Int64" Nullable="false"/>
</EntityType>
</Schema>
<Schema Namespace="NuGetGallery" xmlns="http://schemas.microsoft.com/ado/2006/04/edm">
<EntityContainer Name="V2FeedContext" m:IsDefaultEntityContainer="true">
<EntitySet Name="Packages" EntityType="NuGetGallery.OData.V2FeedPackage"/>
<FunctionImport Name="Search" ReturnType="Collection(NuGetGallery.OData.V2FeedPackage)" EntitySet="Packages">
<Parameter Name="searchTerm" Type="Edm.String" FixedLength="false" Unicode="false"/>
<Parameter Name="targetFramework" Type="Edm.String" FixedLength="false" Unicode="false"/>
<Parameter Name="includePrerelease" Type="Edm.Boolean" Nullable="false"/>
</FunctionImport>
</EntityContainer>
</Schema>
</edmx:DataServices>
</edmx:Edmx>
"""


def _odata_string(text: str) -> str:
    """An OData string literal ``'it''s'`` -> ``it's``; bare text is taken as is."""
    text = text.strip()
    if len(text) >= 2 and text[0] == text[-1] == "'":
        return text[1:-1].replace("''", "'")
    return text


class FeedReads(Protocol):
    """What the V2 listing reads: the database and the feed's URLs (a
    :class:`~nuseal.feed.publish.publisher.FeedService` has both)."""

    @property
    def db(self) -> Database: ...

    @property
    def urls(self) -> Urls: ...


class LegacyFeed:
    def __init__(self, service: FeedReads) -> None:
        self.service = service
        self.base = service.urls.legacy_gallery  # ends with "/"

    def routes(self) -> list[Route]:
        return [
            Route("/api/v2", self.service_document, methods=["GET", "HEAD"]),
            Route("/api/v2/", self.service_document, methods=["GET", "HEAD"]),
            Route("/api/v2/$metadata", self.metadata, methods=["GET", "HEAD"]),
            Route("/api/v2/Search()", self.search, methods=["GET", "HEAD"]),
            Route("/api/v2/Packages()", self.packages, methods=["GET", "HEAD"]),
            Route("/api/v2/Packages", self.packages, methods=["GET", "HEAD"]),
        ]

    async def service_document(self, request: Request) -> Response:
        ET.register_namespace("", APP)
        ET.register_namespace("atom", ATOM)
        root = ET.Element(f"{{{APP}}}service", {"xml:base": self.base})
        ws = ET.SubElement(root, f"{{{APP}}}workspace")
        ET.SubElement(ws, f"{{{ATOM}}}title", {"type": "text"}).text = "Default"
        coll = ET.SubElement(ws, f"{{{APP}}}collection", {"href": "Packages"})
        ET.SubElement(coll, f"{{{ATOM}}}title", {"type": "text"}).text = "Packages"
        body = ET.tostring(root, encoding="utf-8", xml_declaration=True)
        return Response(body, media_type="application/xml;charset=utf-8")

    async def metadata(self, request: Request) -> Response:
        return Response(_METADATA, media_type="application/xml;charset=utf-8")

    async def search(self, request: Request) -> Response:
        return await self._feed(request, "Search", search=True)

    async def packages(self, request: Request) -> Response:
        return await self._feed(request, "Packages", search=False)

    async def _feed(self, request: Request, name: str, *, search: bool) -> Response:
        params = request.query_params
        term = _odata_string(params.get("searchTerm", "")) if search else ""
        if len(term) > MAX_QUERY_LENGTH:
            raise BadRequestError(f"the search term is longer than {MAX_QUERY_LENGTH} characters")
        prerelease = _odata_string(params.get("includePrerelease", "false")).lower() == "true"
        semver = params.get("semVerLevel", "")
        semver2 = semver.startswith(("2", "3"))
        flt = (params.get("$filter") or "").strip()
        latest_only = flt in ("IsLatestVersion", "IsAbsoluteLatestVersion")
        if flt == "IsAbsoluteLatestVersion":
            prerelease = True
        skip = query_int(params, "$skip", 0)
        top = query_int(params, "$top", DEFAULT_TOP, MAX_TOP)
        query = SearchQuery(q=term, prerelease=prerelease, semver2=semver2)

        def run() -> tuple[list[Package], bool]:
            with self.service.db.read() as session:
                rows = list(
                    session.scalars(
                        select(Package).where(and_(*version_filters(query))).order_by(Package.id_lower).limit(MAX_SCAN)
                    ).all()
                )
            by_id: dict[str, list[Package]] = {}
            for r in rows:
                by_id.setdefault(r.id_lower, []).append(r)
            picked: list[Package] = []
            for id_lower in sorted(by_id):
                versions = sorted(by_id[id_lower], key=lambda r: NuGetVersion.parse(r.version_full))
                picked.extend(versions[-1:] if latest_only else versions)
            return picked[skip : skip + top], len(picked) > skip + top

        page, more = await anyio.to_thread.run_sync(run)
        next_url = None
        if more:
            next_params = {k: v for k, v in params.items() if k != "$skip"}
            next_params["$skip"] = str(skip + top)
            next_url = f"{self.base}{name}()?{urlencode(next_params, safe=chr(39) + '$')}"
        return Response(self._atom(name, page, next_url), media_type=_ATOM_TYPE)

    def _atom(self, name: str, rows: list[Package], next_url: str | None) -> bytes:
        ET.register_namespace("", ATOM)
        ET.register_namespace("d", D)
        ET.register_namespace("m", M)
        now = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
        feed = ET.Element(f"{{{ATOM}}}feed", {"xml:base": self.base})
        ET.SubElement(feed, f"{{{ATOM}}}id").text = f"{self.base}{name}"
        ET.SubElement(feed, f"{{{ATOM}}}title", {"type": "text"}).text = name
        ET.SubElement(feed, f"{{{ATOM}}}updated").text = now
        ET.SubElement(feed, f"{{{ATOM}}}link", {"rel": "self", "title": name, "href": f"{name}"})
        urls = self.service.urls
        for r in rows:
            entry = ET.SubElement(feed, f"{{{ATOM}}}entry")
            ET.SubElement(entry, f"{{{ATOM}}}id").text = f"{self.base}Packages(Id='{r.id}',Version='{r.version}')"
            ET.SubElement(entry, f"{{{ATOM}}}title", {"type": "text"}).text = r.id
            ET.SubElement(entry, f"{{{ATOM}}}summary", {"type": "text"}).text = r.summary
            published = r.published_at if r.published_at.tzinfo else r.published_at.replace(tzinfo=UTC)
            stamp = published.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
            ET.SubElement(entry, f"{{{ATOM}}}updated").text = stamp
            author = ET.SubElement(entry, f"{{{ATOM}}}author")
            ET.SubElement(author, f"{{{ATOM}}}name").text = r.authors
            ET.SubElement(
                entry, f"{{{ATOM}}}content", {"type": "application/zip", "src": urls.nupkg(r.id_lower, r.version_lower)}
            )
            props = ET.SubElement(entry, f"{{{M}}}properties")
            fields: list[tuple[str, str, str | None]] = [
                ("Id", r.id, None),
                ("Version", r.version_full, None),
                ("NormalizedVersion", r.version, None),
                ("Authors", r.authors, None),
                ("Description", r.description, None),
                ("Title", r.title, None),
                ("Summary", r.summary, None),
                ("Tags", f" {r.tags} " if r.tags else "", None),
                ("ProjectUrl", r.project_url, None),
                ("IconUrl", r.icon_url, None),
                ("LicenseUrl", r.license_url, None),
                ("DownloadCount", str(r.downloads), "Edm.Int32"),
                ("IsPrerelease", str(r.is_prerelease).lower(), "Edm.Boolean"),
                ("Listed", str(r.listed).lower(), "Edm.Boolean"),
                ("Published", stamp, "Edm.DateTime"),
                ("PackageHash", r.sha512, None),
                ("PackageHashAlgorithm", "SHA512", None),
                ("PackageSize", str(r.size), "Edm.Int64"),
                ("RequireLicenseAcceptance", str(r.require_license_acceptance).lower(), "Edm.Boolean"),
                ("GalleryDetailsUrl", urls.details(r.id, r.version), None),
            ]
            for key, value, edm in fields:
                attrs = {f"{{{M}}}type": edm} if edm else {}
                ET.SubElement(props, f"{{{D}}}{key}", attrs).text = value
        if next_url:
            ET.SubElement(feed, f"{{{ATOM}}}link", {"rel": "next", "href": next_url})
        return bytes(ET.tostring(feed, encoding="utf-8", xml_declaration=True))
