"""SearchQueryService/3.5.0 and SearchAutocompleteService/3.5.0, answered from the database.

Parameters and response shapes: NuGet's ``docs/api/search-query-service-resource.md`` and
``search-autocomplete-service-resource.md``. Only listed versions are found. ``prerelease`` (default false)
admits prerelease versions; ``semVerLevel=2.0.0`` admits SemVer 2.0.0-only versions; ``packageType`` keeps ids
with a version of that package type (no type means ``Dependency``). ``q`` is split on whitespace; each term
must match: ``id:x`` (id contains), ``packageid:x`` (exact id), ``tags:x``/``title:x``/``author:x``/
``description:x`` (contains in that field), anything else contains-matches id, title, tags, authors and
description. Ranking: the exact id first, then ids starting with the query, then by total downloads, then id.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from sqlalchemy import ColumnElement, and_, case, distinct, func, literal, select
from sqlalchemy.orm import Session

from nuseal.errors import PackageFormatError
from nuseal.feed.errors import BadRequestError
from nuseal.feed.protocol.documents import Urls
from nuseal.feed.store.models import Owner, Package, User
from nuseal.package import NuGetVersion

__all__ = [
    "MAX_QUERY_LENGTH",
    "MAX_SKIP",
    "MAX_TAKE",
    "SearchQuery",
    "autocomplete",
    "parse_search_query",
    "query_int",
    "search",
    "version_filters",
]

#: nuget.org's limits: ``take`` at most 1000, ``skip`` at most 3000.
MAX_TAKE = 1000
MAX_SKIP = 3000
DEFAULT_TAKE = 20
MAX_QUERY_LENGTH = 256
MAX_TERMS = 16
_FIELD_COLUMNS = {
    "id": Package.id_lower,
    "title": Package.title,
    "tag": Package.tags,
    "tags": Package.tags,
    "author": Package.authors,
    "authors": Package.authors,
    "description": Package.description,
    "summary": Package.summary,
}


@dataclass(frozen=True)
class SearchQuery:
    q: str = ""
    skip: int = 0
    take: int = DEFAULT_TAKE
    prerelease: bool = False
    semver2: bool = False
    package_type: str = ""


def query_int(params: Mapping[str, str], name: str, default: int, upper: int | None = None) -> int:
    """Query parameter ``name`` as a count (``skip``, ``take``, V2's ``$skip``, ``$top``): ``default`` when absent
    or empty, at most ``upper`` when given.

    Raises:
        BadRequestError: not an integer, or negative.
    """
    text = params.get(name)
    if text is None or text == "":
        return default
    try:
        value = int(text)
    except ValueError as exc:
        raise BadRequestError(f"the {name} parameter must be an integer, not {text!r}") from exc
    if value < 0:
        raise BadRequestError(f"the {name} parameter must not be negative")
    return value if upper is None else min(value, upper)


def _bool(params: Mapping[str, str], name: str) -> bool:
    return params.get(name, "").strip().lower() == "true"


def parse_search_query(params: Mapping[str, str]) -> SearchQuery:
    """Read ``q``, ``skip``, ``take``, ``prerelease``, ``semVerLevel``, ``packageType`` (case-sensitive names, as NuGet
    sends them). Raises BadRequestError for non-integer or negative skip/take, or a ``q`` that is too long."""
    q = params.get("q", "") or ""
    if len(q) > MAX_QUERY_LENGTH:
        raise BadRequestError(f"the query is longer than {MAX_QUERY_LENGTH} characters")
    semver = params.get("semVerLevel", "")
    try:
        semver2 = bool(semver) and NuGetVersion.parse(semver).major >= 2
    except PackageFormatError:  # not a version: NuGet's search service treats it as SemVer 1.0.0
        semver2 = False
    return SearchQuery(
        q=q.strip(),
        skip=query_int(params, "skip", 0, MAX_SKIP),
        take=query_int(params, "take", DEFAULT_TAKE, MAX_TAKE),
        prerelease=_bool(params, "prerelease"),
        semver2=semver2,
        package_type=params.get("packageType", "").strip(),
    )


def version_filters(query: SearchQuery) -> list[ColumnElement[bool]]:
    """SQL conditions selecting the listed package rows ``query`` admits (terms, prerelease, SemVer level, type)."""
    conds: list[ColumnElement[bool]] = [Package.listed.is_(True)]
    if not query.prerelease:
        conds.append(Package.is_prerelease.is_(False))
    if not query.semver2:
        conds.append(Package.is_semver2.is_(False))
    if query.package_type:
        wanted = query.package_type.lower()
        listed_types = literal(",") + func.lower(Package.package_types) + literal(",")
        cond = listed_types.contains(f",{wanted},", autoescape=True)
        if wanted == "dependency":
            cond = cond | (Package.package_types == "")
        conds.append(cond)
    for term in query.q.lower().split()[:MAX_TERMS]:
        field, sep, value = term.partition(":")
        if sep and field == "packageid" and value:
            conds.append(Package.id_lower == value)
        elif sep and field in _FIELD_COLUMNS and value:
            conds.append(func.lower(_FIELD_COLUMNS[field]).contains(value, autoescape=True))
        else:
            conds.append(Package.search_text.contains(term, autoescape=True))
    return conds


def search(session: Session, urls: Urls, query: SearchQuery) -> dict[str, Any]:
    """The search response document: ``totalHits`` and one ``data`` entry per id (latest matching version)."""
    conds = version_filters(query)
    total = session.scalar(select(func.count(distinct(Package.id_lower))).where(and_(*conds))) or 0
    q = query.q.lower()
    relevance = case((Package.id_lower == q, 0), (Package.id_lower.startswith(q, autoescape=True), 1), else_=2)
    ids = list(
        session.execute(
            select(Package.id_lower, func.min(relevance).label("rel"), func.sum(Package.downloads).label("dl"))
            .where(and_(*conds))
            .group_by(Package.id_lower)
            .order_by("rel", func.sum(Package.downloads).desc(), Package.id_lower)
            .offset(query.skip)
            .limit(query.take)
        ).all()
    )
    page_ids = [row[0] for row in ids]
    data: list[dict[str, Any]] = []
    if page_ids:
        rows = session.scalars(select(Package).where(and_(*conds), Package.id_lower.in_(page_ids))).all()
        by_id: dict[str, list[Package]] = {}
        for r in rows:
            by_id.setdefault(r.id_lower, []).append(r)
        totals = dict(
            session.execute(
                select(Package.id_lower, func.sum(Package.downloads))
                .where(Package.id_lower.in_(page_ids))
                .group_by(Package.id_lower)
            ).all()
        )
        owners: dict[str, list[str]] = {}
        for id_lower, name in session.execute(
            select(Owner.id_lower, User.name).join(User, User.pk == Owner.user_pk).where(Owner.id_lower.in_(page_ids))
        ).all():
            owners.setdefault(id_lower, []).append(name)
        view = "registration-semver2" if query.semver2 else "registration"
        for id_lower in page_ids:
            versions = sorted(by_id.get(id_lower, []), key=lambda r: NuGetVersion.parse(r.version_full))
            if not versions:
                continue
            latest = versions[-1]
            data.append(
                {
                    "@id": urls.registration_index(view, id_lower),
                    "@type": "Package",
                    "registration": urls.registration_index(view, id_lower),
                    "id": latest.id,
                    "version": latest.version_full if query.semver2 else latest.version,
                    "description": latest.description,
                    "summary": latest.summary,
                    "title": latest.title,
                    "iconUrl": latest.icon_url,
                    "licenseUrl": latest.license_url,
                    "projectUrl": latest.project_url,
                    "tags": latest.tags.split(),
                    "authors": [a.strip() for a in latest.authors.split(",") if a.strip()],
                    "owners": sorted(owners.get(id_lower, [])),
                    "totalDownloads": int(totals.get(id_lower, 0) or 0),
                    "verified": False,
                    "packageTypes": [{"name": t} for t in latest.package_types.split(",") if t]
                    or [{"name": "Dependency"}],
                    "versions": [
                        {
                            "version": v.version_full if query.semver2 else v.version,
                            "downloads": v.downloads,
                            "@id": urls.registration_leaf(view, id_lower, v.version_lower),
                        }
                        for v in versions
                    ],
                }
            )
    return {
        "@context": {
            "@vocab": "http://schema.nuget.org/schema#",
            "@base": urls.registration_base("registration-semver2" if query.semver2 else "registration"),
        },
        "totalHits": int(total),
        "data": data,
    }


def autocomplete(session: Session, params: Mapping[str, str]) -> dict[str, Any]:
    """With ``id``: the listed versions of that id. Otherwise: ids matching ``q`` (prefix matches first)."""
    query = parse_search_query(params)
    conds = version_filters(
        SearchQuery(prerelease=query.prerelease, semver2=query.semver2, package_type=query.package_type)
    )
    package_id = params.get("id")
    if package_id is not None:
        rows = session.scalars(select(Package).where(and_(*conds), Package.id_lower == package_id.lower())).all()
        ordered = sorted(rows, key=lambda r: NuGetVersion.parse(r.version_full))
        return {
            "@context": {"@vocab": "http://schema.nuget.org/schema#"},
            "totalHits": len(ordered),
            "data": [r.version_full if query.semver2 else r.version for r in ordered],
        }
    q = query.q.lower()
    if q:
        conds.append(Package.id_lower.contains(q, autoescape=True))
    total = session.scalar(select(func.count(distinct(Package.id_lower))).where(and_(*conds))) or 0
    rel = case((Package.id_lower.startswith(q, autoescape=True), 0), else_=1)
    rows2 = session.execute(
        select(Package.id_lower, func.min(Package.id), func.min(rel).label("rel"))
        .where(and_(*conds))
        .group_by(Package.id_lower)
        .order_by("rel", Package.id_lower)
        .offset(query.skip)
        .limit(query.take)
    ).all()
    return {
        "@context": {"@vocab": "http://schema.nuget.org/schema#"},
        "totalHits": int(total),
        "data": [r[1] for r in rows2],
    }
